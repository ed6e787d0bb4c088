/* SPDX-License-Identifier: MIT */
/*
 * Shared-memory transport internals (docs/shm.md). Not installed.
 *
 * A connection is a Unix SOCK_SEQPACKET socket in the abstract namespace
 * (hand-shake, doorbells, hang-up) plus one memfd the connector creates
 * and seals, holding two single-producer/single-consumer byte rings: ring
 * 0 carries connector -> acceptor, ring 1 the other way. Frames stream
 * through a ring the way they stream through a TCP socket, so a frame may
 * be larger than the ring. Storages of at least RXP_SHM_CMA_MIN bytes do
 * not go through the ring when the receiver can read the sender's memory
 * (process_vm_readv, probed in the hand-shake): the frame carries their
 * addresses, the receiver reads them straight into its buffers, and an ack
 * frame releases the sender's storages.
 *
 * Files:
 *  shm_ring.c  ring views over the shared memory, bounds-checked
 *  shm_hs.c    hand-shake messages, memfd checks, the cross-memory probe
 *  shm_io.c    frames: send queue, receive parser, acks
 *  shm_ops.c   struct rxp_tp_ops rxp_shm_ops, connections, progress
 *
 * Threads: as every backend (rxp_transport.h): ops run one at a time under
 * the agent's progress lock; received buffers may be released anywhere.
 * The peer is another process and is not trusted: every counter read from
 * the shared memory is checked before use, and every byte a frame carries
 * is copied out of the ring before it is parsed.
 */
#ifndef RXP_SHM_H
#define RXP_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "rxp_auth.h"
#include "rxp_transport.h"

#define SHM_LOG "shm"
#define SHM_PROTO_VERSION 1u

/* ----------------------------------------------------------- rings */

/* The control block of one ring, in the shared memory. Each side writes
 * only its own line; a value read from the other's is checked. */
struct shm_ring_ctl {
	_Alignas(64) _Atomic uint64_t head; /* producer: bytes written */
	_Atomic uint32_t producer_waiting;  /* producer: wake me on space */
	_Atomic uint32_t closed; /* producer: no longer reading storages'
				    owners may free them (see shm_io.c) */
	_Alignas(64) _Atomic uint64_t tail; /* consumer: bytes consumed */
	_Atomic uint32_t consumer_sleeping; /* consumer: wake me on data */
};

#define SHM_CTL_BYTES 4096u /* one page per control block */
#define SHM_RING_MIN (64u << 10)
#define SHM_RING_MAX (64u << 20)
#define SHM_RING_DEFAULT (1u << 20)

/* One side's view of one ring. Its own counter is kept here and only
 * stored to the shared memory; the peer's is loaded and checked. */
struct shm_ring {
	struct shm_ring_ctl *ctl;
	uint8_t *data;
	uint64_t cap, mask;
	uint64_t pos; /* producer: head; consumer: tail (ours) */
};

/* The size of a mapping for rings of @cap bytes. */
static inline uint64_t shm_map_bytes(uint64_t cap)
{
	return 2 * (uint64_t)SHM_CTL_BYTES + 2 * cap;
}
/* Views of ring @which (0 or 1) in a mapping of shm_map_bytes(@cap). */
void shm_ring_view(struct shm_ring *r, void *map, uint64_t cap, int which);
/* Producer: bytes free, or -RXP_E_PROTO if the peer's tail is not
 * possible. */
int64_t shm_ring_space(const struct shm_ring *r);
/* Consumer: bytes readable, or -RXP_E_PROTO. */
int64_t shm_ring_avail(const struct shm_ring *r);
/* Copy @n bytes in (the caller checked the space) / out (checked avail);
 * they publish nothing: see shm_ring_publish / shm_ring_release. */
void shm_ring_put(struct shm_ring *r, const void *src, size_t n);
void shm_ring_get(struct shm_ring *r, void *dst, size_t n);
/* Producer: make the bytes put so far visible; true if the consumer asked
 * to be woken (and this call took that request). */
bool shm_ring_publish(struct shm_ring *r);
/* Consumer: give the bytes got so far back; true if the producer asked to
 * be woken for space (taken). */
bool shm_ring_release(struct shm_ring *r);
/* Before sleeping: ask to be woken. True if there is work already. */
bool shm_ring_sleep_rx(struct shm_ring *r);
bool shm_ring_sleep_tx(struct shm_ring *r);
/* Awake again: no doorbell needed while polling. */
void shm_ring_awake_rx(struct shm_ring *r);
/* Producer: from now on the storages we announced may be freed. */
void shm_ring_close_tx(struct shm_ring *r);
/* Consumer: has the producer said so? */
bool shm_ring_peer_closed(const struct shm_ring *r);

/* ----------------------------------------------------------- frames */

#define SHM_HDR_MAGIC 0x5853u /* "SX" */
#define SHM_HDR_SIZE 32u
#define SHM_DESC_SIZE 16u /* per storage: u64 len | CMA bit, u64 addr */
#define SHM_DESC_CMA (1ull << 63)
#define SHM_KIND_MSG 0u
#define SHM_KIND_ACK 1u /* id: frames whose storages the receiver read */
#define SHM_INLINE_IOV 8
#define SHM_INLINE_DESC 4
#define SHM_CMA_DEFAULT (64u << 10)
#define SHM_MAX_SENDS 65536u /* queued per connection: -EAGAIN */

struct shm_hdr {
	uint8_t kind, type, flags;
	uint32_t nstorages;
	uint64_t id;
	uint64_t payload_len;
};

void shm_hdr_encode(uint8_t out[SHM_HDR_SIZE], const struct shm_hdr *h);
/* 0 or -RXP_E_PROTO (magic, version, reserved bytes, counts). */
int shm_hdr_decode(const uint8_t in[SHM_HDR_SIZE], uint32_t max_storages,
		   uint64_t max_payload, struct shm_hdr *h);

/* ------------------------------------------------------- hand-shake */

#define SHM_HS_MAGIC 0x53505852u /* "RXPS" */
#define SHM_HELLO_SIZE 128u
#define SHM_HS_MAX (SHM_HELLO_SIZE + RXP_AUTH_MAC_BYTES)
#define SHM_F_AUTH 0x1ull
#define SHM_HS_HELLO 1u	  /* connector: limits, ring size, memfd */
#define SHM_HS_WELCOME 2u /* acceptor: limits, can I read you, proof */
#define SHM_HS_READY 3u	  /* connector: can I read you, proof */
#define SHM_LABEL_CONNECTOR "rxp shm v1 proof from connector"
#define SHM_LABEL_ACCEPTOR "rxp shm v1 proof from acceptor"

struct shm_hello {
	uint16_t kind;
	uint32_t worker_id, world_size, max_storages;
	uint32_t can_read_you; /* WELCOME, READY: the cross-memory probe */
	uint64_t max_payload, max_storage, features;
	uint64_t ring_cap;		     /* HELLO */
	uint64_t probe_addr, probe_val;	     /* HELLO, WELCOME */
	uint8_t nonce[RXP_AUTH_NONCE_BYTES]; /* HELLO, WELCOME with AUTH */
};

void shm_hello_encode(uint8_t out[SHM_HELLO_SIZE], const struct shm_hello *h);
/* 0, -RXP_E_PROTO or -RXP_E_VERSION. */
int shm_hello_decode(const uint8_t in[SHM_HELLO_SIZE], struct shm_hello *h);
/* A sealed memfd of @bytes (the connector's), or -errno. */
int shm_memfd_new(uint64_t bytes);
/* Is @fd a memfd of exactly @bytes that can neither shrink nor grow?
 * 0 or -RXP_E_PROTO: a peer's file we can map without SIGBUS. */
int shm_memfd_check(int fd, uint64_t bytes);
/* Can this process read 8 bytes at @addr in @pid and find @val? */
bool shm_cma_probe(pid_t pid, uint64_t addr, uint64_t val);
/* Read @len bytes at @addr in @pid into @dst: 0 or -errno (-EFAULT for
 * an address the peer does not have). */
int shm_cma_read(pid_t pid, void *dst, uint64_t addr, uint64_t len);
/* sendmsg / recvmsg of one hand-shake message, with at most one fd. */
int shm_msg_send(int sock, const void *buf, size_t len, int fd);
/* Bytes received (0: the peer hung up), -EAGAIN, or -errno; *fd is the fd
 * passed along or -1 (any other fds are closed, and fail the message). */
ssize_t shm_msg_recv(int sock, void *buf, size_t len, int *fd);

/* ------------------------------------------------------ connections */

enum shm_state {
	SC_REFUSED, /* connect() failed: reported at the next progress */
	SC_HS,	    /* hand-shake messages in flight */
	SC_OPEN,
	SC_DEAD, /* callbacks delivered; freed at the end of progress */
};

/* One queued send. The header and descriptors are encoded at send();
 * pieces (payload iovs, then the storages that go through the ring) are
 * streamed into the ring as space allows. */
struct shm_send {
	struct shm_send *next;
	void *cookie;
	int status;	  /* for the done list */
	bool cma;	  /* storages read by the peer: wait for an ack */
	uint32_t npieces; /* iovs */
	uint32_t cur;	  /* piece being written; npieces = done */
	uint64_t off;	  /* bytes of it written; the header is piece -1 */
	bool hdr_done;
	uint32_t hdr_len;
	uint64_t bytes;	    /* frame bytes through the ring */
	uint64_t cma_bytes; /* storage bytes the peer reads by address */
	uint64_t payload_len;
	uint32_t nstorages;
	uint8_t *hdr;	       /* hdr_inline or ext */
	struct rxp_iov *piece; /* piece_inline or ext */
	void *ext;
	struct rxp_iov piece_inline[SHM_INLINE_IOV];
	uint8_t hdr_inline[SHM_HDR_SIZE + SHM_DESC_SIZE * SHM_INLINE_DESC];
};

struct shm_list {
	struct shm_send *head, *tail;
	uint32_t n;
};

enum shm_rx_state { RX_HDR, RX_DESC, RX_BODY };

struct shm_rx {
	int state;
	uint8_t hdr[SHM_HDR_SIZE];
	uint64_t have; /* bytes of hdr / descriptors gathered */
	struct shm_hdr h;
	uint8_t *desc_raw;     /* SHM_DESC_SIZE * RXP_WIRE_MAX_STORAGES */
	struct rxp_buf **bufs; /* [0] payload, [1 + i] storage i */
	uint32_t piece;	       /* 0 payload, 1 + i storage i */
	uint64_t off;
	uint64_t charged; /* of the receive budget */
	bool delivering;  /* inside on_recv: the buffers are the agent's */
};

struct shm_tp;

/* epoll's data.ptr: what woke */
struct shm_ev {
	int kind; /* SHM_EV_* */
	struct shm_conn *c;
};
#define SHM_EV_LISTEN 0
#define SHM_EV_SOCK 1
#define SHM_EV_TIMER 2

struct shm_conn {
	struct rxp_conn base;
	struct shm_tp *tp;
	struct shm_conn *next; /* tp->conns */
	int state;
	int err;	/* SC_REFUSED: why; else a failure to deliver */
	bool announced; /* on_conn(0) delivered */
	int sock;
	struct shm_ev ev;
	pid_t peer_pid; /* SO_PEERCRED */
	char peer_str[112];
	int64_t deadline; /* hand-shake */
	/* the mapping and its two rings */
	void *map;
	uint64_t map_len;
	struct shm_ring tx, rx;
	/* hand-shake transcript (for the proofs) */
	uint8_t hello[SHM_HELLO_SIZE], welcome[SHM_HELLO_SIZE];
	uint64_t probe_val;
	/* the peer's limits */
	uint64_t peer_max_payload, peer_max_storage;
	uint32_t peer_max_storages;
	bool peer_reads_me; /* large storages go by address */
	bool i_read_peer;
	/* sends: queued (head partly written), waiting for an ack, done
	 * (on_send due at the next progress) */
	struct shm_list txq, await, done;
	uint64_t acks_owed; /* frames of the peer's we read and owe an ack */
	struct shm_rx rx_st;
};

struct shm_tp {
	struct rxp_tp base;
	struct rxp_tp_cb cb;
	uint32_t local_id, world_size;
	uint64_t max_payload, max_storage;
	struct rxp_auth_key key;
	int lfd, epfd;
	struct shm_ev lev, tev;
	int tfd; /* timerfd: the next hand-shake deadline, while asleep */
	char addr_str[96]; /* "shm:<name>" */
	struct shm_conn *conns;
	unsigned nhs;  /* connections in their hand-shake */
	bool poll_due; /* look at the sockets at the next progress */
	unsigned spins;
	uint64_t ring_cap;
	uint64_t cma_min; /* UINT64_MAX: never by address */
	bool cma_off;	  /* RXP_SHM_CMA=0 (tests: the refused path) */
	uint64_t rx_mem_max;
	int64_t hs_timeout_ns;
	uint64_t probe_val; /* read by peers at &probe_val */
	struct shm_send *free_sends;
	/* receive buffers: pieces up to SHM_SMALL_BUF / SHM_POOL_BUF bytes
	 * come from these (none allocated once warm), bigger ones from the
	 * heap */
	struct rxp_bufpool *pool_small, *pool;
};

#define SHM_SMALL_BUF 1024u
#define SHM_POOL_BUF (16u << 10)

static inline struct shm_tp *to_stp(struct rxp_tp *t)
{
	return rxp_container_of(t, struct shm_tp, base);
}
static inline struct shm_conn *to_sconn(struct rxp_conn *c)
{
	return rxp_container_of(c, struct shm_conn, base);
}

/* shm_io.c */
int shm_tx_queue(struct shm_conn *c, const struct rxp_msg_out *m, void *cookie);
/* The hand-shake is done: queued frames over the peer's limits fail. */
void shm_tx_check_queued(struct shm_conn *c);
/* Write what fits; 0 or -RXP_E_PROTO. *did: bytes moved. */
int shm_tx_push(struct shm_conn *c, unsigned *did);
/* Parse and deliver what the ring holds; 0, or the error that fails the
 * connection. Stops when the connection is no longer open. */
int shm_rx_pull(struct shm_conn *c, unsigned *did);
/* Sends fully written and not waiting for an ack: on_send(0). */
void shm_tx_report(struct shm_conn *c);
/* Every send, done or not, gets its on_send: done ones 0, others @err. */
void shm_tx_fail_all(struct shm_conn *c, int err);
void shm_rx_reset(struct shm_conn *c);
void shm_sends_free(struct shm_tp *tp);
/* Take back a queued send no byte of which is in the ring: 0, -EBUSY
 * (started, or the peer may be reading its storages), -ENOENT. */
int shm_tx_cancel(struct shm_conn *c, void *cookie);
/* A doorbell: one byte on the socket, never blocking. */
void shm_ring_bell(struct shm_conn *c);

#endif
