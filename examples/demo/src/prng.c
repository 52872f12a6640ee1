/* prng.c - xorshift64* (Vigna), seeded through splitmix64. */
#include "prng.h"

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void prng_seed(Prng *r, uint64_t seed)
{
    r->state = splitmix64(seed);
    if (r->state == 0)
        r->state = 1;
}

uint64_t prng_next(Prng *r)
{
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

double prng_unit(Prng *r)
{
    return (double)(prng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t prng_below(Prng *r, uint32_t n)
{
    uint32_t limit = (uint32_t)(-n) % n; /* 2^32 mod n */
    for (;;) {
        uint32_t v = (uint32_t)(prng_next(r) >> 32);
        if (v >= limit)
            return v % n;
    }
}
