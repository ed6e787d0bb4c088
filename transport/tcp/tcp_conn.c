/* SPDX-License-Identifier: MIT */
/*
 * Connection life cycle shared by both backends, plus addresses and
 * sockets.
 *
 *   CONNECTING -> HANDSHAKE -> OPEN -> CLOSING -> DEAD -> freed
 *
 * tcp_conn_fail() records the first error and asks the backend to stop
 * the socket's I/O. Once no kernel request can touch our memory any more
 * (io_refs == notif: only SEND_ZC notifications left, which reference
 * pinned pages, not our pointers) and no callback of the connection is
 * running, finish() reports every pending send, then on_conn(<0), and
 * marks it DEAD. DEAD connections stay on the list (so iterations during
 * callbacks stay valid) until the sweep frees them with io_refs == 0.
 * Incoming connections that fail before their handshake completed were
 * never shown to the agent and are dropped without on_conn.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rxp_addr.h"
#include "tcp.h"

bool tcp_conn_live(const struct tcp_conn *c)
{
	return c->state < TC_CLOSING;
}

void tcp_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)sa;

		inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(v4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)sa;

		inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(v6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

int tcp_sock_setup(int fd, bool nonblock)
{
	const struct tcp_sys *sys = rxp__tcp_sys;
	int one = 1;

	(void)nonblock;
	if (sys->setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		return -errno;
	return 0;
}

int tcp_listen(struct tcp_tp *tp, const char *bind_addr, uint16_t port,
	       bool nonblock)
{
	const struct tcp_sys *sys = rxp__tcp_sys;
	struct sockaddr_storage sa;
	socklen_t len;
	int fd, one = 1, err;

	err = rxp_addr_parse_ip(bind_addr, port, &sa, &len);
	if (err) {
		rxp_err(TCP_LOG,
			"bind address '%s' is not a numeric IPv4/IPv6 address",
			bind_addr);
		return err;
	}
	fd = sys->socket(
		sa.ss_family,
		SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -errno;
	if (sys->setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    sys->bind(fd, (struct sockaddr *)&sa, len) || sys->listen(fd, 512))
		goto err_close;
	len = sizeof(sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &len))
		goto err_close;
	tcp_format_addr((struct sockaddr *)&sa, tp->addr_str,
			sizeof(tp->addr_str));
	tp->lfd = fd;
	tp->family = sa.ss_family;
	return 0;

err_close:
	err = -errno;
	rxp_err(TCP_LOG, "listen on %s port %u: %s",
		bind_addr ? bind_addr : "0.0.0.0", port, strerror(errno));
	sys->close(fd);
	return err;
}

int tcp_conn_new(struct tcp_tp *tp, int fd, bool outgoing,
		 struct tcp_conn **out)
{
	struct tcp_conn *c = rxp__calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->tp = tp;
	c->base.tp = &tp->base;
	c->base.outgoing = outgoing;
	c->fd = fd;
	c->state = outgoing ? TC_CONNECTING : TC_HANDSHAKE;
	c->deadline = rxp_now_ns() + tp->conn_timeout;
	c->r_connect = (struct tcp_req){REQ_CONNECT, c};
	c->r_ms = (struct tcp_req){REQ_RECV_MS, c};
	c->r_direct = (struct tcp_req){REQ_RECV_DIRECT, c};
	c->r_send = (struct tcp_req){REQ_SEND, c};
	for (int i = 0; i < TCP_ZC_MAX; i++)
		c->zc[i].req = (struct tcp_req){REQ_SEND_ZC, c};
	snprintf(c->peer_str, sizeof(c->peer_str), "?");
	err = tcp_rx_init(&c->rx);
	if (err)
		goto err_free;
	err = tcp_tx_queue_hs(c);
	if (err)
		goto err_rx;
	c->next = tp->conns;
	if (tp->conns)
		tp->conns->prev = c;
	tp->conns = c;
	*out = c;
	return 0;

err_rx:
	tcp_rx_fini(c);
err_free:
	rxp__free(c);
	return err;
}

/* Unlink and free. The fd is closed here, after the kernel let go. */
void tcp_conn_free(struct tcp_conn *c)
{
	struct tcp_tp *tp = c->tp;

	if (c->prev)
		c->prev->next = c->next;
	else if (tp->conns == c)
		tp->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	tcp_rx_fini(c);
	tcp_tx_free(c);
	if (c->fd >= 0)
		rxp__tcp_sys->close(c->fd);
	tp->be->conn_free(c);
	rxp__free(c);
}

void tcp_conn_connected(struct tcp_conn *c)
{
	if (c->state == TC_CONNECTING)
		c->state = TC_HANDSHAKE;
}

void tcp_cb_conn(struct tcp_conn *c, int status)
{
	struct tcp_tp *tp = c->tp;

	tcp_cb_enter(c);
	tp->cb.on_conn(tp->cb.ctx, &c->base, status);
	tcp_cb_leave(c);
}

void tcp_conn_fail(struct tcp_conn *c, int err)
{
	struct tcp_tp *tp = c->tp;

	if (!tcp_conn_live(c))
		return;
	if (err == -EPIPE)
		err = -ECONNRESET;
	if (c->base.outgoing && c->state == TC_HANDSHAKE &&
	    c->rx.state == RX_PROOF &&
	    (err == -ECONNRESET || err == -RXP_E_PEER_LOST)) {
		/* the acceptor closed on our proof instead of answering with
		 * its own: a different secret, said so, not "peer lost" */
		atomic_fetch_add_explicit(&tp->base.auth_refused, 1,
					  memory_order_relaxed);
		rxp_warn(TCP_LOG,
			 "%s: peer closed the connection on our proof: its "
			 "job secret differs",
			 c->peer_str);
		err = -RXP_E_AUTH;
	}
	c->err = err;
	c->state = TC_CLOSING;
	if (err == -RXP_E_PROTO)
		tp->stats.proto_errors++;
	if (err == -ECANCELED) {
		rxp_dbg(TCP_LOG, "%s: disconnected", c->peer_str);
	} else if (!c->base.outgoing && !c->announced) {
		/* a stranger's connection that never completed its handshake
		 * (silence, garbage, a refused proof, a cap): anyone can make
		 * these, so they are counted and logged once a second */
		rxp_dbg(TCP_LOG, "%s: incoming connection failed: %s",
			c->peer_str, rxp_strerror(err));
		if (err != -RXP_E_LIMIT && err != -RXP_E_AUTH)
			tcp_refusal(&tp->base.conns_prehs_failed,
				    &tp->stats.prehs_log, c->peer_str,
				    "failed in its handshake",
				    rxp_strerror(err));
	} else { /* a peer that goes away is the agent's to report */
		rxp_log(err == -RXP_E_PEER_LOST || err == -ECONNRESET ||
					err == -RXP_E_LIMIT
				? RXP_LOG_DEBUG
				: RXP_LOG_WARN,
			TCP_LOG, "%s: connection %s: %s", c->peer_str,
			c->announced ? "lost" : "failed", rxp_strerror(err));
	}
	tp->be->conn_stop(c);
	tp->need_service = true;
}

static void finish(struct tcp_conn *c)
{
	c->state = TC_DEAD;
	tcp_tx_fail_all(c, c->err);
	/* nothing writes into the receive buffers any more */
	tcp_rx_fini(c);
	if (c->base.outgoing || c->announced)
		tcp_cb_conn(c, c->err);
}

void tcp_conn_try_finish(struct tcp_conn *c)
{
	struct tcp_tp *tp = c->tp;

	if (c->state == TC_CLOSING && !tp->in_progress && !tp->cb_depth &&
	    tcp_conn_quiescent(c))
		finish(c);
	else
		tp->need_service = true;
}

static void sweep(struct tcp_tp *tp)
{
	struct tcp_conn *c, *next;

	for (c = tp->conns; c; c = next) {
		next = c->next;
		if (c->state == TC_DEAD && !c->io_refs)
			tcp_conn_free(c);
	}
}

/*
 * A frame that has started must keep arriving: a peer that sends a
 * header announcing 1 GiB, then nothing, would otherwise pin what came
 * (and its connection) for good. No clock is read on the receive path:
 * each service compares the bytes received with what the last one saw.
 * An idle connection between frames is left alone (closing it could
 * race with a call the peer is sending); the connection caps bound how
 * many there can be.
 */
static void check_stall(struct tcp_conn *c, int64_t now)
{
	struct tcp_tp *tp = c->tp;
	bool started = c->rx.state != RX_HDR || c->rx.have;

	if (!tp->stall_ns || !started) {
		c->stall_at = 0;
		c->rx_mark = c->rx_total;
		return;
	}
	if (c->rx_total != c->rx_mark || !c->stall_at) {
		c->rx_mark = c->rx_total;
		c->stall_at = now + tp->stall_ns;
		return;
	}
	if (now < c->stall_at)
		return;
	atomic_fetch_add_explicit(&tp->base.conns_stalled, 1,
				  memory_order_relaxed);
	rxp_warn(TCP_LOG,
		 "%s: no byte of a started frame for %lld ms "
		 "(RXP_RECV_STALL_MS): closing the connection",
		 c->peer_str, (long long)(tp->stall_ns / 1000000));
	tcp_conn_fail(c, -ETIMEDOUT);
}

int tcp_tp_service(struct tcp_tp *tp, int64_t now)
{
	int64_t next = 0;
	int n = 0, round = 0;
	bool again;

	if (tp->cb_depth || tp->in_progress)
		return 0;
	if (tcp_accept_paused(tp) && now >= tp->accept_pause_until) {
		tp->accept_pause_until = 0;
		if (!tp->closing && tp->be->listen_start(tp))
			tcp_accept_error(tp, -ENOMEM); /* try again later */
	}
	do {
		again = false;
		tp->need_service = false;
		for (struct tcp_conn *c = tp->conns; c; c = c->next) {
			if (c->state <= TC_HANDSHAKE && now > c->deadline)
				tcp_conn_fail(c, -ETIMEDOUT);
			else if (c->state == TC_OPEN)
				check_stall(c, now);
			if (tcp_conn_live(c)) {
				n += tcp_tx_complete(c);
			} else if (c->state == TC_CLOSING &&
				   tcp_conn_quiescent(c)) {
				finish(c);
				n++;
				again = true;
			}
		}
		/* callbacks may have failed connections earlier in the list */
		again |= tp->need_service;
	} while (again && ++round < 8);
	sweep(tp);
	/* the earliest connect/handshake/stall deadline must wake the
	 * sleeper, and so must the end of an accept pause */
	for (struct tcp_conn *c = tp->conns; c; c = c->next) {
		int64_t at = c->state <= TC_HANDSHAKE ? c->deadline
			     : c->state == TC_OPEN    ? c->stall_at
						      : 0;

		if (at && (!next || at < next))
			next = at;
	}
	if (tcp_accept_paused(tp) && (!next || tp->accept_pause_until < next))
		next = tp->accept_pause_until;
	if (next && !tp->closing)
		tp->be->timer(tp, next);
	return n;
}

void tcp_refusal(atomic_uint_fast64_t *count, struct rxp_ratelog *rl,
		 const char *who, const char *what, const char *why)
{
	uint64_t total =
		1 + atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
	uint64_t n;

	if (rxp_ratelog_due(rl, total, &n))
		rxp_warn(TCP_LOG,
			 "%s: connection %s: %s (%llu since the last "
			 "such line)",
			 who, what, why, (unsigned long long)n);
}

static void limit_refuse(struct tcp_tp *tp, const char *who, const char *why)
{
	tcp_refusal(&tp->base.conns_limited, &tp->stats.limit_log, who,
		    "closed by a cap", why);
}

/*
 * Make room for one more accepted connection (docs/tcp.md "Limits").
 * Connections still in their handshake have proved nothing: when they
 * reach max_unauth, or all accepted ones reach max_conns, the oldest of
 * them goes, so a flood of idle connects cannot lock real peers out.
 * Returns false when every accepted connection is past its handshake
 * and max_conns is reached: then the new one is refused.
 */
static bool make_room(struct tcp_tp *tp)
{
	struct tcp_conn *oldest = NULL;
	unsigned in = 0, unauth = 0;

	for (struct tcp_conn *c = tp->conns; c; c = c->next) {
		if (c->base.outgoing || !tcp_conn_live(c))
			continue;
		in++;
		if (c->state == TC_HANDSHAKE) {
			unauth++;
			oldest = c; /* the list is newest first */
		}
	}
	if (in < tp->max_conns && unauth < tp->max_unauth)
		return true;
	if (!oldest)
		return false;
	limit_refuse(tp, oldest->peer_str,
		     unauth >= tp->max_unauth
			     ? "the oldest of RXP_MAX_UNAUTH_CONNS connections "
			       "still in their handshake"
			     : "the oldest connection still in its handshake, "
			       "at RXP_MAX_CONNS");
	tcp_conn_fail(oldest, -RXP_E_LIMIT);
	return true;
}

void tcp_accept_fd(struct tcp_tp *tp, int fd)
{
	const struct tcp_sys *sys = rxp__tcp_sys;
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	char who[64] = "?";
	struct tcp_conn *c;
	int err;

	tp->accept_backoff_ns = 0; /* accepting works again */
	if (tp->closing) {
		sys->close(fd);
		return;
	}
	if (!getpeername(fd, (struct sockaddr *)&sa, &len))
		tcp_format_addr((struct sockaddr *)&sa, who, sizeof(who));
	if (!make_room(tp)) {
		limit_refuse(tp, who,
			     "RXP_MAX_CONNS accepted connections are open");
		sys->close(fd);
		return;
	}
	err = tcp_sock_setup(fd, tp->be == &tcp_poll_backend);
	if (!err)
		err = tcp_conn_new(tp, fd, false, &c);
	if (err) {
		rxp_warn(TCP_LOG, "%s: dropping an accepted connection: %s",
			 who, rxp_strerror(err));
		sys->close(fd);
		return;
	}
	memcpy(c->peer_str, who, sizeof(c->peer_str));
	tp->stats.accepted++;
	err = tp->be->conn_start(c);
	if (err) {
		rxp_warn(TCP_LOG, "%s: cannot start: %s", c->peer_str,
			 rxp_strerror(err));
		tcp_conn_free(c);
	}
}

void tcp_accept_error(struct tcp_tp *tp, int err)
{
	uint64_t n;
	bool pause = err == -EMFILE || err == -ENFILE || err == -ENOBUFS ||
		     err == -ENOMEM;

	tp->stats.accept_errors++;
	if (pause && !tp->closing) {
		/* 10 ms, doubling to 1 s while it keeps failing */
		int64_t b = 2 * tp->accept_backoff_ns;

		tp->accept_backoff_ns = !b		   ? 10000000ll
					: b > 1000000000ll ? 1000000000ll
							   : b;
		tp->accept_pause_until = rxp_now_ns() + tp->accept_backoff_ns;
		atomic_fetch_add_explicit(&tp->base.accept_pauses, 1,
					  memory_order_relaxed);
		tp->be->listen_pause(tp);
		tp->need_service = true;
	}
	if (rxp_ratelog_due(&tp->stats.accept_log, tp->stats.accept_errors, &n))
		rxp_warn(TCP_LOG,
			 "accept: %s%s (%llu failures since the last such "
			 "line)",
			 rxp_strerror(err),
			 pause ? "; not accepting for a while (raise the fd "
				 "limit, RLIMIT_NOFILE, or lower "
				 "RXP_MAX_CONNS)"
			       : "",
			 (unsigned long long)n);
}
