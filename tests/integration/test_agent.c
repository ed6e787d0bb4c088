/* SPDX-License-Identifier: MIT */
/*
 * Agent conformance: two and four worker processes over the transport
 * chosen by the environment (tcp, tcp with RXP_NO_URING=1, verbs in the
 * rxe guest). Every test starts its own world on a fresh port.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <rxp/rxp.h>
#include "codec.h"
#include "skip.h"
#include "world.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup2(void **state)
{
	static struct world w;
	int ret = world_start(&w, 2);

	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	*state = &w;
	return 0;
}

/* setup2 with rank 0's default call timeout at 100 ms (scaled) */
static int setup2_short_default(void **state)
{
	int ret;

	world_rank0_rpc_timeout_ms = 100 * world_time_scale();
	ret = setup2(state);
	world_rank0_rpc_timeout_ms = 0;
	return ret;
}

static int teardown_join(void **state)
{
	struct world *w = *state;

	assert_int_equal(world_stop(w, true), 0);
	return 0;
}

static int teardown_nojoin(void **state)
{
	world_stop(*state, false);
	return 0;
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 131 + seed + (i >> 12));
}

/* ------------------------------------------------------------ calls */

static void test_add_returns_sum(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(40), rxp_v_int(2)};
	struct rxp_future *f;

	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), 0);
	assert_non_null(rxp_future_value(f));
	assert_int_equal(rxp_future_value(f)->kind, RXP_V_INT);
	assert_int_equal(rxp_future_value(f)->u.i, 42);
	rxp_future_release(f);
}

static void echo_tensor(struct world *w, size_t n)
{
	unsigned char *buf = malloc(n ? n : 1);
	int64_t shape[1] = {(int64_t)n};
	struct rxp_value t = rxp_v_tensor(RXP_DT_U8, 1, shape, NULL, 0, 0);
	struct rxp_iov iov = {.base = buf, .len = n};
	const struct rxp_value *v;
	struct rxp_storage *s;
	struct rxp_future *f;

	assert_non_null(buf);
	fill_pattern(buf, n, (unsigned)n);
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.echo", &t, 1, &iov, 1, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), 0);
	v = rxp_future_value(f);
	assert_non_null(v);
	assert_int_equal(v->kind, RXP_V_TUPLE);
	assert_int_equal(v->u.list.n, 1);
	assert_int_equal(v->u.list.items[0].kind, RXP_V_TENSOR);
	assert_int_equal(v->u.list.items[0].u.tensor.shape[0], (int64_t)n);
	assert_int_equal(rxp_future_nstorages(f), 1);
	s = rxp_future_storage(f, 0);
	assert_int_equal(rxp_storage_size(s), n);
	/* the storage lives in rxp's receive buffer, not ours */
	assert_true(n == 0 || rxp_storage_data(s) != buf);
	assert_memory_equal(rxp_storage_data(s), buf, n ? n : 0);
	/* a retained storage outlives the future */
	rxp_storage_retain(s);
	rxp_future_release(f);
	assert_int_equal(rxp_storage_size(s), n);
	if (n)
		assert_int_equal(((unsigned char *)rxp_storage_data(s))[n - 1],
				 buf[n - 1]);
	rxp_storage_release(s);
	free(buf);
}

static void test_echo_tensors_byte_for_byte(void **state)
{
	static const size_t sizes[] = {0, 1, 4096, 1 << 20, 64u << 20};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		echo_tensor(*state, sizes[i]);
}

static void test_returned_tensor_from_callee(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(100000), rxp_v_int(0x5a)};
	struct rxp_future *f;
	const unsigned char *p;

	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.fill", args, 2, NULL, 0, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), 0);
	assert_int_equal(rxp_future_nstorages(f), 1);
	p = rxp_storage_data(rxp_future_storage(f, 0));
	assert_int_equal(rxp_storage_size(rxp_future_storage(f, 0)), 100000);
	for (size_t i = 0; i < 100000; i += 997)
		assert_int_equal(p[i], 0x5a);
	rxp_future_release(f);
}

static void test_nested_values_round_trip(void **state)
{
	struct world *w = *state;
	struct rxp_value inner[3] = {rxp_v_str("x"), rxp_v_double(2.5),
				     rxp_v_none()};
	struct rxp_dict_entry d[2] = {
		{.key = "k", .key_len = 1, .value = rxp_v_list(inner, 3)},
		{.key = "b", .key_len = 1, .value = rxp_v_bool(true)}};
	struct rxp_value arg = rxp_v_dict(d, 2);
	const struct rxp_value *v;
	struct rxp_future *f;

	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.echo", &arg, 1, NULL, 0, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), 0);
	v = rxp_future_value(f);
	assert_int_equal(v->kind, RXP_V_TUPLE);
	assert_true(rxp_value_equal(&v->u.list.items[0], &arg));
	rxp_future_release(f);
}

static void test_thousand_calls_outstanding(void **state)
{
	struct world *w = *state;
	enum { N = 1000 };
	static struct rxp_future *fs[N];

	for (int i = 0; i < N; i++) {
		struct rxp_value args[2] = {rxp_v_int(i), rxp_v_int(1)};

		assert_int_equal(rxp_rpc_async(w->a, 1, "t.add", args, 2, NULL,
					       0, NULL, &fs[i]),
				 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(rxp_future_wait(fs[i]), 0);
		assert_int_equal(rxp_future_value(fs[i])->u.i, i + 1);
		rxp_future_release(fs[i]);
	}
}

static void test_timeout_fires_near_deadline(void **state)
{
	struct world *w = *state;
	struct rxp_value arg = rxp_v_int(1500);
	struct rxp_call_opts o = {.timeout_ms = 300};
	struct rxp_future *f;
	int64_t t0 = now_ms(), dt, late;

	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.sleep_ms", &arg, 1, NULL, 0, &o, &f),
		0);
	assert_int_equal(rxp_future_wait(f), -ETIMEDOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 300);
	/* within 10% + 50 ms of the deadline (scaled in the slow guest) */
	if (dt > 300 + (30 + 50) * world_time_scale())
		fail_msg("a 300 ms timeout fired after %lld ms", (long long)dt);
	assert_non_null(strstr(rxp_future_error(f), "timed out"));
	rxp_future_release(f);
	/* the response arrives later: dropped and counted */
	for (int i = 0; i < 400; i++) {
		int64_t v = 0;

		assert_int_equal(
			rxp_agent_metric(w->a, "calls.late_responses", &late),
			0);
		if (late >= 1)
			break;
		(void)v;
		usleep(10000);
	}
	assert_true(late >= 1);
}

/* The caller's default timeout is 100 ms here (setup2_short_default): a
 * call that takes longer fails with the default, which a zero-initialised
 * rxp_call_opts means, and succeeds with RXP_TIMEOUT_NEVER, which must not
 * fall back to the default. */
static void test_timeout_default_and_never(void **state)
{
	struct world *w = *state;
	struct rxp_value arg = rxp_v_int(400 * world_time_scale());
	struct rxp_call_opts o = {0};
	struct rxp_future *f;

	/* the default really is shorter than the call */
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.sleep_ms", &arg, 1, NULL, 0, &o, &f),
		0);
	assert_int_equal(rxp_future_status(f), -ETIMEDOUT);
	rxp_future_release(f);
	o.timeout_ms = RXP_TIMEOUT_NEVER;
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.sleep_ms", &arg, 1, NULL, 0, &o, &f),
		0);
	assert_int_equal(rxp_future_status(f), 0);
	assert_int_equal(rxp_future_value(f)->u.i, 400 * world_time_scale());
	rxp_future_release(f);
}

static void test_unknown_function_is_future_error(void **state)
{
	struct world *w = *state;
	struct rxp_future *f;

	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "no.such", NULL, 0, NULL, 0, NULL, &f),
		0);
	assert_int_equal(rxp_future_status(f), -RXP_E_NO_FUNCTION);
	assert_non_null(strstr(rxp_future_error(f), "no.such"));
	assert_non_null(strstr(rxp_future_error(f), "worker1"));
	assert_null(rxp_future_value(f));
	rxp_future_release(f);
}

static void test_callee_error_text_reaches_caller(void **state)
{
	struct world *w = *state;
	struct rxp_value arg = rxp_v_str("the sky is falling");
	struct rxp_future *f;

	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.fail", &arg, 1, NULL, 0, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), -RXP_E_REMOTE);
	assert_string_equal(rxp_future_error(f), "the sky is falling");
	rxp_future_release(f);
}

static void test_async_execution_function(void **state)
{
	struct world *w = *state;
	struct rxp_value arg = rxp_v_int(7);
	struct rxp_call_opts o = {.timeout_ms = RXP_TIMEOUT_DEFAULT,
				  .flags = RXP_CALL_ASYNC_EXEC};
	struct rxp_future *f;

	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.async_echo", &arg, 1, NULL, 0, &o, &f),
		0);
	assert_int_equal(rxp_future_status(f), 0);
	assert_int_equal(rxp_future_value(f)->u.list.items[0].u.i, 7);
	rxp_future_release(f);
	/* the flag must match the function */
	assert_int_equal(rxp_rpc_sync(w->a, 1, "t.async_echo", &arg, 1, NULL, 0,
				      NULL, &f),
			 0);
	assert_int_equal(rxp_future_status(f), -RXP_E_ASYNC_MISMATCH);
	rxp_future_release(f);
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.add", &arg, 1, NULL, 0, &o, &f), 0);
	assert_int_equal(rxp_future_status(f), -RXP_E_ASYNC_MISMATCH);
	rxp_future_release(f);
}

struct then_ctx {
	int calls;
	int status;
};

static void then_cb(struct rxp_future *f, void *user)
{
	struct then_ctx *c = user;

	c->status = rxp_future_status(f);
	__atomic_add_fetch(&c->calls, 1, __ATOMIC_SEQ_CST);
}

static void test_then_callbacks_run_once(void **state)
{
	struct world *w = *state;
	struct rxp_value arg = rxp_v_int(50);
	struct then_ctx c = {0};
	struct rxp_future *f;

	assert_int_equal(rxp_rpc_async(w->a, 1, "t.sleep_ms", &arg, 1, NULL, 0,
				       NULL, &f),
			 0);
	assert_int_equal(rxp_future_then(f, then_cb, &c), 0);
	assert_int_equal(rxp_future_wait(f), 0);
	for (int i = 0; i < 500 && !__atomic_load_n(&c.calls, __ATOMIC_SEQ_CST);
	     i++)
		usleep(1000);
	assert_int_equal(c.calls, 1);
	/* added after completion: runs at once on this thread */
	assert_int_equal(rxp_future_then(f, then_cb, &c), 0);
	assert_int_equal(c.calls, 2);
	rxp_future_release(f);
}

static void test_nested_call_through_callee(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_str("worker0"),
				    rxp_v_str("t.whoami")};
	struct rxp_future *f;

	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.call", args, 2, NULL, 0, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), 0);
	assert_string_equal(rxp_future_value(f)->u.str.ptr, "worker0");
	rxp_future_release(f);
}

static void test_bad_arguments_fail_without_future(void **state)
{
	struct world *w = *state;
	struct rxp_future *f = NULL;
	struct rxp_value bad =
		rxp_v_tensor(RXP_DT_F32, 1, (int64_t[]){4}, NULL, 3, 0);
	struct rxp_call_opts o = {.timeout_ms = -5};

	assert_int_equal(
		rxp_rpc_async(w->a, 1000, "t.add", NULL, 0, NULL, 0, NULL, &f),
		-RXP_E_NO_WORKER);
	assert_int_equal(
		rxp_rpc_async(w->a, -1, "t.add", NULL, 0, NULL, 0, NULL, &f),
		-RXP_E_NO_WORKER);
	assert_int_equal(
		rxp_rpc_async(w->a, 1, NULL, NULL, 0, NULL, 0, NULL, &f),
		-EINVAL);
	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.add", NULL, 2, NULL, 0, NULL, &f),
		-EINVAL);
	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.add", NULL, 0, NULL, 0, &o, &f),
		-EINVAL);
	/* tensor refers to storage 3 of 0 */
	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.echo", &bad, 1, NULL, 0, NULL, &f),
		-EINVAL);
	assert_null(f);
	assert_int_equal(rxp_agent_register(w->a, "t.add", (rxp_fn)1, 0, NULL),
			 -EEXIST);
}

/* A return value that cannot be encoded fails the call, once, and the call
 * is consumed all the same: the worker goes on serving. */
static void test_failed_return_consumes_the_call(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(1), rxp_v_int(1)};
	struct rxp_call_opts o = {.timeout_ms = 5000 * world_time_scale()};
	struct rxp_future *f;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(rxp_rpc_sync(w->a, 1, "t.bad_return", NULL, 0,
					      NULL, 0, &o, &f),
				 0);
		/* the encoder's error, with what went wrong */
		assert_int_equal(rxp_future_status(f), -EINVAL);
		assert_non_null(
			strstr(rxp_future_error(f), "could not be encoded"));
		rxp_future_release(f);
	}
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), 0);
	rxp_future_release(f);
}

/* rxp_call_opts by the ABI rules: an older caller's smaller struct is read
 * only up to its size (the autograd pointer past it is never touched), a
 * newer caller's settings this library lacks fail the call. */
static void test_call_opts_are_read_up_to_their_size(void **state)
{
	struct world *w = *state;
	struct rxp_value args[2] = {rxp_v_int(2), rxp_v_int(3)};
	struct rxp_call_opts older = {
		.size = offsetof(struct rxp_call_opts, flags) +
			sizeof(unsigned),
		.timeout_ms = RXP_TIMEOUT_NEVER,
		.autograd = (const struct rxp_autograd_meta *)1, /* garbage */
	};
	struct {
		struct rxp_call_opts o;
		uint64_t later;
	} newer = {.o = {.size = sizeof(newer)}, .later = 1};
	struct rxp_future *f = NULL;

	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.add", args, 2, NULL, 0, &older, &f),
		0);
	assert_int_equal(rxp_future_status(f), 0);
	assert_int_equal(rxp_future_value(f)->u.i, 5);
	rxp_future_release(f);
	f = NULL;
	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.add", args, 2, NULL, 0, &newer.o, &f),
		-E2BIG);
	assert_null(f);
	newer.later = 0; /* unknown but unset: nothing lost, the call runs */
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.add", args, 2, NULL, 0, &newer.o, &f),
		0);
	assert_int_equal(rxp_future_status(f), 0);
	rxp_future_release(f);
}

/* The traffic went over the transport the environment asked for (in the
 * rxe guest this proves verbs carried it, not a silent fallback). */
static void test_transport_is_the_one_asked_for(void **state)
{
	struct world *w = *state;
	const char *want = getenv("RXP_TRANSPORT");
	const char *nouring = getenv("RXP_NO_URING");
	unsigned char big[100000];
	struct rxp_iov iov = {big, sizeof(big)};
	int64_t shape[1] = {sizeof(big)};
	struct rxp_value t = rxp_v_tensor(RXP_DT_U8, 1, shape, NULL, 0, 0);
	struct rxp_future *f;
	int64_t sent = 0, msgs = 0;

	if (want && !strcmp(want, "verbs"))
		assert_string_equal(rxp_agent_transport(w->a), "verbs");
	else if (want && !strcmp(want, "tcp"))
		assert_string_equal(
			rxp_agent_transport(w->a),
			nouring && !strcmp(nouring, "1") ? "tcp-poll" : "tcp");
	else if (want && !strcmp(want, "shm"))
		assert_string_equal(rxp_agent_transport(w->a), "shm");
	else /* auto: the network backend with shm beside it */
		assert_non_null(strstr(rxp_agent_transport(w->a), "+shm"));
	memset(big, 7, sizeof(big));
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.echo", &t, 1, &iov, 1, NULL, &f), 0);
	assert_int_equal(rxp_future_status(f), 0);
	rxp_future_release(f);
	assert_int_equal(rxp_agent_metric(w->a, "transport.bytes_sent", &sent),
			 0);
	assert_int_equal(rxp_agent_metric(w->a, "transport.msgs_sent", &msgs),
			 0);
	assert_true(msgs >= 1);
	assert_true(sent >= (int64_t)sizeof(big));
	printf("  transport %s: %lld messages, %lld bytes sent\n",
	       rxp_agent_transport(w->a), (long long)msgs, (long long)sent);
}

static void test_metrics_have_pytorch_keys(void **state)
{
	struct world *w = *state;
	static const char *const keys[] = {
		"agent.client_active_calls", "agent.server_active_calls",
		"agent.server_active_async_calls", "agent.thread_pool_size",
		"agent.num_idle_threads"};
	char buf[4096];
	int64_t v;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_int_equal(rxp_agent_metric(w->a, keys[i], &v), 0);
	assert_int_equal(rxp_agent_metric(w->a, "agent.thread_pool_size", &v),
			 0);
	assert_int_equal(v, 4);
	assert_int_equal(rxp_agent_metric(w->a, "no.such", &v), -ENOENT);
	assert_true(rxp_agent_metrics_dump(w->a, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "peer.worker1.calls"));
}

/* ------------------------------------------------------ message level */

static void test_message_level_round_trip(void **state)
{
	struct world *w = *state;
	char payload[] = "raw bytes";
	unsigned char st[3000];
	struct rxp_iov iov = {.base = st, .len = sizeof(st)};
	struct rxp_future *f;
	const void *data;
	size_t len;

	fill_pattern(st, sizeof(st), 3);
	/* worker1 has no handler: a clean error */
	assert_int_equal(rxp_msg_send(w->a, 1, RXP_MSG_USER, payload,
				      sizeof(payload), &iov, 1,
				      RXP_TIMEOUT_DEFAULT, &f),
			 0);
	assert_int_equal(rxp_future_wait(f), -RXP_E_NO_FUNCTION);
	rxp_future_release(f);
	assert_int_equal(rxp_msg_send(w->a, 1, 3, payload, sizeof(payload),
				      NULL, 0, RXP_TIMEOUT_DEFAULT, &f),
			 -EINVAL);
	assert_int_equal(rxp_msg_send(w->a, 9, RXP_MSG_USER, payload,
				      sizeof(payload), NULL, 0,
				      RXP_TIMEOUT_DEFAULT, &f),
			 -RXP_E_NO_WORKER);
	(void)data;
	(void)len;
}

static void handler_echo(struct rxp_request *r, void *user)
{
	const void *p;
	size_t n;
	struct rxp_storage *st[8];
	uint32_t ns = rxp_request_nstorages(r);

	rxp_request_payload(r, &p, &n);
	for (uint32_t i = 0; i < ns && i < 8; i++)
		st[i] = rxp_request_storage(r, i);
	rxp_request_respond(r, p, n, st, ns < 8 ? ns : 8);
}

static void test_message_level_self_loop(void **state)
{
	/* rank 0 sends to itself through the transport */
	struct world *w = *state;
	char payload[] = "to myself";
	unsigned char st[5000];
	struct rxp_iov iov = {.base = st, .len = sizeof(st)};
	struct rxp_future *f;
	const void *data;
	size_t len;

	fill_pattern(st, sizeof(st), 9);
	assert_int_equal(rxp_agent_set_handler(w->a, handler_echo, NULL), 0);
	assert_int_equal(rxp_msg_send(w->a, 0, RXP_MSG_USER + 1, payload,
				      sizeof(payload), &iov, 1,
				      RXP_TIMEOUT_DEFAULT, &f),
			 0);
	assert_int_equal(rxp_future_wait(f), 0);
	assert_int_equal(rxp_future_payload(f, &data, &len), 0);
	assert_int_equal(len, sizeof(payload));
	assert_memory_equal(data, payload, len);
	assert_int_equal(rxp_future_nstorages(f), 1);
	assert_memory_equal(rxp_storage_data(rxp_future_storage(f, 0)), st,
			    sizeof(st));
	rxp_future_release(f);
}

/* ---------------------------------------------------------- failures */

static void test_killed_peer_fails_pending_calls_fast(void **state)
{
	struct world *w = *state;
	enum { N = 20 };
	struct rxp_future *fs[N];
	struct rxp_call_opts o = {.timeout_ms = RXP_TIMEOUT_NEVER,
				  .flags = RXP_CALL_ASYNC_EXEC};
	struct rxp_value arg = rxp_v_int(1);
	struct rxp_future *f;
	int64_t t0;

	/* make sure the connection is up first */
	assert_int_equal(
		rxp_rpc_sync(w->a, 1, "t.add",
			     (struct rxp_value[]){rxp_v_int(1), rxp_v_int(2)},
			     2, NULL, 0, NULL, &f),
		0);
	assert_int_equal(rxp_future_status(f), 0);
	rxp_future_release(f);
	for (int i = 0; i < N; i++)
		assert_int_equal(rxp_rpc_async(w->a, 1, "t.hang", &arg, 1, NULL,
					       0, &o, &fs[i]),
				 0);
	usleep(100000);
	t0 = now_ms();
	kill(w->pids[1], SIGKILL);
	for (int i = 0; i < N; i++) {
		assert_int_equal(
			rxp_future_wait_for(fs[i], 5000 * world_time_scale()),
			-RXP_E_PEER_LOST);
		assert_non_null(strstr(rxp_future_error(fs[i]), "peer lost"));
		rxp_future_release(fs[i]);
	}
	assert_true(now_ms() - t0 < 1000 * world_time_scale());
	/* later calls fail too, promptly, with a clear status */
	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.add", &arg, 1, NULL, 0, NULL, &f), 0);
	assert_int_not_equal(rxp_future_wait_for(f, 5000), 0);
	assert_int_not_equal(rxp_future_status(f), -ETIMEDOUT);
	rxp_future_release(f);
}

static void test_shutdown_with_calls_in_flight_loses_none(void **state)
{
	struct world *w = *state;
	enum { N = 100 };
	struct rxp_future *fs[N];
	struct rxp_call_opts o = {.timeout_ms = RXP_TIMEOUT_NEVER,
				  .flags = RXP_CALL_ASYNC_EXEC};
	struct rxp_value arg = rxp_v_int(1);
	int64_t t0;

	for (int i = 0; i < N; i++)
		assert_int_equal(rxp_rpc_async(w->a, 1, "t.hang", &arg, 1, NULL,
					       0, &o, &fs[i]),
				 0);
	t0 = now_ms();
	rxp_agent_shutdown(w->a);
	w->a = NULL;
	assert_true(now_ms() - t0 < 5000 * world_time_scale());
	for (int i = 0; i < N; i++) {
		assert_true(rxp_future_done(fs[i]));
		assert_int_equal(rxp_future_status(fs[i]), -ECANCELED);
		rxp_future_release(fs[i]);
	}
}

/* ------------------------------------------------------ four workers */

static void test_four_workers_all_to_all(void **state)
{
	struct world w;
	int ret = world_start(&w, 4);
	struct rxp_future *f;

	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	for (int dst = 0; dst < 4; dst++) {
		char name[24];

		snprintf(name, sizeof(name), "worker%d", dst);
		for (int via = 1; via < 4; via++) {
			struct rxp_value args[2] = {rxp_v_str(name),
						    rxp_v_str("t.whoami")};

			assert_int_equal(rxp_rpc_sync(w.a, via, "t.call", args,
						      2, NULL, 0, NULL, &f),
					 0);
			assert_int_equal(rxp_future_status(f), 0);
			assert_string_equal(rxp_future_value(f)->u.str.ptr,
					    name);
			rxp_future_release(f);
		}
	}
	assert_int_equal(world_stop(&w, true), 0);
}

static void test_rendezvous_rejects_bad_world(void **state)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	char name[32];

	world_attr(&attr, 0, 2, world_free_port(), name, sizeof(name));
	attr.init_timeout_ms = 300; /* nobody else comes */
	assert_int_equal(rxp_agent_create(&attr, &a), -ETIMEDOUT);
	assert_null(a);
	attr.rank = 5;
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
	attr.rank = 0;
	attr.name = "";
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
	attr.name = name;
	attr.transport = "carrier-pigeon";
	attr.world_size = 1;
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
}

/* What launchers set ($RANK, $WORLD_SIZE, $MASTER_PORT) fills an attr that
 * leaves them unset, and a bad value fails create instead of being
 * replaced by a default. */
static void test_launcher_environment(void **state)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	struct rxp_worker_info me;
	char name[32], port[16];

	if (!world_transport_usable())
		skip();
	world_attr(&attr, 0, 1, 0, name, sizeof(name));
	attr.rank = -1;
	attr.world_size = 0;
	attr.master_port = 0;
	snprintf(port, sizeof(port), "%d", world_free_port());
	setenv("MASTER_PORT", port, 1);
	setenv("RANK", "0", 1);
	setenv("WORLD_SIZE", "1", 1);
	assert_int_equal(rxp_agent_create(&attr, &a), 0);
	assert_int_equal(rxp_agent_worker_count(a), 1);
	assert_int_equal(rxp_agent_self(a, &me), 0);
	assert_int_equal(me.id, 0);
	rxp_agent_shutdown(a);
	a = NULL;

	static const char *const bad[][2] = {
		{"MASTER_PORT", "abc"}, {"MASTER_PORT", "70000"},
		{"MASTER_PORT", "0"},	{"RANK", "x"},
		{"RANK", "1"}, /* not below WORLD_SIZE=1 */
		{"WORLD_SIZE", "-2"},	{"WORLD_SIZE", "1k"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("MASTER_PORT", port, 1);
		setenv("RANK", "0", 1);
		setenv("WORLD_SIZE", "1", 1);
		setenv(bad[i][0], bad[i][1], 1);
		assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
		assert_null(a);
	}
	unsetenv("MASTER_PORT");
	unsetenv("RANK");
	unsetenv("WORLD_SIZE");
}

static void test_world_of_one_calls_itself(void **state)
{
	struct world w;
	struct rxp_value args[2] = {rxp_v_int(1), rxp_v_int(1)};
	struct rxp_future *f;
	int ret = world_start(&w, 1);

	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	assert_int_equal(
		rxp_rpc_sync(w.a, 0, "t.add", args, 2, NULL, 0, NULL, &f), 0);
	assert_int_equal(rxp_future_value(f)->u.i, 2);
	rxp_future_release(f);
	assert_int_equal(world_stop(&w, true), 0);
}

/* A handler given in the attr is there before any peer can send: the
 * first message after rendezvous is served, never "no handler". */
static void test_handler_from_attr_serves_at_once(void **state)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	struct rxp_future *f;
	char name[32], payload[] = "first";
	const void *data;
	size_t len;

	if (!world_transport_usable())
		skip();
	world_attr(&attr, 0, 1, world_free_port(), name, sizeof(name));
	attr.handler = handler_echo;
	assert_int_equal(rxp_agent_create(&attr, &a), 0);
	assert_int_equal(rxp_msg_send(a, 0, RXP_MSG_USER, payload,
				      sizeof(payload), NULL, 0,
				      RXP_TIMEOUT_DEFAULT, &f),
			 0);
	assert_int_equal(rxp_future_wait(f), 0);
	assert_int_equal(rxp_future_payload(f, &data, &len), 0);
	assert_int_equal(len, sizeof(payload));
	assert_memory_equal(data, payload, len);
	rxp_future_release(f);
	rxp_agent_shutdown(a);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_returns_sum, setup2,
						teardown_join),
		cmocka_unit_test_setup_teardown(test_echo_tensors_byte_for_byte,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(
			test_returned_tensor_from_callee, setup2,
			teardown_join),
		cmocka_unit_test_setup_teardown(test_nested_values_round_trip,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(test_thousand_calls_outstanding,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(
			test_timeout_fires_near_deadline, setup2,
			teardown_join),
		cmocka_unit_test_setup_teardown(test_timeout_default_and_never,
						setup2_short_default,
						teardown_join),
		cmocka_unit_test_setup_teardown(
			test_unknown_function_is_future_error, setup2,
			teardown_join),
		cmocka_unit_test_setup_teardown(
			test_callee_error_text_reaches_caller, setup2,
			teardown_join),
		cmocka_unit_test_setup_teardown(test_async_execution_function,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(test_then_callbacks_run_once,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(test_nested_call_through_callee,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(
			test_bad_arguments_fail_without_future, setup2,
			teardown_join),
		cmocka_unit_test_setup_teardown(
			test_call_opts_are_read_up_to_their_size, setup2,
			teardown_join),
		cmocka_unit_test_setup_teardown(
			test_failed_return_consumes_the_call, setup2,
			teardown_join),
		cmocka_unit_test_setup_teardown(
			test_transport_is_the_one_asked_for, setup2,
			teardown_join),
		cmocka_unit_test_setup_teardown(test_metrics_have_pytorch_keys,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(test_message_level_round_trip,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(test_message_level_self_loop,
						setup2, teardown_join),
		cmocka_unit_test_setup_teardown(
			test_killed_peer_fails_pending_calls_fast, setup2,
			teardown_nojoin),
		cmocka_unit_test_setup_teardown(
			test_shutdown_with_calls_in_flight_loses_none, setup2,
			teardown_nojoin),
		cmocka_unit_test(test_four_workers_all_to_all),
		cmocka_unit_test(test_rendezvous_rejects_bad_world),
		cmocka_unit_test(test_world_of_one_calls_itself),
		cmocka_unit_test(test_launcher_environment),
		cmocka_unit_test(test_handler_from_attr_serves_at_once),
	};

	world_maybe_worker(argc, argv);
	if (!world_transport_usable())
		return rxp_test_skip_code();
	return cmocka_run_group_tests_name("agent", tests, NULL, NULL);
}
