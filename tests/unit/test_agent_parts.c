/* SPDX-License-Identifier: MIT */
/* Unit tests of the agent's building blocks: slot map, deadline heap,
 * worker pool, futures, storages, error names. No transport involved. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_int.h"
#include "rref/rref_int.h"

static void test_slots_add_get_del_and_reuse(void **state)
{
	struct rxp__slots s;
	uint64_t k[100], old;
	int vals[100];

	assert_int_equal(rxp__slots_init(&s, 4), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(rxp__slots_add(&s, &vals[i], &k[i]), 0);
	assert_int_equal(s.used, 100);
	for (int i = 0; i < 100; i++)
		assert_ptr_equal(rxp__slots_get(&s, k[i]), &vals[i]);
	old = k[7];
	assert_ptr_equal(rxp__slots_del(&s, old), &vals[7]);
	assert_null(rxp__slots_get(&s, old));
	assert_null(rxp__slots_del(&s, old));
	/* the slot is reused with a new generation: the stale key misses */
	assert_int_equal(rxp__slots_add(&s, &vals[7], &k[7]), 0);
	assert_int_equal((uint32_t)k[7], (uint32_t)old);
	assert_int_not_equal(k[7], old);
	assert_null(rxp__slots_get(&s, old));
	/* keys out of range or never issued */
	assert_null(rxp__slots_get(&s, 0));
	assert_null(rxp__slots_get(&s, UINT64_MAX));
	rxp__slots_fini(&s);
}

/* Call ids are keys of this table: a peer that saw some must not be able
 * to tell the next one of a slot (it was generation + 1 before). */
static void test_slot_keys_unpredictable(void **state)
{
	struct rxp__slots s, t;
	uint64_t k, kt, prev = 0;
	int v, steps = 0, high = 0, same = 0;

	assert_int_equal(rxp__slots_init(&s, 4), 0);
	assert_int_equal(rxp__slots_init(&t, 4), 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(rxp__slots_add(&s, &v, &k), 0);
		assert_int_equal(rxp__slots_add(&t, &v, &kt), 0);
		assert_int_equal((uint32_t)k, 0); /* LIFO: the same slot */
		assert_true(k >> 32);		  /* never generation 0 */
		steps += i && (k >> 32) - (prev >> 32) == 1;
		high += (k >> 63) != 0;
		same += k == kt; /* each table has its own key */
		prev = k;
		assert_ptr_equal(rxp__slots_del(&s, k), &v);
		assert_ptr_equal(rxp__slots_del(&t, kt), &v);
	}
	assert_int_equal(steps, 0);
	assert_true(high > 400 && high < 600);
	assert_true(same < 3);
	rxp__slots_fini(&s);
	rxp__slots_fini(&t);
}

static void test_slots_grow_fails_cleanly_on_enomem(void **state)
{
	struct rxp__slots s;
	uint64_t k;
	int v;

	assert_int_equal(rxp__slots_init(&s, 1), 0);
	assert_int_equal(rxp__slots_add(&s, &v, &k), 0);
	rxp__alloc_fail_after(0);
	assert_int_equal(rxp__slots_add(&s, &v, &k), -ENOMEM);
	rxp__alloc_fail_after(-1);
	assert_int_equal(s.used, 1);
	assert_int_equal(rxp__slots_add(&s, &v, &k), 0);
	rxp__slots_fini(&s);
}

static void test_heap_pops_in_deadline_order(void **state)
{
	struct rxp__heap h = {0};
	struct rxp__dl d;
	int64_t last = INT64_MIN;

	for (int i = 0; i < 1000; i++)
		assert_int_equal(
			rxp__heap_push(&h, (i * 7919) % 1000, (uint64_t)i), 0);
	for (int i = 0; i < 1000; i++) {
		assert_true(rxp__heap_top(&h, &d));
		assert_true(d.t >= last);
		last = d.t;
		rxp__heap_pop(&h);
	}
	assert_false(rxp__heap_top(&h, &d));
	rxp__alloc_fail_after(0);
	assert_int_equal(rxp__heap_push(&h, 1, 1), 0); /* capacity left */
	rxp__alloc_fail_after(-1);
	rxp__heap_fini(&h);
	rxp__alloc_fail_after(0);
	assert_int_equal(rxp__heap_push(&h, 1, 1), -ENOMEM);
	rxp__alloc_fail_after(-1);
}

static atomic_int ran;
static const struct rxp__pool_limits big = {.per_peer = 1000,
					    .max = 1000,
					    .bytes_per_peer = 1u << 30,
					    .bytes_max = 1u << 30};

static void task(void *arg)
{
	usleep(100);
	atomic_fetch_add(&ran, 1);
}

static void test_pool_runs_every_task_before_stop(void **state)
{
	struct rxp__pool p;

	atomic_store(&ran, 0);
	assert_int_equal(rxp__pool_start(&p, 3, 2, &big, NULL), 0);
	for (int i = 0; i < 3000; i++) /* past the initial ring size */
		assert_int_equal(rxp__pool_push(&p, task, NULL), 0);
	rxp__pool_stop(&p);
	assert_int_equal(atomic_load(&ran), 3000);
}

static void test_pool_refuses_after_stop(void **state)
{
	struct rxp__pool p;

	assert_int_equal(rxp__pool_start(&p, 1, 2, &big, NULL), 0);
	rxp__pool_lock(&p.mu);
	p.stop = true; /* as rxp__pool_stop sets it, before joining */
	rxp__pool_unlock(&p.mu);
	assert_int_equal(rxp__pool_push(&p, task, NULL), -ECANCELED);
	rxp__pool_lock(&p.mu);
	p.stop = false;
	rxp__pool_unlock(&p.mu);
	rxp__pool_stop(&p);
}

static void test_pool_start_fails_on_enomem(void **state)
{
	struct rxp__pool p;

	rxp__alloc_fail_after(0);
	assert_int_equal(rxp__pool_start(&p, 2, 2, &big, NULL), -ENOMEM);
	rxp__alloc_fail_after(-1);
}

/* ------------------------------------------------ pool-queue budget */

/* Calls run by a fake dispatcher: the first one holds the only thread
 * until the test opens the gate; each records its caller in order. */
static atomic_int gate, nrun;
static uint32_t run_order[64];

static void run_fake(void *arg)
{
	struct rxp_call *c = arg;
	int i = atomic_fetch_add(&nrun, 1);

	run_order[i] = c->caller;
	while (!atomic_load(&gate))
		usleep(100);
}

static void pool_held(struct rxp__pool *p, const struct rxp__pool_limits *l,
		      struct rxp_call *first)
{
	atomic_store(&gate, 0);
	atomic_store(&nrun, 0);
	assert_int_equal(rxp__pool_start(p, 1, 3, l, NULL), 0);
	p->run_call = run_fake;
	first->caller = 2;
	assert_int_equal(rxp__pool_push_call(p, first, 0, NULL), 0);
	while (!atomic_load(&nrun)) /* the thread holds it: none queued */
		usleep(100);
}

static void test_pool_budget_refuses_past_each_limit(void **state)
{
	const struct rxp__pool_limits l = {.per_peer = 3,
					   .max = 5,
					   .bytes_per_peer = 100,
					   .bytes_max = 120};
	static struct rxp_call c[12];
	enum rxp__pool_limit hit = RXP__POOL_MAX;
	struct rxp__pool p;
	uint64_t n, b;

	memset(c, 0, sizeof(c));
	pool_held(&p, &l, &c[0]);
	for (int i = 1; i <= 3; i++) { /* peer 0: 3 calls of 10 bytes */
		c[i].caller = 0;
		assert_int_equal(rxp__pool_push_call(&p, &c[i], 10, &hit), 0);
	}
	c[4].caller = 0;
	assert_int_equal(rxp__pool_push_call(&p, &c[4], 0, &hit), -RXP_E_LIMIT);
	assert_int_equal(hit, RXP__POOL_PER_PEER);
	/* peer 1: 91 bytes pass its 100 with the 10 it has */
	c[5].caller = 1;
	assert_int_equal(rxp__pool_push_call(&p, &c[5], 10, &hit), 0);
	c[6].caller = 1;
	assert_int_equal(rxp__pool_push_call(&p, &c[6], 91, &hit),
			 -RXP_E_LIMIT);
	assert_int_equal(hit, RXP__POOL_BYTES_PER_PEER);
	/* 40 queued: 90 more is in peer 1's budget but passes 120 in all */
	c[7].caller = 1;
	assert_int_equal(rxp__pool_push_call(&p, &c[7], 90, &hit),
			 -RXP_E_LIMIT);
	assert_int_equal(hit, RXP__POOL_BYTES_MAX);
	c[8].caller = 1;
	assert_int_equal(rxp__pool_push_call(&p, &c[8], 80, &hit), 0);
	rxp__pool_queued(&p, &n, &b);
	assert_int_equal(n, 5);
	assert_int_equal(b, 120);
	/* 5 queued in all: peer 2 has none, the total is full */
	c[9].caller = 2;
	assert_int_equal(rxp__pool_push_call(&p, &c[9], 0, &hit), -RXP_E_LIMIT);
	assert_int_equal(hit, RXP__POOL_MAX);
	c[10].caller = 3; /* not a peer */
	assert_int_equal(rxp__pool_push_call(&p, &c[10], 0, &hit), -EINVAL);
	assert_string_equal(rxp__pool_limit_var(RXP__POOL_BYTES_MAX),
			    "RXP_POOL_QUEUE_BYTES_MAX");
	/* what a thread takes is no longer charged */
	atomic_store(&gate, 1);
	rxp__pool_stop(&p);
	assert_int_equal(atomic_load(&nrun), 6);
	rxp__pool_queued(&p, &n, &b); /* stopped: nothing */
	assert_int_equal(n + b, 0);
}

/* One caller's backlog does not delay another's call: callers take
 * turns, so peer 1's call runs right after peer 0's first. */
static void test_pool_serves_callers_in_turn(void **state)
{
	static struct rxp_call c[8];
	enum rxp__pool_limit hit;
	struct rxp__pool p;
	uint64_t n, b;

	memset(c, 0, sizeof(c));
	pool_held(&p, &big, &c[0]);
	for (int i = 1; i <= 5; i++) {
		c[i].caller = 0;
		assert_int_equal(rxp__pool_push_call(&p, &c[i], 1000, &hit), 0);
	}
	c[6].caller = 1;
	assert_int_equal(rxp__pool_push_call(&p, &c[6], 1, &hit), 0);
	rxp__pool_queued(&p, &n, &b);
	assert_int_equal(n, 6);
	assert_int_equal(b, 5001);
	atomic_store(&gate, 1);
	rxp__pool_stop(&p);
	assert_int_equal(atomic_load(&nrun), 7);
	/* 2 (the held one), 0, 1, 0, 0, 0, 0; FIFO would run 1 last */
	assert_int_equal(run_order[0], 2);
	assert_int_equal(run_order[1], 0);
	assert_int_equal(run_order[2], 1);
	for (int i = 3; i < 7; i++)
		assert_int_equal(run_order[i], 0);
}

static int cb_calls;

static void cb(struct rxp_future *f, void *user)
{
	cb_calls++;
	*(int *)user = rxp_future_status(f);
}

static void test_future_fulfilled_once_with_callbacks(void **state)
{
	struct rxp_future *f = rxp__future_new(NULL, RXP__FUT_MSG);
	int seen = 1;

	assert_non_null(f);
	assert_false(rxp_future_done(f));
	assert_int_equal(rxp_future_status(f), -EAGAIN);
	assert_int_equal(rxp_future_wait_for(f, 20), -ETIMEDOUT);
	cb_calls = 0;
	for (int i = 0; i < RXP_FUTURE_MAX_CALLBACKS; i++)
		assert_int_equal(rxp_future_then(f, cb, &seen), 0);
	assert_int_equal(rxp_future_then(f, cb, &seen), -EBUSY);
	rxp__future_set_error(f, "boom");
	/* no agent: callbacks run on the fulfilling thread */
	rxp__future_fulfil(f, -ECONNRESET);
	assert_int_equal(cb_calls, RXP_FUTURE_MAX_CALLBACKS);
	assert_int_equal(seen, -ECONNRESET);
	assert_true(rxp_future_done(f));
	assert_int_equal(rxp_future_wait(f), -ECONNRESET);
	assert_string_equal(rxp_future_error(f), "boom");
	assert_null(rxp_future_value(f));
	assert_int_equal(rxp_future_nstorages(f), 0);
	assert_null(rxp_future_storage(f, 0));
	rxp_future_release(f);
}

static void test_future_alloc_failure(void **state)
{
	struct rxp_future *f;

	/* drain this thread's cache so the next one must be allocated */
	struct rxp_future *keep[80];

	for (int i = 0; i < 80; i++)
		keep[i] = rxp__future_new(NULL, RXP__FUT_MSG);
	rxp__alloc_fail_after(0);
	f = rxp__future_new(NULL, RXP__FUT_MSG);
	rxp__alloc_fail_after(-1);
	assert_null(f);
	for (int i = 0; i < 80; i++) {
		rxp__future_fulfil(keep[i], 0);
		rxp_future_release(keep[i]);
	}
}

static int released;

static void on_release(void *ptr, void *user)
{
	released++;
	assert_ptr_equal(ptr, user);
}

static void test_storage_wrap_releases_at_last_ref(void **state)
{
	char mem[16];
	struct rxp_storage *s =
		rxp_storage_wrap(mem, sizeof(mem), on_release, mem);
	struct rxp_storage *a;

	released = 0;
	assert_non_null(s);
	assert_ptr_equal(rxp_storage_data(s), mem);
	assert_int_equal(rxp_storage_size(s), 16);
	rxp_storage_retain(s);
	rxp_storage_release(s);
	assert_int_equal(released, 0);
	rxp_storage_release(s);
	assert_int_equal(released, 1);
	assert_null(rxp_storage_wrap(NULL, 5, NULL, NULL));
	a = rxp_storage_alloc(100);
	assert_non_null(a);
	assert_int_equal((uintptr_t)rxp_storage_data(a) % 64, 0);
	rxp_storage_release(a);
	rxp_storage_release(NULL);
	rxp__alloc_fail_after(0);
	assert_null(rxp_storage_alloc(1));
	rxp__alloc_fail_after(-1);
}

static void test_strerror_names_every_code(void **state)
{
	assert_string_equal(rxp_strerror(0), "success");
	assert_non_null(strstr(rxp_strerror(-RXP_E_PEER_LOST), "peer lost"));
	assert_non_null(strstr(rxp_strerror(-ETIMEDOUT), "timed out"));
	assert_string_equal(rxp_strerror(-999999), "unknown error");
	for (int e = RXP_ERRNO_BASE; e < RXP_E__LAST; e++)
		assert_true(strlen(rxp_strerror(-e)) > 5);
	assert_string_equal(rxp_version(), RXP_VERSION_STRING);
}

/* RRef control payloads are little-endian on the wire whatever the host
 * (docs/DESIGN.md "RRefs"): {owner u32, 0, {creator u32, 0, local u64},
 * {creator, 0, local}}, and a reserved word that is not 0 is refused. */
static void test_rref_desc_is_little_endian(void **state)
{
	static const uint8_t want[DESC_BYTES] = {
		0x03, 0,    0,	  0,	0,    0,    0,	  0,	/* owner 3 */
		0x01, 0,    0,	  0,	0,    0,    0,	  0,	/* rref {1, */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* local} */
		0x02, 0x01, 0,	  0,	0,    0,    0,	  0,	/* fork {258, */
		0xff, 0,    0,	  0,	0,    0,    0,	  0x80, /* local} */
	};
	struct rxp_rref_id r = {.creator = 1, .local = 0x0102030405060708ull};
	struct rxp_rref_id f = {.creator = 258, .local = 0x80000000000000ffull};
	struct rxp_rref_id r2, f2;
	uint8_t b[DESC_BYTES];
	uint32_t owner;

	put_desc(b, 3, &r, &f);
	assert_memory_equal(b, want, sizeof(want));
	assert_int_equal(get_desc(want, &owner, &r2, &f2), 0);
	assert_int_equal(owner, 3);
	assert_true(id_eq(&r, &r2) && id_eq(&f, &f2));
	b[4] = 1; /* the desc's reserved word */
	assert_int_equal(get_desc(b, &owner, &r2, &f2), -RXP_E_PROTO);
	b[4] = 0;
	b[8 + 5] = 1; /* the rref id's */
	assert_int_equal(get_desc(b, &owner, &r2, &f2), -RXP_E_PROTO);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots_add_get_del_and_reuse),
		cmocka_unit_test(test_slot_keys_unpredictable),
		cmocka_unit_test(test_slots_grow_fails_cleanly_on_enomem),
		cmocka_unit_test(test_heap_pops_in_deadline_order),
		cmocka_unit_test(test_pool_runs_every_task_before_stop),
		cmocka_unit_test(test_pool_refuses_after_stop),
		cmocka_unit_test(test_pool_start_fails_on_enomem),
		cmocka_unit_test(test_pool_budget_refuses_past_each_limit),
		cmocka_unit_test(test_pool_serves_callers_in_turn),
		cmocka_unit_test(test_future_fulfilled_once_with_callbacks),
		cmocka_unit_test(test_future_alloc_failure),
		cmocka_unit_test(test_storage_wrap_releases_at_last_ref),
		cmocka_unit_test(test_strerror_names_every_code),
		cmocka_unit_test(test_rref_desc_is_little_endian),
	};

	return cmocka_run_group_tests_name("agent_parts", tests, NULL, NULL);
}
