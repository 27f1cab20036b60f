/*
 * benchclock.h: what the C benchmarks (bench_rules, bench_data) time with
 * and sort their samples by.
 */
#ifndef SMTPWALL_BENCHCLOCK_H
#define SMTPWALL_BENCHCLOCK_H

#include <time.h>

/* Monotonic seconds. */
static inline double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* qsort comparator for doubles, ascending. */
static inline int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#endif
