/* rle.c - the simplest compressor there is; the showcase compares it with
 * the data it is good and bad at. */
#include "rle.h"

size_t rle_bound(size_t n)
{
    return 2 * n;
}

size_t rle_encode(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        unsigned char b = in[i];
        size_t run = 1;
        while (i + run < n && in[i + run] == b && run < 255)
            run++;
        out[o++] = (unsigned char)run;
        out[o++] = b;
        i += run;
    }
    return o;
}

size_t rle_decode(const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t o = 0;
    if (n % 2)
        return (size_t)-1;
    for (size_t i = 0; i < n; i += 2) {
        size_t run = in[i];
        if (run == 0 || o + run > cap)
            return (size_t)-1;
        for (size_t k = 0; k < run; k++)
            out[o++] = in[i + 1];
    }
    return o;
}
