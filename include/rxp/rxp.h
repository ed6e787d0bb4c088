/* SPDX-License-Identifier: MIT */
/*
 * rxp - RPC calls and tensors between the workers of a distributed training
 * job, over RDMA verbs or TCP (io_uring).
 *
 * Conventions
 *  - Every function that can fail returns 0 (or a count) on success and a
 *    negative code on failure: -errno or -RXP_E_* (see rxp/errno.h). It never
 *    sets errno and never leaves an output argument half-written.
 *  - Handles are opaque. Functions that release a handle accept NULL.
 *  - "Threads:" in each comment says from where a function may be called;
 *    the threading contract behind it is docs/DESIGN.md, "Threads". "An
 *    agent thread" is an agent's polling thread or one of its worker pool
 *    threads (where registered functions, message handlers and future
 *    callbacks run). User code never runs on the polling thread.
 *  - No verbs or liburing type appears here; the header compiles as C11 and
 *    as C++.
 *  - Timeouts: every timeout_ms, argument or field, is a number of
 *    milliseconds (> 0), RXP_TIMEOUT_DEFAULT (0: the default documented at
 *    that place, so a zero-initialised struct means defaults) or
 *    RXP_TIMEOUT_NEVER (-1: no limit). Anything else is -EINVAL.
 *  - Workers are addressed by id (== rank, 0 .. world_size-1) everywhere;
 *    rxp_agent_worker_by_name() finds a name's id (look it up once, not at
 *    each call).
 *  - A call handle (struct rxp_call, struct rxp_request) is consumed by the
 *    first rxp_call_return/rxp_call_fail (rxp_request_respond/_fail),
 *    whatever that returns; the handle is invalid after it.
 *
 * ABI rules (so that a program built against this header keeps working
 * with later versions of the library)
 *  - Structs the caller fills in and that may grow (rxp_agent_attr,
 *    rxp_call_opts, rxp_store_ops, rxp_autograd_hooks) begin with
 *    `size_t size`: sizeof the struct as the caller was compiled. The
 *    library reads only that many bytes, so fields added later keep their
 *    defaults for older programs; bytes beyond the fields this library
 *    knows must be zero, else the call fails with -E2BIG (a newer program
 *    on an older library fails clearly instead of losing settings). size 0
 *    means the first layout (that of 0.2), so `struct rxp_call_opts o =
 *    {0}` is valid; rxp_agent_attr alone must come from
 *    rxp_agent_attr_init() (size 0 there is -EINVAL).
 *  - Every other struct here (iov, value, tensor, worker info, autograd
 *    metadata, RRef ids, profiler events, function definitions) is frozen:
 *    what it lacks will come through new functions, never new fields.
 *  - Exported symbols carry the version node of the release that added
 *    them (cmake/rxp.map); nothing else is exported. While the major
 *    version is 0, each minor version may break the ABI and has its own
 *    SONAME (librxp.so.0.2). ci/abi.sh compares the built library with
 *    the ABI recorded in ci/abi/ and fails on any change not recorded
 *    there.
 *
 * Buffer ownership
 *  1. Descriptors (arrays of rxp_iov, rxp_value trees, option structs) are
 *     read only during the call.
 *  2. Storage memory passed to a send (rxp_iov) is read until the returned
 *     future completes: keep it valid and unchanged until then.
 *  3. Received storages live in rxp's receive buffers. They are handed out
 *     as references (struct rxp_storage) that stay valid while the future
 *     (or a reference taken with rxp_storage_retain) is held.
 *
 * Futures: a function that returns an error never creates or fulfils a
 * future. Otherwise the future is fulfilled exactly once: with a value, the
 * callee's error, -ETIMEDOUT, -ECANCELED (shutdown) or -RXP_E_PEER_LOST.
 */
#ifndef RXP_RXP_H
#define RXP_RXP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rxp/errno.h>
#include <rxp/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RXP_BUILDING) && defined(__GNUC__)
#define RXP_API __attribute__((visibility("default")))
#else
#define RXP_API
#endif

/* ---------------------------------------------------------------- misc */

/* Name of a return code (0, -errno or -RXP_E_*). Never NULL.
 * Threads: any. */
RXP_API const char *rxp_strerror(int err);
/* "MAJOR.MINOR.PATCH" of the library actually loaded. Threads: any. */
RXP_API const char *rxp_version(void);

/* ------------------------------------------------------------- logging */

/*
 * rxp logs one line per event, at the level $RXP_LOG selects: error, warn,
 * info (the default: the choices made at start-up) or debug (also the
 * story of a job: rendezvous, each connection, the transport chosen, the
 * first call to each peer, every failed call). A line reads
 *   2026-12-03T12:00:00.123Z rxp[rank 1 trainer1] warn tcp: text
 * that is UTC time, the worker that logs, level, subsystem and text. The
 * worker is the agent's whose thread logs (its polling thread and worker
 * pool, and the thread inside its rxp_agent_create / rxp_agent_shutdown);
 * on any other thread (the caller's, rank 0's rendezvous server) it is
 * the process's first agent still alive, and "pid N" while there is none.
 * Without a handler each line goes to stderr with one write(2), so lines
 * of threads and processes sharing a terminal do not interleave.
 */
enum rxp_log_level {
	RXP_LOG_ERROR = 0,
	RXP_LOG_WARN = 1,
	RXP_LOG_INFO = 2,
	RXP_LOG_DEBUG = 3
};

/* @level: enum rxp_log_level. @subsystem: "agent", "tcp", "verbs",
 * "rendezvous", "metrics", ... @line: the whole line as above, without a
 * newline; @msg points into it, at the text after "subsystem: ". Both are
 * valid during the call only. */
typedef void (*rxp_log_fn)(void *user, int level, const char *subsystem,
			   const char *line, const char *msg);

/*
 * rxp_log_set_handler() - send rxp's log lines to @fn instead of stderr.
 * @fn: NULL sends them to stderr again. Lines below the $RXP_LOG level are
 *      never made. @fn runs on the thread that logs (any rxp thread, the
 *      polling thread too, possibly several at once, possibly with rxp's
 *      locks held): it must return soon and must not call rxp functions
 *      other than rxp_strerror() and rxp_version().
 * @user: passed to @fn.
 * Process-wide: one handler for every agent.
 * Threads: any, but not from @fn. Once it returns, the previous handler
 * is not running and is not called again.
 */
RXP_API void rxp_log_set_handler(rxp_log_fn fn, void *user);

/* A piece of caller memory (a tensor storage to send). */
struct rxp_iov {
	const void *base;
	size_t len;
};

/* ----------------------------------------------------------- storages */

/*
 * A received storage: bytes in one of rxp's receive buffers (registered
 * memory on verbs). Refcounted; the bytes stay valid and writable while a
 * reference is held.
 * Threads (each function of this section): any. A wrapped storage's
 * @release runs on the thread that drops the last reference.
 */
struct rxp_storage;
RXP_API void *rxp_storage_data(const struct rxp_storage *s);
RXP_API size_t rxp_storage_size(const struct rxp_storage *s);
RXP_API struct rxp_storage *rxp_storage_retain(struct rxp_storage *s);
RXP_API void rxp_storage_release(struct rxp_storage *s);
/* A new storage of @nbytes (64-byte aligned heap memory), refcount 1; NULL
 * on allocation failure. Use it for tensors a function returns. */
RXP_API struct rxp_storage *rxp_storage_alloc(size_t nbytes);
/* Wrap caller memory as a storage, refcount 1: @release(ptr, user) runs
 * when the last reference goes (rxp is done reading it). NULL on ENOMEM. */
RXP_API struct rxp_storage *
rxp_storage_wrap(void *ptr, size_t nbytes,
		 void (*release)(void *ptr, void *user), void *user);

/* -------------------------------------------------------------- values */

enum rxp_value_kind {
	RXP_V_NONE = 0,
	RXP_V_BOOL,
	RXP_V_INT,
	RXP_V_DOUBLE,
	RXP_V_STRING,
	RXP_V_TENSOR,
	RXP_V_LIST,
	RXP_V_TUPLE,
	RXP_V_DICT,
	RXP_V_RREF, /* a reference to a value owned by some worker */
	RXP_V__COUNT
};

/* Element types, numbered as c10::ScalarType does. */
#define RXP_DTYPES(X)                                                          \
	X(RXP_DT_U8, 0, 1, "uint8")                                            \
	X(RXP_DT_I8, 1, 1, "int8")                                             \
	X(RXP_DT_I16, 2, 2, "int16")                                           \
	X(RXP_DT_I32, 3, 4, "int32")                                           \
	X(RXP_DT_I64, 4, 8, "int64")                                           \
	X(RXP_DT_F16, 5, 2, "float16")                                         \
	X(RXP_DT_F32, 6, 4, "float32")                                         \
	X(RXP_DT_F64, 7, 8, "float64")                                         \
	X(RXP_DT_C64, 9, 8, "complex64")                                       \
	X(RXP_DT_C128, 10, 16, "complex128")                                   \
	X(RXP_DT_BOOL, 11, 1, "bool")                                          \
	X(RXP_DT_BF16, 15, 2, "bfloat16")

enum rxp_dtype {
#define RXP__DT_ENUM(name, num, size, str) name = (num),
	RXP_DTYPES(RXP__DT_ENUM)
#undef RXP__DT_ENUM
};

/* Bytes per element of @dtype, or 0 for an unknown dtype. Threads: any. */
RXP_API size_t rxp_dtype_size(int dtype);

#define RXP_MAX_DIMS 16

/*
 * A tensor is metadata plus a reference to a storage carried beside the
 * payload (never inside it): storages[storage] of the message, starting
 * at byte @offset. Elements are addressed as
 * offset + sum(i_k * strides[k]) * dtype_size (strides in elements).
 */
struct rxp_tensor {
	int32_t dtype;		/* enum rxp_dtype */
	uint32_t ndim;		/* <= RXP_MAX_DIMS */
	uint32_t storage;	/* index into the message's storages */
	uint64_t offset;	/* bytes into that storage */
	const int64_t *shape;	/* ndim entries, each >= 0 */
	const int64_t *strides; /* ndim entries, in elements */
};

struct rxp_dict_entry;
struct rxp_rref;

/* Globally unique ids of RRefs and their forks: {creating worker, counter}. */
struct rxp_rref_id {
	uint32_t creator;
	uint32_t reserved; /* 0 */
	uint64_t local;
};

/* What travels for an RRef passed as a value. */
struct rxp_rref_desc {
	uint32_t owner;	 /* worker that owns the value */
	uint32_t parent; /* worker that sent this fork */
	struct rxp_rref_id rref;
	struct rxp_rref_id fork;
};

/*
 * A value tree. Build one on the stack to send (the rxp_v_* helpers
 * below); a decoded one lives in the future (or call) that holds it and
 * is valid while that is held. Strings are UTF-8 bytes, NUL-terminated
 * (the NUL is not counted in len).
 */
struct rxp_value {
	enum rxp_value_kind kind;
	union {
		bool b;
		int64_t i;
		double d;
		struct {
			const char *ptr;
			uint32_t len;
		} str;
		struct rxp_tensor tensor;
		struct {
			const struct rxp_value *items;
			uint32_t n;
		} list; /* RXP_V_LIST and RXP_V_TUPLE */
		struct {
			const struct rxp_dict_entry *items;
			uint32_t n;
		} dict;
		/* RXP_V_RREF. To send one build it with rxp_v_rref(ref): rxp
		 * fills in the descriptor (a new fork) at send time. Decoded
		 * ones have ref NULL and desc set: turn them into a handle
		 * with rxp_call_rref(). */
		struct {
			struct rxp_rref *ref;
			const struct rxp_rref_desc *desc;
		} rref;
	} u;
};

struct rxp_dict_entry {
	const char *key; /* NUL-terminated */
	uint32_t key_len;
	struct rxp_value value;
};

/* Builders for values to send (no allocation; strings are referenced).
 * Threads (each builder below, rxp_tensor_span too): any. */
RXP_API struct rxp_value rxp_v_none(void);
RXP_API struct rxp_value rxp_v_bool(bool b);
RXP_API struct rxp_value rxp_v_int(int64_t i);
RXP_API struct rxp_value rxp_v_double(double d);
RXP_API struct rxp_value rxp_v_str(const char *s); /* NUL-terminated */
RXP_API struct rxp_value rxp_v_list(const struct rxp_value *items, uint32_t n);
RXP_API struct rxp_value rxp_v_tuple(const struct rxp_value *items, uint32_t n);
RXP_API struct rxp_value rxp_v_dict(const struct rxp_dict_entry *items,
				    uint32_t n);
/* An RRef argument (see RRefs below). */
RXP_API struct rxp_value rxp_v_rref(struct rxp_rref *ref);
/* Tensor over storage @storage from byte @offset; @shape and @strides must
 * outlive the value. @strides NULL = contiguous (row-major); decoded tensors
 * always carry explicit strides. */
RXP_API struct rxp_value rxp_v_tensor(int dtype, uint32_t ndim,
				      const int64_t *shape,
				      const int64_t *strides, uint32_t storage,
				      uint64_t offset);

/* Bytes a tensor spans in its storage from its offset (0 if any dim is 0),
 * or -errno for bad metadata (negative dims, overflow, unknown dtype). */
RXP_API int64_t rxp_tensor_span(const struct rxp_tensor *t);

/* ------------------------------------------------------------- futures */

struct rxp_future;

/*
 * Wait until @f is fulfilled. Returns its status (rxp_future_status()).
 * Threads: any (a future callback or a registered function too: the
 * polling thread, which never runs user code, fulfils futures).
 */
RXP_API int rxp_future_wait(struct rxp_future *f);
/* Same, giving up after @timeout_ms (-ETIMEDOUT from the wait itself; the
 * future is untouched and may still complete). RXP_TIMEOUT_DEFAULT: the
 * rpc_timeout_ms of the agent that made @f; RXP_TIMEOUT_NEVER: as
 * rxp_future_wait. -EINVAL for other values <= 0 (poll with
 * rxp_future_done). Threads: any. */
RXP_API int rxp_future_wait_for(struct rxp_future *f, int64_t timeout_ms);
/* true once fulfilled. Threads: any. */
RXP_API bool rxp_future_done(const struct rxp_future *f);
/* 0 = value; otherwise -ETIMEDOUT, -ECANCELED, -RXP_E_PEER_LOST,
 * -RXP_E_REMOTE (callee error: see rxp_future_error), ... Only meaningful
 * once done.
 * Threads (this and each reader below, to rxp_future_storage): any, while
 * @f is held. */
RXP_API int rxp_future_status(const struct rxp_future *f);
/* Human-readable error (the callee's message for -RXP_E_REMOTE), "" if
 * none. Valid while @f is held. */
RXP_API const char *rxp_future_error(const struct rxp_future *f);
/* The decoded return value of a script call, NULL for message-level
 * futures or on error. Valid while @f is held. */
RXP_API const struct rxp_value *rxp_future_value(const struct rxp_future *f);
/* The raw response payload (message level). */
RXP_API int rxp_future_payload(const struct rxp_future *f, const void **data,
			       size_t *len);
/* The response's storages: references into rxp's receive buffers. */
RXP_API uint32_t rxp_future_nstorages(const struct rxp_future *f);
RXP_API struct rxp_storage *rxp_future_storage(const struct rxp_future *f,
					       uint32_t i);

typedef void (*rxp_future_cb)(struct rxp_future *f, void *user);
/*
 * Run @cb once @f is fulfilled: on an agent worker thread, or at once on
 * the calling thread if @f is already fulfilled. Callbacks run in the
 * order they were added. Returns -EBUSY past RXP_FUTURE_MAX_CALLBACKS.
 * Threads: any.
 */
#define RXP_FUTURE_MAX_CALLBACKS 8
RXP_API int rxp_future_then(struct rxp_future *f, rxp_future_cb cb, void *user);
/* Drop the caller's reference. The future's value and storages go with it
 * (unless storages were retained). Accepts NULL. Threads: any. */
RXP_API void rxp_future_release(struct rxp_future *f);

/* -------------------------------------------------------------- agent */

struct rxp_agent;
struct rxp_call;

/*
 * A registered function. Synchronous functions (flags 0) complete @call
 * before they return; returning non-zero without completing it fails the
 * call with rxp_strerror(ret). Asynchronous ones (RXP_FN_ASYNC, PyTorch's
 * @rpc.functions.async_execution) may return 0 and complete the call later
 * from any thread. Runs on an agent worker thread.
 */
typedef int (*rxp_fn)(struct rxp_call *call, void *user);
#define RXP_FN_ASYNC 0x1u

struct rxp_fn_def {
	const char *qualname; /* "module.function", <= 1024 bytes */
	rxp_fn fn;
	unsigned flags; /* RXP_FN_* */
	void *user;
};

struct rxp_request; /* an incoming user message awaiting its response */
/* Handles user messages (message level, below): runs on a worker thread;
 * must eventually respond to or fail @r (from any thread). */
typedef void (*rxp_msg_handler)(struct rxp_request *r, void *user);

/* Timeouts (see "Conventions" at the top) */
#define RXP_TIMEOUT_DEFAULT 0  /* the default documented where it is used */
#define RXP_TIMEOUT_NEVER (-1) /* no limit */

/*
 * A key-value store that the framework already has (torch's c10d Store, a
 * launcher's). With attr.store set, rxp forms its world through it and
 * opens no rendezvous port of its own: master_port is not used, nothing
 * listens on or connects to it, so rxp runs beside a launcher or process
 * group that owns MASTER_PORT (torchrun).
 *
 * Keys rxp uses (all under "rxp/"):
 *   rxp/w/<rank>         set once by each worker at create: a versioned
 *                        little-endian record of its name, transport
 *                        address and transport name; every worker gets
 *                        every other rank's record (waiting up to
 *                        init_timeout_ms in all).
 *   rxp/join/<n>         counter, add(1) by each worker entering its n-th
 *                        rxp_agent_join() barrier (n = 0, 1, ...);
 *   rxp/join/<n>/done    set by the worker whose add made the counter
 *                        reach world_size; every worker waits for it.
 * One world per store: two worlds (or two agents made one after the other
 * in one process) on the same store would read each other's keys, so the
 * framework gives each world its own store or key prefix, as torch does
 * with PrefixStore.
 *
 * Threads: rxp calls the ops from the threads that call rxp_agent_create()
 * and rxp_agent_join(); they may run concurrently, from any thread rxp
 * runs (several agents, or join beside another agent's create), so they
 * must be thread-safe. They may block (get up to its timeout).
 *
 * Errors: a record read from the store is untrusted input; a malformed one
 * (magic, version, lengths, NUL termination, rank, world size), a
 * transport other than this worker's, or an op returning an error other
 * than -ETIMEDOUT fails rxp_agent_create() with -RXP_E_RENDEZVOUS (and
 * rxp_agent_join() likewise), two workers with one name with
 * -RXP_E_DUP_NAME on every worker, each with a log line
 * naming the rank, the key and what was wrong. Ranks that never published
 * within init_timeout_ms fail create with -ETIMEDOUT and a log line naming
 * them ("ranks 2,3 never published"). Nothing is removed from the store.
 * The ops table and @store_ctx must stay valid until rxp_agent_shutdown().
 */
struct rxp_store_ops {
	size_t size; /* sizeof(struct rxp_store_ops), or 0 (ABI rules) */
	/* Store @len bytes under @key, replacing any value. 0 or -errno. */
	int (*set)(void *ctx, const char *key, const void *val, size_t len);
	/* Wait up to @timeout_ms (> 0) for @key to exist, then copy up to @cap
	 * bytes of its value into @buf and set *@len to the value's full size.
	 * 0, -ETIMEDOUT, or -errno. */
	int (*get)(void *ctx, const char *key, void *buf, size_t cap,
		   size_t *len, int64_t timeout_ms);
	/* Atomically add @delta to the integer counter @key (absent = 0) and
	 * set *@out to the new value. 0 or -errno. */
	int (*add)(void *ctx, const char *key, int64_t delta, int64_t *out);
};

struct rxp_agent_attr {
	size_t size;		 /* set by rxp_agent_attr_init (ABI rules) */
	const char *name;	 /* worker name, unique, <= 127 bytes */
	int rank;		 /* 0 .. world_size-1; rank 0 serves rendezvous
				    (unless .store is set). < 0 (attr_init): $RANK
				    as launchers set it, else 0 */
	int world_size;		 /* 0 (attr_init): $WORLD_SIZE, else 1 */
	const char *master_addr; /* NULL: $MASTER_ADDR, else 127.0.0.1 */
	int master_port;	 /* 0: $MASTER_PORT, else 29500. Settings from
				    the environment are parsed strictly: a
				    bad one fails create with -EINVAL and a
				    log line naming it */
	const char *transport;	 /* "auto" "tcp" "verbs"; NULL: $RXP_TRANSPORT
				    or "auto" */
	const char *bind_addr;	 /* numeric IP for the data transport; NULL:
				    $RXP_BIND_ADDR, else the local address
				    that reaches master_addr (else
				    127.0.0.1) */
	int64_t rpc_timeout_ms;	 /* calls; RXP_TIMEOUT_DEFAULT: 60000 */
	int64_t init_timeout_ms; /* rendezvous; RXP_TIMEOUT_DEFAULT (attr_init):
				    $RXP_RENDEZVOUS_TIMEOUT seconds, else
				    60000 */
	int num_worker_threads;	 /* default 4 */
	int poll_us;		 /* spin this long before sleeping; -1 =
				    $RXP_POLL_US or 0 (sleep at once) */
	/* Functions registered before rendezvous, so they exist before any
	 * peer can call (rxp_agent_register adds more later). */
	const struct rxp_fn_def *functions;
	uint32_t nfunctions;
	/* Message-level handler (framework backends), set before rendezvous
	 * for the same reason; NULL: none until rxp_agent_set_handler. */
	rxp_msg_handler handler;
	void *handler_user;
	const struct rxp_store_ops *store; /* NULL: rxp's own rendezvous at
					      master_addr:master_port */
	void *store_ctx;		   /* passed to every store op */
	/* authentication */
	/* The job secret every worker of the job shares (>= 16 bytes; use 32
	 * random ones), read during rxp_agent_create only. NULL: the contents
	 * of the file $RXP_SECRET_FILE if set (refused with -EPERM if group
	 * or others may access it: chmod 600), else none. With a secret every
	 * data connection proves it both ways (HMAC-SHA256 over fresh nonces
	 * and both identities) before anything is read from it; a peer with
	 * another secret or none is refused (-RXP_E_AUTH, metric
	 * transport.auth_refused). This authenticates peers, it does not
	 * encrypt or protect later traffic (README "Security"); the
	 * rendezvous checks the same secret. Both transports (tcp and
	 * verbs) authenticate. */
	const void *secret;
	size_t secret_len;
};

/* Defaults as documented above, and .size. Threads: any. */
RXP_API void rxp_agent_attr_init(struct rxp_agent_attr *attr);

/*
 * Create the agent, rendezvous with the other workers (blocks until all
 * world_size workers have joined or init_timeout_ms passes)
 * and start the polling thread and worker pool. Rendezvous goes through
 * attr.store when it is set (struct rxp_store_ops), else through rank 0's
 * port at master_addr:master_port.
 * Return: 0 with *out set; -EINVAL bad attr; -E2BIG attr from a newer
 * header setting fields this library lacks; -RXP_E_RENDEZVOUS;
 * -RXP_E_DUP_NAME (another worker has this name: with attr.store every
 * worker fails, with rank 0's rendezvous the worker that came second);
 * -ETIMEDOUT
 * (workers missing at init_timeout_ms);
 * -RXP_E_NO_DEVICE (transport "verbs" forced without a device); -errno.
 * Threads: any.
 */
RXP_API int rxp_agent_create(const struct rxp_agent_attr *attr,
			     struct rxp_agent **out);

/*
 * Stop the agent: calls still pending fail with -ECANCELED (each future
 * fulfilled, none lost), connections close, threads are joined, and the
 * agent is freed. Futures and storages the user still holds stay valid
 * until released. Never blocks longer than the time to join its threads.
 * Accepts NULL.
 * Threads: any thread but one of @a's agent threads (there it is refused:
 * an error is logged and nothing happens). No other thread may use @a
 * during or after the call.
 */
RXP_API void rxp_agent_shutdown(struct rxp_agent *a);

/*
 * Barrier over all workers: returns once every worker has called join and
 * has no calls of its own in flight. Use before shutdown ("graceful").
 * With attr.store the barrier runs through the store (rxp/join/<n> keys);
 * a join that timed out there resumes the same round when called again.
 * Return 0, -ETIMEDOUT after @timeout_ms (RXP_TIMEOUT_DEFAULT: the agent's
 * init_timeout_ms), -EINVAL, -RXP_E_RENDEZVOUS.
 * Threads: any but @a's agent threads (not checked: from a function it
 * waits for calls that may need that function to end). Concurrent joins
 * on one agent take turns.
 */
RXP_API int rxp_agent_join(struct rxp_agent *a, int64_t timeout_ms);

struct rxp_worker_info {
	const char *name;
	int id; /* == rank */
};
/* The workers of the world (fixed at rendezvous): count, this one, by name,
 * by id; names stay valid while the agent lives.
 * Threads (these four, and rxp_agent_transport): any. */
RXP_API int rxp_agent_worker_count(const struct rxp_agent *a);
RXP_API int rxp_agent_self(const struct rxp_agent *a,
			   struct rxp_worker_info *out);
RXP_API int rxp_agent_worker_by_name(const struct rxp_agent *a,
				     const char *name,
				     struct rxp_worker_info *out);
RXP_API int rxp_agent_worker_by_id(const struct rxp_agent *a, int id,
				   struct rxp_worker_info *out);
/* Name of the transport in use ("tcp", "tcp-poll", "verbs"). */
RXP_API const char *rxp_agent_transport(const struct rxp_agent *a);

/*
 * Metrics: PyTorch's agent keys (agent.client_active_calls,
 * agent.server_active_calls, agent.server_active_async_calls,
 * agent.thread_pool_size, agent.num_idle_threads) plus rxp's own
 * (calls.sent, calls.failed, calls.timed_out, calls.late_responses,
 * calls.responses_dropped (responses whose connection closed first),
 * calls.forged_responses (responses for a pending call that came on
 * another connection than its request: ignored), calls.timed_out_unsent
 * (timed-out requests taken back from the transport before any byte
 * went), conns.closed_stuck (connections closed because a timed-out
 * request was still being sent RXP_SEND_GRACE_MS after its deadline),
 * transport.auth_refused
 * (connections refused by authentication),
 * transport.bytes_sent, transport.bytes_received,
 * peer.<name>.calls/bytes_sent/bytes_received/errors ...; README.md,
 * "Metrics and logs", lists them all).
 * rxp_agent_metric() fills *value for one key (-ENOENT if unknown);
 * rxp_agent_metrics_dump() writes "key value\n" lines into @buf and
 * returns the length it needed (like snprintf).
 * Threads: any (counters are atomics; a dump is not one snapshot).
 */
RXP_API int rxp_agent_metric(struct rxp_agent *a, const char *key,
			     int64_t *value);
RXP_API int rxp_agent_metrics_dump(struct rxp_agent *a, char *buf, size_t len);

enum rxp_metrics_format {
	/* "key value\n" lines, those of rxp_agent_metrics_dump() */
	RXP_METRICS_TEXT = 0,
	/* The Prometheus text exposition format, version 0.0.4: each metric
	 * with "# HELP" and "# TYPE" lines, named "rxp_" + its key with '.'
	 * as '_' and "_total" after a counter's (calls.sent ->
	 * rxp_calls_sent_total, agent.client_active_calls ->
	 * rxp_agent_client_active_calls); every sample labelled
	 * worker="<this worker>",rank="<its rank>"; per peer (peers sent
	 * to, heard from or failed) peer.<name>.calls ->
	 * rxp_peer_calls_total{...,peer="<name>"} and the histogram
	 * rxp_peer_call_latency_seconds: round trips, submit to response, of
	 * the calls and messages the peer answered, in buckets of 1 us
	 * doubling to 33.6 s; plus rxp_agent_info{...,transport,version} 1. */
	RXP_METRICS_PROMETHEUS = 1
};

/*
 * rxp_agent_metrics_write() - write @a's metrics to @fd in @format.
 * @fd: written with write(2) from its current offset; not closed. A
 *      file, a pipe, a socket, a memfd.
 * @format: enum rxp_metrics_format.
 * Nothing is allocated; the counters are read as rxp_agent_metric()
 * reads them. With $RXP_METRICS_FILE set the agent writes that file by
 * itself every $RXP_METRICS_INTERVAL_MS and at shutdown (README).
 * Return: 0; -EINVAL (@a NULL, @fd < 0, unknown @format); or the first
 * error of write(2) (-EBADF, -ENOSPC, -EPIPE, ...), after which part of
 * the text may have been written.
 * Threads: any, until rxp_agent_shutdown() begins (a snapshot is not
 * atomic; a histogram's buckets, +Inf and _count agree).
 */
RXP_API int rxp_agent_metrics_write(struct rxp_agent *a, int fd, int format);

/* ---------------------------------------------- script-call level (RPC) */

/* struct rxp_call: a call being served by a registered function.
 * Threads (each rxp_call_* function): any, until the call is completed
 * (the function's worker thread, or wherever an async function's work
 * goes on). */

/* The arguments and their storages. Valid until the call is completed. */
RXP_API const struct rxp_value *rxp_call_args(const struct rxp_call *c,
					      uint32_t *nargs);
RXP_API uint32_t rxp_call_nstorages(const struct rxp_call *c);
RXP_API struct rxp_storage *rxp_call_storage(const struct rxp_call *c,
					     uint32_t i);
/* The caller's worker info, and the call's qualified name. */
RXP_API int rxp_call_caller(const struct rxp_call *c,
			    struct rxp_worker_info *out);
RXP_API const char *rxp_call_name(const struct rxp_call *c);
/* The agent serving the call (for nested calls from a function). */
RXP_API struct rxp_agent *rxp_call_agent(const struct rxp_call *c);

/*
 * Complete the call with a value whose tensors refer to @storages (storage
 * handles: received ones, rxp_storage_alloc'd or rxp_storage_wrap'ed). rxp
 * takes its own reference on each until the response has been sent; the
 * caller keeps (and must release) its own. Exactly one of rxp_call_return
 * and rxp_call_fail completes a call, and the call handle is invalid after
 * it; a completion after the first is a bug (the call may be freed).
 * Returns 0, or -errno if the value cannot be encoded (then the call fails
 * with that error instead, and is completed all the same).
 * Threads: any (async functions complete from wherever their work ends).
 */
RXP_API int rxp_call_return(struct rxp_call *c, const struct rxp_value *ret,
			    struct rxp_storage *const *storages,
			    uint32_t nstorages);
RXP_API int rxp_call_fail(struct rxp_call *c, const char *fmt, ...)
#ifdef __GNUC__
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* Register @fn under a qualified name ("mod.fn"). -EEXIST if taken. A
 * call that arrives before registration fails with -RXP_E_NO_FUNCTION:
 * pass functions in rxp_agent_attr.functions to have them from the start.
 * Threads: any (the registry has its own lock). */
RXP_API int rxp_agent_register(struct rxp_agent *a, const char *qualname,
			       rxp_fn fn, unsigned flags, void *user);

/* Call flags. */
#define RXP_CALL_ASYNC_EXEC 0x1u /* the callee function is async */

/* Distributed-autograd metadata a call may carry (PyTorch's
 * {autograd context id, autograd message id} and force_grad_recording). */
struct rxp_autograd_meta {
	int64_t context_id;
	int64_t message_id;
	bool force_grad_recording;
};

struct rxp_call_opts {
	size_t size;	    /* sizeof(struct rxp_call_opts), or 0 (ABI rules) */
	int64_t timeout_ms; /* RXP_TIMEOUT_DEFAULT: the agent's rpc_timeout_ms
			     */
	unsigned flags;	    /* RXP_CALL_* */
	/* NULL, or metadata carried to the callee (rxp_call_autograd) */
	const struct rxp_autograd_meta *autograd;
};

/*
 * Call @qualname on worker @dst (an id) with @args (tensors refer to
 * @storages, read until the future completes: a call that times out
 * completes at its deadline, or, if its request was already being sent,
 * within RXP_SEND_GRACE_MS after it, when its connection is closed). @opts
 * may be NULL (defaults). Return 0 with *out set (the future is fulfilled
 * exactly once), or -errno with nothing sent: -EINVAL, -E2BIG (opts),
 * -RXP_E_NO_WORKER, -RXP_E_TOO_BIG, -RXP_E_SHUTDOWN, -ENOMEM.
 * Threads: any, agent threads included (nested calls from a function). It
 * may send at once on this thread when the polling thread sleeps.
 */
RXP_API int rxp_rpc_async(struct rxp_agent *a, int dst, const char *qualname,
			  const struct rxp_value *args, uint32_t nargs,
			  const struct rxp_iov *storages, uint32_t nstorages,
			  const struct rxp_call_opts *opts,
			  struct rxp_future **out);
/* rxp_rpc_async + rxp_future_wait. On 0, *out holds the fulfilled future
 * (release it); its status is the call's result.
 * Threads: any; from a function it holds that worker thread meanwhile (a
 * pool whose threads all wait on calls back to this agent cannot serve
 * them). */
RXP_API int rxp_rpc_sync(struct rxp_agent *a, int dst, const char *qualname,
			 const struct rxp_value *args, uint32_t nargs,
			 const struct rxp_iov *storages, uint32_t nstorages,
			 const struct rxp_call_opts *opts,
			 struct rxp_future **out);

/* The call's autograd metadata: 0 and *out filled, or -ENOENT if the
 * caller sent none. */
RXP_API int rxp_call_autograd(const struct rxp_call *c,
			      struct rxp_autograd_meta *out);

/*
 * Hooks for a framework's distributed autograd: @on_send runs on the
 * calling thread when a call with autograd metadata is sent (record a
 * "send" function for the backward pass), @on_recv on the worker thread
 * before the callee's function runs (record the matching "recv").
 * Threads: any (set under the registry lock; hooks run as said above).
 */
struct rxp_autograd_hooks {
	size_t size; /* sizeof(struct rxp_autograd_hooks), or 0 (ABI rules) */
	void (*on_send)(void *user, const struct rxp_autograd_meta *m, int dst,
			const char *qualname);
	void (*on_recv)(void *user, const struct rxp_autograd_meta *m, int src,
			const char *qualname);
	void *user;
};
RXP_API int rxp_agent_set_autograd_hooks(struct rxp_agent *a,
					 const struct rxp_autograd_hooks *h);

/* ---------------------------------------------------------------- RRefs */

/*
 * remote(): run @qualname on @dst and keep its result THERE; get at once a
 * reference to it. Semantics follow PyTorch's RRef protocol:
 *  - the owner (@dst) keeps the value until every user reference is gone;
 *  - a user reference is pending until the owner confirms creation
 *    (rxp_rref_wait_confirmed); creation errors and timeouts surface on
 *    the RRef (to_here and wait_confirmed return them);
 *  - passing an RRef to another worker (rxp_v_rref as an argument) forks
 *    it: the receiver gets its own user reference (rxp_call_rref), which
 *    the owner learns of before the sender lets go of its own;
 *  - releasing a user reference sends a delete to the owner, retried with
 *    backoff (5 retries, 1 s, x1.5) until acknowledged; the owner handles
 *    deletes idempotently and refuses them for RRefs or forks it does not
 *    know as the sender's;
 *  - remote() to oneself works the same way (this worker is the owner).
 * Return 0 with *out set, or -errno with nothing sent (as rxp_rpc_async).
 * Threads: any.
 */
RXP_API int rxp_remote(struct rxp_agent *a, int dst, const char *qualname,
		       const struct rxp_value *args, uint32_t nargs,
		       const struct rxp_iov *storages, uint32_t nstorages,
		       const struct rxp_call_opts *opts, struct rxp_rref **out);
/* Fetch the value (with its storages, zero-copy as for calls): a future
 * like an rpc's; @timeout_ms as in struct rxp_call_opts. Owner lost:
 * -RXP_E_PEER_LOST, "owner lost: ...".
 * Threads (this and each rxp_rref_* function below): any, while @r is
 * held. */
RXP_API int rxp_rref_to_here(struct rxp_rref *r, int64_t timeout_ms,
			     struct rxp_future **out);
/* 0 once the owner has confirmed (or this worker is the owner), the
 * creation error, or -ETIMEDOUT after @timeout_ms (RXP_TIMEOUT_DEFAULT:
 * the agent's rpc_timeout_ms), -EINVAL. */
RXP_API int rxp_rref_wait_confirmed(struct rxp_rref *r, int64_t timeout_ms);
RXP_API int rxp_rref_owner(const struct rxp_rref *r,
			   struct rxp_worker_info *out);
RXP_API bool rxp_rref_is_owner(const struct rxp_rref *r);
RXP_API void rxp_rref_ids(const struct rxp_rref *r, struct rxp_rref_id *rref,
			  struct rxp_rref_id *fork);
/* Drop this reference (accepts NULL). Threads: any. */
RXP_API void rxp_rref_release(struct rxp_rref *r);
/* A decoded RRef argument (@v->kind == RXP_V_RREF) as a handle of this
 * worker: a new user reference (fork) or, on the owner, a local one.
 * Release it with rxp_rref_release. Threads: as rxp_call_args. */
RXP_API int rxp_call_rref(struct rxp_call *c, const struct rxp_value *v,
			  struct rxp_rref **out);

/* ------------------------------------------------------------ profiler */

/*
 * When profiling is on, every call made by this agent records an event
 * named "rpc_async_jit#<qualname>(<caller> -> <callee>)" (rpc_sync#...
 * for rxp_rpc_sync, rpc_remote#... for rxp_remote) from send to
 * completion, and asks the callee for the events of the function it ran,
 * which come back with the response and are merged under the call's key
 * with the clock offset between the two workers corrected. Zero cost when
 * off (one relaxed load per call).
 * Threads (each rxp_profiler_* function): any; the events have their own
 * lock. The first rxp_profiler_enable(a, true) publishes the profiler's
 * state without a lock: make it before other threads use the profiler of
 * @a, and not from two threads at once.
 */
RXP_API int rxp_profiler_enable(struct rxp_agent *a, bool on);
struct rxp_prof_event {
	char name[256];
	int64_t start_ns, end_ns; /* caller's CLOCK_MONOTONIC */
	int worker;		  /* who ran it */
	int parent;		  /* index of the call event, -1 for calls */
	int status;		  /* the call's status (calls) */
	uint64_t bytes_sent, bytes_received;
	char transport[16];
};
/* Copy up to @max events recorded so far into @out; returns the count
 * available (may exceed @max). */
RXP_API int rxp_profiler_events(struct rxp_agent *a, struct rxp_prof_event *out,
				size_t max);
/* Write the events as Chrome trace JSON (chrome://tracing, Perfetto). */
RXP_API int rxp_profiler_export_chrome(struct rxp_agent *a, const char *path);
RXP_API void rxp_profiler_clear(struct rxp_agent *a);
/* In a function: record an event of its own (sent back to a profiling
 * caller). Times are CLOCK_MONOTONIC ns of this worker.
 * Threads: as rxp_call_args. */
RXP_API int rxp_call_record_event(struct rxp_call *c, const char *name,
				  int64_t start_ns, int64_t end_ns);

/* ------------------------------------------- message level (backends) */

/*
 * For framework backends that serialise their own messages (the PyTorch
 * plugin): rxp moves {type, payload, storages} and matches the response
 * to the request. Types 0..63 are rxp's own; use RXP_MSG_USER and above.
 */
#define RXP_MSG_USER 64

/* Threads (each rxp_request_* function): any, until @r is responded to or
 * failed (exactly once, from any thread). */

RXP_API int rxp_request_type(const struct rxp_request *r);
RXP_API int rxp_request_payload(const struct rxp_request *r, const void **data,
				size_t *len);
RXP_API uint32_t rxp_request_nstorages(const struct rxp_request *r);
RXP_API struct rxp_storage *rxp_request_storage(const struct rxp_request *r,
						uint32_t i);
RXP_API int rxp_request_caller(const struct rxp_request *r,
			       struct rxp_worker_info *out);
/* Send the response (or an error) and free @r. Exactly once. Any thread.
 * @payload is copied; storages as for rxp_call_return. */
RXP_API int rxp_request_respond(struct rxp_request *r, const void *payload,
				size_t len, struct rxp_storage *const *storages,
				uint32_t nstorages);
RXP_API int rxp_request_fail(struct rxp_request *r, const char *msg);

/* rxp_msg_handler (declared above struct rxp_agent_attr) handles user
 * messages: runs on a worker thread, must eventually respond to or fail
 * @r (from any thread). Set it in the attr or with this call.
 * rxp_agent_set_handler: Threads: any (under the registry lock). */
RXP_API int rxp_agent_set_handler(struct rxp_agent *a, rxp_msg_handler h,
				  void *user);

/* Send a user message (type >= RXP_MSG_USER, <= 255) to worker @dst and
 * get a future for the response (rxp_future_payload / rxp_future_storage).
 * Zero copy: @payload and @storages are read until the future completes.
 * @timeout_ms as in struct rxp_call_opts. Errors as rxp_rpc_async.
 * Threads: as rxp_rpc_async. */
RXP_API int rxp_msg_send(struct rxp_agent *a, int dst, int type,
			 const void *payload, size_t len,
			 const struct rxp_iov *storages, uint32_t nstorages,
			 int64_t timeout_ms, struct rxp_future **out);

/* ----------------------------------------------- memory registration */

/*
 * Tell rxp that [ptr, ptr+len) will be sent often (verbs registers it once
 * instead of at each send), and that it is about to be freed (drops the
 * registration cache's entries that overlap it; call before free/munmap).
 * No-ops returning 0 on TCP.
 * Threads: any; they wait until the thread that leads progress has done
 * it (maybe this one, when the polling thread sleeps). -EDEADLK on a
 * thread that already leads progress (internal: user code never does).
 */
RXP_API int rxp_mem_register(struct rxp_agent *a, void *ptr, size_t len);
RXP_API int rxp_mem_unregister(struct rxp_agent *a, void *ptr, size_t len);

#ifdef __cplusplus
}
#endif

#endif
