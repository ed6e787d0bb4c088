/* SPDX-License-Identifier: MIT */
/*
 * Connection life cycle, driven by rdma_cm events on the transport's
 * event channel (non-blocking, polled from progress()).
 *
 *   active:  connect() -> rdma_resolve_addr -> ADDR_RESOLVED ->
 *            rdma_resolve_route -> ROUTE_RESOLVED -> QP + rdma_connect
 *            (private data) -> ESTABLISHED (peer's private data) -> up
 *   passive: CONNECT_REQUEST (private data checked; REJECT with a reason
 *            if bad) -> QP + rdma_accept (private data) -> ESTABLISHED -> up
 *
 * Failures (ADDR_ERROR, ROUTE_ERROR, UNREACHABLE, REJECTED, CONNECT_ERROR,
 * DISCONNECTED, DEVICE_REMOVAL, the connect deadline, a bad handshake)
 * end in verbs_conn_down(): pending sends fail, then on_conn(<0) once;
 * the connection stays internally as VC_DEAD until its send queue has
 * drained (every WR completes, flushed, once the QP is in error), then
 * its QP, cm_id and memory are freed.
 */
#include <stdio.h>
#include <string.h>

#include "rxp_addr.h"
#include "verbs.h"

struct verbs_conn *verbs_conn_by_qpn(struct verbs_tp *tp, uint32_t qpn)
{
	struct verbs_conn *c = tp->buckets[qpn & 63];

	while (c && c->qpn != qpn)
		c = c->hnext;
	return c;
}

struct verbs_conn *verbs_conn_by_cid(struct verbs_tp *tp, uint32_t cid,
				     uint32_t gen)
{
	struct verbs_conn *c = cid < tp->ctab_n ? tp->ctab[cid] : NULL;

	return c && c->gen == gen ? c : NULL;
}

static void hash_del(struct verbs_conn *c)
{
	struct verbs_conn **pp = &c->tp->buckets[c->qpn & 63];

	if (!c->hashed)
		return;
	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = c->hnext;
	c->hashed = false;
}

void verbs_set_deadline(struct verbs_conn *c, int64_t when)
{
	struct verbs_tp *tp = c->tp;

	if (!c->deadline && when)
		tp->ntimed++;
	else if (c->deadline && !when)
		tp->ntimed--;
	c->deadline = when;
	verbs_timers_update(tp);
}

struct verbs_conn *verbs_conn_new(struct verbs_tp *tp, bool outgoing,
				  uint32_t peer_id)
{
	struct verbs_conn *c = rxp__calloc(1, sizeof(*c));
	uint32_t cid;
	size_t ctl_bytes = (size_t)tp->sq_depth * VERBS_CTL_SIZE;

	if (!c)
		return NULL;
	for (cid = 0; cid < tp->ctab_n && tp->ctab[cid]; cid++)
		;
	if (cid == tp->ctab_n) {
		uint32_t n = tp->ctab_n ? tp->ctab_n * 2 : 16;
		void *v = rxp__realloc(tp->ctab, n * sizeof(*tp->ctab));

		if (!v)
			goto err_free;
		tp->ctab = v;
		memset(tp->ctab + tp->ctab_n, 0,
		       (n - tp->ctab_n) * sizeof(*tp->ctab));
		tp->ctab_n = n;
	}
	c->tp = tp;
	c->base.tp = &tp->base;
	c->base.peer_id = peer_id;
	c->base.outgoing = outgoing;
	c->sq_depth = tp->sq_depth;
	c->sq = rxp__calloc(c->sq_depth, sizeof(*c->sq));
	c->ctl = rxp__aligned_alloc(64, ctl_bytes);
	c->rx_cap = tp->credits;
	c->rx = rxp__calloc(c->rx_cap, sizeof(*c->rx));
	c->rdvr = rxp__calloc(tp->max_rdv, sizeof(*c->rdvr));
	c->dones = rxp__calloc(tp->max_rdv, sizeof(*c->dones));
	if (!c->sq || !c->ctl || !c->rx || !c->rdvr || !c->dones)
		goto err_free;
	c->ctl_mr = tp->sys->reg_mr(tp->dom->pd, c->ctl, ctl_bytes,
				    IBV_ACCESS_LOCAL_WRITE);
	if (!c->ctl_mr) {
		rxp_warn(VERBS_LOG,
			 "ibv_reg_mr for a connection's control "
			 "buffers: %s",
			 strerror(errno));
		goto err_free;
	}
	c->cid = cid;
	c->gen = ++tp->gen;
	tp->ctab[cid] = c;
	c->next = tp->conns;
	if (tp->conns)
		tp->conns->prev = c;
	tp->conns = c;
	return c;
err_free:
	rxp__free(c->sq);
	rxp__free(c->ctl);
	rxp__free(c->rx);
	rxp__free(c->rdvr);
	rxp__free(c->dones);
	rxp__free(c);
	return NULL;
}

void verbs_conn_free(struct verbs_conn *c)
{
	struct verbs_tp *tp = c->tp;

	if (c->deadline)
		verbs_set_deadline(c, 0);
	if (c->prev)
		c->prev->next = c->next;
	else
		tp->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	hash_del(c);
	tp->ctab[c->cid] = NULL;
	if (c->counted) {
		verbs_srq_release(tp, c->srq_share);
		tp->cq_used -= c->sq_depth;
	}
	verbs_ep_free(c);
	verbs_rx_free(c);
	if (c->ctl_mr)
		tp->sys->dereg_mr(c->ctl_mr);
	rxp__free(c->sq);
	rxp__free(c->ctl);
	rxp__free(c->rx);
	rxp__free(c->rdvr);
	rxp__free(c->dones);
	rxp__free(c);
}

int verbs_create_qp(struct verbs_conn *c)
{
	struct verbs_tp *tp = c->tp;
	static const uint32_t inl[] = {256, 64, 0};
	struct ibv_qp_init_attr qa;
	int ret = -EINVAL;

	if (tp->cq_used + c->sq_depth + tp->srq_reserved + tp->share +
		    tp->orphans >
	    tp->cq_size) {
		rxp_warn(VERBS_LOG,
			 "completion queue full (%u entries): "
			 "refusing a connection",
			 tp->cq_size);
		return -ENOSPC;
	}
	ret = verbs_srq_reserve(tp, tp->share);
	if (ret)
		return ret;
	for (unsigned i = 0; i < RXP_ARRAY_SIZE(inl); i++) {
		memset(&qa, 0, sizeof(qa));
		qa.send_cq = tp->cq;
		qa.recv_cq = tp->cq;
		qa.srq = tp->srq;
		qa.qp_type = IBV_QPT_RC;
		qa.cap.max_send_wr = c->sq_depth;
		qa.cap.max_send_sge = 1;
		qa.cap.max_recv_sge = 1;
		qa.cap.max_inline_data = inl[i];
		if (!tp->sys->create_qp(c->id, tp->dom->pd, &qa)) {
			ret = 0;
			break;
		}
		ret = verbs_errno();
		if (ret != -EINVAL)
			break;
	}
	if (ret) {
		verbs_srq_release(tp, tp->share);
		rxp_err(VERBS_LOG, "rdma_create_qp (peer %s): %s", c->peer,
			strerror(-ret));
		return ret;
	}
	c->qp = c->id->qp;
	c->qpn = c->qp->qp_num;
	c->max_inline = qa.cap.max_inline_data;
	c->srq_share = tp->share;
	c->counted = true;
	tp->cq_used += c->sq_depth;
	c->hnext = tp->buckets[c->qpn & 63];
	tp->buckets[c->qpn & 63] = c;
	c->hashed = true;
	return 0;
}

void verbs_my_pdata(struct verbs_tp *tp, uint16_t reject, uint8_t *out)
{
	struct verbs_pdata me = {
		.version = VERBS_PROTO_VERSION,
		.worker_id = tp->local_id,
		.credits = tp->credits,
		.eager_size = tp->eager,
		.max_rdv = (uint16_t)tp->max_rdv,
		.reject = reject,
		.max_payload = tp->max_payload,
		.max_storage = tp->max_storage,
		.features = tp->key.on ? VERBS_PDF_AUTH : 0,
	};

	verbs_pdata_encode(out, &me);
}

void verbs_conn_param(struct verbs_conn *c, struct rdma_conn_param *p,
		      uint8_t *pd, const struct rdma_conn_param *req)
{
	struct verbs_tp *tp = c->tp;
	int rd = tp->ch.dattr.max_qp_rd_atom;
	int init = tp->ch.dattr.max_qp_init_rd_atom;

	rd = rd > 16 ? 16 : (rd < 1 ? 1 : rd);
	init = init > 16 ? 16 : (init < 1 ? 1 : init);
	verbs_my_pdata(tp, VERBS_REJ_NONE, pd);
	memset(p, 0, sizeof(*p));
	p->private_data = pd;
	p->private_data_len = VERBS_PD_SIZE;
	if (tp->key.on && req) {
		/* the accept carries our nonce; both proofs cover the REQ's
		 * private data (copied by on_request) and this */
		rxp_auth_nonce(pd + VERBS_PD_SIZE, RXP_AUTH_NONCE_BYTES);
		p->private_data_len = VERBS_PD_AUTH_SIZE;
		memcpy(c->auth_t + VERBS_PD_SIZE, pd, VERBS_PD_AUTH_SIZE);
	} else if (tp->key.on) {
		memcpy(c->auth_t, pd, VERBS_PD_SIZE);
	}
	p->responder_resources = (uint8_t)rd;
	p->initiator_depth = (uint8_t)init;
	if (req) {
		if (req->initiator_depth < p->responder_resources)
			p->responder_resources = req->initiator_depth;
		if (req->responder_resources < p->initiator_depth)
			p->initiator_depth = req->responder_resources;
	}
	p->retry_count = VERBS_RETRY;
	p->rnr_retry_count = VERBS_RNR_RETRY;
	/* the QP's local ACK timeout, which rdma_cm sets when it moves the
	 * QP to RTS: how long a lost packet stalls the connection */
	if (tp->ack_timeout && tp->sys->set_option) {
		uint8_t t = (uint8_t)tp->ack_timeout;

		if (tp->sys->set_option(c->id, RDMA_OPTION_ID,
					RDMA_OPTION_ID_ACK_TIMEOUT, &t,
					sizeof(t)))
			rxp_warn(VERBS_LOG,
				 "%s: RXP_VERBS_ACK_TIMEOUT=%u not applied: %s",
				 c->peer, tp->ack_timeout,
				 strerror(-verbs_errno()));
	}
}

/* The connection is over: fail its sends, tell the agent, start the
 * drain. @graceful: let posted frames finish first (a signaled goodbye;
 * rdma_disconnect when it completes). */
void verbs_conn_down(struct verbs_conn *c, int err, bool graceful)
{
	struct verbs_tp *tp = c->tp;

	if (c->state == VC_DEAD)
		return;
	graceful = graceful && c->state == VC_UP;
	c->state = VC_DEAD;
	c->err = err;
	if (!(graceful && verbs_ep_bye(c)) && c->qp && !c->disc_sent) {
		c->disc_sent = true;
		tp->sys->disconnect(c->id);
		verbs_ep_drain(c);
	}
	verbs_set_deadline(c, c->qp ? rxp_now_ns() +
					      (int64_t)VERBS_DRAIN_MS * 1000000
				    : 0);
	verbs_rx_fail(c);
	tp->orphans += c->rx_data_recv - c->rx_freed;
	verbs_ep_fail_sends(c, err);
	if (c->reported) {
		c->reported = false;
		tp->cb.on_conn(tp->cb.ctx, &c->base, err);
	}
}

void verbs_conn_fail(struct verbs_conn *c, int err)
{
	verbs_conn_down(c, err, false);
}

void verbs_cm_disconnect(struct rxp_conn *cc)
{
	if (cc)
		verbs_conn_down(to_vconn(cc), -ECANCELED, true);
}

void verbs_conn_reap(struct verbs_tp *tp, bool force)
{
	const struct verbs_sys *sys = tp->sys;
	int64_t now = rxp_now_ns();
	struct verbs_conn *c, *next;

	for (c = tp->conns; c; c = next) {
		bool drained = !c->qp || verbs_sq_used(c) == 0;

		next = c->next;
		if (c->state != VC_DEAD)
			continue;
		if (c->graveyard) {
			if (force && !tp->cq)
				verbs_conn_free(c);
			continue;
		}
		if (!drained && !force && !(c->deadline && now >= c->deadline))
			continue;
		if (c->qp && !c->disc_sent) {
			c->disc_sent = true;
			sys->disconnect(c->id);
			verbs_ep_drain(c);
			if (!force) {
				/* goodbye timed out: now wait for the flush */
				verbs_set_deadline(
					c, now + (int64_t)VERBS_DRAIN_MS *
							   1000000);
				continue;
			}
		}
		if (!drained)
			rxp_log(force ? RXP_LOG_DEBUG : RXP_LOG_WARN, VERBS_LOG,
				"peer %s: %u work requests never completed; "
				"parking the connection until close",
				c->peer, verbs_sq_used(c));
		if (c->qp)
			sys->destroy_qp(c->id);
		c->qp = NULL;
		hash_del(c);
		if (c->id)
			sys->destroy_id(c->id);
		c->id = NULL;
		if (drained || !tp->cq) {
			verbs_conn_free(c);
		} else {
			c->graveyard = true;
			if (c->deadline)
				verbs_set_deadline(c, 0);
		}
	}
}

void verbs_conn_check_timers(struct verbs_tp *tp, int64_t now)
{
	struct verbs_conn *c, *next;

	for (c = tp->conns; c; c = next) {
		next = c->next;
		if (!c->deadline || now < c->deadline || c->state == VC_DEAD)
			continue;
		rxp_warn(VERBS_LOG,
			 "connection %s %s (worker %u) timed out "
			 "after %lld ms",
			 c->base.outgoing ? "to" : "from", c->peer,
			 c->base.peer_id,
			 (long long)(tp->connect_ns / 1000000));
		verbs_conn_down(c, -ETIMEDOUT, false);
	}
	verbs_timers_update(tp);
}

int verbs_cm_connect(struct rxp_tp *t, const char *addr, uint32_t peer_id,
		     struct rxp_conn **out)
{
	struct verbs_tp *tp = to_vtp(t);
	struct sockaddr_storage dst, src = tp->bind_sa;
	struct verbs_conn *c;
	int ret;

	if (tp->failed)
		return tp->fail_err;
	if (!out || rxp_addr_parse(addr, &dst, NULL))
		return -EINVAL;
	c = verbs_conn_new(tp, true, peer_id);
	if (!c)
		return -ENOMEM;
	snprintf(c->peer, sizeof(c->peer), "%s", addr);
	if (tp->sys->create_id(tp->ec, &c->id, c, RDMA_PS_TCP)) {
		ret = verbs_errno();
		goto err_free;
	}
	if (src.ss_family == AF_INET)
		((struct sockaddr_in *)&src)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&src)->sin6_port = 0;
	if (tp->sys->resolve_addr(c->id,
				  tp->bind_any ? NULL : (struct sockaddr *)&src,
				  (struct sockaddr *)&dst, VERBS_RESOLVE_MS)) {
		ret = verbs_errno();
		rxp_warn(VERBS_LOG, "rdma_resolve_addr(%s): %s", addr,
			 strerror(-ret));
		goto err_free;
	}
	c->state = VC_ADDR;
	c->reported = true;
	tp->cm_kick = true;
	verbs_set_deadline(c, rxp_now_ns() + tp->connect_ns);
	*out = &c->base;
	return 0;
err_free:
	if (c->id)
		tp->sys->destroy_id(c->id);
	c->id = NULL;
	verbs_conn_free(c);
	return ret;
}
