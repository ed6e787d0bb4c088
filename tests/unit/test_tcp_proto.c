/* SPDX-License-Identifier: MIT */
/*
 * The TCP transport against raw-socket peers that lie: garbage, bad
 * magic, wrong handshake version, huge lengths, too many storages,
 * truncated frames, silence, and a peer process that is killed. Each must
 * fail that connection (-RXP_E_PROTO, -RXP_E_VERSION, peer lost, timeout)
 * and nothing else; LeakSanitizer checks nothing leaks. Runs on both
 * backends (io_uring and poll).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tcp/tcp.h"
#include "tcp_raw.h"

#define MAX_STORAGE (256ull << 20)

struct fx {
	struct h_side s;
	int lfd, fd;
	struct rxp_conn *c;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rxp_tp_attr attr = {.max_storage = MAX_STORAGE};

	assert_non_null(f);
	f->lfd = f->fd = -1;
	assert_int_equal(h_open(&f->s, "T", 1, &attr), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	h_close(&f->s);
	if (f->fd >= 0)
		close(f->fd);
	if (f->lfd >= 0)
		close(f->lfd);
	free(f);
	return 0;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* The transport connects to a raw server; check its handshake bytes. */
static void connect_to_raw(struct fx *f)
{
	char addr[64];
	uint8_t hs[40];

	f->lfd = raw_listen(addr, sizeof(addr));
	assert_true(f->lfd >= 0);
	assert_int_equal(f->s.tp->ops->connect(f->s.tp, addr, 77, &f->c), 0);
	f->fd = raw_accept(f->lfd, &f->s);
	assert_true(f->fd >= 0);
	assert_int_equal(raw_read(f->fd, hs, sizeof(hs), &f->s), 0);
	assert_int_equal(rd32(hs), 0x48505852);	  /* "RXPH" */
	assert_int_equal(hs[4] | hs[5] << 8, 1);  /* version */
	assert_int_equal(hs[6] | hs[7] << 8, 40); /* size */
	assert_int_equal(rd32(hs + 8), 1);	  /* our worker id */
	assert_int_equal(rd32(hs + 12), 1024);	  /* max storages */
}

static bool has_down(void *arg)
{
	return ((struct h_side *)arg)->ndown > 0;
}

static bool has_up(void *arg)
{
	return ((struct h_side *)arg)->nup > 0;
}

static bool has_msg(void *arg)
{
	return ((struct h_side *)arg)->nmsgs > 0;
}

static int wait_down(struct fx *f)
{
	assert_true(h_pump(&f->s, NULL, has_down, &f->s, 2000));
	assert_ptr_equal(f->s.down[0].c, f->c);
	return f->s.down[0].status;
}

static void good_hs(struct fx *f)
{
	uint8_t hs[40];

	raw_hs(hs, 0x48505852, 1, 40, 77, 0);
	assert_int_equal(raw_write(f->fd, hs, sizeof(hs)), 0);
	assert_true(h_pump(&f->s, NULL, has_up, &f->s, 2000));
	assert_int_equal(f->s.up[0].peer_id, 77);
}

static void test_garbage_handshake(void **state)
{
	struct fx *f = *state;
	uint8_t junk[40];

	connect_to_raw(f);
	memset(junk, 0xab, sizeof(junk));
	assert_int_equal(raw_write(f->fd, junk, sizeof(junk)), 0);
	assert_int_equal(wait_down(f), -RXP_E_PROTO);
	assert_int_equal(f->s.nup, 0);
	assert_true(raw_wait_closed(f->fd, &f->s, 1000));
}

static void test_wrong_version(void **state)
{
	struct fx *f = *state;
	uint8_t hs[40];

	connect_to_raw(f);
	raw_hs(hs, 0x48505852, 2, 48, 77, 0);
	assert_int_equal(raw_write(f->fd, hs, sizeof(hs)), 0);
	assert_int_equal(wait_down(f), -RXP_E_VERSION);
	assert_int_equal(f->s.nup, 0);
	assert_int_equal(to_ttp(f->s.tp)->stats.hs_failures, 1);
}

static void test_unknown_features(void **state)
{
	struct fx *f = *state;
	uint8_t hs[40];

	connect_to_raw(f);
	raw_hs(hs, 0x48505852, 1, 40, 77, 2); /* bit 0 is TCP_F_AUTH */
	assert_int_equal(raw_write(f->fd, hs, sizeof(hs)), 0);
	assert_int_equal(wait_down(f), -RXP_E_VERSION);
}

/* A peer that wants authentication, to a worker without a secret: refused
 * (both ends log why), counted, and nothing of the peer is parsed. */
static void test_auth_peer_to_open_worker(void **state)
{
	struct fx *f = *state;
	uint8_t hs[80] = {0};

	connect_to_raw(f);
	raw_hs(hs, 0x48505852, 1, 40, 77, 1);
	assert_int_equal(raw_write(f->fd, hs, sizeof(hs)), 0);
	assert_int_equal(wait_down(f), -RXP_E_AUTH);
	assert_int_equal(f->s.nup, 0);
	assert_int_equal(f->s.tp->auth_refused, 1);
	assert_true(raw_wait_closed(f->fd, &f->s, 1000));
}

static void test_bad_handshake_size(void **state)
{
	struct fx *f = *state;
	uint8_t hs[40];

	connect_to_raw(f);
	raw_hs(hs, 0x48505852, 1, 44, 77, 0);
	assert_int_equal(raw_write(f->fd, hs, sizeof(hs)), 0);
	assert_int_equal(wait_down(f), -RXP_E_PROTO);
}

/* A good handshake, then @n bytes of a bad frame. */
static int bad_frame(struct fx *f, const uint8_t *frame, size_t n)
{
	connect_to_raw(f);
	good_hs(f);
	assert_int_equal(raw_write(f->fd, frame, n), 0);
	return wait_down(f);
}

static void test_bad_magic(void **state)
{
	uint8_t h[32];

	raw_hdr(h, 0x5853, 1, 1, 0, 0, 1, 0, NULL);
	assert_int_equal(bad_frame(*state, h, sizeof(h)), -RXP_E_PROTO);
	assert_int_equal(
		to_ttp(((struct fx *)*state)->s.tp)->stats.proto_errors, 1);
}

static void test_bad_frame_version(void **state)
{
	uint8_t h[32];

	raw_hdr(h, 0x5852, 9, 1, 0, 0, 1, 0, NULL);
	assert_int_equal(bad_frame(*state, h, sizeof(h)), -RXP_E_PROTO);
}

static void test_reserved_bits(void **state)
{
	uint8_t h[32];

	raw_hdr(h, 0x5852, 1, 1, 0, 0, 1, 0, NULL);
	h[13] = 1;
	assert_int_equal(bad_frame(*state, h, sizeof(h)), -RXP_E_PROTO);
}

static void test_huge_payload(void **state)
{
	uint8_t h[32];

	raw_hdr(h, 0x5852, 1, 1, 0, 0, 1, (64u << 20) + 1, NULL);
	assert_int_equal(bad_frame(*state, h, sizeof(h)), -RXP_E_PROTO);
}

static void test_payload_len_max_u64(void **state)
{
	uint8_t h[32];

	raw_hdr(h, 0x5852, 1, 1, 0, 0, 1, UINT64_MAX, NULL);
	assert_int_equal(bad_frame(*state, h, sizeof(h)), -RXP_E_PROTO);
}

static void test_too_many_storages(void **state)
{
	uint8_t h[32];

	raw_hdr(h, 0x5852, 1, 1, 0, 1025, 1, 0, NULL);
	assert_int_equal(bad_frame(*state, h, sizeof(h)), -RXP_E_PROTO);
}

static void test_huge_storage(void **state)
{
	uint64_t lens[3] = {1, MAX_STORAGE + 1, 1};
	uint8_t h[32 + 24];

	raw_hdr(h, 0x5852, 1, 1, 0, 3, 1, 0, lens);
	assert_int_equal(bad_frame(*state, h, sizeof(h)), -RXP_E_PROTO);
}

static void test_storage_sum_overflow(void **state)
{
	struct fx *f = *state;
	uint64_t lens[2] = {UINT64_MAX, UINT64_MAX};
	uint8_t h[32 + 16];

	/* each over the limit anyway; the sum check must not wrap first */
	raw_hdr(h, 0x5852, 1, 1, 0, 2, 1, 10, lens);
	assert_int_equal(bad_frame(f, h, sizeof(h)), -RXP_E_PROTO);
}

static void test_truncated_header(void **state)
{
	struct fx *f = *state;
	uint8_t h[32];

	raw_hdr(h, 0x5852, 1, 1, 0, 0, 1, 1000, NULL);
	connect_to_raw(f);
	good_hs(f);
	assert_int_equal(raw_write(f->fd, h, 20), 0);
	h_spin(&f->s, NULL, 20);
	assert_int_equal(f->s.ndown, 0);
	close(f->fd);
	f->fd = -1;
	assert_int_equal(wait_down(f), -RXP_E_PEER_LOST);
	assert_int_equal(f->s.nmsgs, 0);
}

static void test_truncated_body(void **state)
{
	struct fx *f = *state;
	uint64_t lens[1] = {200u << 20}; /* allowed, allocated, never sent */
	uint8_t h[40], body[4096] = {0};

	raw_hdr(h, 0x5852, 1, 1, 0, 1, 1, 10, lens);
	connect_to_raw(f);
	good_hs(f);
	assert_int_equal(raw_write(f->fd, h, sizeof(h)), 0);
	assert_int_equal(raw_write(f->fd, body, sizeof(body)), 0);
	h_spin(&f->s, NULL, 30);
	close(f->fd);
	f->fd = -1;
	assert_int_equal(wait_down(f), -RXP_E_PEER_LOST);
	assert_int_equal(f->s.nmsgs, 0);
}

/* A frame built by hand per docs/tcp.md is received intact. */
static void test_golden_frame(void **state)
{
	struct fx *f = *state;
	uint64_t lens[3] = {3, 0, 20000};
	uint8_t h[32 + 24], *st = malloc(20000);
	struct h_msg *m;

	assert_non_null(st);
	f->s.verify = false;
	f->s.keep = true;
	for (int i = 0; i < 20000; i++)
		st[i] = (uint8_t)(i * 7);
	raw_hdr(h, 0x5852, 1, 5, 2, 3, 0x1122334455667788ull, 5, lens);
	connect_to_raw(f);
	good_hs(f);
	assert_int_equal(raw_write(f->fd, h, sizeof(h)), 0);
	assert_int_equal(raw_write(f->fd, "hello", 5), 0);
	assert_int_equal(raw_write(f->fd, "abc", 3), 0);
	assert_int_equal(raw_write(f->fd, st, 20000), 0);
	assert_true(h_pump(&f->s, NULL, has_msg, &f->s, 2000));
	m = &f->s.msgs[0];
	assert_int_equal(m->type, 5);
	assert_int_equal(m->flags, 2);
	assert_int_equal(m->id, 0x1122334455667788ull);
	assert_int_equal(m->nstorages, 3);
	assert_int_equal(m->nkeep, 4);
	assert_memory_equal(m->keep[0]->data, "hello", 5);
	assert_int_equal(m->keep[1]->len, 3);
	assert_memory_equal(m->keep[1]->data, "abc", 3);
	assert_int_equal(m->keep[2]->len, 0);
	assert_int_equal(m->keep[3]->len, 20000);
	assert_memory_equal(m->keep[3]->data, st, 20000);
	assert_int_equal(f->s.ndown, 0);
	free(st);
}

/* What the transport puts on the wire, decoded by hand. */
static void test_sent_frame_layout(void **state)
{
	struct fx *f = *state;
	struct rxp_iov pl = {"xyz", 3}, st[2] = {{"0123456789", 10}, {"", 0}};
	struct rxp_msg_out m = {.type = 9,
				.flags = 4,
				.id = 0xabcdef,
				.payload = &pl,
				.npayload = 1,
				.storages = st,
				.nstorages = 2};
	struct h_send s = {0};
	uint8_t b[32 + 16 + 3 + 10];

	connect_to_raw(f);
	good_hs(f);
	assert_int_equal(f->c->tp->ops->send(f->c, &m, &s), 0);
	assert_int_equal(raw_read(f->fd, b, sizeof(b), &f->s), 0);
	assert_int_equal(b[0] | b[1] << 8, 0x5852);
	assert_int_equal(b[2], 1);
	assert_int_equal(b[3], 9);
	assert_int_equal(b[4], 4);
	assert_int_equal(b[5] | b[6] | b[7] | b[12] | b[13] | b[14] | b[15], 0);
	assert_int_equal(rd32(b + 8), 2);
	assert_int_equal(rd32(b + 16), 0xabcdef);
	assert_int_equal(rd32(b + 20), 0);
	assert_int_equal(rd32(b + 24), 3);
	assert_int_equal(rd32(b + 32), 10);
	assert_int_equal(rd32(b + 40), 0);
	assert_memory_equal(b + 48, "xyz", 3);
	assert_memory_equal(b + 51, "0123456789", 10);
	h_spin(&f->s, NULL, 10);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.status, 0);
}

/* Incoming connections that misbehave never reach the agent. */
static void test_incoming_garbage(void **state)
{
	struct fx *f = *state;
	uint8_t junk[64];
	struct h_side peer;
	struct rxp_conn *c;

	memset(junk, 0x5a, sizeof(junk));
	f->fd = raw_connect(&f->s);
	assert_true(f->fd >= 0);
	assert_int_equal(raw_write(f->fd, junk, sizeof(junk)), 0);
	assert_true(raw_wait_closed(f->fd, &f->s, 2000));
	h_spin(&f->s, NULL, 10);
	assert_int_equal(f->s.nup + f->s.ndown, 0);
	assert_int_equal(to_ttp(f->s.tp)->stats.hs_failures, 1);
	assert_null(to_ttp(f->s.tp)->conns); /* freed */
	/* the listener still works */
	assert_int_equal(h_open(&peer, "P", 5, NULL), 0);
	c = h_connect(&peer, &f->s, NULL);
	assert_non_null(c);
	assert_int_equal(f->s.up[0].peer_id, 5);
	h_close(&peer);
}

static void test_handshake_timeout(void **state)
{
	struct fx *f = *state;
	struct h_side t;
	struct rxp_conn *c;
	char addr[64];
	int lfd, fd;
	int64_t t0;

	/* a short deadline for this instance */
	setenv("RXP_TCP_CONNECT_TIMEOUT_MS", "200", 1);
	assert_int_equal(h_open(&t, "T2", 1, NULL), 0);
	unsetenv("RXP_TCP_CONNECT_TIMEOUT_MS");
	/* outgoing: the server accepts and says nothing */
	lfd = raw_listen(addr, sizeof(addr));
	assert_true(lfd >= 0);
	assert_int_equal(t.tp->ops->connect(t.tp, addr, 3, &c), 0);
	t0 = h_now_ms();
	/* a sleeper on wait_fd is woken for the deadline */
	for (int i = 0; i < 1000; i++) {
		struct pollfd p = {t.tp->ops->wait_fd(t.tp), POLLIN, 0};

		t.tp->ops->progress(t.tp);
		if (t.ndown || t.tp->ops->arm(t.tp))
			continue;
		assert_int_equal(poll(&p, 1, 5000), 1);
	}
	assert_int_equal(t.ndown, 1);
	assert_int_equal(t.down[0].status, -ETIMEDOUT);
	assert_true(h_now_ms() - t0 >= 150);
	assert_true(h_now_ms() - t0 < 2000);
	close(lfd);
	/* incoming: a client that says nothing is dropped */
	fd = raw_connect(&t);
	assert_true(fd >= 0);
	assert_true(raw_wait_closed(fd, &t, 2000));
	assert_int_equal(t.nup, 0);
	close(fd);
	h_close(&t);
	(void)f;
}

static void test_killed_peer(void **state)
{
	struct fx *f = *state;
	struct h_send s[8] = {{0}};
	static char big[1 << 20];
	struct rxp_iov st = {big, sizeof(big)};
	struct rxp_msg_out m = {.storages = &st, .nstorages = 1};
	int64_t t0;
	pid_t pid;
	int fd;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint8_t hs[40];

		fd = raw_connect(&f->s);
		raw_hs(hs, 0x48505852, 1, 40, 99, 0);
		if (fd < 0 || raw_write(fd, hs, sizeof(hs)))
			_exit(1);
		for (;;)
			pause(); /* never reads */
	}
	assert_true(h_pump(&f->s, NULL, has_up, &f->s, 3000));
	assert_int_equal(f->s.up[0].peer_id, 99);
	f->c = f->s.up[0].c;
	for (int i = 0; i < 8; i++)
		assert_int_equal(f->c->tp->ops->send(f->c, &m, &s[i]), 0);
	h_spin(&f->s, NULL, 20);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	t0 = h_now_ms();
	assert_true(h_pump(&f->s, NULL, has_down, &f->s, 1000));
	assert_true(h_now_ms() - t0 <= 1000);
	assert_true(f->s.down[0].status == -RXP_E_PEER_LOST ||
		    f->s.down[0].status == -ECONNRESET);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_true(s[i].seq < f->s.down[0].seq);
	}
	assert_true(s[7].status < 0);
}

static bool a_down(void *arg)
{
	return ((struct h_side *)arg)->ndown > 0;
}

/* Two transports whose secrets differ (or one has none): the connector
 * fails with -RXP_E_AUTH, the acceptor never shows the connection, both
 * count the refusal, and nothing queued is sent. */
static void mismatch(const char *sec_a, const char *sec_b)
{
	struct rxp_auth_key ka, kb;
	struct rxp_tp_attr aa = {.key = &ka, .world_size = 2};
	struct rxp_tp_attr ab = {.key = &kb, .world_size = 2};
	struct h_side a = {0}, b = {0};
	struct h_send sent = {0};
	struct rxp_msg_out m = {.type = 200, .id = 1};
	struct rxp_conn *c = NULL;

	assert_int_equal(rxp_auth_load(sec_a, sec_a ? 32 : 0, &ka), 0);
	assert_int_equal(rxp_auth_load(sec_b, sec_b ? 32 : 0, &kb), 0);
	assert_int_equal(h_open(&a, "A", 0, &aa), 0);
	assert_int_equal(h_open(&b, "B", 1, &ab), 0);
	assert_int_equal(a.tp->ops->connect(a.tp, b.addr, 1, &c), 0);
	assert_int_equal(a.tp->ops->send(c, &m, &sent), 0);
	assert_true(h_pump(&a, &b, a_down, &a, 3000));
	assert_int_equal(a.down[0].status, -RXP_E_AUTH);
	assert_int_equal(sent.calls, 1);
	/* held until the peer is proven; without a secret, A sent it at
	 * once, and B did not parse it */
	if (sec_a)
		assert_true(sent.status < 0);
	h_spin(&a, &b, 50);
	assert_int_equal(b.nup, 0);
	assert_int_equal(b.nmsgs, 0);
	assert_int_equal(a.tp->auth_refused, 1);
	assert_int_equal(b.tp->auth_refused, 1);
	h_close(&a);
	h_close(&b);
}

static void test_auth_mismatch(void **state)
{
	mismatch("0123456789abcdef0123456789abcdef",
		 "0123456789abcdef0123456789abcdeF");
	mismatch("0123456789abcdef0123456789abcdef", NULL);
	mismatch(NULL, "0123456789abcdef0123456789abcdef");
	(void)state;
}

/* The same secret: up both ways, messages flow. */
static void test_auth_match(void **state)
{
	struct rxp_auth_key k;
	struct rxp_tp_attr at = {.key = &k, .world_size = 2};
	struct h_side a = {0}, b = {0};
	struct h_send sent = {0};
	struct rxp_msg_out m = {.type = 200, .id = 5};
	struct rxp_conn *c;

	assert_int_equal(
		rxp_auth_load("0123456789abcdef0123456789abcdef", 32, &k), 0);
	assert_int_equal(h_open(&a, "A", 0, &at), 0);
	assert_int_equal(h_open(&b, "B", 1, &at), 0);
	c = h_connect(&a, &b, NULL);
	assert_non_null(c);
	assert_int_equal(b.up[0].peer_id, 0);
	assert_int_equal(a.tp->ops->send(c, &m, &sent), 0);
	assert_true(h_pump(&a, &b, has_msg, &b, 3000));
	assert_int_equal(b.msgs[0].id, 5);
	assert_int_equal(a.tp->auth_refused + b.tp->auth_refused, 0);
	h_close(&a);
	h_close(&b);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_garbage_handshake),   T(test_wrong_version),
		T(test_unknown_features),    T(test_bad_handshake_size),
		T(test_bad_magic),	     T(test_bad_frame_version),
		T(test_reserved_bits),	     T(test_huge_payload),
		T(test_payload_len_max_u64), T(test_too_many_storages),
		T(test_huge_storage),	     T(test_storage_sum_overflow),
		T(test_truncated_header),    T(test_truncated_body),
		T(test_golden_frame),	     T(test_sent_frame_layout),
		T(test_incoming_garbage),    T(test_handshake_timeout),
		T(test_killed_peer),	     T(test_auth_peer_to_open_worker),
		T(test_auth_mismatch),	     T(test_auth_match),
#undef T
	};
	int fails;

	setenv("RXP_LOG", "error", 0);
	setenv("RXP_TEST_TRANSPORT", "tcp", 1);
	fails = cmocka_run_group_tests_name("tcp_proto[tcp]", tests, NULL,
					    NULL);
	setenv("RXP_TEST_TRANSPORT", "tcp-poll", 1);
	fails += cmocka_run_group_tests_name("tcp_proto[tcp-poll]", tests, NULL,
					     NULL);
	return fails ? 1 : 0;
}
