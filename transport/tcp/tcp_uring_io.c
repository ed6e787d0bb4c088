/* SPDX-License-Identifier: MIT */
/*
 * io_uring backend, per-connection I/O: the receive side (multishot recv
 * on the connection's provided buffers; cancel and one direct RECVMSG
 * into the final buffers for large bodies) and the send side (one
 * SENDMSG or SENDMSG_ZC in flight over a window of queued frames; ZC
 * slots held until their NOTIF). See tcp_uring.c and docs/tcp.md.
 */
#include <errno.h>
#include <string.h>

#include "tcp_uring.h"

/* Keep the receive side going: multishot, or a direct read of a body. */
void tcp_ur_rx_kick(struct tcp_conn *c)
{
	struct tcp_ur *ur = to_ur(c->tp);
	struct io_uring_sqe *sqe;
	bool direct;
	int n;

	if (!tcp_conn_live(c) || c->state == TC_CONNECTING || c->direct_on)
		return;
	direct = tcp_rx_want_direct(c);
	if (c->ms_on) {
		if (!direct || c->ms_cancel)
			return;
		sqe = u_sqe(ur);
		if (!sqe)
			goto busy;
		io_uring_prep_cancel(sqe, &c->r_ms, 0);
		io_uring_sqe_set_data(sqe, NULL);
		c->ms_cancel = true;
		return;
	}
	sqe = u_sqe(ur);
	if (!sqe)
		goto busy;
	if (direct) {
		n = tcp_rx_direct_iov(c, c->rx_iov, TCP_TX_IOV);
		if (n <= 0) {
			/* the SQE stays a NOP: nothing to undo */
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data(sqe, NULL);
			tcp_conn_fail(c, n < 0 ? n : -EIO);
			return;
		}
		memset(&c->rx_msg, 0, sizeof(c->rx_msg));
		c->rx_msg.msg_iov = c->rx_iov;
		c->rx_msg.msg_iovlen = (size_t)n;
		io_uring_prep_recvmsg(sqe, c->fd, &c->rx_msg, MSG_WAITALL);
		io_uring_sqe_set_data(sqe, &c->r_direct);
		c->direct_on = true;
		c->tp->stats.direct_recvs++;
	} else {
		/* Right after a direct read another large frame is likely:
		 * one single-shot recv (one buffer) needs no cancel if its
		 * header announces a big body; multishot comes after it. */
		if (c->rx_single)
			io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
		else
			io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		c->rx_single = false;
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = tcp_bufring_bgid(c->rbr);
		io_uring_sqe_set_data(sqe, &c->r_ms);
		c->ms_on = true;
		c->ms_cancel = false;
		c->tp->stats.ms_rearms++;
	}
	c->io_refs++;
	return;
busy:
	c->tp->need_service = true;
}

static struct tcp_zc *zc_get(struct tcp_conn *c)
{
	for (int i = 0; i < TCP_ZC_MAX; i++)
		if (!c->zc[i].busy)
			return &c->zc[i];
	return NULL;
}

/* Walk the slots a SEND_ZC request covered. */
static void zc_refs(struct tcp_zc *z, int delta)
{
	struct tcp_slot *s = z->first;

	for (uint32_t i = 0; i < z->nslots && s; i++, s = s->next)
		s->zc_refs += (uint32_t)delta;
}

void tcp_ur_tx_kick(struct tcp_conn *c)
{
	struct tcp_tp *tp = c->tp;
	struct tcp_ur *ur = to_ur(tp);
	struct io_uring_sqe *sqe;
	struct tcp_zc *z = NULL;
	unsigned nslots;
	bool zc;
	int n;

	if (!tcp_conn_live(c) || c->state == TC_CONNECTING || c->send_on ||
	    !tcp_tx_pending(c))
		return;
	sqe = u_sqe(ur);
	if (!sqe) {
		tp->need_service = true;
		return;
	}
	n = tcp_tx_fill(c, c->tx_iov, TCP_TX_IOV, &nslots, &zc);
	memset(&c->tx_msg, 0, sizeof(c->tx_msg));
	c->tx_msg.msg_iov = c->tx_iov;
	c->tx_msg.msg_iovlen = (size_t)n;
	if (zc && ur->zc_ok)
		z = zc_get(c); /* none free: copy this time */
	if (z) {
		z->busy = true;
		z->first = c->tx_cur;
		z->nslots = nslots;
		zc_refs(z, 1);
		io_uring_prep_sendmsg_zc(sqe, c->fd, &c->tx_msg, MSG_NOSIGNAL);
		io_uring_sqe_set_data(sqe, &z->req);
		tp->stats.zc_sends++;
	} else {
		io_uring_prep_sendmsg(sqe, c->fd, &c->tx_msg, MSG_NOSIGNAL);
		io_uring_sqe_set_data(sqe, &c->r_send);
		tp->stats.copy_sends++;
	}
	c->send_on = true;
	c->tx_window = nslots;
	c->io_refs++;
}

void tcp_ur_on_recv_ms(struct tcp_conn *c, struct io_uring_cqe *cqe)
{
	int res = cqe->res, err = 0;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		const uint8_t *buf = tcp_bufring_buf(c->rbr, bid);

		if (!buf)
			err = -EIO;
		else if (res > 0 && tcp_conn_live(c))
			err = tcp_rx_feed(c, buf, (size_t)res);
		if (buf)
			tcp_bufring_recycle(c->rbr, bid);
	}
	if (res == 0)
		err = -RXP_E_PEER_LOST;
	else if (res == -ENOBUFS)
		c->tp->stats.enobufs++; /* re-armed below */
	else if (res < 0 && res != -ECANCELED && res != -EINTR)
		err = res;
	if (err)
		tcp_conn_fail(c, err);
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		c->ms_on = false;
		c->ms_cancel = false;
		c->io_refs--;
	}
}

void tcp_ur_on_recv_direct(struct tcp_conn *c, int res)
{
	int err = 0;

	c->direct_on = false;
	c->io_refs--;
	if (!tcp_conn_live(c))
		return;
	c->rx_single = true;
	if (res > 0)
		err = tcp_rx_direct_done(c, (size_t)res);
	else if (res == 0)
		err = -RXP_E_PEER_LOST;
	else if (res != -EAGAIN && res != -EINTR)
		err = res;
	if (err)
		tcp_conn_fail(c, err);
}

static void sent(struct tcp_conn *c, int res)
{
	if (res > 0)
		tcp_tx_advance(c, (size_t)res);
	else if (res < 0 && res != -EAGAIN && res != -EINTR &&
		 res != -ENOBUFS && res != -ECANCELED)
		tcp_conn_fail(c, res);
	else if (res == -ECANCELED && tcp_conn_live(c))
		tcp_conn_fail(c, res);
}

void tcp_ur_on_send_zc(struct tcp_zc *z, struct io_uring_cqe *cqe)
{
	struct tcp_conn *c = z->req.c;

	if (cqe->flags & IORING_CQE_F_NOTIF) {
		zc_refs(z, -1);
		z->busy = false;
		z->first = NULL;
		c->notif--;
		c->io_refs--;
		return;
	}
	c->send_on = false;
	if (cqe->flags & IORING_CQE_F_MORE) {
		c->notif++; /* the io_ref now stands for the NOTIF */
	} else {
		zc_refs(z, -1);
		z->busy = false;
		z->first = NULL;
		c->io_refs--;
	}
	sent(c, cqe->res);
}

void tcp_ur_on_send(struct tcp_conn *c, int res)
{
	c->send_on = false;
	c->io_refs--;
	sent(c, res);
}
