/* SPDX-License-Identifier: MIT */
/* Logging, allocation hooks, heap buffers and environment parsing. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rxp_util.h"

int rxp__log_level = RXP_LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void rxp__log_init(void)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	const char *v = getenv("RXP_LOG");

	if (!v || !*v)
		return;
	for (size_t i = 0; i < RXP_ARRAY_SIZE(names); i++) {
		if (!strcasecmp(v, names[i])) {
			rxp__log_level = (int)i;
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

static void heap_buf_free(struct rxp_buf *b)
{
	rxp__free(b);
}

struct rxp_buf *rxp_buf_alloc(size_t len)
{
	/* header and data in one block; data 64-byte aligned */
	size_t hdr = (sizeof(struct rxp_buf) + 63) & ~(size_t)63;
	struct rxp_buf *b;

	if (len > SIZE_MAX - hdr)
		return NULL;
	b = rxp__aligned_alloc(64, hdr + len);
	if (!b)
		return NULL;
	b->data = (char *)b + hdr;
	b->len = len;
	atomic_init(&b->refs, 1);
	b->free = heap_buf_free;
	b->owner = NULL;
	return b;
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

int rxp_env_bool(const char *name, int def)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return def;
	if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcasecmp(v, "on"))
		return 1;
	if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
	    !strcasecmp(v, "off"))
		return 0;
	rxp_warn("env", "ignoring %s=%s: not a boolean", name, v);
	return def;
}
