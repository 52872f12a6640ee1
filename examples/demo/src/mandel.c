/* mandel.c - escape-time rendering with a ten-step character ramp. */
#include "mandel.h"

static const char ramp[] = " .:-=+*%#@";

int mandel_escape(double x, double y, int max_iter)
{
    double zx = 0, zy = 0;
    int i = 0;
    while (i < max_iter && zx * zx + zy * zy <= 4.0) {
        double t = zx * zx - zy * zy + x;
        zy = 2 * zx * zy + y;
        zx = t;
        i++;
    }
    return i;
}

long mandel_render(const MandelView *v, StrBuf *out)
{
    /* Terminal cells are about twice as tall as wide. */
    double step_x = v->width / v->cols;
    double step_y = step_x * 2.0;
    double x0 = v->cx - v->width / 2;
    double y0 = v->cy - step_y * v->rows / 2;
    long inside = 0;
    for (int r = 0; r < v->rows; r++) {
        for (int c = 0; c < v->cols; c++) {
            int it = mandel_escape(x0 + c * step_x, y0 + r * step_y, v->max_iter);
            if (it >= v->max_iter) {
                sb_putc(out, '@');
                inside++;
            } else {
                sb_putc(out, ramp[(it * 9) / v->max_iter]);
            }
        }
        sb_putc(out, '\n');
    }
    return inside;
}
