/* parser.c - precedence climbing (Pratt) parser.
 *
 * Binding powers, loosest first:
 *   =        right-assoc, only after a bare name
 *   + -      left
 *   * / %    left
 *   unary -
 *   ^        right
 *   calls, parentheses, atoms
 */
#include "parser.h"
#include "lexer.h"
#include "strbuf.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    Lexer lx;
    Token cur;
    Token next;
    Arena *arena;
    char *err;
    size_t errlen;
    jmp_buf fail;
} Parser;

static void bump(Parser *p)
{
    p->cur = p->next;
    p->next = lexer_next(&p->lx);
}

static _Noreturn void syntax_error(Parser *p, const char *what)
{
    snprintf(p->err, p->errlen, "line %d col %d: %s, found %s \"%.*s\"", p->cur.line, p->cur.col,
             what, tok_name(p->cur.kind), (int)p->cur.len, p->cur.start);
    longjmp(p->fail, 1);
}

static void expect(Parser *p, TokKind kind, const char *what)
{
    if (p->cur.kind != kind)
        syntax_error(p, what);
    bump(p);
}

static int infix_power(TokKind k, int *right_assoc)
{
    *right_assoc = 0;
    switch (k) {
    case TOK_PLUS:
    case TOK_MINUS: return 10;
    case TOK_STAR:
    case TOK_SLASH:
    case TOK_PERCENT: return 20;
    case TOK_CARET: *right_assoc = 1; return 40;
    default: return -1;
    }
}

static char op_char(TokKind k)
{
    switch (k) {
    case TOK_PLUS: return '+';
    case TOK_MINUS: return '-';
    case TOK_STAR: return '*';
    case TOK_SLASH: return '/';
    case TOK_PERCENT: return '%';
    case TOK_CARET: return '^';
    default: return '?';
    }
}

static Ast *expr(Parser *p, int min_power);

static Ast *call_args(Parser *p, const char *name)
{
    /* The argument list grows inside the arena, so a syntax error (a longjmp
     * out of here) leaks nothing. */
    size_t n = 0, cap = 4;
    Ast **list = arena_alloc(p->arena, cap * sizeof(Ast *));
    bump(p); /* '(' */
    if (p->cur.kind != TOK_RPAREN) {
        for (;;) {
            if (n == cap) {
                Ast **bigger = arena_alloc(p->arena, 2 * cap * sizeof(Ast *));
                memcpy(bigger, list, cap * sizeof(Ast *));
                list = bigger;
                cap *= 2;
            }
            list[n++] = expr(p, 0);
            if (p->cur.kind != TOK_COMMA)
                break;
            bump(p);
        }
    }
    expect(p, TOK_RPAREN, "expected ')' after arguments");
    return ast_call(p->arena, name, list, n);
}

static Ast *prefix(Parser *p)
{
    Token t = p->cur;
    switch (t.kind) {
    case TOK_NUM:
        bump(p);
        return ast_num(p->arena, t.num);
    case TOK_IDENT: {
        const char *name = arena_strndup(p->arena, t.start, t.len);
        bump(p);
        if (p->cur.kind == TOK_LPAREN)
            return call_args(p, name);
        return ast_var(p->arena, name);
    }
    case TOK_MINUS:
        bump(p);
        return ast_neg(p->arena, expr(p, 30));
    case TOK_PLUS:
        bump(p);
        return expr(p, 30);
    case TOK_LPAREN: {
        bump(p);
        Ast *inner = expr(p, 0);
        expect(p, TOK_RPAREN, "expected ')'");
        return inner;
    }
    default:
        syntax_error(p, "expected a number, a name or '('");
    }
}

static Ast *expr(Parser *p, int min_power)
{
    Ast *lhs = prefix(p);
    for (;;) {
        int right_assoc;
        int power = infix_power(p->cur.kind, &right_assoc);
        if (power < 0 || power < min_power)
            return lhs;
        char op = op_char(p->cur.kind);
        bump(p);
        Ast *rhs = expr(p, right_assoc ? power : power + 1);
        lhs = ast_bin(p->arena, op, lhs, rhs);
    }
}

static Ast *statement(Parser *p)
{
    if (p->cur.kind == TOK_IDENT && p->next.kind == TOK_ASSIGN) {
        const char *name = arena_strndup(p->arena, p->cur.start, p->cur.len);
        bump(p);
        bump(p);
        return ast_assign(p->arena, name, expr(p, 0));
    }
    return expr(p, 0);
}

int parse_program(const char *src, Arena *arena, Vec *stmts, char *err, size_t errlen)
{
    Parser p;
    memset(&p, 0, sizeof(p));
    lexer_init(&p.lx, src);
    p.arena = arena;
    p.err = err;
    p.errlen = errlen;
    p.next = lexer_next(&p.lx);
    bump(&p);
    if (setjmp(p.fail))
        return -1;
    while (p.cur.kind != TOK_EOF) {
        if (p.cur.kind == TOK_SEMI) {
            bump(&p);
            continue;
        }
        vec_push(stmts, statement(&p));
        if (p.cur.kind != TOK_SEMI && p.cur.kind != TOK_EOF)
            syntax_error(&p, "expected ';' between statements");
    }
    return 0;
}
