/* primes.h - sieve of Eratosthenes. */
#ifndef ICICLE_PRIMES_H
#define ICICLE_PRIMES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned char *composite; /* composite[i] != 0 when i is not prime */
    size_t limit;             /* sieved numbers are 0..limit-1 */
} Sieve;

void sieve_init(Sieve *s, size_t limit);
void sieve_free(Sieve *s);
int sieve_is_prime(const Sieve *s, size_t n);
size_t sieve_count(const Sieve *s);
/* The k-th prime (k = 1 is 2), or 0 when it is beyond the limit. */
size_t sieve_nth(const Sieve *s, size_t k);
/* Largest gap between consecutive primes below the limit, and where. */
size_t sieve_max_gap(const Sieve *s, size_t *after);

#endif
