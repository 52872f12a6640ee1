/* mandel.h - the Mandelbrot set as ASCII art. */
#ifndef ICICLE_MANDEL_H
#define ICICLE_MANDEL_H

#include "strbuf.h"

typedef struct {
    double cx, cy;   /* centre of the view */
    double width;    /* width of the view in the complex plane */
    int cols, rows;  /* characters */
    int max_iter;
} MandelView;

/* Appends rows lines of cols characters to out. Returns the number of
 * cells found inside the set. */
long mandel_render(const MandelView *view, StrBuf *out);
/* Escape iteration count of c = x + iy (max_iter when it stays bounded). */
int mandel_escape(double x, double y, int max_iter);

#endif
