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

/* (owned, forks, pending children, pending deletes) of @who */
static void stats(struct world *w, int who, int64_t out[4])
{
	struct rxp_future *f;

	assert_int_equal(rxp_rpc_sync(w->a, who, "t.rref_stats", NULL, 0, NULL,
				      0, NULL, &f),
			 0);
	assert_int_equal(rxp_future_status(f), 0);
	for (int i = 0; i < 4; i++)
		out[i] = rxp_future_value(f)->u.list.items[i].u.i;
	rxp_future_release(f);
}

/* Every worker's owner table empties and nothing is pending (deletes are
 * asynchronous: wait up to 10 s). */
static void assert_all_clean(struct world *w)
{
	for (int i = 0; i < w->size; i++) {
		int64_t s[4] = {-1, -1, -1, -1};

		for (int t = 0; t < 1000 * world_time_scale(); t++) {
			stats(w, i, s);
			if (!s[0] && !s[1] && !s[2] && !s[3])
				break;
			usleep(10000);
		}
		if (s[0] || s[1] || s[2] || s[3])
			fail_msg(
				"worker%d: owned %lld forks %lld children %lld "
				"deletes %lld",
				i, (long long)s[0], (long long)s[1],
				(long long)s[2], (long long)s[3]);
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

static void test_malicious_delete_is_refused(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(1), rxp_v_int(1)};
	struct rxp_rref_id rid, mine, theirs;
	struct rxp_value arg;
	struct rxp_future *f;
	struct rxp_rref *r;
	uint8_t p[40];
	int64_t s[4];

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
