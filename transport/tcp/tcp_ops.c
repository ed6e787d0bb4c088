/* SPDX-License-Identifier: MIT */
/*
 * struct rxp_tp_ops rxp_tcp_ops: the TCP transport's entry points and the
 * choice between the io_uring backend ("tcp") and the poll+readv/writev
 * fallback ("tcp-poll"), made once at open() and logged.
 *
 * Environment:
 *   RXP_NO_URING=1             force the fallback
 *   RXP_TCP_ZC_THRESHOLD=n     SEND_ZC for storages >= n bytes (0: never)
 *   RXP_TCP_CONNECT_TIMEOUT_MS connect + handshake deadline (10000)
 *   RXP_MAX_CONNS=n            accepted connections alive at once
 *   RXP_MAX_UNAUTH_CONNS=n     of which still in their handshake (64)
 *   RXP_RECV_STALL_MS=n        a started frame idle this long fails its
 *                              connection (60000; 0 = never)
 *   RXP_MAX_RX_MEMORY=n        bytes of buffers all connections may hold
 *                              for frames not yet delivered (physical
 *                              memory)
 * (docs/tcp.md "Limits")
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "rxp_addr.h"
#include "tcp.h"

/* From perf/tcp_zc_threshold on loopback (see docs/tcp.md). */
#define TCP_ZC_DEFAULT 0
#define TCP_RX_COPY_MAX (16u << 10) /* = provided-buffer size */
#define TCP_POOL_PREALLOC 32
#define TCP_SMALL_PREALLOC 128

/* Listening beyond the loopback without a job secret: say so, once. */
static void warn_unauthenticated(const struct tcp_tp *tp)
{
	if (tp->key.on || !strncmp(tp->addr_str, "127.", 4) ||
	    !strncmp(tp->addr_str, "[::1]", 5))
		return;
	rxp_warn(TCP_LOG,
		 "listening on %s without authentication: anyone who reaches "
		 "this port can run registered functions (set "
		 "RXP_SECRET_FILE on every worker; see README)",
		 tp->addr_str);
}

/*
 * Connection caps. Each peer needs one accepted connection (two while it
 * reconnects), so 2 x world + 64 is never reached by a real job; it is
 * lowered to fit the fd limit, keeping room for our own outgoing
 * connections and files, so a flood of connects cannot take the fds our
 * real peers need. The receive memory ahead of the bytes defaults to the
 * physical memory: frames that really need more would have the worker
 * killed for memory once their bytes arrived anyway, and headers that
 * only announce it (1,024 storages of 16 GiB on each connection) are
 * refused before their address space is taken.
 */
static int limits_init(struct tcp_tp *tp)
{
	uint64_t def = 2 * (uint64_t)tp->world_size + 64;
	struct rlimit rl;
	long conns, unauth, stall, rxmem;
	int err;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY) {
		uint64_t spare = (uint64_t)tp->world_size + 64;
		uint64_t fit =
			rl.rlim_cur > spare + 16 ? rl.rlim_cur - spare : 16;

		def = def < fit ? def : fit;
	}
	if (def > 1000000)
		def = 1000000;
	err = rxp_env_int("RXP_MAX_CONNS", 1, 1000000, (long)def, &conns);
	if (!err)
		err = rxp_env_int("RXP_MAX_UNAUTH_CONNS", 1, 1000000, 64,
				  &unauth);
	if (!err)
		err = rxp_env_int("RXP_RECV_STALL_MS", 0, 86400000, 60000,
				  &stall);
	if (!err)
		err = rxp_env_int("RXP_MAX_RX_MEMORY", 1, LONG_MAX,
				  (long)rxp_phys_mem(), &rxmem);
	if (err)
		return err;
	tp->rx_mem_max = (uint64_t)rxmem;
	tp->max_conns = (unsigned)conns;
	tp->max_unauth = (unsigned)unauth;
	tp->stall_ns = (int64_t)stall * 1000000;
	rxp_dbg(TCP_LOG,
		"limits: %u accepted connections, %u in their handshake, "
		"%ld ms for a stalled frame, %ld bytes received ahead",
		tp->max_conns, tp->max_unauth, stall, rxmem);
	return 0;
}

static int tcp_open(const struct rxp_tp_attr *attr, struct rxp_tp **out)
{
	char why[160] = "";
	struct tcp_tp *tp;
	long zc, tmo;
	int err;

	rxp__log_init();
	if (!attr || !out || !attr->cb || !attr->cb->on_conn ||
	    !attr->cb->on_recv || !attr->cb->on_send)
		return -EINVAL;
	tp = rxp__calloc(1, sizeof(*tp));
	if (!tp)
		return -ENOMEM;
	tp->base.ops = &rxp_tcp_ops;
	tp->cb = *attr->cb;
	tp->local_id = attr->local_id;
	tp->world_size = attr->world_size;
	if (attr->key)
		tp->key = *attr->key;
	tp->lfd = -1;
	tp->max_payload = attr->max_payload ? attr->max_payload
					    : RXP_WIRE_DEFAULT_MAX_PAYLOAD;
	tp->max_storage = attr->max_storage ? attr->max_storage
					    : RXP_WIRE_DEFAULT_MAX_STORAGE;
	err = limits_init(tp);
	if (err)
		goto err_free;
	tp->peer_seen = rxp__calloc((tp->world_size + 7) / 8 + 1, 1);
	if (!tp->peer_seen) {
		err = -ENOMEM;
		goto err_free;
	}
	zc = rxp_env_long("RXP_TCP_ZC_THRESHOLD", TCP_ZC_DEFAULT);
	tp->zc_threshold = zc > 0 ? (size_t)zc : SIZE_MAX;
	tp->rx_copy_max = TCP_RX_COPY_MAX;
	tmo = rxp_env_long("RXP_TCP_CONNECT_TIMEOUT_MS", 10000);
	tp->conn_timeout = (tmo > 0 ? tmo : 10000) * 1000000ll;

	err = rxp_bufpool_create(TCP_RX_COPY_MAX, TCP_POOL_PREALLOC, &tp->pool);
	if (err)
		goto err_free;
	err = rxp_bufpool_create(TCP_SMALL_BUF, TCP_SMALL_PREALLOC,
				 &tp->pool_small);
	if (err)
		goto err_pool;

	if (attr->flags & RXP_TP_F_NO_URING) {
		snprintf(why, sizeof(why), "RXP_TP_F_NO_URING was given");
	} else if (rxp_env_bool("RXP_NO_URING", 0)) {
		snprintf(why, sizeof(why), "RXP_NO_URING=1");
	} else {
		err = tcp_uring_backend.init(tp, why, sizeof(why));
		if (!err)
			tp->be = &tcp_uring_backend;
	}
	if (!tp->be) {
		err = tcp_poll_backend.init(tp, NULL, 0);
		if (err)
			goto err_pool;
		tp->be = &tcp_poll_backend;
		rxp_info(TCP_LOG, "using tcp-poll (epoll + readv/writev): %s",
			 why);
	} else {
		rxp_info(TCP_LOG, "using tcp (io_uring): %s", why);
	}
	tp->base.name = tp->be->name;

	err = tcp_listen(tp, attr->bind_addr, attr->port,
			 tp->be == &tcp_poll_backend);
	if (err)
		goto err_be;
	err = tp->be->listen_start(tp);
	if (err)
		goto err_listen;
	warn_unauthenticated(tp);
	*out = &tp->base;
	return 0;

err_listen:
	rxp__tcp_sys->close(tp->lfd);
	tp->lfd = -1;
err_be:
	tp->be->fini(tp);
err_pool:
	rxp_bufpool_put(tp->pool_small);
	rxp_bufpool_put(tp->pool);
err_free:
	rxp_auth_wipe(&tp->key);
	rxp__free(tp->peer_seen);
	rxp__free(tp);
	return err;
}

static void tcp_close(struct rxp_tp *rtp)
{
	struct tcp_tp *tp;
	struct tcp_conn *c, *next;

	if (!rtp)
		return;
	tp = to_ttp(rtp);
	tp->closing = true;
	for (c = tp->conns; c; c = c->next)
		tcp_conn_fail(c, -ECANCELED);
	tp->be->drain(tp, 2000);
	tcp_tp_service(tp, rxp_now_ns());
	/* Whatever the kernel still holds after the drain: report it
	 * anyway, but leave its memory alone (leak) rather than free what a
	 * request may still write into. */
	for (c = tp->conns; c; c = c->next) {
		if (c->state != TC_CLOSING)
			continue;
		rxp_err(TCP_LOG,
			"%s: kernel requests did not finish; leaking the "
			"connection",
			c->peer_str);
		c->state = TC_DEAD;
		tcp_tx_fail_all(c, c->err);
		if (c->base.outgoing || c->announced)
			tcp_cb_conn(c, c->err);
	}
	if (tp->lfd >= 0)
		rxp__tcp_sys->close(tp->lfd);
	/* NOTIFs still due die with the ring; they write nothing of ours */
	for (c = tp->conns; c; c = next) {
		next = c->next;
		if (tcp_conn_quiescent(c))
			tcp_conn_free(c);
	}
	tp->be->fini(tp);
	rxp_bufpool_put(tp->pool_small);
	rxp_bufpool_put(tp->pool);
	rxp_auth_wipe(&tp->key);
	rxp__free(tp->peer_seen);
	rxp__free(tp);
}

static int tcp_address(struct rxp_tp *rtp, char *buf, size_t len)
{
	return rxp_str_out(buf, len, to_ttp(rtp)->addr_str);
}

static int tcp_connect(struct rxp_tp *rtp, const char *addr, uint32_t peer_id,
		       struct rxp_conn **out)
{
	const struct tcp_sys *sys = rxp__tcp_sys;
	struct tcp_tp *tp = to_ttp(rtp);
	bool nonblock = tp->be == &tcp_poll_backend;
	struct sockaddr_storage sa;
	struct tcp_conn *c;
	socklen_t len;
	int fd, err;

	if (!out)
		return -EINVAL;
	err = rxp_addr_parse(addr, &sa, &len);
	if (err) {
		rxp_err(TCP_LOG, "connect: '%s' is not ip:port",
			addr ? addr : "");
		return err;
	}
	fd = sys->socket(
		sa.ss_family,
		SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -errno;
	err = tcp_sock_setup(fd, nonblock);
	if (err)
		goto err_close;
	err = tcp_conn_new(tp, fd, true, &c);
	if (err)
		goto err_close;
	c->base.peer_id = peer_id;
	memcpy(&c->sa, &sa, len);
	c->salen = len;
	tcp_format_addr((struct sockaddr *)&sa, c->peer_str,
			sizeof(c->peer_str));
	err = tp->be->conn_start(c);
	if (err) {
		tcp_conn_free(c); /* closes fd */
		return err;
	}
	*out = &c->base;
	return 0;

err_close:
	sys->close(fd);
	return err;
}

static void tcp_disconnect(struct rxp_conn *rc)
{
	struct tcp_conn *c;

	if (!rc)
		return;
	c = to_tconn(rc);
	if (!tcp_conn_live(c))
		return;
	tcp_conn_fail(c, -ECANCELED);
	tcp_conn_try_finish(c);
}

static int tcp_send(struct rxp_conn *rc, const struct rxp_msg_out *m,
		    void *cookie)
{
	struct tcp_conn *c;
	int err;

	if (!rc || !m)
		return -EINVAL;
	c = to_tconn(rc);
	if (!tcp_conn_live(c))
		return c->err ? c->err : -ENOTCONN;
	err = tcp_tx_queue(c, m, cookie);
	if (err)
		return err;
	if (c->state != TC_CONNECTING)
		c->tp->be->conn_kick_tx(c);
	return 0;
}

static int tcp_cancel(struct rxp_conn *rc, void *cookie)
{
	struct tcp_conn *c = to_tconn(rc);

	/* a failing connection reports every send with its error anyway */
	return tcp_conn_live(c) ? tcp_tx_cancel(c, cookie) : -EBUSY;
}

static int tcp_progress(struct rxp_tp *rtp)
{
	return to_ttp(rtp)->be->progress(to_ttp(rtp));
}

static int tcp_wait_fd(struct rxp_tp *rtp)
{
	return to_ttp(rtp)->be->wait_fd(to_ttp(rtp));
}

static int tcp_arm(struct rxp_tp *rtp)
{
	return to_ttp(rtp)->be->arm(to_ttp(rtp));
}

const struct rxp_tp_ops rxp_tcp_ops = {
	.name = "tcp",
	.open = tcp_open,
	.close = tcp_close,
	.address = tcp_address,
	.connect = tcp_connect,
	.disconnect = tcp_disconnect,
	.send = tcp_send,
	.cancel = tcp_cancel,
	.progress = tcp_progress,
	.wait_fd = tcp_wait_fd,
	.arm = tcp_arm,
	.mem_register = NULL,
	.mem_unregister = NULL,
};
