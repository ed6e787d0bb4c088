/* SPDX-License-Identifier: MIT */
/*
 * TCP transport pieces without sockets: address parsing, handshake and
 * header codecs, the receive parser fed in every split (byte by byte,
 * random chunks, direct iovecs, random garbage), and the refcounted
 * buffer pool with buffers released from other threads (run under TSan
 * too).
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rxp_addr.h"
#include "tcp/tcp.h"
#include "tcp_raw.h"

static void test_parse_addr(void **state)
{
	struct sockaddr_storage sa;
	socklen_t len;
	char out[80];
	static const char *const bad[] = {
		"",	      "1.2.3.4",       "1.2.3.4:",
		"1.2.3.4:0",  "1.2.3.4:65536", "1.2.3.4:12x",
		"1.2.3.4:-1", "localhost:80",  "[::1]80",
		"[::1:80",    "::1",	       "1.2.3.4.5:80",
		":80",	      "[]:80",	       "1.2.3.4: 80",
	};

	assert_int_equal(rxp_addr_parse("127.0.0.1:80", &sa, &len), 0);
	assert_int_equal(sa.ss_family, AF_INET);
	tcp_format_addr((struct sockaddr *)&sa, out, sizeof(out));
	assert_string_equal(out, "127.0.0.1:80");
	assert_int_equal(rxp_addr_parse("[::1]:65535", &sa, &len), 0);
	assert_int_equal(sa.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	tcp_format_addr((struct sockaddr *)&sa, out, sizeof(out));
	assert_string_equal(out, "[::1]:65535");
	/* one rule with verbs: IPv6 needs its brackets (was accepted here) */
	assert_int_equal(rxp_addr_parse("fe80::1:2:443", &sa, &len), -EINVAL);
	assert_int_equal(rxp_addr_parse("[1.2.3.4]:80", &sa, &len), -EINVAL);
	assert_int_equal(rxp_addr_parse(NULL, &sa, &len), -EINVAL);
	for (size_t i = 0; i < RXP_ARRAY_SIZE(bad); i++)
		assert_int_equal(rxp_addr_parse(bad[i], &sa, &len), -EINVAL);
}

static void test_hs_codec(void **state)
{
	struct tcp_hs in = {TCP_HS_MAGIC, 1,	   40,	       7,
			    1024,	  1 << 20, 1ull << 33, 0};
	struct tcp_hs out;
	uint8_t b[TCP_HS_SIZE], raw[40];

	tcp_hs_encode(b, &in);
	raw_hs(raw, 0x48505852, 1, 40, 7, 0); /* the test's own encoder */
	assert_memory_equal(b, raw, 16);
	assert_int_equal(tcp_hs_decode(b, &out), 0);
	assert_int_equal(out.worker_id, 7);
	assert_int_equal(out.max_storages, 1024);
	assert_int_equal(out.max_payload, 1 << 20);
	assert_int_equal(out.max_storage, 1ull << 33);
	b[0] ^= 1;
	assert_int_equal(tcp_hs_decode(b, &out), -RXP_E_PROTO);
	b[0] ^= 1;
	b[4] = 2;
	assert_int_equal(tcp_hs_decode(b, &out), -RXP_E_VERSION);
	b[4] = 1;
	b[6] = 41;
	assert_int_equal(tcp_hs_decode(b, &out), -RXP_E_PROTO);
	b[6] = 40;
	b[39] = 1;
	assert_int_equal(tcp_hs_decode(b, &out), -RXP_E_VERSION);
}

/* The handshake MAC on its own: a proof checks out for exactly the
 * transcript, key and direction it was made for. */
static void test_proof_mac(void **state)
{
	static const char sec[] = "a job secret of thirty-two bytes";
	struct rxp_auth_key k, k2, none;
	uint8_t conn[TCP_HELLO_MAX], acc[TCP_HELLO_MAX], p[TCP_PROOF_SIZE];

	assert_int_equal(rxp_auth_load(sec, 32, &k), 0);
	assert_true(k.on);
	assert_int_equal(
		rxp_auth_load("a job secret of thirty-two byteS", 32, &k2), 0);
	assert_int_equal(rxp_auth_load("short", 5, &none), -EINVAL);
	assert_false(none.on);
	unsetenv("RXP_SECRET_FILE");
	assert_int_equal(rxp_auth_load(NULL, 0, &none), 0);
	assert_false(none.on); /* no secret anywhere: no authentication */
	rxp_auth_nonce(conn, sizeof(conn));
	rxp_auth_nonce(acc, sizeof(acc));
	assert_memory_not_equal(conn, acc, sizeof(conn));

	tcp_proof_make(p, &k, TCP_LABEL_CONNECTOR, conn, acc);
	assert_int_equal(rxp_get_le32(p), TCP_PROOF_MAGIC);
	assert_int_equal(tcp_proof_check(p, &k, TCP_LABEL_CONNECTOR, conn, acc),
			 0);
	/* reflected back to its sender: the other direction's label */
	assert_int_equal(tcp_proof_check(p, &k, TCP_LABEL_ACCEPTOR, conn, acc),
			 -RXP_E_AUTH);
	/* another secret */
	assert_int_equal(
		tcp_proof_check(p, &k2, TCP_LABEL_CONNECTOR, conn, acc),
		-RXP_E_AUTH);
	/* the hellos swapped, or any byte of either changed (a nonce, an
	 * identity, the world size, the version) */
	assert_int_equal(tcp_proof_check(p, &k, TCP_LABEL_CONNECTOR, acc, conn),
			 -RXP_E_AUTH);
	for (size_t i = 0; i < TCP_HELLO_MAX; i += 7) {
		conn[i] ^= 0x10;
		assert_int_equal(
			tcp_proof_check(p, &k, TCP_LABEL_CONNECTOR, conn, acc),
			-RXP_E_AUTH);
		conn[i] ^= 0x10;
		acc[i] ^= 0x01;
		assert_int_equal(
			tcp_proof_check(p, &k, TCP_LABEL_CONNECTOR, conn, acc),
			-RXP_E_AUTH);
		acc[i] ^= 0x01;
	}
	/* any bit of the MAC */
	for (size_t i = 8; i < TCP_PROOF_SIZE; i++) {
		p[i] ^= 0x80;
		assert_int_equal(
			tcp_proof_check(p, &k, TCP_LABEL_CONNECTOR, conn, acc),
			-RXP_E_AUTH);
		p[i] ^= 0x80;
	}
	/* framing */
	p[0] ^= 1;
	assert_int_equal(tcp_proof_check(p, &k, TCP_LABEL_CONNECTOR, conn, acc),
			 -RXP_E_PROTO);
	p[0] ^= 1;
	assert_int_equal(tcp_proof_check(p, &k, TCP_LABEL_CONNECTOR, conn, acc),
			 0);
	rxp_auth_wipe(&k);
	assert_false(k.on);
	rxp_auth_wipe(&k2);
}

static void test_hdr_codec(void **state)
{
	struct tcp_hdr in = {1, 200, 3, 17, 0xfedcba9876543210ull, 12345};
	struct tcp_hdr out;
	uint8_t b[TCP_HDR_SIZE], raw[32];

	tcp_hdr_encode(b, &in);
	raw_hdr(raw, 0x5852, 1, 200, 3, 17, 0xfedcba9876543210ull, 12345, NULL);
	assert_memory_equal(b, raw, 32);
	assert_int_equal(tcp_hdr_decode(b, 1024, 1 << 20, &out), 0);
	assert_int_equal(out.type, 200);
	assert_int_equal(out.flags, 3);
	assert_int_equal(out.nstorages, 17);
	assert_int_equal(out.id, 0xfedcba9876543210ull);
	assert_int_equal(out.payload_len, 12345);
	assert_int_equal(tcp_hdr_decode(b, 16, 1 << 20, &out), -RXP_E_PROTO);
	assert_int_equal(tcp_hdr_decode(b, 1024, 12344, &out), -RXP_E_PROTO);
	for (int i = 0; i < 32; i++) {
		/* every byte of magic, version and the reserved fields */
		if (i < 3 || (i >= 5 && i < 8) || (i >= 12 && i < 16)) {
			b[i] ^= 0x40;
			assert_int_equal(tcp_hdr_decode(b, 1024, 1 << 20, &out),
					 -RXP_E_PROTO);
			b[i] ^= 0x40;
		}
	}
}

/* ------------------------------------------------ parser, no sockets */

struct pfx {
	struct tcp_tp tp;
	struct tcp_conn c;
	int up, down, nmsgs;
	uint64_t ids[64];
	bool ok[64];
};

static void p_on_conn(void *ctx, struct rxp_conn *c, int status)
{
	struct pfx *p = ctx;

	if (status == 0)
		p->up++;
	else
		p->down++;
}

static void p_on_recv(void *ctx, struct rxp_conn *c, const struct rxp_msg_in *m)
{
	struct pfx *p = ctx;
	bool ok = pattern_check(m->payload->data, m->payload->len, m->id, 0);

	for (uint32_t i = 0; i < m->nstorages; i++)
		ok = ok && pattern_check(m->storages[i]->data,
					 m->storages[i]->len, m->id, i + 1);
	if (p->nmsgs < 64) {
		p->ids[p->nmsgs] = m->id;
		p->ok[p->nmsgs] = ok;
	}
	p->nmsgs++;
}

static void p_on_send(void *ctx, void *cookie, int status)
{
}

static struct pfx *pfx_new(void)
{
	struct pfx *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->tp.cb = (struct rxp_tp_cb){p, p_on_conn, p_on_recv, p_on_send};
	p->tp.max_payload = 1 << 20;
	p->tp.max_storage = 1 << 20;
	p->tp.rx_copy_max = 16384;
	p->tp.rx_mem_max = UINT64_MAX;
	assert_int_equal(rxp_bufpool_create(16384, 0, &p->tp.pool), 0);
	assert_int_equal(
		rxp_bufpool_create(TCP_SMALL_BUF, 0, &p->tp.pool_small), 0);
	p->c.tp = &p->tp;
	p->c.base.tp = &p->tp.base;
	p->c.state = TC_HANDSHAKE;
	assert_int_equal(tcp_rx_init(&p->c.rx), 0);
	return p;
}

static void pfx_free(struct pfx *p)
{
	tcp_rx_fini(&p->c);
	rxp_bufpool_put(p->tp.pool);
	rxp_bufpool_put(p->tp.pool_small);
	free(p);
}

/* hs + 3 messages (no body; payload only; payload + 3 storages) */
static size_t make_stream(uint8_t *out)
{
	static const uint64_t lens[3] = {0, 1, 40000};
	size_t n = raw_hs(out, 0x48505852, 1, 40, 5, 0);

	n += raw_hdr(out + n, 0x5852, 1, 1, 0, 0, 10, 0, NULL);
	n += raw_hdr(out + n, 0x5852, 1, 1, 0, 0, 11, 3000, NULL);
	pattern_fill(out + n, 3000, 11, 0);
	n += 3000;
	n += raw_hdr(out + n, 0x5852, 1, 1, 0, 3, 12, 20, lens);
	pattern_fill(out + n, 20, 12, 0);
	n += 20;
	for (int i = 0; i < 3; i++) {
		pattern_fill(out + n, lens[i], 12, (uint32_t)i + 1);
		n += lens[i];
	}
	return n;
}

static void check_stream(struct pfx *p)
{
	assert_int_equal(p->up, 1);
	assert_int_equal(p->c.base.peer_id, 5);
	assert_int_equal(p->nmsgs, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(p->ids[i], 10 + (uint64_t)i);
		assert_true(p->ok[i]);
	}
	assert_int_equal(p->c.rx.state, RX_HDR);
}

static void test_parser_splits(void **state)
{
	static uint8_t s[50000];
	size_t n = make_stream(s);
	unsigned seed = 12345;

	/* byte by byte */
	{
		struct pfx *p = pfx_new();

		for (size_t i = 0; i < n; i++)
			assert_int_equal(tcp_rx_feed(&p->c, s + i, 1), 0);
		check_stream(p);
		pfx_free(p);
	}
	/* random chunks, many seeds */
	for (int round = 0; round < 50; round++) {
		struct pfx *p = pfx_new();
		size_t off = 0;

		while (off < n) {
			size_t k = 1 + rand_r(&seed) % 9000;

			if (k > n - off)
				k = n - off;
			assert_int_equal(tcp_rx_feed(&p->c, s + off, k), 0);
			off += k;
		}
		check_stream(p);
		pfx_free(p);
	}
}

/* Large bodies through the direct path, as the backends do it. */
static void test_parser_direct(void **state)
{
	static uint8_t s[50000];
	size_t n = make_stream(s), off = 0;
	struct pfx *p = pfx_new();
	unsigned seed = 7;

	p->tp.rx_copy_max = 100; /* direct for anything bigger */
	while (off < n) {
		if (tcp_rx_want_direct(&p->c)) {
			struct iovec iov[4];
			int k = tcp_rx_direct_iov(&p->c, iov, 4);
			size_t got = 0;

			assert_true(k > 0);
			/* the kernel may fill any prefix */
			for (int i = 0; i < k; i++) {
				size_t take = iov[i].iov_len;

				if (rand_r(&seed) % 2)
					take = take / 2 + 1;
				memcpy(iov[i].iov_base, s + off + got, take);
				got += take;
				if (take < iov[i].iov_len)
					break;
			}
			assert_int_equal(tcp_rx_direct_done(&p->c, got), 0);
			off += got;
		} else {
			size_t k = 1 + rand_r(&seed) % 60;

			if (k > n - off)
				k = n - off;
			assert_int_equal(tcp_rx_feed(&p->c, s + off, k), 0);
			off += k;
		}
	}
	check_stream(p);
	assert_true(p->tp.stats.body_direct > 40000);
	pfx_free(p);
}

/* Random bytes after a good handshake: an error or nothing, never a
 * crash, and everything allocated is released (ASan/LSan). */
static void test_parser_garbage(void **state)
{
	static uint8_t g[4096];
	unsigned seed = 99;
	int errors = 0;

	for (int round = 0; round < 300; round++) {
		struct pfx *p = pfx_new();
		uint8_t hs[40];
		int err = 0;

		raw_hs(hs, 0x48505852, 1, 40, 5, 0);
		assert_int_equal(tcp_rx_feed(&p->c, hs, sizeof(hs)), 0);
		for (size_t i = 0; i < sizeof(g); i++)
			g[i] = (uint8_t)rand_r(&seed);
		if (round % 2) { /* a plausible header, random fields */
			raw_hdr(g, 0x5852, 1, g[40], g[41], g[42] % 8, round,
				g[43] * 17u, NULL);
		}
		for (size_t off = 0; off < sizeof(g) && !err; off += 97)
			err = tcp_rx_feed(&p->c, g + off,
					  sizeof(g) - off < 97 ? sizeof(g) - off
							       : 97);
		errors += err != 0;
		if (err)
			assert_true(err == -RXP_E_PROTO || err == -ENOMEM);
		pfx_free(p);
	}
	assert_true(errors > 100);
}

static uint64_t ahead(struct pfx *p)
{
	return rxp_tp_counter(&p->tp.base.rx_ahead);
}

/* RXP_MAX_RX_MEMORY: what frames not yet delivered hold is counted
 * while they arrive and given back when they are delivered or dropped;
 * a piece that would pass the budget fails the connection. The third
 * frame of the stream holds 20 + 0 + 1 + 40,000 bytes. */
static void test_parser_rx_memory_budget(void **state)
{
	static uint8_t s[50000];
	size_t n = make_stream(s);
	struct pfx *p = pfx_new();

	assert_int_equal(tcp_rx_feed(&p->c, s, n - 100), 0);
	assert_int_equal(p->nmsgs, 2);
	assert_int_equal(ahead(p), 40021);
	assert_int_equal(tcp_rx_feed(&p->c, s + n - 100, 100), 0);
	assert_int_equal(p->nmsgs, 3);
	assert_int_equal(ahead(p), 0); /* delivered */
	pfx_free(p);

	p = pfx_new(); /* dropped with its connection mid-frame */
	assert_int_equal(tcp_rx_feed(&p->c, s, n - 100), 0);
	assert_int_equal(ahead(p), 40021);
	tcp_rx_fini(&p->c);
	tcp_rx_fini(&p->c); /* again: nothing more */
	assert_int_equal(ahead(p), 0);
	pfx_free(p);

	/* one byte short of the frame: refused at its large piece */
	p = pfx_new();
	p->tp.rx_mem_max = 40020;
	assert_int_equal(tcp_rx_feed(&p->c, s, n), -RXP_E_LIMIT);
	assert_int_equal(p->nmsgs, 2);
	assert_int_equal(ahead(p), 21);
	assert_int_equal(rxp_tp_counter(&p->tp.base.rx_mem_refused), 1);
	tcp_rx_fini(&p->c);
	assert_int_equal(ahead(p), 0);
	pfx_free(p);

	p = pfx_new(); /* exactly the frame: fits */
	p->tp.rx_mem_max = 40021;
	assert_int_equal(tcp_rx_feed(&p->c, s, n), 0);
	check_stream(p);
	pfx_free(p);
}

static void test_parser_alloc_fail(void **state)
{
	static uint8_t s[50000];
	size_t n = make_stream(s);
	long budget;

	/* every allocation the stream needs, failed in turn */
	for (budget = 0; budget < 20; budget++) {
		struct pfx *p = pfx_new();
		int err;

		rxp__alloc_fail_after(budget);
		err = tcp_rx_feed(&p->c, s, n);
		rxp__alloc_fail_after(-1);
		pfx_free(p);
		if (!err)
			break;
		assert_int_equal(err, -ENOMEM);
	}
	assert_true(budget > 0 && budget < 20);
}

/* ------------------------------------------------------------- pool */

struct put_arg {
	struct rxp_buf **bufs;
	int n;
};

static void *put_all(void *arg)
{
	struct put_arg *a = arg;

	for (int i = 0; i < a->n; i++)
		rxp_buf_put(a->bufs[i]);
	return NULL;
}

static void test_pool_threads(void **state)
{
	enum { T = 4, N = 500 };
	struct rxp_bufpool *p;
	static struct rxp_buf *bufs[T][N];
	struct put_arg args[T];
	pthread_t th[T];

	assert_int_equal(rxp_bufpool_create(256, 8, &p), 0);
	assert_null(rxp_bufpool_get(p, 257));
	for (int t = 0; t < T; t++)
		for (int i = 0; i < N; i++) {
			bufs[t][i] = rxp_bufpool_get(p, (size_t)i % 257);
			assert_non_null(bufs[t][i]);
			memset(bufs[t][i]->data, t, bufs[t][i]->len);
		}
	assert_int_equal(rxp_bufpool_outstanding(p), T * N);
	for (int t = 0; t < T; t++) {
		args[t] = (struct put_arg){bufs[t], N};
		assert_int_equal(
			pthread_create(&th[t], NULL, put_all, &args[t]), 0);
	}
	rxp_bufpool_put(p); /* the owner leaves while buffers come back */
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
}

static void test_pool_alloc_fail(void **state)
{
	struct rxp_bufpool *p;
	long n;

	for (n = 0; n < 10; n++) {
		rxp__alloc_fail_after(n);
		if (!rxp_bufpool_create(64, 4, &p))
			break;
	}
	rxp__alloc_fail_after(0);
	{
		/* preallocated buffers need no allocation; the fifth does */
		struct rxp_buf *b[5];

		for (int i = 0; i < 4; i++)
			assert_non_null(b[i] = rxp_bufpool_get(p, 10));
		assert_null(rxp_bufpool_get(p, 10));
		rxp__alloc_fail_after(-1);
		assert_non_null(b[4] = rxp_bufpool_get(p, 10));
		for (int i = 0; i < 5; i++)
			rxp_buf_put(b[i]);
	}
	assert_int_equal(n, 5);
	rxp_bufpool_put(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_hs_codec),
		cmocka_unit_test(test_hdr_codec),
		cmocka_unit_test(test_proof_mac),
		cmocka_unit_test(test_parser_splits),
		cmocka_unit_test(test_parser_direct),
		cmocka_unit_test(test_parser_garbage),
		cmocka_unit_test(test_parser_alloc_fail),
		cmocka_unit_test(test_parser_rx_memory_budget),
		cmocka_unit_test(test_pool_threads),
		cmocka_unit_test(test_pool_alloc_fail),
	};

	setenv("RXP_LOG", "error", 1);
	rxp__log_init();
	return cmocka_run_group_tests_name("tcp_wire", tests, NULL, NULL);
}
