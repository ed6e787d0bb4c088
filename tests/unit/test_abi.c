/* SPDX-License-Identifier: MIT */
/*
 * The ABI rules of rxp.h: a sized struct is read only up to its size (the
 * caller's copy sits right before an inaccessible page here, so a read
 * past it faults), size 0 is the first layout, unknown non-zero bytes are
 * -E2BIG; and the one timeout convention. Through the public entry points
 * too, as a program built against another header would call them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "rxp_abi.h"
#include <rxp/rxp.h>

struct v2 { /* a struct as a later version might have it */
	size_t size;
	int a;
	int b; /* the field "added later" */
};

/* @n bytes that end where an inaccessible page begins */
static void *at_page_end(size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *p = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(mprotect(p + pg, (size_t)pg, PROT_NONE), 0);
	return p + pg - n;
}

static void unmap(void *end_minus_n, size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);

	munmap((uint8_t *)end_minus_n + n - pg, 2 * (size_t)pg);
}

static void test_older_caller_is_read_up_to_its_size(void **state)
{
	/* the caller knows only {size, a} */
	size_t n = offsetof(struct v2, b);
	uint8_t *src = at_page_end(n);
	struct v2 dst = {.a = -1, .b = 42}; /* defaults */

	memcpy(src, &n, sizeof(n));
	memcpy(src + offsetof(struct v2, a), &(int){7}, sizeof(int));
	assert_int_equal(rxp_struct_in(&dst, sizeof(dst), src, sizeof(dst)), 0);
	assert_int_equal(dst.a, 7);
	assert_int_equal(dst.b, 42); /* not in the caller's struct: default */
	assert_int_equal(dst.size, sizeof(dst));
	unmap(src, n);
}

static void test_size_zero_is_the_first_layout(void **state)
{
	size_t first = offsetof(struct v2, b);
	uint8_t *src = at_page_end(first);
	struct v2 dst = {.a = -1, .b = 42};

	memset(src, 0, first);
	memcpy(src + offsetof(struct v2, a), &(int){5}, sizeof(int));
	assert_int_equal(rxp_struct_in(&dst, sizeof(dst), src, first), 0);
	assert_int_equal(dst.a, 5);
	assert_int_equal(dst.b, 42);
	/* where no first layout is allowed (rxp_agent_attr) */
	assert_int_equal(rxp_struct_in(&dst, sizeof(dst), src, 0), -EINVAL);
	unmap(src, first);
}

static void test_newer_caller_fails_on_unknown_settings(void **state)
{
	struct {
		struct v2 known;
		uint64_t later; /* a field this library lacks */
	} big = {.known = {.size = sizeof(big), .a = 1, .b = 2}};
	struct v2 dst = {0};

	assert_int_equal(rxp_struct_in(&dst, sizeof(dst), &big, sizeof(dst)),
			 0); /* unknown but zero: nothing is lost */
	assert_int_equal(dst.b, 2);
	big.later = 1;
	assert_int_equal(rxp_struct_in(&dst, sizeof(dst), &big, sizeof(dst)),
			 -E2BIG);
	big.known.size = 3; /* smaller than its own size field */
	assert_int_equal(rxp_struct_in(&dst, sizeof(dst), &big, sizeof(dst)),
			 -EINVAL);
}

static void test_one_timeout_convention(void **state)
{
	int64_t ns = 123;

	assert_int_equal(rxp_timeout_ns(RXP_TIMEOUT_DEFAULT, 5000, &ns), 0);
	assert_int_equal(ns, 5000);
	assert_int_equal(rxp_timeout_ns(RXP_TIMEOUT_NEVER, 5000, &ns), 0);
	assert_int_equal(ns, 0);
	assert_int_equal(rxp_timeout_ns(250, 5000, &ns), 0);
	assert_int_equal(ns, 250000000);
	assert_int_equal(rxp_timeout_ns(INT64_MAX, 5000, &ns), 0);
	assert_true(ns > 0 && ns <= INT64_MAX / 4); /* now + ns cannot wrap */
	ns = 123;
	assert_int_equal(rxp_timeout_ns(-2, 5000, &ns), -EINVAL);
	assert_int_equal(ns, 123);
	/* a zero-initialised struct means the defaults */
	assert_int_equal(RXP_TIMEOUT_DEFAULT, 0);
}

static void test_agent_create_checks_the_attr_size(void **state)
{
	struct {
		struct rxp_agent_attr attr;
		uint64_t later;
	} big;
	struct rxp_agent *a = NULL;
	struct rxp_agent_attr zero = {0};

	/* not from rxp_agent_attr_init: refused, never half-read */
	zero.name = "w";
	assert_int_equal(rxp_agent_create(&zero, &a), -EINVAL);
	assert_null(a);
	/* from a newer header, setting what this library lacks */
	rxp_agent_attr_init(&big.attr);
	assert_int_equal(big.attr.size, sizeof(struct rxp_agent_attr));
	big.attr.name = "w";
	big.attr.size = sizeof(big);
	big.later = 1;
	assert_int_equal(rxp_agent_create(&big.attr, &a), -E2BIG);
	assert_null(a);
	/* bad timeouts, one convention for all */
	rxp_agent_attr_init(&big.attr);
	big.attr.name = "w";
	big.attr.rpc_timeout_ms = -2;
	assert_int_equal(rxp_agent_create(&big.attr, &a), -EINVAL);
	big.attr.rpc_timeout_ms = RXP_TIMEOUT_NEVER;
	big.attr.init_timeout_ms = -7;
	assert_int_equal(rxp_agent_create(&big.attr, &a), -EINVAL);
	assert_null(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_older_caller_is_read_up_to_its_size),
		cmocka_unit_test(test_size_zero_is_the_first_layout),
		cmocka_unit_test(test_newer_caller_fails_on_unknown_settings),
		cmocka_unit_test(test_one_timeout_convention),
		cmocka_unit_test(test_agent_create_checks_the_attr_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
