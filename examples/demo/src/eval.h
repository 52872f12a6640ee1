/* eval.h - tree-walking evaluator for the calculator language. */
#ifndef ICICLE_EVAL_H
#define ICICLE_EVAL_H

#include "ast.h"
#include "hashmap.h"

typedef struct {
    HashMap vars;      /* pi and e are predefined */
    char err[160];     /* set when failed != 0 */
    int failed;
    size_t steps;      /* nodes evaluated, for statistics */
} Env;

void env_init(Env *env);
void env_free(Env *env);
/* Evaluates one statement. On error sets env->failed and env->err and
 * returns NAN; the caller clears `failed` to go on. */
double eval(Env *env, const Ast *node);
/* Parses and evaluates a whole program; returns the last statement's value.
 * On error returns -1 with a message in env->err. */
int eval_source(Env *env, const char *src, double *last);

#endif
