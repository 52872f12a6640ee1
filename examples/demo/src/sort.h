/* sort.h - stable merge sort of doubles, and a few order statistics. */
#ifndef ICICLE_SORT_H
#define ICICLE_SORT_H

#include <stddef.h>

void merge_sort(double *v, size_t n);
int is_sorted(const double *v, size_t n);
/* Median of a sorted array (n > 0). */
double sorted_median(const double *v, size_t n);
/* Index of the first element >= x in a sorted array (n if none). */
size_t lower_bound(const double *v, size_t n, double x);

#endif
