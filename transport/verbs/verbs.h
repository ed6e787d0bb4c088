/* SPDX-License-Identifier: MIT */
/*
 * Verbs transport internals (RC queue pairs through librdmacm). Not
 * installed. See docs/verbs.md for the protocol and the data paths.
 *
 * Files:
 *  verbs_sys.c   the table of libibverbs/librdmacm entry points (mockable)
 *  verbs_dev.c   device/port/GID choice, rxp_verbs_probe()
 *  verbs_wire.c  frame and private-data encode/decode + validation,
 *                work-completion and CM status tables
 *  verbs_mr.c    registration cache (sender) and rendezvous receive pool
 *  verbs_ctx.c   open/close, progress/arm/wait_fd, the ops table
 *  verbs_srq.c   the SRQ's eager buffers, lent out as views, and credits
 *  verbs_cm.c    connection objects: create, QP, go down, drain, free
 *  verbs_cm_ev.c rdma_cm events: accept/reject, establish, failures
 *  verbs_ep.c    send path: slots, frames, posting, acks
 *  verbs_sq.c    send queue retirement, credits, rendezvous acks, failing
 *  verbs_cq.c    completions: receive, rendezvous reads, delivery
 *
 * Threads: everything runs on the transport's single user thread, except
 * the release of received buffers (rxp_buf_put from any thread), which
 * goes through struct verbs_dom (mutex + eventfd).
 */
#ifndef RXP_VERBS_H
#define RXP_VERBS_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "rxp_auth.h"
#include "rxp_lock.h"
#include "rxp_transport.h"

#define VERBS_LOG "verbs"

/* ------------------------------------------------------------ sys table */
/*
 * Every libibverbs/librdmacm call goes through this table so unit tests
 * can replace entries. Conventions are rdma-core's own (see each line);
 * callers translate to -errno once, right at the call.
 */
struct verbs_sys {
	/* NULL+errno */
	struct ibv_device **(*get_device_list)(int *num);
	void (*free_device_list)(struct ibv_device **list);
	const char *(*get_device_name)(struct ibv_device *dev);
	struct ibv_context *(*open_device)(struct ibv_device *dev);
	int (*close_device)(struct ibv_context *ctx); /* +errno */
	int (*query_device)(struct ibv_context *ctx,
			    struct ibv_device_attr *attr); /* +errno */
	int (*query_port)(struct ibv_context *ctx, uint8_t port,
			  struct ibv_port_attr *attr); /* +errno */
	/* count or -errno */
	ssize_t (*query_gid_table)(struct ibv_context *ctx,
				   struct ibv_gid_entry *ent, size_t max);
	int (*fork_init)(void); /* +errno */
	enum ibv_fork_status (*is_fork_initialized)(void);
	struct ibv_pd *(*alloc_pd)(struct ibv_context *ctx); /* NULL+errno */
	int (*dealloc_pd)(struct ibv_pd *pd);		     /* +errno */
	struct ibv_mr *(*reg_mr)(struct ibv_pd *pd, void *addr, size_t len,
				 int access); /* NULL+errno */
	int (*dereg_mr)(struct ibv_mr *mr);   /* +errno */
	struct ibv_comp_channel *(*create_comp_channel)(struct ibv_context *c);
	int (*destroy_comp_channel)(struct ibv_comp_channel *ch);
	struct ibv_cq *(*create_cq)(struct ibv_context *ctx, int cqe,
				    void *cq_ctx, struct ibv_comp_channel *ch,
				    int vector);		/* NULL+errno */
	int (*destroy_cq)(struct ibv_cq *cq);			/* +errno */
	int (*req_notify_cq)(struct ibv_cq *cq, int solicited); /* +errno */
	int (*poll_cq)(struct ibv_cq *cq, int n, struct ibv_wc *wc); /* n|<0 */
	int (*get_cq_event)(struct ibv_comp_channel *ch, struct ibv_cq **cq,
			    void **cq_ctx); /* -1+errno */
	void (*ack_cq_events)(struct ibv_cq *cq, unsigned int n);
	struct ibv_srq *(*create_srq)(struct ibv_pd *pd,
				      struct ibv_srq_init_attr *a);
	int (*destroy_srq)(struct ibv_srq *srq); /* +errno */
	int (*post_srq_recv)(struct ibv_srq *srq, struct ibv_recv_wr *wr,
			     struct ibv_recv_wr **bad); /* +errno */
	int (*post_send)(struct ibv_qp *qp, struct ibv_send_wr *wr,
			 struct ibv_send_wr **bad); /* +errno */
	/* librdmacm: -1+errno unless noted */
	struct rdma_event_channel *(*create_event_channel)(void);
	void (*destroy_event_channel)(struct rdma_event_channel *ch);
	int (*create_id)(struct rdma_event_channel *ch, struct rdma_cm_id **id,
			 void *ctx, enum rdma_port_space ps);
	int (*destroy_id)(struct rdma_cm_id *id);
	int (*bind_addr)(struct rdma_cm_id *id, struct sockaddr *addr);
	int (*listen)(struct rdma_cm_id *id, int backlog);
	int (*resolve_addr)(struct rdma_cm_id *id, struct sockaddr *src,
			    struct sockaddr *dst, int timeout_ms);
	int (*resolve_route)(struct rdma_cm_id *id, int timeout_ms);
	int (*create_qp)(struct rdma_cm_id *id, struct ibv_pd *pd,
			 struct ibv_qp_init_attr *attr);
	void (*destroy_qp)(struct rdma_cm_id *id);
	int (*connect)(struct rdma_cm_id *id, struct rdma_conn_param *p);
	int (*accept)(struct rdma_cm_id *id, struct rdma_conn_param *p);
	/* optional (NULL: not called) */
	int (*set_option)(struct rdma_cm_id *id, int level, int optname,
			  void *optval, size_t optlen);
	int (*reject)(struct rdma_cm_id *id, const void *pdata, uint8_t len);
	int (*disconnect)(struct rdma_cm_id *id);
	int (*get_cm_event)(struct rdma_event_channel *ch,
			    struct rdma_cm_event **ev);
	int (*ack_cm_event)(struct rdma_cm_event *ev);
	uint16_t (*get_src_port)(struct rdma_cm_id *id); /* network order */
	struct ibv_context **(*get_devices)(int *num);	 /* NULL+errno */
	void (*free_devices)(struct ibv_context **list);
};

extern const struct verbs_sys verbs_sys_default;
/* The table in use: tests point it at their own (NULL = the default). */
const struct verbs_sys *verbs_sys_get(void);
void verbs_sys_set(const struct verbs_sys *sys);
/* Before using device @dev through librdmacm: 0, or -EPERM in a child
 * forked after its parent used it (the inherited context is unusable). */
int verbs_cm_claim(const char *dev);

/* -------------------------------------------------------------- tuning */

#define VERBS_PROTO_VERSION 1u
#define VERBS_DEF_EAGER (64u << 10) /* frame = receive buffer size */
#define VERBS_MIN_EAGER (4u << 10)
#define VERBS_MAX_EAGER (1u << 20)
#define VERBS_DEF_RDV_THRESHOLD (32u << 10)
#define VERBS_DEF_CREDITS 32u
#define VERBS_MAX_CREDITS 1024u
#define VERBS_DEF_RDV 8u /* rendezvous msgs in flight */
#define VERBS_MAX_RDV 64u
#define VERBS_MAX_PAYDESC 8u /* remote pieces of one payload */
#define VERBS_SLOTS_PER_CHUNK 8u
#define VERBS_MAX_SLOT_CHUNKS 16u
#define VERBS_CTL_SIZE 128u /* ack frame buffer per SQ entry */
#define VERBS_ACK_MAX_DONE 8u
#define VERBS_SIGNAL_EVERY 16u
#define VERBS_SQ_RESERVE 4u /* SQ entries kept for acks */
#define VERBS_CQ_BATCH 32
#define VERBS_PROGRESS_BUDGET 512
#define VERBS_DRAIN_MS 2000
#define VERBS_DEF_CONNECT_MS 15000
#define VERBS_RESOLVE_MS 2000
#define VERBS_RNR_RETRY 6 /* finite: an RNR is a bug here */
#define VERBS_RETRY 7
#define VERBS_RBUF_VIEWS 8
#define VERBS_READ_CHUNK (4u << 20)	 /* bytes per RDMA READ */
#define VERBS_RXE_READ_CHUNK (64u << 10) /* rxe hangs on READs of 1 MiB */

/* ---------------------------------------------------------------- wire */
/*
 * Every frame is one SEND into one eager receive buffer of the peer's
 * SRQ. Little-endian. Frame header (40 bytes):
 *   u16 magic | u8 kind | u8 hflags | u8 type | u8 flags | u16 npay
 *   u32 credits (cumulative receive buffers freed by the sender's side)
 *   u32 nstorages (DATA) / ndone (ACK)
 *   u64 id | u64 payload_len | u32 token | u32 reserved (0)
 * DATA: then npay payload descriptors, nstorages storage descriptors
 * (24 bytes: u64 addr-or-offset, u64 len, u32 rkey, u32 dflags), then the
 * inline payload (npay == 0), then inline storages at their offsets.
 * ACK: then ndone entries (u32 token, i32 status).
 * AUTH (a job secret is set; the first frame each way, every other header
 * field 0): then a 32-byte nonce (the connector's; zero from the
 * acceptor) and a 32-byte HMAC-SHA256 proof. See verbs_auth.c.
 */
#define VERBS_WIRE_MAGIC 0x5652u /* "RV" */
#define VERBS_HDR_SIZE 40u
#define VERBS_DESC_SIZE 24u
#define VERBS_DONE_SIZE 8u
#define VERBS_AUTH_LABEL_CONN "rxp verbs v1 proof from connector"
#define VERBS_AUTH_LABEL_ACC "rxp verbs v1 proof from acceptor"
#define VERBS_AUTH_FRAME                                                       \
	(VERBS_HDR_SIZE + RXP_AUTH_NONCE_BYTES + RXP_AUTH_MAC_BYTES)

enum verbs_kind { VERBS_K_DATA = 1, VERBS_K_ACK = 2, VERBS_K_AUTH = 3 };
#define VERBS_HF_BYE 0x1u    /* ACK: sender is closing */
#define VERBS_DF_INLINE 0x1u /* storage bytes are in the frame */

struct verbs_hdr {
	uint8_t kind, hflags, type, flags;
	uint16_t npay;
	uint32_t credits;
	uint32_t count; /* nstorages or ndone */
	uint64_t id;
	uint64_t payload_len;
	uint32_t token;
};

struct verbs_desc {
	uint64_t addr; /* remote address, or offset in the frame if inline */
	uint64_t len;
	uint32_t rkey;
	uint32_t dflags;
};

struct verbs_done {
	uint32_t token;
	int32_t status;
};

void verbs_hdr_encode(void *out, const struct verbs_hdr *h);
void verbs_hdr_patch(void *frame, uint32_t credits, uint32_t token);
void verbs_desc_encode(void *out, const struct verbs_desc *d);
void verbs_desc_decode(const void *in, struct verbs_desc *d);
void verbs_done_encode(void *out, const struct verbs_done *d);
void verbs_done_decode(const void *in, struct verbs_done *d);

struct verbs_limits {
	uint64_t max_payload, max_storage;
	uint32_t max_rdv; /* tokens the receiver accepts in flight */
};

/*
 * Decode and validate a received frame of @len bytes at @buf: header,
 * counts, every descriptor (inline ranges inside the frame, remote ranges
 * without overflow, lengths under the limits, payload pieces adding up).
 * 0 with *h set, or -RXP_E_PROTO / -RXP_E_TOO_BIG. Logs nothing.
 */
int verbs_frame_check(const void *buf, size_t len,
		      const struct verbs_limits *lim, struct verbs_hdr *h,
		      const char **why);

/* Private data of CONNECT_REQUEST / accept / reject (<= 56 bytes). */
#define VERBS_PD_MAGIC 0x56505852u /* "RXPV" */
#define VERBS_PD_SIZE 48u
/* an accept with VERBS_PDF_AUTH: then the acceptor's 32-byte nonce */
#define VERBS_PD_AUTH_SIZE (VERBS_PD_SIZE + RXP_AUTH_NONCE_BYTES)
enum verbs_rej {
	VERBS_REJ_NONE = 0,
	VERBS_REJ_VERSION = 1,
	VERBS_REJ_MALFORMED = 2,
	VERBS_REJ_RESOURCES = 3,
	VERBS_REJ_DEVICE = 4,
	VERBS_REJ_CLOSING = 5,
	VERBS_REJ_AUTH = 6, /* one side has a job secret, the other none */
};
struct verbs_pdata {
	uint32_t magic;
	uint16_t version;
	uint16_t size;
	uint32_t worker_id;
	uint32_t credits;    /* receive credits granted to the peer */
	uint32_t eager_size; /* largest frame accepted */
	uint16_t max_rdv;    /* rendezvous messages accepted in flight */
	uint16_t reject;     /* enum verbs_rej, in a reject only */
	uint64_t max_payload;
	uint64_t max_storage;
	uint64_t features; /* VERBS_PDF_* */
};
#define VERBS_PDF_AUTH 0x1ull /* a job secret: the AUTH frames follow */
void verbs_pdata_encode(void *out, const struct verbs_pdata *p);
/* 0, -RXP_E_VERSION (magic ok, other version: p->version set) or
 * -RXP_E_PROTO (short, bad magic, values out of range). */
int verbs_pdata_decode(const void *in, size_t len, struct verbs_pdata *p,
		       const char **why);

/* The AUTH frame (VERBS_AUTH_FRAME bytes); decode: 0 or -RXP_E_PROTO. */
void verbs_auth_encode(void *out, const uint8_t *nonce, const uint8_t *mac);
int verbs_auth_decode(const void *in, size_t len, uint8_t *nonce, uint8_t *mac);

/* Work-completion status -> -errno / -RXP_E_* (table), and its text. */
int verbs_wc_status_to_err(enum ibv_wc_status st);
const char *verbs_wc_status_str(enum ibv_wc_status st);
/* rdma_cm event type -> text */
const char *verbs_cm_event_str(enum rdma_cm_event_type ev);

/* ------------------------------------------------------- device choice */

struct verbs_choice {
	char dev[64];
	uint8_t port;
	int gid_index;
	union ibv_gid gid;
	int link_layer; /* IBV_LINK_LAYER_* */
	enum ibv_mtu mtu;
	uint32_t max_msg_sz;
	struct ibv_device_attr dattr;
};

struct verbs_override {
	const char *dev_name; /* NULL = any */
	int port;	      /* <= 0 = any */
	int gid_index;	      /* < 0 = any */
};

/* Overrides from attr (if set) else RXP_VERBS_DEVICE/PORT/GID_INDEX. */
void verbs_override_get(const struct rxp_tp_attr *attr,
			struct verbs_override *o);
/*
 * Pick the device/port/GID that serves @bind_addr. 0 with *out and @why
 * ("rxe0 port 1 gid 1 ..."), or -RXP_E_NO_DEVICE with @why listing each
 * rejected device and its reason, or -EINVAL (bad address).
 */
int verbs_choose(const struct verbs_sys *sys, const char *bind_addr,
		 const struct verbs_override *o, struct verbs_choice *out,
		 char *why, size_t len);
const char *verbs_gid_type_str(uint32_t t);
const char *verbs_port_state_str(enum ibv_port_state s);
int verbs_mtu_bytes(enum ibv_mtu m);
void verbs_format_addr(const struct sockaddr *sa, char *buf, size_t len);
/* GID that a RoCE port has for this IP (IPv4-mapped for IPv4) */
void verbs_ip_to_gid(const struct sockaddr *sa, union ibv_gid *gid);

/* --------------------------------------------------- shared memory domain */

struct verbs_dom;
struct verbs_conn;
struct verbs_tp;

/* An eager receive buffer (one SRQ WQE). */
struct verbs_view {
	struct rxp_buf base;
	struct verbs_rbuf *parent;
	bool heap;
};

struct verbs_rbuf {
	struct verbs_rbuf *next;
	struct verbs_dom *dom;
	void *data;
	uint32_t lkey;
	uint32_t byte_len;
	atomic_uint refs;  /* the transport's + one per live view */
	uint32_t cid, gen; /* connection charged for it (credit return) */
	bool credit;	   /* a DATA frame: freeing it returns a credit */
	uint32_t nviews;
	struct verbs_view views[VERBS_RBUF_VIEWS];
};

/* Rendezvous receive pool block: one rxp_buf handed to the agent. */
struct verbs_blk {
	struct rxp_buf base;
	struct verbs_blk *next;
	struct verbs_dom *dom;
	struct ibv_mr *mr; /* own (big blocks) or the chunk's */
	void *mem;
	size_t cap;
	int cls; /* size class, -1 = big */
};

#define VERBS_POOL_CLASSES 5 /* 64 KiB .. 1 MiB, carved from chunks */
#define VERBS_POOL_MIN_SHIFT 16
#define VERBS_POOL_CHUNK (4u << 20)

struct verbs_mchunk {
	struct verbs_mchunk *next;
	struct ibv_mr *mr;
	void *mem;
	void *meta; /* rbuf or blk array */
};

/* a domain's mu: its pools and lists */
RXP_LOCK_CLASS(verbs_dom_mu);

struct verbs_dom {
	const struct verbs_sys *sys;
	struct ibv_pd *pd;
	atomic_long refs; /* the transport + every buffer handed out */
	/* eventfd, written when returned fills (set at creation) */
	int efd;
	struct rxp_mutex mu; /* class verbs_dom_mu: the fields below */
	/* eager buffers released remotely */
	struct verbs_rbuf *returned RXP_GUARDED_BY(verbs_dom_mu);
	bool closed RXP_GUARDED_BY(verbs_dom_mu);
	struct verbs_blk *
		free_blk[VERBS_POOL_CLASSES] RXP_GUARDED_BY(verbs_dom_mu);
	struct verbs_blk *idle_big RXP_GUARDED_BY(verbs_dom_mu);
	size_t idle_big_bytes RXP_GUARDED_BY(verbs_dom_mu);
	size_t max_idle_big RXP_GUARDED_BY(verbs_dom_mu);
	/* every registered chunk */
	struct verbs_mchunk *chunks RXP_GUARDED_BY(verbs_dom_mu);
	/* stats */
	atomic_ulong big_regs;
};

void verbs_dom_get(struct verbs_dom *d);
void verbs_dom_put(struct verbs_dom *d);

/* Rendezvous receive buffer of @len bytes (refs 1, handed to the agent
 * after the reads) with its lkey, or NULL (-ENOMEM). */
struct verbs_blk *verbs_pool_get(struct verbs_dom *d, size_t len);
void verbs_pool_destroy(struct verbs_dom *d);

/* -------------------------------------------------- registration cache */

struct verbs_rce {
	uintptr_t start, end; /* [start, end) */
	struct ibv_mr *mr;
	uint32_t refs; /* sends in flight using it */
	bool pinned;   /* from mem_register: kept until unregister */
	bool dead;     /* invalidated; dereg at refs == 0 */
	/* retired (out of v[], found by no lookup): deregistered at
	 * retire_at, with @own (a bounce buffer) freed */
	void *own;
	int64_t retire_at;
	struct verbs_rce *rnext;
};

/*
 * A registration the peer may still READ is not deregistered when its
 * last send completes: a duplicate READ request (an RC retransmission
 * that crossed the completion, or a reordered one) makes the responder
 * re-check the rkey, and a missing one sends its QP to error without a
 * completion of its own. Retired entries wait grace_ns in a FIFO (the
 * grace is one value, so the FIFO is in deadline order); they are never
 * found again, since the memory behind them may be freed and mapped
 * anew. See docs/verbs.md "Lossy links".
 */
int64_t verbs_retire_grace_ns(uint32_t ack_timeout);
#define VERBS_RETIRE_MAX 4096		    /* entries waiting, then early */
#define VERBS_RETIRE_MAX_BYTES (1ull << 30) /* bytes pinned by them */

struct verbs_rcache {
	struct verbs_rce **v; /* sorted by start */
	uint32_t n, cap;
	uint64_t hits, misses;
	struct verbs_rce *retired, **retired_tail;
	uint32_t nretired;
	uint64_t retired_bytes;
	int64_t grace_ns;
	uint64_t retired_early; /* deregistered before their grace ended */
};

/* An entry covering [addr, addr+len) with refs+1 (registering one with
 * REMOTE_READ if needed): 0 or -errno (-ENOMEM, -EFAULT ...). */
int verbs_rcache_get(struct verbs_tp *tp, const void *addr, size_t len,
		     struct verbs_rce **out);
void verbs_rcache_put(struct verbs_tp *tp, struct verbs_rce *e);
int verbs_rcache_pin(struct verbs_tp *tp, void *addr, size_t len);
int verbs_rcache_unpin(struct verbs_tp *tp, void *addr, size_t len);
/* Retire @mr (and free @own with it) as a released entry is. */
void verbs_rcache_retire_mr(struct verbs_tp *tp, struct ibv_mr *mr, void *own,
			    size_t len);
/* Deregister the retired entries whose grace ended by @now (all if
 * @now < 0); the time the next one ends, or 0. */
int64_t verbs_rcache_reap(struct verbs_tp *tp, int64_t now);
void verbs_rcache_destroy(struct verbs_tp *tp);

/* -------------------------------------------------------- connections */

enum verbs_conn_state {
	VC_ADDR,       /* resolving address */
	VC_ROUTE,      /* resolving route */
	VC_CONNECTING, /* REQ sent */
	VC_ACCEPTING,  /* REP sent */
	VC_AUTH,       /* established; proving the job secret (verbs_auth.c) */
	VC_UP,
	VC_DEAD, /* callbacks done; draining, then freed */
};

enum verbs_sqe_kind { SQE_FREE, SQE_DATA, SQE_ACK, SQE_READ };

struct verbs_slot;
struct verbs_rdvr;

struct verbs_sqe {
	struct verbs_conn *conn;
	uint8_t kind;
	bool signaled;
	bool last; /* READ: last of its message */
	bool bye;  /* ACK: the goodbye before disconnect */
	void *ref; /* slot (DATA) / rdvr (READ) */
};

/* A send: a frame built in a registered buffer, waiting or in flight. */
struct verbs_slot {
	struct verbs_slot *next;      /* free / ready list */
	struct verbs_slot *done_next; /* deferred on_send list */
	void *buf;
	uint32_t lkey;
	uint32_t len;
	void *cookie;
	bool busy, posted, retired, reported, in_done, rdv, inl;
	uint16_t rdv_idx;
	uint32_t token;
	int status;	/* for the deferred on_send */
	uint64_t bytes; /* payload + storages */
	uint32_t nrce;
	struct verbs_rce **rce;	  /* registrations held (rendezvous) */
	struct ibv_mr *bounce_mr; /* gathered payload (rendezvous) */
	void *bounce;
};

struct verbs_slot_chunk {
	struct verbs_slot_chunk *next;
	struct ibv_mr *mr;
	void *mem;
	struct verbs_slot slots[VERBS_SLOTS_PER_CHUNK];
};

/* A message queued before its connection is up (or with no free slot):
 * a heap copy of the descriptors (the memory they point to is the
 * caller's, valid until on_send). */
struct verbs_pend {
	struct verbs_pend *next;
	void *cookie;
	struct rxp_msg_out m;
	struct rxp_iov iov[]; /* npayload + nstorages */
};

/* A received DATA frame waiting for in-order delivery. */
struct verbs_rx {
	struct verbs_rbuf *rb;
	struct verbs_hdr h;
	struct verbs_rdvr *rdv;
	bool ready;
	bool drop; /* rendezvous failed locally: sender told, not delivered */
};

/* Rendezvous receive: READs from the sender into pool blocks. */
struct verbs_rdvr {
	bool used;
	uint32_t token;
	struct verbs_rx *rx;
	struct verbs_rdvr *next;   /* conn's read queue */
	uint32_t ndesc;		   /* npay + nstorages */
	uint32_t cur;		   /* next descriptor to read */
	uint64_t off;		   /* bytes of it already posted */
	uint64_t pay_off;	   /* payload bytes placed so far */
	struct verbs_blk *payload; /* rendezvous payload, or NULL */
	struct verbs_blk **blks;   /* per storage (NULL = inline) */
	uint32_t reads_out;
	bool queued, posted_all;
};

struct verbs_conn {
	struct rxp_conn base;
	struct verbs_tp *tp;
	struct verbs_conn *next, *prev; /* tp->conns */
	struct verbs_conn *hnext;	/* qpn hash */
	struct verbs_conn *dirty_next;	/* tp->dirty */
	struct verbs_conn *done_next;	/* tp->done_conns */
	struct rdma_cm_id *id;
	struct ibv_qp *qp;
	uint32_t qpn, cid, gen;
	int state;
	bool reported; /* the agent knows it (outgoing, or accepted) */
	bool dirty, in_done, hashed, counted, bye_posted, disc_sent, graveyard;
	int err;
	char peer[64];
	int64_t deadline;   /* connect / drain, ns; 0 = none */
	uint32_t srq_share; /* SRQ buffers reserved for it */
	uint32_t max_inline;

	/* what the peer told us */
	struct verbs_pdata peer_pd;
	/* with a job secret: the REQ's and the REP's private data and the
	 * connector's nonce, what both proofs cover */
	uint8_t auth_t[VERBS_PD_SIZE + VERBS_PD_AUTH_SIZE +
		       RXP_AUTH_NONCE_BYTES];

	/* send credits */
	int64_t tx_credits;
	uint32_t tx_data_sent, tx_peer_freed;
	/* receive credits */
	uint32_t rx_data_recv, rx_freed, rx_freed_sent;

	/* send queue ring */
	struct verbs_sqe *sq;
	uint32_t sq_depth, sq_head, sq_tail, sq_unsig;
	uint32_t uncovered; /* unsignaled sends since the last signaled WR */
	void *ctl;
	struct ibv_mr *ctl_mr;

	/* slots */
	struct verbs_slot_chunk *chunks;
	struct verbs_slot *free_slots;
	uint32_t nchunks;
	struct verbs_slot *ready_head, *ready_tail;
	struct verbs_pend *pend_head, *pend_tail;
	struct verbs_slot *done_head, *done_tail; /* deferred on_send */
	struct verbs_slot **rdv_tx; /* [peer max_rdv] awaiting RDONE */
	uint32_t rdv_tx_n;
	uint16_t rdv_gen;

	/* acks owed to the peer */
	struct verbs_done *dones;
	uint32_t ndones;

	/* receive side */
	struct verbs_rx *rx; /* ring [rx_cap] */
	uint32_t rx_cap, rx_head, rx_tail;
	struct verbs_rdvr *rdvr; /* [tp->max_rdv] */
	struct verbs_rdvr *read_head, *read_tail;
	uint32_t rdvr_used;
};

static inline struct verbs_conn *to_vconn(struct rxp_conn *c)
{
	return rxp_container_of(c, struct verbs_conn, base);
}

static inline uint32_t verbs_sq_used(const struct verbs_conn *c)
{
	return c->sq_head - c->sq_tail;
}

/* ----------------------------------------------------------- transport */

struct verbs_stats {
	uint64_t eager_tx, rdv_tx, inline_tx, acks_tx, reads;
	uint64_t eager_rx, rdv_rx, credit_stalls, proto_errors, wc_errors;
	uint64_t accepted, rejected, auth_refused;
};

struct verbs_tp {
	struct rxp_tp base;
	const struct verbs_sys *sys;
	struct rxp_tp_cb cb;
	uint32_t local_id;
	uint64_t max_payload, max_storage;
	struct rxp_auth_key key; /* on: every connection proves it */
	uint32_t world_size;	 /* in the proofs */
	/* accepted connections in all / still in their set-up or proof
	 * (RXP_MAX_CONNS, RXP_MAX_UNAUTH_CONNS, as tcp's) */
	unsigned max_conns, max_unauth;
	struct rxp_ratelog limit_log;
	struct rxp_ratelog auth_log;
	/* configuration */
	uint32_t eager; /* our receive buffer size */
	uint32_t rdv_threshold;
	uint32_t credits;	/* granted to each peer */
	uint32_t ack_timeout;	/* RXP_VERBS_ACK_TIMEOUT; 0: rdma_cm's */
	uint32_t max_rdv;	/* rendezvous we accept in flight */
	uint32_t ack_threshold; /* T */
	uint32_t share;		/* SRQ buffers per connection */
	uint32_t sq_depth;
	uint32_t read_chunk; /* bytes per RDMA READ */
	int64_t connect_ns;
	struct verbs_choice ch;

	struct verbs_dom *dom;
	struct ibv_context *ctx;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	uint32_t cq_size, cq_used;
	struct ibv_srq *srq;
	uint32_t srq_max, srq_reserved, srq_alloc, srq_posted;
	struct verbs_rbuf *recycle; /* back on this thread, to repost */
	uint32_t orphans;	    /* held bufs of dead connections */
	unsigned cq_events;	    /* unacked */
	struct rdma_event_channel *ec;
	struct rdma_cm_id *lid;
	int epfd, tfd;
	char addr_str[80];
	struct sockaddr_storage bind_sa;
	bool bind_any, failed, more;
	bool armed;	       /* CQ notification requested */
	bool cm_kick;	       /* read rdma_cm events on next progress */
	int64_t cm_next;       /* ... or once this time has passed */
	int64_t next_deadline; /* earliest connection deadline, ns */
	int fail_err;

	struct verbs_conn *conns;
	struct verbs_conn *buckets[64];
	struct verbs_conn **ctab; /* cid -> conn */
	uint32_t ctab_n;
	uint32_t gen;
	struct verbs_conn *dirty;
	struct verbs_conn *done_conns;
	struct verbs_conn *graveyard;
	uint32_t ntimed;

	struct verbs_rcache rc;
	struct ibv_wc stash[VERBS_CQ_BATCH];
	int nstash;
	struct rxp_buf *scratch[RXP_WIRE_MAX_STORAGES];
	struct verbs_stats stats;
};

static inline struct verbs_tp *to_vtp(struct rxp_tp *tp)
{
	return rxp_container_of(tp, struct verbs_tp, base);
}

/* verbs_srq.c */
int verbs_take_returned(struct verbs_tp *tp);
struct rxp_buf *verbs_view_make(struct verbs_rbuf *rb, size_t off, size_t len);
void verbs_rbuf_release(struct verbs_tp *tp, struct verbs_rbuf *rb);
int verbs_srq_reserve(struct verbs_tp *tp, uint32_t n);
void verbs_srq_release(struct verbs_tp *tp, uint32_t n);
void verbs_rbuf_done(struct verbs_tp *tp, struct verbs_rbuf *rb);
void verbs_recycle_flush(struct verbs_tp *tp);
/* verbs_ctx.c */
void verbs_timers_update(struct verbs_tp *tp);

/* verbs_auth.c: with a job secret, an established connection is in
 * VC_AUTH until the proofs are exchanged; then verbs_conn_up(). */
void verbs_auth_start(struct verbs_conn *c);
void verbs_auth_recv(struct verbs_conn *c, const void *buf, size_t len);
void verbs_conn_up(struct verbs_conn *c);
/* log every connection's credit/queue state (debugging aid) */
void verbs_debug_dump(struct rxp_tp *tp);

/* verbs_cm.c */
struct verbs_conn *verbs_conn_new(struct verbs_tp *tp, bool outgoing,
				  uint32_t peer_id);
void verbs_conn_free(struct verbs_conn *c);
int verbs_create_qp(struct verbs_conn *c);
void verbs_set_deadline(struct verbs_conn *c, int64_t when);
/* our private data (@reject: 0, or why we reject) */
void verbs_my_pdata(struct verbs_tp *tp, uint16_t reject, uint8_t *out);
void verbs_conn_param(struct verbs_conn *c, struct rdma_conn_param *p,
		      uint8_t *pd, const struct rdma_conn_param *req);
/* fail pending sends, on_conn(err) once, then drain and free; @graceful
 * lets posted frames land first (a signaled goodbye) */
void verbs_conn_down(struct verbs_conn *c, int err, bool graceful);
int verbs_cm_connect(struct rxp_tp *tp, const char *addr, uint32_t peer_id,
		     struct rxp_conn **out);
void verbs_cm_disconnect(struct rxp_conn *c);
int verbs_cm_progress(struct verbs_tp *tp);
void verbs_conn_fail(struct verbs_conn *c, int err);
void verbs_cm_establish(struct verbs_conn *c);
struct verbs_conn *verbs_conn_by_qpn(struct verbs_tp *tp, uint32_t qpn);
struct verbs_conn *verbs_conn_by_cid(struct verbs_tp *tp, uint32_t cid,
				     uint32_t gen);
/* free dead connections whose send queue drained (or timed out) */
void verbs_conn_reap(struct verbs_tp *tp, bool force);
void verbs_conn_check_timers(struct verbs_tp *tp, int64_t now);

/* verbs_sq.c (slots, completions) and verbs_ep.c (send path) */
int verbs_slot_chunk_add(struct verbs_conn *c);
struct verbs_slot *verbs_slot_get(struct verbs_conn *c); /* or NULL */
void verbs_slot_unreg(struct verbs_conn *c, struct verbs_slot *s);
void verbs_slot_maybe_release(struct verbs_conn *c, struct verbs_slot *s);
void verbs_done_add(struct verbs_conn *c, struct verbs_slot *s, int status);
int verbs_ep_send(struct rxp_conn *c, const struct rxp_msg_out *m,
		  void *cookie);
int verbs_ep_setup(struct verbs_conn *c); /* at ESTABLISHED */
/* Post one control frame (<= VERBS_CTL_SIZE bytes) outside the credits,
 * as ACKs go: 0 or -errno. */
int verbs_ep_ctl(struct verbs_conn *c, const void *frame, uint32_t len);
void verbs_ep_free(struct verbs_conn *c);
void verbs_conn_mark(struct verbs_conn *c); /* flush at end of progress */
void verbs_conn_flush(struct verbs_conn *c);
void verbs_flush_dirty(struct verbs_tp *tp);
void verbs_deliver_dones(struct verbs_tp *tp);
/* fail every send not yet reported (on_send(err)) */
void verbs_ep_fail_sends(struct verbs_conn *c, int err);
/* a signaled/error completion for SQ entry @e: retire up to it */
void verbs_sq_retire(struct verbs_conn *c, struct verbs_sqe *e, int status);
/* ... every entry before @e (they completed: @e is the first error) */
void verbs_sq_retire_before(struct verbs_conn *c, struct verbs_sqe *e);
/* credits from a received frame; 0 or -RXP_E_PROTO */
int verbs_credit_update(struct verbs_conn *c, uint32_t credits);
/* ACK entries from the peer; 0 or -RXP_E_PROTO */
int verbs_ep_rdone(struct verbs_conn *c, uint32_t token, int32_t status);
void verbs_ep_queue_done(struct verbs_conn *c, uint32_t token, int32_t status);
/* QP in error: post a signaled WR that retires everything before it */
void verbs_ep_drain(struct verbs_conn *c);
/* post a BYE (signaled) if anything is outstanding; true if posted */
bool verbs_ep_bye(struct verbs_conn *c);
int verbs_post_sq(struct verbs_conn *c, struct ibv_send_wr *first, uint32_t n);

/* A list of WRs for one connection, posted together. */
struct verbs_batch {
	struct verbs_conn *c;
	uint32_t n;
	struct ibv_send_wr wr[16];
	struct ibv_sge sge[16];
};
/* The next WR (the caller sets opcode and the sge at b->sge[b->n - 1]);
 * signaled if @sig or the signalling rule says so. Flush first when
 * b->n == 16. */
struct ibv_send_wr *verbs_batch_add(struct verbs_batch *b, uint8_t kind,
				    void *ref, bool sig);
int verbs_batch_flush(struct verbs_batch *b); /* 0 or -errno */
uint32_t verbs_batch_room(const struct verbs_batch *b);

/* verbs_cq.c */
int verbs_cq_poll(struct verbs_tp *tp, int budget);
void verbs_cq_handle(struct verbs_tp *tp, struct ibv_wc *wc, int n);
void verbs_rx_fail(struct verbs_conn *c); /* drop receive state */
void verbs_rx_free(struct verbs_conn *c);
void verbs_post_reads(struct verbs_conn *c);
/* a READ retired (@status 0: it and all before it succeeded) */
void verbs_read_retired(struct verbs_conn *c, struct verbs_rdvr *r, bool last,
			int status);

/* verbs_ctx.c: the ops */
extern const struct rxp_tp_ops rxp_verbs_ops;

/* Translate rdma-core's conventions once, at the call:
 * +errno returns -> verbs_pos_err(ret); NULL/-1 + errno -> verbs_errno(). */
static inline int verbs_pos_err(int ret)
{
	return ret > 0 ? -ret : (ret < 0 ? ret : -EIO);
}

static inline int verbs_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

#endif
