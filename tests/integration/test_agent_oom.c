/* SPDX-License-Identifier: MIT */
/*
 * Allocation failure sweep over rxp_agent_create (a world of one, so the
 * rendezvous is this process talking to itself): the n-th allocation
 * fails, for n = 0, 1, 2 ... until creation succeeds. Every earlier try
 * must fail cleanly (an error code, no crash, no hang, no leak: ASan's
 * leak checker runs at exit in the sanitizer build), and a call must work
 * on the agent that finally comes up.
 *
 * Then the other side of the same counter: once warm, tiny calls allocate
 * nothing, caller or callee (issue 10; the world of one calls itself
 * through the transport, so both sides are this process).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "rxp_util.h"
#include "skip.h"
#include "world.h"

static void test_create_fails_cleanly_at_every_allocation(void **state)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	struct rxp_future *f;
	struct rxp_value args[2] = {rxp_v_int(2), rxp_v_int(3)};
	char name[32];
	int n, ret = -1, failures = 0;

	for (n = 0; n < 500; n++) {
		world_attr(&attr, 0, 1, world_free_port(), name, sizeof(name));
		attr.init_timeout_ms = 300;
		rxp__alloc_fail_after(n);
		ret = rxp_agent_create(&attr, &a);
		rxp__alloc_fail_after(-1);
		if (!ret)
			break;
		/* out of memory, or a step that failed because of it (the
		 * rendezvous thread could not answer in time) */
		if (ret != -ENOMEM && ret != -RXP_E_RENDEZVOUS &&
		    ret != -ETIMEDOUT && ret != -EAGAIN)
			fail_msg("allocation %d: unexpected %d (%s)", n, ret,
				 rxp_strerror(ret));
		failures++;
	}
	assert_int_equal(ret, 0);
	assert_true(failures > 5);
	printf("agent creation made %d allocations before it succeeded\n", n);
	assert_int_equal(
		rxp_rpc_sync(a, 0, "t.add", args, 2, NULL, 0, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), 0);
	assert_int_equal(rxp_future_value(f)->u.i, 5);
	rxp_future_release(f);
	rxp_agent_shutdown(a);
}

static void add_calls(struct rxp_agent *a, int n)
{
	struct rxp_value args[2] = {rxp_v_int(40), rxp_v_int(2)};

	for (int i = 0; i < n; i++) {
		struct rxp_future *f;

		assert_int_equal(rxp_rpc_async(a, 0, "t.add", args, 2, NULL, 0,
					       NULL, &f),
				 0);
		assert_int_equal(rxp_future_wait(f), 0);
		assert_int_equal(rxp_future_value(f)->u.i, 42);
		rxp_future_release(f);
	}
}

static void test_warm_calls_allocate_nothing(void **state)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	char name[32];
	long allocs;

	(void)state;
	world_attr(&attr, 0, 1, world_free_port(), name, sizeof(name));
	assert_int_equal(rxp_agent_create(&attr, &a), 0);
	add_calls(a, 500); /* fills the caches, the slot map, the pools */
	rxp__alloc_fail_after(-1); /* start counting */
	add_calls(a, 2000);
	allocs = rxp__alloc_fail_after(-1);
	printf("2000 warm calls made %ld allocations\n", allocs);
	/* a few for rare growth (the slot map doubling), never one per
	 * call: before the returned lists the callee made about 1,800 */
	assert_true(allocs <= 20);
	rxp_agent_shutdown(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_fails_cleanly_at_every_allocation),
		cmocka_unit_test(test_warm_calls_allocate_nothing),
	};

	if (!world_transport_usable())
		return rxp_test_skip_code();
	return cmocka_run_group_tests_name("agent_oom", tests, NULL, NULL);
}
