/* make-assets.c - writes the large files of the demo tree that the build
 * never reads: test vectors, a generated HTML manual and noise textures.
 *
 *   make-assets DEST [SCALE]
 *
 * Output goes to DEST/assets/ and is identical on every machine for a given
 * SCALE (default 1: about 34 MiB). Generated at demo time rather than
 * checked in, so the repository stays small.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* splitmix64: simple, and the same everywhere */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fail(const char *what, const char *path)
{
    fprintf(stderr, "make-assets: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            fail("cannot create", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        fail("cannot create", buf);
}

static FILE *create(const char *dir, const char *name, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        fail("cannot create", path);
    return f;
}

static void finish(FILE *f, const char *path)
{
    if (ferror(f) || fclose(f) != 0)
        fail("cannot write", path);
}

/* Incompressible: the kind of binary test data a real project ships. */
static void test_vectors(const char *root, int count, size_t bytes)
{
    char dir[4096], path[4200], name[64];
    snprintf(dir, sizeof(dir), "%s/testvectors", root);
    mkdirs(dir);
    for (int i = 0; i < count; i++) {
        snprintf(name, sizeof(name), "vectors-%02d.bin", i);
        FILE *f = create(dir, name, path, sizeof(path));
        rng_state = 0x7e57u + (uint64_t)i;
        uint64_t block[512];
        for (size_t done = 0; done < bytes; done += sizeof(block)) {
            for (size_t k = 0; k < 512; k++)
                block[k] = rng();
            size_t n = bytes - done < sizeof(block) ? bytes - done : sizeof(block);
            fwrite(block, 1, n, f);
        }
        finish(f, path);
    }
}

static const char *const words[] = {
    "archive", "frame", "stub", "hydrate", "range", "offset", "reader", "kernel", "event", "mount",
    "sparse", "index", "seek", "table", "checksum", "compile", "object", "linker", "symbol", "header",
    "the", "a", "of", "to", "and", "in", "is", "for", "on", "with", "when", "only", "every", "first",
    "byte", "page", "cache", "thread", "worker", "queue", "daemon", "fast", "lazy", "cold", "warm",
    "calculator", "parser", "token", "lexer", "matrix", "prime", "sieve", "glider", "mandelbrot",
};

/* Compressible: a generated manual, the way API docs bloat a source tree. */
static void manual(const char *root, int chapters, size_t bytes)
{
    char dir[4096], path[4200], name[64];
    snprintf(dir, sizeof(dir), "%s/docs/manual", root);
    mkdirs(dir);
    const size_t nwords = sizeof(words) / sizeof(words[0]);
    for (int c = 1; c <= chapters; c++) {
        snprintf(name, sizeof(name), "chapter-%02d.html", c);
        FILE *f = create(dir, name, path, sizeof(path));
        rng_state = 0xd0c5u * (uint64_t)c;
        size_t written = (size_t)fprintf(f, "<!doctype html>\n<html><head><title>icicle manual, chapter %d</title></head>\n<body>\n<h1>Chapter %d</h1>\n", c, c);
        int section = 0;
        while (written < bytes) {
            if (rng() % 12 == 0)
                written += (size_t)fprintf(f, "<h2 id=\"s%d-%d\">Section %d.%d</h2>\n", c, section, c, section + 1), section++;
            written += (size_t)fputs("<p>", f);
            int sentence_words = 8 + (int)(rng() % 24);
            for (int w = 0; w < sentence_words; w++) {
                const char *word = words[rng() % nwords];
                if (w)
                    written += (size_t)fprintf(f, " %s", word);
                else /* capitalised */
                    written += (size_t)fprintf(f, "%c%s", word[0] - 'a' + 'A', word + 1);
            }
            written += (size_t)fprintf(f, " (see <a href=\"#s%d-%d\">%d.%d</a>).</p>\n", c, (int)(rng() % (section + 1)),
                                       c, (int)(rng() % (section + 1)) + 1);
        }
        fputs("</body></html>\n", f);
        finish(f, path);
    }
}

/* Half-compressible: smooth value noise with grain, as 8-bit PGM images. */
static void textures(const char *root, int count, int w, int h)
{
    char dir[4096], path[4200], name[64];
    snprintf(dir, sizeof(dir), "%s/textures", root);
    mkdirs(dir);
    enum { G = 33 };
    unsigned char *row = malloc((size_t)w);
    if (!row) {
        fputs("make-assets: out of memory\n", stderr);
        exit(1);
    }
    for (int t = 0; t < count; t++) {
        double grid[G][G];
        rng_state = 0x7e47u + (uint64_t)t;
        for (int i = 0; i < G; i++)
            for (int j = 0; j < G; j++)
                grid[i][j] = (double)(rng() % 200);
        snprintf(name, sizeof(name), "noise-%d.pgm", t);
        FILE *f = create(dir, name, path, sizeof(path));
        fprintf(f, "P5\n%d %d\n255\n", w, h);
        for (int y = 0; y < h; y++) {
            double gy = (double)y * (G - 1) / h;
            int iy = (int)gy;
            double fy = gy - iy;
            for (int x = 0; x < w; x++) {
                double gx = (double)x * (G - 1) / w;
                int ix = (int)gx;
                double fx = gx - ix;
                double top = grid[iy][ix] * (1 - fx) + grid[iy][ix + 1] * fx;
                double bottom = grid[iy + 1][ix] * (1 - fx) + grid[iy + 1][ix + 1] * fx;
                row[x] = (unsigned char)(top * (1 - fy) + bottom * fy + (double)(rng() % 6));
            }
            fwrite(row, 1, (size_t)w, f);
        }
        finish(f, path);
    }
    free(row);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fputs("usage: make-assets DEST [SCALE]\n", stderr);
        return 2;
    }
    int scale = argc == 3 ? atoi(argv[2]) : 1;
    if (scale < 1 || scale > 64) {
        fputs("make-assets: SCALE must be 1..64\n", stderr);
        return 2;
    }
    char root[2048];
    snprintf(root, sizeof(root), "%s/assets", argv[1]);
    mkdirs(root);
    test_vectors(root, 4, (size_t)scale * (6u << 20));
    manual(root, 12, (size_t)scale * (512u << 10));
    textures(root, 2, 2048, 1024 * scale);
    return 0;
}
