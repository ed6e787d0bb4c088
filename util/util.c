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
#include <time.h>
#include <unistd.h>

#include "rxp_lock.h"
#include "rxp_util.h"

_Atomic int rxp__log_level = RXP_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/*
 * Who logs and where lines go. A thread's identity is a pointer of its own
 * (an agent's threads); the process default is a copy under id_mu, so a
 * line never reads an agent being freed. The handler is called under the
 * read side of hook_lock, so that once rxp_log_set_handler() returns the
 * old handler is not running; lines of several threads take it together.
 */
static __thread const struct rxp_log_id *thread_id;
static struct rxp_mutex id_mu = RXP_MUTEX_INITIALIZER;
static const struct rxp_log_id *default_owner RXP_GUARDED_BY(id_mu);
static struct rxp_log_id default_id RXP_GUARDED_BY(id_mu);
RXP_RWLOCK_CLASS(rxp__log_hook);
static struct rxp_rwlock hook_lock = {PTHREAD_RWLOCK_INITIALIZER};
static rxp_log_fn hook_fn RXP_GUARDED_BY(rxp__log_hook);
static void *hook_user RXP_GUARDED_BY(rxp__log_hook);

void rxp__log_init(void)
{
	const char *v = getenv("RXP_LOG");

	if (!v || !*v)
		return;
	for (size_t i = 0; i < RXP_ARRAY_SIZE(level_names); i++) {
		if (!strcasecmp(v, level_names[i])) {
			atomic_store_explicit(&rxp__log_level, (int)i,
					      memory_order_relaxed);
			return;
		}
	}
	rxp_err("env", "RXP_LOG=%s is not one of error|warn|info|debug", v);
}

const struct rxp_log_id *rxp__log_thread_id(const struct rxp_log_id *id)
{
	const struct rxp_log_id *prev = thread_id;

	thread_id = id;
	return prev;
}

void rxp__log_offer_id(const struct rxp_log_id *id)
{
	rxp_mutex_lock(&id_mu);
	if (!default_owner) {
		default_owner = id;
		default_id = *id;
	}
	rxp_mutex_unlock(&id_mu);
}

void rxp__log_drop_id(const struct rxp_log_id *id)
{
	rxp_mutex_lock(&id_mu);
	if (default_owner == id)
		default_owner = NULL;
	rxp_mutex_unlock(&id_mu);
}

void rxp_log_set_handler(rxp_log_fn fn, void *user)
{
	rxp__log_hook_wrlock(&hook_lock);
	hook_fn = fn;
	hook_user = fn ? user : NULL;
	rxp__log_hook_wrunlock(&hook_lock);
}

/* "rank 1 trainer1", or "pid 4242" when no agent is known */
static void log_who(char *buf, size_t cap)
{
	const struct rxp_log_id *id = thread_id;

	if (id) {
		snprintf(buf, cap, "rank %d %s", id->rank, id->name);
		return;
	}
	rxp_mutex_lock(&id_mu);
	if (default_owner)
		snprintf(buf, cap, "rank %d %s", default_id.rank,
			 default_id.name);
	else
		snprintf(buf, cap, "pid %d", (int)getpid());
	rxp_mutex_unlock(&id_mu);
}

/* Into @line (cap > 1): "2026-12-03T12:00:00.123Z rxp[rank 1 w] warn
 * tcp: text", cut to fit; its length, and where the text starts. */
static size_t log_format(char *line, size_t cap, int level, const char *comp,
			 size_t *msg_off, const char *fmt, va_list ap)
	__attribute__((format(printf, 6, 0)));
static size_t log_format(char *line, size_t cap, int level, const char *comp,
			 size_t *msg_off, const char *fmt, va_list ap)
{
	struct timespec ts;
	struct tm tm;
	char who[160];
	int n;
	size_t len;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	log_who(who, sizeof(who));
	n = snprintf(line, cap,
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ rxp[%s] %s %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, who,
		     level_names[level], comp);
	len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
	*msg_off = len;
	n = vsnprintf(line + len, cap - len, fmt, ap);
	if (n > 0)
		len += (size_t)n < cap - len ? (size_t)n : cap - 1 - len;
	return len;
}

void rxp__log(int level, const char *comp, const char *fmt, ...)
{
	char line[1024];
	size_t n, msg;
	va_list ap;

	if (level < 0 || level > RXP_LOG_DEBUG)
		level = RXP_LOG_ERROR;
	va_start(ap, fmt);
	/* room for the newline */
	n = log_format(line, sizeof(line) - 1, level, comp, &msg, fmt, ap);
	va_end(ap);
	rxp__log_hook_rdlock(&hook_lock);
	if (hook_fn) {
		hook_fn(hook_user, level, comp, line, line + msg);
		rxp__log_hook_rdunlock(&hook_lock);
		return;
	}
	rxp__log_hook_rdunlock(&hook_lock);
	/* one write per line so lines from threads do not interleave */
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0)
		return; /* nowhere left to say so */
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

int rxp_str_out(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (!dst || len <= n)
		return -ENOSPC;
	memcpy(dst, src, n + 1);
	return 0;
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

uint64_t rxp_phys_mem(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

	if (pages <= 0 || psz <= 0)
		return UINT64_C(64) << 30;
	return (uint64_t)pages * (uint64_t)psz;
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
