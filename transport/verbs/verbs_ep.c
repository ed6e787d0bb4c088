/* SPDX-License-Identifier: MIT */
/*
 * Send path of a connection.
 *
 * send() builds the frame at once into a registered slot buffer (payload
 * and small storages copied in; large ones described by {addr, len, rkey}
 * from the registration cache), then queues the slot on the ready list.
 * flush() posts ready slots while the peer has granted credits and the
 * send queue has room: small frames inline, selective signalling (every
 * VERBS_SIGNAL_EVERY-th WR, when the SQ or the slots run low, rendezvous
 * frames, and the goodbye). Eager sends report on_send once posted (the
 * caller's memory was copied); rendezvous sends when the peer's ACK says
 * its READs are done. Before the connection is up, or with no free slot,
 * sends wait as heap copies of their descriptors (struct verbs_pend).
 *
 * Credits: the peer granted peer_pd.credits receive buffers; each DATA
 * frame uses one; every frame carries our cumulative count of freed
 * receive buffers (the peer's credits back). ACK frames need no credit:
 * each side reserves VERBS ACK room in its SRQ (see configure()).
 */
#include <string.h>

#include "verbs.h"

/* -------------------------------------------------------------- frames */

static int add_remote(struct verbs_conn *c, struct verbs_slot *s,
		      const void *base, size_t len, uint32_t nmax,
		      struct verbs_desc *d)
{
	struct verbs_rce *e;
	int ret;

	if (!s->rce) {
		s->rce = rxp__calloc(nmax, sizeof(*s->rce));
		if (!s->rce)
			return -ENOMEM;
	}
	ret = verbs_rcache_get(c->tp, base, len, &e);
	if (ret)
		return ret;
	s->rce[s->nrce++] = e;
	*d = (struct verbs_desc){(uintptr_t)base, len, e->mr->rkey, 0};
	return 0;
}

static int bounce_payload(struct verbs_conn *c, struct verbs_slot *s,
			  const struct rxp_msg_out *m, uint64_t pl,
			  struct verbs_desc *d)
{
	char *p = s->bounce = rxp__aligned_alloc(64, pl);

	if (!p)
		return -ENOMEM;
	for (uint32_t i = 0; i < m->npayload; i++) {
		if (m->payload[i].len)
			memcpy(p, m->payload[i].base, m->payload[i].len);
		p += m->payload[i].len;
	}
	s->bounce_mr = c->tp->sys->reg_mr(c->tp->dom->pd, s->bounce, pl,
					  IBV_ACCESS_REMOTE_READ);
	if (!s->bounce_mr)
		return verbs_errno();
	*d = (struct verbs_desc){(uintptr_t)s->bounce, pl, s->bounce_mr->rkey,
				 0};
	return 0;
}

/* Check @m against our limits and (once known) the peer's. */
static int msg_check(struct verbs_conn *c, const struct rxp_msg_out *m,
		     uint64_t *payload_len)
{
	struct verbs_tp *tp = c->tp;
	uint64_t pl = 0, maxp = tp->max_payload, maxs = tp->max_storage;

	if (c->state == VC_UP) {
		if (c->peer_pd.max_payload < maxp)
			maxp = c->peer_pd.max_payload;
		if (c->peer_pd.max_storage < maxs)
			maxs = c->peer_pd.max_storage;
	}
	if ((m->npayload && !m->payload) || (m->nstorages && !m->storages))
		return -EINVAL;
	if (m->nstorages > RXP_WIRE_MAX_STORAGES)
		return -RXP_E_TOO_BIG;
	for (uint32_t i = 0; i < m->npayload; i++) {
		if (m->payload[i].len > maxp - pl)
			return -RXP_E_TOO_BIG;
		pl += m->payload[i].len;
	}
	for (uint32_t i = 0; i < m->nstorages; i++)
		if (m->storages[i].len > maxs)
			return -RXP_E_TOO_BIG;
	*payload_len = pl;
	return 0;
}

/* Build @m into @s: 0 or -errno (nothing held). */
static int build(struct verbs_conn *c, struct verbs_slot *s,
		 const struct rxp_msg_out *m)
{
	struct verbs_tp *tp = c->tp;
	size_t E = c->peer_pd.eager_size, off, desc_end;
	uint32_t nst = m->nstorages, npieces = 0, npay = 0, k = 0;
	uint8_t *buf = s->buf;
	struct verbs_hdr h = {0};
	struct verbs_desc d;
	uint64_t pl;
	int ret;

	ret = msg_check(c, m, &pl);
	if (ret)
		return ret;
	for (uint32_t i = 0; i < m->npayload; i++)
		npieces += m->payload[i].len != 0;
	desc_end = VERBS_HDR_SIZE + (size_t)nst * VERBS_DESC_SIZE;
	if (desc_end > E || pl > E - desc_end)
		npay = npieces > VERBS_MAX_PAYDESC ? 1 : npieces;
	desc_end += (size_t)npay * VERBS_DESC_SIZE;
	if (desc_end > E) {
		rxp_dbg(VERBS_LOG, "%u storages do not fit a %zu-byte frame",
			nst, E);
		return -RXP_E_TOO_BIG;
	}
	off = desc_end;
	if (!npay) {
		for (uint32_t i = 0; i < m->npayload; i++) {
			if (m->payload[i].len)
				memcpy(buf + off, m->payload[i].base,
				       m->payload[i].len);
			off += m->payload[i].len;
		}
	} else if (npieces > VERBS_MAX_PAYDESC) {
		ret = bounce_payload(c, s, m, pl, &d);
		if (ret)
			goto err;
		verbs_desc_encode(buf + VERBS_HDR_SIZE, &d);
	} else {
		for (uint32_t i = 0; i < m->npayload; i++) {
			if (!m->payload[i].len)
				continue;
			ret = add_remote(c, s, m->payload[i].base,
					 m->payload[i].len, npay + nst, &d);
			if (ret)
				goto err;
			verbs_desc_encode(buf + VERBS_HDR_SIZE +
						  k++ * VERBS_DESC_SIZE,
					  &d);
		}
	}
	for (uint32_t i = 0; i < nst; i++) {
		size_t len = m->storages[i].len;
		size_t o = (off + 63) & ~(size_t)63;

		if (!len ||
		    (len < tp->rdv_threshold && o <= E && len <= E - o)) {
			if (!len)
				o = off;
			if (len)
				memcpy(buf + o, m->storages[i].base, len);
			d = (struct verbs_desc){o, len, 0, VERBS_DF_INLINE};
			off = o + len;
		} else {
			ret = add_remote(c, s, m->storages[i].base, len,
					 npay + nst, &d);
			if (ret)
				goto err;
		}
		verbs_desc_encode(buf + VERBS_HDR_SIZE +
					  (size_t)(npay + i) * VERBS_DESC_SIZE,
				  &d);
	}
	s->rdv = npay || s->nrce;
	s->bytes = pl;
	for (uint32_t i = 0; i < nst; i++)
		s->bytes += m->storages[i].len;
	h.kind = VERBS_K_DATA;
	h.type = m->type;
	h.flags = m->flags;
	h.npay = (uint16_t)npay;
	h.count = nst;
	h.id = m->id;
	h.payload_len = pl;
	h.token = s->rdv; /* patched at post time */
	verbs_hdr_encode(buf, &h);
	s->len = (uint32_t)off;
	s->inl = s->len <= c->max_inline;
	return 0;
err:
	verbs_slot_unreg(c, s);
	return ret;
}

/* ----------------------------------------------------------- pending */

static int pend_queue(struct verbs_conn *c, const struct rxp_msg_out *m,
		      void *cookie)
{
	uint32_t n = m->npayload + m->nstorages;
	struct verbs_pend *p = rxp__malloc(sizeof(*p) + n * sizeof(p->iov[0]));

	if (!p)
		return -ENOMEM;
	p->next = NULL;
	p->cookie = cookie;
	p->m = *m;
	if (m->npayload)
		memcpy(p->iov, m->payload, m->npayload * sizeof(p->iov[0]));
	if (m->nstorages)
		memcpy(p->iov + m->npayload, m->storages,
		       m->nstorages * sizeof(p->iov[0]));
	p->m.payload = p->iov;
	p->m.storages = p->iov + m->npayload;
	if (c->pend_tail)
		c->pend_tail->next = p;
	else
		c->pend_head = p;
	c->pend_tail = p;
	return 0;
}

static void ready_add(struct verbs_conn *c, struct verbs_slot *s)
{
	s->next = NULL;
	if (c->ready_tail)
		c->ready_tail->next = s;
	else
		c->ready_head = s;
	c->ready_tail = s;
}

/* Move pending heap copies into slots, in order. */
static void promote(struct verbs_conn *c)
{
	struct verbs_pend *p;
	struct verbs_slot *s;
	int ret;

	while ((p = c->pend_head) && (s = verbs_slot_get(c))) {
		c->pend_head = p->next;
		if (!c->pend_head)
			c->pend_tail = NULL;
		s->cookie = p->cookie;
		ret = build(c, s, &p->m);
		if (ret)
			verbs_done_add(c, s, ret); /* reported in progress() */
		else
			ready_add(c, s);
		rxp__free(p);
	}
}

int verbs_ep_send(struct rxp_conn *cc, const struct rxp_msg_out *m,
		  void *cookie)
{
	struct verbs_conn *c = to_vconn(cc);
	struct verbs_slot *s = NULL;
	uint64_t pl;
	int ret;

	if (!m)
		return -EINVAL;
	if (c->state == VC_DEAD)
		return c->err ? c->err : -ECONNRESET;
	ret = msg_check(c, m, &pl);
	if (ret)
		return ret;
	if (c->state != VC_UP || c->pend_head || !(s = verbs_slot_get(c)))
		return pend_queue(c, m, cookie);
	s->cookie = cookie;
	ret = build(c, s, m);
	if (ret) {
		s->reported = true;
		verbs_slot_maybe_release(c, s);
		return ret;
	}
	ready_add(c, s);
	verbs_conn_flush(c);
	return 0;
}

/* ------------------------------------------------------------- posting */

int verbs_post_sq(struct verbs_conn *c, struct ibv_send_wr *wr, uint32_t n)
{
	struct ibv_send_wr *bad = NULL;
	uint32_t posted;
	int ret;

	for (uint32_t i = 0; i + 1 < n; i++)
		wr[i].next = &wr[i + 1];
	wr[n - 1].next = NULL;
	ret = c->tp->sys->post_send(c->qp, wr, &bad);
	if (!ret) {
		c->sq_head += n;
		return 0;
	}
	/* WRs before @bad were posted; the rest never will be: their
	 * eager sends go back to the ready list, to fail with the conn.
	 * No @bad (rxe: the doorbell failed after queueing): all posted. */
	posted = bad && bad >= wr && bad < wr + n ? (uint32_t)(bad - wr) : n;
	for (uint32_t i = n; i-- > posted;) {
		struct verbs_sqe *e = (void *)(uintptr_t)wr[i].wr_id;
		struct verbs_slot *s = e->ref;

		if (e->kind == SQE_DATA && !s->rdv) {
			s->posted = false;
			s->next = c->ready_head;
			c->ready_head = s;
			if (!c->ready_tail)
				c->ready_tail = s;
		}
		e->kind = SQE_FREE;
	}
	c->sq_head += posted;
	rxp_err(VERBS_LOG, "ibv_post_send (qpn %u, peer %s): %s", c->qpn,
		c->peer, strerror(ret));
	return verbs_pos_err(ret);
}

int verbs_batch_flush(struct verbs_batch *b)
{
	struct verbs_conn *c = b->c;
	struct ibv_send_wr *last;
	int ret;

	if (!b->n)
		return 0;
	last = &b->wr[b->n - 1];
	/* Sends report on_send when they complete: the last WR of a batch
	 * is signaled if any send before it would otherwise not report. */
	for (uint32_t i = 0; i < b->n; i++) {
		struct verbs_sqe *e = (void *)(uintptr_t)b->wr[i].wr_id;

		if (e->signaled)
			c->uncovered = 0;
		else if (e->kind == SQE_DATA)
			c->uncovered++;
	}
	if (c->uncovered && !(last->send_flags & IBV_SEND_SIGNALED)) {
		last->send_flags |= IBV_SEND_SIGNALED;
		((struct verbs_sqe *)(uintptr_t)last->wr_id)->signaled = true;
		c->uncovered = 0;
		c->sq_unsig = 0;
	}
	ret = verbs_post_sq(c, b->wr, b->n);
	b->n = 0;
	return ret;
}

/* free SQ entries for this batch; one is always kept for the drain WR */
uint32_t verbs_batch_room(const struct verbs_batch *b)
{
	uint32_t used = verbs_sq_used(b->c) + b->n + 1;

	return used < b->c->sq_depth ? b->c->sq_depth - used : 0;
}

struct ibv_send_wr *verbs_batch_add(struct verbs_batch *b, uint8_t kind,
				    void *ref, bool sig)
{
	struct verbs_conn *c = b->c;
	struct verbs_sqe *e = &c->sq[(c->sq_head + b->n) % c->sq_depth];
	struct ibv_send_wr *wr = &b->wr[b->n];

	if (++c->sq_unsig >= VERBS_SIGNAL_EVERY ||
	    verbs_batch_room(b) <= VERBS_SIGNAL_EVERY)
		sig = true;
	if (sig)
		c->sq_unsig = 0;
	*e = (struct verbs_sqe){
		.conn = c, .kind = kind, .signaled = sig, .ref = ref};
	memset(wr, 0, sizeof(*wr));
	wr->wr_id = (uintptr_t)e;
	wr->sg_list = &b->sge[b->n];
	wr->num_sge = 1;
	wr->send_flags = sig ? IBV_SEND_SIGNALED : 0;
	b->n++;
	return wr;
}

static void post_data(struct verbs_conn *c, struct verbs_batch *b)
{
	struct verbs_tp *tp = c->tp;
	struct verbs_slot *s;
	struct ibv_send_wr *wr;
	uint32_t token = 0;

	while ((s = c->ready_head) && c->tx_credits > 0 &&
	       verbs_batch_room(b) > VERBS_SQ_RESERVE) {
		if (s->rdv) {
			uint32_t idx = 0;

			if (c->rdv_tx_n >= c->peer_pd.max_rdv)
				break;
			while (c->rdv_tx[idx])
				idx++;
			if (!++c->rdv_gen)
				c->rdv_gen = 1;
			token = (uint32_t)c->rdv_gen << 16 | idx;
			s->rdv_idx = (uint16_t)idx;
			s->token = token;
			c->rdv_tx[idx] = s;
			c->rdv_tx_n++;
			tp->stats.rdv_tx++;
		} else {
			token = 0;
			tp->stats.eager_tx++;
		}
		c->ready_head = s->next;
		if (!c->ready_head)
			c->ready_tail = NULL;
		verbs_hdr_patch(s->buf, c->rx_freed, token);
		c->rx_freed_sent = c->rx_freed;
		c->tx_credits--;
		c->tx_data_sent++;
		if (b->n == RXP_ARRAY_SIZE(b->wr)) {
			int ret = verbs_batch_flush(b);

			if (ret) {
				verbs_conn_fail(c, ret);
				return;
			}
		}
		wr = verbs_batch_add(b, SQE_DATA, s, s->rdv);
		wr->opcode = IBV_WR_SEND;
		b->sge[b->n - 1] =
			(struct ibv_sge){(uintptr_t)s->buf, s->len, s->lkey};
		if (s->inl) {
			wr->send_flags |= IBV_SEND_INLINE;
			tp->stats.inline_tx++;
		}
		s->posted = true;
		rxp_tp_count(&tp->base.msgs_sent, 1);
		rxp_tp_count(&tp->base.bytes_sent, s->bytes);
	}
	if (c->ready_head && c->tx_credits <= 0)
		tp->stats.credit_stalls++;
}

static bool need_ack(const struct verbs_conn *c)
{
	uint32_t pending = c->rx_freed - c->rx_freed_sent;
	int64_t peer_est =
		(int64_t)c->tp->credits + c->rx_freed_sent - c->rx_data_recv;

	return c->ndones || pending >= c->tp->ack_threshold ||
	       (pending && peer_est <= 0);
}

static void add_ack(struct verbs_conn *c, struct verbs_batch *b, bool bye)
{
	uint32_t idx = (c->sq_head + b->n) % c->sq_depth;
	uint8_t *p = (uint8_t *)c->ctl + (size_t)idx * VERBS_CTL_SIZE;
	uint32_t nd =
		c->ndones < VERBS_ACK_MAX_DONE ? c->ndones : VERBS_ACK_MAX_DONE;
	struct verbs_hdr h = {.kind = VERBS_K_ACK,
			      .credits = c->rx_freed,
			      .count = nd,
			      .hflags = bye ? VERBS_HF_BYE : 0};
	struct ibv_send_wr *wr;
	uint32_t len = VERBS_HDR_SIZE + nd * VERBS_DONE_SIZE;

	verbs_hdr_encode(p, &h);
	for (uint32_t i = 0; i < nd; i++)
		verbs_done_encode(p + VERBS_HDR_SIZE + i * VERBS_DONE_SIZE,
				  &c->dones[i]);
	memmove(c->dones, c->dones + nd, (c->ndones - nd) * sizeof(*c->dones));
	c->ndones -= nd;
	c->rx_freed_sent = c->rx_freed;
	wr = verbs_batch_add(b, SQE_ACK, NULL, bye);
	c->sq[idx].bye = bye;
	wr->opcode = IBV_WR_SEND;
	b->sge[b->n - 1] = (struct ibv_sge){(uintptr_t)p, len, c->ctl_mr->lkey};
	if (len <= c->max_inline)
		wr->send_flags |= IBV_SEND_INLINE;
	c->tp->stats.acks_tx++;
}

void verbs_conn_flush(struct verbs_conn *c)
{
	struct verbs_batch b = {.c = c};
	int ret;

	if (c->state != VC_UP)
		return;
	promote(c);
	verbs_post_reads(c);
	if (c->state != VC_UP)
		return;
	post_data(c, &b);
	ret = 0;
	while (!ret && c->state == VC_UP && need_ack(c) &&
	       verbs_batch_room(&b) > 0) {
		if (b.n == RXP_ARRAY_SIZE(b.wr))
			ret = verbs_batch_flush(&b);
		if (!ret)
			add_ack(c, &b, false);
	}
	if (!ret && c->state == VC_UP)
		ret = verbs_batch_flush(&b);
	if (ret)
		verbs_conn_fail(c, ret);
}

int verbs_ep_ctl(struct verbs_conn *c, const void *frame, uint32_t len)
{
	struct verbs_batch b = {.c = c};
	struct ibv_send_wr *wr;
	uint8_t *p;

	if (!c->qp || len > VERBS_CTL_SIZE || verbs_batch_room(&b) < 1)
		return -ENOSPC;
	p = (uint8_t *)c->ctl +
	    (size_t)(c->sq_head % c->sq_depth) * VERBS_CTL_SIZE;
	memcpy(p, frame, len);
	wr = verbs_batch_add(&b, SQE_ACK, NULL, false);
	wr->opcode = IBV_WR_SEND;
	b.sge[0] = (struct ibv_sge){(uintptr_t)p, len, c->ctl_mr->lkey};
	if (len <= c->max_inline)
		wr->send_flags |= IBV_SEND_INLINE;
	return verbs_batch_flush(&b);
}

bool verbs_ep_bye(struct verbs_conn *c)
{
	struct verbs_batch b = {.c = c};

	if (!c->qp || !verbs_sq_used(c) || verbs_batch_room(&b) < 1)
		return false;
	add_ack(c, &b, true);
	if (verbs_batch_flush(&b))
		return false;
	c->bye_posted = true;
	return true;
}

/*
 * The QP is in error: post one signaled WR. It completes (flushed) after
 * every WR before it, which retires those that completed unsignaled and
 * so will never report. Uses the entry verbs_batch_room() keeps free.
 */
void verbs_ep_drain(struct verbs_conn *c)
{
	struct verbs_batch b = {.c = c};
	struct ibv_send_wr *wr;

	if (!c->qp || !verbs_sq_used(c) || verbs_sq_used(c) >= c->sq_depth)
		return;
	wr = verbs_batch_add(&b, SQE_ACK, NULL, true);
	wr->opcode = IBV_WR_SEND;
	wr->num_sge = 0;
	wr->sg_list = NULL;
	if (verbs_batch_flush(&b))
		rxp_dbg(VERBS_LOG, "peer %s: drain WR not posted", c->peer);
}

void verbs_conn_mark(struct verbs_conn *c)
{
	if (c->dirty || c->state != VC_UP)
		return;
	c->dirty = true;
	c->dirty_next = c->tp->dirty;
	c->tp->dirty = c;
}

void verbs_flush_dirty(struct verbs_tp *tp)
{
	struct verbs_conn *c;

	while ((c = tp->dirty)) {
		tp->dirty = c->dirty_next;
		c->dirty = false;
		verbs_conn_flush(c);
	}
}
