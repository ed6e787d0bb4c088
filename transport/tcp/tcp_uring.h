/* SPDX-License-Identifier: MIT */
/* io_uring backend internals shared by tcp_uring.c and tcp_uring_io.c. */
#ifndef RXP_TCP_URING_H
#define RXP_TCP_URING_H

#include <liburing.h>

#include "tcp.h"

#define UR_SQ_ENTRIES 256
#define UR_CQ_ENTRIES 4096
#define UR_RBUFS 16 /* power of 2 */
#define UR_RBUF_SIZE 4096
#define UR_CQE_BATCH 256

struct tcp_ur {
	struct io_uring ring;
	struct tcp_bgids bgids;
	struct tcp_req r_timer;
	struct __kernel_timespec timer_ts;
	int64_t timer_at; /* armed IORING_OP_TIMEOUT, 0: none */
	bool zc_ok;
	bool accept_on;
	struct tcp_req r_accept;
};

static inline struct tcp_ur *to_ur(struct tcp_tp *tp)
{
	return tp->be_data;
}

static inline struct io_uring_sqe *u_sqe(struct tcp_ur *ur)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ur->ring);

	if (!sqe) {
		io_uring_submit(&ur->ring);
		sqe = io_uring_get_sqe(&ur->ring);
	}
	return sqe;
}

/* tcp_uring_io.c: per-connection receive and send requests */
void tcp_ur_rx_kick(struct tcp_conn *c);
void tcp_ur_tx_kick(struct tcp_conn *c);
void tcp_ur_on_recv_ms(struct tcp_conn *c, struct io_uring_cqe *cqe);
void tcp_ur_on_recv_direct(struct tcp_conn *c, int res);
void tcp_ur_on_send(struct tcp_conn *c, int res);
void tcp_ur_on_send_zc(struct tcp_zc *z, struct io_uring_cqe *cqe);

#endif
