/* eval.c - evaluator: variables, operators, builtin calls. */
#include "eval.h"
#include "builtins.h"
#include "parser.h"
#include "vec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_ARGS 8

void env_init(Env *env)
{
    map_init(&env->vars);
    map_set(&env->vars, "pi", 3.14159265358979323846);
    map_set(&env->vars, "e", 2.71828182845904523536);
    env->err[0] = '\0';
    env->failed = 0;
    env->steps = 0;
}

void env_free(Env *env)
{
    map_free(&env->vars);
}

static double fail(Env *env, const char *fmt, const char *name)
{
    if (!env->failed) {
        snprintf(env->err, sizeof(env->err), fmt, name);
        env->failed = 1;
    }
    return NAN;
}

static double binop(Env *env, char op, double a, double b)
{
    switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    case '/':
        if (b == 0)
            return fail(env, "division by zero%s", "");
        return a / b;
    case '%':
        if (b == 0)
            return fail(env, "modulo by zero%s", "");
        return fmod(a, b);
    case '^': return pow(a, b);
    default: return fail(env, "unknown operator%s", "");
    }
}

double eval(Env *env, const Ast *n)
{
    if (env->failed)
        return NAN;
    env->steps++;
    switch (n->kind) {
    case AST_NUM:
        return n->num;
    case AST_VAR: {
        double v;
        if (!map_get(&env->vars, n->name, &v))
            return fail(env, "unknown variable '%s'", n->name);
        return v;
    }
    case AST_NEG:
        return -eval(env, n->lhs);
    case AST_BIN: {
        double a = eval(env, n->lhs);
        double b = eval(env, n->rhs);
        return env->failed ? NAN : binop(env, n->op, a, b);
    }
    case AST_CALL: {
        const Builtin *b = builtin_find(n->name);
        if (!b)
            return fail(env, "unknown function '%s'", n->name);
        if (n->nargs != b->arity || n->nargs > MAX_ARGS)
            return fail(env, "wrong number of arguments to '%s'", n->name);
        double args[MAX_ARGS];
        for (size_t i = 0; i < n->nargs; i++)
            args[i] = eval(env, n->args[i]);
        return env->failed ? NAN : b->fn(args);
    }
    case AST_ASSIGN: {
        double v = eval(env, n->lhs);
        if (!env->failed)
            map_set(&env->vars, n->name, v);
        return v;
    }
    }
    return fail(env, "corrupt syntax tree%s", "");
}

int eval_source(Env *env, const char *src, double *last)
{
    Arena arena;
    Vec stmts;
    arena_init(&arena, 8192);
    vec_init(&stmts);
    int rc = parse_program(src, &arena, &stmts, env->err, sizeof(env->err));
    double v = NAN;
    if (rc == 0) {
        for (size_t i = 0; i < stmts.len && !env->failed; i++)
            v = eval(env, stmts.items[i]);
        if (env->failed)
            rc = -1;
    }
    if (rc == 0 && last)
        *last = v;
    vec_free(&stmts);
    arena_free(&arena);
    return rc;
}
