/* lexer.h - tokens of the calculator language.
 *
 *   program   := statement (';' statement)* [';']
 *   statement := IDENT '=' expr | expr
 *   expr      := numbers, names, calls f(a, b), + - * / % ^, parentheses
 *
 * Comments run from '#' to the end of the line.
 */
#ifndef ICICLE_LEXER_H
#define ICICLE_LEXER_H

#include <stddef.h>

typedef enum {
    TOK_NUM,
    TOK_IDENT,
    TOK_PLUS,
    TOK_MINUS,
    TOK_STAR,
    TOK_SLASH,
    TOK_PERCENT,
    TOK_CARET,
    TOK_LPAREN,
    TOK_RPAREN,
    TOK_COMMA,
    TOK_ASSIGN,
    TOK_SEMI,
    TOK_EOF,
    TOK_ERROR
} TokKind;

typedef struct {
    TokKind kind;
    const char *start;  /* points into the source text */
    size_t len;
    double num;         /* TOK_NUM only */
    int line;
    int col;
} Token;

typedef struct {
    const char *p;
    int line;
    int col;
} Lexer;

void lexer_init(Lexer *lx, const char *src);
Token lexer_next(Lexer *lx);
const char *tok_name(TokKind kind);

#endif
