/* SPDX-License-Identifier: MIT */
/* RRef internals shared by rref.c (owner side, handles) and rref_user.c
 * (remote, to_here, argument forks, the delete reaper). */
#ifndef RXP_RREF_INT_H
#define RXP_RREF_INT_H

#include "agent_int.h"
#include "rref.h"

/*
 * Locks (lock classes, util/rxp_lock.h; docs/DESIGN.md "Threads"):
 *  rxp__rref_table   an agent's rr->mu: the owner table and its entries,
 *                    the pending children, the reaper's queue
 *  rxp__rref_handle  a handle's mu: its state and error text
 * Both are taken after the progress lock (control messages are handled
 * under it), never the other way round.
 */
RXP_LOCK_CLASS(rxp__rref_table);
RXP_LOCK_CLASS(rxp__rref_handle);

/* The RRef feature's state in an agent (a->feat[RXP__SLOT_RREF]). */
struct rxp__rrefs;
static inline struct rxp__rrefs *rr_of(const struct rxp_agent *a)
{
	return (struct rxp__rrefs *)a->feat[RXP__SLOT_RREF];
}

/* An incoming call's RRef state (its extension area, feature.h). */
struct rref_call {
	struct rxp__owner *owner; /* REMOTE: the entry that keeps the value */
	/* RRef arguments turned into handles before the function runs */
	struct rxp_rref **rrefs;
	uint32_t nrrefs;
	struct rxp_call *wnext; /* owner's list of fetches waiting */
};
RXP__EXT_FITS(struct rref_call);
static inline struct rref_call *rrc(struct rxp_call *c)
{
	return RXP__EXT(c, RXP__SLOT_RREF, struct rref_call);
}

#define OWNER_BUCKETS 1024
#define DELETE_RETRIES 5
#define DELETE_BACKOFF0_MS 1000
#define DELETE_ATTEMPT_TIMEOUT_MS 5000

struct rxp__fork {
	struct rxp_rref_id fork;
	uint32_t holder;
	uint64_t conn; /* key of the connection the fork came on */
};

/* An owner table entry: all of it guarded by the table's lock */
struct rxp__owner {
	struct rxp__owner *hnext RXP_GUARDED_BY(rxp__rref_table);
	struct rxp_rref_id id RXP_GUARDED_BY(rxp__rref_table);
	bool ready RXP_GUARDED_BY(rxp__rref_table);
	bool running RXP_GUARDED_BY(rxp__rref_table);
	bool have_remote RXP_GUARDED_BY(rxp__rref_table);
	int err RXP_GUARDED_BY(rxp__rref_table);
	char *errmsg RXP_GUARDED_BY(rxp__rref_table);
	struct rxp_buf *value
		RXP_GUARDED_BY(rxp__rref_table); /* encoded value response */
	struct rxp_buf **st RXP_GUARDED_BY(rxp__rref_table);
	uint32_t nst RXP_GUARDED_BY(rxp__rref_table);
	struct rxp__fork *forks RXP_GUARDED_BY(rxp__rref_table);
	uint32_t nforks RXP_GUARDED_BY(rxp__rref_table);
	uint32_t capforks RXP_GUARDED_BY(rxp__rref_table);
	uint32_t local_refs RXP_GUARDED_BY(rxp__rref_table);
	struct rxp_call *waiters RXP_GUARDED_BY(rxp__rref_table);
};

struct rxp__child {
	struct rxp__child *next;
	struct rxp_rref_id fork;
	struct rxp_rref *ref;
};

struct rxp__del {
	struct rxp__del *next;
	struct rxp_agent *a;
	struct rxp_rref_desc d;
	int attempts;
	int64_t due_ns;
};

struct rxp__rrefs {
	struct rxp_mutex mu; /* class rxp__rref_table */
	struct rxp__owner *
		buckets[OWNER_BUCKETS] RXP_GUARDED_BY(rxp__rref_table);
	uint32_t nowners RXP_GUARDED_BY(rxp__rref_table);
	struct rxp__child *children RXP_GUARDED_BY(rxp__rref_table);
	uint32_t nchildren RXP_GUARDED_BY(rxp__rref_table);
	atomic_uint_fast64_t counter;
	/* reaper (started and joined by the thread that owns the agent) */
	pthread_t reaper;
	bool reaper_started;
	bool stop RXP_GUARDED_BY(rxp__rref_table);
	pthread_cond_t cv;
	struct rxp__del *dels RXP_GUARDED_BY(rxp__rref_table);
	uint32_t ndels RXP_GUARDED_BY(rxp__rref_table);
	uint32_t inflight RXP_GUARDED_BY(rxp__rref_table);
	uint64_t deletes_done RXP_GUARDED_BY(rxp__rref_table);
	uint64_t deletes_given_up RXP_GUARDED_BY(rxp__rref_table);
	/* placeholders (rref.c): forks on entries whose remote() has not
	 * arrived, at most ph_max in all and ph_per_peer per holder */
	uint32_t ph_max, ph_per_peer;
	uint32_t world;
	uint32_t nph RXP_GUARDED_BY(rxp__rref_table);
	uint32_t *ph_by RXP_PT_GUARDED_BY(rxp__rref_table); /* [world] */
	uint64_t ph_refused RXP_GUARDED_BY(rxp__rref_table);
	struct rxp_ratelog ph_log RXP_GUARDED_BY(rxp__rref_table);
};

struct rxp_rref {
	struct rxp_agent *a;
	atomic_uint refs;
	struct rxp_rref_desc d;
	bool on_owner;
	struct rxp_mutex mu; /* class rxp__rref_handle */
	pthread_cond_t cv;
	/* 0 pending, 1 confirmed, < 0 error */
	int state RXP_GUARDED_BY(rxp__rref_handle);
	char errmsg[256] RXP_GUARDED_BY(rxp__rref_handle);
	struct rxp_future *create; /* remote(): the creating call */
};

/* control message payloads: little-endian, fixed size */
#define ID_BYTES 16
#define DESC_BYTES (8 + 2 * ID_BYTES)

static inline void put_id(uint8_t *p, const struct rxp_rref_id *id)
{
	rxp_put_le32(p, id->creator);
	rxp_put_le32(p + 4, 0);
	rxp_put_le64(p + 8, id->local);
}

static inline int get_id(const uint8_t *p, struct rxp_rref_id *id)
{
	id->creator = rxp_get_le32(p);
	id->reserved = rxp_get_le32(p + 4);
	id->local = rxp_get_le64(p + 8);
	return id->reserved ? -RXP_E_PROTO : 0;
}

/* {owner u32, 0 u32, rref id, fork id} */
static inline void put_desc(uint8_t *p, uint32_t owner,
			    const struct rxp_rref_id *r,
			    const struct rxp_rref_id *f)
{
	rxp_put_le32(p, owner);
	rxp_put_le32(p + 4, 0);
	put_id(p + 8, r);
	put_id(p + 8 + ID_BYTES, f);
}

static inline int get_desc(const uint8_t *p, uint32_t *owner,
			   struct rxp_rref_id *r, struct rxp_rref_id *f)
{
	*owner = rxp_get_le32(p);
	if (rxp_get_le32(p + 4) || get_id(p + 8, r) ||
	    get_id(p + 8 + ID_BYTES, f))
		return -RXP_E_PROTO;
	return 0;
}

static inline bool id_eq(const struct rxp_rref_id *x,
			 const struct rxp_rref_id *y)
{
	return x->creator == y->creator && x->local == y->local;
}

static inline uint32_t id_hash(const struct rxp_rref_id *id)
{
	uint64_t h = id->local * 0x9e3779b97f4a7c15ull ^ id->creator;

	return (uint32_t)(h >> 32) % OWNER_BUCKETS;
}

static inline struct rxp_rref_id new_id(struct rxp_agent *a)
{
	return (struct rxp_rref_id){
		.creator = (uint32_t)a->rank,
		.local = atomic_fetch_add(&rr_of(a)->counter, 1) + 1};
}

/* rref.c */
struct rxp__owner *rxp__owner_find(struct rxp__rrefs *rr,
				   const struct rxp_rref_id *id)
	RXP_REQUIRES(rxp__rref_table);
struct rxp_rref *rxp__handle_new(struct rxp_agent *a,
				 const struct rxp_rref_desc *d);
struct rxp_rref *rxp__handle_get(struct rxp_rref *r);
void rxp__handle_settle(struct rxp_rref *r, int status, const char *msg);
void rxp__rref_fail_waiters(struct rxp_agent *a);
/* rref.c: life cycle and the owner side's hooks */
int rxp__rrefs_init(struct rxp_agent *a);
void rxp__rrefs_fini(struct rxp_agent *a);
void rxp__rrefs_stop(struct rxp_agent *a); /* rref_user.c */
void rxp__rref_on_request(struct rxp_agent *a, struct rxp_call *c);
bool rxp__rref_owner_complete(struct rxp_call *c);
int64_t rxp__rref_metric(struct rxp_agent *a, int which);
/* rref_user.c: the caller's and callee's argument hooks */
int rxp__rref_prepare_args(struct rxp_agent *a, int dst,
			   const struct rxp_value *args, uint32_t nargs,
			   struct rxp_arena *ar, const struct rxp_value **out);
int rxp__rref_adopt_args(struct rxp_call *c);
void rxp__rref_drop_args(struct rxp_call *c);
void rxp__rref_unprepare_args(struct rxp_agent *a, const struct rxp_value *copy,
			      uint32_t nargs);
/* rref_user.c */
void rxp__reaper_enqueue(struct rxp_agent *a, const struct rxp_rref_desc *d);
void rxp__rref_unhold(struct rxp_agent *a, const struct rxp_rref_id *fork);

#endif
