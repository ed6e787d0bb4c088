/* SPDX-License-Identifier: MIT */
/*
 * The shm transport against a hostile peer (issue 11 item 3, issue 12):
 * a fake peer in this process speaks the hand-shake by hand over the
 * Unix socket, then writes into the shared rings what a real one never
 * would. Each bad input must fail that one connection (with the error
 * named here), never the process, and another connection must still work.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm.h"

struct side {
	struct rxp_tp *tp;
	int ups, downs, last_down, recvs;
	uint64_t last_id;
};

static void on_conn(void *ctx, struct rxp_conn *c, int status)
{
	struct side *s = ctx;

	(void)c;
	if (status == 0) {
		s->ups++;
	} else {
		s->downs++;
		s->last_down = status;
	}
}

static void on_recv(void *ctx, struct rxp_conn *c, const struct rxp_msg_in *m)
{
	struct side *s = ctx;

	(void)c;
	s->recvs++;
	s->last_id = m->id;
}

static void on_send(void *ctx, void *cookie, int status)
{
	(void)ctx;
	(void)cookie;
	(void)status;
}

static struct side g;
static struct rxp_tp_cb g_cb = {&g, on_conn, on_recv, on_send};

/* The fake peer: a connected socket and the rings it made. */
struct fake {
	int sock;
	void *map;
	uint64_t cap;
	struct shm_ring tx, rx; /* ring 0 (to the transport), ring 1 */
	uint8_t hello[SHM_HELLO_SIZE];
};

/* As the agent's poller: progress, and arm before each nap. */
static void step(void)
{
	g.tp->ops->progress(g.tp);
	if (g.tp->ops->arm(g.tp) == 0)
		usleep(1000);
}

static void pump(int ms)
{
	int64_t end = rxp_now_ns() + (int64_t)ms * 1000000;

	while (rxp_now_ns() < end) {
		step();
	}
}

static bool pump_until(const int *v, int want, int ms)
{
	int64_t end = rxp_now_ns() + (int64_t)ms * 1000000;

	while (*v < want && rxp_now_ns() < end) {
		step();
	}
	return *v >= want;
}

static int fake_dial(void)
{
	char addr[128];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	size_t n;

	assert_true(fd >= 0);
	assert_int_equal(g.tp->ops->address(g.tp, addr, sizeof(addr)), 0);
	assert_true(strncmp(addr, "shm:", 4) == 0);
	n = strlen(addr + 4);
	memcpy(sa.sun_path + 1, addr + 4, n);
	assert_int_equal(
		connect(fd, (struct sockaddr *)&sa,
			(socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				    n)),
		0);
	return fd;
}

/* What the transport reads in us to learn it may (the probe). */
static uint64_t probe_word = 0x5eed5eed5eed5eedull;

static void fake_hello(struct fake *f, uint64_t cap, bool readable)
{
	struct shm_hello h = {
		.kind = SHM_HS_HELLO,
		.worker_id = 7,
		.max_storages = RXP_WIRE_MAX_STORAGES,
		.max_payload = 1 << 20,
		.max_storage = 1 << 20,
		.ring_cap = cap,
	};

	if (readable) {
		h.probe_addr = (uint64_t)(uintptr_t)&probe_word;
		h.probe_val = probe_word;
	}
	shm_hello_encode(f->hello, &h);
}

/* A whole hand-shake; the transport announces the connection. */
static void fake_open(struct fake *f, bool readable)
{
	uint8_t b[SHM_HS_MAX];
	struct shm_hello r = {.kind = SHM_HS_READY};
	int fd, ups = g.ups;

	memset(f, 0, sizeof(*f));
	f->cap = SHM_RING_MIN;
	f->sock = fake_dial();
	fd = shm_memfd_new(shm_map_bytes(f->cap));
	assert_true(fd >= 0);
	f->map = mmap(NULL, shm_map_bytes(f->cap), PROT_READ | PROT_WRITE,
		      MAP_SHARED, fd, 0);
	assert_true(f->map != MAP_FAILED);
	shm_ring_view(&f->tx, f->map, f->cap, 0);
	shm_ring_view(&f->rx, f->map, f->cap, 1);
	fake_hello(f, f->cap, readable);
	assert_int_equal(shm_msg_send(f->sock, f->hello, SHM_HELLO_SIZE, fd),
			 0);
	close(fd);
	pump(20);
	assert_int_equal(recv(f->sock, b, sizeof(b), MSG_DONTWAIT),
			 SHM_HELLO_SIZE);
	shm_hello_encode(b, &r);
	assert_int_equal(shm_msg_send(f->sock, b, SHM_HELLO_SIZE, -1), 0);
	assert_true(pump_until(&g.ups, ups + 1, 1000));
}

static void fake_close(struct fake *f)
{
	close(f->sock);
	munmap(f->map, shm_map_bytes(f->cap));
}

/* Bytes into ring 0, published, with a doorbell. */
static void fake_write(struct fake *f, const void *b, size_t n)
{
	uint8_t one = 1;

	shm_ring_put(&f->tx, b, n);
	shm_ring_publish(&f->tx);
	assert_int_equal(send(f->sock, &one, 1, 0), 1);
}

static void frame(uint8_t out[SHM_HDR_SIZE], uint8_t kind, uint32_t nst,
		  uint64_t id, uint64_t plen)
{
	struct shm_hdr h = {.kind = kind,
			    .type = 1,
			    .nstorages = nst,
			    .id = id,
			    .payload_len = plen};

	if (kind == SHM_KIND_ACK)
		h.type = 0;
	shm_hdr_encode(out, &h);
}

/* The transport hung up on the fake: its socket reads 0 (EOF) with no
 * message before it but doorbells (1 byte): no WELCOME, say. */
static bool fake_hung_up(struct fake *f)
{
	uint8_t b[SHM_HS_MAX];
	int64_t end = rxp_now_ns() + 2000000000;

	for (;;) {
		ssize_t n = recv(f->sock, b, sizeof(b), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN))
			return true;
		if (n > 1 || rxp_now_ns() > end)
			return false;
		step();
	}
}

/* The transport still works for a well-behaved peer. */
static void check_still_serves(void)
{
	struct fake f;
	uint8_t h[SHM_HDR_SIZE + 3];
	int recvs = g.recvs;

	fake_open(&f, false);
	frame(h, SHM_KIND_MSG, 0, 4242, 3);
	memcpy(h + SHM_HDR_SIZE, "abc", 3);
	fake_write(&f, h, sizeof(h));
	assert_true(pump_until(&g.recvs, recvs + 1, 1000));
	assert_int_equal(g.last_id, 4242);
	fake_close(&f);
	pump(10);
}

static int setup(void **state)
{
	struct rxp_tp_attr attr = {.local_id = 1, .cb = &g_cb};

	(void)state;
	memset(&g, 0, sizeof(g));
	setenv("RXP_SHM_HS_TIMEOUT_MS", "200", 1);
	setenv("RXP_MAX_RX_MEMORY", "8388608", 1);
	assert_int_equal(rxp_shm_ops.open(&attr, &g.tp), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rxp_shm_ops.close(g.tp);
	return 0;
}

static void expect_failed(struct fake *f, int downs, int err)
{
	assert_true(pump_until(&g.downs, downs + 1, 2000));
	assert_int_equal(g.last_down, err);
	assert_true(fake_hung_up(f));
	fake_close(f);
	check_still_serves();
}

static void test_bad_magic(void **state)
{
	struct fake f;
	uint8_t h[SHM_HDR_SIZE];
	int downs = g.downs;

	(void)state;
	fake_open(&f, false);
	frame(h, SHM_KIND_MSG, 0, 1, 0);
	h[0] ^= 0xff;
	fake_write(&f, h, sizeof(h));
	expect_failed(&f, downs, -RXP_E_PROTO);
}

static void test_impossible_head(void **state)
{
	struct fake f;
	uint8_t h[SHM_HDR_SIZE], one = 1;
	int downs = g.downs, recvs = g.recvs;

	(void)state;
	fake_open(&f, false);
	/* a ring full of good frames, and a head one byte past full: none
	 * of them may be taken */
	for (uint64_t i = 0; i < f.cap / SHM_HDR_SIZE; i++) {
		frame(h, SHM_KIND_MSG, 0, i + 1, 0);
		shm_ring_put(&f.tx, h, sizeof(h));
	}
	atomic_store(&f.tx.ctl->head, f.cap + 1);
	assert_int_equal(send(f.sock, &one, 1, 0), 1);
	assert_true(pump_until(&g.downs, downs + 1, 2000));
	assert_int_equal(g.recvs, recvs);
	expect_failed(&f, downs, -RXP_E_PROTO);
}

static void test_tail_ahead_of_head(void **state)
{
	struct fake f;
	struct rxp_msg_out m = {.type = 1, .id = 9};
	struct rxp_conn *c = NULL;
	int downs = g.downs;

	(void)state;
	fake_open(&f, false);
	/* the transport's connection to us: the one the callbacks named is
	 * not kept, so find it by sending on the only open one */
	for (struct shm_conn *sc = to_stp(g.tp)->conns; sc; sc = sc->next)
		if (sc->state == SC_OPEN)
			c = &sc->base;
	assert_non_null(c);
	atomic_store(&f.rx.ctl->tail, 12345); /* we "consumed" unsent bytes */
	assert_int_equal(g.tp->ops->send(c, &m, NULL), 0);
	expect_failed(&f, downs, -RXP_E_PROTO);
}

/* A frame with one storage "by address" at @addr. */
static void by_address(bool readable, uint64_t addr)
{
	struct fake f;
	uint8_t b[SHM_HDR_SIZE + SHM_DESC_SIZE];
	int downs = g.downs;

	fake_open(&f, readable);
	frame(b, SHM_KIND_MSG, 1, 2, 0);
	rxp_put_le64(b + SHM_HDR_SIZE, 4096 | SHM_DESC_CMA);
	rxp_put_le64(b + SHM_HDR_SIZE + 8, addr);
	fake_write(&f, b, sizeof(b));
	expect_failed(&f, downs, -RXP_E_PROTO);
}

/* by address, though the transport could not read us (the probe failed) */
static void test_by_address_unannounced(void **state)
{
	(void)state;
	by_address(false, (uint64_t)(uintptr_t)&probe_word);
}

/* by address, allowed, at an address nobody maps: process_vm_readv says
 * EFAULT */
static void test_by_address_not_mapped(void **state)
{
	(void)state;
	by_address(true, 8);
}

static void test_over_the_receive_budget(void **state)
{
	struct fake f;
	uint8_t b[SHM_HDR_SIZE + 2 * SHM_DESC_SIZE];
	int downs = g.downs;
	uint64_t refused = rxp_tp_counter(&g.tp->rx_mem_refused);

	(void)state;
	fake_open(&f, false);
	/* 2 x 6 MiB: within the limits (16 GiB a storage), over the budget
	 * (RXP_MAX_RX_MEMORY=8 MiB): refused before any buffer is taken */
	frame(b, SHM_KIND_MSG, 2, 3, 0);
	rxp_put_le64(b + SHM_HDR_SIZE, 6u << 20);
	rxp_put_le64(b + SHM_HDR_SIZE + 8, 0);
	rxp_put_le64(b + SHM_HDR_SIZE + SHM_DESC_SIZE, 6u << 20);
	rxp_put_le64(b + SHM_HDR_SIZE + SHM_DESC_SIZE + 8, 0);
	fake_write(&f, b, sizeof(b));
	expect_failed(&f, downs, -RXP_E_TOO_BIG);
	assert_int_equal(rxp_tp_counter(&g.tp->rx_mem_refused), refused + 1);
	assert_int_equal(rxp_tp_counter(&g.tp->rx_ahead), 0);
}

static void test_ack_for_nothing(void **state)
{
	struct fake f;
	uint8_t h[SHM_HDR_SIZE];
	int downs = g.downs;

	(void)state;
	fake_open(&f, false);
	frame(h, SHM_KIND_ACK, 0, 5, 0);
	fake_write(&f, h, sizeof(h));
	expect_failed(&f, downs, -RXP_E_PROTO);
}

static void test_doorbell_with_an_fd(void **state)
{
	struct fake f;
	uint8_t one = 1;
	int downs = g.downs;

	(void)state;
	fake_open(&f, false);
	assert_int_equal(shm_msg_send(f.sock, &one, 1, STDIN_FILENO), 0);
	expect_failed(&f, downs, -RXP_E_PROTO);
}

/* Before the hand-shake completes the agent knows nothing: no callback,
 * the socket is closed, the failure is counted. */
static void expect_refused(struct fake *f, bool at_once)
{
	uint64_t before = rxp_tp_counter(&g.tp->conns_prehs_failed);
	int64_t t0 = rxp_now_ns(), end = t0 + 2000000000;

	assert_true(fake_hung_up(f));
	/* not by the hand-shake deadline (RXP_SHM_HS_TIMEOUT_MS=200) */
	if (at_once)
		assert_true(rxp_now_ns() - t0 < 150000000);
	while (rxp_tp_counter(&g.tp->conns_prehs_failed) == before &&
	       rxp_now_ns() < end)
		g.tp->ops->progress(g.tp);
	assert_int_equal(rxp_tp_counter(&g.tp->conns_prehs_failed), before + 1);
	assert_int_equal(g.ups, 0);
	assert_int_equal(g.downs, 0);
	close(f->sock);
	check_still_serves();
}

static void test_memfd_that_can_shrink(void **state)
{
	struct fake f = {.cap = SHM_RING_MIN};
	int fd = memfd_create("not-sealed", MFD_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)shm_map_bytes(f.cap)), 0);
	f.sock = fake_dial();
	fake_hello(&f, f.cap, false);
	assert_int_equal(shm_msg_send(f.sock, f.hello, SHM_HELLO_SIZE, fd), 0);
	close(fd);
	expect_refused(&f, true);
}

static void test_ring_size_not_a_power_of_two(void **state)
{
	struct fake f = {.cap = SHM_RING_MIN + 4096};
	int fd = shm_memfd_new(shm_map_bytes(f.cap));

	(void)state;
	assert_true(fd >= 0);
	f.sock = fake_dial();
	fake_hello(&f, f.cap, false);
	assert_int_equal(shm_msg_send(f.sock, f.hello, SHM_HELLO_SIZE, fd), 0);
	close(fd);
	expect_refused(&f, true);
}

static void test_hello_without_memfd(void **state)
{
	struct fake f = {.cap = SHM_RING_MIN};

	(void)state;
	f.sock = fake_dial();
	fake_hello(&f, f.cap, false);
	assert_int_equal(shm_msg_send(f.sock, f.hello, SHM_HELLO_SIZE, -1), 0);
	expect_refused(&f, true);
}

static void test_silent_peer_times_out(void **state)
{
	struct fake f = {0};
	int64_t t0 = rxp_now_ns();

	(void)state;
	f.sock = fake_dial();
	expect_refused(&f, false); /* RXP_SHM_HS_TIMEOUT_MS=200 */
	assert_true(rxp_now_ns() - t0 >= 150000000);
}

/* The same with the poller asleep: nothing else happens, yet the
 * deadline wakes it (the transport's wait fd becomes readable). */
static void test_silent_peer_times_out_while_asleep(void **state)
{
	struct fake f = {0};
	uint64_t before = rxp_tp_counter(&g.tp->conns_prehs_failed);
	int64_t t0 = rxp_now_ns(), dt;

	(void)state;
	f.sock = fake_dial();
	while (rxp_tp_counter(&g.tp->conns_prehs_failed) == before &&
	       rxp_now_ns() - t0 < 5000000000) {
		struct pollfd p = {g.tp->ops->wait_fd(g.tp), POLLIN, 0};

		g.tp->ops->progress(g.tp);
		if (rxp_tp_counter(&g.tp->conns_prehs_failed) != before)
			break;
		if (g.tp->ops->arm(g.tp) == 0)
			poll(&p, 1, 5000);
	}
	dt = rxp_now_ns() - t0;
	assert_int_equal(rxp_tp_counter(&g.tp->conns_prehs_failed), before + 1);
	printf("  refused after %lld ms\n", (long long)(dt / 1000000));
	assert_true(dt >= 150000000 && dt < 1000000000); /* 200 ms */
	assert_true(fake_hung_up(&f));
	close(f.sock);
}

static int open_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n += access(path, F_OK) == 0;
	}
	return n;
}

/* Connections that come and go leave no fd behind (the memfd each HELLO
 * passes is closed once it is mapped). */
static void test_no_fd_left_behind(void **state)
{
	int before;

	(void)state;
	check_still_serves(); /* the pools and sockets of a first one */
	before = open_fds();
	for (int i = 0; i < 5; i++)
		check_still_serves();
	assert_int_equal(open_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_magic, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_impossible_head, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tail_ahead_of_head, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_by_address_unannounced,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_by_address_not_mapped,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_over_the_receive_budget,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_for_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_doorbell_with_an_fd, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_memfd_that_can_shrink,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_ring_size_not_a_power_of_two, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_without_memfd, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_silent_peer_times_out,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_fd_left_behind, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_silent_peer_times_out_while_asleep, setup,
			teardown),
	};

	return cmocka_run_group_tests_name("shm_proto", tests, NULL, NULL);
}
