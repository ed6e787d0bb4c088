/* SPDX-License-Identifier: MIT */
/*
 * TCP transport internals, shared by the io_uring backend (tcp_uring.c)
 * and the poll+readv/writev fallback (tcp_poll.c). Not installed.
 *
 * Files:
 *  tcp_wire.c   handshake and frame header encode/decode + validation
 *  tcp_tx.c     send slots, per-connection send queue, iovec windows
 *  tcp_rx.c     receive parser (handshake, header, lengths, body pieces)
 *  tcp_conn.c   connection life cycle, addresses, sockets
 *  tcp_ops.c    struct rxp_tp_ops rxp_tcp_ops, backend choice
 *  tcp_uring.c  io_uring backend;  tcp_poll.c  epoll backend
 *  tcp_sys.c    syscall table (tests swap entries)
 *
 * Threads: everything here runs on the transport's single user thread;
 * only pool buffer release (rxp_buf_put) may come from any thread.
 */
#ifndef RXP_TCP_H
#define RXP_TCP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "rxp_auth.h"
#include "rxp_transport.h"

struct io_uring;
struct io_uring_params;
struct io_uring_buf_reg;

/* ------------------------------------------------------------- wire */

#define TCP_PROTO_VERSION 1u
#define TCP_HS_MAGIC 0x48505852u /* "RXPH" little-endian */
#define TCP_HDR_MAGIC 0x5852u	 /* "RX" */
#define TCP_HS_SIZE 40u
#define TCP_HDR_SIZE 32u
/* authentication (docs/tcp.md "Authentication"): a hello with feature
 * TCP_F_AUTH is followed by TCP_HS_EXT_SIZE bytes (world size, nonce);
 * then each side sends a TCP_PROOF_SIZE proof of the job secret */
#define TCP_F_AUTH 0x1ull
#define TCP_HS_EXT_SIZE 40u
#define TCP_HELLO_MAX (TCP_HS_SIZE + TCP_HS_EXT_SIZE)
#define TCP_PROOF_MAGIC 0x41505852u /* "RXPA" little-endian */
#define TCP_PROOF_SIZE (8u + RXP_AUTH_MAC_BYTES)
/* HMAC labels: the connector's and the acceptor's proofs differ, so a
 * proof reflected back to its sender fails */
#define TCP_LABEL_CONNECTOR "rxp tcp v1 proof from connector"
#define TCP_LABEL_ACCEPTOR "rxp tcp v1 proof from acceptor"

struct tcp_hs {
	uint32_t magic;
	uint16_t version;
	uint16_t size;
	uint32_t worker_id;
	uint32_t max_storages;
	uint64_t max_payload;
	uint64_t max_storage;
	uint64_t features;
};

struct tcp_hdr {
	uint8_t version;
	uint8_t type;
	uint8_t flags;
	uint32_t nstorages;
	uint64_t id;
	uint64_t payload_len;
};

void tcp_hs_encode(uint8_t out[TCP_HS_SIZE], const struct tcp_hs *hs);
/* 0, -RXP_E_PROTO (bad magic/size) or -RXP_E_VERSION. */
int tcp_hs_decode(const uint8_t in[TCP_HS_SIZE], struct tcp_hs *hs);
/* The 40 bytes after an authenticating hello. */
void tcp_hs_ext_encode(uint8_t out[TCP_HS_EXT_SIZE], uint32_t world_size,
		       const uint8_t nonce[RXP_AUTH_NONCE_BYTES]);
/* 0 with *world_size, or -RXP_E_PROTO (reserved bytes set). */
int tcp_hs_ext_decode(const uint8_t in[TCP_HS_EXT_SIZE], uint32_t *world_size);
/*
 * The proof one side sends: "RXPA", version, size, then the HMAC of
 * (@label, connector's hello + ext, acceptor's hello + ext) under @key.
 * tcp_proof_check() returns 0, -RXP_E_PROTO (bad framing) or -RXP_E_AUTH.
 */
void tcp_proof_make(uint8_t out[TCP_PROOF_SIZE], const struct rxp_auth_key *key,
		    const char *label, const uint8_t *conn_hello,
		    const uint8_t *acc_hello);
int tcp_proof_check(const uint8_t in[TCP_PROOF_SIZE],
		    const struct rxp_auth_key *key, const char *label,
		    const uint8_t *conn_hello, const uint8_t *acc_hello);
void tcp_hdr_encode(uint8_t out[TCP_HDR_SIZE], const struct tcp_hdr *h);
/* 0 or -RXP_E_PROTO (bad magic, version, reserved bits, counts). */
int tcp_hdr_decode(const uint8_t in[TCP_HDR_SIZE], uint32_t max_storages,
		   uint64_t max_payload, struct tcp_hdr *h);

/* ---------------------------------------------------------- syscalls */

struct tcp_sys {
	int (*socket)(int domain, int type, int proto);
	int (*bind)(int fd, const struct sockaddr *a, socklen_t len);
	int (*listen)(int fd, int backlog);
	int (*accept4)(int fd, struct sockaddr *a, socklen_t *len, int flags);
	int (*connect)(int fd, const struct sockaddr *a, socklen_t len);
	int (*setsockopt)(int fd, int lvl, int opt, const void *v,
			  socklen_t len);
	int (*getsockopt)(int fd, int lvl, int opt, void *v, socklen_t *len);
	ssize_t (*readv)(int fd, const struct iovec *iov, int n);
	ssize_t (*sendmsg)(int fd, const struct msghdr *m, int flags);
	int (*shutdown)(int fd, int how);
	int (*close)(int fd);
	int (*epoll_create1)(int flags);
	int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *ev);
	int (*epoll_wait)(int epfd, struct epoll_event *ev, int n, int ms);
	/* -errno like liburing */
	int (*uring_init)(unsigned entries, struct io_uring *ring,
			  struct io_uring_params *p);
	int (*uring_register_buf_ring)(struct io_uring *ring,
				       struct io_uring_buf_reg *reg,
				       unsigned flags);
};
extern const struct tcp_sys rxp__tcp_sys_default;
/* The table in use; tests point it at a copy with some entries swapped. */
extern const struct tcp_sys *rxp__tcp_sys;

/* ------------------------------------------------------------- send */

#define TCP_SLOT_INLINE_IOV 8
#define TCP_SLOT_INLINE_LENS 6
#define TCP_SLOTS_PER_CHUNK 32
#define TCP_MAX_SLOTS 65536u /* queued sends per connection: -EAGAIN */
#define TCP_TX_IOV 128	     /* iovecs per sendmsg */
#define TCP_ZC_MAX 8	     /* SEND_ZC requests awaiting NOTIF per conn */

struct tcp_slot {
	struct tcp_slot *next;
	void *cookie;
	struct iovec *iov; /* [0] header + lengths, then payload, storages */
	uint32_t niov;
	uint32_t cur;	  /* first iovec not fully handed to the kernel */
	size_t off;	  /* bytes of iov[cur] already sent */
	uint32_t zc_refs; /* SEND_ZC requests covering it, NOTIF pending */
	bool internal;	  /* handshake: no on_send */
	bool sent;	  /* every byte accepted by the kernel */
	bool zc;	  /* has a storage >= zc threshold */
	bool hold;	  /* proof slot: not sent until it is filled */
	void *ext;	  /* malloc'd iov + header when too big for inline */
	size_t bytes;	  /* total frame bytes */
	struct iovec iov_inline[TCP_SLOT_INLINE_IOV];
	uint8_t hdr_inline[TCP_HDR_SIZE + 8 * TCP_SLOT_INLINE_LENS];
};

struct tcp_slot_chunk {
	struct tcp_slot_chunk *next;
	struct tcp_slot slots[TCP_SLOTS_PER_CHUNK];
};

/* ---------------------------------------------------------- receive */

enum tcp_rx_state { RX_HS, RX_HS_EXT, RX_PROOF, RX_HDR, RX_LENS, RX_BODY };

struct tcp_rx {
	int state;
	uint8_t hdr[TCP_HELLO_MAX]; /* >= TCP_HDR_SIZE, TCP_PROOF_SIZE */
	size_t have;		    /* bytes gathered of hdr / lens */
	struct tcp_hdr h;
	uint8_t *lens_raw;     /* 8 * RXP_WIRE_MAX_STORAGES */
	uint64_t *lens;	       /* RXP_WIRE_MAX_STORAGES */
	struct rxp_buf **bufs; /* [0] payload, [1 + i] storage i */
	uint32_t piece;	       /* current piece, 0 .. nstorages */
	uint32_t nbufs;	       /* pieces with a buffer */
	size_t off;	       /* bytes of the current piece filled */
	uint64_t body_left;
	uint64_t charged; /* of the receive budget, by this frame's bufs */
};

/* -------------------------------------------------------- connection */

enum tcp_conn_state {
	TC_CONNECTING, /* TCP connect in progress */
	TC_HANDSHAKE,  /* connected, waiting for the peer's handshake (and
			  proof, when authenticating) */
	TC_OPEN,
	TC_CLOSING, /* failed: waiting for kernel ops to let go */
	TC_DEAD,    /* callbacks delivered; freed when io_refs == 0 */
};

enum tcp_req_kind {
	REQ_CONNECT = 1,
	REQ_RECV_MS,
	REQ_RECV_DIRECT,
	REQ_SEND,
	REQ_SEND_ZC,
	REQ_ACCEPT,
	REQ_TIMER,
};

struct tcp_conn;
struct tcp_req {
	uint8_t kind;
	struct tcp_conn *c;
};

struct tcp_zc {
	struct tcp_req req; /* user_data of the request and its NOTIF */
	struct tcp_slot *first;
	uint32_t nslots;
	bool busy;
};

struct tcp_tp;

struct tcp_conn {
	struct rxp_conn base;
	struct tcp_tp *tp;
	struct tcp_conn *next, *prev;
	int fd;
	int state;
	int err;	/* why it failed; reported by on_conn */
	bool announced; /* on_conn(0) delivered */
	bool hs_rcvd;
	/* authentication: while auth_wait, only the hello and the proof
	 * are sent and nothing but them is parsed */
	bool auth_wait;
	struct tcp_slot *proof_slot; /* held until the peer's hello came */
	uint8_t hello_mine[TCP_HELLO_MAX], hello_peer[TCP_HELLO_MAX];
	int cb_depth;	  /* > 0 while one of its callbacks runs */
	int64_t deadline; /* connect + handshake, ns */
	/* stall detection: bytes received, the count the last service saw,
	 * and when a started frame that got none since then fails */
	uint64_t rx_total, rx_mark;
	int64_t stall_at;
	char peer_str[64];
	uint64_t peer_max_payload, peer_max_storage;
	uint32_t peer_max_storages;

	/* send queue: head .. tail, tx_cur = first slot with unsent bytes */
	struct tcp_slot *tx_head, *tx_tail, *tx_cur, *slot_free;
	struct tcp_slot_chunk *chunks;
	unsigned nslots, nchunks;
	unsigned tx_done; /* slots sent and released, on_send pending */
	/* io_uring: slots from tx_cur the SENDMSG in flight (send_on) covers;
	 * the kernel may read any of them until its completion */
	unsigned tx_window;

	struct tcp_rx rx;

	/* io_uring backend */
	unsigned io_refs; /* kernel requests that may post a CQE */
	unsigned notif;	  /* of which ZC notifications */
	bool ms_on, ms_cancel, direct_on, send_on, connect_on, rx_single;
	struct tcp_req r_connect, r_ms, r_direct, r_send;
	struct tcp_zc zc[TCP_ZC_MAX];
	struct msghdr tx_msg, rx_msg;
	struct iovec tx_iov[TCP_TX_IOV];
	struct iovec rx_iov[TCP_TX_IOV];
	struct sockaddr_storage sa;
	socklen_t salen;
	struct tcp_bufring *rbr; /* this connection's provided buffers */

	/* poll backend */
	uint32_t ep_events;
	uint8_t *stage; /* read staging buffer, rx_copy_max bytes */
};

/* ---------------------------------------- provided buffers (io_uring) */

struct tcp_bufring;
int tcp_bufring_new(struct io_uring *ring, uint16_t bgid, unsigned n, size_t sz,
		    struct tcp_bufring **out);
void tcp_bufring_free(struct io_uring *ring, struct tcp_bufring *b);
void tcp_bufring_recycle(struct tcp_bufring *b, unsigned bid);
const uint8_t *tcp_bufring_buf(const struct tcp_bufring *b, unsigned bid);
uint16_t tcp_bufring_bgid(const struct tcp_bufring *b);
/* buffer group ids in use */
#define TCP_NBGID 65536
struct tcp_bgids {
	uint64_t used[TCP_NBGID / 64];
	unsigned hint;
};
int tcp_bgid_get(struct tcp_bgids *b); /* id or -EMFILE */
void tcp_bgid_put(struct tcp_bgids *b, uint16_t id);

/* ------------------------------------------------------------ backend */

struct tcp_backend {
	const char *name; /* "tcp" / "tcp-poll" */
	int (*init)(struct tcp_tp *tp, char *why, size_t whylen);
	void (*fini)(struct tcp_tp *tp);
	/* socket exists (connecting or accepted): start I/O */
	int (*conn_start)(struct tcp_conn *c);
	/* listening socket tp->lfd exists: start accepting */
	int (*listen_start)(struct tcp_tp *tp);
	/* stop accepting until listen_start() is called again */
	void (*listen_pause)(struct tcp_tp *tp);
	void (*conn_kick_tx)(struct tcp_conn *c);
	/* conn failed: stop its I/O (cancel, shutdown) */
	void (*conn_stop)(struct tcp_conn *c);
	/* release backend resources of a connection being freed */
	void (*conn_free)(struct tcp_conn *c);
	int (*progress)(struct tcp_tp *tp);
	int (*wait_fd)(struct tcp_tp *tp);
	int (*arm)(struct tcp_tp *tp);
	/* wake wait_fd at @when (ns, CLOCK_MONOTONIC) for a deadline */
	void (*timer)(struct tcp_tp *tp, int64_t when);
	/* close(): wait up to @ms for kernel ops to drain */
	void (*drain)(struct tcp_tp *tp, int ms);
};
extern const struct tcp_backend tcp_uring_backend;
extern const struct tcp_backend tcp_poll_backend;

struct tcp_stats {
	uint64_t accepted, proto_errors, hs_failures, zc_sends, copy_sends;
	uint64_t direct_recvs, ms_rearms, enobufs;
	uint64_t body_copied, body_direct; /* body bytes by receive path */
	struct rxp_ratelog auth_log;	   /* refused by authentication */
	struct rxp_ratelog limit_log;	   /* refused by a connection cap */
	struct rxp_ratelog accept_log;	   /* accept() failures */
	struct rxp_ratelog prehs_log;	   /* incoming, failed in handshake */
	struct rxp_ratelog rxmem_log;	   /* past RXP_MAX_RX_MEMORY */
	uint64_t accept_errors;
};

struct tcp_tp {
	struct rxp_tp base;
	const struct tcp_backend *be;
	struct rxp_tp_cb cb;
	uint32_t local_id;
	uint32_t world_size;	 /* authenticated hellos must carry this */
	struct rxp_auth_key key; /* .on: authenticate every connection */
	uint8_t *peer_seen;	 /* bit per worker id: first accept logged */
	uint64_t max_payload, max_storage;
	size_t zc_threshold;  /* SEND_ZC for storages >= this */
	size_t rx_copy_max;   /* body bytes copied out of ring buffers */
	int64_t conn_timeout; /* ns: connect + handshake */
	/* budgets (docs/tcp.md "Limits"): accepted connections alive, of
	 * which still in their handshake (unauthenticated); a started frame
	 * that gets no byte for stall_ns fails its connection (0 = never) */
	unsigned max_conns, max_unauth;
	int64_t stall_ns;
	/* bytes of buffers all connections may hold for frames not yet
	 * delivered (RXP_MAX_RX_MEMORY; base.rx_ahead counts them) */
	uint64_t rx_mem_max;
	/* accept() ran out of fds or memory: not re-armed before this */
	int64_t accept_pause_until, accept_backoff_ns;
	int lfd;
	int family;
	char addr_str[80];
	struct tcp_conn *conns;
	bool closing;
	bool need_service;		/* arm() must say 1 */
	int cb_depth;			/* > 0 while any callback runs */
	bool in_progress;		/* backend is handling events */
	struct rxp_bufpool *pool;	/* rx_copy_max-byte buffers */
	struct rxp_bufpool *pool_small; /* TCP_SMALL_BUF-byte buffers */
	void *be_data;			/* backend state */
	struct tcp_stats stats;
};

static inline struct tcp_tp *to_ttp(struct rxp_tp *tp)
{
	return rxp_container_of(tp, struct tcp_tp, base);
}

static inline struct tcp_conn *to_tconn(struct rxp_conn *c)
{
	return rxp_container_of(c, struct tcp_conn, base);
}

/* tcp_conn.c */
void tcp_format_addr(const struct sockaddr *sa, char *buf, size_t len);
int tcp_listen(struct tcp_tp *tp, const char *bind_addr, uint16_t port,
	       bool nonblock);
int tcp_conn_new(struct tcp_tp *tp, int fd, bool outgoing,
		 struct tcp_conn **out);
void tcp_conn_free(struct tcp_conn *c);
/* TCP is up: start the handshake timer (the handshake slot is queued) */
void tcp_conn_connected(struct tcp_conn *c);
/* Record the first error and begin teardown. */
void tcp_conn_fail(struct tcp_conn *c, int err);
/* Deliver pending on_send, finish closing conns, sweep dead ones. */
int tcp_tp_service(struct tcp_tp *tp, int64_t now);
int tcp_sock_setup(int fd, bool nonblock);
bool tcp_conn_live(const struct tcp_conn *c);

/* tcp_tx.c */
int tcp_tx_queue_hs(struct tcp_conn *c);
int tcp_tx_queue(struct tcp_conn *c, const struct rxp_msg_out *m, void *cookie);
/* Fill up to @max iovecs from the unsent bytes. Returns the count;
 * *nslots = slots touched, *zc = one of them wants SEND_ZC. */
int tcp_tx_fill(struct tcp_conn *c, struct iovec *iov, int max,
		unsigned *nslots, bool *zc);
void tcp_tx_advance(struct tcp_conn *c, size_t n);
/* rxp_tp_ops.cancel: take back a queued frame no byte of which can have
 * reached the kernel (0), else -EBUSY, or -ENOENT */
int tcp_tx_cancel(struct tcp_conn *c, void *cookie);
/* unsent bytes queued that may go now (not held by authentication) */
bool tcp_tx_pending(const struct tcp_conn *c);
/* The proof is filled in (or the peer is authenticated): send. */
void tcp_tx_release(struct tcp_conn *c);
/* on_send for finished slots at the head; returns how many */
int tcp_tx_complete(struct tcp_conn *c);
/* on_send(err) for every slot left (teardown) */
void tcp_tx_fail_all(struct tcp_conn *c, int err);
void tcp_tx_free(struct tcp_conn *c);

/* tcp_rx.c */
/* 0 (cannot fail: the frame parser's arrays are allocated only when
 * the handshake is accepted) */
int tcp_rx_init(struct tcp_rx *rx);
/* Drop the frame's buffers and the parser's arrays (again: no-op). */
void tcp_rx_fini(struct tcp_conn *c);
/* Consume @n received bytes (copying them to their destination).
 * Returns 0 or -errno to fail the connection with. May call on_recv /
 * on_conn; check tcp_conn_live() afterwards. */
int tcp_rx_feed(struct tcp_conn *c, const uint8_t *p, size_t n);
/* More than rx_copy_max bytes of the current body are still to come. */
bool tcp_rx_want_direct(const struct tcp_conn *c);
/* iovecs for the rest of the current body (targets allocated); count
 * or -ENOMEM. */
int tcp_rx_direct_iov(struct tcp_conn *c, struct iovec *iov, int max);
int tcp_rx_direct_done(struct tcp_conn *c, size_t n);

static inline void tcp_cb_enter(struct tcp_conn *c)
{
	c->cb_depth++;
	c->tp->cb_depth++;
}

static inline void tcp_cb_leave(struct tcp_conn *c)
{
	c->cb_depth--;
	c->tp->cb_depth--;
}

/* tcp_conn.c: on_conn wrapper */
void tcp_cb_conn(struct tcp_conn *c, int status);
/* A connection refused or closed for a reason a peer can provoke:
 * counted in @count, and logged at most once a second with how many
 * since the last line (a stranger must not flood the log). */
void tcp_refusal(atomic_uint_fast64_t *count, struct rxp_ratelog *rl,
		 const char *who, const char *what, const char *why);
/* A listening socket accepted @fd: make a connection of it. */
void tcp_accept_fd(struct tcp_tp *tp, int fd);
/* accept() failed with @err (-errno): log it (rate limited) and, when
 * it is a resource limit, pause accepting (backing off to 1 s) so the
 * loop does not spin on a full fd table. The backend does not re-arm
 * accepting while tcp_accept_paused(); service resumes it. */
void tcp_accept_error(struct tcp_tp *tp, int err);
static inline bool tcp_accept_paused(const struct tcp_tp *tp)
{
	return tp->accept_pause_until != 0;
}
/* Deliver the teardown callbacks now if nothing stops it. */
void tcp_conn_try_finish(struct tcp_conn *c);
static inline bool tcp_conn_quiescent(const struct tcp_conn *c)
{
	return c->io_refs == c->notif;
}
#define TCP_LOG "tcp"
#define TCP_RX_DIRECT_CHUNK (16u << 20) /* bytes per direct receive */
#define TCP_SMALL_BUF 1024u

#endif
