/* base64.h - RFC 4648 base64 with padding. */
#ifndef ICICLE_BASE64_H
#define ICICLE_BASE64_H

#include <stddef.h>

/* Length of the encoding of n bytes (without the NUL). */
size_t base64_encoded_len(size_t n);
/* Writes the encoding of in[0..n) and a NUL to out (base64_encoded_len(n)+1
 * bytes). */
void base64_encode(const unsigned char *in, size_t n, char *out);
/* Decodes text into out (at least 3 * strlen(text) / 4 bytes). Returns the
 * number of bytes written, or -1 on malformed input. */
long base64_decode(const char *text, unsigned char *out);

#endif
