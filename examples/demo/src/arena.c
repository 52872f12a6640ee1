/* arena.c - bump allocator over a list of malloc'd blocks. */
#include "arena.h"
#include "common.h"

#include <string.h>

#define ARENA_ALIGN 16

struct ArenaBlock {
    ArenaBlock *next;
    size_t cap;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

static size_t align_up(size_t n)
{
    return (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
}

void arena_init(Arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 4096;
    a->allocated = 0;
    a->blocks = 0;
}

static ArenaBlock *arena_new_block(Arena *a, size_t at_least)
{
    size_t cap = MAX(a->block_size, at_least);
    ArenaBlock *b = xmalloc(sizeof(ArenaBlock) + cap);
    b->cap = cap;
    b->used = 0;
    b->next = a->head;
    a->head = b;
    a->blocks++;
    return b;
}

void *arena_alloc(Arena *a, size_t n)
{
    size_t need = align_up(n ? n : 1);
    ArenaBlock *b = a->head;
    if (!b || b->cap - b->used < need)
        b = arena_new_block(a, need);
    void *p = b->data + b->used;
    b->used += need;
    a->allocated += need;
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void arena_free(Arena *a)
{
    ArenaBlock *b = a->head;
    while (b) {
        ArenaBlock *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->allocated = 0;
    a->blocks = 0;
}
