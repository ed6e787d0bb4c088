/* SPDX-License-Identifier: MIT */
/*
 * The fallback backend ("tcp-poll"): non-blocking sockets in one
 * level-triggered epoll set (its fd is wait_fd), sendmsg with the same
 * iovec windows as the io_uring path (storages are never copied), and
 * reads that go through a per-connection staging buffer for headers and
 * small bodies and straight into the destination buffers (readv) for
 * bodies larger than rx_copy_max. No kernel request outlives a call, so
 * a failed connection is finished at once.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "tcp.h"

#define POLL_EVENTS 64
#define POLL_READS_PER_EVENT 16

struct tcp_ep {
	int epfd;
	int tfd;	  /* timerfd for connect/handshake deadlines */
	int64_t timer_at; /* armed expiry, 0: none */
	struct epoll_event ev[POLL_EVENTS];
};

static char timer_tag; /* epoll data.ptr of the timerfd */

static struct tcp_ep *to_ep(struct tcp_tp *tp)
{
	return tp->be_data;
}

static int p_init(struct tcp_tp *tp, char *why, size_t whylen)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &timer_tag};
	struct tcp_ep *ep = rxp__calloc(1, sizeof(*ep));
	int err;

	if (!ep)
		return -ENOMEM;
	ep->epfd = rxp__tcp_sys->epoll_create1(EPOLL_CLOEXEC);
	if (ep->epfd < 0) {
		err = -errno;
		rxp_err(TCP_LOG, "epoll_create1: %s", rxp_strerror(err));
		rxp__free(ep);
		return err;
	}
	ep->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ep->tfd < 0 ||
	    rxp__tcp_sys->epoll_ctl(ep->epfd, EPOLL_CTL_ADD, ep->tfd, &ev)) {
		err = -errno;
		rxp_err(TCP_LOG, "timerfd: %s", rxp_strerror(err));
		if (ep->tfd >= 0)
			close(ep->tfd);
		rxp__tcp_sys->close(ep->epfd);
		rxp__free(ep);
		return err;
	}
	tp->be_data = ep;
	return 0;
}

static void p_timer(struct tcp_tp *tp, int64_t when)
{
	struct tcp_ep *ep = to_ep(tp);
	struct itimerspec its = {
		.it_value = {when / 1000000000, when % 1000000000},
	};

	if (ep->timer_at && ep->timer_at <= when)
		return;
	if (!timerfd_settime(ep->tfd, TFD_TIMER_ABSTIME, &its, NULL))
		ep->timer_at = when;
}

static void p_fini(struct tcp_tp *tp)
{
	struct tcp_ep *ep = to_ep(tp);

	if (!ep)
		return;
	close(ep->tfd);
	rxp__tcp_sys->close(ep->epfd);
	rxp__free(ep);
	tp->be_data = NULL;
}

static int p_listen_start(struct tcp_tp *tp)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	if (rxp__tcp_sys->epoll_ctl(to_ep(tp)->epfd, EPOLL_CTL_ADD, tp->lfd,
				    &ev))
		return -errno;
	return 0;
}

static void p_listen_pause(struct tcp_tp *tp)
{
	/* level-triggered: a full fd table would wake us in a loop */
	rxp__tcp_sys->epoll_ctl(to_ep(tp)->epfd, EPOLL_CTL_DEL, tp->lfd, NULL);
}

static void set_events(struct tcp_conn *c, uint32_t want)
{
	struct epoll_event ev = {.events = want, .data.ptr = c};

	if (c->ep_events == want)
		return;
	if (rxp__tcp_sys->epoll_ctl(to_ep(c->tp)->epfd, EPOLL_CTL_MOD, c->fd,
				    &ev)) {
		tcp_conn_fail(c, -errno);
		return;
	}
	c->ep_events = want;
}

static void p_try_tx(struct tcp_conn *c)
{
	struct iovec iov[TCP_TX_IOV];
	struct msghdr msg = {.msg_iov = iov};
	unsigned nslots;
	bool zc;

	if (!tcp_conn_live(c) || c->state == TC_CONNECTING)
		return;
	for (;;) {
		ssize_t r;

		msg.msg_iovlen =
			(size_t)tcp_tx_fill(c, iov, TCP_TX_IOV, &nslots, &zc);
		if (!msg.msg_iovlen)
			break;
		r = rxp__tcp_sys->sendmsg(c->fd, &msg,
					  MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			tcp_conn_fail(c, -errno);
			return;
		}
		tcp_tx_advance(c, (size_t)r);
		c->tp->stats.copy_sends++;
		c->tp->need_service = true; /* on_send from progress() */
	}
	set_events(c, EPOLLIN | (tcp_tx_pending(c) ? EPOLLOUT : 0));
}

static int p_conn_start(struct tcp_conn *c)
{
	const struct tcp_sys *sys = rxp__tcp_sys;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
	int err = 0;

	c->stage = rxp__malloc(c->tp->rx_copy_max);
	if (!c->stage)
		return -ENOMEM;
	if (sys->epoll_ctl(to_ep(c->tp)->epfd, EPOLL_CTL_ADD, c->fd, &ev))
		return -errno;
	c->ep_events = ev.events;
	if (!c->base.outgoing) {
		p_try_tx(c);
		return 0;
	}
	if (sys->connect(c->fd, (struct sockaddr *)&c->sa, c->salen) == 0)
		tcp_conn_connected(c);
	else if (errno != EINPROGRESS)
		err = -errno;
	if (err) /* reported through on_conn from progress() */
		tcp_conn_fail(c, err);
	else if (c->state == TC_HANDSHAKE)
		p_try_tx(c);
	return 0;
}

static void p_conn_stop(struct tcp_conn *c)
{
	const struct tcp_sys *sys = rxp__tcp_sys;

	sys->epoll_ctl(to_ep(c->tp)->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	sys->shutdown(c->fd, SHUT_RDWR);
}

static void p_conn_free(struct tcp_conn *c)
{
	rxp__free(c->stage);
	c->stage = NULL;
}

static void p_rx(struct tcp_conn *c)
{
	struct iovec iov[TCP_TX_IOV];

	for (int i = 0; i < POLL_READS_PER_EVENT && tcp_conn_live(c); i++) {
		bool direct = tcp_rx_want_direct(c);
		ssize_t r;
		int n = 1, err;

		if (direct) {
			n = tcp_rx_direct_iov(c, iov, TCP_TX_IOV);
			if (n < 0) {
				tcp_conn_fail(c, n);
				return;
			}
		} else {
			iov[0].iov_base = c->stage;
			iov[0].iov_len = c->tp->rx_copy_max;
		}
		r = rxp__tcp_sys->readv(c->fd, iov, n);
		if (r == 0) {
			tcp_conn_fail(c, -RXP_E_PEER_LOST);
			return;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				tcp_conn_fail(c, -errno);
			return;
		}
		if (direct) {
			c->tp->stats.direct_recvs++;
			err = tcp_rx_direct_done(c, (size_t)r);
		} else {
			err = tcp_rx_feed(c, c->stage, (size_t)r);
		}
		if (err) {
			tcp_conn_fail(c, err);
			return;
		}
	}
}

static void p_accept(struct tcp_tp *tp)
{
	for (int i = 0; i < POLL_EVENTS; i++) {
		int fd = rxp__tcp_sys->accept4(tp->lfd, NULL, NULL,
					       SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				tcp_accept_error(tp, -errno);
			return;
		}
		tcp_accept_fd(tp, fd);
	}
}

static void p_connecting(struct tcp_conn *c, uint32_t events)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		return;
	if (rxp__tcp_sys->getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len))
		soerr = errno;
	if (soerr) {
		tcp_conn_fail(c, -soerr);
		return;
	}
	tcp_conn_connected(c);
	p_try_tx(c);
}

static int p_progress(struct tcp_tp *tp)
{
	struct tcp_ep *ep = to_ep(tp);
	int n;

	tp->in_progress = true;
	n = rxp__tcp_sys->epoll_wait(ep->epfd, ep->ev, POLL_EVENTS, 0);
	if (n < 0) {
		int err = -errno;

		tp->in_progress = false;
		if (err != -EINTR)
			return err;
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		struct tcp_conn *c = ep->ev[i].data.ptr;
		uint32_t events = ep->ev[i].events;

		if (!c) {
			p_accept(tp);
			continue;
		}
		if ((void *)c == &timer_tag) {
			uint64_t ticks;

			if (read(ep->tfd, &ticks, sizeof(ticks)) < 0 &&
			    errno != EAGAIN)
				rxp_warn(TCP_LOG, "timerfd: %s",
					 rxp_strerror(-errno));
			ep->timer_at = 0; /* service() re-arms if needed */
			continue;
		}
		if (!tcp_conn_live(c))
			continue;
		if (c->state == TC_CONNECTING) {
			p_connecting(c, events);
			continue;
		}
		if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			p_rx(c);
		if (events & EPOLLOUT)
			p_try_tx(c);
	}
	tp->in_progress = false;
	return n + tcp_tp_service(tp, rxp_now_ns());
}

static void p_kick_tx(struct tcp_conn *c)
{
	p_try_tx(c);
}

static int p_wait_fd(struct tcp_tp *tp)
{
	return to_ep(tp)->epfd;
}

static int p_arm(struct tcp_tp *tp)
{
	return tp->need_service ? 1 : 0;
}

static void p_drain(struct tcp_tp *tp, int ms)
{
	(void)tp;
	(void)ms; /* nothing outlives a call */
}

const struct tcp_backend tcp_poll_backend = {
	.name = "tcp-poll",
	.init = p_init,
	.fini = p_fini,
	.conn_start = p_conn_start,
	.listen_start = p_listen_start,
	.listen_pause = p_listen_pause,
	.conn_kick_tx = p_kick_tx,
	.conn_stop = p_conn_stop,
	.conn_free = p_conn_free,
	.progress = p_progress,
	.wait_fd = p_wait_fd,
	.arm = p_arm,
	.timer = p_timer,
	.drain = p_drain,
};
