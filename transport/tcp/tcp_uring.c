/* SPDX-License-Identifier: MIT */
/*
 * The io_uring backend ("tcp"). One ring per transport; wait_fd is the
 * ring fd (readable when CQEs are posted).
 *
 * Receive: a multishot IORING_OP_RECV per connection takes buffers from
 * the connection's own provided-buffer ring (tcp_bufring.c, UR_RBUFS x
 * UR_RBUF_SIZE). Each CQE's bytes go through the parser, which copies
 * them to their destination (header fields, or small pool buffers), and
 * the ring buffer goes straight back. When more than rx_copy_max bytes of a
 * body are still to come, the multishot request is cancelled and, after its
 * last CQE, one IORING_OP_RECVMSG (MSG_WAITALL) reads the rest of that body
 * straight into the final buffers. Then the multishot recv is armed
 * again. -ENOBUFS (ring empty) ends the multishot; it is re-armed.
 *
 * Send: one IORING_OP_SENDMSG in flight per connection, its iovecs a
 * window over the queued frames (header+lengths, payload pieces,
 * storages, no copies). Frames with a storage >= zc_threshold go out with
 * IORING_OP_SENDMSG_ZC; their slots are reported only after the
 * IORING_CQE_F_NOTIF CQE. Short sends advance the window.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tcp_uring.h"

static void u_fini(struct tcp_tp *tp);

static int u_init(struct tcp_tp *tp, char *why, size_t whylen)
{
	static const int need[] = {IORING_OP_SENDMSG, IORING_OP_RECV,
				   IORING_OP_RECVMSG, IORING_OP_ACCEPT,
				   IORING_OP_CONNECT, IORING_OP_ASYNC_CANCEL};
	struct io_uring_params p = {0};
	struct io_uring_probe *probe;
	struct tcp_ur *ur = rxp__calloc(1, sizeof(*ur));
	int err;

	if (!ur)
		return -ENOMEM;
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = UR_CQ_ENTRIES;
	err = rxp__tcp_sys->uring_init(UR_SQ_ENTRIES, &ur->ring, &p);
	if (err) {
		snprintf(why, whylen, "io_uring_queue_init: %s%s",
			 strerror(-err),
			 err == -EPERM
				 ? " (seccomp or kernel.io_uring_disabled)"
			 : err == -ENOSYS ? " (kernel without io_uring)"
					  : "");
		rxp__free(ur);
		return err;
	}
	tp->be_data = ur;
	ur->r_accept.kind = REQ_ACCEPT;
	ur->r_timer.kind = REQ_TIMER;
	probe = io_uring_get_probe_ring(&ur->ring);
	if (!probe) {
		snprintf(why, whylen, "io_uring probe failed");
		err = -EOPNOTSUPP;
		goto err_fini;
	}
	for (size_t i = 0; i < RXP_ARRAY_SIZE(need); i++) {
		if (!io_uring_opcode_supported(probe, need[i])) {
			snprintf(why, whylen, "kernel lacks io_uring opcode %d",
				 need[i]);
			io_uring_free_probe(probe);
			err = -EOPNOTSUPP;
			goto err_fini;
		}
	}
	ur->zc_ok = io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
	io_uring_free_probe(probe);
	{
		/* provided-buffer rings (5.19+): try one */
		struct tcp_bufring *b;

		err = tcp_bufring_new(&ur->ring, 0, 2, 64, &b);
		if (err) {
			snprintf(why, whylen,
				 "io_uring_register_buf_ring: %s (kernel too "
				 "old?)",
				 strerror(-err));
			goto err_fini;
		}
		tcp_bufring_free(&ur->ring, b);
	}
	snprintf(why, whylen,
		 "multishot recv, %u x %u B provided buffers per connection, "
		 "SENDMSG_ZC %s",
		 UR_RBUFS, UR_RBUF_SIZE,
		 !ur->zc_ok			? "unsupported"
		 : tp->zc_threshold == SIZE_MAX ? "off"
						: "on");
	return 0;

err_fini:
	u_fini(tp);
	return err;
}

static void u_fini(struct tcp_tp *tp)
{
	struct tcp_ur *ur = to_ur(tp);

	if (!ur)
		return;
	io_uring_queue_exit(&ur->ring);
	rxp__free(ur);
	tp->be_data = NULL;
}

static void arm_accept(struct tcp_tp *tp)
{
	struct tcp_ur *ur = to_ur(tp);
	struct io_uring_sqe *sqe;

	if (ur->accept_on || tp->closing || tp->lfd < 0 ||
	    tcp_accept_paused(tp))
		return;
	sqe = u_sqe(ur);
	if (!sqe) {
		tp->need_service = true;
		return;
	}
	/* one accept at a time, re-armed after each: a multishot accept
	 * lets the kernel take connections (and fds) while nobody reaps
	 * them, e.g. during the rendezvous, past every cap we apply */
	io_uring_prep_accept(sqe, tp->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &ur->r_accept);
	ur->accept_on = true;
}

static int u_listen_start(struct tcp_tp *tp)
{
	arm_accept(tp);
	return io_uring_submit(&to_ur(tp)->ring) < 0 ? -EIO : 0;
}

static void u_listen_pause(struct tcp_tp *tp)
{
	/* the failed CQE was the accept's last and arm_accept() holds off
	 * while paused: nothing to stop */
	(void)tp;
}

static int u_conn_start(struct tcp_conn *c)
{
	struct tcp_ur *ur = to_ur(c->tp);
	struct io_uring_sqe *sqe;
	int bgid, err;

	bgid = tcp_bgid_get(&ur->bgids);
	if (bgid < 0)
		return bgid;
	err = tcp_bufring_new(&ur->ring, (uint16_t)bgid, UR_RBUFS, UR_RBUF_SIZE,
			      &c->rbr);
	if (err) {
		tcp_bgid_put(&ur->bgids, (uint16_t)bgid);
		return err;
	}

	if (!c->base.outgoing) {
		tcp_ur_rx_kick(c);
		tcp_ur_tx_kick(c);
		return 0;
	}
	sqe = u_sqe(ur);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&c->sa, c->salen);
	io_uring_sqe_set_data(sqe, &c->r_connect);
	c->connect_on = true;
	c->io_refs++;
	if (!c->tp->in_progress && !c->tp->cb_depth)
		io_uring_submit(&ur->ring);
	return 0;
}

static void u_conn_stop(struct tcp_conn *c)
{
	struct tcp_ur *ur = to_ur(c->tp);
	struct io_uring_sqe *sqe;

	/* wakes recv and send at once; the cancel gets connect and polls */
	rxp__tcp_sys->shutdown(c->fd, SHUT_RDWR);
	if (tcp_conn_quiescent(c))
		return;
	sqe = u_sqe(ur);
	if (sqe) {
		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data(sqe, NULL);
	}
	if (!c->tp->in_progress && !c->tp->cb_depth)
		io_uring_submit(&ur->ring);
}

static void u_conn_free(struct tcp_conn *c)
{
	struct tcp_ur *ur = to_ur(c->tp);

	if (!c->rbr)
		return;
	tcp_bgid_put(&ur->bgids, tcp_bufring_bgid(c->rbr));
	tcp_bufring_free(&ur->ring, c->rbr);
	c->rbr = NULL;
}

static void u_kick_tx(struct tcp_conn *c)
{
	struct tcp_tp *tp = c->tp;

	tcp_ur_tx_kick(c);
	/* outside progress: go now (one syscall); inside: batched */
	if (!tp->in_progress && !tp->cb_depth)
		io_uring_submit(&to_ur(tp)->ring);
}

static void on_accept(struct tcp_tp *tp, struct io_uring_cqe *cqe)
{
	struct tcp_ur *ur = to_ur(tp);

	if (!(cqe->flags & IORING_CQE_F_MORE))
		ur->accept_on = false;
	if (cqe->res >= 0)
		tcp_accept_fd(tp, cqe->res);
	else if (cqe->res != -ECANCELED && cqe->res != -EINTR)
		tcp_accept_error(tp, cqe->res);
}

static void handle(struct tcp_tp *tp, struct io_uring_cqe *cqe)
{
	struct tcp_req *r = io_uring_cqe_get_data(cqe);
	struct tcp_conn *c;

	if (!r)
		return; /* cancel / nop */
	c = r->c;
	switch (r->kind) {
	case REQ_ACCEPT:
		on_accept(tp, cqe);
		break;
	case REQ_TIMER:
		to_ur(tp)->timer_at = 0; /* service() re-arms if needed */
		break;
	case REQ_CONNECT:
		c->connect_on = false;
		c->io_refs--;
		if (!tcp_conn_live(c))
			break;
		if (cqe->res < 0)
			tcp_conn_fail(c, cqe->res);
		else
			tcp_conn_connected(c);
		break;
	case REQ_RECV_MS:
		tcp_ur_on_recv_ms(c, cqe);
		break;
	case REQ_RECV_DIRECT:
		tcp_ur_on_recv_direct(c, cqe->res);
		break;
	case REQ_SEND:
		tcp_ur_on_send(c, cqe->res);
		break;
	case REQ_SEND_ZC:
		tcp_ur_on_send_zc(rxp_container_of(r, struct tcp_zc, req), cqe);
		break;
	default:
		break;
	}
}

static int reap(struct tcp_tp *tp)
{
	struct tcp_ur *ur = to_ur(tp);
	struct io_uring_cqe *cqes[UR_CQE_BATCH];
	int total = 0;

	for (int round = 0; round < 4; round++) {
		unsigned n =
			io_uring_peek_batch_cqe(&ur->ring, cqes, UR_CQE_BATCH);

		for (unsigned i = 0; i < n; i++)
			handle(tp, cqes[i]);
		io_uring_cq_advance(&ur->ring, n);
		total += (int)n;
		if (n < UR_CQE_BATCH)
			break;
	}
	return total;
}

static int u_progress(struct tcp_tp *tp)
{
	struct tcp_ur *ur = to_ur(tp);
	int n, ret;

	ret = io_uring_submit(&ur->ring);
	if (ret < 0 && ret != -EBUSY && ret != -EAGAIN && ret != -EINTR)
		return ret;
	tp->in_progress = true;
	n = reap(tp);
	tp->in_progress = false;
	n += tcp_tp_service(tp, rxp_now_ns());
	for (struct tcp_conn *c = tp->conns; c; c = c->next) {
		tcp_ur_rx_kick(c);
		tcp_ur_tx_kick(c);
	}
	arm_accept(tp);
	io_uring_submit(&ur->ring);
	return n;
}

static void u_timer(struct tcp_tp *tp, int64_t when)
{
	struct tcp_ur *ur = to_ur(tp);
	struct io_uring_sqe *sqe;

	if (ur->timer_at && ur->timer_at <= when)
		return; /* one at least as early is armed */
	sqe = u_sqe(ur);
	if (!sqe)
		return;
	/* read by the kernel at submission, at the end of this progress() */
	ur->timer_ts.tv_sec = when / 1000000000;
	ur->timer_ts.tv_nsec = when % 1000000000;
	io_uring_prep_timeout(sqe, &ur->timer_ts, 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data(sqe, &ur->r_timer);
	ur->timer_at = when;
}

static int u_wait_fd(struct tcp_tp *tp)
{
	return to_ur(tp)->ring.ring_fd;
}

static int u_arm(struct tcp_tp *tp)
{
	struct tcp_ur *ur = to_ur(tp);

	io_uring_submit(&ur->ring);
	return tp->need_service || io_uring_cq_ready(&ur->ring) ? 1 : 0;
}

static bool all_quiescent(struct tcp_tp *tp)
{
	for (struct tcp_conn *c = tp->conns; c; c = c->next)
		if (!tcp_conn_quiescent(c))
			return false;
	return true;
}

static void u_drain(struct tcp_tp *tp, int ms)
{
	struct tcp_ur *ur = to_ur(tp);
	int64_t end = rxp_now_ns() + (int64_t)ms * 1000000;
	struct io_uring_cqe *cqe;

	io_uring_submit(&ur->ring);
	while (!all_quiescent(tp) && rxp_now_ns() < end) {
		struct __kernel_timespec ts = {.tv_nsec = 10000000};

		io_uring_submit_and_wait_timeout(&ur->ring, &cqe, 1, &ts, NULL);
		tp->in_progress = true;
		reap(tp);
		tp->in_progress = false;
	}
}

const struct tcp_backend tcp_uring_backend = {
	.name = "tcp",
	.init = u_init,
	.fini = u_fini,
	.conn_start = u_conn_start,
	.listen_start = u_listen_start,
	.listen_pause = u_listen_pause,
	.conn_kick_tx = u_kick_tx,
	.conn_stop = u_conn_stop,
	.conn_free = u_conn_free,
	.progress = u_progress,
	.wait_fd = u_wait_fd,
	.arm = u_arm,
	.timer = u_timer,
	.drain = u_drain,
};
