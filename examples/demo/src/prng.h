/* prng.h - xorshift64* pseudo-random numbers: fast, deterministic, and
 * the same on every machine (the showcase's output never changes). */
#ifndef ICICLE_PRNG_H
#define ICICLE_PRNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} Prng;

void prng_seed(Prng *r, uint64_t seed);
uint64_t prng_next(Prng *r);
/* Uniform in [0, 1). */
double prng_unit(Prng *r);
/* Uniform in [0, n), n > 0, without modulo bias. */
uint32_t prng_below(Prng *r, uint32_t n);

#endif
