/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers shared by every layer: logging, allocation hooks (for
 * fault injection), refcounted buffers, time. Not installed.
 */
#ifndef RXP_UTIL_H
#define RXP_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <rxp/rxp.h>

#define rxp_container_of(ptr, type, member)                                    \
	((type *)((char *)(ptr)-offsetof(type, member)))
#define RXP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define rxp_likely(x) __builtin_expect(!!(x), 1)
#define rxp_unlikely(x) __builtin_expect(!!(x), 0)

/* ------------------------------------------------------------ logging */
/*
 * RXP_LOG=error|warn|info|debug (default info: start-up choices only; the
 * data path logs at debug only) picks the level. A line reads
 *   2026-12-03T12:00:00.123Z rxp[rank 1 trainer1] warn tcp: text
 * (UTC; rxp.h, "Logging", says which worker a line names) and goes to
 * stderr with one write(2), or to the rxp_log_set_handler() handler. The
 * levels are rxp.h's enum rxp_log_level.
 */
/* Atomic: any thread may log while rxp__log_init (a second agent or
 * transport opening) or a test changes the level; relaxed, as a plain load. */
extern _Atomic int rxp__log_level;
void rxp__log(int level, const char *comp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define rxp_log(level, comp, ...)                                              \
	do {                                                                   \
		if (rxp_unlikely((level) <=                                    \
				 atomic_load_explicit(&rxp__log_level,         \
						      memory_order_relaxed)))  \
			rxp__log(level, comp, __VA_ARGS__);                    \
	} while (0)
#define rxp_err(comp, ...) rxp_log(RXP_LOG_ERROR, comp, __VA_ARGS__)
#define rxp_warn(comp, ...) rxp_log(RXP_LOG_WARN, comp, __VA_ARGS__)
#define rxp_info(comp, ...) rxp_log(RXP_LOG_INFO, comp, __VA_ARGS__)
#define rxp_dbg(comp, ...) rxp_log(RXP_LOG_DEBUG, comp, __VA_ARGS__)
/* Reads RXP_LOG once; called by rxp_agent_create and transports' open. */
void rxp__log_init(void);

/*
 * Who a line names: a worker's rank and name (an agent's, which outlives
 * every use of it here).
 *  - rxp__log_thread_id(id): this thread's lines name @id (NULL: the
 *    process default below); returns the previous setting, to restore.
 *    An agent's threads set it for their life, its create and shutdown
 *    for their duration.
 *  - rxp__log_offer_id(id): @id becomes the process default, for the
 *    threads no agent owns, unless another agent's is already;
 *    rxp__log_drop_id(id) gives it up again (the agent is going away).
 *    Without a default a line names the process ("rxp[pid 4242]").
 */
struct rxp_log_id {
	int rank;
	char name[128];
};
const struct rxp_log_id *rxp__log_thread_id(const struct rxp_log_id *id);
void rxp__log_offer_id(const struct rxp_log_id *id);
void rxp__log_drop_id(const struct rxp_log_id *id);

/* ---------------------------------------------------------- allocation */
/*
 * Every allocation in rxp goes through these, so tests can make the n-th
 * one fail (rxp__alloc_fail_after). The data fast path allocates nothing.
 */
void *rxp__malloc(size_t n);
void *rxp__calloc(size_t nmemb, size_t n);
void *rxp__realloc(void *p, size_t n);
void *rxp__aligned_alloc(size_t align, size_t n);
char *rxp__strdup(const char *s);
void rxp__free(void *p);
/* Test hook: allocations after the next @n succeed fail with NULL
 * (n < 0 disables). Returns how many allocations were made since the
 * last call. Thread-safe. */
long rxp__alloc_fail_after(long n);

/* ------------------------------------------------- refcounted buffers */
/*
 * A receive buffer owned by a transport (or the agent). The transport
 * creates it with refs = 1 and hands that reference to whoever it delivers
 * the buffer to. free() runs when the last reference goes, on whatever
 * thread drops it, so it must be thread-safe (return to a pool).
 * Public struct rxp_storage is this type.
 */
struct rxp_buf {
	void *data;
	size_t len;
	atomic_uint refs;
	void (*free)(struct rxp_buf *b);
	void *owner; /* for free() */
};

static inline struct rxp_buf *rxp_buf_get(struct rxp_buf *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

static inline void rxp_buf_put(struct rxp_buf *b)
{
	if (b &&
	    atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		b->free(b);
}

/* A heap buffer (rxp__aligned_alloc'd, 64-byte aligned, freed with it). */
struct rxp_buf *rxp_buf_alloc(size_t len);

/*
 * A refcounted pool of fixed-size receive buffers (util/bufpool.c), the
 * transports' small-message buffers: none is allocated once warm. The
 * pool lives until its creator and every buffer handed out let go.
 */
struct rxp_bufpool;
/* @bufsz bytes each, @prealloc made now; refs = 1 (the creator's). */
int rxp_bufpool_create(size_t bufsz, unsigned prealloc,
		       struct rxp_bufpool **out);
/* A buffer of @len <= bufsz with refs = 1, or NULL (-ENOMEM). */
struct rxp_buf *rxp_bufpool_get(struct rxp_bufpool *p, size_t len);
size_t rxp_bufpool_bufsz(const struct rxp_bufpool *p);
/* Drop the creator's reference (accepts NULL). */
void rxp_bufpool_put(struct rxp_bufpool *p);
unsigned rxp_bufpool_outstanding(struct rxp_bufpool *p);

/* ------------------------------------------------- little-endian wire */
/* Loads and stores of wire integers at any alignment. */
#include <string.h>
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define RXP__LE16(x) __builtin_bswap16(x)
#define RXP__LE32(x) __builtin_bswap32(x)
#define RXP__LE64(x) __builtin_bswap64(x)
#else
#define RXP__LE16(x) (x)
#define RXP__LE32(x) (x)
#define RXP__LE64(x) (x)
#endif
#define RXP__LE_ACCESSORS(bits)                                                \
	static inline void rxp_put_le##bits(uint8_t *p, uint##bits##_t v)      \
	{                                                                      \
		v = RXP__LE##bits(v);                                          \
		memcpy(p, &v, sizeof(v));                                      \
	}                                                                      \
	static inline uint##bits##_t rxp_get_le##bits(const uint8_t *p)        \
	{                                                                      \
		uint##bits##_t v;                                              \
		memcpy(&v, p, sizeof(v));                                      \
		return RXP__LE##bits(v);                                       \
	}
RXP__LE_ACCESSORS(16)
RXP__LE_ACCESSORS(32)
RXP__LE_ACCESSORS(64)

/* --------------------------------------------------------------- time */
static inline int64_t rxp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A warning a peer can provoke is rate limited: at most one line per
 * second, carrying how many events it stands for. rxp_ratelog_due()
 * is called with the running total of events; when a line is due it
 * returns true and *since = events since the last line. One writer
 * (whoever holds the lock that guards the struct). */
struct rxp_ratelog {
	int64_t next;	 /* ns: no line before this */
	uint64_t logged; /* total at the last line */
};

static inline bool rxp_ratelog_due(struct rxp_ratelog *rl, uint64_t total,
				   uint64_t *since)
{
	int64_t now = rxp_now_ns();

	if (now < rl->next)
		return false;
	*since = total - rl->logged;
	rl->logged = total;
	rl->next = now + 1000000000;
	return true;
}

/* Copy the string @src into @dst of @len bytes: 0, or -ENOSPC (also for
 * a NULL @dst) when it does not fit with its NUL. */
int rxp_str_out(char *dst, size_t len, const char *src);

/* Environment helpers: value of @name parsed as an integer, or @def when
 * unset/empty/invalid (invalid values are logged). */
long rxp_env_long(const char *name, long def);
/* Launcher settings, strictly: $NAME unset or empty gives @def; a value
 * that is not a decimal integer in lo..hi is an error (-EINVAL, logged
 * with the variable's name), never silently replaced. */
int rxp_env_int(const char *name, long lo, long hi, long def, long *out);
int rxp_env_bool(const char *name, int def);
/* Bytes of physical memory (the budgets' defaults are fractions of it);
 * 64 GiB when the system does not say. */
uint64_t rxp_phys_mem(void);

#endif
