/* SPDX-License-Identifier: MIT */
/* rxp_util: heap buffers and their large-buffer cache, env parsing,
 * allocation fault hooks. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capture.h"
#include "rxp_util.h"

static void test_small_buffers_are_aligned_and_sized(void **state)
{
	struct rxp_buf *b = rxp_buf_alloc(100);

	assert_non_null(b);
	assert_int_equal((uintptr_t)b->data % 64, 0);
	assert_int_equal(b->len, 100);
	memset(b->data, 1, 100);
	rxp_buf_put(b);
	assert_null(rxp_buf_alloc(SIZE_MAX - 8));
}

static void test_large_buffer_is_reused_for_a_similar_size(void **state)
{
	struct rxp_buf *a = rxp_buf_alloc(4u << 20), *b, *c;
	void *mem = a->data, *mem2;

	assert_non_null(a);
	rxp_buf_put(a);
	/* 90% of the cached capacity: the same memory comes back */
	b = rxp_buf_alloc((4u << 20) / 10 * 9);
	assert_non_null(b);
	assert_ptr_equal(b->data, mem);
	assert_int_equal(b->len, (4u << 20) / 10 * 9);
	/* the cache is empty again: a new block */
	c = rxp_buf_alloc(4u << 20);
	assert_non_null(c);
	assert_ptr_not_equal(c->data, mem);
	mem2 = c->data;
	rxp_buf_put(c);
	rxp_buf_put(b);
	/* much smaller than what is cached (both 4 MiB blocks, mem and
	 * mem2): not handed either huge block */
	c = rxp_buf_alloc(1u << 20);
	assert_non_null(c);
	assert_ptr_not_equal(c->data, mem);
	assert_ptr_not_equal(c->data, mem2);
	rxp_buf_put(c);
}

static void test_large_alloc_failure_is_null(void **state)
{
	rxp__alloc_fail_after(0);
	/* nothing cached of this size: must allocate, and fails */
	assert_null(rxp_buf_alloc(200u << 20));
	rxp__alloc_fail_after(-1);
}

static void test_env_parsing(void **state)
{
	setenv("RXP_T_NUM", "0x10", 1);
	assert_int_equal(rxp_env_long("RXP_T_NUM", 5), 16);
	setenv("RXP_T_NUM", "12abc", 1);
	assert_int_equal(rxp_env_long("RXP_T_NUM", 5), 5);
	unsetenv("RXP_T_NUM");
	assert_int_equal(rxp_env_long("RXP_T_NUM", 5), 5);
	setenv("RXP_T_B", "yes", 1);
	assert_int_equal(rxp_env_bool("RXP_T_B", 0), 1);
	setenv("RXP_T_B", "off", 1);
	assert_int_equal(rxp_env_bool("RXP_T_B", 1), 0);
	setenv("RXP_T_B", "maybe", 1);
	assert_int_equal(rxp_env_bool("RXP_T_B", 1), 1);
}

static void test_alloc_budget_counts_and_fails(void **state)
{
	void *p, *q;

	rxp__alloc_fail_after(1);
	p = rxp__malloc(8);
	q = rxp__malloc(8);
	assert_non_null(p);
	assert_null(q);
	assert_int_equal(rxp__alloc_fail_after(-1), 2);
	rxp__free(p);
}

/* ------------------------------------------------------------ logging */

struct got_log {
	int n, level;
	char subsys[32], line[1100], msg[1100];
	bool msg_in_line;
};

static void grab(void *user, int level, const char *subsys, const char *line,
		 const char *msg)
{
	struct got_log *g = user;

	g->n++;
	g->level = level;
	snprintf(g->subsys, sizeof(g->subsys), "%s", subsys);
	snprintf(g->line, sizeof(g->line), "%s", line);
	snprintf(g->msg, sizeof(g->msg), "%s", msg);
	g->msg_in_line = msg > line && msg < line + strlen(line) + 1;
}

/* "2026-12-03T12:00:00.123Z " at the start of @line */
static void assert_utc_stamp(const char *line)
{
	int y, mo, d, h, mi, sec, ms, n = 0;

	assert_int_equal(sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %n", &y,
				&mo, &d, &h, &mi, &sec, &ms, &n),
			 7);
	assert_int_equal(n, 25);
	assert_true(y >= 2024 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31);
	assert_true(h < 24 && mi < 60 && sec <= 60 && ms < 1000);
}

static void test_log_line_has_time_rank_worker_level_subsystem(void **state)
{
	struct rxp_log_id id = {.rank = 3, .name = "trainer3"};
	struct got_log g = {0};
	const struct rxp_log_id *prev;

	rxp__log_level = RXP_LOG_INFO;
	rxp_log_set_handler(grab, &g);
	prev = rxp__log_thread_id(&id);
	rxp_warn("tcp", "hello %d", 42);
	rxp__log_thread_id(prev);
	rxp_log_set_handler(NULL, NULL);

	assert_int_equal(g.n, 1);
	assert_int_equal(g.level, RXP_LOG_WARN);
	assert_string_equal(g.subsys, "tcp");
	assert_utc_stamp(g.line);
	assert_string_equal(g.line + 25,
			    "rxp[rank 3 trainer3] warn tcp: hello 42");
	assert_string_equal(g.msg, "hello 42");
	assert_true(g.msg_in_line);
}

static void test_log_level_filters_before_the_handler(void **state)
{
	struct got_log g = {0};

	rxp__log_level = RXP_LOG_WARN;
	rxp_log_set_handler(grab, &g);
	rxp_info("agent", "not shown");
	rxp_dbg("agent", "not shown");
	rxp_err("agent", "shown");
	rxp_log_set_handler(NULL, NULL);
	rxp__log_level = RXP_LOG_INFO;
	assert_int_equal(g.n, 1);
	assert_int_equal(g.level, RXP_LOG_ERROR);
	assert_string_equal(g.msg, "shown");
	assert_non_null(strstr(g.line, "] error agent: shown"));
}

static void *log_on_a_thread(void *arg)
{
	rxp_info("rendezvous", "%s", (const char *)arg);
	return NULL;
}

/* A thread no agent owns names the process default: the first agent
 * offered, until it drops out; before any, the pid. */
static void test_log_default_worker_is_the_first_offered(void **state)
{
	struct rxp_log_id a = {.rank = 0, .name = "ps0"};
	struct rxp_log_id b = {.rank = 1, .name = "ps1"};
	struct got_log g = {0};
	char want[64], x[] = "x";
	pthread_t t;

	rxp__log_level = RXP_LOG_INFO;
	rxp_log_set_handler(grab, &g);
	rxp_info("agent", "none");
	snprintf(want, sizeof(want), "rxp[pid %d] info agent: none",
		 (int)getpid());
	assert_string_equal(g.line + 25, want);

	rxp__log_offer_id(&a);
	rxp__log_offer_id(&b); /* a stays the default */
	assert_int_equal(pthread_create(&t, NULL, log_on_a_thread, x), 0);
	pthread_join(t, NULL);
	assert_string_equal(g.line + 25, "rxp[rank 0 ps0] info rendezvous: x");

	rxp__log_drop_id(&b); /* not the default: no change */
	rxp_info("agent", "y");
	assert_string_equal(g.line + 25, "rxp[rank 0 ps0] info agent: y");
	rxp__log_drop_id(&a);
	rxp_info("agent", "none");
	assert_string_equal(g.line + 25, want);
	rxp_log_set_handler(NULL, NULL);
}

static void log_to_stderr(void *arg)
{
	rxp_warn("env", "%s", (const char *)arg);
}

static void test_log_without_handler_writes_one_line_to_stderr(void **state)
{
	struct got_log g = {0};
	char out[4096], text[] = "to stderr";
	size_t n;

	rxp__log_level = RXP_LOG_INFO;
	rxp_log_set_handler(grab, &g);
	rxp_log_set_handler(NULL, NULL); /* back to stderr */
	capture_stderr(log_to_stderr, text, out, sizeof(out));
	assert_int_equal(g.n, 0);
	n = strlen(out);
	assert_true(n > 25 && out[n - 1] == '\n');
	assert_utc_stamp(out);
	assert_non_null(strstr(out, "] warn env: to stderr\n"));
	assert_ptr_equal(strchr(out, '\n'), out + n - 1); /* one line */
}

static void test_log_long_message_is_cut_not_overrun(void **state)
{
	struct got_log g = {0};
	char big[3000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	rxp__log_level = RXP_LOG_INFO;
	rxp_log_set_handler(grab, &g);
	rxp_info("agent", "%s", big);
	rxp_log_set_handler(NULL, NULL);
	assert_int_equal(g.n, 1);
	assert_true(strlen(g.line) < 1024 && strlen(g.line) > 1000);
	assert_int_equal(g.msg[0], 'x');
}

static atomic_int swap_stop;

static void count(void *user, int level, const char *subsys, const char *line,
		  const char *msg)
{
	atomic_fetch_add((atomic_int *)user, 1);
}

static void *log_loop(void *arg)
{
	while (!atomic_load(&swap_stop))
		rxp_info("agent", "busy");
	return NULL;
}

/* Once rxp_log_set_handler() returns, the old handler is not called any
 * more, even while other threads log all the time. */
static void test_log_handler_swap_is_final(void **state)
{
	atomic_int na = 0, nb = 0;
	pthread_t t[2];
	int was;

	rxp__log_level = RXP_LOG_INFO;
	atomic_store(&swap_stop, 0);
	rxp_log_set_handler(count, &na);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_loop, NULL),
				 0);
	while (atomic_load(&na) < 100)
		sched_yield();
	rxp_log_set_handler(count, &nb);
	was = atomic_load(&na);
	while (atomic_load(&nb) < 100)
		sched_yield();
	atomic_store(&swap_stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	rxp_log_set_handler(NULL, NULL);
	assert_int_equal(atomic_load(&na), was);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_buffers_are_aligned_and_sized),
		cmocka_unit_test(
			test_large_buffer_is_reused_for_a_similar_size),
		cmocka_unit_test(test_large_alloc_failure_is_null),
		cmocka_unit_test(test_env_parsing),
		cmocka_unit_test(test_alloc_budget_counts_and_fails),
		cmocka_unit_test(
			test_log_line_has_time_rank_worker_level_subsystem),
		cmocka_unit_test(test_log_level_filters_before_the_handler),
		cmocka_unit_test(test_log_default_worker_is_the_first_offered),
		cmocka_unit_test(
			test_log_without_handler_writes_one_line_to_stderr),
		cmocka_unit_test(test_log_long_message_is_cut_not_overrun),
		cmocka_unit_test(test_log_handler_swap_is_final),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
