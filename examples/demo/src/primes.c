/* primes.c - byte-per-number sieve (simple, fast enough for a few million). */
#include "primes.h"
#include "common.h"

void sieve_init(Sieve *s, size_t limit)
{
    s->limit = limit;
    s->composite = xcalloc(limit ? limit : 1, 1);
    if (limit > 0)
        s->composite[0] = 1;
    if (limit > 1)
        s->composite[1] = 1;
    for (size_t i = 2; i * i < limit; i++) {
        if (s->composite[i])
            continue;
        for (size_t j = i * i; j < limit; j += i)
            s->composite[j] = 1;
    }
}

void sieve_free(Sieve *s)
{
    free(s->composite);
    s->composite = NULL;
    s->limit = 0;
}

int sieve_is_prime(const Sieve *s, size_t n)
{
    return n < s->limit && !s->composite[n];
}

size_t sieve_count(const Sieve *s)
{
    size_t c = 0;
    for (size_t i = 0; i < s->limit; i++)
        c += !s->composite[i];
    return c;
}

size_t sieve_nth(const Sieve *s, size_t k)
{
    for (size_t i = 0; i < s->limit; i++)
        if (!s->composite[i] && --k == 0)
            return i;
    return 0;
}

size_t sieve_max_gap(const Sieve *s, size_t *after)
{
    size_t prev = 0, best = 0;
    for (size_t i = 2; i < s->limit; i++) {
        if (s->composite[i])
            continue;
        if (prev && i - prev > best) {
            best = i - prev;
            if (after)
                *after = prev;
        }
        prev = i;
    }
    return best;
}
