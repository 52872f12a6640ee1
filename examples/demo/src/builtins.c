/* builtins.c - math functions callable from the calculator. */
#include "builtins.h"

#include <math.h>
#include <string.h>

static double b_sqrt(const double *a) { return sqrt(a[0]); }
static double b_abs(const double *a) { return fabs(a[0]); }
static double b_floor(const double *a) { return floor(a[0]); }
static double b_ceil(const double *a) { return ceil(a[0]); }
static double b_round(const double *a) { return round(a[0]); }
static double b_exp(const double *a) { return exp(a[0]); }
static double b_ln(const double *a) { return log(a[0]); }
static double b_log10(const double *a) { return log10(a[0]); }
static double b_sin(const double *a) { return sin(a[0]); }
static double b_cos(const double *a) { return cos(a[0]); }
static double b_tan(const double *a) { return tan(a[0]); }
static double b_min(const double *a) { return a[0] < a[1] ? a[0] : a[1]; }
static double b_max(const double *a) { return a[0] > a[1] ? a[0] : a[1]; }
static double b_hypot(const double *a) { return hypot(a[0], a[1]); }
static double b_atan2(const double *a) { return atan2(a[0], a[1]); }

static double b_clamp(const double *a)
{
    double v = a[0], lo = a[1], hi = a[2];
    return v < lo ? lo : v > hi ? hi : v;
}

static double b_fact(const double *a)
{
    double n = floor(a[0]), r = 1;
    if (n < 0)
        return NAN;
    for (double i = 2; i <= n; i++)
        r *= i;
    return r;
}

static double b_gcd(const double *a)
{
    unsigned long long x = (unsigned long long)fabs(a[0]);
    unsigned long long y = (unsigned long long)fabs(a[1]);
    while (y) {
        unsigned long long t = x % y;
        x = y;
        y = t;
    }
    return (double)x;
}

static const Builtin table[] = {
    {"sqrt", 1, b_sqrt, "square root"},
    {"abs", 1, b_abs, "absolute value"},
    {"floor", 1, b_floor, "round down"},
    {"ceil", 1, b_ceil, "round up"},
    {"round", 1, b_round, "round to nearest"},
    {"exp", 1, b_exp, "e to the power x"},
    {"ln", 1, b_ln, "natural logarithm"},
    {"log10", 1, b_log10, "base-10 logarithm"},
    {"sin", 1, b_sin, "sine (radians)"},
    {"cos", 1, b_cos, "cosine (radians)"},
    {"tan", 1, b_tan, "tangent (radians)"},
    {"min", 2, b_min, "smaller of two"},
    {"max", 2, b_max, "larger of two"},
    {"hypot", 2, b_hypot, "sqrt(x^2 + y^2)"},
    {"atan2", 2, b_atan2, "angle of (x, y)"},
    {"clamp", 3, b_clamp, "clamp(x, lo, hi)"},
    {"fact", 1, b_fact, "factorial"},
    {"gcd", 2, b_gcd, "greatest common divisor"},
};

const Builtin *builtin_find(const char *name)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

size_t builtin_count(void)
{
    return sizeof(table) / sizeof(table[0]);
}

const Builtin *builtin_at(size_t i)
{
    return i < builtin_count() ? &table[i] : NULL;
}
