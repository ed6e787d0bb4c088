/* SPDX-License-Identifier: MIT */
/*
 * Agent internals. See docs/DESIGN.md for the thread table; in short:
 *  - the polling thread owns the transport, the pending-call table, the
 *    deadline heap and the connection table (no locks: single owner);
 *  - user threads hand work to it through a lock-free submit stack and an
 *    eventfd that is written only when the poller sleeps;
 *  - worker threads run registered functions, handlers and then-callbacks.
 */
#ifndef RXP_AGENT_INT_H
#define RXP_AGENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <rxp/rxp.h>
#include "codec.h"
#include "feature.h"
#include "rendezvous.h"
#include "rxp_auth.h"
#include "rxp_transport.h"
#include "rxp_util.h"

/* wire message types (0..63 are rxp's) */
enum {
	RXP__MSG_CALL = 1,	  /* script call: codec call payload */
	RXP__MSG_RESP = 2,	  /* response to any request */
	RXP__MSG_REMOTE = 3,	  /* remote(): codec call with rref ids */
	RXP__MSG_RREF_FETCH = 4,  /* to_here: {rref} -> value response */
	RXP__MSG_RREF_DELETE = 5, /* user drops a fork: {owner, rref, fork} */
	RXP__MSG_RREF_FORK = 6,	  /* child tells owner of its fork */
	RXP__MSG_RREF_ACCEPT = 7, /* child tells parent it is known */
};

/* how a call was made (profiler key prefix) */
enum rxp__api { RXP__API_ASYNC, RXP__API_SYNC, RXP__API_REMOTE };
/* RESP flags */
#define RXP__RESP_ERROR 0x1u /* payload: codec error encoding */

#define RXP__INLINE_PAYLOAD 256 /* request bytes kept inside the future */
#define RXP__INLINE_ARENA 512	/* decode arena inside future / call */
#define RXP__INLINE_STORAGES 4

/* ------------------------------------------------------------- futures */

enum rxp__fut_kind { RXP__FUT_CALL, RXP__FUT_MSG, RXP__FUT_CTRL };

struct rxp__cb {
	rxp_future_cb fn;
	void *user;
};

struct rxp_agent;

struct rxp_future {
	/* submit stack link and kind */
	struct rxp_future *next;
	struct rxp_agent *agent;
	enum rxp__fut_kind kind;
	atomic_uint refs;
	atomic_uint state; /* 0 pending, 1 done (futex word) */
	atomic_uint waiters;
	int status;

	/* request, set by the submitting thread */
	uint32_t dst;
	uint8_t type;
	int64_t timeout_ns; /* 0 = none */
	struct rxp_iov payload_iov;
	void *payload_heap; /* when larger than inline */
	struct rxp_iov *st; /* storages to send */
	uint32_t nst;
	struct rxp_iov st_inline[RXP__INLINE_STORAGES];
	int64_t t_submit_ns;

	uint8_t api;		      /* enum rxp__api: how the call was made */
	struct rxp_resp_ext resp_ext; /* response extensions, in the arena */
	/* features' extension areas (feature.h), zeroed at creation */
	struct rxp__ext ext[RXP__NSLOTS];
	bool hooked; /* on_submit hooks ran: run on_done */

	/* RXP__FUT_CTRL: a transport op run on the poller */
	int ctrl_op; /* 1 mem_register, 2 mem_unregister */
	void *ctrl_ptr;
	size_t ctrl_len;

	/* poller-owned while pending */
	uint64_t id;
	uint64_t conn_key;
	int64_t deadline_ns;
	bool send_done, resp_done;
	bool backlogged; /* on the agent's backlog (transport queue full) */

	/* result */
	struct rxp_buf *resp_payload;
	struct rxp_buf **rst; /* response storages */
	uint32_t nrst;
	struct rxp_buf *rst_inline[RXP__INLINE_STORAGES];
	const struct rxp_value *value;
	char *errmsg;	      /* heap, or NULL */
	const char *errconst; /* static message, or NULL */
	struct rxp_arena arena;

	pthread_mutex_t cb_mu;
	struct rxp__cb cbs[RXP_FUTURE_MAX_CALLBACKS];
	unsigned ncbs;
	bool cbs_fired;

	union {
		char payload_inline[RXP__INLINE_PAYLOAD];
		max_align_t align_;
	};
	union {
		char arena_mem[RXP__INLINE_ARENA];
		max_align_t align2_;
	};
};

struct rxp_future *rxp__future_new(struct rxp_agent *a, enum rxp__fut_kind k);
/* Fulfil (poller or shutdown path): sets state, wakes waiters, schedules
 * callbacks, drops the agent's reference. */
void rxp__future_fulfil(struct rxp_future *f, int status);
void rxp__future_set_error(struct rxp_future *f, const char *msg);
void rxp__future_put(struct rxp_future *f);

/* ------------------------------------------------------- incoming calls */

struct rxp_call {
	struct rxp_call *next; /* submit stack link */
	struct rxp_agent *agent;
	uint64_t conn_key;
	uint64_t id;
	uint32_t caller;
	uint8_t type;
	atomic_uint completed;
	atomic_uint refs; /* dispatch + completion path */

	struct rxp_buf *payload;
	struct rxp_buf **st;
	uint32_t nst;
	struct rxp_buf *st_inline[RXP__INLINE_STORAGES];

	struct rxp_decoded_call dc;
	struct rxp_arena arena;

	/* response */
	uint8_t resp_flags;
	void *resp;
	size_t resp_len;
	struct rxp_buf **rst;
	uint32_t nrst;
	struct rxp_buf *rst_inline[RXP__INLINE_STORAGES];
	struct rxp_iov *rst_iov;
	struct rxp_iov rst_iov_inline[RXP__INLINE_STORAGES];
	bool async_fn;
	bool decoded;		  /* dc filled on the poller (REMOTE) */
	int64_t t_recv_ns;	  /* when the poller received it */
	struct rxp_buf *resp_buf; /* shared response payload (respond_buf) */
	/* features' extension areas (feature.h), zeroed at creation */
	struct rxp__ext ext[RXP__NSLOTS];

	union {
		char arena_mem[RXP__INLINE_ARENA];
		max_align_t align_;
	};
	union {
		char resp_inline[RXP__INLINE_PAYLOAD];
		max_align_t align2_;
	};
};

/* ------------------------------------------------------------- slot map */
/* u64 key -> pointer, keys = (generation << 32 | index). Poller only.
 * The generation is SipHash of a counter under a random per-table key, so
 * a peer that sees some keys (call ids) cannot guess a pending one; the
 * whole key is checked on lookup. */
struct rxp__slot {
	uint64_t key;
	void *ptr;
	uint32_t next_free;
};
struct rxp__slots {
	struct rxp__slot *v;
	uint32_t cap, used, free_head;
	uint64_t ctr;
	struct rxp_auth_prf prf;
};
int rxp__slots_init(struct rxp__slots *s, uint32_t cap);
void rxp__slots_fini(struct rxp__slots *s);
/* 0 and *key, or -ENOMEM */
int rxp__slots_add(struct rxp__slots *s, void *ptr, uint64_t *key);
void *rxp__slots_get(const struct rxp__slots *s, uint64_t key);
void *rxp__slots_del(struct rxp__slots *s, uint64_t key);

/* Byte lengths of @n buffers, in @inl (RXP__INLINE_STORAGES entries) or
 * a heap array the caller frees (when != @inl); NULL on ENOMEM. */
uint64_t *rxp__buf_lens(struct rxp_buf *const *v, uint32_t n, uint64_t *inl);

/* -------------------------------------------------------- deadline heap */
struct rxp__dl {
	int64_t t;
	uint64_t id;
};
struct rxp__heap {
	struct rxp__dl *v;
	uint32_t n, cap;
};
int rxp__heap_push(struct rxp__heap *h, int64_t t, uint64_t id);
bool rxp__heap_top(const struct rxp__heap *h, struct rxp__dl *out);
void rxp__heap_pop(struct rxp__heap *h);
void rxp__heap_fini(struct rxp__heap *h);

/* ------------------------------------------------------------ worker pool */
struct rxp__task {
	void (*fn)(void *arg);
	void *arg;
};
struct rxp__pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct rxp__task *q;
	uint32_t head, count, cap;
	bool stop;
	int nthreads;
	pthread_t *threads;
	atomic_int idle;
};
int rxp__pool_start(struct rxp__pool *p, int nthreads);
/* Queue a task. -ENOMEM when the queue cannot grow, -ECANCELED when
 * stopped (the caller then runs or drops the task itself). */
int rxp__pool_push(struct rxp__pool *p, void (*fn)(void *), void *arg);
/* Run what is queued, then join the threads. */
void rxp__pool_stop(struct rxp__pool *p);
bool rxp__pool_is_worker(const struct rxp__pool *p);

/* ---------------------------------------------- workers (from rendezvous) */
struct rxp__worker {
	char name[128];
	char addr[128]; /* transport address */
	int rank;
	/* poller-owned */
	struct rxp_conn *conn; /* outgoing */
	uint64_t conn_key;
	/* metrics */
	atomic_uint_fast64_t calls, bytes_sent, bytes_recv, errors;
};

/* ---------------------------------------------------------------- agent */

struct rxp__fn_entry {
	char *name;
	rxp_fn fn;
	unsigned flags;
	void *user;
};

struct rxp_agent {
	atomic_uint refs;
	char name[128];
	int rank, world;
	struct rxp__worker *workers;
	int64_t rpc_timeout_ns;
	int poll_us;

	const struct rxp_tp_ops *ops;
	struct rxp_tp *tp;
	struct rxp_tp_cb cb;

	struct rxp__rdv *rdv;
	struct rxp__rdv_server *rdv_server;

	/* submit path */
	_Atomic(struct rxp_future *) sub_futs;
	_Atomic(struct rxp_call *) sub_calls;
	atomic_bool sleeping; /* the polling thread sleeps: lock is free */
	pthread_mutex_t progress_mu; /* held by the leader (see poller.c) */
	int64_t sleep_until_ns;	     /* when the sleeping poller wakes */
	atomic_bool stopping;
	atomic_bool stopped;   /* new work refused */
	atomic_int submitters; /* threads inside the submit gate */
	int wake_fd;
	int64_t init_timeout_ms;
	pthread_mutex_t join_mu;

	pthread_t poller;
	bool poller_started;

	/* poller-owned */
	struct rxp_future *backlog_head, *backlog_tail; /* send -EAGAIN */
	struct rxp_call *rbacklog_head, *rbacklog_tail;
	struct rxp__slots pending; /* id -> future */
	struct rxp__slots conns;   /* conn key -> struct rxp_conn */
	struct rxp__heap deadlines;

	struct rxp__pool pool;
	struct rxp_call *call_cache; /* poller-owned free list */
	uint32_t ncall_cache;

	pthread_rwlock_t fn_lock;
	struct rxp__fn_entry *fns;
	uint32_t nfns, cap_fns;
	rxp_msg_handler handler;
	void *handler_user;

	/* autograd hooks (read on worker threads; set before calls) */
	struct rxp_autograd_hooks ag_hooks;
	bool has_ag_hooks;

	/* features (feature.h): state by slot, owner of each internal type */
	void *feat[RXP__NSLOTS];
	const struct rxp__feature *msg_feat[RXP_MSG_USER];
	/* a feature's on_submit hook wants every script call (profiler on) */
	atomic_bool call_hooks;

	/* metrics */
	atomic_long client_active, server_active, server_active_async;
	atomic_uint_fast64_t calls_sent, calls_failed, calls_timed_out,
		late_responses, proto_errors, calls_served, responses_dropped,
		forged_responses;
};

void rxp__agent_get(struct rxp_agent *a);
void rxp__agent_put(struct rxp_agent *a);
/* hand a future / finished call to the poller */
int rxp__submit_future(struct rxp_agent *a, struct rxp_future *f);
void rxp__submit_call(struct rxp_agent *a, struct rxp_call *c);
/* true if this thread holds @a's progress lock (the polling thread while
 * awake, or a submitter sending directly for a moment) */
bool rxp__on_poller(const struct rxp_agent *a);

/* poller.c: the polling thread's body, and the transport callbacks */
void *rxp__poller_main(void *arg);
void rxp__poller_callbacks(struct rxp_agent *a);
int rxp__worker_id(const struct rxp_agent *a, const char *name);
/* incoming calls (rpc.c): allocated on the poller (from its cache),
 * refs = 2 (dispatch + completion path) */
struct rxp_call *rxp__call_new(struct rxp_agent *a);
void rxp__call_put(struct rxp_call *c);
void rxp__call_cache_flush(struct rxp_agent *a);
/* run an incoming request on the worker pool (rpc.c) */
void rxp__dispatch(void *arg);
/* finish a call with an error response */
void rxp__call_fail_code(struct rxp_call *c, int code, const char *msg);
/* Send an internal message (type < RXP_MSG_USER); @payload is copied into
 * the future (len <= RXP__INLINE_PAYLOAD). */
int rxp__send_internal(struct rxp_agent *a, int dst, uint8_t type,
		       const void *payload, size_t len, int64_t timeout_ms,
		       enum rxp__fut_kind kind, struct rxp_future **out);
/* Respond to an internal request with an empty value (ack), or fail it */
void rxp__call_ack(struct rxp_call *c);

/* rpc.c: build and submit a script call (rpc_async, rpc_sync, remote) */
int rxp__rpc_submit(struct rxp_agent *a, int dst, const char *qualname,
		    const struct rxp_value *args, uint32_t nargs,
		    const struct rxp_iov *storages, uint32_t nstorages,
		    const struct rxp_call_opts *opts, enum rxp__api api,
		    const struct rxp_rref_desc *remote,
		    struct rxp_future **out);
/* respond with a shared payload buffer and storages (owner fetches) */
void rxp__call_respond_buf(struct rxp_call *c, struct rxp_buf *payload,
			   struct rxp_buf *const *st, uint32_t nst);
struct rxp_call *rxp__call_get(struct rxp_call *c);

#endif
