/* SPDX-License-Identifier: MIT */
/*
 * Registered memory.
 *
 * 1. The domain (struct verbs_dom): the PD and every registered chunk,
 *    refcounted by the transport and by every buffer handed to the agent,
 *    so received buffers stay valid after close().
 * 2. The rendezvous receive pool: blocks of 64 KiB .. 1 MiB (powers of
 *    two) carved from registered 4 MiB chunks; bigger ones are allocated
 *    and registered one by one, and up to max_idle_big bytes of them are
 *    kept for reuse. Blocks come back from any thread (mutex).
 * 3. The sender's registration cache: address ranges -> MR with REMOTE_READ
 *    for storages sent by rendezvous. Entries made at send time live while
 *    a send uses them; entries made by mem_register stay until
 *    mem_unregister invalidates every entry overlapping its range. A
 *    released entry is retired, not deregistered: it stays registered
 *    (and unfindable) for a grace period against duplicate READs.
 *    Transport thread only.
 */
#include <string.h>
#include <unistd.h>

#include "verbs.h"

/* ------------------------------------------------------------- domain */

void verbs_dom_get(struct verbs_dom *d)
{
	atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
}

static void big_free(struct verbs_dom *d, struct verbs_blk *b)
{
	if (b->mr)
		d->sys->dereg_mr(b->mr);
	rxp__free(b->mem);
	rxp__free(b);
}

/* The last reference is gone (verbs_dom_put): the lock is uncontended,
 * taken for what it guards. */
void verbs_pool_destroy(struct verbs_dom *d)
{
	struct verbs_mchunk *c, *cn;
	struct verbs_blk *b, *bn;

	verbs_dom_mu_lock(&d->mu);
	for (b = d->idle_big; b; b = bn) {
		bn = b->next;
		big_free(d, b);
	}
	d->idle_big = NULL;
	for (c = d->chunks; c; c = cn) {
		cn = c->next;
		if (c->mr)
			d->sys->dereg_mr(c->mr);
		rxp__free(c->mem);
		rxp__free(c->meta);
		rxp__free(c);
	}
	d->chunks = NULL;
	verbs_dom_mu_unlock(&d->mu);
}

void verbs_dom_put(struct verbs_dom *d)
{
	int ret;

	if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1)
		return;
	verbs_pool_destroy(d);
	if (d->pd) {
		ret = d->sys->dealloc_pd(d->pd);
		if (ret)
			rxp_warn(VERBS_LOG, "ibv_dealloc_pd: %s",
				 strerror(ret));
	}
	if (d->efd >= 0)
		close(d->efd);
	rxp_mutex_destroy(&d->mu);
	rxp__free(d);
}

/* --------------------------------------------------------------- pool */

static void blk_release(struct rxp_buf *rb)
{
	struct verbs_blk *b = rxp_container_of(rb, struct verbs_blk, base);
	struct verbs_dom *d = b->dom;
	bool drop = false;

	verbs_dom_mu_lock(&d->mu);
	if (b->cls >= 0) {
		b->next = d->free_blk[b->cls];
		d->free_blk[b->cls] = b;
	} else if (!d->closed &&
		   d->idle_big_bytes + b->cap <= d->max_idle_big) {
		b->next = d->idle_big;
		d->idle_big = b;
		d->idle_big_bytes += b->cap;
	} else {
		drop = true;
	}
	verbs_dom_mu_unlock(&d->mu);
	if (drop)
		big_free(d, b);
	verbs_dom_put(d);
}

static int carve(struct verbs_dom *d, int cls)
{
	size_t sz = (size_t)1 << (VERBS_POOL_MIN_SHIFT + cls);
	size_t n = VERBS_POOL_CHUNK / sz;
	struct verbs_mchunk *c = rxp__calloc(1, sizeof(*c));
	struct verbs_blk *blks;

	if (!c)
		return -ENOMEM;
	c->mem = rxp__aligned_alloc(4096, VERBS_POOL_CHUNK);
	blks = c->meta = rxp__calloc(n, sizeof(*blks));
	if (!c->mem || !blks)
		goto err_free;
	c->mr = d->sys->reg_mr(d->pd, c->mem, VERBS_POOL_CHUNK,
			       IBV_ACCESS_LOCAL_WRITE);
	if (!c->mr) {
		rxp_warn(VERBS_LOG,
			 "ibv_reg_mr(%u bytes) for the receive "
			 "pool: %s",
			 VERBS_POOL_CHUNK, strerror(errno));
		goto err_free;
	}
	verbs_dom_mu_lock(&d->mu);
	c->next = d->chunks;
	d->chunks = c;
	for (size_t i = 0; i < n; i++) {
		blks[i].dom = d;
		blks[i].mr = c->mr;
		blks[i].mem = (char *)c->mem + i * sz;
		blks[i].cap = sz;
		blks[i].cls = cls;
		blks[i].next = d->free_blk[cls];
		d->free_blk[cls] = &blks[i];
	}
	verbs_dom_mu_unlock(&d->mu);
	return 0;
err_free:
	rxp__free(c->mem);
	rxp__free(blks);
	rxp__free(c);
	return -ENOMEM;
}

static struct verbs_blk *big_get(struct verbs_dom *d, size_t len)
{
	struct verbs_blk *b, **pp;
	size_t cap;

	verbs_dom_mu_lock(&d->mu);
	for (pp = &d->idle_big; (b = *pp); pp = &b->next) {
		if (b->cap >= len && b->cap - len <= len / 4) {
			*pp = b->next;
			d->idle_big_bytes -= b->cap;
			break;
		}
	}
	verbs_dom_mu_unlock(&d->mu);
	if (b)
		return b;
	cap = (len + 65535) & ~(size_t)65535;
	if (cap < len)
		return NULL;
	b = rxp__calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->mem = rxp__aligned_alloc(4096, cap);
	if (!b->mem)
		goto err_free;
	b->mr = d->sys->reg_mr(d->pd, b->mem, cap, IBV_ACCESS_LOCAL_WRITE);
	if (!b->mr) {
		rxp_warn(VERBS_LOG,
			 "ibv_reg_mr(%zu bytes) for a rendezvous "
			 "receive: %s",
			 cap, strerror(errno));
		goto err_free;
	}
	atomic_fetch_add_explicit(&d->big_regs, 1, memory_order_relaxed);
	b->dom = d;
	b->cap = cap;
	b->cls = -1;
	return b;
err_free:
	rxp__free(b->mem);
	rxp__free(b);
	return NULL;
}

struct verbs_blk *verbs_pool_get(struct verbs_dom *d, size_t len)
{
	struct verbs_blk *b = NULL;
	int cls = 0;

	if ((len >> VERBS_POOL_MIN_SHIFT) >=
	    ((size_t)1 << VERBS_POOL_CLASSES)) {
		b = big_get(d, len);
	} else {
		while (((size_t)1 << (VERBS_POOL_MIN_SHIFT + cls)) < len)
			cls++;
		for (int tries = 0; !b && tries < 2; tries++) {
			verbs_dom_mu_lock(&d->mu);
			b = d->free_blk[cls];
			if (b)
				d->free_blk[cls] = b->next;
			verbs_dom_mu_unlock(&d->mu);
			if (!b && (tries || carve(d, cls)))
				break;
		}
	}
	if (!b)
		return NULL;
	b->next = NULL;
	b->base.data = b->mem;
	b->base.len = len;
	atomic_init(&b->base.refs, 1);
	b->base.free = blk_release;
	b->base.owner = b;
	verbs_dom_get(d);
	return b;
}

/* ------------------------------------------------- registration cache */

/* first index whose start is > @s */
static uint32_t rc_upper(const struct verbs_rcache *rc, uintptr_t s)
{
	uint32_t lo = 0, hi = rc->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (rc->v[mid]->start <= s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct verbs_rce *rc_find(struct verbs_rcache *rc, uintptr_t s,
				 uintptr_t e, bool pinned_only)
{
	for (uint32_t j = rc_upper(rc, s); j-- > 0;) {
		struct verbs_rce *x = rc->v[j];

		if (!x->dead && x->end >= e && (!pinned_only || x->pinned))
			return x;
	}
	return NULL;
}

static int rc_insert(struct verbs_tp *tp, void *addr, size_t len, bool pin,
		     struct verbs_rce **out)
{
	struct verbs_rcache *rc = &tp->rc;
	struct verbs_rce *x;
	uint32_t pos;

	if (rc->n == rc->cap) {
		uint32_t cap = rc->cap ? rc->cap * 2 : 16;
		void *v = rxp__realloc(rc->v, cap * sizeof(*rc->v));

		if (!v)
			return -ENOMEM;
		rc->v = v;
		rc->cap = cap;
	}
	x = rxp__calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->mr = tp->sys->reg_mr(tp->dom->pd, addr, len, IBV_ACCESS_REMOTE_READ);
	if (!x->mr && rc->retired) {
		/* out of pinnable memory or MRs: the retired ones go first */
		rc->retired_early += rc->nretired;
		verbs_rcache_reap(tp, -1);
		verbs_timers_update(tp);
		x->mr = tp->sys->reg_mr(tp->dom->pd, addr, len,
					IBV_ACCESS_REMOTE_READ);
	}
	if (!x->mr) {
		int err = verbs_errno();

		rxp_log(err == -ENOMEM ? RXP_LOG_WARN : RXP_LOG_DEBUG,
			VERBS_LOG, "ibv_reg_mr(%p, %zu) for a send: %s", addr,
			len, strerror(-err));
		rxp__free(x);
		return err;
	}
	x->start = (uintptr_t)addr;
	x->end = x->start + len;
	x->pinned = pin;
	pos = rc_upper(rc, x->start);
	memmove(&rc->v[pos + 1], &rc->v[pos], (rc->n - pos) * sizeof(*rc->v));
	rc->v[pos] = x;
	rc->n++;
	*out = x;
	return 0;
}

static void rce_dereg(struct verbs_tp *tp, struct verbs_rce *x)
{
	int ret = tp->sys->dereg_mr(x->mr);

	if (ret)
		rxp_warn(VERBS_LOG, "ibv_dereg_mr: %s", strerror(ret));
	rxp__free(x->own);
	rxp__free(x);
}

static void retire_pop(struct verbs_rcache *rc)
{
	struct verbs_rce *x = rc->retired;

	rc->retired = x->rnext;
	if (!rc->retired)
		rc->retired_tail = &rc->retired;
	rc->nretired--;
	rc->retired_bytes -= x->end - x->start;
}

/* Keep @x registered for the grace, then deregister it (see verbs.h). */
static void retire(struct verbs_tp *tp, struct verbs_rce *x)
{
	struct verbs_rcache *rc = &tp->rc;
	bool was_empty = !rc->retired;

	if (!rc->grace_ns) {
		rce_dereg(tp, x);
		return;
	}
	while (rc->retired && (rc->nretired >= VERBS_RETIRE_MAX ||
			       rc->retired_bytes + (x->end - x->start) >
				       VERBS_RETIRE_MAX_BYTES)) {
		struct verbs_rce *o = rc->retired;

		retire_pop(rc);
		rc->retired_early++;
		rce_dereg(tp, o);
	}
	x->retire_at = rxp_now_ns() + rc->grace_ns;
	x->rnext = NULL;
	*rc->retired_tail = x;
	rc->retired_tail = &x->rnext;
	rc->nretired++;
	rc->retired_bytes += x->end - x->start;
	if (was_empty)
		verbs_timers_update(tp);
}

int64_t verbs_rcache_reap(struct verbs_tp *tp, int64_t now)
{
	struct verbs_rcache *rc = &tp->rc;

	while (rc->retired && (now < 0 || rc->retired->retire_at <= now)) {
		struct verbs_rce *x = rc->retired;

		retire_pop(rc);
		rce_dereg(tp, x);
	}
	return rc->retired ? rc->retired->retire_at : 0;
}

void verbs_rcache_retire_mr(struct verbs_tp *tp, struct ibv_mr *mr, void *own,
			    size_t len)
{
	struct verbs_rce *x = rxp__calloc(1, sizeof(*x));

	if (!x) { /* no memory to wait with: deregister now */
		tp->rc.retired_early++;
		tp->sys->dereg_mr(mr);
		rxp__free(own);
		return;
	}
	x->mr = mr;
	x->own = own;
	x->start = (uintptr_t)mr->addr;
	x->end = x->start + len;
	retire(tp, x);
}

static void rc_remove(struct verbs_tp *tp, struct verbs_rce *x)
{
	struct verbs_rcache *rc = &tp->rc;

	for (uint32_t i = 0; i < rc->n; i++) {
		if (rc->v[i] != x)
			continue;
		memmove(&rc->v[i], &rc->v[i + 1],
			(rc->n - i - 1) * sizeof(*rc->v));
		rc->n--;
		break;
	}
	retire(tp, x);
}

int verbs_rcache_get(struct verbs_tp *tp, const void *addr, size_t len,
		     struct verbs_rce **out)
{
	uintptr_t s = (uintptr_t)addr, e = s + len;
	struct verbs_rce *x;
	int ret;

	if (!len || e < s)
		return -EINVAL;
	x = rc_find(&tp->rc, s, e, false);
	if (x) {
		tp->rc.hits++;
		x->refs++;
		*out = x;
		return 0;
	}
	tp->rc.misses++;
	/* the memory is the caller's and only read: the cast is for the API */
	ret = rc_insert(tp, (void *)s, len, false, &x);
	if (ret)
		return ret;
	x->refs = 1;
	*out = x;
	return 0;
}

void verbs_rcache_put(struct verbs_tp *tp, struct verbs_rce *x)
{
	if (--x->refs == 0 && (!x->pinned || x->dead))
		rc_remove(tp, x);
}

int verbs_rcache_pin(struct verbs_tp *tp, void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr, e = s + len;
	struct verbs_rce *x;

	if (!len)
		return 0;
	if (!addr || e < s)
		return -EINVAL;
	if (rc_find(&tp->rc, s, e, true))
		return 0;
	return rc_insert(tp, addr, len, true, &x);
}

int verbs_rcache_unpin(struct verbs_tp *tp, void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr, e = s + len;
	struct verbs_rcache *rc = &tp->rc;

	if (!len)
		return 0;
	if (e < s)
		return -EINVAL;
	for (uint32_t i = 0; i < rc->n;) {
		struct verbs_rce *x = rc->v[i];

		if (x->start < e && x->end > s && !x->dead) {
			x->dead = true;
			if (!x->refs) {
				rc_remove(tp, x);
				continue;
			}
		}
		i++;
	}
	return 0;
}

void verbs_rcache_destroy(struct verbs_tp *tp)
{
	struct verbs_rcache *rc = &tp->rc;

	while (rc->n) {
		if (rc->v[rc->n - 1]->refs)
			rxp_warn(VERBS_LOG,
				 "registration of %p still used at "
				 "close",
				 (void *)rc->v[rc->n - 1]->start);
		rce_dereg(tp, rc->v[--rc->n]); /* no QP is left to READ */
	}
	verbs_rcache_reap(tp, -1);
	rxp__free(rc->v);
	rc->v = NULL;
	rc->cap = 0;
}
