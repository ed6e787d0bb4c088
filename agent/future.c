/* SPDX-License-Identifier: MIT */
/*
 * Futures: fulfilled exactly once by the agent (or the shutdown path),
 * waited on with a futex, then-callbacks run on the worker pool.
 * Objects are recycled through a small per-thread cache so that the
 * steady state of rxp_rpc_async allocates nothing.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent_int.h"

#define FCACHE_MAX 64
#define FSHARED_MAX 1024

struct fcache {
	struct rxp_future *head;
	unsigned n;
};
static __thread struct fcache fcache;
static pthread_key_t fcache_key;
static pthread_once_t fcache_once = PTHREAD_ONCE_INIT;
static void fcache_key_init(void);
/*
 * Futures are made on the caller's thread but their last reference often
 * goes on another (the polling thread or a pool thread), so per-thread
 * caches alone drain on one side and fill, uselessly, on the other. A
 * future freed on the thread that made it goes back to that thread's
 * cache; one freed anywhere else (or when that cache is full) goes to this
 * process-wide list, pushed with a CAS and taken whole with one exchange
 * by a thread whose cache is empty: no lock, and no ABA (nothing ever
 * pops a single entry). Bounded by fshared_n.
 */
static _Atomic(struct rxp_future *) fshared;
static atomic_uint fshared_n;

static bool fshared_push(struct rxp_future *f)
{
	if (atomic_load_explicit(&fshared_n, memory_order_relaxed) >=
	    FSHARED_MAX)
		return false;
	atomic_fetch_add_explicit(&fshared_n, 1, memory_order_relaxed);
	RXP__STACK_PUSH(&fshared, f, memory_order_release);
	return true;
}

/* Move the whole shared list into this thread's cache. */
static void fshared_take(void)
{
	struct rxp_future *f =
		atomic_exchange_explicit(&fshared, NULL, memory_order_acquire);
	unsigned n = 0;

	while (f) {
		struct rxp_future *next = f->next;

		f->next = fcache.head;
		fcache.head = f;
		n++;
		f = next;
	}
	if (n) {
		atomic_fetch_sub_explicit(&fshared_n, n, memory_order_relaxed);
		pthread_once(&fcache_once, fcache_key_init);
		if (!fcache.n)
			pthread_setspecific(fcache_key, &fcache);
		fcache.n += n;
	}
}

static void fcache_destroy(void *arg)
{
	struct fcache *c = arg;

	while (c->head) {
		struct rxp_future *f = c->head;

		c->head = f->next;
		rxp__free(f);
	}
	c->n = 0;
}

static void fcache_key_init(void)
{
	pthread_key_create(&fcache_key, fcache_destroy);
}

struct rxp_future *rxp__future_new(struct rxp_agent *a, enum rxp__fut_kind k)
{
	struct rxp_future *f;

	if (!fcache.head)
		fshared_take();
	f = fcache.head;
	if (f) {
		fcache.head = f->next;
		fcache.n--;
	} else {
		f = rxp__malloc(sizeof(*f));
		if (!f)
			return NULL;
	}
	memset(f, 0, offsetof(struct rxp_future, payload_inline));
	f->agent = a;
	f->kind = k;
	f->maker = &fcache;
	atomic_init(&f->refs, 2); /* the user's and the agent's */
	atomic_init(&f->state, 0);
	atomic_init(&f->waiters, 0);
	f->rst = f->rst_inline;
	f->st = f->st_inline;
	rxp_mutex_init(&f->cb_mu);
	rxp_arena_init(&f->arena, f->arena_mem, sizeof(f->arena_mem));
	return f;
}

static void future_free(struct rxp_future *f)
{
	for (uint32_t i = 0; i < f->nrst; i++)
		rxp_buf_put(f->rst[i]);
	if (f->rst != f->rst_inline)
		rxp__free(f->rst);
	if (f->st != f->st_inline)
		rxp__free(f->st);
	rxp_buf_put(f->resp_payload);
	rxp__free(f->payload_heap);
	rxp__free(f->errmsg);
	{
		const struct rxp__feature *ft;

		rxp__for_each_feature(ft) if (ft->future_free)
			ft->future_free(f);
	}
	rxp_arena_fini(&f->arena);
	rxp_mutex_destroy(&f->cb_mu);

	pthread_once(&fcache_once, fcache_key_init);
	if (f->maker == &fcache && fcache.n < FCACHE_MAX) {
		if (!fcache.n)
			pthread_setspecific(fcache_key, &fcache);
		f->next = fcache.head;
		fcache.head = f;
		fcache.n++;
		return;
	}
	if (!fshared_push(f))
		rxp__free(f);
}

void rxp__future_put(struct rxp_future *f)
{
	if (f &&
	    atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
		future_free(f);
}

void rxp_future_release(struct rxp_future *f)
{
	rxp__future_put(f);
}

void rxp__future_set_error(struct rxp_future *f, const char *msg)
{
	if (f->errmsg || !msg)
		return;
	f->errmsg = rxp__strdup(msg);
	if (!f->errmsg)
		f->errconst = "(error message lost: out of memory)";
}

static void run_callbacks(void *arg)
{
	struct rxp_future *f = arg;
	struct rxp__cb cbs[RXP_FUTURE_MAX_CALLBACKS];
	unsigned n;

	/* cbs[] no longer changes once cbs_fired is set; copy it under the
	 * lock all the same (a few words) rather than read it unguarded */
	rxp__future_cb_lock(&f->cb_mu);
	n = f->ncbs;
	memcpy(cbs, f->cbs, n * sizeof(cbs[0]));
	rxp__future_cb_unlock(&f->cb_mu);
	for (unsigned i = 0; i < n; i++)
		cbs[i].fn(f, cbs[i].user);
	rxp__future_put(f);
}

void rxp__future_fulfil(struct rxp_future *f, int status)
{
	struct rxp_agent *a = f->agent;
	unsigned ncbs;

	f->status = status;
	rxp__future_cb_lock(&f->cb_mu);
	atomic_store_explicit(&f->state, 1, memory_order_release);
	f->cbs_fired = true;
	ncbs = f->ncbs;
	rxp__future_cb_unlock(&f->cb_mu);
	if (atomic_load(&f->waiters))
		syscall(SYS_futex, &f->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
			NULL, 0);
	if (ncbs) {
		atomic_fetch_add(&f->refs, 1);
		if (!a || rxp__pool_push(&a->pool, run_callbacks, f))
			run_callbacks(f);
	}
	rxp__future_put(f); /* the agent's reference */
}

bool rxp_future_done(const struct rxp_future *f)
{
	return atomic_load_explicit(&f->state, memory_order_acquire) != 0;
}

int rxp_future_status(const struct rxp_future *f)
{
	return rxp_future_done(f) ? f->status : -EAGAIN;
}

const char *rxp_future_error(const struct rxp_future *f)
{
	if (!rxp_future_done(f))
		return "";
	if (f->errmsg)
		return f->errmsg;
	if (f->errconst)
		return f->errconst;
	return f->status ? rxp_strerror(f->status) : "";
}

static int wait_ns(struct rxp_future *f, int64_t ns)
{
	int64_t deadline = ns ? rxp_now_ns() + ns : 0;

	while (!rxp_future_done(f)) {
		struct timespec ts, *tsp = NULL;

		if (deadline) {
			int64_t left = deadline - rxp_now_ns();

			if (left <= 0)
				return -ETIMEDOUT;
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		atomic_fetch_add(&f->waiters, 1);
		syscall(SYS_futex, &f->state, FUTEX_WAIT_PRIVATE, 0, tsp, NULL,
			0);
		atomic_fetch_sub(&f->waiters, 1);
	}
	return f->status;
}

int rxp_future_wait_for(struct rxp_future *f, int64_t timeout_ms)
{
	int64_t ns;

	if (!f || rxp_timeout_ns(timeout_ms,
				 f->agent ? f->agent->rpc_timeout_ns : 0, &ns))
		return -EINVAL;
	return wait_ns(f, ns);
}

int rxp_future_wait(struct rxp_future *f)
{
	return f ? wait_ns(f, 0) : -EINVAL;
}

int rxp_future_then(struct rxp_future *f, rxp_future_cb cb, void *user)
{
	if (!f || !cb)
		return -EINVAL;
	rxp__future_cb_lock(&f->cb_mu);
	if (f->cbs_fired) {
		rxp__future_cb_unlock(&f->cb_mu);
		cb(f, user);
		return 0;
	}
	if (f->ncbs == RXP_FUTURE_MAX_CALLBACKS) {
		rxp__future_cb_unlock(&f->cb_mu);
		return -EBUSY;
	}
	f->cbs[f->ncbs++] = (struct rxp__cb){.fn = cb, .user = user};
	rxp__future_cb_unlock(&f->cb_mu);
	return 0;
}

const struct rxp_value *rxp_future_value(const struct rxp_future *f)
{
	if (!rxp_future_done(f) || f->status)
		return NULL;
	return f->value;
}

int rxp_future_payload(const struct rxp_future *f, const void **data,
		       size_t *len)
{
	if (!rxp_future_done(f))
		return -EAGAIN;
	if (f->status)
		return f->status;
	*data = f->resp_payload ? f->resp_payload->data : NULL;
	*len = f->resp_payload ? f->resp_payload->len : 0;
	return 0;
}

uint32_t rxp_future_nstorages(const struct rxp_future *f)
{
	return rxp_future_done(f) && !f->status ? f->nrst : 0;
}

struct rxp_storage *rxp_future_storage(const struct rxp_future *f, uint32_t i)
{
	if (i >= rxp_future_nstorages(f))
		return NULL;
	return (struct rxp_storage *)f->rst[i];
}

/* ---------------------------------------------------------- storages */

void *rxp_storage_data(const struct rxp_storage *s)
{
	return s ? ((const struct rxp_buf *)s)->data : NULL;
}

size_t rxp_storage_size(const struct rxp_storage *s)
{
	return s ? ((const struct rxp_buf *)s)->len : 0;
}

struct rxp_storage *rxp_storage_retain(struct rxp_storage *s)
{
	if (s)
		rxp_buf_get((struct rxp_buf *)s);
	return s;
}

void rxp_storage_release(struct rxp_storage *s)
{
	rxp_buf_put((struct rxp_buf *)s);
}

struct rxp_storage *rxp_storage_alloc(size_t nbytes)
{
	return (struct rxp_storage *)rxp_buf_alloc(nbytes);
}

struct wrap_buf {
	struct rxp_buf b;
	void (*release)(void *ptr, void *user);
	void *user;
};

static void wrap_free(struct rxp_buf *b)
{
	struct wrap_buf *w = rxp_container_of(b, struct wrap_buf, b);

	if (w->release)
		w->release(b->data, w->user);
	rxp__free(w);
}

struct rxp_storage *rxp_storage_wrap(void *ptr, size_t nbytes,
				     void (*release)(void *ptr, void *user),
				     void *user)
{
	struct wrap_buf *w;

	if (!ptr && nbytes)
		return NULL;
	w = rxp__malloc(sizeof(*w));
	if (!w)
		return NULL;
	w->b.data = ptr;
	w->b.len = nbytes;
	atomic_init(&w->b.refs, 1);
	w->b.free = wrap_free;
	w->b.owner = NULL;
	w->release = release;
	w->user = user;
	return (struct rxp_storage *)&w->b;
}
