/* SPDX-License-Identifier: MIT */
/* Logging, allocation hooks, heap buffers and environment parsing. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rxp_util.h"

_Atomic int rxp__log_level = RXP_LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void rxp__log_init(void)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	const char *v = getenv("RXP_LOG");

	if (!v || !*v)
		return;
	for (size_t i = 0; i < RXP_ARRAY_SIZE(names); i++) {
		if (!strcasecmp(v, names[i])) {
			atomic_store_explicit(&rxp__log_level, (int)i,
					      memory_order_relaxed);
			return;
		}
	}
	fprintf(stderr, "rxp: RXP_LOG=%s is not one of error|warn|info|debug\n",
		v);
}

void rxp__log(int level, const char *comp, const char *fmt, ...)
{
	char line[1024];
	int n;
	va_list ap;

	if (level < 0 || level > RXP_LOG_DEBUG)
		level = RXP_LOG_ERROR;
	n = snprintf(line, sizeof(line), "rxp[%d] %s %s: ", (int)getpid(),
		     level_names[level], comp);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* one write per line so lines from threads do not interleave */
	fprintf(stderr, "%s\n", line);
}

/* ---------------------------------------------------------- allocation */

static atomic_long alloc_budget = -1; /* < 0: unlimited */
static atomic_long alloc_count;

static int alloc_allowed(void)
{
	long b;

	atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
	b = atomic_load_explicit(&alloc_budget, memory_order_relaxed);
	if (b < 0)
		return 1;
	while (b > 0) {
		if (atomic_compare_exchange_weak(&alloc_budget, &b, b - 1))
			return 1;
	}
	return 0;
}

long rxp__alloc_fail_after(long n)
{
	atomic_store(&alloc_budget, n < 0 ? -1 : n);
	return atomic_exchange(&alloc_count, 0);
}

void *rxp__malloc(size_t n)
{
	return alloc_allowed() ? malloc(n) : NULL;
}

void *rxp__calloc(size_t nmemb, size_t n)
{
	return alloc_allowed() ? calloc(nmemb, n) : NULL;
}

void *rxp__realloc(void *p, size_t n)
{
	return alloc_allowed() ? realloc(p, n) : NULL;
}

void *rxp__aligned_alloc(size_t align, size_t n)
{
	void *p = NULL;

	if (!alloc_allowed())
		return NULL;
	if (posix_memalign(&p, align, n ? n : 1))
		return NULL;
	return p;
}

char *rxp__strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = rxp__malloc(n);

	if (p)
		memcpy(p, s, n);
	return p;
}

void rxp__free(void *p)
{
	free(p);
}

/* ------------------------------------------------------- heap buffers */

/*
 * Large heap buffers (tensor storages received over TCP) come from a small
 * process-wide cache: glibc serves them with mmap, so each new 64 MiB
 * buffer costs 16k page faults and 64 MiB of kernel zeroing, which doubled
 * the time of a 64 MiB echo. Training sends the same sizes every step, so
 * a freed buffer is kept (up to RXP_BUF_CACHE_MB in all, default 256) and
 * reused for a request of 80-100% of its capacity. Large messages only:
 * the mutex is never on the small-message path.
 */
#define BIG_MIN (1u << 20)
#define BIG_SLOTS 8

struct heap_buf {
	struct rxp_buf b;
	size_t cap;
};

static struct {
	pthread_mutex_t mu;
	struct heap_buf *slot[BIG_SLOTS];
	size_t bytes, limit;
	bool limit_read;
} big = {.mu = PTHREAD_MUTEX_INITIALIZER};

#define HEAP_HDR ((sizeof(struct heap_buf) + 63) & ~(size_t)63)

static void heap_buf_free(struct rxp_buf *b)
{
	struct heap_buf *h = rxp_container_of(b, struct heap_buf, b);

	if (h->cap >= BIG_MIN) {
		pthread_mutex_lock(&big.mu);
		if (!big.limit_read) {
			big.limit =
				(size_t)rxp_env_long("RXP_BUF_CACHE_MB", 256)
				<< 20;
			big.limit_read = true;
		}
		for (int i = 0; i < BIG_SLOTS; i++)
			if (!big.slot[i] && big.bytes + h->cap <= big.limit) {
				big.slot[i] = h;
				big.bytes += h->cap;
				h = NULL;
				break;
			}
		pthread_mutex_unlock(&big.mu);
	}
	rxp__free(h);
}

static struct heap_buf *big_take(size_t len)
{
	struct heap_buf *h = NULL;
	int best = -1;

	pthread_mutex_lock(&big.mu);
	for (int i = 0; i < BIG_SLOTS; i++)
		if (big.slot[i] && big.slot[i]->cap >= len &&
		    big.slot[i]->cap - big.slot[i]->cap / 5 <= len &&
		    (best < 0 || big.slot[i]->cap < big.slot[best]->cap))
			best = i;
	if (best >= 0) {
		h = big.slot[best];
		big.slot[best] = NULL;
		big.bytes -= h->cap;
	}
	pthread_mutex_unlock(&big.mu);
	return h;
}

struct rxp_buf *rxp_buf_alloc(size_t len)
{
	struct heap_buf *h = NULL;

	if (len > SIZE_MAX - HEAP_HDR)
		return NULL;
	if (len >= BIG_MIN)
		h = big_take(len);
	if (!h) {
		/* header and data in one block; data 64-byte aligned */
		h = rxp__aligned_alloc(64, HEAP_HDR + len);
		if (!h)
			return NULL;
		h->cap = len;
	}
	h->b.data = (char *)h + HEAP_HDR;
	h->b.len = len;
	atomic_init(&h->b.refs, 1);
	h->b.free = heap_buf_free;
	h->b.owner = NULL;
	return &h->b;
}

/* ---------------------------------------------------------------- env */

long rxp_env_long(const char *name, long def)
{
	const char *v = getenv(name);
	char *end;
	long r;

	if (!v || !*v)
		return def;
	errno = 0;
	r = strtol(v, &end, 0);
	if (errno || *end) {
		rxp_warn("env", "ignoring %s=%s: not an integer", name, v);
		return def;
	}
	return r;
}

int rxp_env_int(const char *name, long lo, long hi, long def, long *out)
{
	const char *v = getenv(name);
	char *end;
	long r;

	*out = def;
	if (!v || !*v)
		return 0;
	errno = 0;
	r = strtol(v, &end, 10);
	if (errno || *end || r < lo || r > hi) {
		rxp_err("env", "%s=%s: not an integer in %ld..%ld", name, v, lo,
			hi);
		return -EINVAL;
	}
	*out = r;
	return 0;
}

int rxp_env_bool(const char *name, int def)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return def;
	if (!strcmp(v, "1") || !strcasecmp(v, "true") ||
	    !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
		return 1;
	if (!strcmp(v, "0") || !strcasecmp(v, "false") ||
	    !strcasecmp(v, "no") || !strcasecmp(v, "off"))
		return 0;
	rxp_warn("env", "ignoring %s=%s: not a boolean", name, v);
	return def;
}
