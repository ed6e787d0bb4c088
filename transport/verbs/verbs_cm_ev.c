/* SPDX-License-Identifier: MIT */
/*
 * rdma_cm events: the passive side's CONNECT_REQUEST (private data
 * checked; rejected with a reason), the active side's resolution steps,
 * ESTABLISHED (the peer's private data), and every failure event, each
 * mapped to a status for on_conn. The event channel is non-blocking and
 * read from progress(); each event is copied and acked at once.
 */
#include <stdio.h>
#include <string.h>

#include "verbs.h"

/* ------------------------------------------------------------- events */

struct cm_ev {
	enum rdma_cm_event_type type;
	int status;
	struct rdma_cm_id *id, *listen_id;
	struct rdma_conn_param param;
	uint8_t pd[256];
	size_t pdlen;
};

static void reject(struct verbs_tp *tp, struct rdma_cm_id *id, int reason,
		   const char *peer, const char *why)
{
	uint8_t pd[VERBS_PD_SIZE];

	verbs_my_pdata(tp, (uint16_t)reason, pd);
	rxp_warn(VERBS_LOG, "rejected a connection from %s: %s", peer, why);
	tp->stats.rejected++;
	tp->sys->reject(id, pd, sizeof(pd));
	tp->sys->destroy_id(id);
}

/*
 * Room for one more accepted connection. Those still being set up (or
 * proving the secret) have proved nothing: at max_unauth of them, or
 * max_conns in all, the oldest goes, so a flood of connects cannot lock
 * real peers out; false when all are up and max_conns is reached.
 */
static bool make_room(struct verbs_tp *tp)
{
	struct verbs_conn *oldest = NULL;
	unsigned in = 0, unauth = 0;
	uint64_t total, n;

	for (struct verbs_conn *c = tp->conns; c; c = c->next) {
		if (c->base.outgoing || c->state == VC_DEAD)
			continue;
		in++;
		if (c->state != VC_UP) {
			unauth++;
			oldest = c; /* the list is newest first */
		}
	}
	if (in < tp->max_conns && unauth < tp->max_unauth)
		return true;
	total = 1 + atomic_fetch_add_explicit(&tp->base.conns_limited, 1,
					      memory_order_relaxed);
	if (rxp_ratelog_due(&tp->limit_log, total, &n))
		rxp_warn(VERBS_LOG,
			 "%s closed by a cap: %s (%llu since the last such "
			 "line)",
			 oldest ? oldest->peer : "a new connection",
			 !oldest ? "RXP_MAX_CONNS connections are up"
			 : unauth >= tp->max_unauth
				 ? "the oldest of RXP_MAX_UNAUTH_CONNS "
				   "connections still in their set-up"
				 : "the oldest connection still in its set-up, "
				   "at RXP_MAX_CONNS",
			 (unsigned long long)n);
	if (!oldest)
		return false;
	verbs_conn_down(oldest, -RXP_E_LIMIT, false);
	return true;
}

static void on_request(struct verbs_tp *tp, struct cm_ev *ev)
{
	struct rdma_cm_id *id = ev->id;
	struct rdma_conn_param p;
	uint8_t pd[VERBS_PD_AUTH_SIZE];
	struct verbs_pdata peer;
	struct verbs_conn *c;
	char addr[64];
	const char *why = "";
	int ret;

	verbs_format_addr((struct sockaddr *)&id->route.addr.dst_addr, addr,
			  sizeof(addr));
	if (!tp->lid) {
		reject(tp, id, VERBS_REJ_CLOSING, addr, "closing");
		return;
	}
	ret = verbs_pdata_decode(ev->pd, ev->pdlen, &peer, &why);
	if (ret == -RXP_E_VERSION) {
		char msg[96];

		snprintf(msg, sizeof(msg),
			 "it speaks protocol v%u, we speak v%u", peer.version,
			 VERBS_PROTO_VERSION);
		reject(tp, id, VERBS_REJ_VERSION, addr, msg);
		return;
	}
	if (ret) {
		reject(tp, id, VERBS_REJ_MALFORMED, addr, why);
		return;
	}
	if (id->verbs != tp->ctx) {
		reject(tp, id, VERBS_REJ_DEVICE, addr,
		       "it arrived on another device");
		return;
	}
	if (!(peer.features & VERBS_PDF_AUTH) != !tp->key.on) {
		tp->stats.auth_refused++;
		reject(tp, id, VERBS_REJ_AUTH, addr,
		       tp->key.on ? "it has no job secret (we have one)"
				  : "it has a job secret (we have none)");
		return;
	}
	if (!make_room(tp)) {
		reject(tp, id, VERBS_REJ_RESOURCES, addr,
		       "RXP_MAX_CONNS connections are up");
		return;
	}
	c = verbs_conn_new(tp, false, peer.worker_id);
	if (!c) {
		reject(tp, id, VERBS_REJ_RESOURCES, addr, "no memory");
		return;
	}
	c->id = id;
	id->context = c;
	c->peer_pd = peer;
	memcpy(c->auth_t, ev->pd, VERBS_PD_SIZE); /* what the proofs cover */
	snprintf(c->peer, sizeof(c->peer), "%s", addr);
	ret = verbs_create_qp(c);
	if (ret) {
		c->id = NULL;
		verbs_conn_free(c);
		reject(tp, id, VERBS_REJ_RESOURCES, addr, "no queue pair");
		return;
	}
	verbs_conn_param(c, &p, pd, &ev->param);
	c->state = VC_ACCEPTING;
	verbs_set_deadline(c, rxp_now_ns() + tp->connect_ns);
	if (tp->sys->accept(id, &p)) {
		ret = verbs_errno();
		rxp_warn(VERBS_LOG, "rdma_accept(%s): %s", addr,
			 strerror(-ret));
		verbs_my_pdata(tp, VERBS_REJ_RESOURCES, pd);
		tp->sys->reject(id, pd, sizeof(pd));
		c->disc_sent = true; /* rejected: nothing to disconnect */
		verbs_conn_down(c, ret, false);
	}
}

static int reject_err(struct verbs_conn *c, struct cm_ev *ev)
{
	struct verbs_pdata pd;
	const char *why = "";
	int ret;

	ret = verbs_pdata_decode(ev->pd, ev->pdlen, &pd, &why);
	if (ret == -RXP_E_VERSION) {
		rxp_err(VERBS_LOG,
			"%s (worker %u) speaks protocol v%u, we "
			"speak v%u",
			c->peer, c->base.peer_id, pd.version,
			VERBS_PROTO_VERSION);
		return -RXP_E_VERSION;
	}
	if (ret == 0 && pd.reject) {
		static const int map[] = {
			[VERBS_REJ_VERSION] = -RXP_E_VERSION,
			[VERBS_REJ_MALFORMED] = -RXP_E_PROTO,
			[VERBS_REJ_RESOURCES] = -ENOSPC,
			[VERBS_REJ_DEVICE] = -ENODEV,
			[VERBS_REJ_CLOSING] = -ECONNREFUSED,
			[VERBS_REJ_AUTH] = -RXP_E_AUTH,
		};

		rxp_warn(VERBS_LOG, "%s (worker %u) rejected us (reason %u)",
			 c->peer, c->base.peer_id, pd.reject);
		return map[pd.reject];
	}
	rxp_warn(VERBS_LOG,
		 "%s (worker %u) rejected the connection (status "
		 "%d: no listener on that port?)",
		 c->peer, c->base.peer_id, ev->status);
	return -ECONNREFUSED;
}

static void on_established(struct verbs_tp *tp, struct verbs_conn *c,
			   struct cm_ev *ev)
{
	const char *why = "";
	int ret;

	if (c->base.outgoing) {
		if (!ev) {
			verbs_conn_down(c, -RXP_E_PROTO, false);
			return;
		}
		ret = verbs_pdata_decode(ev->pd, ev->pdlen, &c->peer_pd, &why);
		if (ret) {
			rxp_err(VERBS_LOG, "%s (worker %u): bad accept: %s",
				c->peer, c->base.peer_id, why);
			verbs_conn_down(c, ret, false);
			return;
		}
		if (!(c->peer_pd.features & VERBS_PDF_AUTH) != !tp->key.on ||
		    (tp->key.on && ev->pdlen < VERBS_PD_AUTH_SIZE)) {
			rxp_err(VERBS_LOG,
				"%s (worker %u) accepted us %s a job secret",
				c->peer, c->base.peer_id,
				tp->key.on ? "without" : "with");
			verbs_conn_down(c, -RXP_E_AUTH, false);
			return;
		}
		if (c->peer_pd.worker_id != c->base.peer_id) {
			rxp_warn(VERBS_LOG,
				 "%s answers as worker %u, expected "
				 "%u",
				 c->peer, c->peer_pd.worker_id,
				 c->base.peer_id);
			if (tp->key.on) { /* it proves who it says it is */
				verbs_conn_down(c, -RXP_E_AUTH, false);
				return;
			}
		}
		if (tp->key.on)
			memcpy(c->auth_t + VERBS_PD_SIZE, ev->pd,
			       VERBS_PD_AUTH_SIZE);
	}
	ret = verbs_ep_setup(c);
	if (ret) {
		verbs_conn_down(c, ret, false);
		return;
	}
	if (tp->key.on) {
		verbs_auth_start(c); /* verbs_conn_up() once both proved */
		return;
	}
	verbs_conn_up(c);
}

void verbs_conn_up(struct verbs_conn *c)
{
	struct verbs_tp *tp = c->tp;

	c->state = VC_UP;
	verbs_set_deadline(c, 0);
	if (!c->base.outgoing)
		tp->stats.accepted++;
	rxp_dbg(VERBS_LOG, "%s %s (worker %u) up, qpn %u, %u credits, eager %u",
		c->base.outgoing ? "connected to" : "accepted", c->peer,
		c->base.peer_id, c->qpn, c->peer_pd.credits,
		c->peer_pd.eager_size);
	c->reported = true;
	tp->cb.on_conn(tp->cb.ctx, &c->base, 0);
	if (c->state == VC_UP)
		verbs_conn_flush(c);
}

/* A frame arrived on a connection we accepted before its ESTABLISHED
 * event was read: the peer has our accept, so it is up. */
void verbs_cm_establish(struct verbs_conn *c)
{
	if (c->state == VC_ACCEPTING)
		on_established(c->tp, c, NULL);
}

static void conn_event(struct verbs_tp *tp, struct verbs_conn *c,
		       struct cm_ev *ev)
{
	int ret, err = ev->status < 0 ? ev->status : 0;

	if (c->state == VC_DEAD)
		return;
	switch (ev->type) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (c->state != VC_ADDR)
			return;
		if (c->id->verbs != tp->ctx) {
			rxp_err(VERBS_LOG,
				"%s is reached through device %s, "
				"not %s",
				c->peer,
				c->id->verbs ? c->id->verbs->device->name : "?",
				tp->ch.dev);
			verbs_conn_down(c, -ENETUNREACH, false);
			return;
		}
		if (tp->sys->resolve_route(c->id, VERBS_RESOLVE_MS)) {
			ret = verbs_errno();
			rxp_err(VERBS_LOG, "rdma_resolve_route(%s): %s",
				c->peer, strerror(-ret));
			verbs_conn_down(c, ret, false);
			return;
		}
		c->state = VC_ROUTE;
		return;
	case RDMA_CM_EVENT_ROUTE_RESOLVED: {
		struct rdma_conn_param p;
		uint8_t pd[VERBS_PD_AUTH_SIZE];

		if (c->state != VC_ROUTE)
			return;
		ret = verbs_create_qp(c);
		if (ret) {
			verbs_conn_down(c, ret, false);
			return;
		}
		verbs_conn_param(c, &p, pd, NULL);
		if (tp->sys->connect(c->id, &p)) {
			ret = verbs_errno();
			rxp_err(VERBS_LOG, "rdma_connect(%s): %s", c->peer,
				strerror(-ret));
			verbs_conn_down(c, ret, false);
			return;
		}
		c->state = VC_CONNECTING;
		return;
	}
	case RDMA_CM_EVENT_ESTABLISHED:
		if (c->state == VC_CONNECTING || c->state == VC_ACCEPTING)
			on_established(tp, c, ev);
		return;
	case RDMA_CM_EVENT_REJECTED: {
		verbs_conn_down(c, reject_err(c, ev), false);
		return;
	}
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_CONNECT_ERROR:
		if (!err)
			err = ev->type == RDMA_CM_EVENT_CONNECT_ERROR
				      ? -ECONNREFUSED
				      : (ev->type == RDMA_CM_EVENT_ROUTE_ERROR
						 ? -ENETUNREACH
						 : -EHOSTUNREACH);
		rxp_warn(VERBS_LOG, "connection %s %s (worker %u): %s: %s",
			 c->base.outgoing ? "to" : "from", c->peer,
			 c->base.peer_id, verbs_cm_event_str(ev->type),
			 strerror(-err));
		verbs_conn_down(c, err, false);
		return;
	case RDMA_CM_EVENT_DISCONNECTED:
		/* take what the peer sent before it left */
		verbs_cq_poll(tp, VERBS_PROGRESS_BUDGET);
		if (c->state == VC_DEAD)
			return;
		if (c->state == VC_AUTH && c->base.outgoing) {
			/* it closed on our proof, as a peer with another
			 * secret does */
			rxp_err(VERBS_LOG,
				"%s (worker %u) closed the connection on our "
				"proof of the job secret (not the same "
				"secret?)",
				c->peer, c->base.peer_id);
			verbs_conn_down(c, -RXP_E_AUTH, false);
			return;
		}
		rxp_info(VERBS_LOG, "%s (worker %u) disconnected", c->peer,
			 c->base.peer_id);
		verbs_conn_down(c, -ECONNRESET, false);
		return;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		rxp_err(VERBS_LOG, "device %s removed", tp->ch.dev);
		verbs_conn_down(c, -ENODEV, false);
		return;
	default:
		rxp_dbg(VERBS_LOG, "%s: ignoring %s", c->peer,
			verbs_cm_event_str(ev->type));
		return;
	}
}

static void listener_event(struct verbs_tp *tp, struct cm_ev *ev)
{
	if (ev->type == RDMA_CM_EVENT_CONNECT_REQUEST) {
		on_request(tp, ev);
		return;
	}
	if (ev->type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
		rxp_err(VERBS_LOG, "device %s removed: transport failed",
			tp->ch.dev);
		tp->failed = true;
		tp->fail_err = -ENODEV;
		for (struct verbs_conn *c = tp->conns; c; c = c->next)
			verbs_conn_down(c, -ENODEV, false);
		return;
	}
	rxp_info(VERBS_LOG, "listener: %s", verbs_cm_event_str(ev->type));
}

int verbs_cm_progress(struct verbs_tp *tp)
{
	struct rdma_cm_event *e;
	struct cm_ev ev;
	int n = 0;

	while (tp->ec && !tp->sys->get_cm_event(tp->ec, &e)) {
		memset(&ev, 0, sizeof(ev));
		ev.type = e->event;
		ev.status = e->status;
		ev.id = e->id;
		ev.listen_id = e->listen_id;
		ev.param = e->param.conn;
		if (e->param.conn.private_data &&
		    e->param.conn.private_data_len) {
			ev.pdlen = e->param.conn.private_data_len;
			if (ev.pdlen > sizeof(ev.pd))
				ev.pdlen = sizeof(ev.pd);
			memcpy(ev.pd, e->param.conn.private_data, ev.pdlen);
		}
		ev.param.private_data = NULL;
		tp->sys->ack_cm_event(e);
		n++;
		rxp_dbg(VERBS_LOG, "cm event %s status %d",
			verbs_cm_event_str(ev.type), ev.status);
		if (ev.type == RDMA_CM_EVENT_CONNECT_REQUEST ||
		    (ev.id && ev.id == tp->lid))
			listener_event(tp, &ev);
		else if (ev.id && ev.id->context)
			conn_event(tp, ev.id->context, &ev);
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && tp->ec)
		rxp_dbg(VERBS_LOG, "rdma_get_cm_event: %s", strerror(errno));
	return n;
}
