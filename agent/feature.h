/* SPDX-License-Identifier: MIT */
/*
 * How a feature above the agent core plugs into it (docs/DESIGN.md
 * "Layers"). The core never includes a feature's header or calls a feature
 * by name: it walks rxp__features[] (agent/features/features.c, the list
 * librxp is built with) and calls the hooks each feature fills in. Every
 * hook may be NULL. Features today: agent/rref/ (RRefs) and
 * agent/profiler/ (the call profiler).
 *
 * Per-object state: each feature owns one slot (enum rxp__feat_slot) in the
 * agent (a->feat[slot], a pointer it allocates in init) and one fixed-size
 * extension area in every future and incoming call (f->ext[slot],
 * c->ext[slot], zeroed when the object is made), so the core's structs
 * carry no feature fields and the fast path allocates nothing for them.
 */
#ifndef RXP_FEATURE_H
#define RXP_FEATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rxp/rxp.h>
#include "codec.h"

struct rxp_agent;
struct rxp_future;
struct rxp_call;
struct rxp_arena;

/* Slot numbers, like message type numbers: a registry, not a dependency. */
enum rxp__feat_slot { RXP__SLOT_RREF, RXP__SLOT_PROF, RXP__NSLOTS };

/* A feature's extension area in a future or a call: 32 bytes, pointer
 * aligned, zeroed at creation. A feature views it as its own struct
 * (RXP__EXT; through the char array, so no strict-aliasing pun) and proves
 * it fits with RXP__EXT_FITS. Futures and calls are heap objects, so the
 * area takes the type the feature stores into it. */
struct rxp__ext {
	union {
		unsigned char bytes[32];
		void *align_p;
		uint64_t align_u;
	};
};
#define RXP__EXT(obj, slot, type) ((type *)(void *)(obj)->ext[slot].bytes)
#define RXP__EXT_FITS(type)                                                    \
	_Static_assert(sizeof(type) <= sizeof(struct rxp__ext) &&              \
			       _Alignof(type) <= _Alignof(struct rxp__ext),    \
		       #type " fits a feature extension area")

/* A metric a feature adds to rxp_agent_metric() and the metrics dumps
 * (agent/metrics.c says how a key becomes a Prometheus name). */
enum rxp__metric_kind {
	RXP__GAUGE,  /* goes up and down (the default) */
	RXP__COUNTER /* only grows */
};
struct rxp__metric {
	const char *key;
	int64_t (*get)(struct rxp_agent *a);
	enum rxp__metric_kind kind;
	const char *help; /* one sentence; NULL: the key */
};

struct rxp__feature {
	const char *name;
	enum rxp__feat_slot slot;

	/* ---- lifetime */
	/* rxp_agent_create, before rendezvous; -errno fails the create (fini
	 * still runs). */
	int (*init)(struct rxp_agent *a);
	/* rxp_agent_shutdown, after the poller stopped, before the pool. */
	void (*stop)(struct rxp_agent *a);
	/* when the agent is freed */
	void (*fini)(struct rxp_agent *a);

	/* ---- internal message types [msg_first, msg_last] (< RXP_MSG_USER),
	 * served on the thread holding the progress lock, in arrival order.
	 * The core drops its reference to @c after on_msg returns. */
	uint8_t msg_first, msg_last;
	void (*on_msg)(struct rxp_agent *a, struct rxp_call *c);
	/* how a lost peer reads in the error of a request of @type this
	 * feature sent ("owner lost"); NULL: "peer lost" */
	const char *(*peer_lost)(uint8_t type);
	/* a connection from or to worker @peer closed, after its calls
	 * failed (progress-lock holder): requests that came on it
	 * (c->conn_key == @key) can get no answer, their sender is gone */
	void (*conn_closed)(struct rxp_agent *a, uint32_t peer, uint64_t key);

	/* ---- caller side of a script call (rpc_async, rpc_sync, remote) */
	/* Before encoding: a copy of the argument tree to send instead
	 * (*out = NULL: send @args as they are). -errno fails the call. */
	int (*prepare_args)(struct rxp_agent *a, int dst,
			    const struct rxp_value *args, uint32_t nargs,
			    struct rxp_arena *ar, const struct rxp_value **out);
	/* the call failed before it was sent: undo prepare_args */
	void (*unprepare_args)(struct rxp_agent *a,
			       const struct rxp_value *copy, uint32_t nargs);
	/* Only while a->call_hooks is set (a feature sets it): a script
	 * call's metadata, before it is sized (submitting thread) ... */
	void (*call_meta)(struct rxp_agent *a, struct rxp_call_meta *meta);
	/* ... and its future, being filled in: may set its extension area;
	 * -errno fails the call. on_done then runs for it. */
	int (*on_submit)(struct rxp_agent *a, struct rxp_future *f,
			 const char *qualname);
	/* the call's outcome is known (progress-lock holder), before fulfil */
	void (*on_done)(struct rxp_agent *a, struct rxp_future *f);
	/* the future is freed (any thread) */
	void (*future_free)(struct rxp_future *f);

	/* ---- callee side of a script call (worker thread, then any thread
	 * that completes it) */
	/* decoded, before the function is looked up */
	void (*on_decoded)(struct rxp_call *c);
	/* before the function runs (and before the autograd hook); nonzero:
	 * the feature failed the call (rxp__call_fail_code) */
	int (*before_run)(struct rxp_call *c);
	/* right before the function is called */
	void (*on_start)(struct rxp_call *c);
	/* Response extensions to send with the response (NULL: none); may use
	 * @mem. */
	const struct rxp_resp_ext *(*resp_ext)(struct rxp_call *c,
					       struct rxp_resp_ext *mem);
	/* the response is ready: true if the feature took it over (an RRef
	 * owner keeps the value and answers with an ack) */
	bool (*on_finish)(struct rxp_call *c);
	/* the call is freed */
	void (*call_free)(struct rxp_call *c);

	const struct rxp__metric *metrics;
	unsigned nmetrics;
};

/* The features librxp is built with, NULL-terminated (features.c). */
extern const struct rxp__feature *const rxp__features[];

#define rxp__for_each_feature(ft)                                              \
	for (const struct rxp__feature *const *ft##_p_ = rxp__features;        \
	     ((ft) = *ft##_p_) != NULL; ft##_p_++)

#endif
