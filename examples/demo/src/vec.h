/* vec.h - a growable array of pointers. */
#ifndef ICICLE_VEC_H
#define ICICLE_VEC_H

#include <stddef.h>

typedef struct {
    void **items;
    size_t len;
    size_t cap;
} Vec;

void vec_init(Vec *v);
void vec_free(Vec *v);
void vec_push(Vec *v, void *item);
/* Removes and returns the last item; NULL when empty. */
void *vec_pop(Vec *v);
/* The item at i; aborts on an index out of range. */
void *vec_get(const Vec *v, size_t i);

#endif
