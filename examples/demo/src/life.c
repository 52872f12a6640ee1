/* life.c - double-buffered Game of Life with wrap-around edges. */
#include "life.h"
#include "common.h"

#include <string.h>

void life_init(Life *g, int w, int h)
{
    g->w = w;
    g->h = h;
    g->cells = xcalloc((size_t)w * (size_t)h, 1);
    g->next = xcalloc((size_t)w * (size_t)h, 1);
    g->generation = 0;
}

void life_free(Life *g)
{
    free(g->cells);
    free(g->next);
    g->cells = g->next = NULL;
}

static int wrap(int v, int n)
{
    return ((v % n) + n) % n;
}

void life_set(Life *g, int x, int y)
{
    g->cells[wrap(y, g->h) * g->w + wrap(x, g->w)] = 1;
}

void life_place(Life *g, int x, int y, const char *const *rows, size_t nrows)
{
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; rows[r][c]; c++)
            if (rows[r][c] == 'O')
                life_set(g, x + (int)c, y + (int)r);
}

static int neighbours(const Life *g, int x, int y)
{
    int n = 0;
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++)
            if (dx || dy)
                n += g->cells[wrap(y + dy, g->h) * g->w + wrap(x + dx, g->w)];
    return n;
}

void life_step(Life *g)
{
    for (int y = 0; y < g->h; y++) {
        for (int x = 0; x < g->w; x++) {
            int n = neighbours(g, x, y);
            int alive = g->cells[y * g->w + x];
            g->next[y * g->w + x] = (unsigned char)(n == 3 || (alive && n == 2));
        }
    }
    unsigned char *t = g->cells;
    g->cells = g->next;
    g->next = t;
    g->generation++;
}

size_t life_population(const Life *g)
{
    size_t n = 0;
    for (int i = 0; i < g->w * g->h; i++)
        n += g->cells[i];
    return n;
}

void life_render(const Life *g, StrBuf *out)
{
    for (int y = 0; y < g->h; y++) {
        for (int x = 0; x < g->w; x++)
            sb_putc(out, g->cells[y * g->w + x] ? 'O' : '.');
        sb_putc(out, '\n');
    }
}
