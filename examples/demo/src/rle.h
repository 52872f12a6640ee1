/* rle.h - run-length encoding as (count, byte) pairs, runs of 1..255. */
#ifndef ICICLE_RLE_H
#define ICICLE_RLE_H

#include <stddef.h>

/* Worst case output size for n input bytes. */
size_t rle_bound(size_t n);
/* Encodes in[0..n) into out; returns the encoded length. */
size_t rle_encode(const unsigned char *in, size_t n, unsigned char *out);
/* Decodes into out (cap bytes); returns the decoded length or (size_t)-1
 * when the input is malformed or does not fit. */
size_t rle_decode(const unsigned char *in, size_t n, unsigned char *out, size_t cap);

#endif
