/* SPDX-License-Identifier: MIT */
/*
 * The send side's bookkeeping: send slots (registered frame buffers, in
 * chunks) and the deferred on_send list, set-up once a connection is up,
 * send queue retirement (selective signalling: a completion retires every
 * WR posted before it), credits and rendezvous acks from the peer, and
 * failing every pending send when the connection goes down.
 */
#include <string.h>

#include "verbs.h"

/* -------------------------------------------------------------- slots */

int verbs_slot_chunk_add(struct verbs_conn *c)
{
	struct verbs_tp *tp = c->tp;
	struct verbs_slot_chunk *k;
	size_t sz = c->peer_pd.eager_size;
	size_t bytes = sz * VERBS_SLOTS_PER_CHUNK;

	if (c->nchunks >= VERBS_MAX_SLOT_CHUNKS)
		return -ENOBUFS;
	k = rxp__calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->mem = rxp__aligned_alloc(4096, bytes);
	if (!k->mem)
		goto err_free;
	k->mr = tp->sys->reg_mr(tp->dom->pd, k->mem, bytes,
				IBV_ACCESS_LOCAL_WRITE);
	if (!k->mr) {
		rxp_warn(VERBS_LOG, "ibv_reg_mr for send slots (%zu bytes): %s",
			 bytes, strerror(errno));
		goto err_free;
	}
	for (unsigned i = 0; i < VERBS_SLOTS_PER_CHUNK; i++) {
		struct verbs_slot *s = &k->slots[i];

		s->buf = (char *)k->mem + i * sz;
		s->lkey = k->mr->lkey;
		s->next = c->free_slots;
		c->free_slots = s;
	}
	k->next = c->chunks;
	c->chunks = k;
	c->nchunks++;
	return 0;
err_free:
	rxp__free(k->mem);
	rxp__free(k);
	return -ENOMEM;
}

struct verbs_slot *verbs_slot_get(struct verbs_conn *c)
{
	struct verbs_slot *s = c->free_slots;

	if (!s && verbs_slot_chunk_add(c) == 0)
		s = c->free_slots;
	if (!s)
		return NULL;
	c->free_slots = s->next;
	s->next = NULL;
	s->busy = true;
	s->posted = s->retired = s->reported = s->in_done = false;
	s->rdv = s->inl = false;
	s->status = 0;
	s->nrce = 0;
	return s;
}

void verbs_slot_unreg(struct verbs_conn *c, struct verbs_slot *s)
{
	for (uint32_t i = 0; i < s->nrce; i++)
		verbs_rcache_put(c->tp, s->rce[i]);
	s->nrce = 0;
	rxp__free(s->rce);
	s->rce = NULL;
	if (s->bounce_mr)
		verbs_rcache_retire_mr(c->tp, s->bounce_mr, s->bounce,
				       s->bounce_mr->length);
	else
		rxp__free(s->bounce);
	s->bounce_mr = NULL;
	s->bounce = NULL;
}

void verbs_slot_maybe_release(struct verbs_conn *c, struct verbs_slot *s)
{
	if (!s->busy || !s->reported || s->in_done || s->rdv ||
	    (s->posted && !s->retired))
		return;
	verbs_slot_unreg(c, s);
	s->busy = false;
	s->next = c->free_slots;
	c->free_slots = s;
	if (c->pend_head)
		verbs_conn_mark(c);
}

/* Report on_send for @s later (end of this or the next progress()). */
void verbs_done_add(struct verbs_conn *c, struct verbs_slot *s, int status)
{
	struct verbs_tp *tp = c->tp;

	s->status = status;
	s->in_done = true;
	s->done_next = NULL;
	if (c->done_tail)
		c->done_tail->done_next = s;
	else
		c->done_head = s;
	c->done_tail = s;
	if (!c->in_done) {
		c->in_done = true;
		c->done_next = tp->done_conns;
		tp->done_conns = c;
	}
}

void verbs_deliver_dones(struct verbs_tp *tp)
{
	struct verbs_conn *c;
	struct verbs_slot *s;

	while ((c = tp->done_conns)) {
		tp->done_conns = c->done_next;
		c->in_done = false;
		while ((s = c->done_head)) {
			c->done_head = s->done_next;
			if (!c->done_head)
				c->done_tail = NULL;
			s->in_done = false;
			if (!s->reported) {
				s->reported = true;
				tp->cb.on_send(tp->cb.ctx, s->cookie,
					       s->status);
			}
			verbs_slot_maybe_release(c, s);
		}
	}
}

int verbs_ep_setup(struct verbs_conn *c)
{
	c->rdv_tx = rxp__calloc(c->peer_pd.max_rdv, sizeof(*c->rdv_tx));
	if (!c->rdv_tx)
		return -ENOMEM;
	c->tx_credits = c->peer_pd.credits;
	return verbs_slot_chunk_add(c); /* the first sends allocate nothing */
}

void verbs_ep_free(struct verbs_conn *c)
{
	struct verbs_slot_chunk *k, *kn;
	struct verbs_pend *p, *pn;

	for (p = c->pend_head; p; p = pn) {
		pn = p->next;
		rxp__free(p);
	}
	c->pend_head = c->pend_tail = NULL;
	for (k = c->chunks; k; k = kn) {
		kn = k->next;
		for (unsigned i = 0; i < VERBS_SLOTS_PER_CHUNK; i++)
			if (k->slots[i].busy)
				verbs_slot_unreg(c, &k->slots[i]);
		if (k->mr)
			c->tp->sys->dereg_mr(k->mr);
		rxp__free(k->mem);
		rxp__free(k);
	}
	c->chunks = NULL;
	rxp__free(c->rdv_tx);
	c->rdv_tx = NULL;
}

static void fail_slot(struct verbs_conn *c, struct verbs_slot *s, int err)
{
	struct verbs_tp *tp = c->tp;

	if (!s->reported) {
		s->reported = true;
		tp->cb.on_send(tp->cb.ctx, s->cookie, err);
	}
	verbs_slot_maybe_release(c, s);
}

void verbs_ep_fail_sends(struct verbs_conn *c, int err)
{
	struct verbs_tp *tp = c->tp;
	struct verbs_slot *s;
	struct verbs_pend *p;

	/* in the order they were sent: completed (their own status), in
	 * the send queue, rendezvous, ready, pending */
	while ((s = c->done_head)) {
		c->done_head = s->done_next;
		if (!c->done_head)
			c->done_tail = NULL;
		s->in_done = false;
		fail_slot(c, s, s->status);
	}
	for (uint32_t i = c->sq_tail; i != c->sq_head; i++) {
		struct verbs_sqe *t = &c->sq[i % c->sq_depth];

		if (t->kind == SQE_DATA && !((struct verbs_slot *)t->ref)->rdv)
			fail_slot(c, t->ref, err);
	}
	for (uint32_t i = 0; c->rdv_tx && i < c->peer_pd.max_rdv; i++) {
		s = c->rdv_tx[i];
		if (!s)
			continue;
		c->rdv_tx[i] = NULL;
		c->rdv_tx_n--;
		s->rdv = false;
		fail_slot(c, s, err);
	}
	while ((s = c->ready_head)) {
		c->ready_head = s->next;
		if (!c->ready_head)
			c->ready_tail = NULL;
		fail_slot(c, s, err);
	}
	while ((p = c->pend_head)) {
		c->pend_head = p->next;
		if (!c->pend_head)
			c->pend_tail = NULL;
		tp->cb.on_send(tp->cb.ctx, p->cookie, err);
		rxp__free(p);
	}
}

static void retire(struct verbs_conn *c, struct verbs_sqe *e, int status,
		   bool inclusive)
{
	uint32_t idx = (uint32_t)(e - c->sq);

	if (idx >= c->sq_depth || !verbs_sq_used(c) ||
	    (idx + c->sq_depth - c->sq_tail % c->sq_depth) % c->sq_depth >=
		    verbs_sq_used(c)) {
		rxp_warn(VERBS_LOG,
			 "peer %s: completion for a retired send "
			 "queue entry %u",
			 c->peer, idx);
		return;
	}
	for (;;) {
		struct verbs_sqe *t = &c->sq[c->sq_tail % c->sq_depth];
		uint8_t kind = t->kind;

		if (t == e && !inclusive)
			break;

		c->sq_tail++;
		t->kind = SQE_FREE;
		switch (kind) {
		case SQE_DATA: {
			struct verbs_slot *s = t->ref;

			s->retired = true;
			/* an eager send is done once the peer's HCA has it */
			if (!s->rdv && !s->reported && !s->in_done &&
			    (t == e ? !status : true))
				verbs_done_add(c, s, 0);
			verbs_slot_maybe_release(c, s);
			break;
		}
		case SQE_ACK:
			if (t->bye && c->qp && !c->disc_sent) {
				/* everything before the goodbye has landed */
				c->disc_sent = true;
				c->tp->sys->disconnect(c->id);
				if (t != e)
					verbs_ep_drain(c);
			}
			break;
		case SQE_READ:
			verbs_read_retired(c, t->ref, t->last,
					   t == e ? status : 0);
			break;
		default:
			break;
		}
		if (t == e)
			break;
	}
	if (c->state == VC_UP)
		verbs_conn_mark(c);
}

void verbs_sq_retire(struct verbs_conn *c, struct verbs_sqe *e, int status)
{
	retire(c, e, status, true);
}

void verbs_sq_retire_before(struct verbs_conn *c, struct verbs_sqe *e)
{
	retire(c, e, 0, false);
}

int verbs_credit_update(struct verbs_conn *c, uint32_t credits)
{
	uint32_t delta = credits - c->tx_peer_freed;
	uint32_t out = c->tx_data_sent - c->tx_peer_freed;

	if (delta > out)
		return -RXP_E_PROTO; /* returns more than we ever sent */
	if (delta) {
		c->tx_peer_freed = credits;
		c->tx_credits += delta;
		if (c->ready_head)
			verbs_conn_mark(c);
	}
	return 0;
}

int verbs_ep_rdone(struct verbs_conn *c, uint32_t token, int32_t status)
{
	uint32_t idx = token & 0xffff;
	struct verbs_slot *s;

	if (!c->rdv_tx || idx >= c->peer_pd.max_rdv)
		return -RXP_E_PROTO;
	s = c->rdv_tx[idx];
	if (!s || s->token != token)
		return -RXP_E_PROTO;
	if (status > 0 || status < -(RXP_E__LAST))
		return -RXP_E_PROTO;
	c->rdv_tx[idx] = NULL;
	c->rdv_tx_n--;
	s->rdv = false;
	verbs_done_add(c, s, status);
	verbs_conn_mark(c);
	return 0;
}

void verbs_ep_queue_done(struct verbs_conn *c, uint32_t token, int32_t status)
{
	if (c->ndones >= c->tp->max_rdv) {
		rxp_err(VERBS_LOG,
			"peer %s: more rendezvous than it may have "
			"in flight",
			c->peer);
		verbs_conn_fail(c, -RXP_E_PROTO);
		return;
	}
	c->dones[c->ndones++] = (struct verbs_done){token, status};
	verbs_conn_mark(c);
}
