/* SPDX-License-Identifier: MIT */
/*
 * The verbs transport on the fake fabric (no device needed): the data
 * path end to end, credits, and every failure the hardware can report.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test_verbs_fake.h"

static struct fx_side A, B;

static int setup(void **state)
{
	fk_reset();
	assert_int_equal(fx_open(&A, 1), 0);
	assert_int_equal(fx_open(&B, 2), 0);
	return 0;
}

static int teardown(void **state)
{
	fx_close(&A);
	fx_close(&B);
	unsetenv("RXP_VERBS_CREDITS");
	unsetenv("RXP_VERBS_RDV_THRESHOLD");
	unsetenv("RXP_VERBS_READ_CHUNK");
	/* everything registered or created was given back */
	assert_int_equal(fk.live_mrs, 0);
	assert_int_equal(fk.live_qps, 0);
	assert_int_equal(fk.live_ids, 0);
	assert_int_equal(fk.live_cqs, 0);
	return 0;
}

static struct verbs_conn *vc(struct rxp_conn *c)
{
	return to_vconn(c);
}

/* ------------------------------------------------------------ data path */

static void test_eager_rendezvous_in_order(void **state)
{
	static const size_t s1[] = {0, 1, 200, 5000};
	static const size_t s2[] = {40000, 7, 300000};
	struct fx_ck k[4] = {0};
	void *m0[5], *m1[4], *m2[1], *m3[1];
	struct rxp_conn *c = fx_connect(&A, &B);

	assert_non_null(c);
	assert_int_equal(fx_send(c, 10, 100, s1, 4, m0, &k[0]), 0);
	assert_int_equal(fx_send(c, 11, 200000, s2, 3, m1, &k[1]), 0);
	assert_int_equal(fx_send(c, 12, 0, NULL, 0, m2, &k[2]), 0);
	assert_int_equal(fx_send(c, 13, 70000, NULL, 0, m3, &k[3]), 0);
	assert_int_equal(k[0].calls, 0); /* never from inside send() */
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 4 && A.sends == 4));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(B.msgs[i].id, 10 + i);
		assert_true(B.msgs[i].ok);
		assert_int_equal(k[i].calls, 1);
		assert_int_equal(k[i].status, 0);
	}
	assert_int_equal(B.msgs[1].plen, 200000);
	assert_int_equal(B.msgs[1].nst, 3);
	assert_int_equal(B.msgs[3].plen, 70000);
	assert_true(vc(c)->tp->stats.rdv_tx >= 2);
	assert_true(fk.reads_executed >= 3);
	/* the rendezvous registrations were released after the peer's ack */
	assert_int_equal(vc(c)->tp->rc.n, 0);
	FX_PUMP(&A, &B, 20, false);
	assert_int_equal(A.sends, 4); /* and no duplicate on_send */
	fx_free(m0, 4);
	fx_free(m1, 3);
	fx_free(m2, 0);
	fx_free(m3, 0);
}

static void test_reads_are_chunked(void **state)
{
	static const size_t sl[] = {1000000};
	struct fx_ck k = {0};
	void *m[2];
	struct rxp_conn *c;

	fx_close(&B);
	setenv("RXP_VERBS_READ_CHUNK", "65536", 1);
	assert_int_equal(fx_open(&B, 2), 0);
	c = fx_connect(&A, &B);
	assert_int_equal(fx_send(c, 1, 10, sl, 1, m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k.calls == 1));
	assert_true(B.msgs[0].ok);
	assert_int_equal(fk.reads_executed, (1000000 + 65535) / 65536);
	fx_free(m, 1);
}

static void test_many_storages(void **state)
{
	enum { N = 1024 };
	struct rxp_iov *st = calloc(N, sizeof(*st));
	char *mem = malloc(N * 3);
	char pay[8];
	struct rxp_iov p = {pay, sizeof(pay)};
	struct rxp_msg_out m = {.id = 5,
				.payload = &p,
				.npayload = 1,
				.storages = st,
				.nstorages = N};
	struct fx_ck k = {0};
	struct rxp_conn *c = fx_connect(&A, &B);

	pattern_fill(pay, sizeof(pay), 5, 0);
	for (int i = 0; i < N; i++) {
		pattern_fill(mem + 3 * i, 3, 5, (uint32_t)i + 1);
		st[i] = (struct rxp_iov){mem + 3 * i, 3};
	}
	assert_int_equal(c->tp->ops->send(c, &m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k.calls == 1));
	assert_int_equal(B.msgs[0].nst, N);
	assert_true(B.msgs[0].ok);
	m.nstorages = N + 1;
	assert_int_equal(c->tp->ops->send(c, &m, &k), -RXP_E_TOO_BIG);
	free(st);
	free(mem);
}

static void test_credits_bound_sends(void **state)
{
	enum { N = 40 };
	struct fx_ck k[N] = {0};
	char data[N][32];
	struct rxp_conn *c;
	int before;

	fx_close(&B);
	setenv("RXP_VERBS_CREDITS", "4", 1);
	assert_int_equal(fx_open(&B, 2), 0);
	c = fx_connect(&A, &B);
	assert_int_equal(vc(c)->peer_pd.credits, 4);
	before = fk_srq_depth(vc(B.conn)->qpn);
	for (int i = 0; i < N; i++) {
		struct rxp_iov p = {data[i], sizeof(data[i])};
		struct rxp_msg_out m = {
			.id = (uint64_t)i, .payload = &p, .npayload = 1};

		pattern_fill(data[i], sizeof(data[i]), (uint64_t)i, 0);
		assert_int_equal(c->tp->ops->send(c, &m, &k[i]), 0);
	}
	/* only A progresses: B's buffers are consumed up to the credits */
	for (int i = 0; i < 50; i++)
		fx_step(&A);
	assert_int_equal(before - fk_srq_depth(vc(B.conn)->qpn), 4);
	assert_int_equal(vc(c)->tx_credits, 0);
	assert_true(vc(c)->tp->stats.credit_stalls > 0);
	/* B frees them: credits flow back, everything arrives, in order */
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == N && A.sends == N));
	for (int i = 0; i < N; i++) {
		assert_int_equal(B.msgs[i].id, (uint64_t)i);
		assert_int_equal(k[i].calls, 1);
	}
	assert_int_equal(fk.rnr, 0);
}

static void test_held_buffers_hold_credits(void **state)
{
	enum { N = 12 };
	struct fx_ck k[N] = {0};
	char data[N][16];
	struct rxp_conn *c;

	fx_close(&B);
	setenv("RXP_VERBS_CREDITS", "4", 1);
	assert_int_equal(fx_open(&B, 2), 0);
	B.keep = true;
	c = fx_connect(&A, &B);
	for (int i = 0; i < N; i++) {
		struct rxp_iov p = {data[i], sizeof(data[i])};
		struct rxp_msg_out m = {
			.id = (uint64_t)i, .payload = &p, .npayload = 1};

		pattern_fill(data[i], sizeof(data[i]), (uint64_t)i, 0);
		assert_int_equal(c->tp->ops->send(c, &m, &k[i]), 0);
	}
	FX_PUMP(&A, &B, 50, false);
	assert_int_equal(B.nmsgs, 4); /* the agent holds every buffer */
	assert_int_equal(fk.rnr, 0);
	fx_release_kept(&B); /* released "from another thread" */
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 8));
	fx_release_kept(&B);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == N && A.sends == N));
	assert_int_equal(fk.rnr, 0);
}

static void test_buffers_outlive_close(void **state)
{
	static const size_t sl[] = {100, 100000};
	struct fx_ck k = {0};
	void *m[3];
	struct rxp_conn *c = fx_connect(&A, &B);

	B.keep = true;
	assert_int_equal(fx_send(c, 1, 50, sl, 2, m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k.calls == 1));
	B.tp->ops->close(B.tp);
	B.tp = NULL;
	assert_true(pattern_check(B.kept[0]->data, B.kept[0]->len, 1, 0));
	fx_release_kept(&B); /* the domain goes with the last buffer */
	fx_free(m, 2);
}

static void test_mem_register_cache(void **state)
{
	size_t n = 1 << 20;
	char *big = malloc(n);
	struct rxp_iov st = {big + 4096, 100000}, p = {big, 10};
	struct rxp_msg_out m = {.id = 0,
				.payload = &p,
				.npayload = 1,
				.storages = &st,
				.nstorages = 1};
	struct fx_ck k[3] = {0};
	struct rxp_conn *c = fx_connect(&A, &B);
	struct verbs_rcache *rc = &vc(c)->tp->rc;
	uint64_t miss;

	pattern_fill(big, 10, 0, 0);
	pattern_fill(big + 4096, 100000, 0, 1);
	assert_int_equal(A.tp->ops->mem_register(A.tp, big, n), 0);
	assert_int_equal(A.tp->ops->mem_register(A.tp, big, n), 0);
	miss = rc->misses;
	assert_int_equal(rc->n, 1);
	assert_int_equal(c->tp->ops->send(c, &m, &k[0]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, k[0].calls == 1));
	assert_int_equal(rc->misses, miss); /* a cache hit */
	assert_int_equal(rc->hits, 1);
	/* unregistering a part invalidates the whole overlapping entry */
	assert_int_equal(A.tp->ops->mem_unregister(A.tp, big + 8192, 1), 0);
	assert_int_equal(vc(c)->tp->rc.n, 0);
	assert_int_equal(c->tp->ops->send(c, &m, &k[1]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, k[1].calls == 1));
	assert_int_equal(rc->misses, miss + 1);
	assert_int_equal(rc->n, 0); /* transient: released */
	assert_int_equal(B.nmsgs, 2);
	assert_true(B.msgs[0].ok && B.msgs[1].ok);
	free(big);
}

/* ------------------------------------------------------------- failures */

static void test_send_fails_when_reg_mr_enomem(void **state)
{
	static const size_t sl[] = {1 << 20};
	struct fx_ck k = {0};
	void *m[2];
	struct rxp_conn *c = fx_connect(&A, &B);

	fk_fail(FK_REG_MR, 0, ENOMEM, false);
	assert_int_equal(fx_send(c, 1, 10, sl, 1, m, &k), -ENOMEM);
	FX_PUMP(&A, &B, 20, false);
	assert_int_equal(k.calls, 0); /* error return: no callback */
	assert_int_equal(B.nmsgs, 0);
	/* the connection still works */
	assert_int_equal(
		c->tp->ops->send(c, &(struct rxp_msg_out){.id = 2}, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k.calls == 1));
	fx_free(m, 1);
}

static void test_open_fails_cleanly(void **state)
{
	static const enum fk_fn fns[] = {FK_ALLOC_PD, FK_CREATE_CQ,
					 FK_CREATE_SRQ, FK_BIND};
	struct fx_side s;

	for (unsigned i = 0; i < RXP_ARRAY_SIZE(fns); i++) {
		fk_fail(fns[i], 0, ENOMEM, false);
		assert_true(fx_open(&s, 9) < 0);
		fk_fail(fns[i], -1, 0, false);
	}
	/* allocation failures anywhere in open: -ENOMEM, no leak (ASan) */
	for (long n = 0;; n++) {
		int ret;

		rxp__alloc_fail_after(n);
		ret = fx_open(&s, 9);
		rxp__alloc_fail_after(-1);
		if (!ret) {
			fx_close(&s);
			break;
		}
		assert_int_equal(ret, -ENOMEM);
		assert_true(n < 1000);
	}
}

static void test_wc_error_statuses(void **state)
{
	static const struct {
		enum ibv_wc_status st;
		int err;
	} cases[] = {
		{IBV_WC_RETRY_EXC_ERR, -RXP_E_PEER_LOST},
		{IBV_WC_RNR_RETRY_EXC_ERR, -ENOBUFS},
		{IBV_WC_REM_ACCESS_ERR, -EACCES},
		{IBV_WC_REM_INV_REQ_ERR, -RXP_E_PROTO},
		{IBV_WC_LOC_PROT_ERR, -EFAULT},
		{IBV_WC_REM_OP_ERR, -EREMOTEIO},
		{IBV_WC_FATAL_ERR, -EIO},
		{IBV_WC_RESP_TIMEOUT_ERR, -ETIMEDOUT},
	};

	for (unsigned i = 0; i < RXP_ARRAY_SIZE(cases); i++) {
		static const size_t sl[] = {100000};
		struct fx_ck k[3] = {0};
		void *m0[1], *m1[2], *m2[1];
		struct rxp_conn *c = fx_connect(&A, &B);
		int down = A.down;

		assert_non_null(c);
		fk_wc_error(vc(c)->qpn, cases[i].st);
		assert_int_equal(fx_send(c, 1, 10, NULL, 0, m0, &k[0]), 0);
		assert_int_equal(fx_send(c, 2, 10, sl, 1, m1, &k[1]), 0);
		assert_int_equal(fx_send(c, 3, 10, NULL, 0, m2, &k[2]), 0);
		assert_true(FX_PUMP(&A, &B, 2000, A.down == down + 1));
		/* every pending send failed once, before on_conn */
		for (int j = 0; j < 3; j++) {
			assert_int_equal(k[j].calls, 1);
			assert_int_equal(k[j].status, cases[i].err);
		}
		assert_int_equal(A.down_status, cases[i].err);
		assert_true(FX_PUMP(&A, &B, 2000, B.down == (int)i + 1));
		FX_PUMP(&A, &B, 20, false);
		for (int j = 0; j < 3; j++)
			assert_int_equal(k[j].calls, 1);
		fx_free(m0, 0);
		fx_free(m1, 1);
		fx_free(m2, 0);
	}
	for (int st = 0; st <= IBV_WC_TM_RNDV_INCOMPLETE + 1; st++)
		assert_true(verbs_wc_status_to_err(st) <= 0);
	assert_int_equal(verbs_wc_status_to_err(IBV_WC_SUCCESS), 0);
	assert_int_equal(verbs_wc_status_to_err(999), -RXP_E_WC);
}

static void test_post_send_error(void **state)
{
	struct fx_ck k[2] = {0};
	void *m0[1], *m1[1];
	struct rxp_conn *c = fx_connect(&A, &B);

	fk_fail(FK_POST_SEND, 0, ENOMEM, false); /* +errno convention */
	assert_int_equal(fx_send(c, 1, 10, NULL, 0, m0, &k[0]), 0);
	assert_int_equal(fx_send(c, 2, 10, NULL, 0, m1, &k[1]), -ENOMEM);
	assert_true(FX_PUMP(&A, &B, 2000, A.down == 1));
	assert_int_equal(k[0].calls, 1);
	assert_int_equal(k[0].status, -ENOMEM);
	assert_int_equal(k[1].calls, 0);
	assert_int_equal(A.down_status, -ENOMEM);
	assert_true(FX_PUMP(&A, &B, 2000, B.down == 1));
	fx_free(m0, 0);
	fx_free(m1, 0);
}

static void test_post_srq_recv_error_retries(void **state)
{
	struct rxp_conn *c = fx_connect(&A, &B);
	struct fx_ck k[8] = {0};
	void *m[8][1];

	fk_fail(FK_POST_SRQ_RECV, 0, ENOMEM, false);
	for (int i = 0; i < 8; i++)
		assert_int_equal(
			fx_send(c, (uint64_t)i, 10, NULL, 0, m[i], &k[i]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 8 && A.sends == 8));
	assert_true(fk.calls[FK_POST_SRQ_RECV] > 1);
	assert_true(FX_PUMP(&A, &B, 2000,
			    vc(B.conn)->tp->srq_posted ==
				    vc(B.conn)->tp->srq_alloc));
	for (int i = 0; i < 8; i++)
		fx_free(m[i], 0);
}

static void test_disconnect_and_close_cancel(void **state)
{
	static const size_t sl[] = {200000};
	struct fx_ck k[3] = {0};
	void *m0[2], *m1[1], *m2[1];
	struct rxp_conn *c = fx_connect(&A, &B);

	assert_int_equal(fx_send(c, 1, 10, sl, 1, m0, &k[0]), 0);
	assert_int_equal(fx_send(c, 2, 10, NULL, 0, m1, &k[1]), 0);
	A.tp->ops->disconnect(c);
	assert_int_equal(k[0].calls, 1);
	assert_int_equal(k[0].status, -ECANCELED);
	assert_int_equal(k[1].calls, 1);
	assert_int_equal(A.down, 1);
	assert_int_equal(A.down_status, -ECANCELED);
	assert_true(FX_PUMP(&A, &B, 2000, B.down == 1));
	assert_true(B.down_status < 0); /* reset, or its READ failed */
	/* reconnect, then close with a send pending */
	c = fx_connect(&A, &B);
	assert_non_null(c);
	assert_int_equal(fx_send(c, 3, 10, NULL, 0, m2, &k[2]), 0);
	A.tp->ops->close(A.tp);
	A.tp = NULL;
	assert_int_equal(k[2].calls, 1);
	assert_int_equal(k[2].status, -ECANCELED);
	assert_int_equal(A.down, 2);
	fx_free(m0, 1);
	fx_free(m1, 0);
	fx_free(m2, 0);
}

static void test_disconnect_from_on_recv(void **state)
{
	struct fx_ck k[3] = {0};
	void *m[3][1];
	struct rxp_conn *c = fx_connect(&A, &B);

	B.disconnect_in_recv = true;
	for (int i = 0; i < 3; i++)
		assert_int_equal(
			fx_send(c, (uint64_t)i, 10, NULL, 0, m[i], &k[i]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.down == 1 && A.down == 1));
	assert_int_equal(B.nmsgs, 1);
	assert_int_equal(B.down_status, -ECANCELED);
	for (int i = 0; i < 3; i++)
		fx_free(m[i], 0);
}

static void test_payload_in_many_pieces(void **state)
{
	enum { P = 20, L = 10000 };
	struct rxp_iov iov[P];
	char *mem = malloc(P * L);
	struct rxp_msg_out m = {.id = 9, .payload = iov, .npayload = P};
	struct fx_ck k = {0};
	struct rxp_conn *c = fx_connect(&A, &B);

	/* 200 KB in 20 pieces: too big for a frame, too many pieces for
	 * descriptors: gathered into a registered bounce buffer */
	pattern_fill(mem, P * L, 9, 0);
	for (int i = 0; i < P; i++)
		iov[i] = (struct rxp_iov){mem + i * L, L};
	assert_int_equal(c->tp->ops->send(c, &m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k.calls == 1));
	assert_int_equal(k.status, 0);
	assert_int_equal(B.msgs[0].plen, P * L);
	assert_true(B.msgs[0].ok);
	free(mem);
}

static void test_more_sends_than_slots(void **state)
{
	enum { N = 300 };
	static struct fx_ck k[N];
	static char data[N][40];
	struct rxp_conn *c = fx_connect(&A, &B);

	memset(k, 0, sizeof(k));
	for (int i = 0; i < N; i++) {
		struct rxp_iov p = {data[i], sizeof(data[i])};
		struct rxp_msg_out m = {
			.id = (uint64_t)i, .payload = &p, .npayload = 1};

		pattern_fill(data[i], sizeof(data[i]), (uint64_t)i, 0);
		assert_int_equal(c->tp->ops->send(c, &m, &k[i]), 0);
	}
	/* beyond the slots, sends wait as heap copies, still in order */
	assert_non_null(to_vconn(c)->pend_head);
	assert_true(FX_PUMP(&A, &B, 4000, B.nmsgs == N && A.sends == N));
	for (int i = 0; i < N; i++) {
		assert_int_equal(B.msgs[i].id, (uint64_t)i);
		assert_true(B.msgs[i].ok);
		assert_int_equal(k[i].calls, 1);
		assert_int_equal(k[i].status, 0);
	}
}

static void test_receiver_out_of_memory_fails_that_message(void **state)
{
	static const size_t sl[] = {300000};
	struct fx_ck k[2] = {0};
	void *m0[2], *m1[1];
	struct rxp_conn *c = fx_connect(&A, &B);

	assert_int_equal(fx_send(c, 1, 10, sl, 1, m0, &k[0]), 0);
	/* the sender registered; the receiver's pool cannot */
	fk_fail(FK_REG_MR, 0, ENOMEM, false);
	assert_true(FX_PUMP(&A, &B, 2000, k[0].calls == 1));
	assert_int_equal(k[0].status, -ENOMEM);
	assert_int_equal(B.nmsgs, 0);
	/* the connection carries on */
	assert_int_equal(fx_send(c, 2, 10, NULL, 0, m1, &k[1]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k[1].calls == 1));
	assert_int_equal(B.msgs[0].id, 2);
	assert_int_equal(A.down + B.down, 0);
	fx_free(m0, 1);
	fx_free(m1, 0);
}

static void test_allocation_failures_anywhere(void **state)
{
	static const size_t sl[] = {100, 100000};
	bool clean = false;

	/* every allocation on the way up and through a first exchange may
	 * fail: each time, failure is reported and nothing leaks (ASan) */
	for (long n = 0; !clean && n < 2000; n++) {
		struct rxp_conn *c = NULL;
		struct fx_ck k = {0};
		void *m[3] = {0};
		int ret, up = A.up, down = A.down;

		rxp__alloc_fail_after(n);
		ret = A.tp->ops->connect(A.tp, B.addr, 2, &c);
		if (!ret) {
			FX_PUMP(&A, &B, 200, A.up > up || A.down > down);
			if (A.up > up)
				ret = fx_send(c, 1, 10, sl, 2, m, &k);
			else
				ret = -1;
			if (!ret)
				FX_PUMP(&A, &B, 200, k.calls || A.down > down);
		}
		clean = rxp__alloc_fail_after(-1) < n && !ret && k.calls &&
			!k.status;
		if (c && A.down == down)
			A.tp->ops->disconnect(c);
		FX_PUMP(&A, &B, 50, false);
		if (m[0])
			fx_free(m, 2);
	}
	assert_true(clean);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_eager_rendezvous_in_order),
		T(test_reads_are_chunked),
		T(test_many_storages),
		T(test_credits_bound_sends),
		T(test_held_buffers_hold_credits),
		T(test_buffers_outlive_close),
		T(test_mem_register_cache),
		T(test_send_fails_when_reg_mr_enomem),
		T(test_open_fails_cleanly),
		T(test_wc_error_statuses),
		T(test_post_send_error),
		T(test_post_srq_recv_error_retries),
		T(test_disconnect_and_close_cancel),
		T(test_disconnect_from_on_recv),
		T(test_payload_in_many_pieces),
		T(test_more_sends_than_slots),
		T(test_receiver_out_of_memory_fails_that_message),
		T(test_allocation_failures_anywhere),
#undef T
	};

	setenv("RXP_LOG", "error", 0);
	return cmocka_run_group_tests_name("verbs_mock", tests, NULL, NULL);
}
