/* lexer.c - hand-written scanner for the calculator language. */
#include "lexer.h"

#include <ctype.h>
#include <stdlib.h>

void lexer_init(Lexer *lx, const char *src)
{
    lx->p = src;
    lx->line = 1;
    lx->col = 1;
}

static void advance(Lexer *lx)
{
    if (*lx->p == '\n') {
        lx->line++;
        lx->col = 1;
    } else {
        lx->col++;
    }
    lx->p++;
}

static void skip_space_and_comments(Lexer *lx)
{
    for (;;) {
        while (*lx->p && isspace((unsigned char)*lx->p))
            advance(lx);
        if (*lx->p != '#')
            return;
        while (*lx->p && *lx->p != '\n')
            advance(lx);
    }
}

static Token make(Lexer *lx, TokKind kind, const char *start, int line, int col)
{
    Token t;
    t.kind = kind;
    t.start = start;
    t.len = (size_t)(lx->p - start);
    t.num = 0;
    t.line = line;
    t.col = col;
    return t;
}

Token lexer_next(Lexer *lx)
{
    skip_space_and_comments(lx);
    const char *start = lx->p;
    int line = lx->line, col = lx->col;
    char c = *lx->p;

    if (c == '\0')
        return make(lx, TOK_EOF, start, line, col);

    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)lx->p[1]))) {
        char *end;
        double v = strtod(start, &end);
        while (lx->p < end)
            advance(lx);
        Token t = make(lx, TOK_NUM, start, line, col);
        t.num = v;
        return t;
    }

    if (isalpha((unsigned char)c) || c == '_') {
        while (isalnum((unsigned char)*lx->p) || *lx->p == '_')
            advance(lx);
        return make(lx, TOK_IDENT, start, line, col);
    }

    advance(lx);
    switch (c) {
    case '+': return make(lx, TOK_PLUS, start, line, col);
    case '-': return make(lx, TOK_MINUS, start, line, col);
    case '*': return make(lx, TOK_STAR, start, line, col);
    case '/': return make(lx, TOK_SLASH, start, line, col);
    case '%': return make(lx, TOK_PERCENT, start, line, col);
    case '^': return make(lx, TOK_CARET, start, line, col);
    case '(': return make(lx, TOK_LPAREN, start, line, col);
    case ')': return make(lx, TOK_RPAREN, start, line, col);
    case ',': return make(lx, TOK_COMMA, start, line, col);
    case '=': return make(lx, TOK_ASSIGN, start, line, col);
    case ';': return make(lx, TOK_SEMI, start, line, col);
    default: return make(lx, TOK_ERROR, start, line, col);
    }
}

const char *tok_name(TokKind kind)
{
    static const char *const names[] = {
        [TOK_NUM] = "number",    [TOK_IDENT] = "name",   [TOK_PLUS] = "'+'",
        [TOK_MINUS] = "'-'",     [TOK_STAR] = "'*'",     [TOK_SLASH] = "'/'",
        [TOK_PERCENT] = "'%'",   [TOK_CARET] = "'^'",    [TOK_LPAREN] = "'('",
        [TOK_RPAREN] = "')'",    [TOK_COMMA] = "','",    [TOK_ASSIGN] = "'='",
        [TOK_SEMI] = "';'",      [TOK_EOF] = "end of input",
        [TOK_ERROR] = "unexpected character",
    };
    return names[kind];
}
