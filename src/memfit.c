/* Theil-Sen: the median of pairwise slopes. Unlike least squares it ignores up to ~29 % of wild points (a one-off
 * spike, a garbage-collection sawtooth, a sampling hiccup), and a single step in the data only moves it when the step
 * sits near the middle of the window (see sl_mem_judge for why that case still comes out flat). */
#include "memfit.h"

#include <stdint.h>
#include <stdio.h>

size_t sl__mem_warmup(size_t n) {
    size_t skip = (n + 4) / 5; /* ceil(n / 5) */
    return skip < 1 ? 1 : skip;
}

static void s_swap(double *a, double *b) {
    double t = *a;
    *a = *b;
    *b = t;
}

/* Hoare's selection with a median-of-three pivot. */
double sl__select(double *v, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < v[lo])
            s_swap(&v[mid], &v[lo]);
        if (v[hi] < v[lo])
            s_swap(&v[hi], &v[lo]);
        if (v[hi] < v[mid])
            s_swap(&v[hi], &v[mid]);
        double pivot = v[mid];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                s_swap(&v[i], &v[j]);
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

double sl__median(double *v, size_t n) {
    size_t half = n / 2;
    double upper = sl__select(v, n, half);
    if (n % 2)
        return upper;
    /* After selection everything below index half is <= upper; the lower middle is the largest of them. */
    double lower = v[0];
    for (size_t i = 1; i < half; i++)
        if (v[i] > lower)
            lower = v[i];
    return (lower + upper) / 2;
}

static uint64_t s_next(uint64_t *state) {
    uint64_t x = *state; /* xorshift64: a fixed seed makes the sampled pairs, hence the verdict, reproducible */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

bool sl__theil_sen(const double *x, const double *y, size_t n, double *scratch, double *slope, double *intercept) {
    size_t m = 0;
    if (n < 2)
        return false;
    if (n <= SIZE_MAX / n && n * (n - 1) / 2 <= SL__FIT_MAX_PAIRS) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (x[j] != x[i])
                    scratch[m++] = (y[j] - y[i]) / (x[j] - x[i]);
    } else {
        uint64_t state = 0x9e3779b97f4a7c15u;
        for (size_t tries = 0; m < SL__FIT_MAX_PAIRS && tries < 4 * SL__FIT_MAX_PAIRS; tries++) {
            size_t i = (size_t)(s_next(&state) % n), j = (size_t)(s_next(&state) % n);
            if (x[j] != x[i])
                scratch[m++] = (y[j] - y[i]) / (x[j] - x[i]);
        }
    }
    if (m == 0)
        return false;
    double b = sl__median(scratch, m);
    for (size_t i = 0; i < n; i++)
        scratch[i] = y[i] - b * x[i];
    *slope = b;
    *intercept = sl__median(scratch, n);
    return true;
}

char *sl__fmt_bytes(double bytes, char *buf, size_t size) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = bytes < 0 ? -bytes : bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    const char *sign = bytes < 0 ? "-" : "";
    if (u == 0)
        snprintf(buf, size, "%s%.0f B", sign, v);
    else if (v < 9.995)
        snprintf(buf, size, "%s%.2f %s", sign, v, units[u]);
    else if (v < 99.95)
        snprintf(buf, size, "%s%.1f %s", sign, v, units[u]);
    else
        snprintf(buf, size, "%s%.0f %s", sign, v, units[u]);
    return buf;
}

char *sl__fmt_duration(double seconds, char *buf, size_t size) {
    if (!(seconds >= 0))
        seconds = 0;
    if (seconds < 90) {
        snprintf(buf, size, "%.0f s", seconds);
    } else if (seconds < 90 * 60) {
        snprintf(buf, size, "%.0f min", seconds / 60);
    } else if (seconds < 48 * 3600) {
        unsigned long long m = (unsigned long long)(seconds / 60 + 0.5);
        snprintf(buf, size, "%llu h %02llu min", m / 60, m % 60);
    } else if (seconds < 1e9) {
        unsigned long long h = (unsigned long long)(seconds / 3600 + 0.5);
        snprintf(buf, size, "%llu d %02llu h", h / 24, h % 24);
    } else {
        snprintf(buf, size, "more than 30 years");
    }
    return buf;
}
