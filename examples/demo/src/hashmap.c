/* hashmap.c - linear probing, grows at 70% load. */
#include "hashmap.h"
#include "common.h"

#include <string.h>

uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

void map_init(HashMap *m)
{
    m->cap = 16;
    m->len = 0;
    m->slots = xcalloc(m->cap, sizeof(MapSlot));
}

void map_free(HashMap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

static MapSlot *map_find(const HashMap *m, const char *key, uint64_t hash)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        MapSlot *s = &m->slots[i];
        if (!s->key || (s->hash == hash && strcmp(s->key, key) == 0))
            return s;
    }
}

static void map_grow(HashMap *m)
{
    MapSlot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->slots = xcalloc(m->cap, sizeof(MapSlot));
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].key)
            continue;
        MapSlot *s = map_find(m, old[i].key, old[i].hash);
        *s = old[i];
    }
    free(old);
}

void map_set(HashMap *m, const char *key, double value)
{
    if ((m->len + 1) * 10 > m->cap * 7)
        map_grow(m);
    uint64_t h = fnv1a64(key);
    MapSlot *s = map_find(m, key, h);
    if (!s->key) {
        s->key = xstrdup(key);
        s->hash = h;
        m->len++;
    }
    s->value = value;
}

int map_get(const HashMap *m, const char *key, double *out)
{
    MapSlot *s = map_find(m, key, fnv1a64(key));
    if (!s->key)
        return 0;
    *out = s->value;
    return 1;
}

size_t map_len(const HashMap *m)
{
    return m->len;
}

static int cmp_slot_ptr(const void *a, const void *b)
{
    const MapSlot *x = *(const MapSlot *const *)a;
    const MapSlot *y = *(const MapSlot *const *)b;
    return strcmp(x->key, y->key);
}

void map_each_sorted(const HashMap *m, MapVisit visit, void *ctx)
{
    const MapSlot **order = xmalloc(m->len * sizeof(*order));
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            order[n++] = &m->slots[i];
    qsort(order, n, sizeof(*order), cmp_slot_ptr);
    for (size_t i = 0; i < n; i++)
        visit(order[i]->key, order[i]->value, ctx);
    free(order);
}
