/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: registered functions, message handlers and future
 * callbacks run here, never on the polling thread. A ring of tasks under
 * one mutex: the producer is (almost always) the single polling thread,
 * so the lock is uncontended on the producer side.
 */
#include <errno.h>
#include <string.h>

#include "agent_int.h"

static __thread const struct rxp__pool *current_pool;

bool rxp__pool_is_worker(const struct rxp__pool *p)
{
	return current_pool == p;
}

static void *worker_main(void *arg)
{
	struct rxp__pool *p = arg;

	current_pool = p;
	rxp__log_thread_id(p->log_id);
	rxp__pool_lock(&p->mu);
	for (;;) {
		struct rxp__task t;

		while (!p->count && !p->stop) {
			atomic_fetch_add(&p->idle, 1);
			rxp__pool_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->idle, 1);
		}
		if (!p->count && p->stop)
			break;
		t = p->q[p->head];
		p->head = (p->head + 1) % p->cap;
		p->count--;
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

int rxp__pool_start(struct rxp__pool *p, int nthreads,
		    const struct rxp_log_id *log_id)
{
	int ret;

	memset(p, 0, sizeof(*p));
	p->log_id = log_id;
	ret = ring_init(p);
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
	rxp__free(p->threads);
	*ring(p) = NULL;
	p->threads = NULL;
}
