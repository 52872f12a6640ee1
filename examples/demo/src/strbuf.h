/* strbuf.h - a growable, always NUL-terminated string. */
#ifndef ICICLE_STRBUF_H
#define ICICLE_STRBUF_H

#include <stddef.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} StrBuf;

void sb_init(StrBuf *sb);
void sb_free(StrBuf *sb);
void sb_clear(StrBuf *sb);
void sb_putc(StrBuf *sb, char c);
void sb_putn(StrBuf *sb, const char *s, size_t n);
void sb_puts(StrBuf *sb, const char *s);
void sb_printf(StrBuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `count` copies of c. */
void sb_repeat(StrBuf *sb, char c, size_t count);
/* The contents; valid until the next append. Never NULL. */
const char *sb_cstr(const StrBuf *sb);

#endif
