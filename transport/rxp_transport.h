/* SPDX-License-Identifier: MIT */
/*
 * The transport interface: one vtable per backend (tcp on io_uring, tcp on
 * poll+readv/writev, verbs, shm). The agent owns one transport instance and is
 * its only user. Not installed.
 *
 * Model: message-oriented. A message is {type, flags, id, payload bytes,
 * storages[]}. The transport frames it, moves payload and storages without
 * copying storages through the payload, and delivers received messages with
 * their payload and storages in refcounted receive buffers (struct rxp_buf).
 *
 * Threads (the contract is docs/DESIGN.md, "Threads"): after start-up
 * every op is called by whichever thread holds the agent's progress lock:
 * the polling thread, or a thread that submitted work while the poller
 * slept and drives progress itself for a moment. So ops are called one at
 * a time, but not always from the same thread: a backend keeps no
 * per-thread state. Before the polling thread starts (open, address) and
 * in the agent's error paths, the creating thread calls them. Callbacks
 * run inside progress() (and inside disconnect()/close()) on the calling
 * thread, with the progress lock held. Exception: rxp_buf references may
 * be dropped from any thread, without the lock.
 *
 * Ownership:
 *  - struct rxp_msg_out and its iov arrays are read only during send().
 *  - The payload and storage memory they point to is read until on_send
 *    reports that send's cookie (for SEND_ZC: after the notification).
 *  - Buffers in struct rxp_msg_in belong to the transport; the agent takes
 *    a reference (rxp_buf_get) on each one it keeps past the callback.
 *
 * Completion contract (the transport's half of the future contract):
 *  - send() returning 0 means on_send(cookie, status) is called exactly
 *    once later (never from inside send() itself), also when the connection
 *    fails (-ECONNRESET / -RXP_E_PEER_LOST) or is disconnected/closed
 *    (-ECANCELED). send() returning <0 means nothing was queued and no
 *    callback will come.
 *  - When a connection fails or is disconnected: first on_send for each of
 *    its pending sends, then on_conn(c, status<0) exactly once; after that
 *    callback returns the connection is freed and must not be used.
 *  - A malformed frame from the peer (bad magic/version, lengths over the
 *    limits, counts out of range) fails that connection with -RXP_E_PROTO,
 *    never the process.
 */
#ifndef RXP_TRANSPORT_H
#define RXP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rxp/rxp.h>
#include "rxp_util.h"

/* Wire limits every transport enforces on receive (and send). */
#define RXP_WIRE_MAX_STORAGES 1024u
#define RXP_WIRE_DEFAULT_MAX_PAYLOAD (64u << 20)   /* 64 MiB */
#define RXP_WIRE_DEFAULT_MAX_STORAGE (16ull << 30) /* 16 GiB each */

struct rxp_tp;
struct rxp_tp_ops;
struct rxp_auth_key; /* transport/auth/rxp_auth.h */

/* The part of every backend's connection the agent may read. Backends
 * embed it first (struct tcp_conn { struct rxp_conn base; ... }). */
struct rxp_conn {
	struct rxp_tp *tp;
	uint32_t peer_id; /* worker id: given to connect(), or learned from
			     the peer's handshake for accepted connections */
	bool outgoing;	  /* true if created by connect() */
	void *agent_data; /* the agent's, untouched by the transport */
};

/* The part of every backend's transport instance the agent may read. */
struct rxp_tp {
	const struct rxp_tp_ops *ops;
	const char *name; /* "tcp", "tcp-poll", "verbs", "shm" */
	/* counters the backend maintains with rxp_tp_count() (single
	 * writer: the progress lock's holder); atomic, because the agent's
	 * metrics read them from any thread (RXP_METRICS_FILE: a pool
	 * thread, while traffic flows) */
	atomic_uint_fast64_t bytes_sent, bytes_received, msgs_sent,
		msgs_received;
	/* connections refused by authentication; atomic: the agent's
	 * metrics read it from any thread */
	atomic_uint_fast64_t auth_refused;
	/* budgets (atomic for the same reason): accepted connections closed
	 * by a cap, connections failed because a started frame stalled, and
	 * times accepting paused on a resource limit (EMFILE, ENFILE, ...) */
	atomic_uint_fast64_t conns_limited, conns_stalled, accept_pauses;
	/* incoming connections that failed before their handshake completed
	 * (silence, garbage; authentication refusals count above) */
	atomic_uint_fast64_t conns_prehs_failed;
	/* receive memory: bytes allocated for frames not yet delivered
	 * (gauge), and connections failed because a piece would have taken
	 * it past the budget (RXP_MAX_RX_MEMORY); same single writer */
	atomic_uint_fast64_t rx_ahead, rx_mem_refused;
	/* NULL, or the instance that wraps this one (fault:<inner>) and owns
	 * it: connections stay the inner backend's, so the wrapper finds
	 * itself from a connection through c->tp->outer. Set by the wrapper
	 * right after the inner open(), before any connection exists. */
	struct rxp_tp *outer;
};

/* Add @n to a counter of struct rxp_tp. Its one writer holds the progress
 * lock, so a relaxed load and store are enough: a plain add on x86 and
 * arm64, no locked instruction on the data path. */
static inline void rxp_tp_count(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* Read one (any thread). */
static inline uint64_t rxp_tp_counter(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

struct rxp_msg_out {
	uint8_t type;
	uint8_t flags;
	uint64_t id;
	const struct rxp_iov *payload; /* gathered into one payload */
	uint32_t npayload;
	const struct rxp_iov *storages;
	uint32_t nstorages;
};

struct rxp_msg_in {
	uint8_t type;
	uint8_t flags;
	uint64_t id;
	struct rxp_buf *payload; /* never NULL; len may be 0 */
	uint32_t nstorages;
	struct rxp_buf *const *storages; /* valid during the callback */
};

/* Callbacks into the agent. Called from progress(), disconnect() or
 * close(), on the thread that called those (it holds the progress lock). They
 * must not call back into the transport except send() and disconnect() (on
 * other connections or this one). */
struct rxp_tp_cb {
	void *ctx;
	/* status 0: connection established (outgoing) or accepted (incoming,
	 * peer_id now known). status < 0: it failed or was closed; the conn
	 * is freed after this returns. */
	void (*on_conn)(void *ctx, struct rxp_conn *c, int status);
	void (*on_recv)(void *ctx, struct rxp_conn *c,
			const struct rxp_msg_in *m);
	void (*on_send)(void *ctx, void *cookie, int status);
};

#define RXP_TP_F_NO_URING 0x1u /* tcp: use the poll+readv/writev path */

struct rxp_tp_attr {
	const char *bind_addr; /* numeric IPv4/IPv6 to listen on */
	uint16_t port;	       /* 0 = ephemeral */
	uint32_t local_id;     /* our worker id, sent in the handshake */
	uint64_t max_payload;  /* 0 = RXP_WIRE_DEFAULT_MAX_PAYLOAD */
	uint64_t max_storage;  /* 0 = RXP_WIRE_DEFAULT_MAX_STORAGE */
	unsigned flags;	       /* RXP_TP_F_* */
	const struct rxp_tp_cb *cb;
	/* NULL or !key->on: no authentication. Else every connection proves
	 * this job secret both ways before anything else (copied at open). */
	const struct rxp_auth_key *key;
	uint32_t world_size; /* sent and checked in the authenticated hello */
	/* fault only: the backend it wraps (a complete table, see
	 * rxp_tp_ops_complete) */
	const struct rxp_tp_ops *inner;
	/* verbs only: NULL/-1 = choose automatically */
	const char *dev_name;
	int port_num;
	int gid_index;
};

struct rxp_tp_ops {
	const char *name;
	/* Create the instance and start listening on attr->bind_addr. */
	int (*open)(const struct rxp_tp_attr *attr, struct rxp_tp **out);
	/* Disconnect everything (callbacks as for disconnect), stop listening,
	 * free the instance. rxp_bufs still referenced stay valid until
	 * released (the backend refcounts its pools). */
	void (*close)(struct rxp_tp *tp);
	/* The address peers pass to connect(), e.g. "127.0.0.1:41234". */
	int (*address)(struct rxp_tp *tp, char *buf, size_t len);
	/* Start connecting; returns at once. send() may be used right away
	 * (queued until established). Failure is reported by on_conn. */
	int (*connect)(struct rxp_tp *tp, const char *addr, uint32_t peer_id,
		       struct rxp_conn **out);
	/* Close one connection: pending sends complete -ECANCELED, then
	 * on_conn(c, -ECANCELED) — possibly before disconnect() returns. */
	void (*disconnect)(struct rxp_conn *c);
	int (*send)(struct rxp_conn *c, const struct rxp_msg_out *m,
		    void *cookie);
	/* Optional (NULL in a backend's table: rxp_tp_ops_complete fills in
	 * "always -EBUSY"). Take back the queued send of
	 * @cookie if no byte of it can have reached the kernel or the NIC:
	 * 0, and its on_send never comes; -EBUSY if it has started or may
	 * be read at any moment (the caller must wait for on_send); -ENOENT
	 * if @c holds no such send. */
	int (*cancel)(struct rxp_conn *c, void *cookie);
	/* Do all work that is ready without blocking: completions, accepts,
	 * receives; invoke callbacks. Returns events handled (>= 0) or -errno
	 * for a failure of the whole transport. */
	int (*progress)(struct rxp_tp *tp);
	/* An fd that becomes readable when progress() has work. */
	int (*wait_fd)(struct rxp_tp *tp);
	/* Prepare to sleep on wait_fd (re-arm notifications). Returns 0 if it
	 * is safe to sleep, 1 if work arrived meanwhile (call progress). */
	int (*arm)(struct rxp_tp *tp);
	/* Optional (NULL on tcp; completed as "nothing to cache", 0):
	 * registration cache hints. */
	int (*mem_register)(struct rxp_tp *tp, void *ptr, size_t len);
	int (*mem_unregister)(struct rxp_tp *tp, void *ptr, size_t len);
};

extern const struct rxp_tp_ops rxp_tcp_ops;   /* transport/tcp */
extern const struct rxp_tp_ops rxp_verbs_ops; /* transport/verbs */
extern const struct rxp_tp_ops rxp_shm_ops;   /* transport/shm */
extern const struct rxp_tp_ops rxp_fault_ops; /* transport/fault */
extern const struct rxp_tp_ops rxp_mux_ops;   /* transport/mux: auto */

/* @out = @in with every optional op that @in leaves NULL set to its
 * default (cancel: -EBUSY; mem_register/mem_unregister: 0), so callers
 * never test an op for NULL. */
void rxp_tp_ops_complete(struct rxp_tp_ops *out, const struct rxp_tp_ops *in);

/* The outcome of rxp_tp_select: what to open and how to name it. */
struct rxp_tp_choice {
	struct rxp_tp_ops ops;	 /* completed; open() with attr.inner below */
	struct rxp_tp_ops inner; /* fault:<x>: x's table, completed; else
				    zero */
	bool wrapped;		 /* fault:<x> */
	bool muxed;		 /* auto: shm beside inner (transport/mux) */
	bool caches_mem;	 /* the backend has a registration cache */
	const char *wire_name;	 /* what peers must agree on at rendezvous:
				    the backend's name (fault:x speaks x) */
};

/* The attr.inner to open @ch's ops with: NULL unless it wraps another. */
static inline const struct rxp_tp_ops *
rxp_tp_choice_inner(const struct rxp_tp_choice *ch)
{
	return ch->wrapped || ch->muxed ? &ch->inner : NULL;
}

/* A wrapper's counters: the sum of its @n inner instances' (the one
 * writer of each holds the progress lock, as the wrapper does). */
void rxp_tp_counters_sum(struct rxp_tp *out, struct rxp_tp *const *in, int n);

/*
 * Transport choice (transport/select.c). @want: "auto", "tcp", "verbs", "shm",
 * or "fault:<one of those>" (tests). auto picks verbs when a usable device
 * serves @bind_addr, else tcp, and logs the choice and why (each rejected
 * device with its reason). 0, or -EINVAL (bad name) / -RXP_E_NO_DEVICE.
 */
int rxp_tp_select(const char *want, const char *bind_addr,
		  struct rxp_tp_choice *out);

/* verbs: is there a usable device for @bind_addr? 0 yes (fills @why with
 * the device chosen), -RXP_E_NO_DEVICE no (@why says why). Defined in
 * transport/verbs; a stub returning -RXP_E_NO_DEVICE when rxp is built
 * without verbs. */
int rxp_verbs_probe(const char *bind_addr, char *why, size_t len);

#endif
