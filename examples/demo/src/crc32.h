/* crc32.h - CRC-32 (IEEE 802.3, the one zlib and PNG use). */
#ifndef ICICLE_CRC32_H
#define ICICLE_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0. */
uint32_t crc32_update(uint32_t crc, const void *buf, size_t len);
uint32_t crc32_of(const void *buf, size_t len);

#endif
