/* matrix.h - small dense square matrices of doubles. */
#ifndef ICICLE_MATRIX_H
#define ICICLE_MATRIX_H

#include <stddef.h>

typedef struct {
    size_t n;
    double *a;  /* row-major, n * n */
} Matrix;

Matrix matrix_new(size_t n);
void matrix_free(Matrix *m);
double *matrix_at(Matrix *m, size_t row, size_t col);
void matrix_identity(Matrix *m);
/* out = x * y; all three n x n, out distinct from x and y. */
void matrix_mul(const Matrix *x, const Matrix *y, Matrix *out);
/* Determinant by Gaussian elimination with partial pivoting. */
double matrix_det(const Matrix *m);
/* Trace (sum of the diagonal). */
double matrix_trace(const Matrix *m);

#endif
