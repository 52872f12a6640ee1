/* vec.c - growable pointer array. */
#include "vec.h"
#include "common.h"

void vec_init(Vec *v)
{
    v->items = NULL;
    v->len = 0;
    v->cap = 0;
}

void vec_free(Vec *v)
{
    free(v->items);
    vec_init(v);
}

void vec_push(Vec *v, void *item)
{
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->items = xrealloc(v->items, v->cap * sizeof(void *));
    }
    v->items[v->len++] = item;
}

void *vec_pop(Vec *v)
{
    return v->len ? v->items[--v->len] : NULL;
}

void *vec_get(const Vec *v, size_t i)
{
    if (i >= v->len)
        die("vec_get: index %zu out of range (len %zu)", i, v->len);
    return v->items[i];
}
