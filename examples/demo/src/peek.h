/* peek.h - read a few bytes from the middle of a (possibly huge) file.
 *
 * In the thaw demo this is how one large asset gets touched: a single
 * pread() in the middle, so only the zstd frame that covers that range is
 * decompressed into the stub.
 */
#ifndef ICICLE_PEEK_H
#define ICICLE_PEEK_H

#include <stdint.h>
#include <stdio.h>

/* Reads len bytes (at most 4096) at offset and prints a hex dump, the file
 * size and a CRC-32 of the range to out. Returns 0, or -1 with errno set. */
int peek_file(const char *path, uint64_t offset, size_t len, FILE *out);

#endif
