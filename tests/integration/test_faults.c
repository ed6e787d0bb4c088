/* SPDX-License-Identifier: MIT */
/*
 * The agent's error paths, driven by the fault transport on the caller
 * (rank 0 runs RXP_TRANSPORT=fault:<inner>, the callee the plain inner):
 * a send the transport refuses, a send that completes with an error, a
 * response lost on the way, a connect that fails. Each fails exactly the
 * call it hits, with a clear status, and the next call works.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_int.h"
#include "skip.h"
#include "world.h"

static char transport[64];

static struct world *start(const char *fault)
{
	static struct world w;
	int ret;

	setenv("RXP_FAULT", fault, 1);
	world_rank0_transport = transport;
	ret = world_start(&w, 2);
	world_rank0_transport = NULL;
	unsetenv("RXP_FAULT");
	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	return &w;
}

static int add(struct world *w, int64_t x, struct rxp_call_opts *o,
	       int64_t *out)
{
	struct rxp_value args[2] = {rxp_v_int(x), rxp_v_int(1)};
	struct rxp_future *f;
	int ret = rxp_rpc_sync(w->a, 1, "t.add", args, 2, NULL, 0, o, &f);

	if (ret)
		return ret;
	ret = rxp_future_status(f);
	if (!ret && out)
		*out = rxp_future_value(f)->u.i;
	if (ret)
		printf("  call failed as injected: %s\n", rxp_future_error(f));
	rxp_future_release(f);
	return ret;
}

static void test_refused_send_fails_that_call_only(void **state)
{
	struct world *w = start("send:nth=2:err=-105"); /* ENOBUFS */
	int64_t v = 0;

	assert_int_equal(add(w, 1, NULL, &v), 0);
	assert_int_equal(add(w, 2, NULL, &v), -ENOBUFS);
	assert_int_equal(add(w, 3, NULL, &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(world_stop(w, true), 0);
}

static void test_send_completion_error_is_peer_lost(void **state)
{
	struct world *w = start("sendcb:nth=2:err=-104"); /* ECONNRESET */
	int64_t v = 0;

	struct rxp_value ms = rxp_v_int(300);
	struct rxp_future *f;

	assert_int_equal(add(w, 1, NULL, NULL), 0);
	/* the second send completes with the error; the callee takes 300 ms,
	 * so the completion surely comes before any response (a response that
	 * came first would rightly have completed the call) */
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.sleep_ms", &ms, 1, NULL, 0, NULL, &f),
		0);
	assert_int_equal(rxp_future_status(f), -RXP_E_PEER_LOST);
	rxp_future_release(f);
	assert_int_equal(add(w, 5, NULL, &v), 0);
	assert_int_equal(v, 6);
	assert_int_equal(world_stop(w, true), 0);
}

static void test_lost_response_times_out_then_recovers(void **state)
{
	struct world *w = start("recv:nth=1:drop");
	struct rxp_call_opts o = {.timeout_ms = 200};
	int64_t v = 0, late = -1;

	assert_int_equal(add(w, 1, &o, NULL), -ETIMEDOUT);
	assert_int_equal(add(w, 7, &o, &v), 0);
	assert_int_equal(v, 8);
	/* the dropped response never came: nothing late to count */
	assert_int_equal(rxp_agent_metric(w->a, "calls.late_responses", &late),
			 0);
	assert_int_equal(late, 0);
	assert_int_equal(world_stop(w, true), 0);
}

static void test_failed_connect_then_reconnect(void **state)
{
	struct world *w = start("connect:nth=1:err=-111"); /* ECONNREFUSED */
	int64_t v = 0, failed = 0;

	assert_int_not_equal(add(w, 1, NULL, NULL), 0);
	assert_int_equal(add(w, 9, NULL, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(rxp_agent_metric(w->a, "calls.failed", &failed), 0);
	assert_int_equal(failed, 1);
	assert_int_equal(world_stop(w, true), 0);
}

static void test_every_nth_send_fails_and_none_is_lost(void **state)
{
	struct world *w = start("send:every=3:err=-105"); /* ENOBUFS */
	int ok = 0, failed = 0;

	for (int i = 0; i < 30; i++) {
		int r = add(w, i, NULL, NULL);

		if (!r)
			ok++;
		else if (r == -ENOBUFS)
			failed++;
	}
	assert_int_equal(ok, 20);
	assert_int_equal(failed, 10);
	assert_int_equal(world_stop(w, true), 0);
}

/* -EAGAIN = the transport's queue is full: the agent waits and retries,
 * in order; the caller never sees it */
static void test_queue_full_is_retried_in_order(void **state)
{
	struct world *w = start("send:every=2:err=-11");
	enum { N = 100 };
	struct rxp_future *f[N];

	for (int i = 0; i < N; i++) {
		struct rxp_value args[2] = {rxp_v_int(i), rxp_v_int(1)};

		assert_int_equal(rxp_rpc_async(w->a, 1, "t.add", args, 2, NULL,
					       0, NULL, &f[i]),
				 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(rxp_future_wait(f[i]), 0);
		assert_int_equal(rxp_future_value(f[i])->u.i, i + 1);
		rxp_future_release(f[i]);
	}
	assert_int_equal(world_stop(w, true), 0);
}

/*
 * The agent closes its connection to a worker (as it does to a stuck or
 * misbehaving peer) and a call follows at once: the transport may report
 * the close later (in-flight I/O), and the call must go out on a new
 * connection, not land on the closing one and fail "cancelled".
 */
static void test_call_right_after_own_close_reconnects(void **state)
{
	struct world *w = start("");
	struct rxp_value args[2] = {rxp_v_int(41), rxp_v_int(1)};
	struct rxp_agent *a = w->a;
	struct rxp_future *f[4];
	int64_t v = 0;

	assert_int_equal(add(w, 1, NULL, &v), 0); /* connected */
	for (int r = 0; r < 4; r++) {
		rxp__progress_lock(&a->progress_mu);
		rxp__lead_begin(a); /* shm reports the close right here */
		assert_non_null(a->workers[1].conn);
		rxp__close_conn(a, a->workers[1].conn);
		/* submitted while this thread leads: the leader takes it
		 * before it next runs the transport */
		assert_int_equal(rxp_rpc_async(a, 1, "t.add", args, 2, NULL, 0,
					       NULL, &f[r]),
				 0);
		rxp__lead_end(a);
		rxp__progress_unlock(&a->progress_mu);
		assert_int_equal(rxp_future_wait(f[r]), 0);
		assert_int_equal(rxp_future_value(f[r])->u.i, 42);
		rxp_future_release(f[r]);
	}
	assert_int_equal(world_stop(w, true), 0);
}

static int64_t metric(struct world *w, const char *key)
{
	int64_t v = -1;

	assert_int_equal(rxp_agent_metric(w->a, key, &v), 0);
	return v;
}

/* Wait until @key reaches @want (true), or give up after @ms (false). */
static bool metric_reaches(struct world *w, const char *key, int64_t want,
			   int ms)
{
	for (int i = 0; i < ms; i++) {
		if (metric(w, key) >= want)
			return true;
		usleep(1000);
	}
	return false;
}

/* @n calls of t.call on worker1, each calling back t.whoami on rank 0 */
static void call_back_into_rank0(struct world *w, struct rxp_future **f, int n)
{
	for (int i = 0; i < n; i++) {
		struct rxp_value args[2] = {rxp_v_str("worker0"),
					    rxp_v_str("t.whoami")};

		assert_int_equal(rxp_rpc_async(w->a, 1, "t.call", args, 2, NULL,
					       0, NULL, &f[i]),
				 0);
	}
}

/*
 * Issue 12, finding 1: responses that wait for a full transport queue
 * (-EAGAIN) and whose connection then closes. A peer can force it: call,
 * never read the responses, disconnect. Every such response must be
 * dropped and freed exactly once (the agent used to read the link of a
 * call it had just freed, then lost the rest of the backlog: a
 * use-after-free under ASan, a leak and a corrupt call cache otherwise).
 * Rank 0 is the callee here: worker1 calls back into it through t.call.
 */
static void
test_queued_responses_to_a_closed_connection_are_dropped(void **state)
{
	enum { N = 8, BUSY = 4 }; /* worker1 runs 4 t.call at a time */
	/* sends 1..N are rank 0's requests; every response after them finds
	 * the transport's queue full */
	struct world *w = start("send:after=8:err=-11");
	int scale = world_time_scale();
	struct rxp_future *f[N];

	call_back_into_rank0(w, f, N);
	/* worker1's four pool threads each wait for a response of ours that
	 * sits on the backlog */
	assert_true(metric_reaches(w, "calls.served", BUSY, 5000 * scale));
	usleep(100 * 1000);
	assert_int_equal(metric(w, "calls.served"), BUSY);
	assert_int_equal(metric(w, "calls.responses_dropped"), 0);

	kill(w->pids[1], SIGKILL);
	for (int i = 0; i < N; i++) {
		assert_int_equal(rxp_future_wait_for(f[i], 5000 * scale),
				 -RXP_E_PEER_LOST);
		rxp_future_release(f[i]);
	}
	/* each queued response dropped once, none lost, none twice */
	assert_true(metric_reaches(w, "calls.responses_dropped", BUSY,
				   2000 * scale));
	usleep(50 * 1000);
	assert_int_equal(metric(w, "calls.responses_dropped"), BUSY);
	assert_int_equal(world_stop(w, false), 0);
}

/*
 * Issue 12 item 6: what waits for a connection is bounded. Every send
 * after the first finds the transport's queue full; with
 * RXP_MAX_QUEUED_CALLS=10, ten calls wait on the backlog (and time out
 * there), every further one fails at once with -RXP_E_LIMIT.
 */
static void test_queued_calls_are_capped(void **state)
{
	enum { N = 50, CAP = 10 };
	struct rxp_call_opts o = {.timeout_ms = 1000 * world_time_scale()};
	struct rxp_future *f[N];
	int limited = 0, timed_out = 0, ok = 0;
	struct world *w;

	setenv("RXP_MAX_QUEUED_CALLS", "10", 1);
	w = start("send:after=1:err=-11");
	unsetenv("RXP_MAX_QUEUED_CALLS");
	for (int i = 0; i < N; i++) {
		struct rxp_value args[2] = {rxp_v_int(i), rxp_v_int(1)};

		assert_int_equal(rxp_rpc_async(w->a, 1, "t.add", args, 2, NULL,
					       0, &o, &f[i]),
				 0);
	}
	for (int i = 0; i < N; i++) {
		int st = rxp_future_wait_for(f[i], 5000 * world_time_scale());

		assert_true(rxp_future_done(f[i]));
		ok += st == 0;
		timed_out += st == -ETIMEDOUT;
		if (st == -RXP_E_LIMIT) {
			limited++;
			assert_non_null(strstr(rxp_future_error(f[i]),
					       "RXP_MAX_QUEUED_CALLS"));
		}
		rxp_future_release(f[i]);
	}
	printf("  %d sent, %d timed out on the backlog, %d refused\n", ok,
	       timed_out, limited);
	assert_int_equal(ok, 1);
	assert_int_equal(timed_out, CAP);
	assert_int_equal(limited, N - 1 - CAP);
	assert_int_equal(metric(w, "calls.refused_queue_full"), N - 1 - CAP);
	assert_int_equal(world_stop(w, true), 0);
	(void)state;
}

/*
 * A caller that sends requests but does not read the responses: past
 * RXP_MAX_QUEUED_RESPONSES its connection is closed (and what waited for
 * it freed) instead of holding memory for good. Rank 0 is the callee:
 * worker1 runs four t.call at a time, each calling back t.whoami here,
 * and rank 0's responses all find the transport's queue full.
 */
static void test_unread_responses_close_their_connection(void **state)
{
	enum { N = 8 };
	struct rxp_future *f[N];
	int scale = world_time_scale();
	struct world *w;

	setenv("RXP_MAX_QUEUED_RESPONSES", "2", 1);
	w = start("send:after=8:err=-11");
	unsetenv("RXP_MAX_QUEUED_RESPONSES");
	call_back_into_rank0(w, f, N);
	/* the third response queued for worker1 closes its connection
	 * (without the cap they would wait for good) */
	assert_true(metric_reaches(w, "conns.closed_unread_responses", 1,
				   10000 * scale));
	assert_true(metric(w, "calls.responses_dropped") >= 1);
	/* how many more closes follow depends on how worker1's retries
	 * interleave; end the rest */
	kill(w->pids[1], SIGKILL);
	for (int i = 0; i < N; i++) {
		assert_int_not_equal(rxp_future_wait_for(f[i], 10000 * scale),
				     0);
		assert_true(rxp_future_done(f[i]));
		rxp_future_release(f[i]);
	}
	assert_int_equal(world_stop(w, false), 0);
	(void)state;
}

static void test_bad_fault_spec_is_refused(void **state)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	char name[32];

	world_attr(&attr, 0, 1, world_free_port(), name, sizeof(name));
	attr.transport = transport;
	setenv("RXP_FAULT", "send:sometimes=3:err=-1", 1);
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
	setenv("RXP_FAULT", "recv:nth=1:err=-5", 1); /* recv only drops */
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
	unsetenv("RXP_FAULT");
	assert_null(a);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused_send_fails_that_call_only),
		cmocka_unit_test(test_send_completion_error_is_peer_lost),
		cmocka_unit_test(test_lost_response_times_out_then_recovers),
		cmocka_unit_test(test_failed_connect_then_reconnect),
		cmocka_unit_test(test_every_nth_send_fails_and_none_is_lost),
		cmocka_unit_test(test_queue_full_is_retried_in_order),
		cmocka_unit_test(
			test_queued_responses_to_a_closed_connection_are_dropped),
		cmocka_unit_test(test_queued_calls_are_capped),
		cmocka_unit_test(test_call_right_after_own_close_reconnects),
		cmocka_unit_test(test_unread_responses_close_their_connection),
		cmocka_unit_test(test_bad_fault_spec_is_refused),
	};
	const char *inner = getenv("RXP_TRANSPORT");

	world_maybe_worker(argc, argv);
	if (!world_transport_usable())
		return rxp_test_skip_code();
	snprintf(transport, sizeof(transport), "fault:%s",
		 inner && *inner ? inner : "tcp");
	return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
