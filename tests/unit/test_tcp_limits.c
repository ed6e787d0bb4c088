/* SPDX-License-Identifier: MIT */
/*
 * The TCP transport's budgets against raw-socket peers (issue 12 item 6,
 * docs/tcp.md "Limits"): connections still in their handshake are capped
 * and the oldest goes first; accepted connections are capped; accept()
 * at the fd limit backs off instead of spinning; a started frame that
 * stops arriving fails its connection; a header announcing huge storages
 * reserves one piece, not all of them; all connections together hold at
 * most RXP_MAX_RX_MEMORY for frames still arriving. Runs on both
 * backends.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tcp/tcp.h"
#include "tcp_raw.h"

#define NFLOOD 40

static bool has_up(void *arg)
{
	return ((struct h_side *)arg)->nup > 0;
}

static bool has_down(void *arg)
{
	return ((struct h_side *)arg)->ndown > 0;
}

static uint64_t limited(struct h_side *s)
{
	return atomic_load(&s->tp->conns_limited);
}

/* a raw client that completes its handshake as worker @id */
static int hello_client(struct h_side *s, uint32_t id)
{
	uint8_t hs[40];
	int fd = raw_connect(s);
	int nup = s->nup;

	assert_true(fd >= 0);
	raw_hs(hs, 0x48505852, 1, 40, id, 0);
	assert_int_equal(raw_write(fd, hs, sizeof(hs)), 0);
	for (int64_t end = h_now_ms() + 2000; s->nup == nup;) {
		assert_true(h_now_ms() < end);
		h_spin(s, NULL, 5);
	}
	return fd;
}

/* Idle connects beyond RXP_MAX_UNAUTH_CONNS push out the oldest; a real
 * peer still gets in, and its connection stays. */
static void test_unauth_flood(void **state)
{
	struct h_side s;
	int fds[NFLOOD], good;

	setenv("RXP_MAX_UNAUTH_CONNS", "4", 1);
	assert_int_equal(h_open(&s, "T", 1, NULL), 0);
	unsetenv("RXP_MAX_UNAUTH_CONNS");
	for (int i = 0; i < NFLOOD; i++) {
		fds[i] = raw_connect(&s);
		assert_true(fds[i] >= 0);
		h_spin(&s, NULL, 2);
	}
	h_spin(&s, NULL, 50);
	/* the first ones were closed, the last four are still waiting */
	assert_true(raw_wait_closed(fds[0], &s, 1000));
	assert_true(raw_wait_closed(fds[NFLOOD - 5], &s, 1000));
	assert_false(raw_wait_closed(fds[NFLOOD - 1], &s, 50));
	assert_int_equal(limited(&s), NFLOOD - 4);
	good = hello_client(&s, 7);
	assert_int_equal(s.nup, 1);
	assert_int_equal(s.up[0].peer_id, 7);
	/* ... and it pushed out one more waiting stranger, not itself */
	assert_int_equal(limited(&s), NFLOOD - 3);
	h_spin(&s, NULL, 50);
	assert_int_equal(s.ndown, 0);
	close(good);
	for (int i = 0; i < NFLOOD; i++)
		close(fds[i]);
	h_close(&s);
	(void)state;
}

/* At RXP_MAX_CONNS connections past their handshake, a new one is
 * closed at once and those open keep working. */
static void test_conn_cap(void **state)
{
	struct h_side s;
	int fds[3], extra;

	setenv("RXP_MAX_CONNS", "3", 1);
	assert_int_equal(h_open(&s, "T", 1, NULL), 0);
	unsetenv("RXP_MAX_CONNS");
	for (int i = 0; i < 3; i++)
		fds[i] = hello_client(&s, 10 + (uint32_t)i);
	assert_int_equal(s.nup, 3);
	extra = raw_connect(&s);
	assert_true(extra >= 0);
	assert_true(raw_wait_closed(extra, &s, 1000));
	assert_int_equal(s.nup, 3);
	assert_int_equal(s.ndown, 0);
	assert_int_equal(limited(&s), 1);
	close(extra);
	/* one leaves: there is room again */
	close(fds[0]);
	assert_true(h_pump(&s, NULL, has_down, &s, 2000));
	fds[0] = hello_client(&s, 20);
	assert_int_equal(s.nup, 4);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	h_close(&s);
	(void)state;
}

static bool bad_limit(const char *name, const char *value)
{
	struct h_side s;
	int ret;

	setenv(name, value, 1);
	ret = h_open(&s, "T", 1, NULL);
	unsetenv(name);
	if (!ret)
		h_close(&s);
	return ret == -EINVAL;
}

static void test_bad_values(void **state)
{
	assert_true(bad_limit("RXP_MAX_CONNS", "0"));
	assert_true(bad_limit("RXP_MAX_CONNS", "ten"));
	assert_true(bad_limit("RXP_MAX_UNAUTH_CONNS", "-1"));
	assert_true(bad_limit("RXP_RECV_STALL_MS", "1s"));
	assert_true(bad_limit("RXP_MAX_RX_MEMORY", "0"));
	assert_true(bad_limit("RXP_MAX_RX_MEMORY", "1G"));
	(void)state;
}

static int64_t cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* Sleep on wait_fd as an agent's poller does, for @ms. */
static void sleep_like_poller(struct h_side *s, int ms)
{
	int64_t end = h_now_ms() + ms;

	while (h_now_ms() < end) {
		struct pollfd p = {s->tp->ops->wait_fd(s->tp), POLLIN, 0};

		s->tp->ops->progress(s->tp);
		if (s->tp->ops->arm(s->tp))
			continue;
		poll(&p, 1, (int)(end - h_now_ms()));
	}
}

/*
 * At RLIMIT_NOFILE with connections waiting in the backlog, the loop
 * used to spin at full CPU (one failed accept per wake-up) and log one
 * warning per failure. Now it pauses: little CPU, a few lines, and once
 * fds are free again the waiting peers get in.
 */
static void test_fd_limit(void **state)
{
	static int dups[4096];
	struct h_side s;
	struct rlimit old, low;
	int fds[3], n = 0;
	int64_t cpu0, cpu;

	/* a low limit first: an io_uring accept takes the limit in force
	 * when it is submitted */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = old.rlim_cur < 256 ? old.rlim_cur : 256;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(h_open(&s, "T", 1, NULL), 0);
	/* the clients' sockets first, then no fd left for the server */
	for (int i = 0; i < 3; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fds[i] >= 0);
	}
	while (n < 4096 && (dups[n] = dup(0)) >= 0)
		n++;
	assert_true(n < 4096 && errno == EMFILE);
	for (int i = 0; i < 3; i++)
		assert_int_equal(raw_connect_fd(&s, fds[i]), 0);
	cpu0 = cpu_ms();
	sleep_like_poller(&s, 600);
	cpu = cpu_ms() - cpu0;
	print_message("fd limit: %lld ms CPU in 600 ms, %llu pauses, "
		      "%llu accept errors\n",
		      (long long)cpu,
		      (unsigned long long)atomic_load(&s.tp->accept_pauses),
		      (unsigned long long)to_ttp(s.tp)->stats.accept_errors);
	assert_true(atomic_load(&s.tp->accept_pauses) >= 1);
	/* 10 ms doubling: about 6 tries in 600 ms, not thousands */
	assert_true(to_ttp(s.tp)->stats.accept_errors < 30);
	assert_true(cpu < 200);
	assert_int_equal(to_ttp(s.tp)->stats.accepted, 0);
	/* fds again: the waiting connections are accepted */
	while (n)
		close(dups[--n]);
	for (int64_t end = h_now_ms() + 3000;
	     to_ttp(s.tp)->stats.accepted < 3;) {
		assert_true(h_now_ms() < end);
		h_spin(&s, NULL, 10);
	}
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	h_close(&s);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	(void)state;
}

/* A header, part of the body, then silence: closed after
 * RXP_RECV_STALL_MS; a frame that trickles in slower than that in total,
 * but never stops for that long, is received. */
static void test_stalled_body(void **state)
{
	struct h_side s;
	uint64_t lens[1] = {1u << 20};
	uint8_t h[40], body[4096] = {0};
	int64_t t0, took;
	int fd;

	setenv("RXP_RECV_STALL_MS", "300", 1);
	assert_int_equal(h_open(&s, "T", 1, NULL), 0);
	unsetenv("RXP_RECV_STALL_MS");
	/* trickle: 10 bytes every 100 ms for 1 s, then the rest */
	fd = hello_client(&s, 5);
	raw_hdr(h, 0x5852, 1, 1, 0, 0, 1, 100, NULL);
	assert_int_equal(raw_write(fd, h, 32), 0);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(raw_write(fd, body, 5), 0);
		sleep_like_poller(&s, 100);
		assert_int_equal(s.ndown, 0);
	}
	assert_int_equal(raw_write(fd, body, 50), 0);
	for (int64_t end = h_now_ms() + 2000; !s.nmsgs;) {
		assert_true(h_now_ms() < end);
		h_spin(&s, NULL, 5);
	}
	close(fd);
	assert_true(h_pump(&s, NULL, has_down, &s, 2000));
	s.ndown = 0;
	/* stall: 1 MiB announced, 4 KiB sent */
	fd = hello_client(&s, 6);
	raw_hdr(h, 0x5852, 1, 1, 0, 1, 2, 10, lens);
	assert_int_equal(raw_write(fd, h, sizeof(h)), 0);
	assert_int_equal(raw_write(fd, body, sizeof(body)), 0);
	t0 = h_now_ms();
	sleep_like_poller(&s, 1500);
	assert_int_equal(s.ndown, 1);
	assert_int_equal(s.down[0].status, -ETIMEDOUT);
	took = h_now_ms() - t0;
	assert_true(took >= 250);
	assert_int_equal(atomic_load(&s.tp->conns_stalled), 1);
	assert_true(raw_wait_closed(fd, &s, 1000));
	close(fd);
	h_close(&s);
	(void)state;
}

static long vm_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* 1,024 storages of 256 MiB announced (within the limits), a few bytes
 * sent: address space for one piece and the next 16 MiB, not 256 GiB. */
static void test_huge_header_reserves_one_piece(void **state)
{
	struct rxp_tp_attr attr = {.max_storage = 256ull << 20};
	static uint64_t lens[1024];
	static uint8_t h[32 + 8 * 1024];
	uint8_t body[4096] = {0};
	struct h_side s;
	long before, grew;
	int fd;

	assert_int_equal(h_open(&s, "T", 1, &attr), 0);
	for (int i = 0; i < 1024; i++)
		lens[i] = 256ull << 20;
	fd = hello_client(&s, 5);
	before = vm_kib();
	raw_hdr(h, 0x5852, 1, 1, 0, 1024, 3, 0, lens);
	assert_int_equal(raw_write(fd, h, sizeof(h)), 0);
	assert_int_equal(raw_write(fd, body, sizeof(body)), 0);
	h_spin(&s, NULL, 200);
	grew = vm_kib() - before;
	print_message("1024 x 256 MiB announced: VmSize +%ld MiB\n",
		      grew / 1024);
	assert_true(grew < 1024 * 1024); /* < 1 GiB (was about 32 GiB) */
	assert_int_equal(s.ndown, 0);
	close(fd);
	assert_true(h_pump(&s, NULL, has_down, &s, 2000));
	h_close(&s);
	(void)state;
}

static uint64_t rx_ahead(struct h_side *s)
{
	return rxp_tp_counter(&s->tp->rx_ahead);
}

/* A client that announces one 16 MiB storage and sends 4 KiB of it */
static int announce_16m(struct h_side *s, uint32_t id)
{
	uint64_t lens[1] = {16u << 20};
	uint8_t h[40], body[4096] = {0};
	int fd = hello_client(s, id);

	raw_hdr(h, 0x5852, 1, 1, 0, 1, 1, 0, lens);
	assert_int_equal(raw_write(fd, h, sizeof(h)), 0);
	assert_int_equal(raw_write(fd, body, sizeof(body)), 0);
	h_spin(s, NULL, 100);
	return fd;
}

/* Frames that announce more than arrives, on many connections: past
 * RXP_MAX_RX_MEMORY (40 MiB here) the connection whose piece would pass
 * it fails with -RXP_E_LIMIT; the others, and small frames, go on. */
static void test_rx_memory_budget(void **state)
{
	uint8_t h[32], payload[100] = {0};
	struct h_side s;
	int fd[3], small;

	setenv("RXP_MAX_RX_MEMORY", "41943040", 1);
	assert_int_equal(h_open(&s, "T", 1, NULL), 0);
	unsetenv("RXP_MAX_RX_MEMORY");
	fd[0] = announce_16m(&s, 5);
	fd[1] = announce_16m(&s, 6);
	assert_int_equal(rx_ahead(&s), 32u << 20);
	assert_int_equal(s.ndown, 0);
	fd[2] = announce_16m(&s, 7); /* 48 MiB would pass 40 */
	assert_true(h_pump(&s, NULL, has_down, &s, 2000));
	assert_int_equal(s.ndown, 1);
	assert_int_equal(s.down[0].status, -RXP_E_LIMIT);
	assert_int_equal(rxp_tp_counter(&s.tp->rx_mem_refused), 1);
	assert_int_equal(rx_ahead(&s), 32u << 20);
	assert_true(raw_wait_closed(fd[2], &s, 1000));
	/* a small frame still fits beside them */
	small = hello_client(&s, 8);
	raw_hdr(h, 0x5852, 1, 1, 0, 0, 2, sizeof(payload), NULL);
	assert_int_equal(raw_write(small, h, sizeof(h)), 0);
	assert_int_equal(raw_write(small, payload, sizeof(payload)), 0);
	for (int64_t end = h_now_ms() + 2000; !s.nmsgs;) {
		assert_true(h_now_ms() < end);
		h_spin(&s, NULL, 5);
	}
	/* a connection that goes gives back what its frame held */
	close(fd[0]);
	for (int64_t end = h_now_ms() + 2000; rx_ahead(&s) != 16u << 20;) {
		assert_true(h_now_ms() < end);
		h_spin(&s, NULL, 5);
	}
	close(fd[1]);
	close(fd[2]);
	close(small);
	for (int64_t end = h_now_ms() + 2000; rx_ahead(&s);) {
		assert_true(h_now_ms() < end);
		h_spin(&s, NULL, 5);
	}
	h_close(&s);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unauth_flood),
		cmocka_unit_test(test_conn_cap),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_fd_limit),
		cmocka_unit_test(test_stalled_body),
		cmocka_unit_test(test_huge_header_reserves_one_piece),
		cmocka_unit_test(test_rx_memory_budget),
	};
	int fails;

	(void)has_up;
	setenv("RXP_LOG", "error", 0);
	setenv("RXP_TEST_TRANSPORT", "tcp", 1);
	fails = cmocka_run_group_tests_name("tcp_limits[tcp]", tests, NULL,
					    NULL);
	setenv("RXP_TEST_TRANSPORT", "tcp-poll", 1);
	fails += cmocka_run_group_tests_name("tcp_limits[tcp-poll]", tests,
					     NULL, NULL);
	return fails ? 1 : 0;
}
