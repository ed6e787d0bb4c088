/* SPDX-License-Identifier: MIT */
/*
 * Rendezvous through a framework's store (attr.store, struct
 * rxp_store_ops): worlds whose workers are threads of this process (or
 * forked processes) sharing tests/helpers/test_store.c, with no rendezvous
 * port of rxp's own. Bad records, duplicate names, missing ranks and store
 * ops that fail must fail create/join cleanly (ASan/LSan check no leak).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <rxp/rxp.h>
#include "rxp_util.h"
#include "skip.h"
#include "test_store.h"
#include "world.h"

#define MAXW 4

struct wk {
	struct rxp_agent_attr attr;
	char name[32];
	struct tstore_ctx ctx;
	struct rxp_agent *a;
	int64_t join_timeout_ms;
	int ret;
	pthread_t t;
};

static int64_t ms(int64_t v)
{
	return v * world_time_scale();
}

static int64_t now_ms(void)
{
	return rxp_now_ns() / 1000000;
}

static void wk_init(struct wk *w, struct tstore *s, int rank, int size,
		    int port)
{
	memset(w, 0, sizeof(*w));
	world_attr(&w->attr, rank, size, port, w->name, sizeof(w->name));
	w->ctx.s = s;
	w->attr.store = &tstore_ops;
	w->attr.store_ctx = &w->ctx;
	w->attr.init_timeout_ms = ms(10000);
	w->join_timeout_ms = ms(10000);
}

static void *wk_create(void *arg)
{
	struct wk *w = arg;

	w->ret = rxp_agent_create(&w->attr, &w->a);
	return NULL;
}

static void *wk_join(void *arg)
{
	struct wk *w = arg;

	w->ret = rxp_agent_join(w->a, w->join_timeout_ms);
	return NULL;
}

/* run @fn for workers [0, n) at once, each on its own thread */
static void run_all(struct wk *w, int n, void *(*fn)(void *))
{
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_create(&w[i].t, NULL, fn, &w[i]), 0);
	for (int i = 0; i < n; i++)
		pthread_join(w[i].t, NULL);
}

static void shutdown_all(struct wk *w, int n)
{
	for (int i = 0; i < n; i++) {
		rxp_agent_shutdown(w[i].a);
		w[i].a = NULL;
	}
}

/* ------------------------------------------------- stderr capture */

static FILE *cap_file;
static int cap_saved = -1;

static void capture_start(void)
{
	fflush(stderr);
	cap_file = tmpfile();
	assert_non_null(cap_file);
	cap_saved = dup(2);
	assert_true(cap_saved >= 0);
	assert_true(dup2(fileno(cap_file), 2) >= 0);
}

/* what was logged since capture_start (static buffer); also echoed */
static const char *capture_end(void)
{
	static char buf[16384];
	size_t n;

	fflush(stderr);
	dup2(cap_saved, 2);
	close(cap_saved);
	rewind(cap_file);
	n = fread(buf, 1, sizeof(buf) - 1, cap_file);
	buf[n] = 0;
	fclose(cap_file);
	fputs(buf, stderr);
	return buf;
}

/* ------------------------------------------------------ world of three */

/* A port where something else listens, as torchrun's store does. */
static int busy_port(int *fd)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);

	*fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(*fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(*fd, 16), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&sin, &sl), 0);
	return ntohs(sin.sin_port);
}

static void check_all_pairs(struct rxp_agent *a, int n)
{
	for (int dst = 0; dst < n; dst++) {
		char dname[24];

		snprintf(dname, sizeof(dname), "worker%d", dst);
		for (int via = 0; via < n; via++) {
			struct rxp_value args[2] = {rxp_v_str(dname),
						    rxp_v_str("t.whoami")};
			struct rxp_future *f;

			assert_int_equal(rxp_rpc_sync(a, via, "t.call", args, 2,
						      NULL, 0, NULL, &f),
					 0);
			assert_int_equal(rxp_future_status(f), 0);
			assert_string_equal(rxp_future_value(f)->u.str.ptr,
					    dname);
			rxp_future_release(f);
		}
	}
}

static void test_store_world_of_three_calls_and_joins_twice(void **state)
{
	struct tstore *s = tstore_new();
	struct wk w[3];
	struct pollfd p;
	int lfd, port = busy_port(&lfd);

	assert_non_null(s);
	for (int i = 0; i < 3; i++)
		wk_init(&w[i], s, i, 3, port);
	/* bind address from the route to master_addr */
	w[2].attr.bind_addr = NULL;
	unsetenv("RXP_BIND_ADDR");
	run_all(w, 3, wk_create);
	for (int i = 0; i < 3; i++)
		assert_int_equal(w[i].ret, 0);
	/* nobody bound or connected to master_port */
	p = (struct pollfd){.fd = lfd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0);
	for (int i = 0; i < 3; i++)
		check_all_pairs(w[i].a, 3);
	for (int round = 0; round < 2; round++) {
		run_all(w, 3, wk_join);
		for (int i = 0; i < 3; i++)
			assert_int_equal(w[i].ret, 0);
	}
	/* rxp/w/0..2, rxp/join/{0,1} and their done keys */
	assert_int_equal(tstore_nkeys(s), 7);
	check_all_pairs(w[1].a, 3);
	shutdown_all(w, 3);
	close(lfd);
	tstore_free(s);
}

static void test_store_join_times_out_then_resumes(void **state)
{
	struct tstore *s = tstore_new();
	struct wk w[2];

	for (int i = 0; i < 2; i++)
		wk_init(&w[i], s, i, 2, 1);
	run_all(w, 2, wk_create);
	assert_int_equal(w[0].ret, 0);
	assert_int_equal(w[1].ret, 0);
	/* worker1 is not there yet: worker0's join times out */
	w[0].join_timeout_ms = 200;
	wk_join(&w[0]);
	assert_int_equal(w[0].ret, -ETIMEDOUT);
	/* its next join resumes the same round, with worker1 this time */
	w[0].join_timeout_ms = ms(10000);
	run_all(w, 2, wk_join);
	assert_int_equal(w[0].ret, 0);
	assert_int_equal(w[1].ret, 0);
	run_all(w, 2, wk_join);
	assert_int_equal(w[0].ret, 0);
	assert_int_equal(w[1].ret, 0);
	/* no limit: waited out in slices longer than one get */
	w[0].join_timeout_ms = RXP_TIMEOUT_NEVER;
	assert_int_equal(pthread_create(&w[0].t, NULL, wk_join, &w[0]), 0);
	usleep(1500 * 1000);
	wk_join(&w[1]);
	pthread_join(w[0].t, NULL);
	assert_int_equal(w[0].ret, 0);
	assert_int_equal(w[1].ret, 0);
	shutdown_all(w, 2);
	tstore_free(s);
}

/* ------------------------------------------------------ failing worlds */

static void test_store_duplicate_name_fails_every_worker(void **state)
{
	struct tstore *s = tstore_new();
	struct wk w[3];
	const char *log;

	for (int i = 0; i < 3; i++)
		wk_init(&w[i], s, i, 3, 1);
	w[2].attr.name = "worker0";
	capture_start();
	run_all(w, 3, wk_create);
	log = capture_end();
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i].ret, -RXP_E_DUP_NAME);
		assert_null(w[i].a);
	}
	assert_non_null(strstr(
		log, "workers of rank 0 and 2 share the name 'worker0'"));
	tstore_free(s);
}

static void test_store_missing_ranks_time_out_named(void **state)
{
	struct tstore *s = tstore_new();
	struct wk w[2];
	const char *log;
	int64_t t0 = now_ms();

	for (int i = 0; i < 2; i++) {
		wk_init(&w[i], s, i, 4, 1);
		w[i].attr.init_timeout_ms = 300;
	}
	capture_start();
	run_all(w, 2, wk_create);
	log = capture_end();
	for (int i = 0; i < 2; i++) {
		assert_int_equal(w[i].ret, -ETIMEDOUT);
		assert_null(w[i].a);
	}
	assert_true(now_ms() - t0 < ms(5000));
	assert_non_null(strstr(log, "ranks 2,3 never published"));
	tstore_free(s);
}

/* rank 1's record as rxp writes it, for the corruption cases */
static size_t good_record(uint8_t *p, const char *tp)
{
	const char *s[3] = {"worker1", "127.0.0.1:1", tp};
	size_t off = 24;

	memset(p, 0, 24);
	rxp_put_le32(p, 0x53575852u);
	rxp_put_le16(p + 4, 1);
	rxp_put_le32(p + 8, 1);
	rxp_put_le32(p + 12, 2);
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(s[i]) + 1;

		rxp_put_le16(p + 16 + 2 * i, (uint16_t)n);
		memcpy(p + off, s[i], n);
		off += n;
	}
	return off;
}

enum bad {
	BAD_MAGIC,
	BAD_VERSION,
	BAD_OVERSIZED,
	BAD_SHORT,
	BAD_NO_NUL,
	BAD_NAME_LEN,
	BAD_RANK,
	BAD_WORLD,
	BAD_TRAILING,
	BAD_TRANSPORT,
	BAD__COUNT
};

static const char *const bad_log[BAD__COUNT] = {
	"bad magic 0x",
	"record version 7",
	"record of 4000 bytes",
	"record of 10 bytes",
	"name is not one NUL-terminated string",
	"name length 200",
	"record says rank 0 of world 2 (expected rank 1 of 2)",
	"record says rank 1 of world 3 (expected rank 1 of 2)",
	"3 bytes after the record's strings",
	"(rank 1) chose carrier-pigeon; set RXP_TRANSPORT",
};

static size_t bad_record(uint8_t *p, enum bad b)
{
	size_t len =
		good_record(p, b == BAD_TRANSPORT ? "carrier-pigeon" : "tcp");

	switch (b) {
	case BAD_MAGIC:
		p[0] ^= 0xff;
		break;
	case BAD_VERSION:
		rxp_put_le16(p + 4, 7);
		break;
	case BAD_OVERSIZED:
		memset(p + len, 'x', 4000 - len);
		return 4000;
	case BAD_SHORT:
		return 10;
	case BAD_NO_NUL:
		p[24 + strlen("worker1")] = 'x';
		break;
	case BAD_NAME_LEN:
		rxp_put_le16(p + 16, 200);
		break;
	case BAD_RANK:
		rxp_put_le32(p + 8, 0);
		break;
	case BAD_WORLD:
		rxp_put_le32(p + 12, 3);
		break;
	case BAD_TRAILING:
		memset(p + len, 0, 3);
		return len + 3;
	default:
		break;
	}
	return len;
}

static void test_store_corrupted_records_refused(void **state)
{
	static uint8_t rec[TSTORE_VAL_LEN];

	for (int b = 0; b < BAD__COUNT; b++) {
		struct tstore *s = tstore_new();
		size_t len = bad_record(rec, (enum bad)b);
		const char *log;
		int64_t t0 = now_ms();
		struct wk w;

		assert_int_equal(tstore_put(s, "rxp/w/1", rec, len), 0);
		wk_init(&w, s, 0, 2, 1);
		capture_start();
		wk_create(&w);
		log = capture_end();
		if (w.ret != -RXP_E_RENDEZVOUS || !strstr(log, bad_log[b]) ||
		    !strstr(log, "rank 1"))
			fail_msg("case %d: ret %d, expected '%s' in the log", b,
				 w.ret, bad_log[b]);
		assert_null(w.a);
		/* refused at once, not at the timeout */
		assert_true(now_ms() - t0 < ms(5000));
		tstore_free(s);
	}
}

/* worker1 of the fault sweep, in a forked child: its rings live in another
 * process (TSan cannot see liburing's raw mmap, and would take a ring
 * mapped where another thread's freed one was for a race) */
static pid_t fork_peer(struct tstore *s)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct wk w;

		wk_init(&w, s, 1, 2, 1);
		w.attr.init_timeout_ms = ms(1000);
		if (!rxp_agent_create(&w.attr, &w.a) &&
		    !rxp_agent_join(w.a, ms(1000)))
			rxp_agent_join(w.a, ms(1000));
		rxp_agent_shutdown(w.a);
		_exit(0);
	}
	return pid;
}

/*
 * Fault injection: worker0's n-th store op fails with -EIO, for n = 1, 2,
 * ... until create and two joins get through without reaching it. Each
 * failure fails that step with -RXP_E_RENDEZVOUS (LSan: nothing leaks);
 * worker1 times out, or gets through when worker0 failed after its part.
 */
static void test_store_failing_ops_fail_cleanly(void **state)
{
	int n, create_fails = 0, join_fails = 0;

	for (n = 1; n < 20; n++) {
		struct tstore *s = tstore_new();
		pid_t peer = fork_peer(s);
		bool hit = false;
		struct wk w;
		int st;

		wk_init(&w, s, 0, 2, 1);
		w.attr.init_timeout_ms = ms(1000);
		w.ctx.fail_at = n;
		wk_create(&w);
		if (w.ret) {
			assert_int_equal(w.ret, -RXP_E_RENDEZVOUS);
			assert_null(w.a);
			create_fails++;
			hit = true;
		}
		for (int round = 0; !hit && round < 2; round++) {
			w.ret = rxp_agent_join(w.a, ms(1000));
			if (w.ret) {
				assert_int_equal(w.ret, -RXP_E_RENDEZVOUS);
				join_fails++;
				hit = true;
			}
		}
		rxp_agent_shutdown(w.a);
		assert_int_equal(waitpid(peer, &st, 0), peer);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		tstore_free(s);
		if (!hit)
			break;
	}
	printf("store faults: %d in create, %d in join, clean at op %d\n",
	       create_fails, join_fails, n);
	assert_int_equal(create_fails, 2); /* set, get */
	assert_true(join_fails >= 4);	   /* add, get; (set done) x 2 */
	assert_true(n < 20);
}

static void test_store_bad_attr_and_transport_failures(void **state)
{
	struct rxp_store_ops no_add = tstore_ops;
	struct tstore *s = tstore_new();
	struct wk w;

	/* an ops table without add */
	no_add.add = NULL;
	wk_init(&w, s, 0, 1, 1);
	w.attr.store = &no_add;
	assert_int_equal(rxp_agent_create(&w.attr, &w.a), -EINVAL);
	assert_null(w.a);
	/* the data transport cannot open: the rendezvous goes, nothing
	 * leaks, nothing is freed twice (with a store and without) */
	for (int builtin = 0; builtin < 2; builtin++) {
		wk_init(&w, s, 0, 1, builtin ? world_free_port() : 1);
		if (builtin)
			w.attr.store = NULL;
		w.attr.bind_addr = "192.0.2.1"; /* TEST-NET: not ours */
		assert_true(rxp_agent_create(&w.attr, &w.a) < 0);
		assert_null(w.a);
		w.attr.bind_addr = "not-an-address";
		assert_int_equal(rxp_agent_create(&w.attr, &w.a), -EINVAL);
		assert_null(w.a);
		w.attr.bind_addr = "127.0.0.1";
		w.attr.transport = "verbs"; /* no device here, mostly */
		w.ret = rxp_agent_create(&w.attr, &w.a);
		assert_true(w.ret == 0 || w.ret == -RXP_E_NO_DEVICE);
		rxp_agent_shutdown(w.a);
	}
	tstore_free(s);
}

/* ------------------------------------------------------ across processes */

static void test_store_world_of_forked_processes(void **state)
{
	struct tstore *s = tstore_new();
	pid_t pids[3];
	struct wk w;

	assert_non_null(s);
	fflush(NULL);
	for (int r = 1; r < 3; r++) {
		pids[r] = fork();
		assert_true(pids[r] >= 0);
		if (pids[r] == 0) {
			int ok;

			wk_init(&w, s, r, 3, 1);
			ok = rxp_agent_create(&w.attr, &w.a) == 0 &&
			     rxp_agent_join(w.a, ms(30000)) == 0 &&
			     rxp_agent_join(w.a, ms(30000)) == 0;
			rxp_agent_shutdown(w.a);
			_exit(ok ? 0 : 2);
		}
	}
	wk_init(&w, s, 0, 3, 1);
	assert_int_equal(rxp_agent_create(&w.attr, &w.a), 0);
	check_all_pairs(w.a, 3);
	assert_int_equal(rxp_agent_join(w.a, ms(30000)), 0);
	assert_int_equal(rxp_agent_join(w.a, ms(30000)), 0);
	rxp_agent_shutdown(w.a);
	for (int r = 1; r < 3; r++) {
		int st;

		assert_int_equal(waitpid(pids[r], &st, 0), pids[r]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	tstore_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_world_of_forked_processes),
		cmocka_unit_test(
			test_store_world_of_three_calls_and_joins_twice),
		cmocka_unit_test(test_store_join_times_out_then_resumes),
		cmocka_unit_test(test_store_duplicate_name_fails_every_worker),
		cmocka_unit_test(test_store_missing_ranks_time_out_named),
		cmocka_unit_test(test_store_corrupted_records_refused),
		cmocka_unit_test(test_store_failing_ops_fail_cleanly),
		cmocka_unit_test(test_store_bad_attr_and_transport_failures),
	};

	if (!world_transport_usable())
		return rxp_test_skip_code();
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
