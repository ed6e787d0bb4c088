/* SPDX-License-Identifier: MIT */
/* rxp_util: heap buffers and their large-buffer cache, env parsing,
 * allocation fault hooks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_buffers_are_aligned_and_sized),
		cmocka_unit_test(
			test_large_buffer_is_reused_for_a_similar_size),
		cmocka_unit_test(test_large_alloc_failure_is_null),
		cmocka_unit_test(test_env_parsing),
		cmocka_unit_test(test_alloc_budget_counts_and_fails),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
