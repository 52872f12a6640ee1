/* ast.c - node constructors and printers. */
#include "ast.h"

#include <string.h>

static Ast *node(Arena *a, AstKind kind)
{
    Ast *n = arena_alloc(a, sizeof(Ast));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    return n;
}

Ast *ast_num(Arena *a, double v)
{
    Ast *n = node(a, AST_NUM);
    n->num = v;
    return n;
}

Ast *ast_var(Arena *a, const char *name)
{
    Ast *n = node(a, AST_VAR);
    n->name = name;
    return n;
}

Ast *ast_neg(Arena *a, Ast *operand)
{
    Ast *n = node(a, AST_NEG);
    n->lhs = operand;
    return n;
}

Ast *ast_bin(Arena *a, char op, Ast *lhs, Ast *rhs)
{
    Ast *n = node(a, AST_BIN);
    n->op = op;
    n->lhs = lhs;
    n->rhs = rhs;
    return n;
}

Ast *ast_call(Arena *a, const char *name, Ast **args, size_t nargs)
{
    Ast *n = node(a, AST_CALL);
    n->name = name;
    n->args = args;
    n->nargs = nargs;
    return n;
}

Ast *ast_assign(Arena *a, const char *name, Ast *value)
{
    Ast *n = node(a, AST_ASSIGN);
    n->name = name;
    n->lhs = value;
    return n;
}

void ast_print(const Ast *n, StrBuf *out)
{
    switch (n->kind) {
    case AST_NUM:
        sb_printf(out, "%g", n->num);
        break;
    case AST_VAR:
        sb_puts(out, n->name);
        break;
    case AST_NEG:
        sb_puts(out, "(-");
        ast_print(n->lhs, out);
        sb_putc(out, ')');
        break;
    case AST_BIN:
        sb_putc(out, '(');
        ast_print(n->lhs, out);
        sb_printf(out, " %c ", n->op);
        ast_print(n->rhs, out);
        sb_putc(out, ')');
        break;
    case AST_CALL:
        sb_printf(out, "%s(", n->name);
        for (size_t i = 0; i < n->nargs; i++) {
            if (i)
                sb_puts(out, ", ");
            ast_print(n->args[i], out);
        }
        sb_putc(out, ')');
        break;
    case AST_ASSIGN:
        sb_printf(out, "(%s = ", n->name);
        ast_print(n->lhs, out);
        sb_putc(out, ')');
        break;
    }
}

size_t ast_count(const Ast *n)
{
    if (!n)
        return 0;
    size_t c = 1 + ast_count(n->lhs) + ast_count(n->rhs);
    for (size_t i = 0; i < n->nargs; i++)
        c += ast_count(n->args[i]);
    return c;
}

size_t ast_depth(const Ast *n)
{
    if (!n)
        return 0;
    size_t d = ast_depth(n->lhs);
    size_t r = ast_depth(n->rhs);
    if (r > d)
        d = r;
    for (size_t i = 0; i < n->nargs; i++) {
        size_t ad = ast_depth(n->args[i]);
        if (ad > d)
            d = ad;
    }
    return d + 1;
}
