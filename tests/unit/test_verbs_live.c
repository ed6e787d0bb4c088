/* SPDX-License-Identifier: MIT */
/*
 * The verbs transport on a real device (the rxe guest: ci/rxe-vm.sh):
 * two instances in this process, A on RXP_ADDR_A and B on RXP_ADDR_B
 * (two rxe devices joined by a veth in --mode two), or both on
 * RXP_TEST_ADDR / RXP_ADDR_A (one device). Exit 77 without a device (1 when
 * RXP_TEST_REQUIRE_DEVICE=1, as in CI inside the guest).
 *
 * With --perf it also prints the small-message round trip and the
 * 64 MiB transfer rate.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "rxp_auth.h"
#include "skip.h"
#include "tp_fx.h"

void verbs_debug_dump(struct rxp_tp *tp);

static struct fx_side A, B;
static const char *addr_a, *addr_b;
static bool g_skip;

static const char *side_name(const struct fx_side *s)
{
	return s == &A ? "A" : s == &B ? "B" : "probe";
}

/* worker @id of a world of 3 at @addr, on the real device */
static int side_open(struct fx_side *s, const char *addr, uint32_t id,
		     const struct rxp_auth_key *key)
{
	return fx_open_at(s, &rxp_verbs_ops, id, addr, key, 3);
}

/* FX_PUMP over A and B, dumping both transports' state when it fails */
#define PUMP(ms, cond)                                                         \
	({                                                                     \
		bool ok_ = FX_PUMP(&A, &B, ms, cond);                          \
		if (!ok_) {                                                    \
			verbs_debug_dump(A.tp);                                \
			verbs_debug_dump(B.tp);                                \
		}                                                              \
		ok_;                                                           \
	})

static int setup(void **state)
{
	if (g_skip)
		return 0;
	assert_int_equal(side_open(&A, addr_a, 1, NULL), 0);
	assert_int_equal(side_open(&B, addr_b, 2, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	fx_close(&A);
	fx_close(&B);
	return 0;
}

static struct rxp_conn *connect_ab(void)
{
	struct rxp_conn *c = fx_connect_ms(&A, &B, 10000);

	assert_non_null(c);
	assert_int_equal(A.up, 1);
	assert_int_equal(B.up, 1);
	assert_ptr_equal(A.conn, c);
	assert_int_equal(B.conn->peer_id, 1);
	assert_false(B.conn->outgoing);
	return c;
}

static int send_msg(struct rxp_conn *c, uint64_t id, size_t plen,
		    const size_t *slen, uint32_t n, void **bufs,
		    struct fx_ck *ck)
{
	return fx_send_type(c, 7, id, plen, slen, n, bufs, ck);
}

static void test_eager_and_rendezvous(void **state)
{
	static const size_t sl1[] = {0, 100, 4000};
	static const size_t sl2[] = {3 << 20, 10, 200000};
	struct fx_ck k1 = {0}, k2 = {0}, k3 = {0};
	void *b1[4], *b2[4], *b3[1];
	struct rxp_conn *c;

	if (g_skip)
		skip();
	c = connect_ab();
	assert_int_equal(send_msg(c, 1, 300, sl1, 3, b1, &k1), 0);
	assert_int_equal(send_msg(c, 2, 150000, sl2, 3, b2, &k2), 0);
	assert_int_equal(send_msg(c, 3, 10, NULL, 0, b3, &k3), 0);
	assert_true(
		PUMP(20000, B.nmsgs == 3 && k1.calls && k2.calls && k3.calls));
	assert_int_equal(k1.calls + k2.calls + k3.calls, 3);
	assert_int_equal(k1.status | k2.status | k3.status, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(B.msgs[i].id, i + 1); /* in order */
		assert_true(B.msgs[i].ok);
	}
	assert_int_equal(B.msgs[1].plen, 150000);
	assert_int_equal(B.msgs[1].nst, 3);
	fx_free(b1, 3);
	fx_free(b2, 3);
	fx_free(b3, 0);
}

/* With a job secret the proofs cross the real device: the same secret
 * connects and carries a rendezvous message; another one is refused. */
static void test_job_secret(void **state)
{
	static const struct rxp_auth_key k1 = {.on = true, .k = {7}};
	static const struct rxp_auth_key k2 = {.on = true, .k = {8}};
	static const size_t sl[] = {1 << 20};
	struct fx_ck k = {0};
	struct rxp_conn *c = NULL;
	void *b[2];

	if (g_skip)
		skip();
	fx_close(&A);
	fx_close(&B);
	assert_int_equal(side_open(&A, addr_a, 1, &k1), 0);
	assert_int_equal(side_open(&B, addr_b, 2, &k1), 0);
	c = connect_ab();
	assert_int_equal(send_msg(c, 1, 300, sl, 1, b, &k), 0);
	assert_true(PUMP(20000, B.nmsgs == 1 && k.calls));
	assert_int_equal(k.status, 0);
	assert_true(B.msgs[0].ok);
	fx_free(b, 1);

	fx_close(&B);
	assert_true(PUMP(20000, A.down == 1)); /* the first one, closed */
	assert_int_equal(side_open(&B, addr_b, 2, &k2), 0);
	assert_int_equal(A.tp->ops->connect(A.tp, B.addr, 2, &c), 0);
	assert_true(PUMP(20000, A.down == 2));
	assert_int_equal(A.down_status, -RXP_E_AUTH);
	assert_int_equal(B.up + B.nmsgs, 0);
}

static void test_burst_credits(void **state)
{
	enum { N = 2000 };
	static struct fx_ck ck[N];
	static char data[N][64];
	struct rxp_conn *c;
	int done = 0;

	if (g_skip)
		skip();
	memset(ck, 0, sizeof(ck));
	c = connect_ab();
	for (int i = 0; i < N; i++) {
		struct rxp_iov p = {data[i], sizeof(data[i])};
		struct rxp_msg_out m = {
			.id = (uint64_t)i, .payload = &p, .npayload = 1};

		pattern_fill(data[i], sizeof(data[i]), (uint64_t)i, 0);
		assert_int_equal(c->tp->ops->send(c, &m, &ck[i]), 0);
	}
	assert_true(PUMP(60000, B.nmsgs == N));
	assert_true(PUMP(5000, ({
				 done = 0;
				 for (int i = 0; i < N; i++)
					 done += ck[i].calls;
				 done == N;
			 })));
	for (int i = 0; i < N; i++) {
		assert_int_equal(B.msgs[i].id, (uint64_t)i);
		assert_true(B.msgs[i].ok);
		assert_int_equal(ck[i].calls, 1);
		assert_int_equal(ck[i].status, 0);
	}
}

static void test_keep_rendezvous_buffers(void **state)
{
	static const size_t sl[] = {1 << 20};
	struct fx_ck ck[40] = {0};
	void *b[40][2];
	struct rxp_conn *c;

	if (g_skip)
		skip();
	B.keep_storage = true; /* the rendezvous buffers stay held */
	c = connect_ab();
	for (int i = 0; i < 40; i++)
		assert_int_equal(
			send_msg(c, (uint64_t)i, 100, sl, 1, b[i], &ck[i]), 0);
	assert_true(PUMP(60000, B.nmsgs == 40));
	for (int i = 0; i < 40; i++) {
		assert_true(PUMP(5000, ck[i].calls == 1));
		assert_int_equal(ck[i].status, 0);
		assert_true(B.msgs[i].ok);
		fx_free(b[i], 1);
	}
}

static void test_disconnect_fails_pending(void **state)
{
	static const size_t sl[] = {8 << 20};
	struct fx_ck k = {0};
	void *b[2];
	struct rxp_conn *c;

	if (g_skip)
		skip();
	c = connect_ab();
	assert_int_equal(send_msg(c, 9, 10, sl, 1, b, &k), 0);
	A.tp->ops->disconnect(c);
	assert_int_equal(k.calls, 1);
	assert_int_equal(k.status, -ECANCELED);
	assert_int_equal(A.down, 1);
	assert_int_equal(A.down_status, -ECANCELED);
	assert_true(PUMP(10000, B.down == 1));
	assert_true(B.down_status < 0);
	fx_free(b, 1);
	/* and reconnect */
	A.up = B.up = 0;
	connect_ab();
}

static void test_connect_refused(void **state)
{
	char dead[160];
	struct rxp_conn *c = NULL;
	char *colon;

	if (g_skip)
		skip();
	snprintf(dead, sizeof(dead), "%s", B.addr);
	colon = strrchr(dead, ':');
	snprintf(colon + 1, sizeof(dead) - (size_t)(colon + 1 - dead), "%d",
		 1000 + (atoi(colon + 1) + 7) % 50000);
	assert_int_equal(A.tp->ops->connect(A.tp, dead, 5, &c), 0);
	assert_true(PUMP(20000, A.down == 1));
	assert_true(A.down_status < 0);
	print_message("connect to %s: %d\n", dead, A.down_status);
	assert_int_equal(A.up, 0);
}

static void perf(void)
{
	enum { N = 2000 };
	struct rxp_conn *c;
	char p[64] = {0};
	struct rxp_iov iov = {p, sizeof(p)};
	struct rxp_msg_out m = {.payload = &iov, .npayload = 1};
	void *big;
	size_t bsz = 64u << 20;
	struct rxp_iov st = {NULL, bsz};
	int64_t t0, t1;
	struct fx_ck k = {0};

	assert_int_equal(side_open(&A, addr_a, 1, NULL), 0);
	assert_int_equal(side_open(&B, addr_b, 2, NULL), 0);
	B.echo = true;
	c = connect_ab();
	t0 = rxp_now_ns();
	for (int i = 0; i < N; i++) {
		int want = A.nmsgs + 1;

		m.id = (uint64_t)i;
		assert_int_equal(c->tp->ops->send(c, &m, NULL), 0);
		assert_true(PUMP(10000, A.nmsgs >= want));
	}
	t1 = rxp_now_ns();
	printf("verbs perf: 64 B round trip %.1f us (mean of %d)\n",
	       (double)(t1 - t0) / N / 1000.0, N);
	B.echo = false;
	big = malloc(bsz);
	memset(big, 1, bsz);
	st.base = big;
	m.storages = &st;
	m.nstorages = 1;
	for (int r = 0; r < 3; r++) {
		int want = B.nmsgs + 1;

		memset(&k, 0, sizeof(k));
		t0 = rxp_now_ns();
		assert_int_equal(c->tp->ops->send(c, &m, &k), 0);
		assert_true(PUMP(120000, B.nmsgs >= want && k.calls));
		t1 = rxp_now_ns();
		printf("verbs perf: 64 MiB storage in %.1f ms = %.2f Gb/s%s\n",
		       (double)(t1 - t0) / 1e6,
		       (double)bsz * 8 / (double)(t1 - t0),
		       r ? "" : " (first: registration)");
	}
	free(big);
	fx_close(&A);
	fx_close(&B);
}

/* Step @s until @cond, dumping the state and failing after 20 s. */
#define WAIT1(s, cond)                                                         \
	do {                                                                   \
		int64_t end_ = rxp_now_ns() + 20000000000ll;                   \
		while (!(cond) && rxp_now_ns() < end_)                         \
			fx_step(s);                                            \
		if (!(cond)) {                                                 \
			verbs_debug_dump((s)->tp);                             \
			fail_msg("%s: stuck at line %d", side_name(s),         \
				 __LINE__);                                    \
		}                                                              \
	} while (0)

/* Two processes, each polling its own side (like perftest): the child
 * (forked before any verbs use) echoes on B, the parent measures on A. */
static void perf2(void)
{
	enum { N = 5000 };
	int fds[2];
	pid_t pid;
	struct rxp_conn *c;
	char p[64] = {0};
	struct rxp_iov iov = {p, sizeof(p)};
	struct rxp_msg_out m = {.payload = &iov, .npayload = 1};
	size_t bsz = 64u << 20;
	char *big;
	struct rxp_iov st;
	int64_t t0, t1, best = INT64_MAX;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(fds[0]);
		if (side_open(&B, addr_b, 2, NULL))
			_exit(1);
		B.echo = true;
		if (write(fds[1], B.addr, sizeof(B.addr)) != sizeof(B.addr))
			_exit(1);
		while (B.down == 0 && getppid() != 1)
			fx_step(&B);
		verbs_debug_dump(B.tp);
		fx_close(&B);
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], B.addr, sizeof(B.addr)), sizeof(B.addr));
	assert_int_equal(side_open(&A, addr_a, 1, NULL), 0);
	assert_int_equal(A.tp->ops->connect(A.tp, B.addr, 2, &c), 0);
	WAIT1(&A, A.up);
	for (int i = 0; i < N; i++) {
		int want = A.nmsgs + 1;

		t0 = rxp_now_ns();
		m.id = (uint64_t)i;
		assert_int_equal(c->tp->ops->send(c, &m, NULL), 0);
		WAIT1(&A, A.nmsgs >= want);
		t1 = rxp_now_ns();
		best = t1 - t0 < best ? t1 - t0 : best;
		if (i == 999)
			t0 = t1; /* warm-up done */
	}
	(void)best;
	{
		/* second pass for the mean, after warm-up */
		int64_t s0 = rxp_now_ns();

		for (int i = 0; i < N; i++) {
			int want = A.nmsgs + 1;

			m.id = (uint64_t)i;
			assert_int_equal(c->tp->ops->send(c, &m, NULL), 0);
			WAIT1(&A, A.nmsgs >= want);
		}
		t1 = rxp_now_ns();
		printf("verbs perf (2 processes): 64 B round trip mean %.1f "
		       "us, "
		       "min %.1f us (%d round trips)\n",
		       (double)(t1 - s0) / N / 1000.0, (double)best / 1000.0,
		       N);
	}
	big = malloc(bsz);
	memset(big, 1, bsz);
	st = (struct rxp_iov){big, bsz};
	m.storages = &st;
	m.nstorages = 1;
	for (int r = 0; r < 3; r++) {
		struct fx_ck k = {0};

		t0 = rxp_now_ns();
		assert_int_equal(c->tp->ops->send(c, &m, &k), 0);
		WAIT1(&A, k.calls);
		t1 = rxp_now_ns();
		assert_int_equal(k.status, 0);
		printf("verbs perf (2 processes): 64 MiB storage in %.1f ms = "
		       "%.2f Gb/s\n",
		       (double)(t1 - t0) / 1e6,
		       (double)bsz * 8 / (double)(t1 - t0));
	}
	free(big);
	fx_close(&A);
	waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_eager_and_rendezvous,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_burst_credits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_job_secret, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keep_rendezvous_buffers,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_fails_pending,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused, setup,
						teardown),
	};
	struct fx_side probe;
	int ret;

	addr_a = getenv("RXP_ADDR_A");
	if (!addr_a || !*addr_a)
		addr_a = getenv("RXP_TEST_ADDR");
	if (!addr_a || !*addr_a)
		addr_a = "127.0.0.1";
	addr_b = getenv("RXP_ADDR_B");
	if (!addr_b || !*addr_b)
		addr_b = addr_a;
	if (argc > 1 && !strcmp(argv[1], "--perf2")) {
		perf2(); /* forks first: no verbs use before */
		return 0;
	}
	ret = side_open(&probe, addr_a, 0, NULL);
	if (ret == -RXP_E_NO_DEVICE) {
		fprintf(stderr, "no RDMA device for %s: skipped\n", addr_a);
		return rxp_test_skip_code();
	}
	assert_int_equal(ret, 0);
	fx_close(&probe);
	if (argc > 1 && !strcmp(argv[1], "--perf")) {
		perf();
		return 0;
	}
	if (getenv("VERBS_TEST_FILTER"))
		cmocka_set_test_filter(getenv("VERBS_TEST_FILTER"));
	return cmocka_run_group_tests_name("verbs_live", tests, NULL, NULL);
}
