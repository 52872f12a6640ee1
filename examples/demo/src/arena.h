/* arena.h - a bump allocator: many small allocations, one free.
 *
 * The parser allocates every AST node from an arena, so a whole program's
 * syntax tree is released with a single arena_free().
 */
#ifndef ICICLE_ARENA_H
#define ICICLE_ARENA_H

#include <stddef.h>

typedef struct ArenaBlock ArenaBlock;

typedef struct {
    ArenaBlock *head;   /* newest block first */
    size_t block_size;  /* capacity of a regular block */
    size_t allocated;   /* bytes handed out so far */
    size_t blocks;      /* blocks obtained from malloc */
} Arena;

void arena_init(Arena *a, size_t block_size);
/* Returns n bytes aligned to 16; never NULL. */
void *arena_alloc(Arena *a, size_t n);
/* Copies s[0..n) into the arena and terminates it with a NUL. */
char *arena_strndup(Arena *a, const char *s, size_t n);
void arena_free(Arena *a);

#endif
