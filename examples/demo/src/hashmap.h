/* hashmap.h - string keys to double values, open addressing.
 *
 * The evaluator keeps the calculator's variables here.
 */
#ifndef ICICLE_HASHMAP_H
#define ICICLE_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *key;      /* owned copy; NULL for an empty slot */
    double value;
    uint64_t hash;
} MapSlot;

typedef struct {
    MapSlot *slots;
    size_t cap;     /* always a power of two */
    size_t len;
} HashMap;

typedef void (*MapVisit)(const char *key, double value, void *ctx);

void map_init(HashMap *m);
void map_free(HashMap *m);
/* Inserts or replaces. */
void map_set(HashMap *m, const char *key, double value);
/* Returns 1 and stores the value in *out when the key exists, else 0. */
int map_get(const HashMap *m, const char *key, double *out);
size_t map_len(const HashMap *m);
/* Visits the entries in key order (sorted copy; the map is not changed). */
void map_each_sorted(const HashMap *m, MapVisit visit, void *ctx);
/* 64-bit FNV-1a of a NUL-terminated string. */
uint64_t fnv1a64(const char *s);

#endif
