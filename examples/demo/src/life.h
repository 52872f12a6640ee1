/* life.h - Conway's Game of Life on a torus. */
#ifndef ICICLE_LIFE_H
#define ICICLE_LIFE_H

#include "strbuf.h"

#include <stddef.h>

typedef struct {
    int w, h;
    unsigned char *cells;  /* w * h, 1 = alive */
    unsigned char *next;
    long generation;
} Life;

void life_init(Life *g, int w, int h);
void life_free(Life *g);
void life_set(Life *g, int x, int y);
/* Places a pattern given as rows of '.' and 'O' with its corner at (x, y). */
void life_place(Life *g, int x, int y, const char *const *rows, size_t nrows);
void life_step(Life *g);
size_t life_population(const Life *g);
void life_render(const Life *g, StrBuf *out);

#endif
