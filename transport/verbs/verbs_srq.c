/* SPDX-License-Identifier: MIT */
/*
 * The shared receive queue's eager buffers: one frame each, registered in
 * chunks, posted in lists. A received frame's buffer is lent to the agent
 * as views (struct rxp_buf) without a copy; when the last view is
 * released (any thread) the buffer comes back through the domain's
 * returned list and eventfd, is reposted, and its credit goes back to the
 * connection it arrived on.
 */
#include <string.h>
#include <unistd.h>

#include "verbs.h"

/* ------------------------------------------------------- eager buffers */

/* The last reference went away on some thread: queue @rb for the
 * transport (which reposts it and returns its credit). */
static void rbuf_unref(struct verbs_rbuf *rb)
{
	struct verbs_dom *d = rb->dom;

	if (atomic_fetch_sub_explicit(&rb->refs, 1, memory_order_acq_rel) != 1)
		return;
	verbs_dom_mu_lock(&d->mu);
	if (!d->closed) {
		bool wake = !d->returned;

		rb->next = d->returned;
		d->returned = rb;
		if (wake) {
			uint64_t one = 1;

			/* EAGAIN: the counter is full, so already readable */
			if (write(d->efd, &one, sizeof(one)) < 0)
				(void)errno;
		}
	}
	verbs_dom_mu_unlock(&d->mu);
}

/* Each view holds a domain reference: the domain (and the memory the view
 * points to) outlives the transport while the agent holds views. */
static void view_free(struct rxp_buf *b)
{
	struct verbs_view *v = rxp_container_of(b, struct verbs_view, base);
	struct verbs_rbuf *rb = v->parent;
	struct verbs_dom *d = rb->dom;

	if (v->heap)
		rxp__free(v);
	rbuf_unref(rb);
	verbs_dom_put(d);
}

struct rxp_buf *verbs_view_make(struct verbs_rbuf *rb, size_t off, size_t len)
{
	struct verbs_view *v;

	if (rb->nviews < VERBS_RBUF_VIEWS) {
		v = &rb->views[rb->nviews++];
		v->heap = false;
	} else {
		v = rxp__malloc(sizeof(*v));
		if (!v)
			return NULL;
		v->heap = true;
	}
	v->parent = rb;
	v->base.data = (char *)rb->data + off;
	v->base.len = len;
	atomic_init(&v->base.refs, 1);
	v->base.free = view_free;
	v->base.owner = rb;
	atomic_fetch_add_explicit(&rb->refs, 1, memory_order_relaxed);
	verbs_dom_get(rb->dom);
	return &v->base;
}

/* The transport drops one of its own references (transport thread). */
void verbs_rbuf_release(struct verbs_tp *tp, struct verbs_rbuf *rb)
{
	if (atomic_fetch_sub_explicit(&rb->refs, 1, memory_order_acq_rel) == 1)
		verbs_rbuf_done(tp, rb);
}

/* Back on the transport thread with no reference left: credit, repost. */
void verbs_rbuf_done(struct verbs_tp *tp, struct verbs_rbuf *rb)
{
	if (rb->credit) {
		struct verbs_conn *c = verbs_conn_by_cid(tp, rb->cid, rb->gen);

		if (c && c->state == VC_UP) {
			c->rx_freed++;
			verbs_conn_mark(c);
		} else if (tp->orphans) {
			tp->orphans--;
		}
		rb->credit = false;
	}
	rb->nviews = 0;
	rb->next = tp->recycle;
	tp->recycle = rb;
}

int verbs_take_returned(struct verbs_tp *tp)
{
	struct verbs_dom *d = tp->dom;
	struct verbs_rbuf *rb, *next;
	uint64_t v;
	int n = 0;

	verbs_dom_mu_lock(&d->mu);
	rb = d->returned;
	if (rb) {
		/* under the lock: a release after this write()s again */
		if (read(d->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			rxp_dbg(VERBS_LOG, "eventfd read: %s", strerror(errno));
	}
	d->returned = NULL;
	verbs_dom_mu_unlock(&d->mu);
	for (; rb; rb = next) {
		next = rb->next;
		verbs_rbuf_done(tp, rb);
		n++;
	}
	return n;
}

void verbs_recycle_flush(struct verbs_tp *tp)
{
	struct ibv_recv_wr wr[64], *bad = NULL;
	struct ibv_sge sge[64];
	struct verbs_rbuf *rb;
	int n, ret;

	while (tp->recycle && tp->srq) {
		n = 0;
		for (rb = tp->recycle; rb && n < 64; rb = rb->next, n++) {
			sge[n] = (struct ibv_sge){(uintptr_t)rb->data,
						  tp->eager, rb->lkey};
			wr[n] = (struct ibv_recv_wr){
				.wr_id = (uintptr_t)rb | 1u,
				.sg_list = &sge[n],
				.num_sge = 1,
			};
			if (n)
				wr[n - 1].next = &wr[n];
		}
		ret = tp->sys->post_srq_recv(tp->srq, wr, &bad);
		if (ret) {
			/* WRs before @bad were posted (no @bad: all were) */
			int posted = bad && bad >= wr && bad < wr + n
					     ? (int)(bad - wr)
					     : n;
			static int64_t last;
			int64_t now = rxp_now_ns();

			if (now - last >= 1000000000) { /* retried: log 1/s */
				last = now;
				rxp_warn(VERBS_LOG,
					 "ibv_post_srq_recv: %s (%d of %d "
					 "posted)",
					 strerror(ret), posted, n);
			}
			n = posted;
		}
		for (int i = 0; i < n; i++)
			tp->recycle = tp->recycle->next;
		tp->srq_posted += (uint32_t)n;
		if (ret)
			break;
	}
}

static int srq_grow(struct verbs_tp *tp, uint32_t n)
{
	struct verbs_dom *d = tp->dom;
	struct verbs_mchunk *c = rxp__calloc(1, sizeof(*c));
	struct verbs_rbuf *rbs;
	size_t bytes = (size_t)n * tp->eager;

	if (!c)
		return -ENOMEM;
	c->mem = rxp__aligned_alloc(4096, bytes);
	rbs = c->meta = rxp__calloc(n, sizeof(*rbs));
	if (!c->mem || !rbs)
		goto err_free;
	c->mr = tp->sys->reg_mr(d->pd, c->mem, bytes, IBV_ACCESS_LOCAL_WRITE);
	if (!c->mr) {
		int err = verbs_errno();

		rxp_err(VERBS_LOG,
			"ibv_reg_mr(%zu bytes) for eager receive "
			"buffers: %s",
			bytes, strerror(-err));
		rxp__free(c->mem);
		rxp__free(rbs);
		rxp__free(c);
		return err;
	}
	verbs_dom_mu_lock(&d->mu);
	c->next = d->chunks;
	d->chunks = c;
	verbs_dom_mu_unlock(&d->mu);
	for (uint32_t i = 0; i < n; i++) {
		rbs[i].dom = d;
		rbs[i].data = (char *)c->mem + (size_t)i * tp->eager;
		rbs[i].lkey = c->mr->lkey;
		atomic_init(&rbs[i].refs, 0);
		rbs[i].next = tp->recycle;
		tp->recycle = &rbs[i];
	}
	tp->srq_alloc += n;
	verbs_recycle_flush(tp);
	return 0;
err_free:
	rxp__free(c->mem);
	rxp__free(rbs);
	rxp__free(c);
	return -ENOMEM;
}

int verbs_srq_reserve(struct verbs_tp *tp, uint32_t n)
{
	uint32_t need = tp->srq_reserved + n + tp->orphans;
	int ret;

	if (need > tp->srq_max) {
		rxp_warn(VERBS_LOG,
			 "shared receive queue full (%u of %u "
			 "buffers reserved): refusing a connection",
			 tp->srq_reserved, tp->srq_max);
		return -ENOSPC;
	}
	if (need > tp->srq_alloc) {
		ret = srq_grow(tp, need - tp->srq_alloc);
		if (ret)
			return ret;
	}
	tp->srq_reserved += n;
	return 0;
}

void verbs_srq_release(struct verbs_tp *tp, uint32_t n)
{
	tp->srq_reserved -= n;
}
