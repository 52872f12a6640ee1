/* parser.h - Pratt parser from source text to a list of statements. */
#ifndef ICICLE_PARSER_H
#define ICICLE_PARSER_H

#include "arena.h"
#include "ast.h"
#include "vec.h"

#include <stddef.h>

/* Parses `src` into `stmts` (a Vec of Ast*, nodes allocated in `arena`).
 * Returns 0 on success; on a syntax error returns -1 and writes a message
 * with line and column into err[errlen]. */
int parse_program(const char *src, Arena *arena, Vec *stmts, char *err, size_t errlen);

#endif
