/* SPDX-License-Identifier: MIT */
/*
 * Remote input is untrusted: malformed frames, descriptors out of range,
 * credit and rendezvous violations, bad private data, and every rdma_cm
 * failure end that connection with a clear status, never the process.
 * Runs on the fake fabric (test_verbs_fake.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rxp_auth.h"
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
	unsetenv("RXP_VERBS_CONNECT_TIMEOUT_MS");
	assert_int_equal(fk.live_mrs, 0);
	assert_int_equal(fk.live_qps, 0);
	assert_int_equal(fk.live_ids, 0);
	return 0;
}

static uint32_t qpn_of(struct rxp_conn *c)
{
	return to_vconn(c)->qpn;
}

/* -------------------------------------------------------------- frames */

struct frame {
	uint8_t b[1024];
	size_t len;
};

static void data_frame(struct frame *f, uint32_t nst, uint16_t npay,
		       uint64_t plen, uint32_t token)
{
	struct verbs_hdr h = {.kind = VERBS_K_DATA,
			      .npay = npay,
			      .count = nst,
			      .payload_len = plen,
			      .token = token};

	memset(f, 0, sizeof(*f));
	verbs_hdr_encode(f->b, &h);
	f->len = VERBS_HDR_SIZE + (size_t)(nst + npay) * VERBS_DESC_SIZE +
		 (npay ? 0 : plen);
}

static void put_desc(struct frame *f, uint32_t i, uint64_t addr, uint64_t len,
		     uint32_t rkey, uint32_t fl)
{
	struct verbs_desc d = {addr, len, rkey, fl};

	verbs_desc_encode(f->b + VERBS_HDR_SIZE + i * VERBS_DESC_SIZE, &d);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4); /* little-endian hosts only, like the tests */
}

typedef void (*mkframe)(struct frame *f);

static void mk_short(struct frame *f)
{
	data_frame(f, 0, 0, 0, 0);
	f->len = 10;
}

static void mk_magic(struct frame *f)
{
	data_frame(f, 0, 0, 0, 0);
	f->b[0] ^= 0xff;
}

static void mk_kind(struct frame *f)
{
	data_frame(f, 0, 0, 0, 0);
	f->b[2] = 9;
}

static void mk_reserved(struct frame *f)
{
	data_frame(f, 0, 0, 0, 0);
	f->b[37] = 1;
}

static void mk_hflags(struct frame *f)
{
	data_frame(f, 0, 0, 0, 0);
	f->b[3] = 0x80;
}

static void mk_too_many_storages(struct frame *f)
{
	data_frame(f, 0, 0, 0, 0);
	put32(f->b + 12, RXP_WIRE_MAX_STORAGES + 1);
	f->len = sizeof(f->b);
}

static void mk_too_many_pieces(struct frame *f)
{
	data_frame(f, 0, VERBS_MAX_PAYDESC + 1, 100, 1);
	f->len = sizeof(f->b);
}

static void mk_payload_over_limit(struct frame *f)
{
	data_frame(f, 0, 1, (uint64_t)1 << 40, 1);
	put_desc(f, 0, 4096, (uint64_t)1 << 40, 5, 0);
}

static void mk_descs_past_end(struct frame *f)
{
	data_frame(f, 30, 0, 0, 0);
	f->len = VERBS_HDR_SIZE + 5 * VERBS_DESC_SIZE;
}

static void mk_inline_payload_past_end(struct frame *f)
{
	data_frame(f, 0, 0, 500, 0);
	f->len = VERBS_HDR_SIZE + 100;
}

static void mk_inline_storage_past_end(struct frame *f)
{
	data_frame(f, 1, 0, 0, 0);
	put_desc(f, 0, VERBS_HDR_SIZE + VERBS_DESC_SIZE, 1000, 0,
		 VERBS_DF_INLINE);
}

static void mk_inline_storage_huge_offset(struct frame *f)
{
	data_frame(f, 1, 0, 0, 0);
	put_desc(f, 0, UINT64_MAX - 4, 8, 0, VERBS_DF_INLINE);
}

static void mk_inline_storage_in_header(struct frame *f)
{
	data_frame(f, 1, 0, 0, 0);
	put_desc(f, 0, 0, 16, 0, VERBS_DF_INLINE);
}

static void mk_remote_empty(struct frame *f)
{
	data_frame(f, 1, 0, 0, 1);
	put_desc(f, 0, 4096, 0, 5, 0);
}

static void mk_remote_wraps(struct frame *f)
{
	data_frame(f, 1, 0, 0, 1);
	put_desc(f, 0, UINT64_MAX - 10, 100, 5, 0);
}

static void mk_storage_over_limit(struct frame *f)
{
	data_frame(f, 1, 0, 0, 1);
	put_desc(f, 0, 4096, RXP_WIRE_DEFAULT_MAX_STORAGE + 1, 5, 0);
}

static void mk_pieces_do_not_add_up(struct frame *f)
{
	data_frame(f, 0, 2, 1000, 1);
	put_desc(f, 0, 4096, 400, 5, 0);
	put_desc(f, 1, 8192, 400, 5, 0);
}

static void mk_pieces_exceed(struct frame *f)
{
	data_frame(f, 0, 2, 1000, 1);
	put_desc(f, 0, 4096, 900, 5, 0);
	put_desc(f, 1, 8192, 900, 5, 0);
}

static void mk_remote_without_token(struct frame *f)
{
	data_frame(f, 1, 0, 0, 0);
	put_desc(f, 0, 4096, 100, 5, 0);
}

static void mk_token_without_remote(struct frame *f)
{
	data_frame(f, 0, 0, 0, 7);
}

static void mk_unknown_dflags(struct frame *f)
{
	data_frame(f, 1, 0, 0, 0);
	put_desc(f, 0, 64, 0, 0, 0x6);
}

static void mk_credits_never_sent(struct frame *f)
{
	data_frame(f, 0, 0, 0, 0);
	put32(f->b + 8, 5); /* returns 5 credits, B sent nothing */
}

static void mk_ack_too_many(struct frame *f)
{
	struct verbs_hdr h = {.kind = VERBS_K_ACK,
			      .count = VERBS_ACK_MAX_DONE + 1};

	memset(f, 0, sizeof(*f));
	verbs_hdr_encode(f->b, &h);
	f->len = 200;
}

static void mk_ack_short(struct frame *f)
{
	struct verbs_hdr h = {.kind = VERBS_K_ACK, .count = 3};

	memset(f, 0, sizeof(*f));
	verbs_hdr_encode(f->b, &h);
	f->len = VERBS_HDR_SIZE + 8;
}

static void mk_ack_unknown_token(struct frame *f)
{
	struct verbs_hdr h = {.kind = VERBS_K_ACK, .count = 1};
	struct verbs_done d = {0x10003, 0};

	memset(f, 0, sizeof(*f));
	verbs_hdr_encode(f->b, &h);
	verbs_done_encode(f->b + VERBS_HDR_SIZE, &d);
	f->len = VERBS_HDR_SIZE + VERBS_DONE_SIZE;
}

static void mk_ack_flags(struct frame *f)
{
	struct verbs_hdr h = {.kind = VERBS_K_ACK, .hflags = 0x40};

	memset(f, 0, sizeof(*f));
	verbs_hdr_encode(f->b, &h);
	f->len = VERBS_HDR_SIZE;
}

static void test_malformed_frames_fail_the_connection(void **state)
{
	static const mkframe cases[] = {
		mk_short,
		mk_magic,
		mk_kind,
		mk_reserved,
		mk_hflags,
		mk_too_many_storages,
		mk_too_many_pieces,
		mk_payload_over_limit,
		mk_descs_past_end,
		mk_inline_payload_past_end,
		mk_inline_storage_past_end,
		mk_inline_storage_huge_offset,
		mk_inline_storage_in_header,
		mk_remote_empty,
		mk_remote_wraps,
		mk_storage_over_limit,
		mk_pieces_do_not_add_up,
		mk_pieces_exceed,
		mk_remote_without_token,
		mk_token_without_remote,
		mk_unknown_dflags,
		mk_credits_never_sent,
		mk_ack_too_many,
		mk_ack_short,
		mk_ack_unknown_token,
		mk_ack_flags,
	};

	for (unsigned i = 0; i < RXP_ARRAY_SIZE(cases); i++) {
		struct rxp_conn *c = fx_connect(&A, &B);
		struct fx_ck k = {0};
		struct frame f;

		assert_non_null(c);
		/* B has a send queued for credits it will never get */
		cases[i](&f);
		assert_int_equal(fk_inject_recv(qpn_of(B.conn), f.b, f.len), 0);
		assert_true(FX_PUMP(&A, &B, 2000, B.down == (int)i + 1));
		assert_int_equal(B.down_status, -RXP_E_PROTO);
		assert_int_equal(B.nmsgs, 0);
		assert_true(FX_PUMP(&A, &B, 2000, A.down == (int)i + 1));
		(void)k;
	}
}

static void test_valid_injected_frame_is_delivered(void **state)
{
	struct rxp_conn *c = fx_connect(&A, &B);
	struct frame f;

	(void)c;
	data_frame(&f, 2, 0, 16, 0);
	pattern_fill(f.b + VERBS_HDR_SIZE + 2 * VERBS_DESC_SIZE, 16, 0, 0);
	put_desc(&f, 0, 128, 10, 0, VERBS_DF_INLINE);
	pattern_fill(f.b + 128, 10, 0, 1);
	put_desc(&f, 1, 200, 0, 0, VERBS_DF_INLINE);
	f.len = 200;
	assert_int_equal(fk_inject_recv(qpn_of(B.conn), f.b, f.len), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1));
	assert_true(B.msgs[0].ok);
	assert_int_equal(B.msgs[0].nst, 2);
	assert_int_equal(B.down, 0);
}

static void test_frame_larger_than_buffer(void **state)
{
	static uint8_t big[VERBS_DEF_EAGER + 100];

	fx_connect(&A, &B);
	/* the HCA reports a local length error: the conn fails as PROTO */
	assert_int_equal(fk_inject_recv(qpn_of(B.conn), big, sizeof(big)), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.down == 1));
	assert_int_equal(B.down_status, -RXP_E_PROTO);
}

static void test_beyond_credits(void **state)
{
	struct frame f;
	uint32_t q;

	fx_connect(&A, &B);
	q = qpn_of(B.conn);
	data_frame(&f, 0, 0, 0, 0);
	for (unsigned i = 0; i <= VERBS_DEF_CREDITS; i++)
		assert_int_equal(fk_inject_recv(q, f.b, f.len), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.down == 1));
	assert_int_equal(B.down_status, -RXP_E_PROTO);
	assert_int_equal(B.nmsgs, VERBS_DEF_CREDITS);
}

static void test_rendezvous_beyond_depth(void **state)
{
	struct frame f;
	uint32_t q;

	fx_connect(&A, &B);
	q = qpn_of(B.conn);
	for (unsigned i = 0; i <= VERBS_DEF_RDV; i++) {
		data_frame(&f, 1, 0, 0, 0x10000 | i);
		put_desc(&f, 0, 4096, 100, 77, 0);
		assert_int_equal(fk_inject_recv(q, f.b, f.len), 0);
	}
	assert_true(FX_PUMP(&A, &B, 2000, B.down == 1));
	assert_int_equal(B.down_status, -RXP_E_PROTO);
}

static void test_rendezvous_bad_rkey(void **state)
{
	static char mem[4096];
	struct ibv_mr *mr;
	struct frame f;
	uint32_t q;

	fx_connect(&A, &B);
	q = qpn_of(B.conn);
	mr = fk_peer_mr(qpn_of(A.conn), mem, sizeof(mem),
			IBV_ACCESS_REMOTE_READ);
	/* a range past the end of the peer's registration */
	data_frame(&f, 1, 0, 0, 0x10000);
	put_desc(&f, 0, (uintptr_t)mem + 100, sizeof(mem), mr->rkey, 0);
	assert_int_equal(fk_inject_recv(q, f.b, f.len), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.down == 1));
	assert_int_equal(B.down_status, -EACCES);
	assert_int_equal(B.nmsgs, 0);
	verbs_sys_get()->dereg_mr(mr);
}

static void test_rendezvous_unknown_token_at_sender(void **state)
{
	static char mem[5000];
	struct ibv_mr *mr;
	struct frame f;

	fx_connect(&A, &B);
	mr = fk_peer_mr(qpn_of(A.conn), mem, sizeof(mem),
			IBV_ACCESS_REMOTE_READ);
	pattern_fill(mem, sizeof(mem), 0, 1);
	data_frame(&f, 1, 0, 0, 0x50001);
	put_desc(&f, 0, (uintptr_t)mem, sizeof(mem), mr->rkey, 0);
	assert_int_equal(fk_inject_recv(qpn_of(B.conn), f.b, f.len), 0);
	/* B reads it and delivers it; A never sent it, so its ACK is a
	 * protocol error at A */
	assert_true(FX_PUMP(&A, &B, 2000, A.down == 1));
	assert_int_equal(B.nmsgs, 1);
	assert_true(B.msgs[0].ok);
	assert_int_equal(A.down_status, -RXP_E_PROTO);
	verbs_sys_get()->dereg_mr(mr);
}

/* A duplicate READ request can reach the sender after the receiver's READ
 * completed and the sender's send did (a retransmission that crossed the
 * completion, or a reordered one): the sender's registration must still
 * be there, or its QP goes to error (the connection loss seen over rxe
 * with netem). Released registrations are retired for a grace period,
 * never found again, and deregistered when it ends. */
static void test_duplicate_read_after_the_send(void **state)
{
	const size_t sz[2] = {256 << 10, 100 << 10};
	struct verbs_tp *vt = to_vtp(A.tp);
	struct fx_ck k[3] = {{0}};
	void *m[3][3];
	struct rxp_conn *c;
	int mrs;

	fk.replay_reads_ms = 20;
	c = fx_connect(&A, &B);
	assert_non_null(c);
	assert_int_equal(fx_send(c, 1, 100, sz, 2, m[0], &k[0]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k[0].calls == 1));
	assert_int_equal(k[0].status, 0);
	fx_free(m[0], 2); /* the sender's memory is the user's again */
	/* both registrations wait, out of the cache */
	assert_int_equal(vt->rc.nretired, 2);
	assert_int_equal(vt->rc.n, 0);
	/* the duplicates arrive; the connection lives on */
	assert_true(
		FX_PUMP(&A, &B, 2000, fk.replays_ok + fk.replays_failed >= 2));
	assert_int_equal(fk.replays_failed, 0);
	assert_int_equal(fx_send(c, 2, 100, sz, 1, m[1], &k[1]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 2 && k[1].calls == 1));
	assert_int_equal(k[1].status, 0);
	assert_int_equal(A.down + B.down, 0);
	assert_true(B.msgs[0].ok && B.msgs[1].ok);
	fx_free(m[1], 1);

	/* the grace ends: the retired ones are deregistered, by the timer */
	vt->rc.grace_ns = 50000000;
	assert_int_equal(fx_send(c, 3, 100, sz + 1, 1, m[2], &k[2]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 3 && k[2].calls == 1));
	fx_free(m[2], 1);
	mrs = fk.live_mrs;
	assert_int_equal(vt->rc.nretired, 4);
	vt->rc.retired->retire_at = 0; /* all but the last one: due now */
	vt->rc.retired->rnext->retire_at = 0;
	vt->rc.retired->rnext->rnext->retire_at = 0;
	assert_true(FX_PUMP(&A, &B, 2000, vt->rc.nretired == 0));
	assert_int_equal(fk.live_mrs, mrs - 4);
	assert_int_equal(A.down + B.down, 0);
	(void)state;
}

/* Without the grace (the old behaviour, and what the fake's knob must
 * catch), the duplicate kills the sender's QP. */
static void test_duplicate_read_without_grace_fails(void **state)
{
	const size_t sz = 256 << 10;
	struct fx_ck k = {0};
	struct rxp_conn *c;
	void *m[2];

	fk.replay_reads_ms = 20;
	c = fx_connect(&A, &B);
	assert_non_null(c);
	to_vtp(A.tp)->rc.grace_ns = 0;
	assert_int_equal(fx_send(c, 1, 100, &sz, 1, m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k.calls == 1));
	fx_free(m, 1);
	assert_true(FX_PUMP(&A, &B, 2000, fk.replays_failed == 1));
	assert_int_equal(fx_send(c, 2, 100, &sz, 1, m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, A.down == 1));
	fx_free(m, 1);
	(void)state;
}

/* -------------------------------------------------------- private data */

static void pdata(uint8_t *out, uint16_t version, uint32_t credits,
		  uint16_t reject)
{
	struct verbs_pdata p = {.version = version,
				.worker_id = 7,
				.credits = credits,
				.eager_size = 65536,
				.max_rdv = 8,
				.reject = reject,
				.max_payload = 1 << 20,
				.max_storage = 1 << 20};

	verbs_pdata_encode(out, &p);
}

static int port_of(const char *addr)
{
	return atoi(strrchr(addr, ':') + 1);
}

static uint16_t reject_reason(void)
{
	struct verbs_pdata p;

	assert_int_equal(verbs_pdata_decode(fk.last_reject, fk.last_reject_len,
					    &p, NULL),
			 0);
	return p.reject;
}

static void test_bad_connect_requests_are_rejected(void **state)
{
	uint8_t pd[56] = {0};

	/* short */
	assert_non_null(fk_inject_connect(port_of(B.addr), pd, 4));
	assert_true(FX_PUMP(&A, &B, 2000, fk.rejects == 1));
	assert_int_equal(reject_reason(), VERBS_REJ_MALFORMED);
	/* newer protocol */
	pdata(pd, VERBS_PROTO_VERSION + 1, 8, 0);
	assert_non_null(fk_inject_connect(port_of(B.addr), pd, sizeof(pd)));
	assert_true(FX_PUMP(&A, &B, 2000, fk.rejects == 2));
	assert_int_equal(reject_reason(), VERBS_REJ_VERSION);
	/* credits out of range */
	pdata(pd, VERBS_PROTO_VERSION, 0, 0);
	assert_non_null(fk_inject_connect(port_of(B.addr), pd, sizeof(pd)));
	assert_true(FX_PUMP(&A, &B, 2000, fk.rejects == 3));
	assert_int_equal(reject_reason(), VERBS_REJ_MALFORMED);
	/* no private data at all */
	assert_non_null(fk_inject_connect(port_of(B.addr), NULL, 0));
	assert_true(FX_PUMP(&A, &B, 2000, fk.rejects == 4));
	assert_int_equal(B.up + B.down, 0); /* the agent never heard of them */
	/* a good one is accepted */
	pdata(pd, VERBS_PROTO_VERSION, 8, 0);
	assert_non_null(fk_inject_connect(port_of(B.addr), pd, sizeof(pd)));
	assert_true(FX_PUMP(&A, &B, 2000, B.up == 1));
	assert_int_equal(B.conn->peer_id, 7);
}

static void raw_connect_expect(int err)
{
	struct rxp_conn *c = NULL;
	char addr[64];
	int down = A.down;

	fk.raw_port = 30000;
	snprintf(addr, sizeof(addr), "10.0.0.1:%d", fk.raw_port);
	assert_int_equal(A.tp->ops->connect(A.tp, addr, 3, &c), 0);
	assert_true(FX_PUMP(&A, &B, 2000, A.down == down + 1));
	assert_int_equal(A.down_status, err);
	assert_int_equal(A.up, 0);
}

static void test_bad_accepts_and_rejects(void **state)
{
	pdata(fk.raw_pd, VERBS_PROTO_VERSION + 1, 8, 0);
	fk.raw_pd_len = VERBS_PD_SIZE;
	raw_connect_expect(-RXP_E_VERSION);
	memset(fk.raw_pd, 0xab, sizeof(fk.raw_pd));
	raw_connect_expect(-RXP_E_PROTO);
	fk.raw_pd_len = 0;
	raw_connect_expect(-RXP_E_PROTO);
	fk.raw_reject = true;
	pdata(fk.raw_pd, VERBS_PROTO_VERSION, 8, VERBS_REJ_VERSION);
	fk.raw_pd_len = VERBS_PD_SIZE;
	raw_connect_expect(-RXP_E_VERSION);
	pdata(fk.raw_pd, VERBS_PROTO_VERSION, 8, VERBS_REJ_RESOURCES);
	raw_connect_expect(-ENOSPC);
	pdata(fk.raw_pd, VERBS_PROTO_VERSION + 3, 8, 0);
	raw_connect_expect(-RXP_E_VERSION);
	fk.raw_pd_len = 0;
	raw_connect_expect(-ECONNREFUSED);
}

/* ---------------------------------------------------------- cm events */

static void connect_expect(const char *addr, int err)
{
	struct rxp_conn *c = NULL;
	struct fx_ck k = {0};
	struct rxp_msg_out m = {.id = 1};
	int down = A.down;

	assert_int_equal(A.tp->ops->connect(A.tp, addr, 2, &c), 0);
	/* queued before the connection is up: fails with it */
	assert_int_equal(c->tp->ops->send(c, &m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 3000, A.down == down + 1));
	assert_int_equal(A.down_status, err);
	assert_int_equal(k.calls, 1);
	assert_int_equal(k.status, err);
}

static void test_cm_failures(void **state)
{
	char dead[64];

	snprintf(dead, sizeof(dead), "10.0.0.1:%d", port_of(B.addr) + 100);
	connect_expect(dead, -ECONNREFUSED);
	fk.addr_error = -EHOSTUNREACH;
	connect_expect(B.addr, -EHOSTUNREACH);
	fk.addr_error = 0;
	connect_expect("10.9.9.9:5000", -EHOSTUNREACH);
	fk.route_error = -ETIMEDOUT;
	connect_expect(B.addr, -ETIMEDOUT);
	fk.route_error = 0;
	fk.unreachable = -ETIMEDOUT;
	connect_expect(B.addr, -ETIMEDOUT);
	fk.unreachable = 0;
	fk_fail(FK_RESOLVE_ROUTE, 0, ENOMEM, false);
	connect_expect(B.addr, -ENOMEM);
	fk_fail(FK_CONNECT, 0, EINVAL, false);
	connect_expect(B.addr, -EINVAL);
	fk_fail(FK_CREATE_QP, 0, ENOMEM, false);
	connect_expect(B.addr, -ENOMEM);
	/* the passive side cannot make a QP: it rejects, the active side
	 * hears "no resources" */
	fk_fail(FK_CREATE_QP, 1, ENOMEM, false);
	connect_expect(B.addr, -ENOSPC);
	assert_int_equal(B.up + B.down, 0);
	/* still fine afterwards */
	assert_non_null(fx_connect(&A, &B));
}

static void test_connect_sync_errors(void **state)
{
	struct rxp_conn *c = NULL;

	assert_int_equal(A.tp->ops->connect(A.tp, "nonsense", 2, &c), -EINVAL);
	assert_int_equal(A.tp->ops->connect(A.tp, "10.0.0.1:0", 2, &c),
			 -EINVAL);
	assert_int_equal(A.tp->ops->connect(A.tp, "10.0.0.1:70000", 2, &c),
			 -EINVAL);
	assert_int_equal(A.tp->ops->connect(A.tp, "[::1:5", 2, &c), -EINVAL);
	fk_fail(FK_RESOLVE_ADDR, 0, ENODEV, false);
	assert_int_equal(A.tp->ops->connect(A.tp, B.addr, 2, &c), -ENODEV);
	assert_null(c);
	FX_PUMP(&A, &B, 20, false);
	assert_int_equal(A.down, 0); /* error return: no callback */
}

static void test_connect_timeout(void **state)
{
	fx_close(&A);
	setenv("RXP_VERBS_CONNECT_TIMEOUT_MS", "200", 1);
	assert_int_equal(fx_open(&A, 1), 0);
	fk.no_answer = true;
	connect_expect(B.addr, -ETIMEDOUT);
}

static void test_accept_fails(void **state)
{
	fx_close(&A);
	setenv("RXP_VERBS_CONNECT_TIMEOUT_MS", "200", 1);
	assert_int_equal(fx_open(&A, 1), 0);
	fk_fail(FK_ACCEPT, 0, EIO, false);
	connect_expect(B.addr, -ENOSPC);
	assert_int_equal(B.up + B.down, 0);
}

static void test_disconnected_and_device_removal(void **state)
{
	struct rxp_conn *c = fx_connect(&A, &B);
	struct fx_ck k = {0};
	void *m[1];

	fk.no_answer = false;
	/* queue a send B will never get credits for, then B vanishes */
	fk_inject_event(to_vconn(c)->id, RDMA_CM_EVENT_DISCONNECTED, 0);
	assert_int_equal(fx_send(c, 1, 10, NULL, 0, m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, A.down == 1));
	assert_int_equal(A.down_status, -ECONNRESET);
	assert_int_equal(k.calls, 1);
	c = fx_connect(&A, &B);
	fk_inject_event(to_vconn(c)->id, RDMA_CM_EVENT_DEVICE_REMOVAL, 0);
	assert_true(FX_PUMP(&A, &B, 2000, A.down == 2));
	assert_int_equal(A.down_status, -ENODEV);
	/* the listener's device goes: the whole transport fails */
	fk_inject_event(to_vtp(B.tp)->lid, RDMA_CM_EVENT_DEVICE_REMOVAL, 0);
	for (int64_t end = rxp_now_ns() + 1000000000;
	     rxp_now_ns() < end && B.tp->ops->progress(B.tp) >= 0;)
		;
	assert_int_equal(B.tp->ops->progress(B.tp), -ENODEV);
	assert_int_equal(B.tp->ops->progress(B.tp), -ENODEV);
	assert_int_equal(B.down, 2); /* its connections went with it */
	fx_free(m, 0);
}

/* ---------------------------------------------------- authentication */

static const struct rxp_auth_key KA = {.on = true, .k = {1, 2, 3}};
static const struct rxp_auth_key KB = {.on = true, .k = {1, 2, 4}};

/* Reopen A and B with these secrets (NULL: none). */
static void reopen(const struct rxp_auth_key *ka, const struct rxp_auth_key *kb)
{
	fx_close(&A);
	fx_close(&B);
	assert_int_equal(fx_open_key(&A, 1, ka), 0);
	assert_int_equal(fx_open_key(&B, 2, kb), 0);
}

static uint64_t refused(struct fx_side *s)
{
	return to_vtp(s->tp)->stats.auth_refused;
}

/* The same secret: the proofs go both ways, then data flows (eager and
 * rendezvous, both directions) as without one. */
static void test_auth_same_secret(void **state)
{
	const size_t sz = 100 << 10;
	struct fx_ck k[2] = {{0}};
	struct rxp_conn *c;
	void *m[2][2];

	reopen(&KA, &KA);
	c = fx_connect(&A, &B);
	assert_non_null(c);
	assert_int_equal(to_vconn(c)->state, VC_UP);
	assert_int_equal(fx_send(c, 1, 100, &sz, 1, m[0], &k[0]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, B.nmsgs == 1 && k[0].calls == 1));
	assert_int_equal(fx_send(B.conn, 2, 70000, NULL, 0, m[1], &k[1]), 0);
	assert_true(FX_PUMP(&A, &B, 2000, A.nmsgs == 1 && k[1].calls == 1));
	assert_true(B.msgs[0].ok && A.msgs[0].ok);
	assert_int_equal(B.conn->peer_id, 1);
	assert_int_equal(refused(&A) + refused(&B), 0);
	assert_int_equal(A.down + B.down, 0);
	fx_free(m[0], 1);
	fx_free(m[1], 0);
	(void)state;
}

/* A wrong secret: the acceptor refuses the connector's proof and never
 * answers with its own; a send queued before is failed, nothing lands. */
static void test_auth_wrong_secret(void **state)
{
	struct fx_ck k = {0};
	struct rxp_conn *c = NULL;
	void *m[1];

	reopen(&KA, &KB);
	assert_int_equal(A.tp->ops->connect(A.tp, B.addr, 2, &c), 0);
	assert_int_equal(fx_send(c, 1, 100, NULL, 0, m, &k), 0);
	assert_true(FX_PUMP(&A, &B, 2000, A.down == 1));
	assert_int_equal(A.down_status, -RXP_E_AUTH);
	assert_int_equal(k.calls, 1);
	assert_int_not_equal(k.status, 0);
	assert_int_equal(refused(&B), 1);
	assert_int_equal(B.up + B.nmsgs, 0); /* the agent never heard of it */
	fx_free(m, 0);
	(void)state;
}

/* A secret on one side only: refused in the CM exchange, both ways. */
static void test_auth_secret_on_one_side(void **state)
{
	reopen(&KA, NULL);
	assert_null(fx_connect(&A, &B));
	assert_int_equal(A.down_status, -RXP_E_AUTH);
	assert_int_equal(B.up, 0);
	reopen(NULL, &KA);
	assert_null(fx_connect(&A, &B));
	assert_int_equal(A.down_status, -RXP_E_AUTH);
	assert_int_equal(refused(&B), 1);
	assert_int_equal(B.up, 0);
	(void)state;
}

/* A stranger's connect request: accepted by the CM (it carries the AUTH
 * feature), then it sends data before any proof. */
static struct rdma_cm_id *stranger(void)
{
	uint8_t pd[VERBS_PD_SIZE];
	struct verbs_pdata p = {.version = VERBS_PROTO_VERSION,
				.worker_id = 3,
				.credits = 8,
				.eager_size = 65536,
				.max_rdv = 8,
				.max_payload = 1 << 20,
				.max_storage = 1 << 20,
				.features = VERBS_PDF_AUTH};
	struct rdma_cm_id *id;

	verbs_pdata_encode(pd, &p);
	fk.last_accept_len = 0;
	id = fk_inject_connect(port_of(B.addr), pd, sizeof(pd));
	assert_non_null(id);
	assert_true(FX_PUMP(&A, &B, 2000,
			    fk.last_accept_len == VERBS_PD_AUTH_SIZE &&
				    to_vconn(id->context)->state == VC_AUTH));
	return id;
}

static void test_auth_frames_before_the_proof(void **state)
{
	struct rdma_cm_id *id;
	struct frame f;

	reopen(NULL, &KA);
	id = stranger();
	data_frame(&f, 0, 0, 16, 0);
	assert_int_equal(fk_inject_recv(id->qp->qp_num, f.b, f.len), 0);
	assert_true(FX_PUMP(&A, &B, 2000, refused(&B) == 1));
	assert_int_equal(B.up + B.nmsgs, 0);
	(void)state;
}

/* The connector's proof over the transcript of a connection; @rep is the
 * accept's private data as the stranger saw it. */
static void proof_frame(uint8_t *f, const struct rxp_auth_key *k,
			const char *label, const uint8_t *req,
			const uint8_t *rep, const uint8_t *nc)
{
	uint8_t t[VERBS_PD_SIZE + VERBS_PD_AUTH_SIZE], b[36], mac[32];

	memcpy(t, req, VERBS_PD_SIZE);
	memcpy(t + VERBS_PD_SIZE, rep, VERBS_PD_AUTH_SIZE);
	memcpy(b, nc, 32);
	put32(b + 32, FX_WORLD);
	rxp_auth_mac(k, label, t, sizeof(t), b, sizeof(b), mac);
	verbs_auth_encode(f, nc, mac);
}

/* A right proof is taken (the positive control); the same frame replayed
 * on a second connection (a fresh acceptor nonce), a proof with the
 * acceptor's label (reflected) and one under another key are not. */
static void test_auth_replayed_and_reflected_proofs(void **state)
{
	uint8_t req[VERBS_PD_SIZE], rep[VERBS_PD_AUTH_SIZE];
	uint8_t f[VERBS_AUTH_FRAME], nc[32] = {9, 9, 9};
	struct rdma_cm_id *id;

	reopen(NULL, &KA);
	id = stranger();
	memcpy(req, to_vconn(id->context)->auth_t, sizeof(req));
	memcpy(rep, fk.last_accept, sizeof(rep));
	proof_frame(f, &KA, VERBS_AUTH_LABEL_CONN, req, rep, nc);
	assert_int_equal(fk_inject_recv(id->qp->qp_num, f, sizeof(f)), 0);
	/* up (then down: there is no peer QP to take B's own proof) */
	assert_true(FX_PUMP(&A, &B, 2000, B.up == 1));
	assert_int_equal(refused(&B), 0);

	id = stranger(); /* the same frame again */
	assert_memory_not_equal(fk.last_accept + VERBS_PD_SIZE,
				rep + VERBS_PD_SIZE, 32);
	assert_int_equal(fk_inject_recv(id->qp->qp_num, f, sizeof(f)), 0);
	assert_true(FX_PUMP(&A, &B, 2000, refused(&B) == 1));

	id = stranger(); /* right transcript, the acceptor's label */
	memcpy(rep, fk.last_accept, sizeof(rep));
	proof_frame(f, &KA, VERBS_AUTH_LABEL_ACC, req, rep, nc);
	assert_int_equal(fk_inject_recv(id->qp->qp_num, f, sizeof(f)), 0);
	assert_true(FX_PUMP(&A, &B, 2000, refused(&B) == 2));

	id = stranger(); /* right transcript, another key */
	memcpy(rep, fk.last_accept, sizeof(rep));
	proof_frame(f, &KB, VERBS_AUTH_LABEL_CONN, req, rep, nc);
	assert_int_equal(fk_inject_recv(id->qp->qp_num, f, sizeof(f)), 0);
	assert_true(FX_PUMP(&A, &B, 2000, refused(&B) == 3));
	assert_int_equal(B.up, 1);
	assert_int_equal(B.nmsgs, 0);
	(void)state;
}

/* ------------------------------------------------------------- caps */

static unsigned in_setup(struct fx_side *s)
{
	unsigned n = 0;

	for (struct verbs_conn *c = to_vtp(s->tp)->conns; c; c = c->next)
		n += !c->base.outgoing && c->state == VC_AUTH;
	return n;
}

/* Strangers that connect and never prove the secret: beyond
 * RXP_MAX_UNAUTH_CONNS the oldest goes; a real peer still gets in. */
static void test_cap_on_connections_in_setup(void **state)
{
	setenv("RXP_MAX_UNAUTH_CONNS", "2", 1);
	reopen(&KA, &KA);
	unsetenv("RXP_MAX_UNAUTH_CONNS");
	for (int i = 0; i < 5; i++)
		stranger();
	assert_int_equal(in_setup(&B), 2);
	assert_int_equal(atomic_load(&B.tp->conns_limited), 3);
	assert_non_null(fx_connect(&A, &B));
	assert_int_equal(B.up, 1);
	assert_int_equal(in_setup(&B), 1); /* it made room for A's */
	(void)state;
}

/* At RXP_MAX_CONNS connections up, a new one is rejected; bad values of
 * either cap fail open with -EINVAL. */
static void test_cap_on_connections(void **state)
{
	uint8_t pd[VERBS_PD_SIZE];
	struct fx_side x;

	setenv("RXP_MAX_CONNS", "2", 1);
	reopen(NULL, NULL);
	unsetenv("RXP_MAX_CONNS");
	pdata(pd, VERBS_PROTO_VERSION, 8, 0);
	for (int i = 0; i < 2; i++) { /* each one up before the next */
		assert_non_null(
			fk_inject_connect(port_of(B.addr), pd, sizeof(pd)));
		assert_true(FX_PUMP(&A, &B, 2000, B.up == i + 1));
	}
	assert_non_null(fk_inject_connect(port_of(B.addr), pd, sizeof(pd)));
	assert_true(FX_PUMP(&A, &B, 2000, fk.rejects == 1));
	assert_int_equal(B.up, 2);
	assert_int_equal(reject_reason(), VERBS_REJ_RESOURCES);
	assert_int_equal(atomic_load(&B.tp->conns_limited), 1);
	setenv("RXP_MAX_CONNS", "0", 1);
	assert_int_equal(fx_open(&x, 5), -EINVAL);
	unsetenv("RXP_MAX_CONNS");
	setenv("RXP_MAX_UNAUTH_CONNS", "many", 1);
	assert_int_equal(fx_open(&x, 5), -EINVAL);
	unsetenv("RXP_MAX_UNAUTH_CONNS");
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_malformed_frames_fail_the_connection),
		T(test_valid_injected_frame_is_delivered),
		T(test_frame_larger_than_buffer),
		T(test_beyond_credits),
		T(test_rendezvous_beyond_depth),
		T(test_rendezvous_bad_rkey),
		T(test_rendezvous_unknown_token_at_sender),
		T(test_duplicate_read_after_the_send),
		T(test_duplicate_read_without_grace_fails),
		T(test_bad_connect_requests_are_rejected),
		T(test_bad_accepts_and_rejects),
		T(test_cm_failures),
		T(test_connect_sync_errors),
		T(test_connect_timeout),
		T(test_accept_fails),
		T(test_disconnected_and_device_removal),
		T(test_auth_same_secret),
		T(test_auth_wrong_secret),
		T(test_auth_secret_on_one_side),
		T(test_auth_frames_before_the_proof),
		T(test_auth_replayed_and_reflected_proofs),
		T(test_cap_on_connections_in_setup),
		T(test_cap_on_connections),
#undef T
	};

	setenv("RXP_LOG", "error", 0);
	return cmocka_run_group_tests_name("verbs_proto", tests, NULL, NULL);
}
