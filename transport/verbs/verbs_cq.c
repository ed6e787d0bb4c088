/* SPDX-License-Identifier: MIT */
/*
 * Completions: send-queue completions retire WRs (verbs_sq.c); receive
 * completions carry frames from the SRQ. A DATA frame's storages are
 * either inline (lent to the agent as views of the eager buffer) or
 * remote: the frame's descriptors are checked, receive blocks taken from
 * the registered pool, RDMA READs posted, and when the last READ of the
 * message completes an ACK entry tells the sender to release its memory.
 * Messages are delivered in the order they arrived.
 */
#include <inttypes.h>
#include <string.h>

#include "verbs.h"

static void proto_fail(struct verbs_conn *c, const char *why)
{
	c->tp->stats.proto_errors++;
	rxp_err(VERBS_LOG, "peer %s (worker %u, qpn %u): %s", c->peer,
		c->base.peer_id, c->qpn, why);
	verbs_conn_fail(c, -RXP_E_PROTO);
}

static void rdvr_release(struct verbs_conn *c, struct verbs_rdvr *r)
{
	if (r->payload)
		rxp_buf_put(&r->payload->base);
	r->payload = NULL;
	for (uint32_t i = 0; r->blks && i < r->ndesc; i++)
		if (r->blks[i])
			rxp_buf_put(&r->blks[i]->base);
	rxp__free(r->blks);
	r->blks = NULL;
	r->used = false;
	r->rx = NULL;
	c->rdvr_used--;
}

/* ------------------------------------------------------------ delivery */

static void deliver(struct verbs_conn *c, struct verbs_rx *rx)
{
	struct verbs_tp *tp = c->tp;
	struct verbs_rbuf *rb = rx->rb;
	struct verbs_rdvr *r = rx->rdv;
	const uint8_t *fr = rb->data;
	size_t desc0 = VERBS_HDR_SIZE + (size_t)rx->h.npay * VERBS_DESC_SIZE;
	struct rxp_msg_in m = {.type = rx->h.type,
			       .flags = rx->h.flags,
			       .id = rx->h.id,
			       .nstorages = rx->h.count,
			       .storages = tp->scratch};
	uint64_t bytes = rx->h.payload_len;
	uint32_t made = 0;
	struct verbs_desc d;

	if (rx->drop)
		goto out;
	if (r && r->payload) {
		m.payload = &r->payload->base;
		r->payload = NULL;
	} else {
		m.payload = verbs_view_make(
			rb, desc0 + (size_t)rx->h.count * VERBS_DESC_SIZE,
			rx->h.payload_len);
	}
	if (!m.payload)
		goto err_nomem;
	for (; made < rx->h.count; made++) {
		verbs_desc_decode(fr + desc0 + made * VERBS_DESC_SIZE, &d);
		if (d.dflags & VERBS_DF_INLINE) {
			tp->scratch[made] = verbs_view_make(rb, d.addr, d.len);
		} else {
			tp->scratch[made] = &r->blks[made]->base;
			r->blks[made] = NULL;
		}
		if (!tp->scratch[made])
			goto err_nomem;
		bytes += d.len;
	}
	rxp_tp_count(&tp->base.msgs_received, 1);
	rxp_tp_count(&tp->base.bytes_received, bytes);
	tp->cb.on_recv(tp->cb.ctx, &c->base, &m);
	rxp_buf_put(m.payload);
	for (uint32_t i = 0; i < made; i++)
		rxp_buf_put(tp->scratch[i]);
	goto out;
err_nomem:
	rxp_buf_put(m.payload);
	for (uint32_t i = 0; i < made; i++)
		rxp_buf_put(tp->scratch[i]);
	rxp_err(VERBS_LOG, "peer %s: out of memory delivering a message",
		c->peer);
	verbs_conn_fail(c, -ENOMEM);
out:
	if (r)
		rdvr_release(c, r);
	verbs_rbuf_release(tp, rb);
}

static void deliver_ready(struct verbs_conn *c)
{
	while (c->state == VC_UP && c->rx_head != c->rx_tail) {
		struct verbs_rx *rx = &c->rx[c->rx_head % c->rx_cap];

		if (!rx->ready)
			break;
		c->rx_head++;
		deliver(c, rx);
	}
}

/* ---------------------------------------------------------- rendezvous */

static void rdv_start(struct verbs_conn *c, struct verbs_rx *rx)
{
	struct verbs_tp *tp = c->tp;
	const uint8_t *fr = rx->rb->data;
	struct verbs_rdvr *r = NULL;
	struct verbs_desc d;
	int err = -ENOMEM;

	if (c->rdvr_used >= tp->max_rdv) {
		proto_fail(c, "more rendezvous in flight than granted");
		return;
	}
	for (uint32_t i = 0; i < tp->max_rdv && !r; i++)
		if (!c->rdvr[i].used)
			r = &c->rdvr[i];
	if (!r) {
		proto_fail(c, "no rendezvous slot");
		return;
	}
	memset(r, 0, sizeof(*r));
	r->used = true;
	r->token = rx->h.token;
	r->rx = rx;
	r->ndesc = rx->h.npay + rx->h.count;
	rx->rdv = r;
	c->rdvr_used++;
	tp->stats.rdv_rx++;
	if (rx->h.npay) {
		r->payload = verbs_pool_get(tp->dom, rx->h.payload_len);
		if (!r->payload)
			goto err;
	}
	if (rx->h.count) {
		r->blks = rxp__calloc(r->ndesc, sizeof(*r->blks));
		if (!r->blks)
			goto err;
	}
	for (uint32_t i = 0; i < rx->h.count; i++) {
		verbs_desc_decode(fr + VERBS_HDR_SIZE +
					  (size_t)(rx->h.npay + i) *
						  VERBS_DESC_SIZE,
				  &d);
		if (d.dflags & VERBS_DF_INLINE)
			continue;
		r->blks[i] = verbs_pool_get(tp->dom, d.len);
		if (!r->blks[i])
			goto err;
	}
	r->next = NULL;
	if (c->read_tail)
		c->read_tail->next = r;
	else
		c->read_head = r;
	c->read_tail = r;
	r->queued = true;
	verbs_post_reads(c);
	return;
err:
	/* this message fails; the sender hears it in the ACK */
	rxp_warn(VERBS_LOG,
		 "peer %s: no memory for a %" PRIu64 "-byte "
		 "rendezvous message: failing it",
		 c->peer, rx->h.payload_len);
	rdvr_release(c, r);
	rx->rdv = NULL;
	rx->drop = true;
	rx->ready = true;
	verbs_ep_queue_done(c, rx->h.token, err);
}

/* the blk and offset for @cur/@off of @r */
static void read_target(struct verbs_rdvr *r, uint32_t npay, uint64_t off,
			struct ibv_sge *sge, uint64_t len)
{
	struct verbs_blk *b;
	uint64_t at;

	if (r->cur < npay) {
		b = r->payload;
		at = r->pay_off + off;
	} else {
		b = r->blks[r->cur - npay];
		at = off;
	}
	*sge = (struct ibv_sge){(uintptr_t)b->mem + at, (uint32_t)len,
				b->mr->lkey};
}

static bool remote_after(const uint8_t *fr, uint32_t from, uint32_t n)
{
	struct verbs_desc d;

	for (uint32_t i = from; i < n; i++) {
		verbs_desc_decode(fr + VERBS_HDR_SIZE + i * VERBS_DESC_SIZE,
				  &d);
		if (!(d.dflags & VERBS_DF_INLINE))
			return true;
	}
	return false;
}

void verbs_post_reads(struct verbs_conn *c)
{
	struct verbs_tp *tp = c->tp;
	struct verbs_batch b = {.c = c};
	uint64_t maxr = tp->read_chunk;
	struct verbs_rdvr *r;
	int ret = 0;

	while (c->state == VC_UP && (r = c->read_head) &&
	       verbs_batch_room(&b) > VERBS_SQ_RESERVE) {
		const uint8_t *fr = r->rx->rb->data;
		uint32_t npay = r->rx->h.npay;
		struct verbs_desc d;
		struct ibv_send_wr *wr;
		uint64_t len;
		bool last;

		verbs_desc_decode(
			fr + VERBS_HDR_SIZE + r->cur * VERBS_DESC_SIZE, &d);
		if (d.dflags & VERBS_DF_INLINE) {
			r->cur++;
			continue;
		}
		len = d.len - r->off < maxr ? d.len - r->off : maxr;
		last = r->off + len == d.len &&
		       !remote_after(fr, r->cur + 1, r->ndesc);
		if (b.n == RXP_ARRAY_SIZE(b.wr) &&
		    (ret = verbs_batch_flush(&b)))
			break;
		wr = verbs_batch_add(&b, SQE_READ, r, last);
		((struct verbs_sqe *)(uintptr_t)wr->wr_id)->last = last;
		wr->opcode = IBV_WR_RDMA_READ;
		read_target(r, npay, r->off, &b.sge[b.n - 1], len);
		wr->wr.rdma.remote_addr = d.addr + r->off;
		wr->wr.rdma.rkey = d.rkey;
		r->reads_out++;
		tp->stats.reads++;
		r->off += len;
		if (r->off == d.len) {
			if (r->cur < npay)
				r->pay_off += d.len;
			r->cur++;
			r->off = 0;
		}
		if (last) {
			r->posted_all = true;
			r->queued = false;
			c->read_head = r->next;
			if (!c->read_head)
				c->read_tail = NULL;
		}
	}
	if (!ret)
		ret = verbs_batch_flush(&b);
	if (ret)
		verbs_conn_fail(c, ret);
}

void verbs_read_retired(struct verbs_conn *c, struct verbs_rdvr *r, bool last,
			int status)
{
	r->reads_out--;
	if (!last || status || c->state == VC_DEAD || !r->rx)
		return;
	r->rx->ready = true;
	verbs_ep_queue_done(c, r->token, 0);
	deliver_ready(c);
}

void verbs_rx_fail(struct verbs_conn *c)
{
	while (c->rx_head != c->rx_tail) {
		struct verbs_rx *rx = &c->rx[c->rx_head++ % c->rx_cap];

		if (rx->rdv)
			rx->rdv->rx = NULL; /* READs may still land: kept */
		rx->rb->credit = false;
		c->rx_freed++;
		verbs_rbuf_release(c->tp, rx->rb);
	}
	c->read_head = c->read_tail = NULL;
	c->ndones = 0;
}

void verbs_rx_free(struct verbs_conn *c)
{
	for (uint32_t i = 0; c->rdvr && i < c->tp->max_rdv; i++)
		if (c->rdvr[i].used)
			rdvr_release(c, &c->rdvr[i]);
}

/* ------------------------------------------------------------- receive */

static void on_frame(struct verbs_conn *c, struct verbs_rbuf *rb)
{
	struct verbs_tp *tp = c->tp;
	struct verbs_limits lim = {tp->max_payload, tp->max_storage,
				   tp->max_rdv};
	struct verbs_hdr h;
	struct verbs_done d;
	struct verbs_rx *rx;
	const char *why = "";

	if (verbs_frame_check(rb->data, rb->byte_len, &lim, &h, &why)) {
		proto_fail(c, why);
		return;
	}
	if (verbs_credit_update(c, h.credits)) {
		proto_fail(c, "returns more credits than it was sent");
		return;
	}
	if (h.kind == VERBS_K_ACK) {
		for (uint32_t i = 0; i < h.count && c->state == VC_UP; i++) {
			verbs_done_decode((uint8_t *)rb->data + VERBS_HDR_SIZE +
						  i * VERBS_DONE_SIZE,
					  &d);
			if (verbs_ep_rdone(c, d.token, d.status)) {
				proto_fail(c, "acks an unknown rendezvous");
				return;
			}
		}
		return;
	}
	if (c->rx_data_recv - c->rx_freed_sent >= tp->credits ||
	    c->rx_tail - c->rx_head >= c->rx_cap) {
		proto_fail(c, "sent beyond its credits");
		return;
	}
	c->rx_data_recv++;
	rb->credit = true;
	rb->cid = c->cid;
	rb->gen = c->gen;
	atomic_fetch_add_explicit(&rb->refs, 1, memory_order_relaxed);
	rx = &c->rx[c->rx_tail++ % c->rx_cap];
	*rx = (struct verbs_rx){.rb = rb, .h = h, .ready = !h.token};
	if (h.token) {
		rdv_start(c, rx);
		if (c->state != VC_UP)
			return;
	} else {
		tp->stats.eager_rx++;
	}
	deliver_ready(c);
}

static void on_recv(struct verbs_tp *tp, struct ibv_wc *wc)
{
	struct verbs_rbuf *rb = (void *)(uintptr_t)(wc->wr_id & ~(uint64_t)1);
	struct verbs_conn *c = verbs_conn_by_qpn(tp, wc->qp_num);

	tp->srq_posted--;
	atomic_store_explicit(&rb->refs, 1, memory_order_relaxed);
	rb->credit = false;
	rb->nviews = 0;
	rb->byte_len = wc->byte_len;
	if (wc->status != IBV_WC_SUCCESS) {
		if (c && c->state != VC_DEAD &&
		    wc->status != IBV_WC_WR_FLUSH_ERR) {
			tp->stats.wc_errors++;
			rxp_err(VERBS_LOG,
				"receive on qpn %u (peer %s, worker "
				"%u): %s (vendor error %#x)",
				wc->qp_num, c->peer, c->base.peer_id,
				verbs_wc_status_str(wc->status),
				wc->vendor_err);
			verbs_conn_fail(c, verbs_wc_status_to_err(wc->status));
		}
	} else if (c && c->state == VC_ACCEPTING) {
		verbs_cm_establish(c);
	}
	if (wc->status == IBV_WC_SUCCESS && c && c->state == VC_UP &&
	    wc->opcode == IBV_WC_RECV)
		on_frame(c, rb);
	else if (wc->status == IBV_WC_SUCCESS && c && c->state == VC_AUTH)
		verbs_auth_recv(c, rb->data, rb->byte_len);
	verbs_rbuf_release(tp, rb);
}

static void on_send_wc(struct verbs_tp *tp, struct ibv_wc *wc)
{
	struct verbs_sqe *e = (void *)(uintptr_t)wc->wr_id;
	struct verbs_conn *c = e->conn;
	int err, cause;

	if (c->graveyard)
		return;
	if (wc->status == IBV_WC_SUCCESS) {
		verbs_sq_retire(c, e, 0);
		return;
	}
	err = verbs_wc_status_to_err(wc->status);
	cause = err;
	if (wc->status == IBV_WC_WR_FLUSH_ERR)
		cause = c->err ? c->err : -RXP_E_PEER_LOST;
	if (c->state != VC_DEAD) {
		tp->stats.wc_errors++;
		rxp_err(VERBS_LOG,
			"qpn %u wr_id %#" PRIx64 " (peer %s, worker "
			"%u): %s (vendor error %#x)",
			wc->qp_num, wc->wr_id, c->peer, c->base.peer_id,
			verbs_wc_status_str(wc->status), wc->vendor_err);
		/* WRs before the first error completed; it and the rest
		 * fail with the connection */
		verbs_sq_retire_before(c, e);
		verbs_conn_fail(c, cause);
	}
	verbs_sq_retire(c, e, err);
}

void verbs_cq_handle(struct verbs_tp *tp, struct ibv_wc *wc, int n)
{
	for (int i = 0; i < n; i++) {
		if (wc[i].wr_id & 1)
			on_recv(tp, &wc[i]);
		else
			on_send_wc(tp, &wc[i]);
	}
}

int verbs_cq_poll(struct verbs_tp *tp, int budget)
{
	struct ibv_wc wc[VERBS_CQ_BATCH];
	int total = 0, n;

	while (tp->cq && total < budget) {
		n = tp->sys->poll_cq(tp->cq, VERBS_CQ_BATCH, wc);
		if (n < 0) {
			rxp_err(VERBS_LOG, "ibv_poll_cq: %d: transport failed",
				n);
			tp->failed = true;
			tp->fail_err = -EIO;
			return -EIO;
		}
		if (!n)
			break;
		verbs_cq_handle(tp, wc, n);
		total += n;
	}
	if (total >= budget)
		tp->more = true;
	return total;
}
