/* SPDX-License-Identifier: MIT */
/*
 * Metrics as a monitoring system reads them: rxp_agent_metrics_write() in
 * the Prometheus text format, read by Debian's python3-prometheus-client
 * parser (check_metrics.py): legal names, HELP and TYPE, per-peer
 * latency histograms whose buckets are cumulative and whose count is the
 * number of calls made; the text format is rxp_agent_metrics_dump()'s;
 * RXP_METRICS_FILE written at start, periodically and at shutdown;
 * RXP_METRICS_INTERVAL_MS parsed strictly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "skip.h"
#include "world.h"

#ifndef RXP_TEST_PYTHON
#define RXP_TEST_PYTHON "/usr/bin/python3"
#endif

static char tmpdir[256];

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* check_metrics.py @file @args...; its exit code */
static int check(const char *file, const char *args)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s/check_metrics.py %s %s",
		 RXP_TEST_PYTHON, RXP_TEST_SRC_DIR, file, args);
	fflush(stdout);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* @n calls of t.add and @nfail of t.fail from rank 0 to rank 1 */
static void make_calls(struct world *w, int n, int nfail)
{
	for (int i = 0; i < n + nfail; i++) {
		struct rxp_value args[2] = {rxp_v_int(i), rxp_v_int(1)};
		struct rxp_value msg = rxp_v_str("no");
		struct rxp_future *f;

		if (i < n)
			assert_int_equal(rxp_rpc_sync(w->a, 1, "t.add", args, 2,
						      NULL, 0, NULL, &f),
					 0);
		else
			assert_int_equal(rxp_rpc_sync(w->a, 1, "t.fail", &msg,
						      1, NULL, 0, NULL, &f),
					 0);
		assert_int_equal(rxp_future_status(f) == 0, i < n);
		rxp_future_release(f);
	}
}

static void start(struct world *w, int size)
{
	int ret = world_start(w, size);

	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
}

static void write_file(struct rxp_agent *a, const char *path, int format)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(rxp_agent_metrics_write(a, fd, format), 0);
	close(fd);
}

static void test_prometheus_text_parses_and_counts_calls(void **state)
{
	struct world w;
	char path[300];

	start(&w, 2);
	make_calls(&w, 50, 3);
	snprintf(path, sizeof(path), "%s/now.prom", tmpdir);
	write_file(w.a, path, RXP_METRICS_PROMETHEUS);
	assert_int_equal(check(path, "--worker worker0 --peer worker1 "
				     "--calls 53 --answered 53 --errors 3"),
			 0);
	/* more calls: the counts follow */
	make_calls(&w, 20, 0);
	write_file(w.a, path, RXP_METRICS_PROMETHEUS);
	assert_int_equal(check(path, "--worker worker0 --peer worker1 "
				     "--calls 73 --answered 73 --errors 3"),
			 0);
	assert_int_equal(world_stop(&w, true), 0);
}

/* RXP_METRICS_TEXT is what rxp_agent_metrics_dump() writes */
static void test_text_format_is_the_dump(void **state)
{
	struct world w;
	char path[300], file[16384], dump[16384];
	ssize_t n;
	int fd, ret;

	start(&w, 2);
	make_calls(&w, 5, 0);
	snprintf(path, sizeof(path), "%s/now.txt", tmpdir);
	write_file(w.a, path, RXP_METRICS_TEXT);
	ret = rxp_agent_metrics_dump(w.a, dump, sizeof(dump));
	assert_true(ret > 0 && ret < (int)sizeof(dump));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, file, sizeof(file) - 1);
	close(fd);
	assert_true(n > 0);
	file[n] = '\0';
	/* equal but for counters that moved in between: compare the keys */
	for (char *p = dump, *q = file; *p || *q;) {
		size_t kp = strcspn(p, " "), kq = strcspn(q, " ");

		assert_int_equal(kp, kq);
		assert_memory_equal(p, q, kp);
		p += strcspn(p, "\n");
		q += strcspn(q, "\n");
		p += *p == '\n';
		q += *q == '\n';
	}
	assert_non_null(strstr(file, "\npeer.worker1.calls 5\n"));
	assert_int_equal(world_stop(&w, true), 0);
}

static void test_metrics_write_refuses_bad_arguments(void **state)
{
	struct world w;
	int fds[2];

	start(&w, 1);
	assert_int_equal(rxp_agent_metrics_write(NULL, 1, 0), -EINVAL);
	assert_int_equal(rxp_agent_metrics_write(w.a, -1, 0), -EINVAL);
	assert_int_equal(rxp_agent_metrics_write(w.a, 1, 2), -EINVAL);
	assert_int_equal(pipe(fds), 0);
	close(fds[1]);
	assert_int_equal(
		rxp_agent_metrics_write(w.a, fds[1], RXP_METRICS_PROMETHEUS),
		-EBADF);
	close(fds[0]);
	assert_int_equal(world_stop(&w, true), 0);
}

/* ------------------------------------------------- RXP_METRICS_FILE */

static bool file_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && st.st_size > 0;
}

/* true once @path holds @text (within @ms) */
static bool wait_for(const char *path, const char *text, int ms)
{
	static char buf[65536];

	for (int t = 0; t < ms; t += 20) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		if (strstr(buf, text))
			return true;
		sleep_ms(20);
	}
	return false;
}

/* no temporary file left beside it */
static int tmp_files(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".tmp.") != NULL;
	closedir(d);
	return n;
}

static void test_metrics_file_at_start_periodically_and_at_close(void **state)
{
	struct world w;
	char spec[300], f0[300], f1[300];
	int ret;

	snprintf(spec, sizeof(spec), "%s/rank%%r.prom", tmpdir);
	snprintf(f0, sizeof(f0), "%s/rank0.prom", tmpdir);
	snprintf(f1, sizeof(f1), "%s/rank1.prom", tmpdir);
	unlink(f0);
	unlink(f1);
	setenv("RXP_METRICS_FILE", spec, 1); /* the forked rank 1 too */
	setenv("RXP_METRICS_INTERVAL_MS", "50", 1);
	ret = world_start(&w, 2);
	unsetenv("RXP_METRICS_FILE");
	unsetenv("RXP_METRICS_INTERVAL_MS");
	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	/* the first one is written by create */
	assert_true(file_exists(f0));
	assert_int_equal(check(f0, "--worker worker0"), 0);
	make_calls(&w, 30, 0);
	/* a rewrite within a few intervals (50 ms) has them */
	assert_true(wait_for(f0,
			     "rxp_peer_calls_total{worker=\"worker0\",rank="
			     "\"0\",peer=\"worker1\"} 30\n",
			     5000 * world_time_scale()));
	assert_int_equal(check(f0, "--worker worker0 --peer worker1 "
				   "--calls 30 --answered 30 --errors 0"),
			 0);
	assert_true(file_exists(f1)); /* rank 1 writes its own */
	assert_int_equal(check(f1, "--worker worker1"), 0);
	/* the last snapshot at shutdown has the calls made just before */
	make_calls(&w, 7, 0);
	assert_int_equal(world_stop(&w, true), 0);
	assert_int_equal(check(f0, "--worker worker0 --peer worker1 "
				   "--calls 37 --answered 37 --errors 0"),
			 0);
	assert_int_equal(tmp_files(), 0);
}

struct logged {
	char text[4096];
};

/* the handler runs on the threads that log, several at once */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void keep_log(void *user, int level, const char *subsystem,
		     const char *line, const char *msg)
{
	struct logged *l = user;
	size_t n;

	pthread_mutex_lock(&log_mu);
	n = strlen(l->text);
	snprintf(l->text + n, sizeof(l->text) - n, "%s\n", line);
	pthread_mutex_unlock(&log_mu);
}

/* create with @var=@val: its return code; the log in @l */
static int create_with(const char *var, const char *val, struct logged *l)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	char name[32];
	int ret;

	world_attr(&attr, 0, 1, world_free_port(), name, sizeof(name));
	setenv(var, val, 1);
	l->text[0] = '\0';
	rxp_log_set_handler(keep_log, l);
	ret = rxp_agent_create(&attr, &a);
	rxp_log_set_handler(NULL, NULL);
	unsetenv(var);
	if (!ret)
		rxp_agent_shutdown(a);
	return ret;
}

static void test_bad_metrics_settings_fail_create(void **state)
{
	static const char *const bad_ms[] = {"abc", "5", "-1", "10x",
					     "99999999999"};
	struct logged l;
	char spec[300];

	for (size_t i = 0; i < sizeof(bad_ms) / sizeof(bad_ms[0]); i++) {
		assert_int_equal(
			create_with("RXP_METRICS_INTERVAL_MS", bad_ms[i], &l),
			-EINVAL);
		assert_non_null(strstr(l.text, "RXP_METRICS_INTERVAL_MS"));
	}
	snprintf(spec, sizeof(spec), "%s/x%%q.prom", tmpdir);
	assert_int_equal(create_with("RXP_METRICS_FILE", spec, &l), -EINVAL);
	assert_non_null(strstr(l.text, "RXP_METRICS_FILE"));
	/* a good one works, and says where it writes */
	assert_int_equal(create_with("RXP_METRICS_INTERVAL_MS", "1000", &l), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prometheus_text_parses_and_counts_calls),
		cmocka_unit_test(test_text_format_is_the_dump),
		cmocka_unit_test(test_metrics_write_refuses_bad_arguments),
		cmocka_unit_test(
			test_metrics_file_at_start_periodically_and_at_close),
		cmocka_unit_test(test_bad_metrics_settings_fail_create),
	};
	const char *t = getenv("TMPDIR");
	int ret;

	world_maybe_worker(argc, argv);
	if (!world_transport_usable())
		return rxp_test_skip_code();
	snprintf(tmpdir, sizeof(tmpdir), "%s/rxp-metrics-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir))
		return 1;
	ret = cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
	if (!ret) { /* keep the files of a failure to look at */
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd))
			ret = 1;
	}
	return ret;
}
