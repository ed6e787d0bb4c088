/* SPDX-License-Identifier: MIT */
/*
 * A pool of fixed-size receive buffers for small payloads and storages.
 *
 * Buffers are struct rxp_buf with the data behind the header. The pool is
 * refcounted: the transport holds one reference and every buffer handed
 * out holds one, so buffers stay valid after the transport is closed and
 * the pool goes away with the last of them. Buffers come back from any
 * thread (rxp_buf_put), hence the mutex; it is held for a pointer swap.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "rxp_lock.h"
#include "rxp_util.h"

/* a pool's mu: its free list */
RXP_LOCK_CLASS(rxp_bufpool_mu);

#define POOL_MAX_CACHED 1024u

struct rxp_pbuf {
	struct rxp_buf b;
	struct rxp_pbuf *next;
};

struct rxp_bufpool {
	struct rxp_mutex mu; /* class rxp_bufpool_mu */
	struct rxp_pbuf *free_list RXP_GUARDED_BY(rxp_bufpool_mu);
	unsigned nfree RXP_GUARDED_BY(rxp_bufpool_mu);
	atomic_uint refs; /* creator + buffers handed out */
	size_t bufsz;
	size_t hdrsz;
};

static void pool_unref(struct rxp_bufpool *p)
{
	struct rxp_pbuf *b, *next;

	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* the last reference: uncontended, taken to free what it guards */
	rxp_bufpool_mu_lock(&p->mu);
	for (b = p->free_list; b; b = next) {
		next = b->next;
		rxp__free(b);
	}
	rxp_bufpool_mu_unlock(&p->mu);
	rxp_mutex_destroy(&p->mu);
	rxp__free(p);
}

static void pbuf_release(struct rxp_buf *rb)
{
	struct rxp_pbuf *b = rxp_container_of(rb, struct rxp_pbuf, b);
	struct rxp_bufpool *p = rb->owner;
	bool cached = false;

	rxp_bufpool_mu_lock(&p->mu);
	if (p->nfree < POOL_MAX_CACHED) {
		b->next = p->free_list;
		p->free_list = b;
		p->nfree++;
		cached = true;
	}
	rxp_bufpool_mu_unlock(&p->mu);
	if (!cached)
		rxp__free(b);
	pool_unref(p);
}

static struct rxp_pbuf *pbuf_new(struct rxp_bufpool *p)
{
	struct rxp_pbuf *b = rxp__aligned_alloc(64, p->hdrsz + p->bufsz);

	if (!b)
		return NULL;
	b->b.data = (char *)b + p->hdrsz;
	b->b.free = pbuf_release;
	b->b.owner = p;
	b->next = NULL;
	return b;
}

int rxp_bufpool_create(size_t bufsz, unsigned prealloc,
		       struct rxp_bufpool **out)
{
	struct rxp_bufpool *p = rxp__calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	if (rxp_mutex_init(&p->mu)) {
		rxp__free(p);
		return -ENOMEM;
	}
	atomic_init(&p->refs, 1);
	p->bufsz = bufsz;
	p->hdrsz = (sizeof(struct rxp_pbuf) + 63) & ~(size_t)63;
	for (unsigned i = 0; i < prealloc; i++) {
		struct rxp_pbuf *b = pbuf_new(p);

		if (!b) {
			pool_unref(p);
			return -ENOMEM;
		}
		/* not yet shared: uncontended */
		rxp_bufpool_mu_lock(&p->mu);
		b->next = p->free_list;
		p->free_list = b;
		p->nfree++;
		rxp_bufpool_mu_unlock(&p->mu);
	}
	*out = p;
	return 0;
}

struct rxp_buf *rxp_bufpool_get(struct rxp_bufpool *p, size_t len)
{
	struct rxp_pbuf *b;

	if (len > p->bufsz)
		return NULL;
	rxp_bufpool_mu_lock(&p->mu);
	b = p->free_list;
	if (b) {
		p->free_list = b->next;
		p->nfree--;
	}
	rxp_bufpool_mu_unlock(&p->mu);
	if (!b) {
		b = pbuf_new(p); /* grow: off the fast path once warm */
		if (!b)
			return NULL;
	}
	b->b.len = len;
	atomic_init(&b->b.refs, 1);
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return &b->b;
}

size_t rxp_bufpool_bufsz(const struct rxp_bufpool *p)
{
	return p->bufsz;
}

void rxp_bufpool_put(struct rxp_bufpool *p)
{
	if (p)
		pool_unref(p);
}

unsigned rxp_bufpool_outstanding(struct rxp_bufpool *p)
{
	return atomic_load(&p->refs) - 1;
}
