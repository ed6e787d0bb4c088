/* SPDX-License-Identifier: MIT */
/*
 * The built-in rendezvous (rendezvous/rendezvous.c, issue 12 item 3)
 * against hostile and broken peers: rank 0's server in this process, real
 * workers as threads running rxp__rdv_connect/exchange, and a raw client
 * with its own encoder of protocol v2 (so the layout written at the top
 * of rendezvous.c and in docs/DESIGN.md is what gets tested).
 *
 * What must hold: strays (connect-and-close, garbage, oversized or half
 * frames, too many idle connections) never stop a world from forming; a
 * bad hello (wrong world, duplicate rank or name, wrong or no secret, a
 * replayed one) is refused to its sender only; a rank whose worker left
 * before the world formed can be taken again; a worker that times out
 * names the ranks that never joined; and a worker takes no table that a
 * rank 0 without the secret could have made, nor a malformed one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include <rxp/rxp.h>
#include "rendezvous.h"
#include "rxp_auth.h"
#include "rxp_util.h"
#include "capture.h"
#include "sock.h"

/* protocol v2, as documented */
enum { CHALLENGE = 1, HELLO, STATUS, TABLE, ERROR, BARRIER, BARRIER_DONE };
#define MAGIC 0x52585652u
#define CHAL_LEN 44
#define HELLO_FIXED 56
#define LABEL_HELLO "rxp rendezvous v2 hello"
#define LABEL_TABLE "rxp rendezvous v2 table"

static const char secret[] = "0123456789abcdef0123456789abcdef";
static const char other[] = "fedcba9876543210fedcba9876543210";
static struct rxp_auth_key key, other_key, no_key;

/* ------------------------------------------------------------- server */

struct srv {
	struct rxp__rdv_server *s;
	int port;
};

static void srv_start(struct srv *v, int world, const struct rxp_auth_key *k)
{
	assert_int_equal(rxp__rdv_serve("127.0.0.1", 0, world, k, &v->s), 0);
	v->port = rxp__rdv_server_port(v->s);
	assert_true(v->port > 0);
}

/* ------------------------------------------------------ real workers */

struct wk {
	int port, rank, world;
	const struct rxp_auth_key *key;
	int64_t timeout_ms;
	bool barrier; /* then join the barrier */
	char name[32], addr[32];
	struct rxp__rdv_peer peers[8];
	int ret, bret;
	pthread_t th;
};

static void *wk_main(void *arg)
{
	struct wk *w = arg;
	struct rxp__rdv *r;
	char ip[64];

	w->ret = rxp__rdv_connect("127.0.0.1", w->port, w->timeout_ms, w->key,
				  &r, ip, sizeof(ip));
	if (w->ret)
		return NULL;
	w->ret = rxp__rdv_exchange(r, w->rank, w->world, w->name, w->addr,
				   "tcp", w->peers, w->timeout_ms);
	if (!w->ret && w->barrier)
		w->bret = rxp__rdv_barrier(r, w->timeout_ms);
	rxp__rdv_close(r);
	return NULL;
}

static void wk_start_t(struct wk *w, const struct srv *v, int rank, int world,
		       const struct rxp_auth_key *k, int64_t timeout_ms,
		       bool barrier)
{
	*w = (struct wk){.port = v->port,
			 .rank = rank,
			 .world = world,
			 .key = k,
			 .timeout_ms = timeout_ms,
			 .barrier = barrier,
			 .ret = 1};
	snprintf(w->name, sizeof(w->name), "worker%d", rank);
	snprintf(w->addr, sizeof(w->addr), "10.0.0.%d:%d", rank + 1,
		 5000 + rank);
	assert_int_equal(pthread_create(&w->th, NULL, wk_main, w), 0);
}

static void wk_start(struct wk *w, const struct srv *v, int rank, int world,
		     const struct rxp_auth_key *k)
{
	wk_start_t(w, v, rank, world, k, 5000, false);
}

static int wk_wait(struct wk *w)
{
	pthread_join(w->th, NULL);
	return w->ret;
}

/* every worker got the same, right table */
static void check_table(struct wk *ws, int n)
{
	for (int i = 0; i < n; i++)
		for (int r = 0; r < n; r++) {
			char name[32];

			snprintf(name, sizeof(name), "worker%d", r);
			assert_string_equal(ws[i].peers[r].name, name);
			assert_string_equal(ws[i].peers[r].addr, ws[r].addr);
			assert_int_equal(ws[i].peers[r].rank, r);
		}
}

/* --------------------------------------------------------- raw client */

static int raw_open(int port)
{
	int fd = test_tcp_connect("127.0.0.1", port);

	assert_true(fd >= 0);
	return fd;
}

static void wr(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static bool rd(int fd, void *p, size_t n)
{
	size_t have = 0;

	while (have < n) {
		ssize_t r = recv(fd, (uint8_t *)p + have, n - have, 0);

		if (r <= 0)
			return false;
		have += (size_t)r;
	}
	return true;
}

/* One frame: its type, body into @body (at most @cap), length; -1 at
 * EOF, reset or the 3 s timeout. */
static int rd_frame(int fd, uint8_t *body, size_t cap, size_t *len)
{
	uint8_t h[5];
	uint32_t n;

	if (!rd(fd, h, 5))
		return -1;
	n = rxp_get_le32(h);
	assert_true(n >= 1 && n - 1 <= cap);
	*len = n - 1;
	if (!rd(fd, body, *len))
		return -1;
	return h[4];
}

static void wr_frame(int fd, uint8_t type, const void *body, size_t len)
{
	uint8_t h[5];

	rxp_put_le32(h, (uint32_t)len + 1);
	h[4] = type;
	wr(fd, h, 5);
	if (len)
		wr(fd, body, len);
}

/* the server's CHALLENGE into @chal */
static void rd_challenge(int fd, uint8_t chal[CHAL_LEN])
{
	size_t n;

	assert_int_equal(rd_frame(fd, chal, CHAL_LEN, &n), CHALLENGE);
	assert_int_equal(n, CHAL_LEN);
	assert_int_equal(rxp_get_le32(chal), MAGIC);
	assert_int_equal(rxp_get_le16(chal + 4), 2);
}

/* A HELLO body for @rank of @world into @b; MAC'd with @k over @chal when
 * @k is on. */
static size_t mk_hello(uint8_t *b, const uint8_t *chal, int rank, int world,
		       const char *name, const struct rxp_auth_key *k)
{
	const char *addr = "10.9.9.9:9", *tp = "tcp";
	size_t nl = strlen(name), al = strlen(addr), tl = strlen(tp), n;

	rxp_put_le32(b, MAGIC);
	rxp_put_le16(b + 4, 2);
	rxp_put_le16(b + 6, k && k->on ? 1 : 0);
	rxp_put_le32(b + 8, (uint32_t)rank);
	rxp_put_le32(b + 12, (uint32_t)world);
	rxp_put_le16(b + 16, (uint16_t)nl);
	rxp_put_le16(b + 18, (uint16_t)al);
	rxp_put_le16(b + 20, (uint16_t)tl);
	rxp_put_le16(b + 22, 0);
	memset(b + 24, 0x5a, 32);
	n = HELLO_FIXED;
	memcpy(b + n, name, nl);
	memcpy(b + n + nl, addr, al);
	memcpy(b + n + nl + al, tp, tl);
	n += nl + al + tl;
	if (k && k->on) {
		rxp_auth_mac(k, LABEL_HELLO, chal, CHAL_LEN, b, n, b + n);
		n += 32;
	}
	return n;
}

/* Read until an ERROR (its code, text into @text) or EOF (0). CHALLENGE
 * and STATUS frames are skipped; any other frame fails the test. */
static int rd_error(int fd, char *text, size_t cap)
{
	uint8_t b[1024];
	size_t n;
	int t;

	while ((t = rd_frame(fd, b, sizeof(b), &n)) == STATUS || t == CHALLENGE)
		;
	if (t < 0)
		return 0;
	assert_int_equal(t, ERROR);
	assert_true(n >= 4);
	snprintf(text, cap, "%.*s", (int)(n - 4), (char *)b + 4);
	return (int)rxp_get_le32(b);
}

/* -------------------------------------------------------------- tests */

static void test_world_forms_and_barrier(void **state)
{
	struct srv v;
	struct wk ws[3];

	srv_start(&v, 3, &key);
	for (int r = 0; r < 3; r++)
		wk_start_t(&ws[r], &v, r, 3, &key, 5000, true);
	for (int r = 0; r < 3; r++) {
		assert_int_equal(wk_wait(&ws[r]), 0);
		assert_int_equal(ws[r].bret, 0);
	}
	check_table(ws, 3);
	rxp__rdv_server_stop(v.s);
}

/* connect-and-close, garbage, an oversized length, a half frame that
 * stalls, and more idle connections than the server keeps: the world
 * still forms, and in time */
static void test_strays_do_not_block(void **state)
{
	uint8_t chal[CHAL_LEN], junk[64];
	int idle[80], half, big, garbage;
	char text[256];
	struct srv v;
	struct wk ws[2];
	int64_t t0;

	srv_start(&v, 2, &key);
	close(raw_open(v.port)); /* a port scanner */
	garbage = raw_open(v.port);
	memset(junk, 0xff, sizeof(junk)); /* length 0xffffffff, and more */
	wr(garbage, junk, sizeof(junk));
	assert_int_equal(rd_error(garbage, text, sizeof(text)), -RXP_E_PROTO);
	assert_non_null(strstr(text, "oversized"));
	big = raw_open(v.port);
	wr_frame(big, HELLO, NULL, 0);
	assert_int_equal(rd_error(big, text, sizeof(text)), -RXP_E_PROTO);
	assert_non_null(strstr(text, "not an rxp v2 rendezvous hello"));
	half = raw_open(v.port);
	rd_challenge(half, chal);
	wr(half, "\x40\x00\x00", 3); /* 3 of a 5-byte header, then silence */
	for (int i = 0; i < 80; i++)
		idle[i] = raw_open(v.port); /* more than world + 64 */
	t0 = rxp_now_ns();
	wk_start(&ws[0], &v, 0, 2, &key);
	wk_start(&ws[1], &v, 1, 2, &key);
	assert_int_equal(wk_wait(&ws[0]), 0);
	assert_int_equal(wk_wait(&ws[1]), 0);
	assert_true(rxp_now_ns() - t0 < 3000000000ll);
	check_table(ws, 2);
	close(garbage);
	close(big);
	close(half);
	for (int i = 0; i < 80; i++)
		close(idle[i]);
	rxp__rdv_server_stop(v.s);
}

/* Bad hellos while rank 0 waits: each refused to its sender alone, with
 * the reason; the member in waiting keeps its rank, the world forms. */
/* rank 1 of 2 calling itself "worker0": the result of its join */
static int dup_name_worker(const struct srv *v)
{
	struct rxp__rdv *r;
	struct rxp__rdv_peer peers[2];
	char ip[64];
	int ret = rxp__rdv_connect("127.0.0.1", v->port, 5000, &no_key, &r, ip,
				   sizeof(ip));

	if (ret)
		return ret;
	ret = rxp__rdv_exchange(r, 1, 2, "worker0", "10.0.0.9:5009", "tcp",
				peers, 5000);
	rxp__rdv_close(r);
	return ret;
}

static void test_bad_hello_refused_to_sender_only(void **state)
{
	static const struct {
		int rank, world;
		const char *name;
		int code;
		const char *why;
	} bad[] = {
		{1, 3, "w-x", -EINVAL, "world of 2"},
		{2, 2, "w-x", -EINVAL, "world of 2"},
		{0, 2, "w-x", -EEXIST, "held by 'worker0'"},
		{1, 2, "worker0", -RXP_E_DUP_NAME, "taken by rank 0"},
	};
	uint8_t chal[CHAL_LEN], b[512];
	char text[256];
	struct srv v;
	struct wk ws[2];

	srv_start(&v, 2, &no_key);
	wk_start(&ws[0], &v, 0, 2, &no_key);
	usleep(100000); /* rank 0's worker holds its slot */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = raw_open(v.port);

		rd_challenge(fd, chal);
		wr_frame(fd, HELLO, b,
			 mk_hello(b, chal, bad[i].rank, bad[i].world,
				  bad[i].name, NULL));
		assert_int_equal(rd_error(fd, text, sizeof(text)), bad[i].code);
		assert_non_null(strstr(text, bad[i].why));
		close(fd);
	}
	/* a real worker with a taken name gets that code, not a generic
	 * rendezvous failure */
	assert_int_equal(dup_name_worker(&v), -RXP_E_DUP_NAME);
	wk_start(&ws[1], &v, 1, 2, &no_key);
	assert_int_equal(wk_wait(&ws[0]), 0);
	assert_int_equal(wk_wait(&ws[1]), 0);
	check_table(ws, 2); /* worker0's entry, not the impostor's */
	rxp__rdv_server_stop(v.s);
}

/* With a job secret: a worker without one stops before it sends anything,
 * one with another secret is refused, a hello without a MAC or with a
 * replayed one is refused, and none of them takes a slot. */
static void test_secret_checked(void **state)
{
	uint8_t chal[CHAL_LEN], rec[512], b[512];
	char text[256];
	size_t n, rn;
	struct srv v;
	struct wk ws[2], bad;
	int fd;

	srv_start(&v, 2, &key);
	wk_start(&bad, &v, 1, 2, &no_key);
	assert_int_equal(wk_wait(&bad), -RXP_E_AUTH);
	wk_start(&bad, &v, 1, 2, &other_key);
	assert_int_equal(wk_wait(&bad), -RXP_E_AUTH);
	/* no MAC at all */
	fd = raw_open(v.port);
	rd_challenge(fd, chal);
	assert_int_equal(rxp_get_le16(chal + 6) & 1, 1); /* "auth" flag */
	wr_frame(fd, HELLO, b, mk_hello(b, chal, 1, 2, "w-x", NULL));
	assert_int_equal(rd_error(fd, text, sizeof(text)), -RXP_E_PROTO);
	close(fd);
	/* a valid hello for rank 1 that leaves before the world forms (its
	 * slot comes back), then the same bytes on a new connection */
	fd = raw_open(v.port);
	rd_challenge(fd, chal);
	rn = mk_hello(rec, chal, 1, 2, "w-1", &key);
	wr_frame(fd, HELLO, rec, rn);
	assert_int_equal(rd_frame(fd, b, sizeof(b), &n), STATUS);
	close(fd);
	fd = raw_open(v.port);
	rd_challenge(fd, chal);
	wr_frame(fd, HELLO, rec, rn); /* a fresh challenge: MAC is stale */
	assert_int_equal(rd_error(fd, text, sizeof(text)), -RXP_E_AUTH);
	assert_non_null(strstr(text, "authentication failed"));
	close(fd);
	wk_start(&ws[0], &v, 0, 2, &key);
	wk_start(&ws[1], &v, 1, 2, &key);
	assert_int_equal(wk_wait(&ws[0]), 0);
	assert_int_equal(wk_wait(&ws[1]), 0);
	check_table(ws, 2);
	rxp__rdv_server_stop(v.s);
}

/* A rank whose connection ends before the world forms is free again: a
 * restarted worker takes it. Once the world has formed a latecomer is
 * told so. */
static void test_slot_given_back(void **state)
{
	uint8_t chal[CHAL_LEN], b[512];
	char text[256];
	size_t n;
	struct srv v;
	struct wk w0;
	int fd, late;

	srv_start(&v, 2, &no_key);
	fd = raw_open(v.port);
	rd_challenge(fd, chal);
	wr_frame(fd, HELLO, b, mk_hello(b, chal, 1, 2, "worker1", NULL));
	assert_int_equal(rd_frame(fd, b, sizeof(b), &n), STATUS);
	assert_int_equal(rxp_get_le32(b), 1); /* joined */
	assert_int_equal(rxp_get_le32(b + 4), 2);
	assert_int_equal(rxp_get_le32(b + 8), 1); /* missing: [0] */
	assert_int_equal(rxp_get_le32(b + 12), 0);
	close(fd); /* "crashes" */
	usleep(100000);
	/* the restarted rank 1, which stays */
	fd = raw_open(v.port);
	rd_challenge(fd, chal);
	wr_frame(fd, HELLO, b, mk_hello(b, chal, 1, 2, "worker1b", NULL));
	wk_start(&w0, &v, 0, 2, &no_key);
	assert_int_equal(wk_wait(&w0), 0);
	assert_string_equal(w0.peers[1].name, "worker1b");
	assert_string_equal(w0.peers[1].addr, "10.9.9.9:9");
	assert_string_equal(w0.peers[0].name, "worker0");
	late = raw_open(v.port);
	assert_int_equal(rd_error(late, text, sizeof(text)), -EALREADY);
	close(late);
	close(fd);
	rxp__rdv_server_stop(v.s);
}

struct missing_ctx {
	struct srv v;
	struct wk ws[2];
};

static void run_missing(void *arg)
{
	struct missing_ctx *m = arg;

	/* ranks 0 and 2 of 4 come; 1 and 3 never do */
	wk_start_t(&m->ws[0], &m->v, 0, 4, &no_key, 600, false);
	wk_start_t(&m->ws[1], &m->v, 2, 4, &no_key, 600, false);
	wk_wait(&m->ws[0]);
	wk_wait(&m->ws[1]);
	rxp__rdv_server_stop(m->v.s);
}

static void test_missing_ranks_named(void **state)
{
	static struct missing_ctx m;
	char log[4096];
	int saved = rxp__log_level;

	srv_start(&m.v, 4, &no_key);
	rxp__log_level = RXP_LOG_ERROR;
	capture_stderr(run_missing, &m, log, sizeof(log));
	rxp__log_level = saved;
	assert_int_equal(m.ws[0].ret, -ETIMEDOUT);
	assert_int_equal(m.ws[1].ret, -ETIMEDOUT);
	/* each worker, and rank 0's server when it stops */
	assert_non_null(strstr(log, "ranks 1,3 never joined"));
	assert_non_null(strstr(log, "did not form: ranks 1,3 never joined"));
}

/* ------------------------------------------------ a hostile rank 0 */

struct fake0 {
	int lfd, port;
	int what; /* 0: a table with a bad MAC, 1 and 2: malformed tables */
	pthread_t th;
};

/* thread-side io (no cmocka asserts off the test's thread) */
static bool f_rd(int fd, void *p, size_t n)
{
	return rd(fd, p, n);
}

static void f_wr_frame(int fd, uint8_t type, const void *body, size_t len)
{
	uint8_t h[5];

	rxp_put_le32(h, (uint32_t)len + 1);
	h[4] = type;
	if (send(fd, h, 5, MSG_NOSIGNAL) == 5 && len)
		(void)!send(fd, body, len, MSG_NOSIGNAL);
}

static void *fake0_main(void *arg)
{
	struct fake0 *f = arg;
	uint8_t chal[CHAL_LEN] = {0}, h[5], b[1024];
	uint32_t n;
	int fd = accept(f->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	rxp_put_le32(chal, MAGIC);
	rxp_put_le16(chal + 4, 2);
	rxp_put_le16(chal + 6, f->what == 0 ? 1 : 0);
	rxp_put_le32(chal + 8, 1);
	f_wr_frame(fd, CHALLENGE, chal, CHAL_LEN);
	/* the worker's hello, read and ignored */
	if (!f_rd(fd, h, 5) || (n = rxp_get_le32(h)) < 1 || n - 1 > sizeof(b) ||
	    !f_rd(fd, b, n - 1) || h[4] != HELLO) {
		close(fd);
		return NULL;
	}
	rxp_put_le32(b, 1); /* world 1 */
	rxp_put_le16(b + 4, 4);
	rxp_put_le16(b + 6, 6);
	memcpy(b + 8, "evilev:1:1", 10);
	if (f->what == 0) {
		/* a well-formed table with a MAC of another key */
		rxp_auth_mac(&other_key, LABEL_TABLE, b, 14, b, 14, b + 14);
		f_wr_frame(fd, TABLE, b, 14 + 32);
	} else {
		/* a name longer than any, or one that runs past the frame */
		rxp_put_le16(b + 4, f->what == 1 ? 60000 : 100);
		f_wr_frame(fd, TABLE, b, 14);
	}
	usleep(200000);
	close(fd);
	return NULL;
}

static void fake0_run(int what, const struct rxp_auth_key *k, int want)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	struct fake0 f = {.what = what};
	struct wk w;

	f.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f.lfd, 4), 0);
	getsockname(f.lfd, (struct sockaddr *)&sa, &sl);
	f.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&f.th, NULL, fake0_main, &f), 0);
	w = (struct wk){.port = f.port,
			.rank = 0,
			.world = 1,
			.key = k,
			.timeout_ms = 3000,
			.ret = 1};
	snprintf(w.name, sizeof(w.name), "worker0");
	snprintf(w.addr, sizeof(w.addr), "10.0.0.1:1");
	pthread_create(&w.th, NULL, wk_main, &w);
	assert_int_equal(wk_wait(&w), want);
	pthread_join(f.th, NULL);
	close(f.lfd);
}

static void test_table_checked(void **state)
{
	fake0_run(0, &key, -RXP_E_AUTH);	  /* not signed with ours */
	fake0_run(1, &no_key, -RXP_E_RENDEZVOUS); /* lengths out of bounds */
	fake0_run(2, &no_key, -RXP_E_RENDEZVOUS);
}

/* MASTER_ADDR that is not ours (a service address): rank 0 listens on
 * the wildcard instead of failing with EADDRNOTAVAIL, and is reachable */
static void test_serve_falls_back_to_wildcard(void **state)
{
	struct rxp__rdv_server *s = NULL;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd, port;

	/* 192.0.2.1: TEST-NET-1, never a local address */
	assert_int_equal(rxp__rdv_serve("192.0.2.1", 0, 1, NULL, &s), 0);
	port = rxp__rdv_server_port(s);
	assert_true(port > 0);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	rxp__rdv_server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_world_forms_and_barrier),
		cmocka_unit_test(test_serve_falls_back_to_wildcard),
		cmocka_unit_test(test_strays_do_not_block),
		cmocka_unit_test(test_bad_hello_refused_to_sender_only),
		cmocka_unit_test(test_secret_checked),
		cmocka_unit_test(test_slot_given_back),
		cmocka_unit_test(test_missing_ranks_named),
		cmocka_unit_test(test_table_checked),
	};

	rxp__log_init();
	if (!getenv("RXP_LOG"))
		rxp__log_level =
			RXP_LOG_ERROR - 1; /* quiet: tests refuse a lot */
	if (rxp_auth_load(secret, sizeof(secret) - 1, &key) ||
	    rxp_auth_load(other, sizeof(other) - 1, &other_key))
		return 1;
	return cmocka_run_group_tests_name("rendezvous", tests, NULL, NULL) ? 1
									    : 0;
}
