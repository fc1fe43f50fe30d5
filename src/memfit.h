/* Robust line fitting and human-readable numbers shared by the memory verdict (memwatch.c) and its chart
 * (memchart.c). */
#ifndef SLUICE_MEMFIT_H
#define SLUICE_MEMFIT_H

#include "sluice/memwatch.h"

#include <stdbool.h>
#include <stddef.h>

/* Pairwise slopes kept for one Theil-Sen fit: every pair of up to ~512 points, a deterministic sample beyond. */
#define SL__FIT_MAX_PAIRS ((size_t)1 << 17)

/* Samples skipped at the start of a timeline of n samples before fitting: the first 20 %, and at least one. */
size_t sl__mem_warmup(size_t n);

/* Theil-Sen fit of y = intercept + slope * x: slope is the median of the slopes between all pairs of points with
 * different x (or a fixed, deterministic sample of SL__FIT_MAX_PAIRS pairs when there are more), intercept the median
 * of y - slope * x. scratch holds at least max(n, SL__FIT_MAX_PAIRS) doubles. Returns false (slope and intercept
 * untouched) when no two points have different x. */
bool sl__theil_sen(const double *x, const double *y, size_t n, double *scratch, double *slope, double *intercept);

/* The k-th smallest of v[0..n) (k < n); reorders v. */
double sl__select(double *v, size_t n, size_t k);
/* Median of v[0..n) (n > 0); reorders v. */
double sl__median(double *v, size_t n);

/* "512 B", "1.5 KiB", "12.3 MiB", "1.02 GiB"... (binary units, three significant digits). Returns buf. */
char *sl__fmt_bytes(double bytes, char *buf, size_t size);
/* "42 s", "17 min", "3 h 05 min", "2 d 04 h". Returns buf. */
char *sl__fmt_duration(double seconds, char *buf, size_t size);

#endif
