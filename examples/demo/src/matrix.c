/* matrix.c - the few dense operations the showcase needs. */
#include "matrix.h"
#include "common.h"

#include <math.h>
#include <string.h>

Matrix matrix_new(size_t n)
{
    Matrix m;
    m.n = n;
    m.a = xcalloc(n * n, sizeof(double));
    return m;
}

void matrix_free(Matrix *m)
{
    free(m->a);
    m->a = NULL;
    m->n = 0;
}

double *matrix_at(Matrix *m, size_t row, size_t col)
{
    return &m->a[row * m->n + col];
}

void matrix_identity(Matrix *m)
{
    memset(m->a, 0, m->n * m->n * sizeof(double));
    for (size_t i = 0; i < m->n; i++)
        m->a[i * m->n + i] = 1;
}

void matrix_mul(const Matrix *x, const Matrix *y, Matrix *out)
{
    size_t n = x->n;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t k = 0; k < n; k++)
                s += x->a[i * n + k] * y->a[k * n + j];
            out->a[i * n + j] = s;
        }
    }
}

double matrix_det(const Matrix *m)
{
    size_t n = m->n;
    double *w = xmalloc(n * n * sizeof(double));
    memcpy(w, m->a, n * n * sizeof(double));
    double det = 1;
    for (size_t col = 0; col < n; col++) {
        size_t pivot = col;
        for (size_t r = col + 1; r < n; r++)
            if (fabs(w[r * n + col]) > fabs(w[pivot * n + col]))
                pivot = r;
        if (w[pivot * n + col] == 0) {
            free(w);
            return 0;
        }
        if (pivot != col) {
            for (size_t k = 0; k < n; k++) {
                double t = w[col * n + k];
                w[col * n + k] = w[pivot * n + k];
                w[pivot * n + k] = t;
            }
            det = -det;
        }
        det *= w[col * n + col];
        for (size_t r = col + 1; r < n; r++) {
            double f = w[r * n + col] / w[col * n + col];
            for (size_t k = col; k < n; k++)
                w[r * n + k] -= f * w[col * n + k];
        }
    }
    free(w);
    return det;
}

double matrix_trace(const Matrix *m)
{
    double t = 0;
    for (size_t i = 0; i < m->n; i++)
        t += m->a[i * m->n + i];
    return t;
}
