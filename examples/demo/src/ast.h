/* ast.h - syntax tree of the calculator language, allocated in an Arena. */
#ifndef ICICLE_AST_H
#define ICICLE_AST_H

#include "arena.h"
#include "strbuf.h"

#include <stddef.h>

typedef enum {
    AST_NUM,     /* num */
    AST_VAR,     /* name */
    AST_NEG,     /* -lhs */
    AST_BIN,     /* lhs op rhs, op one of + - * / % ^ */
    AST_CALL,    /* name(args...) */
    AST_ASSIGN   /* name = lhs */
} AstKind;

typedef struct Ast Ast;

struct Ast {
    AstKind kind;
    double num;
    const char *name;
    char op;
    Ast *lhs;
    Ast *rhs;
    Ast **args;
    size_t nargs;
};

Ast *ast_num(Arena *a, double v);
Ast *ast_var(Arena *a, const char *name);
Ast *ast_neg(Arena *a, Ast *operand);
Ast *ast_bin(Arena *a, char op, Ast *lhs, Ast *rhs);
Ast *ast_call(Arena *a, const char *name, Ast **args, size_t nargs);
Ast *ast_assign(Arena *a, const char *name, Ast *value);

/* Appends a fully parenthesised rendering, e.g. "(x = (1 + (2 * 3)))". */
void ast_print(const Ast *node, StrBuf *out);
/* Number of nodes in the tree. */
size_t ast_count(const Ast *node);
/* Height of the tree (a leaf is 1). */
size_t ast_depth(const Ast *node);

#endif
