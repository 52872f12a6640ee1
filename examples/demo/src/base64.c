/* base64.c - encoder and strict decoder. */
#include "base64.h"

#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void base64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
    while (i + 3 <= n) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
        i += 3;
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        *out++ = alphabet[(v >> 18) & 63];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
    *out = '\0';
}

static int value_of(char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

long base64_decode(const char *text, unsigned char *out)
{
    size_t len = strlen(text);
    long written = 0;
    if (len % 4)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int a = value_of(text[i]), b = value_of(text[i + 1]);
        int last = i + 4 == len;
        int pad2 = last && text[i + 2] == '=' && text[i + 3] == '=';
        int pad1 = last && !pad2 && text[i + 3] == '=';
        int c = pad2 ? 0 : value_of(text[i + 2]);
        int d = (pad1 || pad2) ? 0 : value_of(text[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0)
            return -1;
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
        out[written++] = (unsigned char)(v >> 16);
        if (!pad2)
            out[written++] = (unsigned char)(v >> 8);
        if (!pad1 && !pad2)
            out[written++] = (unsigned char)v;
    }
    return written;
}
