/* SPDX-License-Identifier: MIT */
/*
 * The system calls the TCP transport makes, behind a table so tests can
 * make one fail (a refused io_uring, a short or failing sendmsg, ...).
 * Entries follow their libc/liburing conventions: -1 + errno for libc,
 * -errno for liburing.
 */
#include <liburing.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tcp.h"

static int sys_uring_init(unsigned entries, struct io_uring *ring,
			  struct io_uring_params *p)
{
	return io_uring_queue_init_params(entries, ring, p);
}

static int sys_uring_register_buf_ring(struct io_uring *ring,
				       struct io_uring_buf_reg *reg,
				       unsigned flags)
{
	return io_uring_register_buf_ring(ring, reg, flags);
}

const struct tcp_sys rxp__tcp_sys_default = {
	.socket = socket,
	.bind = bind,
	.listen = listen,
	.accept4 = accept4,
	.connect = connect,
	.setsockopt = setsockopt,
	.getsockopt = getsockopt,
	.readv = readv,
	.sendmsg = sendmsg,
	.shutdown = shutdown,
	.close = close,
	.epoll_create1 = epoll_create1,
	.epoll_ctl = epoll_ctl,
	.epoll_wait = epoll_wait,
	.uring_init = sys_uring_init,
	.uring_register_buf_ring = sys_uring_register_buf_ring,
};

const struct tcp_sys *rxp__tcp_sys = &rxp__tcp_sys_default;
