/* SPDX-License-Identifier: MIT */
/*
 * TCP transport error paths: allocation failures (rxp__alloc_fail_after)
 * during open, accept, send and the receive of a storage; syscalls that
 * fail or come up short (the tcp_sys table); io_uring refused at open
 * (fallback to tcp-poll, logged); SEND_ZC, direct receives and -ENOBUFS
 * on the provided-buffer ring.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tcp/tcp.h"
#include "tcp_raw.h"

static struct tcp_sys mock;

static int restore(void **state)
{
	rxp__tcp_sys = &rxp__tcp_sys_default;
	rxp__alloc_fail_after(-1);
	unsetenv("RXP_TEST_TRANSPORT");
	unsetenv("RXP_NO_URING");
	unsetenv("RXP_TCP_ZC_THRESHOLD");
	return 0;
}

static void use_mock(void)
{
	mock = rxp__tcp_sys_default;
	rxp__tcp_sys = &mock;
}

static bool count_at_least(void *arg)
{
	const int *const *p = arg;

	return *p[0] >= *p[1];
}

static bool pump_until(struct h_side *a, struct h_side *b, const int *n,
		       int want, int ms)
{
	const int *args[2] = {n, &want};

	return h_pump(a, b, count_at_least, args, ms);
}

/* ------------------------------------------------------ allocations */

static void sweep_open(const char *backend)
{
	struct h_side s;
	long n;
	int err = -ENOMEM;

	setenv("RXP_TEST_TRANSPORT", backend, 1);
	for (n = 0; n < 200 && err; n++) {
		rxp__alloc_fail_after(n);
		err = h_open(&s, "S", 1, NULL);
		rxp__alloc_fail_after(-1);
		if (err) {
			assert_int_equal(err, -ENOMEM);
			assert_null(s.tp);
		}
	}
	assert_int_equal(err, 0); /* LeakSanitizer checks the failed ones */
	assert_true(n > 3);
	h_close(&s);
}

static void test_open_alloc_sweep_uring(void **state)
{
	sweep_open("tcp");
}

static void test_open_alloc_sweep_poll(void **state)
{
	sweep_open("tcp-poll");
}

static void storage_alloc_fails(const char *backend)
{
	struct h_side a, b;
	struct rxp_conn *c;
	static char big[1 << 20];
	struct rxp_iov st = {big, sizeof(big)};
	struct rxp_msg_out m = {.id = 1, .storages = &st, .nstorages = 1};
	struct h_send s = {0};

	setenv("RXP_TEST_TRANSPORT", backend, 1);
	assert_int_equal(h_open(&a, "A", 1, NULL), 0);
	assert_int_equal(h_open(&b, "B", 2, NULL), 0);
	c = h_connect(&a, &b, NULL);
	assert_non_null(c);
	/* warm: the first send grows nothing after this */
	rxp__alloc_fail_after(0);
	assert_int_equal(c->tp->ops->send(c, &m, &s), 0);
	assert_true(pump_until(&a, &b, &b.ndown, 1, 3000));
	rxp__alloc_fail_after(-1);
	assert_int_equal(b.down[0].status, -ENOMEM);
	assert_int_equal(b.nmsgs, 0);
	assert_true(pump_until(&a, &b, &a.ndown, 1, 3000));
	assert_int_equal(s.calls, 1);
	h_close(&a);
	h_close(&b);
}

static void test_storage_alloc_fails_uring(void **state)
{
	storage_alloc_fails("tcp");
}

static void test_storage_alloc_fails_poll(void **state)
{
	storage_alloc_fails("tcp-poll");
}

static void test_send_slot_alloc_fails(void **state)
{
	struct h_side a, b;
	struct rxp_conn *c;
	struct h_send s[TCP_SLOTS_PER_CHUNK + 1] = {{0}};
	struct rxp_msg_out m = {.id = 1};
	int i;

	setenv("RXP_TEST_TRANSPORT", "tcp", 1);
	assert_int_equal(h_open(&a, "A", 1, NULL), 0);
	assert_int_equal(h_open(&b, "B", 2, NULL), 0);
	c = h_connect(&a, &b, NULL);
	assert_non_null(c);
	rxp__alloc_fail_after(0);
	/* one chunk of slots exists; the send that needs a second fails */
	for (i = 0; i < TCP_SLOTS_PER_CHUNK; i++)
		assert_int_equal(c->tp->ops->send(c, &m, &s[i]), 0);
	assert_int_equal(c->tp->ops->send(c, &m, &s[i]), -ENOMEM);
	/* so does a frame too big for the inline header */
	rxp__alloc_fail_after(-1);
	assert_true(pump_until(&a, &b, &a.nsend_cb, TCP_SLOTS_PER_CHUNK, 3000));
	assert_true(pump_until(&a, &b, &b.nmsgs, TCP_SLOTS_PER_CHUNK, 3000));
	{
		static struct rxp_iov many[TCP_SLOT_INLINE_LENS + 1];
		struct rxp_msg_out mm = {.id = 2,
					 .storages = many,
					 .nstorages = RXP_ARRAY_SIZE(many)};

		rxp__alloc_fail_after(0);
		assert_int_equal(c->tp->ops->send(c, &mm, &s[i]), -ENOMEM);
		rxp__alloc_fail_after(-1);
		assert_int_equal(c->tp->ops->send(c, &mm, &s[i]), 0);
		assert_true(pump_until(&a, &b, &a.nsend_cb,
				       TCP_SLOTS_PER_CHUNK + 1, 3000));
	}
	assert_int_equal(s[i].calls, 1);
	assert_int_equal(a.ndown + b.ndown, 0);
	h_close(&a);
	h_close(&b);
}

static void test_accept_alloc_fails(void **state)
{
	struct h_side a, b;
	struct rxp_conn *c = NULL;
	int fd;

	setenv("RXP_TEST_TRANSPORT", "tcp", 1);
	assert_int_equal(h_open(&a, "A", 1, NULL), 0);
	assert_int_equal(h_open(&b, "B", 2, NULL), 0);
	fd = raw_connect(&b);
	assert_true(fd >= 0);
	rxp__alloc_fail_after(0);
	assert_true(raw_wait_closed(fd, &b, 2000)); /* dropped, no crash */
	rxp__alloc_fail_after(-1);
	close(fd);
	c = h_connect(&a, &b, NULL); /* and B still accepts */
	assert_non_null(c);
	h_close(&a);
	h_close(&b);
}

/* ------------------------------------------------------ fallback */

static char *capture_open(struct h_side *s, const struct rxp_tp_attr *attr,
			  int *err)
{
	char path[] = "/tmp/rxp_tcp_logXXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	static char buf[4096];
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	fflush(stderr);
	dup2(fd, 2);
	*err = h_open_ops(s, "S", 1, attr, &rxp_tcp_ops, 0, NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int fail_init_enosys(unsigned e, struct io_uring *r,
			    struct io_uring_params *p)
{
	return -ENOSYS;
}

static int fail_init_eperm(unsigned e, struct io_uring *r,
			   struct io_uring_params *p)
{
	return -EPERM;
}

static int fail_buf_ring(struct io_uring *r, struct io_uring_buf_reg *reg,
			 unsigned f)
{
	return -EINVAL;
}

/* The fallback is chosen, logged with its reason, and works. */
static void check_fallback(const struct rxp_tp_attr *attr, const char *why)
{
	struct h_side a, b;
	struct rxp_conn *c;
	struct h_send s = {0};
	struct rxp_msg_out m = {.id = 11};
	const char *log;
	int err;

	setenv("RXP_LOG", "info", 1);
	log = capture_open(&a, attr, &err);
	setenv("RXP_LOG", "error", 1);
	rxp__log_init();
	assert_int_equal(err, 0);
	assert_string_equal(a.tp->name, "tcp-poll");
	assert_non_null(strstr(log, "using tcp-poll"));
	assert_non_null(strstr(log, why));
	assert_int_equal(h_open_ops(&b, "B", 2, attr, &rxp_tcp_ops, 0, NULL),
			 0);
	c = h_connect(&a, &b, NULL);
	assert_non_null(c);
	assert_int_equal(c->tp->ops->send(c, &m, &s), 0);
	assert_true(pump_until(&a, &b, &b.nmsgs, 1, 3000));
	assert_true(pump_until(&a, &b, &s.calls, 1, 3000));
	h_close(&a);
	h_close(&b);
}

static void test_fallback_flag(void **state)
{
	struct rxp_tp_attr attr = {.flags = RXP_TP_F_NO_URING};

	check_fallback(&attr, "RXP_TP_F_NO_URING");
}

static void test_fallback_env(void **state)
{
	setenv("RXP_NO_URING", "1", 1);
	check_fallback(NULL, "RXP_NO_URING=1");
}

static void test_fallback_enosys(void **state)
{
	use_mock();
	mock.uring_init = fail_init_enosys;
	check_fallback(NULL, "io_uring_queue_init");
}

static void test_fallback_eperm(void **state)
{
	use_mock();
	mock.uring_init = fail_init_eperm;
	check_fallback(NULL, "io_uring_disabled");
}

static void test_fallback_no_buf_ring(void **state)
{
	use_mock();
	mock.uring_register_buf_ring = fail_buf_ring;
	check_fallback(NULL, "io_uring_register_buf_ring");
}

/* ------------------------------------------------- syscall failures */

static int fail_epoll_create(int flags)
{
	errno = EMFILE;
	return -1;
}

static int fail_socket(int d, int t, int p)
{
	errno = EMFILE;
	return -1;
}

static void test_open_epoll_fails(void **state)
{
	struct h_side s;

	setenv("RXP_TEST_TRANSPORT", "tcp-poll", 1);
	use_mock();
	mock.epoll_create1 = fail_epoll_create;
	assert_int_equal(h_open(&s, "S", 1, NULL), -EMFILE);
	mock.epoll_create1 = rxp__tcp_sys_default.epoll_create1;
	mock.socket = fail_socket; /* the listener */
	assert_int_equal(h_open(&s, "S", 1, NULL), -EMFILE);
}

static void test_connect_socket_fails(void **state)
{
	struct h_side a;
	struct rxp_conn *c = NULL;

	setenv("RXP_TEST_TRANSPORT", "tcp", 1);
	assert_int_equal(h_open(&a, "A", 1, NULL), 0);
	use_mock();
	mock.socket = fail_socket;
	assert_int_equal(a.tp->ops->connect(a.tp, "127.0.0.1:9", 2, &c),
			 -EMFILE);
	assert_null(c);
	h_spin(&a, NULL, 10);
	assert_int_equal(a.ndown, 0);
	h_close(&a);
}

static int short_calls;

/* At most 7 bytes per call, and every third call would block. */
static ssize_t short_sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct msghdr one = *m;
	struct iovec iov;

	if (++short_calls % 3 == 0) {
		errno = EAGAIN;
		return -1;
	}
	iov = m->msg_iov[0];
	if (iov.iov_len > 7)
		iov.iov_len = 7;
	one.msg_iov = &iov;
	one.msg_iovlen = 1;
	return sendmsg(fd, &one, flags);
}

static ssize_t eintr_readv(int fd, const struct iovec *iov, int n)
{
	static int calls;

	if (++calls % 2) {
		errno = EINTR;
		return -1;
	}
	return readv(fd, iov, n);
}

static void test_poll_short_sends(void **state)
{
	enum { N = 50 };
	struct h_side a, b;
	struct rxp_conn *c;
	static char pl[N][100], st[40000];
	struct h_send s[N] = {{0}};

	setenv("RXP_TEST_TRANSPORT", "tcp-poll", 1);
	use_mock();
	mock.sendmsg = short_sendmsg;
	mock.readv = eintr_readv;
	assert_int_equal(h_open(&a, "A", 1, NULL), 0);
	assert_int_equal(h_open(&b, "B", 2, NULL), 0);
	c = h_connect(&a, &b, NULL);
	assert_non_null(c);
	pattern_fill(st, sizeof(st), 1000, 1);
	for (int i = 0; i < N; i++) {
		struct rxp_iov p = {pl[i], sizeof(pl[i])}, t = {st, sizeof(st)};
		struct rxp_msg_out m = {.id = (uint64_t)(i == 7 ? 1000 : i),
					.payload = &p,
					.npayload = 1,
					.storages = &t,
					.nstorages = i == 7};

		pattern_fill(pl[i], sizeof(pl[i]), m.id, 0);
		assert_int_equal(c->tp->ops->send(c, &m, &s[i]), 0);
	}
	assert_true(pump_until(&a, &b, &b.nmsgs, N, 10000));
	for (int i = 0; i < N; i++)
		assert_true(b.msgs[i].ok);
	assert_int_equal(b.msgs[7].nstorages, 1);
	assert_true(pump_until(&a, &b, &a.nsend_cb, N, 3000));
	assert_true(short_calls > 1000);
	h_close(&a);
	h_close(&b);
}

static ssize_t reset_sendmsg(int fd, const struct msghdr *m, int flags)
{
	errno = ECONNRESET;
	return -1;
}

static ssize_t eio_readv(int fd, const struct iovec *iov, int n)
{
	errno = EIO;
	return -1;
}

static void test_poll_send_error(void **state)
{
	struct h_side a, b;
	struct rxp_conn *c;
	struct h_send s[2] = {{0}};
	struct rxp_msg_out m = {.id = 1};

	setenv("RXP_TEST_TRANSPORT", "tcp-poll", 1);
	assert_int_equal(h_open(&a, "A", 1, NULL), 0);
	assert_int_equal(h_open(&b, "B", 2, NULL), 0);
	c = h_connect(&a, &b, NULL);
	assert_non_null(c);
	use_mock();
	mock.sendmsg = reset_sendmsg;
	/* the first send is tried at once, fails the connection... */
	assert_int_equal(c->tp->ops->send(c, &m, &s[0]), 0);
	assert_int_equal(s[0].calls, 0);
	/* ...so the next is refused: nothing queued, no callback */
	assert_int_equal(c->tp->ops->send(c, &m, &s[1]), -ECONNRESET);
	assert_true(pump_until(&a, NULL, &a.ndown, 1, 2000));
	assert_int_equal(a.down[0].status, -ECONNRESET);
	assert_int_equal(s[0].calls, 1);
	assert_int_equal(s[0].status, -ECONNRESET);
	assert_true(s[0].seq < a.down[0].seq);
	assert_int_equal(s[1].calls, 0);
	/* the peer's receive fails with EIO (or sees A's shutdown first) */
	mock.sendmsg = rxp__tcp_sys_default.sendmsg;
	mock.readv = eio_readv;
	assert_true(pump_until(&b, NULL, &b.ndown, 1, 2000));
	assert_true(b.down[0].status == -EIO ||
		    b.down[0].status == -RXP_E_PEER_LOST);
	h_close(&a);
	h_close(&b);
}

/* ------------------------------------------ io_uring specific paths */

static void test_zc_direct_and_stats(void **state)
{
	enum { N = 6 };
	struct h_side a, b;
	struct rxp_conn *c;
	struct tcp_tp *ta, *tb;
	char *mem = malloc(N << 20);
	struct h_send s[N] = {{0}};

	assert_non_null(mem);
	setenv("RXP_TEST_TRANSPORT", "tcp", 1);
	setenv("RXP_TCP_ZC_THRESHOLD", "65536", 1);
	assert_int_equal(h_open(&a, "A", 1, NULL), 0);
	unsetenv("RXP_TCP_ZC_THRESHOLD");
	assert_int_equal(h_open(&b, "B", 2, NULL), 0);
	ta = to_ttp(a.tp);
	tb = to_ttp(b.tp);
	assert_int_equal(ta->zc_threshold, 65536);
	assert_int_equal(tb->zc_threshold, SIZE_MAX);
	c = h_connect(&a, &b, NULL);
	assert_non_null(c);
	for (int i = 0; i < N; i++) {
		struct rxp_iov st = {mem + ((size_t)i << 20), 1 << 20};
		struct rxp_msg_out m = {
			.id = (uint64_t)i, .storages = &st, .nstorages = 1};

		pattern_fill(mem + ((size_t)i << 20), 1 << 20, (uint64_t)i, 1);
		assert_int_equal(c->tp->ops->send(c, &m, &s[i]), 0);
	}
	assert_true(pump_until(&a, &b, &a.nsend_cb, N, 5000));
	assert_true(pump_until(&a, &b, &b.nmsgs, N, 5000));
	for (int i = 0; i < N; i++) {
		assert_int_equal(s[i].status, 0);
		assert_true(b.msgs[i].ok);
	}
	assert_true(ta->stats.zc_sends > 0);
	assert_int_equal(to_tconn(c)->notif, 0); /* every NOTIF seen */
	/* bodies read in place: at most one ring's worth (16 x 4 KiB) of
	 * each 1 MiB storage was copied out of provided buffers */
	assert_true(tb->stats.direct_recvs >= N);
	assert_true(tb->stats.body_copied <= N * 16 * 4096);
	assert_true(tb->stats.body_direct >=
		    (uint64_t)N * ((1 << 20) - 16 * 4096));
	/* on_send never ran before the NOTIF: the slots were held */
	assert_int_equal(to_tconn(c)->nslots, 0);
	h_close(&a);
	h_close(&b);
	free(mem);
}

static void test_enobufs_rearm(void **state)
{
	enum { N = 400 };
	struct h_side a, b;
	struct rxp_conn *c;
	static char pl[8000];
	struct h_send s = {0};

	setenv("RXP_TEST_TRANSPORT", "tcp", 1);
	assert_int_equal(h_open(&a, "A", 1, NULL), 0);
	assert_int_equal(h_open(&b, "B", 2, NULL), 0);
	c = h_connect(&a, &b, NULL);
	assert_non_null(c);
	for (int i = 0; i < N; i++) {
		struct rxp_iov p = {pl, sizeof(pl)};
		struct rxp_msg_out m = {
			.id = (uint64_t)i, .payload = &p, .npayload = 1};

		assert_int_equal(c->tp->ops->send(c, &m, &s), 0);
	}
	b.verify = false; /* every payload carries the same bytes */
	/* only A runs: B's multishot recv drains its 64 ring buffers */
	h_spin(&a, NULL, 300);
	assert_true(pump_until(&a, &b, &b.nmsgs, N, 5000));
	for (int i = 0; i < N; i++)
		assert_int_equal(b.msgs[i].id, (uint64_t)i);
	assert_true(to_ttp(b.tp)->stats.enobufs > 0);
	assert_true(to_ttp(b.tp)->stats.ms_rearms > 1);
	h_close(&a);
	h_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_teardown(fn, restore)
		T(test_open_alloc_sweep_uring),
		T(test_open_alloc_sweep_poll),
		T(test_storage_alloc_fails_uring),
		T(test_storage_alloc_fails_poll),
		T(test_send_slot_alloc_fails),
		T(test_accept_alloc_fails),
		T(test_fallback_flag),
		T(test_fallback_env),
		T(test_fallback_enosys),
		T(test_fallback_eperm),
		T(test_fallback_no_buf_ring),
		T(test_open_epoll_fails),
		T(test_connect_socket_fails),
		T(test_poll_short_sends),
		T(test_poll_send_error),
		T(test_zc_direct_and_stats),
		T(test_enobufs_rearm),
#undef T
	};

	setenv("RXP_LOG", "error", 1);
	return cmocka_run_group_tests_name("tcp_fault", tests, NULL, NULL);
}
