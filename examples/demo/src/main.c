/* main.c - icicle's command line.
 *
 *   icicle                       the showcase: every module at work
 *   icicle calc 'PROGRAM'        evaluate a calculator program
 *   icicle peek FILE OFFSET [N]  hex dump of N bytes (default 64) at OFFSET
 *   icicle selftest              known-answer tests of every module
 *   icicle --version | --help
 */
#include "base64.h"
#include "builtins.h"
#include "common.h"
#include "crc32.h"
#include "eval.h"
#include "life.h"
#include "mandel.h"
#include "matrix.h"
#include "peek.h"
#include "primes.h"
#include "prng.h"
#include "rle.h"
#include "sort.h"
#include "strbuf.h"
#include "version.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " ICICLE_NAME " [calc PROGRAM | peek FILE OFFSET [LEN] | selftest | --version]\n"
            "With no arguments, runs the showcase.\n");
}

static const char *const calc_demo[] = {
    "r = 2.5; pi * r^2",
    "hypot(3, 4) + fact(5) / 4",
    "gcd(1071, 462) * 2^10",
    "x = 1.5; clamp(sin(x)^2 + cos(x)^2, 0, 1)",
};

static void show_calculator(void)
{
    puts("calculator");
    Env env;
    env_init(&env);
    for (size_t i = 0; i < ARRAY_LEN(calc_demo); i++) {
        double v;
        if (eval_source(&env, calc_demo[i], &v) != 0)
            die("showcase program %zu failed: %s", i, env.err);
        printf("  %-44s = %g\n", calc_demo[i], v);
    }
    printf("  (%zu builtins, %zu variables, %zu nodes evaluated)\n", builtin_count(), map_len(&env.vars),
           env.steps);
    env_free(&env);
}

static void show_mandelbrot(void)
{
    MandelView v = {.cx = -0.6, .cy = 0.04, .width = 3.0, .cols = 64, .rows = 18, .max_iter = 60};
    StrBuf sb;
    sb_init(&sb);
    long inside = mandel_render(&v, &sb);
    printf("mandelbrot (%dx%d, %d iterations, %ld cells inside)\n", v.cols, v.rows, v.max_iter, inside);
    fputs(sb_cstr(&sb), stdout);
    sb_free(&sb);
}

static void show_life(void)
{
    static const char *const glider[] = {".O.", "..O", "OOO"};
    static const char *const blinker[] = {"OOO"};
    Life g;
    life_init(&g, 32, 12);
    life_place(&g, 1, 1, glider, ARRAY_LEN(glider));
    life_place(&g, 20, 6, blinker, ARRAY_LEN(blinker));
    size_t start = life_population(&g);
    for (int i = 0; i < 40; i++)
        life_step(&g);
    printf("life: glider + blinker on a 32x12 torus, population %zu -> %zu after %ld generations\n", start,
           life_population(&g), g.generation);
    life_free(&g);
}

static void show_numbers(void)
{
    Sieve s;
    sieve_init(&s, 1000000);
    size_t after = 0;
    size_t gap = sieve_max_gap(&s, &after);
    printf("primes: %zu below 1000000, the 10000th is %zu, largest gap %zu after %zu\n", sieve_count(&s),
           sieve_nth(&s, 10000), gap, after);
    sieve_free(&s);

    enum { N = 100000 };
    double *v = xmalloc(N * sizeof(double));
    Prng r;
    prng_seed(&r, 2024);
    for (size_t i = 0; i < N; i++)
        v[i] = prng_unit(&r);
    merge_sort(v, N);
    printf("sort: %d random doubles, sorted=%s, median %.4f, %zu below 0.25\n", N, is_sorted(v, N) ? "yes" : "no",
           sorted_median(v, N), lower_bound(v, N, 0.25));
    free(v);

    Matrix m = matrix_new(4);
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++)
            *matrix_at(&m, i, j) = (double)((i + 1) * (j + 2) % 7) + (i == j ? 3 : 0);
    printf("matrix: 4x4 determinant %.1f, trace %.1f\n", matrix_det(&m), matrix_trace(&m));
    matrix_free(&m);
}

static void show_codecs(void)
{
    const char *msg = "thaw: stubs now, bytes on first read";
    char b64[128];
    base64_encode((const unsigned char *)msg, strlen(msg), b64);
    unsigned char runs[64], packed[128];
    memset(runs, 'z', sizeof(runs));
    memcpy(runs + 20, "thaw", 4);
    size_t packed_len = rle_encode(runs, sizeof(runs), packed);
    printf("codecs: crc32 %08x, base64 %s\n", crc32_of(msg, strlen(msg)), b64);
    printf("        rle %zu -> %zu bytes\n", sizeof(runs), packed_len);
}

static int cmd_calc(const char *src)
{
    Env env;
    double v;
    env_init(&env);
    int rc = eval_source(&env, src, &v);
    if (rc == 0)
        printf("%.15g\n", v);
    else
        fprintf(stderr, ICICLE_NAME ": %s\n", env.err);
    env_free(&env);
    return rc == 0 ? 0 : 1;
}

static int cmd_peek(int argc, char **argv)
{
    uint64_t offset, len = 64;
    if (argc < 2 || argc > 3 || parse_u64(argv[1], &offset) != 0 || (argc == 3 && parse_u64(argv[2], &len) != 0)) {
        usage(stderr);
        return 2;
    }
    if (peek_file(argv[0], offset, (size_t)len, stdout) != 0) {
        fprintf(stderr, ICICLE_NAME ": %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    return 0;
}

static int failures;

static void check(int ok, const char *what)
{
    printf("  %-40s %s\n", what, ok ? "ok" : "FAILED");
    failures += !ok;
}

static int cmd_selftest(void)
{
    puts("selftest");
    check(crc32_of("123456789", 9) == 0xCBF43926u, "crc32 check value");

    char enc[32];
    unsigned char dec[32];
    base64_encode((const unsigned char *)"foobar", 6, enc);
    check(strcmp(enc, "Zm9vYmFy") == 0, "base64 encode");
    check(base64_decode("Zm9vYg==", dec) == 4 && memcmp(dec, "foob", 4) == 0, "base64 decode with padding");
    check(base64_decode("Zm9v!mFy", dec) < 0, "base64 rejects bad input");

    unsigned char raw[300], enc2[600], back[300];
    memset(raw, 7, sizeof(raw));
    size_t n = rle_encode(raw, sizeof(raw), enc2);
    check(n == 4 && rle_decode(enc2, n, back, sizeof(back)) == sizeof(raw) && !memcmp(raw, back, sizeof(raw)),
          "rle round trip of a 300-byte run");

    Sieve s;
    sieve_init(&s, 100);
    check(sieve_count(&s) == 25 && sieve_nth(&s, 25) == 97, "25 primes below 100");
    sieve_free(&s);

    Env env;
    double v = 0;
    env_init(&env);
    check(eval_source(&env, "2 + 3 * 2 ^ 3 ^ 2 / 64 - -1", &v) == 0 && fabs(v - 27) < 1e-9, "precedence");
    check(eval_source(&env, "a = 6; b = a * 7; b", &v) == 0 && v == 42, "variables");
    check(eval_source(&env, "1 / 0", &v) != 0 && strstr(env.err, "division"), "division by zero is an error");
    env.failed = 0;
    check(eval_source(&env, "max(1, ", &v) != 0 && strstr(env.err, "line 1"), "syntax error has a position");
    env_free(&env);

    Matrix m = matrix_new(3);
    matrix_identity(&m);
    *matrix_at(&m, 0, 1) = 5;
    *matrix_at(&m, 2, 2) = 4;
    check(fabs(matrix_det(&m) - 4) < 1e-12, "determinant");
    matrix_free(&m);

    double d[] = {5, 3, 9, 1, 1, 8};
    merge_sort(d, ARRAY_LEN(d));
    check(is_sorted(d, ARRAY_LEN(d)) && d[0] == 1 && d[5] == 9, "merge sort");

    Prng a, b;
    prng_seed(&a, 1);
    prng_seed(&b, 1);
    check(prng_next(&a) == prng_next(&b) && prng_below(&a, 10) < 10, "prng is deterministic");

    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2) {
        const char *cmd = argv[1];
        if (!strcmp(cmd, "--version")) {
            puts(ICICLE_NAME " " ICICLE_VERSION);
            return 0;
        }
        if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(cmd, "calc") && argc == 3)
            return cmd_calc(argv[2]);
        if (!strcmp(cmd, "peek"))
            return cmd_peek(argc - 2, argv + 2);
        if (!strcmp(cmd, "selftest") && argc == 2)
            return cmd_selftest();
        usage(stderr);
        return 2;
    }
    printf(ICICLE_NAME " " ICICLE_VERSION " - " ICICLE_TAGLINE "\n\n");
    show_calculator();
    show_mandelbrot();
    show_life();
    show_numbers();
    show_codecs();
    return 0;
}
