/* SPDX-License-Identifier: MIT */
/*
 * The pool-queue budget (issue 12 finding 7): a caller whose slow calls
 * with large storages fill a worker's pool must neither make another
 * caller's small call wait behind them nor make the worker hold more than
 * RXP_POOL_QUEUE_*; the calls past the budget fail at once with
 * -RXP_E_LIMIT and a text naming the limit.
 *
 * Three workers: rank 0 (this process) is the slow caller A, rank 1 the
 * callee (4 pool threads, the world's default), rank 2 the other caller
 * B, which rank 0 asks to call rank 1 (t.call).
 */
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"
#include "world.h"

#define THREADS 4 /* world_attr's num_worker_threads */
#define MIB (1u << 20)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct world *start(void)
{
	static struct world w;
	int ret = world_start(&w, 3);

	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	return &w;
}

/* rank 0 asks rank 2 to call rank 1's @fn; the status, error in @err */
static int b_calls(struct world *w, const char *fn, char *err, size_t len)
{
	struct rxp_value args[2] = {rxp_v_str("worker1"), rxp_v_str(fn)};
	struct rxp_call_opts o = {.timeout_ms = 20000};
	struct rxp_future *f;
	int st;

	assert_int_equal(
		rxp_rpc_sync(w->a, 2, "t.call", args, 2, NULL, 0, &o, &f), 0);
	st = rxp_future_status(f);
	snprintf(err, len, "%s", st ? rxp_future_error(f) : "");
	rxp_future_release(f);
	return st;
}

static int64_t callee_metric(struct world *w, const char *key)
{
	int64_t v = -1;

	assert_int_equal(world_metric_of(w, 1, key, &v), 0);
	return v;
}

/* A's call: t.sleep_ms(@ms) carrying @n bytes of storage */
static void a_sleeps(struct world *w, int ms, void *buf, size_t n,
		     struct rxp_future **f)
{
	struct rxp_value v = rxp_v_int(ms);
	struct rxp_iov iov = {.base = buf, .len = n};
	struct rxp_call_opts o = {.timeout_ms = 30000};

	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.sleep_ms", &v, 1, &iov, 1, &o, f), 0);
}

static int count_done(struct rxp_future **f, int n, int status)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += rxp_future_done(f[i]) && rxp_future_status(f[i]) == status;
	return k;
}

/*
 * A sends @n slow calls with @bytes each: the first THREADS run (given
 * time to start), then the rest queue or are refused. Returns once the
 * refused ones (those beyond @queued) have failed.
 */
static void fill_callee(struct world *w, struct rxp_future **f, int n,
			int slow_ms, size_t bytes, int queued)
{
	static unsigned char buf[2 * MIB];
	int scale = world_time_scale();
	int64_t t0;

	assert_true(bytes <= sizeof(buf));
	for (int i = 0; i < n; i++) {
		a_sleeps(w, slow_ms, buf, bytes, &f[i]);
		if (i == THREADS - 1)
			usleep(200000); /* all threads busy, none queued */
	}
	t0 = now_ms();
	while (count_done(f, n, -RXP_E_LIMIT) < n - THREADS - queued &&
	       now_ms() - t0 < 5000 * scale)
		usleep(1000);
	assert_int_equal(count_done(f, n, -RXP_E_LIMIT), n - THREADS - queued);
}

/* Every call of A ends: the accepted ones with their value, the others
 * refused with a text naming @var. */
static void check_a(struct rxp_future **f, int n, int slow_ms, int refused,
		    const char *var)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		rxp_future_wait_for(f[i], 30000); /* returns its status */
		assert_true(rxp_future_done(f[i]));
		if (rxp_future_status(f[i]) == 0) {
			assert_int_equal(rxp_future_value(f[i])->u.i, slow_ms);
		} else {
			assert_int_equal(rxp_future_status(f[i]), -RXP_E_LIMIT);
			if (!strstr(rxp_future_error(f[i]), var))
				fail_msg("refusal without %s: %s", var,
					 rxp_future_error(f[i]));
			k++;
		}
		rxp_future_release(f[i]);
	}
	assert_int_equal(k, refused);
}

/*
 * The finding at small scale: A keeps all 4 threads busy with 1 s calls
 * carrying 1 MiB each and queues more. B's small call is served at the
 * first free thread, before A's queued ones (callers take turns), not
 * after them; past RXP_POOL_QUEUE_PER_PEER=4 A's calls are refused.
 */
static void test_slow_caller_does_not_delay_another(void **state)
{
	enum { N = 12, SLOW = 1000, Q = 4 };
	struct rxp_future *f[N];
	struct world *w;
	int scale = world_time_scale();
	int64_t t0, dt;
	int before;
	char err[512];

	setenv("RXP_POOL_QUEUE_PER_PEER", "4", 1);
	setenv("RXP_POOL_QUEUE_MAX", "64", 1);
	w = start();
	assert_int_equal(b_calls(w, "t.whoami", err, sizeof(err)), 0);
	fill_callee(w, f, N, SLOW, MIB, Q);
	t0 = now_ms();
	assert_int_equal(b_calls(w, "t.whoami", err, sizeof(err)), 0);
	dt = now_ms() - t0;
	before = count_done(f, N, 0);
	printf("  B's call took %lld ms; A's calls done by then: %d "
	       "(threads %d, queued %d)\n",
	       (long long)dt, before, THREADS, Q);
	/* in turn: B's ran when the first thread came free, while A's
	 * queued calls waited; one FIFO made it wait for them (2 s) */
	assert_true(before <= THREADS);
	assert_true(dt < (SLOW + SLOW / 2) * scale);
	check_a(f, N, SLOW, N - THREADS - Q, "RXP_POOL_QUEUE_PER_PEER=4");
	assert_int_equal(callee_metric(w, "calls.refused_pool_queue"),
			 N - THREADS - Q);
	assert_int_equal(callee_metric(w, "pool.queued_calls"), 0);
	assert_int_equal(callee_metric(w, "pool.queued_bytes"), 0);
	assert_int_equal(world_stop(w, true), 0);
	unsetenv("RXP_POOL_QUEUE_PER_PEER");
	unsetenv("RXP_POOL_QUEUE_MAX");
	(void)state;
}

/* The bytes the queued calls hold: three of 1 MiB fit 3 MiB + 4 KiB, the
 * fourth does not, whatever the count allows. */
static void test_queued_bytes_are_capped(void **state)
{
	enum { N = 10, SLOW = 600, Q = 3 };
	struct rxp_future *f[N];
	struct world *w;
	char var[64];

	snprintf(var, sizeof(var), "RXP_POOL_QUEUE_BYTES_PER_PEER=%u",
		 3 * MIB + 4096);
	setenv("RXP_POOL_QUEUE_BYTES_PER_PEER", strchr(var, '=') + 1, 1);
	w = start();
	fill_callee(w, f, N, SLOW, MIB, Q);
	check_a(f, N, SLOW, N - THREADS - Q, var);
	assert_int_equal(callee_metric(w, "calls.refused_pool_queue"),
			 N - THREADS - Q);
	assert_int_equal(world_stop(w, true), 0);
	unsetenv("RXP_POOL_QUEUE_BYTES_PER_PEER");
	(void)state;
}

/* The total is what B meets when A's share is the whole queue: why the
 * per-caller limit is below it (each caller's is a part of it). */
static void test_total_queue_is_capped(void **state)
{
	enum { N = 10, SLOW = 600, Q = 4 };
	struct rxp_future *f[N];
	struct world *w;
	char err[512];

	setenv("RXP_POOL_QUEUE_PER_PEER", "4", 1);
	setenv("RXP_POOL_QUEUE_MAX", "4", 1);
	w = start();
	assert_int_equal(b_calls(w, "t.whoami", err, sizeof(err)), 0);
	fill_callee(w, f, N, SLOW, 4096, Q);
	assert_int_not_equal(b_calls(w, "t.whoami", err, sizeof(err)), 0);
	printf("  B: %s\n", err);
	assert_non_null(strstr(err, "RXP_POOL_QUEUE_MAX=4"));
	check_a(f, N, SLOW, N - THREADS - Q, "RXP_POOL_QUEUE_PER_PEER=4");
	assert_int_equal(world_stop(w, true), 0);
	unsetenv("RXP_POOL_QUEUE_PER_PEER");
	unsetenv("RXP_POOL_QUEUE_MAX");
	(void)state;
}

/* A bad value fails create, naming the variable. */
static void test_bad_budget_value_is_refused(void **state)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	char name[32];

	world_attr(&attr, 0, 1, world_free_port(), name, sizeof(name));
	setenv("RXP_POOL_QUEUE_BYTES_MAX", "0", 1);
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
	setenv("RXP_POOL_QUEUE_BYTES_MAX", "12x", 1);
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
	unsetenv("RXP_POOL_QUEUE_BYTES_MAX");
	assert_null(a);
	(void)state;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slow_caller_does_not_delay_another),
		cmocka_unit_test(test_queued_bytes_are_capped),
		cmocka_unit_test(test_total_queue_is_capped),
		cmocka_unit_test(test_bad_budget_value_is_refused),
	};

	world_maybe_worker(argc, argv);
	if (!world_transport_usable())
		return rxp_test_skip_code();
	return cmocka_run_group_tests_name("pool_budget", tests, NULL, NULL);
}
