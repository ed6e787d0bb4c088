/* SPDX-License-Identifier: MIT */
/*
 * Timing and reporting helpers shared by rxp-perf and the peer programs
 * (C and C++). Header-only: every function is static inline.
 *
 * Result line (--json), one object per run, the format run-peers.sh and
 * report.py read:
 *   {"system":..,"scenario":..,"size":..,"window":..,"iters":..,
 *    "min_us":..,"p50_us":..,"p99_us":..,"p999_us":..,"max_us":..,
 *    "avg_us":..,"mb_s":..,"calls_s":..}
 * mb_s counts the bytes moved in both directions (request + response) of
 * an echo, or the bytes sent for a one-way stream; calls_s counts round
 * trips (or messages of a stream) per second. A field that does not apply
 * is null.
 */
#ifndef RXP_PERF_STATS_H
#define RXP_PERF_STATS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t perf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int perf__cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct perf_summary {
	double p50_us, p99_us, p999_us, avg_us, min_us, max_us;
};

/* Sorts @ns in place. Nearest-rank percentiles. */
static inline struct perf_summary perf_summarize(uint64_t *ns, size_t n)
{
	struct perf_summary s;
	double sum = 0;
	size_t i;

	memset(&s, 0, sizeof(s));
	if (!n)
		return s;
	qsort(ns, n, sizeof(*ns), perf__cmp_u64);
	for (i = 0; i < n; i++)
		sum += (double)ns[i];
	s.avg_us = sum / (double)n / 1e3;
	s.p50_us = (double)ns[(size_t)ceil(0.50 * (double)n) - 1] / 1e3;
	s.p99_us = (double)ns[(size_t)ceil(0.99 * (double)n) - 1] / 1e3;
	s.p999_us = (double)ns[(size_t)ceil(0.999 * (double)n) - 1] / 1e3;
	s.min_us = (double)ns[0] / 1e3;
	s.max_us = (double)ns[n - 1] / 1e3;
	return s;
}

/* Prints a number, or null for a negative one (field does not apply). */
static inline void perf__num(FILE *f, const char *key, double v, int last)
{
	if (v < 0 || isnan(v))
		fprintf(f, "\"%s\":null%s", key, last ? "" : ",");
	else
		fprintf(f, "\"%s\":%.3f%s", key, v, last ? "" : ",");
}

/* One JSON result line; pass -1 for fields that do not apply. */
static inline void perf_print_json(FILE *f, const char *system,
				   const char *scenario, size_t size,
				   unsigned window, size_t iters,
				   const struct perf_summary *s, double mb_s,
				   double calls_s)
{
	fprintf(f,
		"{\"system\":\"%s\",\"scenario\":\"%s\",\"size\":%zu,"
		"\"window\":%u,\"iters\":%zu,",
		system, scenario, size, window, iters);
	perf__num(f, "min_us", s ? s->min_us : -1, 0);
	perf__num(f, "p50_us", s ? s->p50_us : -1, 0);
	perf__num(f, "p99_us", s ? s->p99_us : -1, 0);
	perf__num(f, "p999_us", s ? s->p999_us : -1, 0);
	perf__num(f, "max_us", s ? s->max_us : -1, 0);
	perf__num(f, "avg_us", s ? s->avg_us : -1, 0);
	perf__num(f, "mb_s", mb_s, 0);
	perf__num(f, "calls_s", calls_s, 1);
	fprintf(f, "}\n");
	fflush(f);
}

static inline void perf_print_text(FILE *f, const char *system,
				   const char *scenario, size_t size,
				   unsigned window, size_t iters,
				   const struct perf_summary *s, double mb_s,
				   double calls_s)
{
	fprintf(f, "%-14s %-12s size %10zu window %4u iters %8zu", system,
		scenario, size, window, iters);
	if (s)
		fprintf(f,
			"  min %9.2f  p50 %9.2f  p99 %9.2f  p99.9 %9.2f  max "
			"%9.2f  avg %9.2f us",
			s->min_us, s->p50_us, s->p99_us, s->p999_us, s->max_us,
			s->avg_us);
	if (mb_s >= 0)
		fprintf(f, "  %10.1f MB/s", mb_s);
	if (calls_s >= 0)
		fprintf(f, "  %10.0f calls/s", calls_s);
	fprintf(f, "\n");
	fflush(f);
}

/* "64", "4k", "1m", "64M", "1g" -> bytes; 0 on a bad string. */
static inline size_t perf_parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	return *end ? 0 : (size_t)v;
}

#endif
