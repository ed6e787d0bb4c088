/* SPDX-License-Identifier: MIT */
/*
 * RRefs, user side: remote(), to_here(), RRefs passed as arguments
 * (forks: the parent's hold until the child is accepted), and the reaper
 * thread that sends deletes with retries and backoff, like PyTorch's
 * sendWithRetries (5 retries, first after 1 s, each 1.5x longer).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rref_int.h"

/* ---------------------------------------------------------- remote() */

static void on_created(struct rxp_future *f, void *user)
{
	struct rxp_rref *r = user;

	rxp__handle_settle(r, rxp_future_status(f),
			   rxp_future_status(f) ? rxp_future_error(f) : NULL);
	rxp_rref_release(r);
}

int rxp_remote(struct rxp_agent *a, int dst, const char *qualname,
	       const struct rxp_value *args, uint32_t nargs,
	       const struct rxp_iov *storages, uint32_t nstorages,
	       const struct rxp_call_opts *opts, struct rxp_rref **out)
{
	struct rxp_rref_desc d = {0};
	struct rxp_future *f;
	struct rxp_rref *r;
	int ret;

	if (!a || !out)
		return -EINVAL;
	if (dst < 0 || dst >= a->world)
		return -RXP_E_NO_WORKER;
	d.owner = (uint32_t)dst;
	d.parent = (uint32_t)a->rank;
	d.rref = new_id(a);
	d.fork = new_id(a);
	r = rxp__handle_new(a, &d);
	if (!r)
		return -ENOMEM;
	ret = rxp__rpc_submit(a, dst, qualname, args, nargs, storages,
			      nstorages, opts, RXP__API_REMOTE, &d, &f);
	if (ret) {
		/* nothing was sent: no delete either */
		rxp__handle_settle(r, ret, NULL);
		rxp_rref_release(r);
		return ret;
	}
	r->create = f;
	rxp_future_then(f, on_created, rxp__handle_get(r));
	*out = r;
	return 0;
}

/* A future that is already failed (no request was sent). */
static struct rxp_future *failed_future(struct rxp_agent *a, int status,
					const char *msg)
{
	struct rxp_future *f = rxp__future_new(a, RXP__FUT_CALL);

	if (!f)
		return NULL;
	rxp__future_set_error(f, msg);
	f->agent = NULL; /* no callbacks were added; nothing to schedule */
	rxp__future_fulfil(f, status);
	return f;
}

int rxp_rref_to_here(struct rxp_rref *r, int64_t timeout_ms,
		     struct rxp_future **out)
{
	uint8_t p[ID_BYTES];
	int state, ret;
	char msg[256];

	if (!r || !out || timeout_ms < RXP_TIMEOUT_NEVER)
		return -EINVAL;
	rxp__rref_handle_lock(&r->mu);
	state = r->state;
	snprintf(msg, sizeof(msg), "%s", r->errmsg);
	rxp__rref_handle_unlock(&r->mu);
	if (state < 0) {
		/* creation failed or timed out: that is the answer */
		*out = failed_future(r->a, state, msg);
		return *out ? 0 : -ENOMEM;
	}
	put_id(p, &r->d.rref);
	ret = rxp__send_internal(r->a, (int)r->d.owner, RXP__MSG_RREF_FETCH, p,
				 sizeof(p), timeout_ms, RXP__FUT_CALL, out);
	return ret;
}

/* ---------------------------------------------- RRefs as arguments */

static bool has_rref(const struct rxp_value *v, uint32_t n, int depth)
{
	for (uint32_t i = 0; i < n && depth < RXP_CODEC_MAX_DEPTH; i++) {
		if (v[i].kind == RXP_V_RREF)
			return true;
		if ((v[i].kind == RXP_V_LIST || v[i].kind == RXP_V_TUPLE) &&
		    v[i].u.list.items &&
		    has_rref(v[i].u.list.items, v[i].u.list.n, depth + 1))
			return true;
		if (v[i].kind == RXP_V_DICT && v[i].u.dict.items)
			for (uint32_t k = 0; k < v[i].u.dict.n; k++)
				if (has_rref(&v[i].u.dict.items[k].value, 1,
					     depth + 1))
					return true;
	}
	return false;
}

/* the parent's hold on @ref until the child with @fork is accepted */
static int hold_child(struct rxp_agent *a, struct rxp_rref *ref,
		      const struct rxp_rref_id *fork)
{
	struct rxp__child *ch = rxp__malloc(sizeof(*ch));

	if (!ch)
		return -ENOMEM;
	ch->fork = *fork;
	ch->ref = rxp__handle_get(ref);
	rxp__rref_table_lock(&rr_of(a)->mu);
	ch->next = rr_of(a)->children;
	rr_of(a)->children = ch;
	rr_of(a)->nchildren++;
	rxp__rref_table_unlock(&rr_of(a)->mu);
	return 0;
}

static int copy_values(struct rxp_agent *a, const struct rxp_value *in,
		       uint32_t n, struct rxp_arena *ar, struct rxp_value **out,
		       int depth);

static int copy_one(struct rxp_agent *a, const struct rxp_value *in,
		    struct rxp_value *o, struct rxp_arena *ar, int depth)
{
	*o = *in;
	if (in->kind == RXP_V_RREF) {
		struct rxp_rref *ref = in->u.rref.ref;
		struct rxp_rref_desc *d;

		if (!ref || ref->a != a)
			return -EINVAL; /* decoded descs are not re-sendable */
		d = rxp_arena_alloc(ar, sizeof(*d),
				    _Alignof(struct rxp_rref_desc));
		if (!d)
			return -ENOMEM;
		*d = (struct rxp_rref_desc){.owner = ref->d.owner,
					    .parent = (uint32_t)a->rank,
					    .rref = ref->d.rref,
					    .fork = new_id(a)};
		o->u.rref.desc = d;
		return hold_child(a, ref, &d->fork);
	}
	if (in->kind == RXP_V_LIST || in->kind == RXP_V_TUPLE) {
		struct rxp_value *items;
		int ret = copy_values(a, in->u.list.items, in->u.list.n, ar,
				      &items, depth + 1);

		o->u.list.items = items;
		return ret;
	}
	if (in->kind == RXP_V_DICT && in->u.dict.n) {
		struct rxp_dict_entry *e;

		if (!in->u.dict.items)
			return -EINVAL;
		e = rxp_arena_alloc(ar, in->u.dict.n * sizeof(*e),
				    _Alignof(struct rxp_dict_entry));
		if (!e)
			return -ENOMEM;
		for (uint32_t k = 0; k < in->u.dict.n; k++) {
			int ret;

			e[k] = in->u.dict.items[k];
			ret = copy_one(a, &in->u.dict.items[k].value,
				       &e[k].value, ar, depth + 1);
			if (ret)
				return ret;
		}
		o->u.dict.items = e;
	}
	return 0;
}

static int copy_values(struct rxp_agent *a, const struct rxp_value *in,
		       uint32_t n, struct rxp_arena *ar, struct rxp_value **out,
		       int depth)
{
	struct rxp_value *v;

	*out = NULL;
	if (!n)
		return 0;
	if (!in || depth > RXP_CODEC_MAX_DEPTH)
		return -EINVAL;
	v = rxp_arena_alloc(ar, n * sizeof(*v), _Alignof(struct rxp_value));
	if (!v)
		return -ENOMEM;
	*out = v;
	for (uint32_t i = 0; i < n; i++) {
		int ret = copy_one(a, &in[i], &v[i], ar, depth);

		if (ret)
			return ret;
	}
	return 0;
}

static void unhold_tree(struct rxp_agent *a, const struct rxp_value *v,
			uint32_t n);

int rxp__rref_prepare_args(struct rxp_agent *a, int dst,
			   const struct rxp_value *args, uint32_t nargs,
			   struct rxp_arena *ar, const struct rxp_value **out)
{
	struct rxp_value *copy;
	int ret;

	*out = NULL;
	if (!args || !has_rref(args, nargs, 0))
		return 0;
	ret = copy_values(a, args, nargs, ar, &copy, 0);
	if (ret) {
		if (copy)
			unhold_tree(a, copy, nargs);
		return ret;
	}
	*out = copy;
	return 0;
}

/* Let go of the hold kept for the child with @fork (its ACCEPT came, or
 * the send that carried it failed). Unknown forks are ignored. */
void rxp__rref_unhold(struct rxp_agent *a, const struct rxp_rref_id *fork)
{
	struct rxp__child **pp, *ch = NULL;

	rxp__rref_table_lock(&rr_of(a)->mu);
	for (pp = &rr_of(a)->children; *pp; pp = &(*pp)->next)
		if (id_eq(&(*pp)->fork, fork)) {
			ch = *pp;
			*pp = ch->next;
			rr_of(a)->nchildren--;
			break;
		}
	rxp__rref_table_unlock(&rr_of(a)->mu);
	if (ch) {
		rxp_rref_release(ch->ref);
		rxp__free(ch);
	}
}

/* the send failed after prepare: drop the holds it took */
static void unhold_tree(struct rxp_agent *a, const struct rxp_value *v,
			uint32_t n)
{
	for (uint32_t i = 0; v && i < n; i++) {
		if (v[i].kind == RXP_V_RREF && v[i].u.rref.desc)
			rxp__rref_unhold(a, &v[i].u.rref.desc->fork);
		else if (v[i].kind == RXP_V_LIST || v[i].kind == RXP_V_TUPLE)
			unhold_tree(a, v[i].u.list.items, v[i].u.list.n);
		else if (v[i].kind == RXP_V_DICT && v[i].u.dict.items)
			for (uint32_t k = 0; k < v[i].u.dict.n; k++)
				unhold_tree(a, &v[i].u.dict.items[k].value, 1);
	}
}

void rxp__rref_unprepare_args(struct rxp_agent *a, const struct rxp_value *copy,
			      uint32_t nargs)
{
	unhold_tree(a, copy, nargs);
}

/* ------------------------------------------------- callee: adoption */

static void send_accept(struct rxp_rref *r)
{
	uint8_t p[ID_BYTES];
	struct rxp_future *f;

	put_id(p, &r->d.fork);
	if (!rxp__send_internal(r->a, (int)r->d.parent, RXP__MSG_RREF_ACCEPT, p,
				sizeof(p), RXP_TIMEOUT_DEFAULT, RXP__FUT_MSG,
				&f))
		rxp_future_release(f);
}

static void on_forked(struct rxp_future *f, void *user)
{
	struct rxp_rref *r = user;
	int st = rxp_future_status(f);

	rxp__handle_settle(r, st, st ? rxp_future_error(f) : NULL);
	if (!st)
		send_accept(r);
	rxp_rref_release(r);
	rxp_future_release(f);
}

static int adopt_one(struct rxp_call *c, const struct rxp_rref_desc *d)
{
	struct rxp_agent *a = c->agent;
	struct rxp_rref *r;
	struct rxp_future *f;
	uint8_t p[DESC_BYTES];
	int ret;

	if (d->owner >= (uint32_t)a->world || d->parent >= (uint32_t)a->world)
		return -RXP_E_DECODE;
	r = rxp__handle_new(a, d);
	if (!r)
		return -ENOMEM;
	rrc(c)->rrefs[rrc(c)->nrrefs++] = r;
	if (d->owner == (uint32_t)a->rank) {
		/* our own RRef came back: a local reference, no fork */
		struct rxp__owner *o;

		rxp__rref_table_lock(&rr_of(a)->mu);
		o = rxp__owner_find(rr_of(a), &d->rref);
		if (o)
			o->local_refs++;
		rxp__rref_table_unlock(&rr_of(a)->mu);
		r->on_owner = o != NULL;
		rxp__handle_settle(r, o ? 0 : -RXP_E_UNKNOWN_RREF,
				   o ? NULL : "unknown RRef");
		send_accept(r);
		return 0;
	}
	put_desc(p, d->owner, &d->rref, &d->fork);
	ret = rxp__send_internal(a, (int)d->owner, RXP__MSG_RREF_FORK, p,
				 sizeof(p), RXP_TIMEOUT_DEFAULT, RXP__FUT_MSG,
				 &f);
	if (ret) {
		rxp__handle_settle(r, ret, "could not tell the owner");
		rxp__rref_handle_lock(&r->mu);
		r->state = ret;
		rxp__rref_handle_unlock(&r->mu);
		return 0;
	}
	rxp_future_then(f, on_forked, rxp__handle_get(r));
	return 0;
}

static int adopt_tree(struct rxp_call *c, const struct rxp_value *v, uint32_t n,
		      uint32_t *count, bool take)
{
	for (uint32_t i = 0; i < n; i++) {
		int ret = 0;

		if (v[i].kind == RXP_V_RREF) {
			if (take)
				ret = adopt_one(c, v[i].u.rref.desc);
			else
				(*count)++;
		} else if (v[i].kind == RXP_V_LIST ||
			   v[i].kind == RXP_V_TUPLE) {
			ret = adopt_tree(c, v[i].u.list.items, v[i].u.list.n,
					 count, take);
		} else if (v[i].kind == RXP_V_DICT) {
			for (uint32_t k = 0; k < v[i].u.dict.n && !ret; k++)
				ret = adopt_tree(c, &v[i].u.dict.items[k].value,
						 1, count, take);
		}
		if (ret)
			return ret;
	}
	return 0;
}

int rxp__rref_adopt_args(struct rxp_call *c)
{
	uint32_t n = 0;

	adopt_tree(c, c->dc.args, c->dc.nargs, &n, false);
	if (!n)
		return 0;
	rrc(c)->rrefs = rxp__calloc(n, sizeof(*rrc(c)->rrefs));
	if (!rrc(c)->rrefs)
		return -ENOMEM;
	return adopt_tree(c, c->dc.args, c->dc.nargs, &n, true);
}

void rxp__rref_drop_args(struct rxp_call *c)
{
	for (uint32_t i = 0; i < rrc(c)->nrrefs; i++)
		rxp_rref_release(rrc(c)->rrefs[i]);
	rxp__free(rrc(c)->rrefs);
	rrc(c)->rrefs = NULL;
	rrc(c)->nrrefs = 0;
}

int rxp_call_rref(struct rxp_call *c, const struct rxp_value *v,
		  struct rxp_rref **out)
{
	if (!c || !v || !out || v->kind != RXP_V_RREF || !v->u.rref.desc)
		return -EINVAL;
	/* the handle adopted for exactly this decoded value */
	for (uint32_t i = 0; i < rrc(c)->nrrefs; i++)
		if (!memcmp(&rrc(c)->rrefs[i]->d, v->u.rref.desc,
			    sizeof(struct rxp_rref_desc))) {
			*out = rxp__handle_get(rrc(c)->rrefs[i]);
			return 0;
		}
	return -ENOENT;
}

/* ------------------------------------------------------------ reaper */

static void delete_sent(struct rxp_future *f, void *user);

static void send_delete(struct rxp__del *d)
{
	uint8_t p[DESC_BYTES];
	struct rxp_future *f;

	put_desc(p, d->d.owner, &d->d.rref, &d->d.fork);
	if (rxp__send_internal(d->a, (int)d->d.owner, RXP__MSG_RREF_DELETE, p,
			       sizeof(p), DELETE_ATTEMPT_TIMEOUT_MS,
			       RXP__FUT_MSG, &f)) {
		delete_sent(NULL, d); /* a failed attempt */
		return;
	}
	rxp_future_then(f, delete_sent, d);
	rxp_future_release(f);
}

static bool retryable(int st)
{
	return st != -RXP_E_REFUSED && st != -RXP_E_PROTO &&
	       st != -RXP_E_SHUTDOWN && st != -ECANCELED;
}

static void delete_sent(struct rxp_future *f, void *user)
{
	struct rxp__del *d = user;
	struct rxp__rrefs *rr = rr_of(d->a);
	int st = f ? rxp_future_status(f) : -RXP_E_PEER_LOST;

	rxp__rref_table_lock(&rr->mu);
	rr->inflight--;
	if (!st) {
		rr->deletes_done++;
	} else if (retryable(st) && d->attempts < DELETE_RETRIES && !rr->stop) {
		int64_t backoff = DELETE_BACKOFF0_MS;

		for (int i = 0; i < d->attempts; i++)
			backoff = backoff * 3 / 2;
		d->attempts++;
		d->due_ns = rxp_now_ns() + backoff * 1000000;
		d->next = rr->dels;
		rr->dels = d;
		rr->ndels++;
		pthread_cond_signal(&rr->cv);
		d = NULL;
	} else {
		rr->deletes_given_up++;
		rxp_log(st == -ECANCELED ? RXP_LOG_DEBUG : RXP_LOG_WARN, "rref",
			"delete of RRef {%u, %llu} fork {%u, %llu} not "
			"acknowledged by worker %u: %s",
			d->d.rref.creator, (unsigned long long)d->d.rref.local,
			d->d.fork.creator, (unsigned long long)d->d.fork.local,
			d->d.owner, f ? rxp_future_error(f) : rxp_strerror(st));
	}
	rxp__rref_table_unlock(&rr->mu);
	rxp__free(d);
}

static void *reaper_main(void *arg)
{
	struct rxp_agent *a = arg;
	struct rxp__rrefs *rr = rr_of(a);

	rxp__rref_table_lock(&rr->mu);
	while (!rr->stop) {
		struct rxp__del **pp, **first = NULL, *d;
		int64_t now = rxp_now_ns();

		for (pp = &rr->dels; *pp; pp = &(*pp)->next)
			if (!first || (*pp)->due_ns < (*first)->due_ns)
				first = pp;
		if (!first) {
			rxp__rref_table_wait(&rr->cv, &rr->mu);
			continue;
		}
		if ((*first)->due_ns > now) {
			struct timespec ts;
			int64_t t;

			clock_gettime(CLOCK_REALTIME, &ts);
			t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
			    ((*first)->due_ns - now);
			ts.tv_sec = t / 1000000000;
			ts.tv_nsec = t % 1000000000;
			rxp__rref_table_timedwait(&rr->cv, &rr->mu, &ts);
			continue;
		}
		d = *first;
		*first = d->next;
		rr->ndels--;
		rr->inflight++;
		rxp__rref_table_unlock(&rr->mu);
		send_delete(d);
		rxp__rref_table_lock(&rr->mu);
	}
	rxp__rref_table_unlock(&rr->mu);
	return NULL;
}

void rxp__reaper_enqueue(struct rxp_agent *a, const struct rxp_rref_desc *desc)
{
	struct rxp__rrefs *rr = rr_of(a);
	struct rxp__del *d = rxp__calloc(1, sizeof(*d));

	rxp__rref_table_lock(&rr->mu);
	if (!d || rr->stop) {
		rxp_dbg("rref",
			"delete of a fork of RRef {%u, %llu} dropped: %s",
			desc->rref.creator,
			(unsigned long long)desc->rref.local,
			d ? "agent shut down" : "out of memory");
		rxp__rref_table_unlock(&rr->mu);
		rxp__free(d);
		return;
	}
	if (!rr->reaper_started) {
		if (pthread_create(&rr->reaper, NULL, reaper_main, a)) {
			rxp__rref_table_unlock(&rr->mu);
			rxp_warn("rref", "cannot start the delete thread");
			rxp__free(d);
			return;
		}
		rr->reaper_started = true;
	}
	d->a = a;
	d->d = *desc;
	d->due_ns = rxp_now_ns();
	d->next = rr->dels;
	rr->dels = d;
	rr->ndels++;
	pthread_cond_signal(&rr->cv);
	rxp__rref_table_unlock(&rr->mu);
}

/* Shutdown, after the poller stopped (the submit gate is closed). */
void rxp__rrefs_stop(struct rxp_agent *a)
{
	struct rxp__rrefs *rr = rr_of(a);
	struct rxp__child *children;

	rxp__rref_table_lock(&rr->mu);
	rr->stop = true;
	pthread_cond_broadcast(&rr->cv);
	children = rr->children;
	rr->children = NULL;
	rr->nchildren = 0;
	rxp__rref_table_unlock(&rr->mu);
	if (rr->reaper_started)
		pthread_join(rr->reaper, NULL);
	while (children) {
		struct rxp__child *ch = children;

		children = ch->next;
		rxp_rref_release(ch->ref);
		rxp__free(ch);
	}
	rxp__rref_fail_waiters(a);
}
