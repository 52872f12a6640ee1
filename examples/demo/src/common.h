/* common.h - small helpers shared by every icicle module.
 *
 * icicle is the sample C project bundled with thaw's demo: a tiny
 * calculator language plus a handful of toolkits (codecs, number crunching,
 * ASCII graphics) that the showcase in main.c strings together.
 */
#ifndef ICICLE_COMMON_H
#define ICICLE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocation that never returns NULL: out of memory ends the program. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Prints "icicle: <message>" to stderr and exits with status 1. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a non-negative decimal integer; returns 0 on success, -1 if the
 * text is not a number or does not fit. */
int parse_u64(const char *text, uint64_t *out);

#endif
