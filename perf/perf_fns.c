/* SPDX-License-Identifier: MIT */
#include "perf_fns.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int fn_add(struct rxp_call *call, void *user)
{
	const struct rxp_value *args;
	struct rxp_value ret;
	uint32_t n = 0;

	(void)user;
	args = rxp_call_args(call, &n);
	if (n != 2 || args[0].kind != RXP_V_INT || args[1].kind != RXP_V_INT)
		return rxp_call_fail(call, "bench.add(int, int)"), 0;
	ret = rxp_v_int(args[0].u.i + args[1].u.i);
	rxp_call_return(call, &ret, NULL, 0);
	return 0;
}

/* The one tensor argument of @call and its storage, or NULL after failing
 * the call with @name's signature. */
static struct rxp_storage *tensor_arg(struct rxp_call *call, const char *name,
				      const struct rxp_value **arg)
{
	struct rxp_storage *st;
	uint32_t n = 0;

	*arg = rxp_call_args(call, &n);
	if (n != 1 || (*arg)[0].kind != RXP_V_TENSOR) {
		rxp_call_fail(call, "%s(tensor)", name);
		return NULL;
	}
	st = rxp_call_storage(call, (*arg)[0].u.tensor.storage);
	if (!st)
		rxp_call_fail(call, "%s: no storage", name);
	return st;
}

static int fn_echo(struct rxp_call *call, void *user)
{
	const struct rxp_value *args;
	struct rxp_storage *st = tensor_arg(call, "bench.echo", &args);
	struct rxp_value ret;

	(void)user;
	if (!st)
		return 0;
	ret = args[0]; /* shape/strides stay valid until the call completes */
	ret.u.tensor.storage = 0;
	rxp_call_return(call, &ret, &st, 1);
	return 0;
}

static int fn_sink(struct rxp_call *call, void *user)
{
	const struct rxp_value *args;
	struct rxp_storage *st = tensor_arg(call, "bench.sink", &args);
	struct rxp_value ret;

	(void)user;
	if (!st)
		return 0;
	ret = rxp_v_int((int64_t)rxp_storage_size(st));
	rxp_call_return(call, &ret, NULL, 0);
	return 0;
}

int perf_register_fns(struct rxp_agent *a)
{
	int ret = rxp_agent_register(a, PERF_FN_ADD, fn_add, 0, NULL);

	if (!ret)
		ret = rxp_agent_register(a, PERF_FN_ECHO, fn_echo, 0, NULL);
	if (!ret)
		ret = rxp_agent_register(a, PERF_FN_SINK, fn_sink, 0, NULL);
	return ret;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int perf_wait_ready(struct rxp_agent *a, int dst, int64_t timeout_ms)
{
	struct perf_call c;
	int64_t waited = 0;
	int ret;

	perf_call_init(&c, 0, NULL);
	for (;;) {
		struct rxp_future *f = NULL;

		ret = rxp_rpc_sync(a, dst, c.fn, c.args, c.nargs, NULL, 0, NULL,
				   &f);
		if (!ret) {
			ret = rxp_future_status(f);
			rxp_future_release(f);
		}
		if (ret != -RXP_E_NO_FUNCTION && ret != -RXP_E_REMOTE)
			return ret;
		if (waited >= timeout_ms)
			return ret;
		sleep_ms(5);
		waited += 5;
	}
}

void perf_call_init(struct perf_call *c, size_t size, void *buf)
{
	memset(c, 0, sizeof(*c));
	c->size = size;
	if (!size) {
		c->fn = PERF_FN_ADD;
		c->args[0] = rxp_v_int(1);
		c->args[1] = rxp_v_int(2);
		c->nargs = 2;
		return;
	}
	c->fn = PERF_FN_ECHO;
	c->shape[0] = (int64_t)size;
	c->args[0] = rxp_v_tensor(RXP_DT_U8, 1, c->shape, NULL, 0, 0);
	c->nargs = 1;
	c->iov.base = buf;
	c->iov.len = size;
	c->niov = 1;
}

void perf_call_sink(struct perf_call *c)
{
	if (c->size)
		c->fn = PERF_FN_SINK;
}

int perf_call_issue(struct rxp_agent *a, int dst, const struct perf_call *c,
		    struct rxp_future **out)
{
	return rxp_rpc_async(a, dst, c->fn, c->args, c->nargs,
			     c->niov ? &c->iov : NULL, c->niov, NULL, out);
}

int perf_call_check(const struct perf_call *c, struct rxp_future *f, int verify,
		    const char **why)
{
	const struct rxp_value *v;
	struct rxp_storage *st;
	int ret = rxp_future_status(f);

	if (ret) {
		*why = rxp_future_error(f);
		if (!*why || !**why)
			*why = rxp_strerror(ret);
		return ret;
	}
	v = rxp_future_value(f);
	if (!strcmp(c->fn, PERF_FN_SINK)) {
		if (!v || v->kind != RXP_V_INT || v->u.i < (int64_t)c->size)
			return *why = "bench.sink returned a wrong size",
			       -EPROTO;
		return 0;
	}
	if (!c->size) {
		if (!v || v->kind != RXP_V_INT || v->u.i != 3)
			return *why = "bench.add returned a wrong value",
			       -EPROTO;
		return 0;
	}
	if (!v || v->kind != RXP_V_TENSOR || v->u.tensor.ndim != 1 ||
	    v->u.tensor.shape[0] != (int64_t)c->size)
		return *why = "bench.echo returned a wrong tensor", -EPROTO;
	st = rxp_future_storage(f, v->u.tensor.storage);
	if (!st || rxp_storage_size(st) < v->u.tensor.offset + c->size)
		return *why = "bench.echo returned a short storage", -EPROTO;
	if (verify &&
	    memcmp((const char *)rxp_storage_data(st) + v->u.tensor.offset,
		   c->iov.base, c->size))
		return *why = "bench.echo returned different bytes", -EPROTO;
	return 0;
}

int perf_serve(const char *name, int rank, const char *addr, int port,
	       const char *transport, int poll_us, int max_s)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	int ret;

	rxp_agent_attr_init(&attr);
	attr.name = name;
	attr.rank = rank;
	attr.world_size = 2;
	attr.master_addr = addr;
	attr.master_port = port;
	attr.transport = transport;
	attr.poll_us = poll_us;
	attr.init_timeout_ms = 30000;
	ret = rxp_agent_create(&attr, &a);
	if (ret) {
		fprintf(stderr, "%s: rxp_agent_create: %s\n", name,
			rxp_strerror(ret));
		return ret == -RXP_E_NO_DEVICE ? 77 : 1;
	}
	ret = perf_register_fns(a);
	if (ret) {
		fprintf(stderr, "%s: register: %s\n", name, rxp_strerror(ret));
		rxp_agent_shutdown(a);
		return 1;
	}
	printf("READY %s\n", rxp_agent_transport(a));
	fflush(stdout);
	ret = rxp_agent_join(a, (int64_t)max_s * 1000);
	if (ret)
		fprintf(stderr, "%s: rxp_agent_join: %s\n", name,
			rxp_strerror(ret));
	rxp_agent_shutdown(a);
	return ret ? 1 : 0;
}
