/* SPDX-License-Identifier: MIT */
/*
 * Transport conformance: the same cases on every backend, chosen with
 * RXP_TEST_TRANSPORT=tcp|tcp-poll|verbs|shm (RXP_TEST_ADDR: bind
 * address; shm ignores it).
 * Two instances in this process talk over RXP_TEST_ADDR; the test drives
 * both by calling progress() in a loop with a deadline.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tp_harness.h"

struct fx {
	struct h_side a, b;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(h_open(&f->a, "A", 1, NULL), 0);
	assert_int_equal(h_open(&f->b, "B", 2, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	h_close(&f->a);
	h_close(&f->b);
	free(f);
	return 0;
}

struct count_cond {
	const int *n;
	int want;
};

static bool reached(void *arg)
{
	struct count_cond *c = arg;

	return *c->n >= c->want;
}

static bool wait_count(struct fx *f, const int *n, int want, int ms)
{
	struct count_cond c = {n, want};

	return h_pump(&f->a, &f->b, reached, &c, ms);
}

static int send1(struct rxp_conn *c, uint64_t id, const struct rxp_iov *pl,
		 uint32_t npl, const struct rxp_iov *st, uint32_t nst,
		 struct h_send *cookie)
{
	struct rxp_msg_out m = {
		.type = (uint8_t)(id % 7 + 1),
		.flags = (uint8_t)(id % 3),
		.id = id,
		.payload = pl,
		.npayload = npl,
		.storages = st,
		.nstorages = nst,
	};

	return c->tp->ops->send(c, &m, cookie);
}

static void test_connect_handshake(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *acc = NULL;
	struct rxp_conn *c = h_connect(&f->a, &f->b, &acc);

	assert_non_null(c);
	assert_true(c->outgoing);
	assert_int_equal(c->peer_id, 2);
	assert_ptr_equal(f->a.up[0].c, c);
	assert_int_equal(f->b.nup, 1);
	assert_false(f->b.up[0].outgoing);
	assert_int_equal(f->b.up[0].peer_id, 1);
	assert_int_equal(acc->peer_id, 1);
	assert_int_equal(f->a.ndown + f->b.ndown, 0);
	assert_true(f->a.tp->ops->wait_fd(f->a.tp) >= 0);
}

static void test_send_before_established(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = NULL;
	char buf[300];
	struct rxp_iov pl = {buf, sizeof(buf)};
	struct h_send s = {0};

	assert_int_equal(f->a.tp->ops->connect(f->a.tp, f->b.addr, 2, &c), 0);
	pattern_fill(buf, sizeof(buf), 42, 0);
	assert_int_equal(send1(c, 42, &pl, 1, NULL, 0, &s), 0);
	assert_int_equal(s.calls, 0); /* never from inside send() */
	assert_true(wait_count(f, &f->b.nmsgs, 1, 5000));
	assert_true(wait_count(f, &s.calls, 1, 5000));
	assert_int_equal(s.status, 0);
	assert_int_equal(f->b.msgs[0].id, 42);
	assert_int_equal(f->b.msgs[0].type, 42 % 7 + 1);
	assert_int_equal(f->b.msgs[0].flags, 0);
	assert_int_equal(f->b.msgs[0].payload_len, sizeof(buf));
	assert_true(f->b.msgs[0].ok);
}

static void test_no_storages_both_ways(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *acc, *c = h_connect(&f->a, &f->b, &acc);
	char p1[5], p2[11];
	struct rxp_iov pl[2] = {{p1, sizeof(p1)}, {p2, sizeof(p2)}};
	struct h_send s1 = {0}, s2 = {0}, s3 = {0};
	char whole[16];

	assert_non_null(c);
	pattern_fill(whole, sizeof(whole), 7, 0);
	memcpy(p1, whole, 5);
	memcpy(p2, whole + 5, 11);
	/* payload gathered from two pieces; an empty message */
	assert_int_equal(send1(c, 7, pl, 2, NULL, 0, &s1), 0);
	assert_int_equal(send1(c, 8, NULL, 0, NULL, 0, &s2), 0);
	/* and back over the accepted connection */
	assert_int_equal(send1(acc, 9, NULL, 0, NULL, 0, &s3), 0);
	assert_true(wait_count(f, &f->b.nmsgs, 2, 5000));
	assert_true(wait_count(f, &f->a.nmsgs, 1, 5000));
	assert_true(wait_count(f, &f->a.nsend_cb, 2, 5000));
	assert_true(wait_count(f, &f->b.nsend_cb, 1, 5000));
	assert_int_equal(f->b.msgs[0].id, 7);
	assert_int_equal(f->b.msgs[0].payload_len, 16);
	assert_true(f->b.msgs[0].ok);
	assert_int_equal(f->b.msgs[1].id, 8);
	assert_int_equal(f->b.msgs[1].payload_len, 0);
	assert_int_equal(f->b.msgs[1].nstorages, 0);
	assert_int_equal(f->a.msgs[0].id, 9);
	assert_ptr_equal(f->a.msgs[0].conn, c);
	assert_ptr_equal(f->b.msgs[0].conn, acc);
	assert_int_equal(s1.calls + s2.calls + s3.calls, 3);
	assert_int_equal(s1.status | s2.status | s3.status, 0);
}

static void test_storage_sizes(void **state)
{
	static const size_t sizes[] = {0, 1, 4096, 1 << 20};
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	struct rxp_iov st[4], pl;
	void *mem[4];
	char payload[100];
	struct h_send s = {0};

	assert_non_null(c);
	for (int i = 0; i < 4; i++) {
		mem[i] = malloc(sizes[i] + 1);
		assert_non_null(mem[i]);
		pattern_fill(mem[i], sizes[i], 1000, (uint32_t)i + 1);
		st[i] = (struct rxp_iov){mem[i], sizes[i]};
	}
	pattern_fill(payload, sizeof(payload), 1000, 0);
	pl = (struct rxp_iov){payload, sizeof(payload)};
	assert_int_equal(send1(c, 1000, &pl, 1, st, 4, &s), 0);
	/* the memory must stay unchanged until on_send */
	assert_true(wait_count(f, &s.calls, 1, 10000));
	/* each size alone too, with no payload */
	struct h_send one[4] = {{0}};
	for (int i = 0; i < 4; i++) {
		pattern_fill(mem[i], sizes[i], 2000 + (uint64_t)i, 1);
		assert_int_equal(send1(c, 2000 + (uint64_t)i, NULL, 0, &st[i],
				       1, &one[i]),
				 0);
		assert_true(wait_count(f, &one[i].calls, 1, 10000));
	}
	assert_true(wait_count(f, &f->b.nmsgs, 5, 10000));
	assert_int_equal(f->b.msgs[0].nstorages, 4);
	for (int i = 0; i < 5; i++)
		assert_true(f->b.msgs[i].ok);
	assert_int_equal(s.status, 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(one[i].calls, 1);
		assert_int_equal(f->b.msgs[i + 1].nstorages, 1);
		free(mem[i]);
	}
}

static void test_storage_64m(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	size_t n = 64u << 20;
	char *big = malloc(n);
	struct rxp_iov st = {big, n};
	struct h_send s = {0};

	assert_non_null(c);
	assert_non_null(big);
	pattern_fill(big, n, 64, 1);
	assert_int_equal(send1(c, 64, NULL, 0, &st, 1, &s), 0);
	assert_true(wait_count(f, &s.calls, 1, 15000));
	assert_true(wait_count(f, &f->b.nmsgs, 1, 15000));
	assert_int_equal(s.status, 0);
	assert_int_equal(f->b.msgs[0].nstorages, 1);
	assert_true(f->b.msgs[0].ok);
	assert_true(f->a.tp->bytes_sent >= n);
	assert_true(f->b.tp->bytes_received >= n);
	free(big);
}

static void test_many_in_flight(void **state)
{
	enum { N = 1000 };
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	struct h_send *s = calloc(N, sizeof(*s));
	uint8_t(*pl)[64] = malloc(N * 64);
	uint8_t(*st)[200] = malloc(N * 200);

	assert_non_null(c);
	assert_non_null(s);
	assert_non_null(pl);
	assert_non_null(st);
	for (int i = 0; i < N; i++) {
		struct rxp_iov p = {pl[i], 64}, t = {st[i], 200};

		pattern_fill(pl[i], 64, (uint64_t)i, 0);
		pattern_fill(st[i], 200, (uint64_t)i, 1);
		assert_int_equal(send1(c, (uint64_t)i, &p, 1, &t, i % 2, &s[i]),
				 0);
	}
	assert_true(wait_count(f, &f->b.nmsgs, N, 15000));
	assert_true(wait_count(f, &f->a.nsend_cb, N, 5000));
	h_spin(&f->a, &f->b, 20); /* a duplicate on_send would show now */
	assert_int_equal(f->a.nsend_cb, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(f->b.msgs[i].id, (uint64_t)i); /* in order */
		assert_int_equal(f->b.msgs[i].nstorages, (uint32_t)(i % 2));
		assert_true(f->b.msgs[i].ok);
		assert_int_equal(s[i].calls, 1);
		assert_int_equal(s[i].status, 0);
	}
	assert_int_equal(f->a.tp->msgs_sent, N);
	assert_int_equal(f->b.tp->msgs_received, N);
	free(s);
	free(pl);
	free(st);
}

static void test_large_payload(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	size_t n = 8u << 20;
	char *p = malloc(n);
	struct rxp_iov pl[3] = {{p, 1}, {p + 1, n / 2}, {p + 1 + n / 2, 0}};
	struct h_send s = {0};

	assert_non_null(c);
	pl[2].len = n - 1 - n / 2;
	pattern_fill(p, n, 5, 0);
	assert_int_equal(send1(c, 5, pl, 3, NULL, 0, &s), 0);
	assert_true(wait_count(f, &f->b.nmsgs, 1, 10000));
	assert_true(wait_count(f, &s.calls, 1, 10000));
	assert_int_equal(f->b.msgs[0].payload_len, n);
	assert_true(f->b.msgs[0].ok);
	free(p);
}

/* Sends that cannot all have left: 64 x 1 MiB with nobody reading. */
#define PEND_N 64
#define PEND_SZ (1u << 20)

static void queue_pending(struct rxp_conn *c, char *mem, struct h_send *s)
{
	struct rxp_iov st = {mem, PEND_SZ};

	for (int i = 0; i < PEND_N; i++)
		assert_int_equal(send1(c, (uint64_t)i, NULL, 0, &st, 1, &s[i]),
				 0);
}

static void check_failed_once(struct h_send *s, int n, uint64_t before,
			      int want)
{
	int failed = 0;

	for (int i = 0; i < n; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_true(s[i].seq < before);
		if (s[i].status) {
			if (want)
				assert_int_equal(s[i].status, want);
			else
				assert_true(s[i].status < 0);
			failed++;
		}
	}
	assert_true(failed > 0);
}

static void test_disconnect_pending(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	struct h_send s[PEND_N] = {{0}};
	char *mem = calloc(1, PEND_SZ);

	assert_non_null(c);
	queue_pending(c, mem, s);
	c->tp->ops->disconnect(c);
	assert_true(wait_count(f, &f->a.ndown, 1, 2000));
	assert_ptr_equal(f->a.down[0].c, c);
	assert_int_equal(f->a.down[0].status, -ECANCELED);
	check_failed_once(s, PEND_N, f->a.down[0].seq, -ECANCELED);
	/* the peer notices */
	assert_true(wait_count(f, &f->b.ndown, 1, 2000));
	assert_true(f->b.down[0].status < 0);
	h_spin(&f->a, &f->b, 20);
	assert_int_equal(f->a.ndown, 1);
	assert_int_equal(f->a.nsend_cb, PEND_N);
	free(mem);
}

static void test_close_pending(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	struct h_send s[PEND_N] = {{0}};
	char *mem = calloc(1, PEND_SZ);

	assert_non_null(c);
	queue_pending(c, mem, s);
	h_spin(&f->a, NULL, 10);
	f->a.tp->ops->close(f->a.tp); /* callbacks happen inside close */
	f->a.tp = NULL;
	assert_int_equal(f->a.ndown, 1);
	assert_ptr_equal(f->a.down[0].c, c);
	assert_true(f->a.down[0].status < 0);
	check_failed_once(s, PEND_N, f->a.down[0].seq, 0);
	assert_true(wait_count(f, &f->b.ndown, 1, 2000));
	free(mem);
}

static void test_peer_closes(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	struct h_send s[PEND_N] = {{0}};
	char *mem = calloc(1, PEND_SZ);
	int64_t t0;

	assert_non_null(c);
	queue_pending(c, mem, s);
	h_spin(&f->a, NULL, 20); /* B does not read: sends stay pending */
	f->b.tp->ops->close(f->b.tp);
	f->b.tp = NULL;
	t0 = h_now_ms();
	assert_true(wait_count(f, &f->a.ndown, 1, 1000));
	assert_true(h_now_ms() - t0 <= 1000);
	assert_true(f->a.down[0].status < 0);
	assert_int_not_equal(f->a.down[0].status, -ECANCELED);
	check_failed_once(s, PEND_N, f->a.down[0].seq, 0);
	free(mem);
}

static void test_connect_refused(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = NULL;
	char addr[160];
	struct h_send s = {0};
	int64_t t0 = h_now_ms();

	assert_int_equal(h_dead_addr(addr, sizeof(addr)), 0);
	assert_int_equal(f->a.tp->ops->connect(f->a.tp, addr, 9, &c), 0);
	assert_int_equal(send1(c, 1, NULL, 0, NULL, 0, &s), 0);
	assert_true(wait_count(f, &f->a.ndown, 1, 3000));
	assert_true(h_now_ms() - t0 < 3000);
	assert_ptr_equal(f->a.down[0].c, c);
	assert_true(f->a.down[0].status < 0);
	assert_int_equal(s.calls, 1);
	assert_true(s.status < 0);
	assert_true(s.seq < f->a.down[0].seq);
	assert_int_equal(f->a.nup, 0);
	/* malformed addresses are refused at once */
	assert_int_equal(f->a.tp->ops->connect(f->a.tp, "nonsense", 9, &c),
			 -EINVAL);
	assert_int_equal(f->a.tp->ops->connect(f->a.tp, "127.0.0.1:0", 9, &c),
			 -EINVAL);
}

static void test_buffers_outlive_close(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	size_t big = 3u << 20;
	char *mem = malloc(big);
	char small[77];
	struct rxp_iov pl = {small, sizeof(small)};
	struct rxp_iov st[2] = {{small, 0}, {mem, big}}; /* empty + 3 MiB */
	struct h_send s = {0};
	struct h_msg *m;

	assert_non_null(c);
	f->b.keep = true;
	pattern_fill(small, sizeof(small), 3, 0);
	pattern_fill(mem, big, 3, 2);
	assert_int_equal(send1(c, 3, &pl, 1, st, 2, &s), 0);
	assert_true(wait_count(f, &f->b.nmsgs, 1, 10000));
	m = &f->b.msgs[0];
	assert_true(m->ok);
	assert_int_equal(m->nkeep, 3);
	f->b.tp->ops->close(f->b.tp);
	f->b.tp = NULL;
	f->a.tp->ops->close(f->a.tp);
	f->a.tp = NULL;
	/* still ours until put (h_close puts them; ASan watches) */
	assert_true(pattern_check(m->keep[0]->data, m->keep[0]->len, 3, 0));
	assert_int_equal(m->keep[1]->len, 0);
	assert_int_equal(m->keep[2]->len, big);
	assert_true(pattern_check(m->keep[2]->data, big, 3, 2));
	memset(m->keep[2]->data, 0, 16); /* and writable */
	free(mem);
}

static void test_too_big(void **state)
{
	struct fx *f = *state;
	struct rxp_tp_attr lim = {.max_payload = 4096, .max_storage = 8192};
	struct rxp_conn *c;
	static char buf[8193];
	struct rxp_iov pl = {buf, 4097}, st = {buf, 8193};
	static struct rxp_iov many[RXP_WIRE_MAX_STORAGES + 1];
	struct h_send s = {0};

	h_close(&f->a);
	assert_int_equal(h_open(&f->a, "A", 1, &lim), 0);
	c = h_connect(&f->a, &f->b, NULL);
	assert_non_null(c);
	assert_int_equal(send1(c, 1, &pl, 1, NULL, 0, &s), -RXP_E_TOO_BIG);
	assert_int_equal(send1(c, 1, NULL, 0, &st, 1, &s), -RXP_E_TOO_BIG);
	for (size_t i = 0; i < RXP_ARRAY_SIZE(many); i++)
		many[i] = (struct rxp_iov){buf, 1};
	assert_int_equal(send1(c, 1, NULL, 0, many, RXP_ARRAY_SIZE(many), &s),
			 -RXP_E_TOO_BIG);
	/* the peer's limits, learned in the handshake, apply too */
	assert_int_equal(send1(f->b.up[0].c, 1, &pl, 1, NULL, 0, &s),
			 -RXP_E_TOO_BIG);
	h_spin(&f->a, &f->b, 20);
	assert_int_equal(s.calls, 0); /* nothing was queued */
	/* at the limits it works, and the connection is still fine */
	pl.len = 4096;
	st.len = 8192;
	pattern_fill(buf, 8192, 1, 0);
	assert_int_equal(send1(c, 1, &pl, 1, NULL, 0, &s), 0);
	assert_true(wait_count(f, &s.calls, 1, 5000));
	assert_int_equal(s.status, 0);
	assert_int_equal(f->a.ndown + f->b.ndown, 0);
	assert_true(wait_count(f, &f->b.nmsgs, 1, 5000));
	assert_true(f->b.msgs[0].ok);
}

static void test_ipv6(void **state)
{
	struct fx *f = *state;
	struct rxp_tp_attr v6 = {.bind_addr = "::1"};
	struct h_side a6, b6;
	struct rxp_conn *c;
	struct h_send s = {0};
	int err;

	if (getenv("RXP_TEST_ADDR") || strcmp(f->a.tp->name, "verbs") == 0 ||
	    h_is_shm())
		skip();
	err = h_open(&a6, "A6", 1, &v6);
	if (err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT)
		skip();
	assert_int_equal(err, 0);
	assert_int_equal(h_open(&b6, "B6", 2, &v6), 0);
	assert_true(strncmp(b6.addr, "[::1]:", 6) == 0);
	c = h_connect(&a6, &b6, NULL);
	assert_non_null(c);
	assert_int_equal(send1(c, 6, NULL, 0, NULL, 0, &s), 0);
	{
		struct count_cond cc = {&b6.nmsgs, 1};

		assert_true(h_pump(&a6, &b6, reached, &cc, 5000));
	}
	assert_int_equal(b6.msgs[0].id, 6);
	h_close(&a6);
	h_close(&b6);
}

static void test_disconnect_while_connecting(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = NULL;
	struct h_send s = {0};

	assert_int_equal(f->a.tp->ops->connect(f->a.tp, f->b.addr, 2, &c), 0);
	assert_int_equal(send1(c, 1, NULL, 0, NULL, 0, &s), 0);
	c->tp->ops->disconnect(c);
	assert_true(wait_count(f, &f->a.ndown, 1, 2000));
	assert_int_equal(f->a.down[0].status, -ECANCELED);
	assert_int_equal(s.calls, 1);
	assert_true(s.status == 0 || s.status == -ECANCELED);
	assert_true(s.seq < f->a.down[0].seq);
	assert_int_equal(f->a.nup, 0);
	h_spin(&f->a, &f->b, 20);
	assert_int_equal(f->a.ndown, 1);
}

/* B answers id 100 with a reply, then disconnects, from inside on_recv. */
static void reply_then_hang_up(struct h_side *s, struct rxp_conn *c,
			       const struct rxp_msg_in *m)
{
	static struct h_send reply;
	struct rxp_msg_out out = {.type = 1, .id = m->id + 1};

	if (m->id != 100)
		return;
	reply = (struct h_send){0};
	s->hook_arg = &reply;
	assert_int_equal(c->tp->ops->send(c, &out, &reply), 0);
	c->tp->ops->disconnect(c);
	c->tp->ops->disconnect(c); /* twice: still one on_conn */
	assert_int_equal(c->tp->ops->send(c, &out, &reply) < 0, 1);
}

static void test_disconnect_from_callback(void **state)
{
	struct fx *f = *state;
	struct rxp_conn *c = h_connect(&f->a, &f->b, NULL);
	struct h_send s[4] = {{0}};
	struct h_send *reply;

	assert_non_null(c);
	f->b.recv_hook = reply_then_hang_up;
	for (int i = 0; i < 4; i++)
		assert_int_equal(
			send1(c, 99 + (uint64_t)i, NULL, 0, NULL, 0, &s[i]), 0);
	assert_true(wait_count(f, &f->b.ndown, 1, 2000));
	assert_int_equal(f->b.down[0].status, -ECANCELED);
	reply = f->b.hook_arg;
	assert_non_null(reply);
	assert_int_equal(reply->calls, 1);
	assert_true(reply->seq < f->b.down[0].seq);
	/* nothing after the hang-up is delivered */
	assert_int_equal(f->b.msgs[f->b.nmsgs - 1].id, 100);
	assert_true(wait_count(f, &f->a.ndown, 1, 2000));
	assert_true(f->a.down[0].status < 0);
	h_spin(&f->a, &f->b, 20);
	assert_int_equal(f->b.ndown, 1);
	assert_int_equal(f->a.ndown, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(s[i].calls, 1);
}

static void test_address(void **state)
{
	struct fx *f = *state;
	char small[4];

	assert_true(strchr(f->a.addr, ':') != NULL);
	assert_int_not_equal(
		f->a.tp->ops->address(f->a.tp, small, sizeof(small)), 0);
	assert_string_not_equal(f->a.addr, f->b.addr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connect_handshake, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_before_established,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_storages_both_ways,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_storage_sizes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_storage_64m, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_in_flight, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_large_payload, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_pending, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_close_pending, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_peer_closes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_disconnect_while_connecting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_from_callback,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffers_outlive_close,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
	};
	const char *t = getenv("RXP_TEST_TRANSPORT");
	char name[64];

	snprintf(name, sizeof(name), "transport[%s]", t && *t ? t : "tcp");
	return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}
