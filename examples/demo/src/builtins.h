/* builtins.h - the calculator's function library. */
#ifndef ICICLE_BUILTINS_H
#define ICICLE_BUILTINS_H

#include <stddef.h>

typedef double (*BuiltinFn)(const double *args);

typedef struct {
    const char *name;
    size_t arity;
    BuiltinFn fn;
    const char *help;
} Builtin;

/* The function called `name`, or NULL. */
const Builtin *builtin_find(const char *name);
size_t builtin_count(void);
const Builtin *builtin_at(size_t i);

#endif
