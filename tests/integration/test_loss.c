/* SPDX-License-Identifier: MIT */
/*
 * Calls over a lossy link (issue 12 item 9): RXP_LOSS_CALLS t.echo calls
 * (default 2,000) with one tensor of 4 KiB to 1 MiB each, 8 in flight,
 * every echoed byte checked. None may be lost (every future completes
 * with its value), doubled (the callee served each exactly once, and no
 * response arrived twice or late) or wrong (byte for byte).
 *
 * On this host it runs over loopback as a soak. ci/loss-test.sh runs it
 * in the rxe guest with netem (loss 1%, reorder 5%, delay 1 ms) on both
 * directions of the veth link, over tcp and over verbs, with 20,000.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "skip.h"
#include "world.h"

#define WINDOW 8
#define MIN_SHIFT 12 /* 4 KiB */
#define MAX_SHIFT 20 /* 1 MiB */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Call @i's tensor size: 4 KiB << k, k taken with probability ~2^-k so
 * that every size up to 1 MiB occurs but the bytes stay affordable under
 * TCG (mean about 20 KiB), and a few odd lengths. Deterministic. */
static size_t size_of(uint32_t i)
{
	uint32_t h = i * 2654435761u;
	int k = 0;

	while (k < MAX_SHIFT - MIN_SHIFT && (h & (1u << k)))
		k++;
	return ((size_t)1 << (MIN_SHIFT + k)) - (i % 3 ? 0 : i % 61);
}

static uint8_t pattern(uint32_t i, size_t off)
{
	return (uint8_t)(i * 31 + off * 7 + (off >> 9));
}

struct slot {
	struct rxp_future *f;
	uint8_t *buf;
	size_t n;
	uint32_t i;
};

static int64_t metric(struct rxp_agent *a, const char *key)
{
	int64_t v = -1;

	assert_int_equal(rxp_agent_metric(a, key, &v), 0);
	return v;
}

static int64_t remote_metric(struct world *w, const char *key)
{
	int64_t v = -1;

	assert_int_equal(world_metric_of(w, 1, key, &v), 0);
	return v;
}

static void start_call(struct world *w, struct slot *s, uint32_t i, int64_t tmo)
{
	struct rxp_call_opts o = {.timeout_ms = tmo};
	int64_t shape[1];
	struct rxp_value t;
	struct rxp_iov iov;

	s->i = i;
	s->n = size_of(i);
	for (size_t k = 0; k < s->n; k++)
		s->buf[k] = pattern(i, k);
	shape[0] = (int64_t)s->n;
	t = rxp_v_tensor(RXP_DT_U8, 1, shape, NULL, 0, 0);
	iov = (struct rxp_iov){.base = s->buf, .len = s->n};
	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.echo", &t, 1, &iov, 1, &o, &s->f), 0);
}

/* 0, or 1 after saying what was wrong */
static int check_call(struct slot *s, int64_t tmo)
{
	struct rxp_storage *st;
	const uint8_t *p;
	int bad = 0;

	rxp_future_wait_for(s->f, tmo);
	if (!rxp_future_done(s->f) || rxp_future_status(s->f)) {
		fprintf(stderr, "call %" PRIu32 " (%zu B): %s\n", s->i, s->n,
			rxp_future_done(s->f) ? rxp_future_error(s->f)
					      : "not done");
		bad = 1;
	} else if (rxp_future_nstorages(s->f) != 1 ||
		   rxp_storage_size(st = rxp_future_storage(s->f, 0)) != s->n) {
		fprintf(stderr, "call %" PRIu32 ": wrong storages\n", s->i);
		bad = 1;
	} else {
		p = rxp_storage_data(st);
		for (size_t k = 0; k < s->n && !bad; k++)
			if (p[k] != pattern(s->i, k)) {
				fprintf(stderr,
					"call %" PRIu32 ": byte %zu of %zu is "
					"0x%02x, not 0x%02x\n",
					s->i, k, s->n, p[k], pattern(s->i, k));
				bad = 1;
			}
	}
	rxp_future_release(s->f);
	s->f = NULL;
	return bad;
}

static void test_calls_over_a_lossy_link(void **state)
{
	const char *env = getenv("RXP_LOSS_CALLS");
	uint32_t n = env && *env ? (uint32_t)strtoul(env, NULL, 10) : 2000;
	int64_t tmo = 60000 * world_time_scale(), t0, dt;
	struct slot slots[WINDOW];
	struct world w;
	uint64_t bytes = 0;
	int ret, bad = 0;
	int64_t served0, rserved0;

	ret = world_start(&w, 2);
	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	for (int j = 0; j < WINDOW; j++) {
		slots[j].buf = malloc((size_t)1 << MAX_SHIFT);
		assert_non_null(slots[j].buf);
		slots[j].f = NULL;
	}
	rserved0 = remote_metric(&w, "calls.served");
	served0 = metric(w.a, "calls.sent");
	t0 = now_ms();
	for (uint32_t i = 0; i < n + WINDOW; i++) {
		struct slot *s = &slots[i % WINDOW];

		if (s->f) {
			bad += check_call(s, tmo);
			bytes += 2 * s->n;
		}
		if (i < n)
			start_call(&w, s, i, tmo);
	}
	dt = now_ms() - t0;
	printf("  %" PRIu32 " calls, %.1f MiB echoed, in %.1f s (%.2f MiB/s, "
	       "%.0f calls/s), %d bad\n",
	       n, (double)bytes / (1 << 20), (double)dt / 1000,
	       (double)bytes / (1 << 20) / ((double)dt / 1000 + 1e-9),
	       n / ((double)dt / 1000 + 1e-9), bad);
	assert_int_equal(bad, 0);
	/* nothing doubled: each request went once, no response twice */
	assert_int_equal(metric(w.a, "calls.sent") - served0, n);
	assert_int_equal(metric(w.a, "calls.failed"), 0);
	assert_int_equal(metric(w.a, "calls.late_responses"), 0);
	assert_int_equal(metric(w.a, "errors.protocol"), 0);
	/* the callee served each once (and the two t.metric calls) */
	assert_int_equal(remote_metric(&w, "calls.served") - rserved0 - 1, n);
	for (int j = 0; j < WINDOW; j++)
		free(slots[j].buf);
	assert_int_equal(world_stop(&w, true), 0);
	(void)state;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calls_over_a_lossy_link),
	};

	world_maybe_worker(argc, argv);
	if (!world_transport_usable())
		return rxp_test_skip_code();
	return cmocka_run_group_tests_name("loss", tests, NULL, NULL);
}
