/* SPDX-License-Identifier: MIT */
/*
 * RRefs: remote(), to_here(), forks and deletes, following PyTorch's
 * protocol (docs/DESIGN.md "RRefs" has the sequence diagrams).
 *
 * Owner side: a table of entries, one per RRef this worker owns, each
 * with the value (the encoded response bytes and its storages), the set
 * of forks {fork id -> holder worker} and the fetches waiting for the
 * value. Control messages (fetch, fork, delete, accept) are handled on the
 * polling thread in arrival order, so a creator's fetch or delete can never
 * overtake its own remote() on the same connection.
 *
 * User side: handles (struct rxp_rref) with their confirmation state; a
 * parent keeps a hold on a handle it passed to another worker until that
 * child reports that the owner knows its fork ("accept"). Deletes go
 * through a reaper thread that retries with backoff.
 *
 * Locks: rr->mu guards the owner table and the pending children; a
 * handle's mu guards its state. Never call into the transport, send, or
 * release a handle with rr->mu held.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rref_int.h"

/* ------------------------------------------------------- owner table */

struct rxp__owner *rxp__owner_find(struct rxp__rrefs *rr,
				   const struct rxp_rref_id *id)
	RXP_REQUIRES(rxp__rref_table)
{
	struct rxp__owner *o = rr->buckets[id_hash(id)];

	while (o && !id_eq(&o->id, id))
		o = o->hnext;
	return o;
}

static struct rxp__owner *owner_get(struct rxp__rrefs *rr,
				    const struct rxp_rref_id *id)
	RXP_REQUIRES(rxp__rref_table)
{
	struct rxp__owner *o = rxp__owner_find(rr, id);
	uint32_t b;

	if (o)
		return o;
	o = rxp__calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->id = *id;
	b = id_hash(id);
	o->hnext = rr->buckets[b];
	rr->buckets[b] = o;
	rr->nowners++;
	return o;
}

static struct rxp__fork *fork_find(struct rxp__owner *o,
				   const struct rxp_rref_id *f)
	RXP_REQUIRES(rxp__rref_table)
{
	for (uint32_t i = 0; i < o->nforks; i++)
		if (id_eq(&o->forks[i].fork, f))
			return &o->forks[i];
	return NULL;
}

static int fork_add(struct rxp__owner *o, const struct rxp_rref_id *f,
		    const struct rxp_call *c) RXP_REQUIRES(rxp__rref_table)
{
	struct rxp__fork *dup = fork_find(o, f);

	if (dup)
		return dup->holder == c->caller ? 0 : -RXP_E_REFUSED;
	if (o->nforks == o->capforks) {
		uint32_t ncap = o->capforks ? o->capforks * 2 : 4;
		struct rxp__fork *v = rxp__realloc(o->forks, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->forks = v;
		o->capforks = ncap;
	}
	o->forks[o->nforks++] = (struct rxp__fork){
		.fork = *f, .holder = c->caller, .conn = c->conn_key};
	return 0;
}

static bool owner_unused(const struct rxp__owner *o)
	RXP_REQUIRES(rxp__rref_table)
{
	return !o->nforks && !o->local_refs && !o->running && !o->waiters;
}

/* Unlink and return @o if nothing keeps it any more (caller frees it
 * outside the lock). */
static struct rxp__owner *owner_maybe_unlink(struct rxp__rrefs *rr,
					     struct rxp__owner *o)
	RXP_REQUIRES(rxp__rref_table)
{
	struct rxp__owner **pp;

	if (!owner_unused(o))
		return NULL;
	for (pp = &rr->buckets[id_hash(&o->id)]; *pp; pp = &(*pp)->hnext)
		if (*pp == o) {
			*pp = o->hnext;
			rr->nowners--;
			return o;
		}
	return NULL;
}

/* @o is unlinked (owner_maybe_unlink) or never was linked: no other
 * thread can reach it, so it is freed without the table's lock. */
RXP_NO_THREAD_SAFETY_ANALYSIS static void owner_free(struct rxp__owner *o)
{
	if (!o)
		return;
	rxp_buf_put(o->value);
	for (uint32_t i = 0; i < o->nst; i++)
		rxp_buf_put(o->st[i]);
	rxp__free(o->st);
	rxp__free(o->forks);
	rxp__free(o->errmsg);
	rxp__free(o);
}

/* A list of unlinked entries, through hnext (as owner_free) */
RXP_NO_THREAD_SAFETY_ANALYSIS static void owners_free(struct rxp__owner *o)
{
	while (o) {
		struct rxp__owner *next = o->hnext;

		owner_free(o);
		o = next;
	}
}

/* ------------------------------------------------------ placeholders */

/*
 * A fork may reach the owner before its RRef's remote() (the creator's
 * REMOTE and the child's FORK travel on different connections). It is
 * kept on an unfilled entry, a placeholder, that the remote() fills. Each
 * fork on an unfilled entry is charged to its holder: at most ph_max in
 * all and ph_per_peer per holder, so a peer that forks ids nobody will
 * create cannot make the owner hold more (docs/DESIGN.md "RRefs"). The
 * charge goes back when the remote() fills the entry, when the holder
 * deletes the fork, or when the connection the fork came on closes: a
 * holder whose connection is lost is treated as gone, like its calls.
 */
#define PH_MAX_VAR "RXP_RREF_PLACEHOLDERS_MAX"
#define PH_PER_PEER_VAR "RXP_RREF_PLACEHOLDERS_PER_PEER"
#define PH_MAX_DEFAULT 65536
#define PH_PER_PEER_DEFAULT 4096
#define PH_LIMIT_HI (1l << 24)

static void ph_uncharge(struct rxp__rrefs *rr, uint32_t holder)
	RXP_REQUIRES(rxp__rref_table)
{
	rr->nph--;
	rr->ph_by[holder]--;
}

/* One more placeholder fork for the sender of @c, or -RXP_E_LIMIT with
 * @msg naming the limit it would pass (and whether to log it). */
static int ph_charge(struct rxp_agent *a, struct rxp__rrefs *rr,
		     const struct rxp_call *c, char *msg, size_t len,
		     uint64_t *log_n) RXP_REQUIRES(rxp__rref_table)
{
	if (rr->ph_by[c->caller] < rr->ph_per_peer && rr->nph < rr->ph_max) {
		rr->nph++;
		rr->ph_by[c->caller]++;
		return 0;
	}
	if (rr->ph_by[c->caller] >= rr->ph_per_peer)
		snprintf(msg, len,
			 "refused: worker '%s' has %u forks waiting for their "
			 "remote() on '%s' (" PH_PER_PEER_VAR "=%u)",
			 a->workers[c->caller].name, rr->ph_by[c->caller],
			 a->name, rr->ph_per_peer);
	else
		snprintf(msg, len,
			 "refused: %u forks wait for their remote() on '%s' "
			 "(" PH_MAX_VAR "=%u)",
			 rr->nph, a->name, rr->ph_max);
	/* the first refusal is logged, then one line a second at most */
	rr->ph_refused++;
	rxp_ratelog_due(&rr->ph_log, rr->ph_refused, log_n);
	return -RXP_E_LIMIT;
}

/* A FORK for an RRef whose remote() has not come (@o NULL: not known at
 * all): record it on a placeholder within the budget. *@dead: an entry to
 * free when that failed. */
static int ph_fork_add(struct rxp_agent *a, struct rxp__rrefs *rr,
		       struct rxp__owner *o, const struct rxp_rref_id *id,
		       const struct rxp_rref_id *fork, const struct rxp_call *c,
		       char *msg, size_t len, uint64_t *log_n,
		       struct rxp__owner **dead) RXP_REQUIRES(rxp__rref_table)
{
	struct rxp__fork *dup = o ? fork_find(o, fork) : NULL;
	int ret;

	if (dup) {
		if (dup->holder != c->caller)
			return -RXP_E_REFUSED;
		dup->conn = c->conn_key; /* a repeat: it lives on the newer */
		return 0;
	}
	ret = ph_charge(a, rr, c, msg, len, log_n);
	if (ret)
		return ret;
	if (!o)
		o = owner_get(rr, id);
	ret = o ? fork_add(o, fork, c) : -ENOMEM;
	if (ret) {
		ph_uncharge(rr, c->caller);
		*dead = o ? owner_maybe_unlink(rr, o) : NULL;
	}
	return ret;
}

/* The remote() for @o came: its first @n forks are real state now. */
static void ph_fill(struct rxp__rrefs *rr, struct rxp__owner *o, uint32_t n)
	RXP_REQUIRES(rxp__rref_table)
{
	for (uint32_t i = 0; i < n; i++)
		ph_uncharge(rr, o->forks[i].holder);
}

/*
 * Connection @key from worker @peer closed: drop the placeholder forks
 * that came on it, and the placeholders nothing keeps any more. Fetches
 * waiting on those learn that the RRef is unknown (their forks were
 * refused or are gone: a holder's FETCH follows its FORK on one
 * connection).
 */
static void rref_conn_closed(struct rxp_agent *a, uint32_t peer, uint64_t key)
{
	struct rxp__rrefs *rr = rr_of(a);
	struct rxp__owner *dead = NULL;
	struct rxp_call *fail = NULL;

	rxp__rref_table_lock(&rr->mu);
	for (uint32_t b = 0;
	     peer < rr->world && rr->ph_by[peer] && b < OWNER_BUCKETS; b++) {
		struct rxp__owner **pp = &rr->buckets[b];

		while (*pp) {
			struct rxp__owner *o = *pp;

			for (uint32_t i = 0; !o->have_remote && i < o->nforks;)
				if (o->forks[i].conn == key) {
					ph_uncharge(rr, o->forks[i].holder);
					o->forks[i] = o->forks[--o->nforks];
				} else {
					i++;
				}
			if (o->have_remote || o->nforks || o->local_refs) {
				pp = &o->hnext;
				continue;
			}
			while (o->waiters) {
				struct rxp_call *w = o->waiters;

				o->waiters = rrc(w)->wnext;
				rrc(w)->wnext = fail;
				fail = w;
			}
			*pp = o->hnext;
			rr->nowners--;
			o->hnext = dead;
			dead = o;
		}
	}
	rxp__rref_table_unlock(&rr->mu);
	while (fail) {
		struct rxp_call *w = fail;

		fail = rrc(w)->wnext;
		rxp__call_fail_code(w, -RXP_E_UNKNOWN_RREF,
				    "unknown RRef: its forks are gone");
	}
	owners_free(dead);
}

/* Answer one fetch from a ready entry (rr->mu held: only pushes). */
static void fetch_answer(struct rxp__owner *o, struct rxp_call *c)
	RXP_REQUIRES(rxp__rref_table)
{
	if (o->err)
		rxp__call_fail_code(c, o->err, o->errmsg ? o->errmsg : "");
	else
		rxp__call_respond_buf(c, o->value, o->st, o->nst);
}

/* A REMOTE call completed (any thread): keep its value or error. False
 * when @c is no REMOTE call (nothing kept). */
bool rxp__rref_owner_complete(struct rxp_call *c)
{
	struct rxp__rrefs *rr = rr_of(c->agent);
	struct rxp__owner *o = rrc(c)->owner, *dead;
	struct rxp_call *w;

	if (!o)
		return false;
	rxp__rref_table_lock(&rr->mu);
	if (c->resp_flags & RXP__RESP_ERROR) {
		struct rxp_arena ar;
		char mem[256];
		struct rxp_decoded_resp r;

		rxp_arena_init(&ar, mem, sizeof(mem));
		o->err = -RXP_E_REMOTE;
		if (!rxp_codec_resp_decode(c->resp, c->resp_len, 0, NULL, &ar,
					   &r) &&
		    r.is_error) {
			o->err = r.err_code;
			o->errmsg = rxp__strdup(r.err_msg);
		}
		rxp_arena_fini(&ar);
	} else {
		o->value = rxp_buf_alloc(c->resp_len);
		o->st = c->nrst ? rxp__calloc(c->nrst, sizeof(*o->st)) : NULL;
		if (!o->value || (c->nrst && !o->st)) {
			o->err = -ENOMEM;
		} else {
			memcpy(o->value->data, c->resp, c->resp_len);
			for (uint32_t i = 0; i < c->nrst; i++)
				o->st[i] = rxp_buf_get(c->rst[i]);
			o->nst = c->nrst;
		}
	}
	o->ready = true;
	o->running = false;
	rrc(c)->owner = NULL;
	w = o->waiters;
	o->waiters = NULL;
	while (w) {
		struct rxp_call *next = rrc(w)->wnext;

		fetch_answer(o, w);
		w = next;
	}
	dead = owner_maybe_unlink(rr, o);
	rxp__rref_table_unlock(&rr->mu);
	owner_free(dead);
	return true;
}

/* ----------------------------------------------------------- handles */

struct rxp_rref *rxp__handle_new(struct rxp_agent *a,
				 const struct rxp_rref_desc *d)
{
	struct rxp_rref *r = rxp__calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->a = a;
	atomic_init(&r->refs, 1);
	r->d = *d;
	rxp_mutex_init(&r->mu);
	pthread_cond_init(&r->cv, NULL);
	rxp__agent_get(a);
	return r;
}

void rxp__handle_settle(struct rxp_rref *r, int status, const char *msg)
{
	rxp__rref_handle_lock(&r->mu);
	if (r->state == 0) {
		r->state = status ? status : 1;
		if (status)
			snprintf(r->errmsg, sizeof(r->errmsg), "%s",
				 msg ? msg : rxp_strerror(status));
	}
	pthread_cond_broadcast(&r->cv);
	rxp__rref_handle_unlock(&r->mu);
}

static int handle_state(struct rxp_rref *r)
{
	int st;

	rxp__rref_handle_lock(&r->mu);
	st = r->state;
	rxp__rref_handle_unlock(&r->mu);
	return st;
}

static void handle_free(struct rxp_rref *r)
{
	struct rxp_agent *a = r->a;
	struct rxp__rrefs *rr = rr_of(a);

	if (r->on_owner) {
		struct rxp__owner *o, *dead = NULL;

		rxp__rref_table_lock(&rr->mu);
		o = rxp__owner_find(rr, &r->d.rref);
		if (o && o->local_refs) {
			o->local_refs--;
			dead = owner_maybe_unlink(rr, o);
		}
		rxp__rref_table_unlock(&rr->mu);
		owner_free(dead);
	} else if (handle_state(r) >= 0 || r->create) {
		/* the owner may know this fork: tell it we are done */
		rxp__reaper_enqueue(a, &r->d);
	}
	rxp__future_put(r->create);
	rxp_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	rxp__free(r);
	rxp__agent_put(a);
}

void rxp_rref_release(struct rxp_rref *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1)
		handle_free(r);
}

struct rxp_rref *rxp__handle_get(struct rxp_rref *r)
{
	atomic_fetch_add(&r->refs, 1);
	return r;
}

int rxp_rref_wait_confirmed(struct rxp_rref *r, int64_t timeout_ms)
{
	struct timespec ts;
	int64_t ns;
	int ret = 0;

	if (!r || rxp_timeout_ns(timeout_ms, r->a->rpc_timeout_ns, &ns))
		return -EINVAL;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000);
	ts.tv_nsec += (long)(ns % 1000000000);
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	rxp__rref_handle_lock(&r->mu);
	while (r->state == 0 && !ret)
		ret = ns > 0 ? rxp__rref_handle_timedwait(&r->cv, &r->mu, &ts)
			     : rxp__rref_handle_wait(&r->cv, &r->mu);
	if (r->state != 0)
		ret = r->state > 0 ? 0 : r->state;
	rxp__rref_handle_unlock(&r->mu);
	return ret;
}

int rxp_rref_owner(const struct rxp_rref *r, struct rxp_worker_info *out)
{
	return r ? rxp_agent_worker_by_id(r->a, (int)r->d.owner, out) : -EINVAL;
}

bool rxp_rref_is_owner(const struct rxp_rref *r)
{
	return r && r->d.owner == (uint32_t)r->a->rank;
}

void rxp_rref_ids(const struct rxp_rref *r, struct rxp_rref_id *rref,
		  struct rxp_rref_id *fork)
{
	if (rref)
		*rref = r->d.rref;
	if (fork)
		*fork = r->d.fork;
}

/* ------------------------------------------- owner: control messages */

static void on_remote(struct rxp_agent *a, struct rxp_call *c)
{
	struct rxp__rrefs *rr = rr_of(a);
	uint64_t lens_inline[RXP__INLINE_STORAGES] = {0};
	uint64_t *lens = rxp__buf_lens(c->st, c->nst, lens_inline);
	struct rxp__owner *o, *dead = NULL;
	int ret;

	if (!lens) {
		rxp__call_fail_code(c, -ENOMEM, "owner out of memory");
		return;
	}
	ret = rxp_codec_call_decode(c->payload->data, c->payload->len, c->nst,
				    lens, &c->arena, &c->dc);
	if (lens != lens_inline)
		rxp__free(lens);
	if (ret || !c->dc.meta.has_rref) {
		atomic_fetch_add(&a->proto_errors, 1);
		rxp__call_fail_code(c, ret ? ret : -RXP_E_DECODE,
				    "malformed remote() call");
		return;
	}
	c->decoded = true;
	rxp__rref_table_lock(&rr->mu);
	o = owner_get(rr, &c->dc.meta.rref_id);
	if (!o) {
		ret = -ENOMEM;
	} else if (o->have_remote) {
		ret = -RXP_E_REFUSED; /* a second remote() for one id */
	} else {
		uint32_t n = o->nforks; /* placeholder forks, if any */

		ret = fork_add(o, &c->dc.meta.fork_id, c);
		if (!ret) {
			ph_fill(rr, o, n);
			o->have_remote = o->running = true;
			rrc(c)->owner = o;
		}
	}
	if (ret && o)
		dead = owner_maybe_unlink(rr, o); /* not if others keep it */
	rxp__rref_table_unlock(&rr->mu);
	owner_free(dead);
	if (ret) {
		rxp__call_fail_code(c, ret, "cannot create the RRef");
		return;
	}
	/* the function runs on the pool like any call; its completion
	 * lands in rxp__rref_owner_complete */
	rxp__call_get(c);
	rxp__progress_held(a); /* on_msg runs under it */
	if (rxp__call_queue(a, c))
		rxp__call_put(c);
}

static void on_fetch(struct rxp_agent *a, struct rxp_call *c, const uint8_t *p)
{
	struct rxp__rrefs *rr = rr_of(a);
	struct rxp_rref_id id;
	struct rxp__owner *o;
	char msg[256];

	if (get_id(p, &id)) {
		rxp__call_fail_code(c, -RXP_E_PROTO, "malformed RRef id");
		return;
	}
	rxp__rref_table_lock(&rr->mu);
	o = rxp__owner_find(rr, &id);
	if (o && o->ready) {
		fetch_answer(o, c);
	} else if (o) {
		rrc(c)->wnext = o->waiters;
		o->waiters = c;
	}
	rxp__rref_table_unlock(&rr->mu);
	if (!o) {
		snprintf(msg, sizeof(msg),
			 "unknown RRef {%u, %llu} on worker '%s'", id.creator,
			 (unsigned long long)id.local, a->name);
		rxp__call_fail_code(c, -RXP_E_UNKNOWN_RREF, msg);
	}
}

/* fork (add) or delete (remove) {owner, rref, fork} for the sender */
static void on_fork_or_delete(struct rxp_agent *a, struct rxp_call *c,
			      const uint8_t *p, bool add)
{
	struct rxp__rrefs *rr = rr_of(a);
	struct rxp_rref_id id, fork;
	struct rxp__owner *o, *dead = NULL;
	struct rxp__fork *f;
	uint64_t log_n = 0;
	char msg[512]; /* two worker names */
	uint32_t owner;
	int ret = 0;

	if (get_desc(p, &owner, &id, &fork)) {
		rxp__call_fail_code(c, -RXP_E_PROTO, "malformed RRef ids");
		return;
	}
	if (owner != (uint32_t)a->rank) {
		rxp__call_fail_code(
			c, -RXP_E_REFUSED,
			"refused: this worker does not own that RRef");
		return;
	}
	rxp__rref_table_lock(&rr->mu);
	o = rxp__owner_find(rr, &id);
	if (add && o && o->have_remote) {
		ret = fork_add(o, &fork, c);
	} else if (add) {
		/* before the creator's remote(): on a placeholder */
		ret = ph_fork_add(a, rr, o, &id, &fork, c, msg, sizeof(msg),
				  &log_n, &dead);
	} else if ((f = o ? fork_find(o, &fork) : NULL)) {
		if (f->holder != c->caller) {
			ret = -RXP_E_REFUSED;
		} else {
			if (!o->have_remote)
				ph_uncharge(rr, f->holder);
			*f = o->forks[--o->nforks];
			dead = owner_maybe_unlink(rr, o);
		}
	}
	/* a delete of an unknown RRef or fork: already deleted; idempotent */
	rxp__rref_table_unlock(&rr->mu);
	owner_free(dead);
	if (log_n)
		rxp_warn("rref", "%s (%llu refused since the last such line)",
			 msg, (unsigned long long)log_n);
	if (ret == -RXP_E_LIMIT)
		rxp__call_fail_code(c, ret, msg);
	else if (ret == -RXP_E_REFUSED)
		rxp__call_fail_code(c, ret,
				    add ? "refused: that fork belongs to "
					  "another worker"
					: "refused: that fork is held "
					  "by another worker");
	else if (ret)
		rxp__call_fail_code(c, ret, "owner could not record the fork");
	else
		rxp__call_ack(c);
}

/* parent: a child says the owner knows its fork; let go of our hold */
static void on_accept(struct rxp_agent *a, struct rxp_call *c, const uint8_t *p)
{
	struct rxp_rref_id fork;

	if (get_id(p, &fork)) {
		rxp__call_fail_code(c, -RXP_E_PROTO, "malformed fork id");
		return;
	}
	rxp__rref_unhold(a, &fork);
	rxp__call_ack(c); /* idempotent: a repeated accept is fine */
}

void rxp__rref_on_request(struct rxp_agent *a, struct rxp_call *c)
{
	static const size_t need[] = {
		[RXP__MSG_RREF_FETCH] = ID_BYTES,
		[RXP__MSG_RREF_DELETE] = DESC_BYTES,
		[RXP__MSG_RREF_FORK] = DESC_BYTES,
		[RXP__MSG_RREF_ACCEPT] = ID_BYTES,
	};
	const uint8_t *p = c->payload->data;

	if (c->type == RXP__MSG_REMOTE) {
		on_remote(a, c);
		return;
	}
	if (c->payload->len != need[c->type] || c->nst) {
		atomic_fetch_add(&a->proto_errors, 1);
		rxp__call_fail_code(c, -RXP_E_PROTO, "malformed RRef message");
		return;
	}
	switch (c->type) {
	case RXP__MSG_RREF_FETCH:
		on_fetch(a, c, p);
		break;
	case RXP__MSG_RREF_DELETE:
		on_fork_or_delete(a, c, p, false);
		break;
	case RXP__MSG_RREF_FORK:
		on_fork_or_delete(a, c, p, true);
		break;
	default:
		on_accept(a, c, p);
		break;
	}
}

/* -------------------------------------------------------- life cycle */

int rxp__rrefs_init(struct rxp_agent *a)
{
	struct rxp__rrefs *rr = rxp__calloc(1, sizeof(*rr));
	long max, per;
	int ret;

	if (!rr)
		return -ENOMEM;
	rxp_mutex_init(&rr->mu);
	pthread_cond_init(&rr->cv, NULL);
	a->feat[RXP__SLOT_RREF] = rr;
	/* strict: a bad value fails the create, and the log names it */
	ret = rxp_env_int(PH_MAX_VAR, 1, PH_LIMIT_HI, PH_MAX_DEFAULT, &max);
	if (!ret)
		ret = rxp_env_int(PH_PER_PEER_VAR, 1, PH_LIMIT_HI,
				  PH_PER_PEER_DEFAULT, &per);
	if (ret)
		return ret;
	rr->ph_max = (uint32_t)max;
	rr->ph_per_peer = (uint32_t)per;
	/* untouched pages until used: no cost for a large world */
	rr->world = (uint32_t)a->world;
	rr->ph_by = rxp__calloc(rr->world, sizeof(*rr->ph_by));
	return rr->ph_by ? 0 : -ENOMEM;
}

void rxp__rrefs_fini(struct rxp_agent *a)
{
	struct rxp__rrefs *rr = rr_of(a);

	if (!rr)
		return;
	/* the agent is going: uncontended, taken for what it guards */
	rxp__rref_table_lock(&rr->mu);
	if (rr->nowners || rr->nchildren || rr->ndels)
		rxp_dbg("rref",
			"at shutdown: %u owned, %u pending children, "
			"%u deletes not sent",
			rr->nowners, rr->nchildren, rr->ndels);
	for (uint32_t b = 0; b < OWNER_BUCKETS; b++)
		while (rr->buckets[b]) {
			struct rxp__owner *o = rr->buckets[b];

			rr->buckets[b] = o->hnext;
			owner_free(o);
		}
	while (rr->dels) {
		struct rxp__del *d = rr->dels;

		rr->dels = d->next;
		rxp__free(d);
	}
	rxp__free(rr->ph_by);
	rxp__rref_table_unlock(&rr->mu);
	rxp_mutex_destroy(&rr->mu);
	pthread_cond_destroy(&rr->cv);
	rxp__free(rr);
	a->feat[RXP__SLOT_RREF] = NULL;
}

/* Shutdown: fetches still waiting for a value get an error now. */
void rxp__rref_fail_waiters(struct rxp_agent *a)
{
	struct rxp__rrefs *rr = rr_of(a);
	struct rxp_call *all = NULL;

	rxp__rref_table_lock(&rr->mu);
	for (uint32_t b = 0; b < OWNER_BUCKETS; b++)
		for (struct rxp__owner *o = rr->buckets[b]; o; o = o->hnext)
			while (o->waiters) {
				struct rxp_call *w = o->waiters;

				o->waiters = rrc(w)->wnext;
				rrc(w)->wnext = all;
				all = w;
			}
	rxp__rref_table_unlock(&rr->mu);
	while (all) {
		struct rxp_call *w = all;

		all = rrc(w)->wnext;
		rxp__call_fail_code(w, -RXP_E_SHUTDOWN, "owner shut down");
	}
}

int64_t rxp__rref_metric(struct rxp_agent *a, int which)
{
	struct rxp__rrefs *rr = rr_of(a);
	int64_t v = 0;

	if (!rr)
		return 0;
	rxp__rref_table_lock(&rr->mu);
	switch (which) {
	case 0:
		v = rr->nowners;
		break;
	case 1:
		for (uint32_t b = 0; b < OWNER_BUCKETS; b++)
			for (struct rxp__owner *o = rr->buckets[b]; o;
			     o = o->hnext)
				v += o->nforks;
		break;
	case 2:
		v = rr->nchildren;
		break;
	case 4:
		v = rr->nph;
		break;
	case 5:
		v = (int64_t)rr->ph_refused;
		break;
	default:
		v = rr->ndels + rr->inflight;
		break;
	}
	rxp__rref_table_unlock(&rr->mu);
	return v;
}

/* ------------------------------------------------- the feature (hooks) */

static const char *rref_peer_lost(uint8_t type)
{
	return type == RXP__MSG_RREF_FETCH ? "owner lost" : NULL;
}

static int rref_before_run(struct rxp_call *c)
{
	int ret = rxp__rref_adopt_args(c);

	if (ret)
		rxp__call_fail_code(c, ret,
				    "callee could not adopt an RRef argument");
	return ret;
}

#define RREF_METRIC(n, which)                                                  \
	static int64_t metric_##n(struct rxp_agent *a)                         \
	{                                                                      \
		return rxp__rref_metric(a, which);                             \
	}
RREF_METRIC(owned, 0)
RREF_METRIC(forks, 1)
RREF_METRIC(children, 2)
RREF_METRIC(deletes, 3)
RREF_METRIC(placeholders, 4)
RREF_METRIC(placeholders_refused, 5)
#undef RREF_METRIC

static const struct rxp__metric rref_metrics[] = {
	{"rref.owned", metric_owned, RXP__GAUGE, "RRefs this worker owns."},
	{"rref.forks", metric_forks, RXP__GAUGE,
	 "Forks of owned RRefs held by other workers."},
	{"rref.pending_children", metric_children, RXP__GAUGE,
	 "Forks this worker made whose owner has not confirmed them."},
	{"rref.pending_deletes", metric_deletes, RXP__GAUGE,
	 "Deletes of forks not yet acknowledged by their owner."},
	{"rref.placeholders", metric_placeholders, RXP__GAUGE,
	 "Forks kept for RRefs whose remote() has not arrived yet."},
	{"rref.placeholders_refused", metric_placeholders_refused, RXP__COUNTER,
	 "Forks refused by RXP_RREF_PLACEHOLDERS_PER_PEER or _MAX."},
};

const struct rxp__feature rxp__rref_feature = {
	.name = "rref",
	.slot = RXP__SLOT_RREF,
	.init = rxp__rrefs_init,
	.stop = rxp__rrefs_stop,
	.fini = rxp__rrefs_fini,
	.msg_first = RXP__MSG_REMOTE,
	.msg_last = RXP__MSG_RREF_ACCEPT,
	.on_msg = rxp__rref_on_request,
	.peer_lost = rref_peer_lost,
	.conn_closed = rref_conn_closed,
	.prepare_args = rxp__rref_prepare_args,
	.unprepare_args = rxp__rref_unprepare_args,
	.before_run = rref_before_run,
	.on_finish = rxp__rref_owner_complete,
	.call_free = rxp__rref_drop_args,
	.metrics = rref_metrics,
	.nmetrics = RXP_ARRAY_SIZE(rref_metrics),
};
