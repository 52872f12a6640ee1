/* peek.c - one pread, one hex dump. */
#include "peek.h"
#include "crc32.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PEEK_MAX 4096

static void hexdump(const unsigned char *buf, size_t n, uint64_t base, FILE *out)
{
    for (size_t i = 0; i < n; i += 16) {
        fprintf(out, "  %010llx ", (unsigned long long)(base + i));
        for (size_t k = 0; k < 16; k++) {
            if (i + k < n)
                fprintf(out, " %02x", buf[i + k]);
            else
                fputs("   ", out);
        }
        fputs("  |", out);
        for (size_t k = 0; k < 16 && i + k < n; k++) {
            unsigned char c = buf[i + k];
            fputc(c >= 32 && c < 127 ? c : '.', out);
        }
        fputs("|\n", out);
    }
}

int peek_file(const char *path, uint64_t offset, size_t len, FILE *out)
{
    unsigned char buf[PEEK_MAX];
    struct stat st;
    if (len > PEEK_MAX)
        len = PEEK_MAX;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    ssize_t n = pread(fd, buf, len, (off_t)offset);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return -1;
    }
    fprintf(out, "%s: %lld bytes; %zd bytes at offset %llu, crc32 %08x\n", path, (long long)st.st_size, n,
            (unsigned long long)offset, crc32_of(buf, (size_t)n));
    hexdump(buf, (size_t)n, offset, out);
    return 0;
}
