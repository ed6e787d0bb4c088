/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: registered functions, message handlers and future
 * callbacks run here, never on the polling thread. Under one mutex: a
 * ring of local tasks, and one queue of incoming calls per caller, served
 * round-robin and bounded by the pool-queue budget (docs/DESIGN.md
 * "Budgets"). The producer is (almost always) the single polling thread,
 * so the lock is uncontended on the producer side; the budget's counts
 * are plain fields under it, so it costs the call path no atomic.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "agent_int.h"

static __thread const struct rxp__pool *current_pool;

bool rxp__pool_is_worker(const struct rxp__pool *p)
{
	return current_pool == p;
}

/* @pp takes its place at the end of the round */
static void rr_append(struct rxp__pool *p, struct rxp__pool_peer *pp)
	RXP_REQUIRES(rxp__pool)
{
	pp->rr_next = NULL;
	if (p->rr_tail)
		p->rr_tail->rr_next = pp;
	else
		p->rr_head = pp;
	p->rr_tail = pp;
}

/* The first call of the caller whose turn it is; that caller goes to
 * the back of the round if it has more. */
static struct rxp_call *take_call(struct rxp__pool *p) RXP_REQUIRES(rxp__pool)
{
	struct rxp__pool_peer *pp = p->rr_head;
	struct rxp_call *c = pp->head;

	pp->head = c->pool_next;
	pp->n--;
	pp->bytes -= c->pool_bytes;
	p->ncalls--;
	p->call_bytes -= c->pool_bytes;
	p->rr_head = pp->rr_next;
	if (!p->rr_head)
		p->rr_tail = NULL;
	if (pp->head)
		rr_append(p, pp);
	else
		pp->tail = NULL;
	return c;
}

static void *worker_main(void *arg)
{
	struct rxp__pool *p = arg;

	current_pool = p;
	rxp__log_thread_id(p->log_id);
	rxp__pool_lock(&p->mu);
	for (;;) {
		struct rxp__task t;

		while (!p->count && !p->rr_head && !p->stop) {
			atomic_fetch_add(&p->idle, 1);
			rxp__pool_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->idle, 1);
		}
		if (p->rr_head && (p->calls_next || !p->count)) {
			struct rxp_call *c = take_call(p);

			p->calls_next = false;
			rxp__pool_unlock(&p->mu);
			p->run_call(c);
			rxp__pool_lock(&p->mu);
			continue;
		}
		if (!p->count && p->stop)
			break;
		t = p->q[p->head];
		p->head = (p->head + 1) % p->cap;
		p->count--;
		p->calls_next = true;
		rxp__pool_unlock(&p->mu);
		t.fn(t.arg);
		rxp__pool_lock(&p->mu);
	}
	rxp__pool_unlock(&p->mu);
	return NULL;
}

/* Before the threads start: the ring is this thread's alone. */
RXP_NO_THREAD_SAFETY_ANALYSIS static int ring_init(struct rxp__pool *p)
{
	p->cap = 1024;
	p->q = rxp__calloc(p->cap, sizeof(*p->q));
	return p->q ? 0 : -ENOMEM;
}

/* After the threads are joined (or never started), or before: the ring is
 * this thread's alone; NULL once freed. */
RXP_NO_THREAD_SAFETY_ANALYSIS static struct rxp__task **
ring(struct rxp__pool *p)
{
	return &p->q;
}

/* Before the threads start: the queues are this thread's alone. */
RXP_NO_THREAD_SAFETY_ANALYSIS static int peers_init(struct rxp__pool *p,
						    uint32_t npeers)
{
	p->npeers = npeers;
	p->peers = rxp__calloc(npeers ? npeers : 1, sizeof(*p->peers));
	return p->peers ? 0 : -ENOMEM;
}

RXP_NO_THREAD_SAFETY_ANALYSIS static void peers_free(struct rxp__pool *p)
{
	rxp__free(p->peers);
	p->peers = NULL;
}

int rxp__pool_start(struct rxp__pool *p, int nthreads, uint32_t npeers,
		    const struct rxp__pool_limits *lim,
		    const struct rxp_log_id *log_id)
{
	int ret;

	memset(p, 0, sizeof(*p));
	p->log_id = log_id;
	p->lim = *lim;
	p->run_call = rxp__dispatch;
	ret = ring_init(p);
	if (!ret)
		ret = peers_init(p, npeers);
	p->threads = rxp__calloc((size_t)nthreads, sizeof(*p->threads));
	if (ret || !p->threads) {
		ret = -ENOMEM;
		goto err_free;
	}
	rxp_mutex_init(&p->mu);
	pthread_cond_init(&p->cv, NULL);
	for (p->nthreads = 0; p->nthreads < nthreads; p->nthreads++) {
		ret = -pthread_create(&p->threads[p->nthreads], NULL,
				      worker_main, p);
		if (ret)
			goto err_stop;
	}
	return 0;

err_stop:
	rxp__pool_stop(p);
	return ret;
err_free:
	rxp__free(*ring(p));
	peers_free(p);
	rxp__free(p->threads);
	return ret;
}

static int pool_grow(struct rxp__pool *p) RXP_REQUIRES(rxp__pool)
{
	uint32_t ncap = p->cap * 2;
	struct rxp__task *nq = rxp__malloc(ncap * sizeof(*nq));

	if (!nq)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->count; i++)
		nq[i] = p->q[(p->head + i) % p->cap];
	rxp__free(p->q);
	p->q = nq;
	p->head = 0;
	p->cap = ncap;
	return 0;
}

int rxp__pool_push(struct rxp__pool *p, void (*fn)(void *), void *arg)
{
	int ret = 0;

	rxp__pool_lock(&p->mu);
	if (p->stop) {
		ret = -ECANCELED;
	} else if (p->count == p->cap && (ret = pool_grow(p))) {
		/* ret set */
	} else {
		p->q[(p->head + p->count) % p->cap] =
			(struct rxp__task){.fn = fn, .arg = arg};
		p->count++;
		if (atomic_load(&p->idle))
			pthread_cond_signal(&p->cv);
	}
	rxp__pool_unlock(&p->mu);
	return ret;
}

/* Room for @bytes more from @pp? Else which limit it meets. */
static bool pool_room(const struct rxp__pool *p,
		      const struct rxp__pool_peer *pp, uint64_t bytes,
		      enum rxp__pool_limit *hit) RXP_REQUIRES(rxp__pool)
{
	if (pp->n >= p->lim.per_peer)
		*hit = RXP__POOL_PER_PEER;
	else if (p->ncalls >= p->lim.max)
		*hit = RXP__POOL_MAX;
	else if (bytes > p->lim.bytes_per_peer - pp->bytes)
		*hit = RXP__POOL_BYTES_PER_PEER;
	else if (bytes > p->lim.bytes_max - p->call_bytes)
		*hit = RXP__POOL_BYTES_MAX;
	else
		return true;
	return false;
}

int rxp__pool_push_call(struct rxp__pool *p, struct rxp_call *c, uint64_t bytes,
			enum rxp__pool_limit *hit)
{
	struct rxp__pool_peer *pp;
	int ret = 0;

	if (c->caller >= p->npeers)
		return -EINVAL;
	rxp__pool_lock(&p->mu);
	pp = &p->peers[c->caller];
	if (p->stop) {
		ret = -ECANCELED;
	} else if (!pool_room(p, pp, bytes, hit)) {
		ret = -RXP_E_LIMIT;
	} else {
		c->pool_next = NULL;
		c->pool_bytes = bytes;
		if (pp->tail)
			pp->tail->pool_next = c;
		else
			pp->head = c;
		pp->tail = c;
		if (!pp->n++) /* joins the round */
			rr_append(p, pp);
		pp->bytes += bytes;
		p->ncalls++;
		p->call_bytes += bytes;
		if (atomic_load(&p->idle))
			pthread_cond_signal(&p->cv);
	}
	rxp__pool_unlock(&p->mu);
	return ret;
}

void rxp__pool_queued(struct rxp__pool *p, uint64_t *calls, uint64_t *bytes)
{
	*calls = *bytes = 0;
	if (!*ring(p))
		return;
	rxp__pool_lock(&p->mu);
	*calls = p->ncalls;
	*bytes = p->call_bytes;
	rxp__pool_unlock(&p->mu);
}

#define LIMITS(X)                                                              \
	X(RXP__POOL_PER_PEER, "RXP_POOL_QUEUE_PER_PEER")                       \
	X(RXP__POOL_MAX, "RXP_POOL_QUEUE_MAX")                                 \
	X(RXP__POOL_BYTES_PER_PEER, "RXP_POOL_QUEUE_BYTES_PER_PEER")           \
	X(RXP__POOL_BYTES_MAX, "RXP_POOL_QUEUE_BYTES_MAX")

const char *rxp__pool_limit_var(enum rxp__pool_limit which)
{
	static const char *const names[] = {
#define X(e, var) [e] = var,
		LIMITS(X)
#undef X
	};

	return names[which];
}

/*
 * Defaults a training job does not reach: 65,536 calls per caller (what
 * one caller's connection and backlog hold to us is 131,072), 262,144 in
 * all (about 600 MiB of call objects), a quarter of physical memory per
 * caller and half of it in all; a job that has that much waiting for a
 * thread is about to be killed for memory anyway.
 */
int rxp__pool_limits_env(struct rxp__pool_limits *l)
{
	uint64_t mem = rxp_phys_mem();
	long per, max, bper, bmax;
	int ret;

	ret = rxp_env_int("RXP_POOL_QUEUE_PER_PEER", 1, 1 << 24, 65536, &per);
	if (!ret)
		ret = rxp_env_int("RXP_POOL_QUEUE_MAX", 1, 1 << 24, 262144,
				  &max);
	if (!ret)
		ret = rxp_env_int("RXP_POOL_QUEUE_BYTES_PER_PEER", 1, LONG_MAX,
				  (long)(mem / 4), &bper);
	if (!ret)
		ret = rxp_env_int("RXP_POOL_QUEUE_BYTES_MAX", 1, LONG_MAX,
				  (long)(mem / 2), &bmax);
	if (ret)
		return ret;
	l->per_peer = (uint32_t)per;
	l->max = (uint32_t)max;
	l->bytes_per_peer = (uint64_t)bper;
	l->bytes_max = (uint64_t)bmax;
	return 0;
}

void rxp__pool_stop(struct rxp__pool *p)
{
	if (!*ring(p))
		return;
	rxp__pool_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	rxp__pool_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	rxp_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	rxp__free(*ring(p));
	peers_free(p);
	rxp__free(p->threads);
	*ring(p) = NULL;
	p->threads = NULL;
}
