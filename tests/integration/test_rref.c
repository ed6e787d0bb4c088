/* SPDX-License-Identifier: MIT */
/*
 * remote() and RRefs, the call profiler and autograd metadata, across
 * three worker processes (worker0 = this process) on the transport the
 * environment chooses.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_int.h"
#include "capture.h"
#include "skip.h"
#include "world.h"

static int setup3(void **state)
{
	static struct world w;
	int ret = world_start(&w, 3);

	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	*state = &w;
	return 0;
}

static int teardown_join(void **state)
{
	assert_int_equal(world_stop(*state, true), 0);
	return 0;
}

static int teardown_nojoin(void **state)
{
	world_stop(*state, false);
	return 0;
}

/* (owned, forks, pending children, pending deletes, placeholders,
 * placeholders refused) of @who */
enum { S_OWNED, S_FORKS, S_CHILDREN, S_DELETES, S_PH, S_PH_REFUSED, NSTATS };
static int stats_try(struct world *w, int who, int64_t out[NSTATS])
{
	struct rxp_future *f;
	int ret = rxp_rpc_sync(w->a, who, "t.rref_stats", NULL, 0, NULL, 0,
			       NULL, &f);

	if (ret)
		return ret;
	ret = rxp_future_status(f);
	for (int i = 0; !ret && i < NSTATS; i++)
		out[i] = rxp_future_value(f)->u.list.items[i].u.i;
	rxp_future_release(f);
	return ret;
}

static void stats(struct world *w, int who, int64_t out[NSTATS])
{
	assert_int_equal(stats_try(w, who, out), 0);
}

/* Every worker's owner table empties and nothing is pending (deletes are
 * asynchronous: wait up to 10 s). */
static void assert_all_clean(struct world *w)
{
	for (int i = 0; i < w->size; i++) {
		int64_t s[NSTATS] = {-1, -1, -1, -1, -1};

		for (int t = 0; t < 1000 * world_time_scale(); t++) {
			stats(w, i, s);
			if (!s[0] && !s[1] && !s[2] && !s[3] && !s[S_PH])
				break;
			usleep(10000);
		}
		if (s[0] || s[1] || s[2] || s[3] || s[S_PH])
			fail_msg(
				"worker%d: owned %lld forks %lld children %lld "
				"deletes %lld placeholders %lld",
				i, (long long)s[0], (long long)s[1],
				(long long)s[2], (long long)s[3],
				(long long)s[S_PH]);
	}
}

static void test_remote_then_to_here(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(2), rxp_v_int(3)};
	struct rxp_value fill[2] = {rxp_v_int(10000), rxp_v_int(7)};
	struct rxp_worker_info owner;
	struct rxp_rref *r, *t;
	struct rxp_future *f;
	const unsigned char *p;

	assert_int_equal(
		rxp_remote(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &r), 0);
	assert_int_equal(rxp_rref_owner(r, &owner), 0);
	assert_string_equal(owner.name, "worker1");
	assert_false(rxp_rref_is_owner(r));
	assert_int_equal(rxp_rref_to_here(r, RXP_TIMEOUT_DEFAULT, &f), 0);
	assert_int_equal(rxp_future_wait(f), 0);
	assert_int_equal(rxp_future_value(f)->u.i, 5);
	rxp_future_release(f);
	assert_int_equal(rxp_rref_wait_confirmed(r, 5000), 0);
	/* to_here twice: the owner keeps the value */
	assert_int_equal(rxp_rref_to_here(r, RXP_TIMEOUT_DEFAULT, &f), 0);
	assert_int_equal(rxp_future_wait(f), 0);
	rxp_future_release(f);
	/* a value with a storage, fetched zero-copy */
	assert_int_equal(
		rxp_remote(w->a, 2, "t.fill", fill, 2, NULL, 0, NULL, &t), 0);
	assert_int_equal(rxp_rref_to_here(t, RXP_TIMEOUT_DEFAULT, &f), 0);
	assert_int_equal(rxp_future_wait(f), 0);
	assert_int_equal(rxp_future_nstorages(f), 1);
	assert_int_equal(rxp_storage_size(rxp_future_storage(f, 0)), 10000);
	p = rxp_storage_data(rxp_future_storage(f, 0));
	assert_int_equal(p[0], 7);
	assert_int_equal(p[9999], 7);
	rxp_future_release(f);
	rxp_rref_release(r);
	rxp_rref_release(t);
	assert_all_clean(w);
}

static void test_self_owned_remote(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(20), rxp_v_int(22)};
	struct rxp_rref *r;
	struct rxp_future *f;

	assert_int_equal(
		rxp_remote(w->a, 0, "t.add", args, 2, NULL, 0, NULL, &r), 0);
	assert_true(rxp_rref_is_owner(r));
	assert_int_equal(rxp_rref_to_here(r, RXP_TIMEOUT_DEFAULT, &f), 0);
	assert_int_equal(rxp_future_wait(f), 0);
	assert_int_equal(rxp_future_value(f)->u.i, 42);
	rxp_future_release(f);
	rxp_rref_release(r);
	assert_all_clean(w);
}

static void test_creation_error_surfaces_on_rref(void **state)
{
	struct world *w = *state;
	struct rxp_value arg = rxp_v_str("no value for you");
	struct rxp_rref *r;
	struct rxp_future *f;

	assert_int_equal(
		rxp_remote(w->a, 1, "t.fail", &arg, 1, NULL, 0, NULL, &r), 0);
	assert_int_equal(rxp_rref_wait_confirmed(r, 5000), -RXP_E_REMOTE);
	assert_int_equal(rxp_rref_to_here(r, RXP_TIMEOUT_DEFAULT, &f), 0);
	assert_int_equal(rxp_future_wait(f), -RXP_E_REMOTE);
	assert_non_null(strstr(rxp_future_error(f), "no value for you"));
	rxp_future_release(f);
	rxp_rref_release(r);
	/* unknown function: also a creation error */
	assert_int_equal(
		rxp_remote(w->a, 1, "no.such", NULL, 0, NULL, 0, NULL, &r), 0);
	assert_int_equal(rxp_rref_wait_confirmed(r, 5000), -RXP_E_NO_FUNCTION);
	rxp_rref_release(r);
	assert_all_clean(w);
}

static void test_creation_timeout_surfaces_on_rref(void **state)
{
	struct world *w = *state;
	struct rxp_value arg = rxp_v_int(600);
	struct rxp_call_opts o = {.timeout_ms = 100};
	struct rxp_rref *r;
	struct rxp_future *f;

	assert_int_equal(
		rxp_remote(w->a, 1, "t.sleep_ms", &arg, 1, NULL, 0, &o, &r), 0);
	assert_int_equal(rxp_rref_wait_confirmed(r, 5000), -ETIMEDOUT);
	assert_int_equal(rxp_rref_to_here(r, RXP_TIMEOUT_DEFAULT, &f), 0);
	assert_int_equal(rxp_future_wait(f), -ETIMEDOUT);
	rxp_future_release(f);
	rxp_rref_release(r);
	assert_all_clean(w);
}

static void test_fork_to_third_worker(void **state)
{
	struct world *w = *state;
	struct rxp_value fill[2] = {rxp_v_int(4096), rxp_v_int(9)};
	struct rxp_value arg;
	struct rxp_rref *r;
	struct rxp_future *f;
	const unsigned char *p;

	assert_int_equal(
		rxp_remote(w->a, 1, "t.fill", fill, 2, NULL, 0, NULL, &r), 0);
	/* pass it to worker2, which fetches it from worker1 */
	arg = rxp_v_rref(r);
	assert_int_equal(rxp_rpc_sync(w->a, 2, "t.rref_to_here", &arg, 1, NULL,
				      0, NULL, &f),
			 0);
	assert_int_equal(rxp_future_status(f), 0);
	assert_int_equal(rxp_future_nstorages(f), 1);
	p = rxp_storage_data(rxp_future_storage(f, 0));
	assert_int_equal(rxp_storage_size(rxp_future_storage(f, 0)), 4096);
	assert_int_equal(p[4095], 9);
	rxp_future_release(f);
	/* and back to the owner itself: a local reference there */
	assert_int_equal(rxp_rpc_sync(w->a, 1, "t.rref_to_here", &arg, 1, NULL,
				      0, NULL, &f),
			 0);
	assert_int_equal(rxp_future_status(f), 0);
	rxp_future_release(f);
	rxp_rref_release(r);
	assert_all_clean(w);
}

static void test_owner_table_empty_after_many_users(void **state)
{
	struct world *w = *state;
	enum { N = 20 };
	struct rxp_rref *r[N];

	for (int i = 0; i < N; i++) {
		struct rxp_value args[2] = {rxp_v_int(i), rxp_v_int(1)};
		struct rxp_value arg;
		struct rxp_future *f;

		assert_int_equal(rxp_remote(w->a, i % 2 ? 1 : 2, "t.add", args,
					    2, NULL, 0, NULL, &r[i]),
				 0);
		/* every other one is held by the third worker too */
		if (i % 2)
			continue;
		arg = rxp_v_rref(r[i]);
		assert_int_equal(rxp_rpc_sync(w->a, 1, "t.rref_keep", &arg, 1,
					      NULL, 0, NULL, &f),
				 0);
		assert_int_equal(rxp_future_status(f), 0);
		rxp_future_release(f);
	}
	for (int i = 0; i < N; i++)
		rxp_rref_release(r[i]);
	{
		struct rxp_future *f;

		assert_int_equal(rxp_rpc_sync(w->a, 1, "t.rref_drop", NULL, 0,
					      NULL, 0, NULL, &f),
				 0);
		rxp_future_release(f);
	}
	assert_all_clean(w);
}

static void test_unknown_rref_id_is_clear_error(void **state)
{
	struct world *w = *state;
	uint8_t p[16] = {1, 0, 0, 0, 0, 0, 0, 0, 0x99, 0x99};
	uint8_t bad[5] = {0};
	struct rxp_future *f;

	assert_int_equal(rxp__send_internal(w->a, 1, RXP__MSG_RREF_FETCH, p,
					    sizeof(p), RXP_TIMEOUT_DEFAULT,
					    RXP__FUT_CALL, &f),
			 0);
	assert_int_equal(rxp_future_wait(f), -RXP_E_UNKNOWN_RREF);
	assert_non_null(strstr(rxp_future_error(f), "unknown RRef"));
	rxp_future_release(f);
	/* a malformed control message: an error, the peer lives on */
	assert_int_equal(rxp__send_internal(w->a, 1, RXP__MSG_RREF_FETCH, bad,
					    sizeof(bad), RXP_TIMEOUT_DEFAULT,
					    RXP__FUT_MSG, &f),
			 0);
	assert_int_equal(rxp_future_wait(f), -RXP_E_PROTO);
	rxp_future_release(f);
}

static void put_desc_bytes(uint8_t *p, uint32_t owner,
			   const struct rxp_rref_id *r,
			   const struct rxp_rref_id *fork)
{
	memset(p, 0, 40);
	memcpy(p, &owner, 4);
	memcpy(p + 8, &r->creator, 4);
	memcpy(p + 16, &r->local, 8);
	memcpy(p + 24, &fork->creator, 4);
	memcpy(p + 32, &fork->local, 8);
}

/* rank 0 sends the RRef control message @type with descriptor @p to @to:
 * its outcome */
static int send_desc(struct world *w, int to, uint8_t type, const uint8_t *p)
{
	struct rxp_future *f;
	int ret = rxp__send_internal(w->a, to, type, p, 40, RXP_TIMEOUT_DEFAULT,
				     RXP__FUT_MSG, &f);

	if (ret)
		return ret;
	ret = rxp_future_wait(f);
	rxp_future_release(f);
	return ret;
}

static void test_malicious_delete_is_refused(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(1), rxp_v_int(1)};
	struct rxp_rref_id rid, mine, theirs;
	struct rxp_value arg;
	struct rxp_future *f;
	struct rxp_rref *r;
	uint8_t p[40];
	int64_t s[NSTATS];

	assert_int_equal(
		rxp_remote(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &r), 0);
	assert_int_equal(rxp_rref_wait_confirmed(r, 5000), 0);
	rxp_rref_ids(r, &rid, &mine);
	/* worker2 takes a fork */
	arg = rxp_v_rref(r);
	assert_int_equal(rxp_rpc_sync(w->a, 2, "t.rref_keep", &arg, 1, NULL, 0,
				      NULL, &f),
			 0);
	assert_int_equal(rxp_future_status(f), 0);
	theirs.creator = (uint32_t)rxp_future_value(f)->u.list.items[0].u.i;
	theirs.local = (uint64_t)rxp_future_value(f)->u.list.items[1].u.i;
	theirs.reserved = 0;
	rxp_future_release(f);
	/* we try to delete worker2's fork: refused */
	put_desc_bytes(p, 1, &rid, &theirs);
	assert_int_equal(rxp__send_internal(w->a, 1, RXP__MSG_RREF_DELETE, p,
					    sizeof(p), RXP_TIMEOUT_DEFAULT,
					    RXP__FUT_MSG, &f),
			 0);
	assert_int_equal(rxp_future_wait(f), -RXP_E_REFUSED);
	rxp_future_release(f);
	/* a delete sent to a worker that does not own the RRef: refused */
	put_desc_bytes(p, 1, &rid, &mine);
	assert_int_equal(rxp__send_internal(w->a, 2, RXP__MSG_RREF_DELETE, p,
					    sizeof(p), RXP_TIMEOUT_DEFAULT,
					    RXP__FUT_MSG, &f),
			 0);
	assert_int_equal(rxp_future_wait(f), -RXP_E_REFUSED);
	rxp_future_release(f);
	/* still two forks at the owner */
	stats(w, 1, s);
	assert_int_equal(s[1], 2);
	/* our own delete, twice: idempotent */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
			rxp__send_internal(w->a, 1, RXP__MSG_RREF_DELETE, p,
					   sizeof(p), RXP_TIMEOUT_DEFAULT,
					   RXP__FUT_MSG, &f),
			0);
		assert_int_equal(rxp_future_wait(f), 0);
		rxp_future_release(f);
	}
	stats(w, 1, s);
	assert_int_equal(s[1], 1);
	rxp_rref_release(r); /* its delete is acknowledged again */
	assert_int_equal(rxp_rpc_sync(w->a, 2, "t.rref_drop", NULL, 0, NULL, 0,
				      NULL, &f),
			 0);
	rxp_future_release(f);
	assert_all_clean(w);
}

static void test_lost_owner_fails_to_here(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(1), rxp_v_int(1)};
	struct rxp_future *f;
	struct rxp_rref *r;

	assert_int_equal(
		rxp_remote(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &r), 0);
	assert_int_equal(rxp_rref_wait_confirmed(r, 5000), 0);
	kill(w->pids[1], SIGKILL);
	usleep(200000);
	assert_int_equal(rxp_rref_to_here(r, 5000, &f), 0);
	assert_int_equal(rxp_future_wait(f), -RXP_E_PEER_LOST);
	assert_non_null(strstr(rxp_future_error(f), "owner lost"));
	rxp_future_release(f);
	rxp_rref_release(r); /* the delete retries in the background */
}

/* ------------------------------------------- placeholders' budget */

/* Every worker of the world gets these limits: 48 placeholder forks per
 * sender, 64 in all (the defaults, 4,096 and 65,536, take longer floods) */
#define PH_PER_PEER 48
#define PH_MAX 64
#define FLOOD 100

static int setup_budget(void **state)
{
	setenv("RXP_RREF_PLACEHOLDERS_PER_PEER", "48", 1);
	setenv("RXP_RREF_PLACEHOLDERS_MAX", "64", 1);
	return setup3(state);
}

static int teardown_budget(void **state)
{
	unsetenv("RXP_RREF_PLACEHOLDERS_PER_PEER");
	unsetenv("RXP_RREF_PLACEHOLDERS_MAX");
	return teardown_join(state);
}

static int teardown_budget_nojoin(void **state)
{
	unsetenv("RXP_RREF_PLACEHOLDERS_PER_PEER");
	unsetenv("RXP_RREF_PLACEHOLDERS_MAX");
	return teardown_nojoin(state);
}

/* worker @from sends FLOOD forks for ids no one creates to @to; how many
 * were acknowledged and refused with -RXP_E_LIMIT, the last refusal */
static void flood(struct world *w, int from, int to, int64_t *acked,
		  int64_t *limited, char *last, size_t len)
{
	struct rxp_value args[2] = {rxp_v_int(to), rxp_v_int(FLOOD)};
	const struct rxp_value *v;
	struct rxp_future *f;

	assert_int_equal(rxp_rpc_sync(w->a, from, "t.rref_fork_flood", args, 2,
				      NULL, 0, NULL, &f),
			 0);
	assert_int_equal(rxp_future_status(f), 0);
	v = rxp_future_value(f)->u.list.items;
	*acked = v[0].u.i;
	*limited = v[1].u.i;
	snprintf(last, len, "%.*s", (int)v[2].u.str.len, v[2].u.str.ptr);
	rxp_future_release(f);
}

static int64_t metric0(struct world *w, const char *key)
{
	int64_t v = -1;

	assert_int_equal(rxp_agent_metric(w->a, key, &v), 0);
	return v;
}

/* rank 0's @key reaches @want within 5 s (scaled) */
static void metric0_becomes(struct world *w, const char *key, int64_t want)
{
	for (int i = 0; i < 500 * world_time_scale(); i++) {
		if (metric0(w, key) == want)
			return;
		usleep(10000);
	}
	fail_msg("%s is %lld, not %lld", key, (long long)metric0(w, key),
		 (long long)want);
}

/*
 * Issue 12: RREF_FORK for ids nobody creates made the owner keep a
 * placeholder for each, for good (100,000 of them: +258 MiB). Now each
 * sender gets PH_PER_PEER, all of them PH_MAX, the rest fail with
 * -RXP_E_LIMIT and are counted; the placeholders go with their sender.
 */
static void test_fork_flood_is_bounded_and_freed_when_sender_goes(void **state)
{
	struct world *w = *state;
	int64_t acked, limited;
	char last[512];

	/* worker1 stops at its own limit */
	flood(w, 1, 0, &acked, &limited, last, sizeof(last));
	assert_int_equal(acked, PH_PER_PEER);
	assert_int_equal(limited, FLOOD - PH_PER_PEER);
	assert_non_null(strstr(last, "RXP_RREF_PLACEHOLDERS_PER_PEER=48"));
	assert_int_equal(metric0(w, "rref.placeholders"), PH_PER_PEER);
	/* worker2 at the global one */
	flood(w, 2, 0, &acked, &limited, last, sizeof(last));
	assert_int_equal(acked, PH_MAX - PH_PER_PEER);
	assert_int_equal(limited, FLOOD - (PH_MAX - PH_PER_PEER));
	assert_non_null(strstr(last, "RXP_RREF_PLACEHOLDERS_MAX=64"));
	/* what the owner holds stays inside the budget */
	assert_int_equal(metric0(w, "rref.placeholders"), PH_MAX);
	assert_int_equal(metric0(w, "rref.owned"), PH_MAX);
	assert_int_equal(metric0(w, "rref.placeholders_refused"),
			 2 * FLOOD - PH_MAX);
	/* a sender that dies takes its placeholders along (the other
	 * worker then leaves too: the world's barrier fails) */
	kill(w->pids[1], SIGKILL);
	kill(w->pids[2], SIGKILL);
	metric0_becomes(w, "rref.placeholders", 0);
	assert_int_equal(metric0(w, "rref.owned"), 0);
	assert_int_equal(metric0(w, "rref.forks"), 0);
}

/* rank 0 sends one FORK for an id no one creates to @to */
static void fork_unknown(struct world *w, int to, uint64_t local)
{
	struct rxp_rref_id id = {.creator = 0, .local = local};
	uint8_t p[40];

	put_desc_bytes(p, (uint32_t)to, &id, &id);
	assert_int_equal(send_desc(w, to, RXP__MSG_RREF_FORK, p), 0);
}

/* Close rank 0's connection to @dst, as a peer that goes would. */
static void drop_conn(struct world *w, int dst)
{
	struct rxp_agent *a = w->a;

	rxp__progress_lock(&a->progress_mu);
	rxp__lead_begin(a); /* shm reports the close right here */
	if (a->workers[dst].conn)
		a->ops->disconnect(a->workers[dst].conn);
	rxp__lead_end(a);
	rxp__progress_unlock(&a->progress_mu);
}

/* A fork that legitimately comes before its remote() still works while
 * another sender has used up its own budget at the same owner; a sender's
 * lost connection takes only its unfilled placeholders. */
static void test_fork_before_remote_works_and_only_unfilled_go(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(2), rxp_v_int(3)};
	struct rxp_rref_id rid, next,
		fork = {.creator = 0, .local = 1ull << 41};
	struct rxp_rref *r0, *r1;
	struct rxp_future *f;
	int64_t acked, limited, s[NSTATS];
	char last[512];
	uint8_t p[40];

	flood(w, 2, 1, &acked, &limited, last, sizeof(last));
	assert_int_equal(acked, PH_PER_PEER);
	/* rank 0's next RRef id: remote() takes one for the RRef, one for
	 * its fork */
	assert_int_equal(
		rxp_remote(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &r0), 0);
	assert_int_equal(rxp_rref_wait_confirmed(r0, 5000), 0);
	rxp_rref_ids(r0, &rid, NULL);
	next = (struct rxp_rref_id){.creator = 0, .local = rid.local + 2};
	/* our fork of that RRef reaches worker1 before the remote() */
	put_desc_bytes(p, 1, &next, &fork);
	assert_int_equal(send_desc(w, 1, RXP__MSG_RREF_FORK, p), 0);
	stats(w, 1, s);
	assert_int_equal(s[S_PH], PH_PER_PEER + 1);
	/* the remote() fills the placeholder: real state, off the budget */
	assert_int_equal(
		rxp_remote(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &r1), 0);
	rxp_rref_ids(r1, &rid, NULL);
	assert_true(rid.creator == next.creator && rid.local == next.local);
	assert_int_equal(rxp_rref_to_here(r1, 5000, &f), 0);
	assert_int_equal(rxp_future_wait(f), 0);
	assert_int_equal(rxp_future_value(f)->u.i, 5);
	rxp_future_release(f);
	stats(w, 1, s);
	assert_int_equal(s[S_PH], PH_PER_PEER);
	assert_int_equal(s[S_FORKS], PH_PER_PEER + 1 + 2); /* r0, r1 + ours */
	/* one more of ours that nobody fills; then our connection goes: that
	 * placeholder goes with it, worker2's and the filled entry's forks
	 * (real state) stay */
	fork_unknown(w, 1, 1ull << 42);
	stats(w, 1, s);
	assert_int_equal(s[S_PH], PH_PER_PEER + 1);
	drop_conn(w, 1);
	for (int t = 0; t < 500 * world_time_scale(); t++) {
		/* over a new connection (the first try may still find the
		 * closing one: -ECANCELED) */
		if (!stats_try(w, 1, s) && s[S_PH] == PH_PER_PEER)
			break;
		usleep(10000);
	}
	stats(w, 1, s);
	assert_int_equal(s[S_PH], PH_PER_PEER);
	assert_int_equal(s[S_FORKS], PH_PER_PEER + 1 + 2);
	/* our fork and the creator's go: the entry with them */
	assert_int_equal(send_desc(w, 1, RXP__MSG_RREF_DELETE, p), 0);
	rxp_rref_release(r0);
	rxp_rref_release(r1);
	for (int t = 0; t < 500 * world_time_scale(); t++) {
		stats(w, 1, s);
		if (s[S_OWNED] == PH_PER_PEER)
			break;
		usleep(10000);
	}
	assert_int_equal(s[S_OWNED], PH_PER_PEER);
	assert_int_equal(s[S_FORKS], PH_PER_PEER);
}

struct create_try {
	const char *var, *val;
	int ret;
};

static void try_create(void *arg)
{
	struct create_try *t = arg;
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	char name[32];

	setenv(t->var, t->val, 1);
	world_attr(&attr, 0, 1, world_free_port(), name, sizeof(name));
	t->ret = rxp_agent_create(&attr, &a);
	unsetenv(t->var);
	rxp_agent_shutdown(a);
}

static void test_bad_placeholder_limit_fails_create(void **state)
{
	static const struct create_try bad[] = {
		{"RXP_RREF_PLACEHOLDERS_MAX", "4k", 0},
		{"RXP_RREF_PLACEHOLDERS_MAX", "0", 0},
		{"RXP_RREF_PLACEHOLDERS_PER_PEER", "-1", 0},
		{"RXP_RREF_PLACEHOLDERS_PER_PEER", "99999999999", 0},
	};
	char log[4096];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct create_try t = bad[i];

		capture_stderr(try_create, &t, log, sizeof(log));
		assert_int_equal(t.ret, -EINVAL);
		assert_non_null(strstr(log, t.var));
	}
}

/* ------------------------------------------------------------ profiler */

static int find_event(const struct rxp_prof_event *ev, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(ev[i].name, name))
			return i;
	return -1;
}

static void test_profiler_records_calls_and_callee_events(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(1), rxp_v_int(2)};
	static struct rxp_prof_event ev[64];
	struct rxp_future *f;
	struct rxp_rref *r;
	char path[] = "/tmp/rxp-trace-XXXXXX";
	int n, i, j, fd;
	char buf[8192];
	FILE *fp;
	size_t len;

	/* off: nothing recorded */
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &f), 0);
	rxp_future_release(f);
	assert_int_equal(rxp_profiler_events(w->a, ev, 64), 0);

	assert_int_equal(rxp_profiler_enable(w->a, true), 0);
	assert_int_equal(rxp_rpc_sync(w->a, 1, "t.prof_work", NULL, 0, NULL, 0,
				      NULL, &f),
			 0);
	assert_int_equal(rxp_future_status(f), 0);
	rxp_future_release(f);
	assert_int_equal(
		rxp_rpc_async(w->a, 2, "t.add", args, 2, NULL, 0, NULL, &f), 0);
	rxp_future_wait(f);
	rxp_future_release(f);
	assert_int_equal(
		rxp_remote(w->a, 2, "t.add", args, 2, NULL, 0, NULL, &r), 0);
	assert_int_equal(rxp_rref_wait_confirmed(r, 5000), 0);
	rxp_rref_release(r);
	assert_int_equal(rxp_profiler_enable(w->a, false), 0);

	n = rxp_profiler_events(w->a, ev, 64);
	assert_true(n >= 5);
	i = find_event(ev, n, "rpc_sync#t.prof_work(worker0 -> worker1)");
	assert_true(i >= 0);
	assert_int_equal(ev[i].parent, -1);
	assert_int_equal(ev[i].worker, 0);
	assert_true(ev[i].bytes_sent > 0);
	/* the callee's events, moved onto our clock, inside the call */
	j = find_event(ev, n,
		       "rpc_sync#t.prof_work(worker0 -> worker1)#t.prof_work");
	assert_true(j >= 0);
	assert_int_equal(ev[j].parent, i);
	assert_int_equal(ev[j].worker, 1);
	assert_true(ev[j].start_ns >= ev[i].start_ns);
	assert_true(ev[j].end_ns <= ev[i].end_ns);
	assert_true(ev[j].end_ns - ev[j].start_ns >= 5000000);
	j = find_event(ev, n, "rpc_sync#t.prof_work(worker0 -> worker1)#inner");
	assert_true(j >= 0);
	assert_true(ev[j].start_ns >= ev[i].start_ns);
	assert_true(find_event(ev, n,
			       "rpc_async_jit#t.add(worker0 -> worker2)") >= 0);
	assert_true(find_event(ev, n, "rpc_remote#t.add(worker0 -> worker2)") >=
		    0);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(rxp_profiler_export_chrome(w->a, path), 0);
	fp = fopen(path, "r");
	assert_non_null(fp);
	len = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[len] = 0;
	fclose(fp);
	unlink(path);
	assert_non_null(strstr(buf, "\"traceEvents\""));
	assert_non_null(strstr(buf, "rpc_async_jit#t.add(worker0 -> worker2)"));
	assert_non_null(strstr(buf, "\"ph\":\"X\""));
	assert_int_equal(
		rxp_profiler_export_chrome(w->a, "/nonexistent/x.json"),
		-ENOENT);
	rxp_profiler_clear(w->a);
	assert_int_equal(rxp_profiler_events(w->a, ev, 64), 0);
	assert_all_clean(w);
}

/* ------------------------------------------------------------ autograd */

static int sends, recvs;
static struct rxp_autograd_meta seen;

static void ag_send(void *user, const struct rxp_autograd_meta *m, int dst,
		    const char *name)
{
	__atomic_add_fetch(&sends, 1, __ATOMIC_SEQ_CST);
}

static void ag_recv(void *user, const struct rxp_autograd_meta *m, int src,
		    const char *name)
{
	seen = *m;
	__atomic_add_fetch(&recvs, 1, __ATOMIC_SEQ_CST);
}

static void test_autograd_metadata_round_trip(void **state)
{
	struct world *w = *state;
	struct rxp_autograd_meta m = {.context_id = 7,
				      .message_id = 11,
				      .force_grad_recording = true};
	struct rxp_autograd_hooks h = {.on_send = ag_send, .on_recv = ag_recv};
	struct rxp_call_opts o = {.timeout_ms = RXP_TIMEOUT_DEFAULT,
				  .autograd = &m};
	const struct rxp_value *v;
	struct rxp_future *f;

	assert_int_equal(rxp_agent_set_autograd_hooks(w->a, &h), 0);
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.autograd", NULL, 0, NULL, 0, &o, &f),
		0);
	assert_int_equal(rxp_future_status(f), 0);
	v = rxp_future_value(f);
	assert_int_equal(v->kind, RXP_V_TUPLE);
	assert_int_equal(v->u.list.items[0].u.i, 7);
	assert_int_equal(v->u.list.items[1].u.i, 11);
	assert_true(v->u.list.items[2].u.b);
	rxp_future_release(f);
	assert_int_equal(sends, 1);
	/* without metadata: none, and no hook */
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.autograd", NULL, 0, NULL, 0, NULL, &f),
		0);
	assert_int_equal(rxp_future_value(f)->kind, RXP_V_NONE);
	rxp_future_release(f);
	assert_int_equal(sends, 1);
	/* the callee's hook: call ourselves */
	m.message_id = 12;
	assert_int_equal(
		rxp_rpc_sync(w->a, 0, "t.autograd", NULL, 0, NULL, 0, &o, &f),
		0);
	rxp_future_release(f);
	assert_int_equal(recvs, 1);
	assert_int_equal(seen.context_id, 7);
	assert_int_equal(seen.message_id, 12);
	assert_int_equal(rxp_agent_set_autograd_hooks(w->a, NULL), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_remote_then_to_here,
						setup3, teardown_join),
		cmocka_unit_test_setup_teardown(test_self_owned_remote, setup3,
						teardown_join),
		cmocka_unit_test_setup_teardown(
			test_creation_error_surfaces_on_rref, setup3,
			teardown_join),
		cmocka_unit_test_setup_teardown(
			test_creation_timeout_surfaces_on_rref, setup3,
			teardown_join),
		cmocka_unit_test_setup_teardown(test_fork_to_third_worker,
						setup3, teardown_join),
		cmocka_unit_test_setup_teardown(
			test_owner_table_empty_after_many_users, setup3,
			teardown_join),
		cmocka_unit_test_setup_teardown(
			test_unknown_rref_id_is_clear_error, setup3,
			teardown_join),
		cmocka_unit_test_setup_teardown(
			test_malicious_delete_is_refused, setup3,
			teardown_join),
		cmocka_unit_test_setup_teardown(test_lost_owner_fails_to_here,
						setup3, teardown_nojoin),
		cmocka_unit_test_setup_teardown(
			test_fork_flood_is_bounded_and_freed_when_sender_goes,
			setup_budget, teardown_budget_nojoin),
		cmocka_unit_test_setup_teardown(
			test_fork_before_remote_works_and_only_unfilled_go,
			setup_budget, teardown_budget),
		cmocka_unit_test(test_bad_placeholder_limit_fails_create),
		cmocka_unit_test_setup_teardown(
			test_profiler_records_calls_and_callee_events, setup3,
			teardown_join),
		cmocka_unit_test_setup_teardown(
			test_autograd_metadata_round_trip, setup3,
			teardown_join),
	};

	world_maybe_worker(argc, argv);
	if (!world_transport_usable())
		return rxp_test_skip_code();
	return cmocka_run_group_tests_name("rref", tests, NULL, NULL);
}
