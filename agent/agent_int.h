/* SPDX-License-Identifier: MIT */
/*
 * Agent internals. The threading contract is docs/DESIGN.md, "Threads":
 * which threads exist, who holds which lock, where callbacks run. This
 * header only marks, field by field, what each lock guards; clang's
 * -Wthread-safety checks it (util/rxp_lock.h explains the lock classes).
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
#include "rxp_abi.h"
#include "rxp_auth.h"
#include "rxp_lock.h"
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

/*
 * Lock classes (util/rxp_lock.h), one per kind of lock:
 *  rxp__progress  an agent's progress_mu: held by whichever thread drives
 *                 progress (the polling thread, or a submitter in kick());
 *                 the transport's callbacks run under it
 *  rxp__registry  an agent's fn_lock (rwlock): functions, handler, hooks
 *  rxp__future_cb a future's cb_mu: its then-callbacks
 *  rxp__pool      the worker pool's mu: its task ring
 */
RXP_LOCK_CLASS(rxp__progress);
RXP_RWLOCK_CLASS(rxp__registry);
RXP_LOCK_CLASS(rxp__future_cb);
RXP_LOCK_CLASS(rxp__pool);

struct rxp__cb {
	rxp_future_cb fn;
	void *user;
};

struct rxp_agent;

/*
 * Push @item on a lock-free stack linked through ->next whose entries are
 * only ever taken whole (atomic_exchange of the head with NULL): pushes
 * from any thread, no lock, and no ABA since nothing pops one entry.
 * @order is the CAS's success order (seq_cst where a sleeper check
 * follows, as for the submit stacks; release where the taker only needs
 * the entry's contents). Used by the submit stacks and the returned lists.
 */
#define RXP__STACK_PUSH(head, item, order)                                     \
	do {                                                                   \
		__typeof__(item) h_ =                                          \
			atomic_load_explicit((head), memory_order_relaxed);    \
		do                                                             \
			(item)->next = h_;                                     \
		while (!atomic_compare_exchange_weak_explicit(                 \
			(head), &h_, (item), (order), memory_order_relaxed));  \
	} while (0)

struct rxp_future {
	/* submit stack link and kind */
	struct rxp_future *next;
	struct rxp_agent *agent;
	enum rxp__fut_kind kind;
	/* the cache of the thread that made it (future.c): freed on that
	 * thread it goes back there, freed anywhere else to the shared list */
	const void *maker;
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

	/* the progress lock's while pending (zeroed at creation) */
	uint64_t id RXP_GUARDED_BY(rxp__progress);
	uint64_t conn_key RXP_GUARDED_BY(rxp__progress);
	int64_t deadline_ns RXP_GUARDED_BY(rxp__progress);
	bool send_done RXP_GUARDED_BY(rxp__progress);
	bool resp_done RXP_GUARDED_BY(rxp__progress);
	/* on its worker's backlog (transport queue full); ->next and
	 * bl_prev link it there */
	bool backlogged RXP_GUARDED_BY(rxp__progress);
	struct rxp_future *bl_prev RXP_GUARDED_BY(rxp__progress);
	/* timed out while the transport still sends from its memory: on
	 * the agent's stuck list until on_send, or until grace_ns, when its
	 * connection is closed (poller.c "Deadlines that hold") */
	bool stuck RXP_GUARDED_BY(rxp__progress);
	struct rxp_future *stuck_prev RXP_GUARDED_BY(rxp__progress);
	struct rxp_future *stuck_next RXP_GUARDED_BY(rxp__progress);
	int64_t grace_ns RXP_GUARDED_BY(rxp__progress);

	/* result */
	struct rxp_buf *resp_payload;
	struct rxp_buf **rst; /* response storages */
	uint32_t nrst;
	struct rxp_buf *rst_inline[RXP__INLINE_STORAGES];
	const struct rxp_value *value;
	char *errmsg;	      /* heap, or NULL */
	const char *errconst; /* static message, or NULL */
	struct rxp_arena arena;

	struct rxp_mutex cb_mu; /* class rxp__future_cb: the three below */
	struct rxp__cb
		cbs[RXP_FUTURE_MAX_CALLBACKS] RXP_GUARDED_BY(rxp__future_cb);
	unsigned ncbs RXP_GUARDED_BY(rxp__future_cb);
	bool cbs_fired RXP_GUARDED_BY(rxp__future_cb);

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
	/* waiting for a pool thread: its caller's queue there, and the
	 * bytes it holds (payload and storages), charged to the budget */
	struct rxp_call *pool_next;
	uint64_t pool_bytes;

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
/* u64 key -> pointer, keys = (generation << 32 | index). The agent's
 * tables are guarded by its progress lock. The generation is SipHash of a
 * counter under a random per-table key, so a peer that sees some keys
 * (call ids) cannot guess a pending one; the whole key is checked on
 * lookup. */
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
/*
 * The pool-queue budget (docs/DESIGN.md "Budgets"): incoming calls that
 * wait for a pool thread, by count and by the bytes they hold, per caller
 * and in all. The RXP_POOL_QUEUE_* variables set it.
 */
struct rxp__pool_limits {
	uint32_t per_peer, max;
	uint64_t bytes_per_peer, bytes_max;
};
/* which of them a refused call met (rxp__pool_limit_var names it) */
enum rxp__pool_limit {
	RXP__POOL_PER_PEER,
	RXP__POOL_MAX,
	RXP__POOL_BYTES_PER_PEER,
	RXP__POOL_BYTES_MAX,
};
/* one caller's calls waiting for a thread, in arrival order; a caller
 * with any is on the pool's round-robin list */
struct rxp__pool_peer {
	struct rxp_call *head, *tail;
	struct rxp__pool_peer *rr_next;
	uint32_t n;
	uint64_t bytes;
};
struct rxp__pool {
	struct rxp_mutex mu; /* class rxp__pool: the queues and stop */
	pthread_cond_t cv;
	/* local tasks (callbacks, metrics writes), FIFO */
	struct rxp__task *q RXP_GUARDED_BY(rxp__pool);
	uint32_t head RXP_GUARDED_BY(rxp__pool);
	uint32_t count RXP_GUARDED_BY(rxp__pool);
	uint32_t cap RXP_GUARDED_BY(rxp__pool);
	/* incoming calls, one queue per caller, served round-robin (one
	 * caller's backlog does not delay another's call), alternating
	 * with the local tasks */
	struct rxp__pool_peer *peers RXP_PT_GUARDED_BY(rxp__pool);
	struct rxp__pool_peer *rr_head RXP_GUARDED_BY(rxp__pool);
	struct rxp__pool_peer *rr_tail RXP_GUARDED_BY(rxp__pool);
	uint32_t ncalls RXP_GUARDED_BY(rxp__pool);
	uint64_t call_bytes RXP_GUARDED_BY(rxp__pool);
	bool calls_next RXP_GUARDED_BY(rxp__pool);
	bool stop RXP_GUARDED_BY(rxp__pool);
	/* set by pool_start, read by pool_stop: the thread that owns the
	 * agent's life */
	int nthreads;
	pthread_t *threads;
	uint32_t npeers;
	struct rxp__pool_limits lim;
	/* runs a queued call: rxp__dispatch (unit tests put their own here
	 * before the first push) */
	void (*run_call)(void *call);
	atomic_int idle;
	const struct rxp_log_id *log_id; /* who its threads log as */
};
/* Read RXP_POOL_QUEUE_* (create; -EINVAL for a bad value, logged). */
int rxp__pool_limits_env(struct rxp__pool_limits *l);
const char *rxp__pool_limit_var(enum rxp__pool_limit which);
int rxp__pool_start(struct rxp__pool *p, int nthreads, uint32_t npeers,
		    const struct rxp__pool_limits *lim,
		    const struct rxp_log_id *log_id);
/* Queue a task. -ENOMEM when the queue cannot grow, -ECANCELED when
 * stopped (the caller then runs or drops the task itself). */
int rxp__pool_push(struct rxp__pool *p, void (*fn)(void *), void *arg);
/* Queue incoming call @c from c->caller (< npeers) for rxp__dispatch,
 * holding @bytes. -RXP_E_LIMIT (*@hit says which limit) when the budget
 * has no room, -ECANCELED when stopped: nothing queued. */
int rxp__pool_push_call(struct rxp__pool *p, struct rxp_call *c, uint64_t bytes,
			enum rxp__pool_limit *hit);
/* What waits for a thread now (metrics; any thread). */
void rxp__pool_queued(struct rxp__pool *p, uint64_t *calls, uint64_t *bytes);
/* Run what is queued, then join the threads. */
void rxp__pool_stop(struct rxp__pool *p);
bool rxp__pool_is_worker(const struct rxp__pool *p);

/* ---------------------------------------------- workers (from rendezvous) */
/*
 * Round trips of the answered calls to one peer (metrics.c writes them as
 * a Prometheus histogram). Bucket b counts round trips of at most 2^b us
 * (1 us .. 2^25 us = 33.6 s), the last one the rest; not cumulative. Only
 * the progress lock's holder records (maybe_complete), so a relaxed load
 * and store are enough: no locked instruction, no allocation, no syscall
 * on the call path; they are atomics for the readers.
 */
#define RXP__LAT_BUCKETS 26 /* finite ones; n[RXP__LAT_BUCKETS] is +Inf */
struct rxp__lat_hist {
	atomic_uint_fast64_t n[RXP__LAT_BUCKETS + 1];
	atomic_uint_fast64_t sum_ns;
};

static inline void rxp__lat_add(atomic_uint_fast64_t *c, uint64_t v)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* the progress lock's holder only */
static inline void rxp__lat_record(struct rxp__lat_hist *h, int64_t ns)
{
	uint64_t us = ns > 0 ? ((uint64_t)ns + 999) / 1000 : 0;
	/* the first b with us <= 2^b */
	unsigned b = us <= 1 ? 0 : 64 - (unsigned)__builtin_clzll(us - 1);

	rxp__lat_add(&h->n[b < RXP__LAT_BUCKETS ? b : RXP__LAT_BUCKETS], 1);
	rxp__lat_add(&h->sum_ns, ns > 0 ? (uint64_t)ns : 0);
}

struct rxp__worker {
	char name[128];
	char addr[128]; /* transport address */
	int rank;
	/* guarded by the agent's progress lock (C cannot say so here: the
	 * lock is in struct rxp_agent) */
	struct rxp_conn *conn; /* outgoing */
	uint64_t conn_key;
	/* send -EAGAIN: this worker's requests and responses wait here, in
	 * order, so a peer that stops reading delays only its own traffic;
	 * a worker with either list non-empty is on the agent's bl_active */
	struct rxp_future *bl_head, *bl_tail;
	struct rxp_call *rbl_head, *rbl_tail;
	uint32_t bl_len, rbl_len; /* capped: RXP_MAX_QUEUED_CALLS/_RESPONSES */
	struct rxp__worker *bl_next;
	bool bl_active;
	/* metrics */
	atomic_uint_fast64_t calls, bytes_sent, bytes_recv, errors;
	struct rxp__lat_hist lat;
	/* the first request sent and answered were logged (debug) */
	bool said_sent, said_answered;
};

/* ---------------------------------------------------------------- agent */

struct rxp__fn_entry {
	char *name;
	rxp_fn fn;
	unsigned flags;
	void *user;
};

/* what RXP_TIMEOUT_DEFAULT means in rxp_agent_attr */
#define RXP_DEFAULT_RPC_TIMEOUT_MS INT64_C(60000)
#define RXP_DEFAULT_INIT_TIMEOUT_MS INT64_C(60000)

struct rxp_agent {
	atomic_uint refs;
	char name[128];
	int rank, world;
	struct rxp_log_id log_id; /* rank and name, for log lines */
	struct rxp__worker *workers;
	int64_t rpc_timeout_ns; /* 0 = never */
	int poll_us;

	struct rxp_tp_choice tpc; /* the backend chosen, its table complete */
	const struct rxp_tp_ops *ops; /* &tpc.ops once chosen, else NULL */
	struct rxp_tp *tp;
	struct rxp_tp_cb cb;

	struct rxp__rdv *rdv;
	struct rxp__rdv_server *rdv_server;

	/* submit path */
	_Atomic(struct rxp_future *) sub_futs;
	_Atomic(struct rxp_call *) sub_calls;
	atomic_bool sleeping; /* the polling thread sleeps: lock is free */
	/* class rxp__progress, held by the leader (see poller.c); it guards
	 * the fields marked so, and each worker's conn and conn_key */
	struct rxp_mutex progress_mu;
	/* when the sleeping poller wakes */
	int64_t sleep_until_ns RXP_GUARDED_BY(rxp__progress);
	atomic_bool stopping;
	atomic_bool stopped;   /* new work refused */
	atomic_int submitters; /* threads inside the submit gate */
	int wake_fd;
	int64_t init_timeout_ms;  /* 0 = no limit */
	struct rxp_mutex join_mu; /* one rxp_agent_join barrier at a time */

	pthread_t poller;
	bool poller_started;

	/* workers with a backlog (struct rxp__worker) */
	struct rxp__worker *bl_active RXP_GUARDED_BY(rxp__progress);
	/* timed-out futures still in the transport, oldest grace first */
	struct rxp_future *stuck_head RXP_GUARDED_BY(rxp__progress);
	struct rxp_future *stuck_tail RXP_GUARDED_BY(rxp__progress);
	int64_t send_grace_ns; /* RXP_SEND_GRACE_MS */
	/* per worker, beyond what its connection holds (docs/DESIGN.md
	 * "Budgets"): RXP_MAX_QUEUED_CALLS, RXP_MAX_QUEUED_RESPONSES */
	uint32_t max_queued_calls, max_queued_resps;
	/* id -> future */
	struct rxp__slots pending RXP_GUARDED_BY(rxp__progress);
	/* conn key -> struct rxp_conn */
	struct rxp__slots conns RXP_GUARDED_BY(rxp__progress);
	struct rxp__heap deadlines RXP_GUARDED_BY(rxp__progress);

	struct rxp__pool pool;
	/* pool-queue refusals, logged once a second (rxp__call_queue) */
	struct rxp_ratelog pool_log RXP_GUARDED_BY(rxp__progress);
	/* free list of incoming calls */
	struct rxp_call *call_cache RXP_GUARDED_BY(rxp__progress);
	uint32_t ncall_cache RXP_GUARDED_BY(rxp__progress);
	/* calls whose last reference went on another thread (a pool worker
	 * after the function returned): pushed there without a lock, taken
	 * all at once by rxp__call_new when call_cache runs dry, so the
	 * callee allocates no call in steady state (issue 10). Counted
	 * (calls_returned_n) so the two lists stay within CALL_CACHE_MAX. */
	_Atomic(struct rxp_call *) calls_returned;
	atomic_uint calls_returned_n;

	/* class rxp__registry: the functions, the handler, the hooks */
	struct rxp_rwlock fn_lock;
	struct rxp__fn_entry *fns RXP_GUARDED_BY(rxp__registry);
	uint32_t nfns RXP_GUARDED_BY(rxp__registry);
	uint32_t cap_fns RXP_GUARDED_BY(rxp__registry);
	rxp_msg_handler handler RXP_GUARDED_BY(rxp__registry);
	void *handler_user RXP_GUARDED_BY(rxp__registry);

	/* autograd hooks (read on worker threads; set before calls) */
	struct rxp_autograd_hooks ag_hooks RXP_GUARDED_BY(rxp__registry);
	bool has_ag_hooks RXP_GUARDED_BY(rxp__registry);

	/* features (feature.h): state by slot, owner of each internal type */
	void *feat[RXP__NSLOTS];
	const struct rxp__feature *msg_feat[RXP_MSG_USER];
	/* a feature's on_submit hook wants every script call (profiler on) */
	atomic_bool call_hooks;

	/* RXP_METRICS_FILE (metrics_export.c; NULL: not asked for), and
	 * when the polling thread queues its next write */
	struct rxp__mexport *mexport;
	int64_t metrics_next_ns RXP_GUARDED_BY(rxp__progress);

	/* metrics */
	atomic_long client_active, server_active, server_active_async;
	atomic_uint_fast64_t calls_sent, calls_failed, calls_timed_out,
		late_responses, proto_errors, calls_served, responses_dropped,
		forged_responses, sends_withdrawn, stuck_closes,
		calls_refused_queue, backlog_closes, calls_refused_pool;
};

/* metrics_export.c: RXP_METRICS_FILE and RXP_METRICS_INTERVAL_MS.
 * _config reads them (create, before rendezvous: -EINVAL for a bad value,
 * logged with its name); _first writes the file once (create, agent up);
 * _first_due / _due (polling thread) say when the next write is due, _due
 * also queuing one on the worker pool; _close writes the last snapshot
 * (shutdown, before the transport closes; later queued writes do nothing);
 * _free when the agent is freed. Each is a no-op without the variable. */
struct rxp__mexport;
int rxp__mexport_config(struct rxp_agent *a);
void rxp__mexport_first(struct rxp_agent *a);
int64_t rxp__mexport_first_due(const struct rxp_agent *a, int64_t now);
int64_t rxp__mexport_due(struct rxp_agent *a, int64_t now);
void rxp__mexport_close(struct rxp_agent *a);
void rxp__mexport_free(struct rxp_agent *a);

void rxp__agent_get(struct rxp_agent *a);
void rxp__agent_put(struct rxp_agent *a);
/* hand a future / finished call to the poller */
int rxp__submit_future(struct rxp_agent *a, struct rxp_future *f);
void rxp__submit_call(struct rxp_agent *a, struct rxp_call *c);
/* true if this thread holds @a's progress lock (the polling thread while
 * awake, or a submitter sending directly for a moment) */
bool rxp__on_poller(const struct rxp_agent *a);
/* For a path where this thread holds @a's progress lock but the analysis
 * cannot see it (a transport callback; after rxp__on_poller() said so):
 * tells it so, and checks it in debug builds. */
void rxp__progress_held(const struct rxp_agent *a)
	RXP_ASSERT_HELD(rxp__progress);
/* Tests that take the progress lock by hand: lead @a from this thread
 * (transport callbacks may run in what they call, as in kick()), then
 * stop leading before unlocking. */
void rxp__lead_begin(struct rxp_agent *a) RXP_REQUIRES(rxp__progress);
void rxp__lead_end(struct rxp_agent *a) RXP_REQUIRES(rxp__progress);

/* poller.c: the polling thread's body, and the transport callbacks */
void *rxp__poller_main(void *arg);
void rxp__poller_callbacks(struct rxp_agent *a);
/* close @conn on this agent's own decision (not shutdown): an outgoing one
 * leaves its worker at once, so the next call opens a new connection */
void rxp__close_conn(struct rxp_agent *a, struct rxp_conn *conn)
	RXP_REQUIRES(rxp__progress);
int rxp__worker_id(const struct rxp_agent *a, const char *name);
/* incoming calls (call.c): allocated under the progress lock (from its
 * cache), refs = 2 (dispatch + completion path); put on any thread */
struct rxp_call *rxp__call_new(struct rxp_agent *a) RXP_REQUIRES(rxp__progress);
void rxp__call_put(struct rxp_call *c);
void rxp__call_cache_flush(struct rxp_agent *a) RXP_REQUIRES(rxp__progress);
/* Free the calls returned from other threads (agent_free: no one is left
 * to push). */
void rxp__calls_returned_free(struct rxp_agent *a);
/* run an incoming request on the worker pool (serve.c) */
void rxp__dispatch(void *arg);
/* Queue incoming call @c for a pool thread within the pool-queue budget:
 * 0, or the call is failed (-RXP_E_LIMIT naming the limit, counted and
 * logged; -RXP_E_SHUTDOWN when stopped) and the error returned; the
 * caller still drops its dispatch reference then. */
int rxp__call_queue(struct rxp_agent *a, struct rxp_call *c)
	RXP_REQUIRES(rxp__progress);
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
