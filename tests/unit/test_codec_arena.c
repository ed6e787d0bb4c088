/* SPDX-License-Identifier: MIT */
/*
 * Codec support: the arena (caller memory first, alignment, growth,
 * allocation failure) and the value model helpers (dtype sizes, tensor
 * spans, builders, deep equality).
 */
#include <errno.h>

#include "test_codec.h"

/* ------------------------------------------------------------- arena */

static void test_arena_uses_caller_memory_first(void **state)
{
	alignas(16) char mem[256];
	struct rxp_arena a;
	char *p, *q;

	rxp_arena_init(&a, mem, sizeof(mem));
	rxp__alloc_fail_after(-1);
	p = rxp_arena_alloc(&a, 100, 8);
	q = rxp_arena_alloc(&a, 100, 8);
	assert_true(p >= mem && p + 100 <= mem + sizeof(mem));
	assert_true(q >= p + 100 && q + 100 <= mem + sizeof(mem));
	assert_int_equal(rxp__alloc_fail_after(-1), 0);
	/* does not fit any more: one chunk */
	p = rxp_arena_alloc(&a, 100, 8);
	assert_non_null(p);
	assert_false(p >= mem && p < mem + sizeof(mem));
	assert_int_equal(rxp__alloc_fail_after(-1), 1);
	rxp_arena_fini(&a);
}

static void test_arena_alignment(void **state)
{
	static const size_t aligns[] = {1, 2, 4, 8, 16, 64, 4096};
	char mem[300];
	struct rxp_arena a;
	size_t i, round;
	char *p;

	rxp_arena_init(&a, mem + 1, sizeof(mem) - 1); /* odd start */
	for (round = 0; round < 40; round++) {
		for (i = 0; i < RXP_ARRAY_SIZE(aligns); i++) {
			assert_non_null(rxp_arena_alloc(&a, 3, 1));
			p = rxp_arena_alloc(&a, 24, aligns[i]);
			assert_non_null(p);
			assert_int_equal((uintptr_t)p % aligns[i], 0);
			memset(p, 0x5a, 24); /* ASan: really ours */
		}
	}
	/* 0 means 1; not a power of two is refused */
	assert_non_null(rxp_arena_alloc(&a, 1, 0));
	assert_null(rxp_arena_alloc(&a, 8, 24));
	rxp_arena_fini(&a);
}

static void test_arena_grows_geometrically(void **state)
{
	struct rxp_arena a;
	long mallocs;
	char *p;
	int i;

	rxp_arena_init(&a, NULL, 0); /* no caller memory at all */
	rxp__alloc_fail_after(-1);
	for (i = 0; i < 4096; i++) {
		p = rxp_arena_alloc(&a, 256, 8);
		assert_non_null(p);
		memset(p, i, 256);
	}
	/* 1 MiB in chunks of 4K, 8K, 16K ...: about 9, not 256 */
	mallocs = rxp__alloc_fail_after(-1);
	assert_true(mallocs >= 6 && mallocs <= 10);
	p = rxp_arena_alloc(&a, 5u << 20, 64); /* bigger than the next */
	assert_non_null(p);
	memset(p, 1, 5u << 20);
	rxp_arena_fini(&a);
	assert_null(a.chunks);
	/* usable again after fini */
	assert_non_null(rxp_arena_alloc(&a, 16, 8));
	rxp_arena_fini(&a);
}

static void test_arena_fails_when_malloc_fails(void **state)
{
	char mem[64];
	struct rxp_arena a;

	rxp_arena_init(&a, mem, sizeof(mem));
	rxp__alloc_fail_after(0);
	assert_non_null(rxp_arena_alloc(&a, 32, 8));
	assert_null(rxp_arena_alloc(&a, 64, 8));
	rxp__alloc_fail_after(-1);
	assert_null(rxp_arena_alloc(&a, SIZE_MAX - 8, 8));
	assert_null(rxp_arena_alloc(&a, SIZE_MAX / 2, 8));
	assert_null(a.chunks);
	assert_non_null(rxp_arena_alloc(&a, 64, 8));
	rxp_arena_fini(&a);
}

/* -------------------------------------------------------- value model */

static void test_dtype_size(void **state)
{
	assert_int_equal(rxp_dtype_size(RXP_DT_U8), 1);
	assert_int_equal(rxp_dtype_size(RXP_DT_I16), 2);
	assert_int_equal(rxp_dtype_size(RXP_DT_F32), 4);
	assert_int_equal(rxp_dtype_size(RXP_DT_I64), 8);
	assert_int_equal(rxp_dtype_size(RXP_DT_C64), 8);
	assert_int_equal(rxp_dtype_size(RXP_DT_C128), 16);
	assert_int_equal(rxp_dtype_size(RXP_DT_BOOL), 1);
	assert_int_equal(rxp_dtype_size(RXP_DT_BF16), 2);
	assert_int_equal(rxp_dtype_size(8), 0); /* complex32: unsupported */
	assert_int_equal(rxp_dtype_size(12), 0);
	assert_int_equal(rxp_dtype_size(-1), 0);
	assert_int_equal(rxp_dtype_size(255), 0);
}

static int64_t span_of(int dtype, uint32_t ndim, const int64_t *shape,
		       const int64_t *strides)
{
	struct rxp_value v = rxp_v_tensor(dtype, ndim, shape, strides, 0, 0);

	return rxp_tensor_span(&v.u.tensor);
}

static void test_tensor_span(void **state)
{
	const int64_t sh[3] = {2, 3, 4}, tr[3] = {1, 2, 6}, bc[3] = {0, 0, 1};
	const int64_t empty[3] = {2, 0, 4}, neg[2] = {2, -1},
		      big[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
	const int64_t nstr[2] = {1, -1}, one[2] = {3, 3};
	const int64_t hstr[2] = {INT64_C(1) << 62, 1};
	struct rxp_tensor t = {.dtype = RXP_DT_F32, .ndim = 17, .shape = sh};

	assert_int_equal(span_of(RXP_DT_F32, 3, sh, NULL), 96);
	assert_int_equal(span_of(RXP_DT_F32, 3, sh, tr), 96);
	assert_int_equal(span_of(RXP_DT_F64, 3, sh, bc), 32); /* expand */
	assert_int_equal(span_of(RXP_DT_F32, 3, empty, NULL), 0);
	assert_int_equal(span_of(RXP_DT_F32, 3, empty, tr), 0);
	assert_int_equal(span_of(RXP_DT_C128, 0, NULL, NULL), 16);
	assert_int_equal(span_of(RXP_DT_F32, 2, neg, NULL), -EINVAL);
	assert_int_equal(span_of(RXP_DT_F32, 2, one, nstr), -EINVAL);
	assert_int_equal(span_of(RXP_DT_F32, 2, big, NULL), -EOVERFLOW);
	assert_int_equal(span_of(RXP_DT_F32, 2, one, big),
			 (INT64_C(1) << 44) + 4);
	assert_int_equal(span_of(RXP_DT_F32, 2, one, hstr), -EOVERFLOW);
	assert_int_equal(span_of(RXP_DT_U8, 1, big, NULL), INT64_C(1) << 40);
	assert_int_equal(span_of(8, 1, sh, NULL), -EINVAL);
	assert_int_equal(span_of(RXP_DT_F32, 2, NULL, NULL), -EINVAL);
	assert_int_equal(rxp_tensor_span(&t), -EINVAL);
	assert_int_equal(rxp_tensor_span(NULL), -EINVAL);
}

static void test_builders_and_equal(void **state)
{
	const int64_t sh[2] = {2, 3}, st[2] = {3, 1}, st2[2] = {1, 2};
	struct rxp_value a[2] = {rxp_v_int(1), rxp_v_str("x")};
	struct rxp_value b[2] = {rxp_v_int(1), rxp_v_str("y")};
	struct rxp_value s0 = rxp_v_str(NULL), s1 = rxp_v_str("");
	struct rxp_value x, y;
	struct rxp_dict_entry da = {.key = "k", .key_len = 1, .value = a[0]};
	struct rxp_dict_entry db = {.key = "j", .key_len = 1, .value = a[0]};

	assert_int_equal(s0.kind, RXP_V_STRING);
	assert_int_equal(s0.u.str.len, 0);
	assert_true(rxp_value_equal(&s0, &s1));
	assert_true(rxp_value_equal(NULL, NULL));
	assert_false(rxp_value_equal(&s0, NULL));
	x = rxp_v_list(a, 2);
	y = rxp_v_tuple(a, 2);
	assert_false(rxp_value_equal(&x, &y));
	y = rxp_v_list(b, 2);
	assert_false(rxp_value_equal(&x, &y));
	y = rxp_v_list(a, 1);
	assert_false(rxp_value_equal(&x, &y));
	x = rxp_v_double(NAN);
	y = rxp_v_double(NAN);
	assert_true(rxp_value_equal(&x, &y));
	x = rxp_v_double(0.0);
	y = rxp_v_double(-0.0);
	assert_false(rxp_value_equal(&x, &y));
	x = rxp_v_bool(true);
	y = rxp_v_int(1);
	assert_false(rxp_value_equal(&x, &y));
	/* NULL strides == their row-major values */
	x = rxp_v_tensor(RXP_DT_F32, 2, sh, NULL, 0, 0);
	y = rxp_v_tensor(RXP_DT_F32, 2, sh, st, 0, 0);
	assert_true(rxp_value_equal(&x, &y));
	y = rxp_v_tensor(RXP_DT_F32, 2, sh, st2, 0, 0);
	assert_false(rxp_value_equal(&x, &y));
	y = rxp_v_tensor(RXP_DT_F32, 2, sh, NULL, 0, 4);
	assert_false(rxp_value_equal(&x, &y));
	x = rxp_v_dict(&da, 1);
	y = rxp_v_dict(&db, 1);
	assert_false(rxp_value_equal(&x, &y));
	y = rxp_v_dict(&da, 1);
	assert_true(rxp_value_equal(&x, &y));
}

static void test_rref_builder_and_equal(void **state)
{
	struct rxp_rref_desc d1 = {.owner = 1,
				   .parent = 2,
				   .rref = {.creator = 3, .local = 4},
				   .fork = {.creator = 5, .local = 6}};
	struct rxp_rref_desc d2 = d1;
	struct rxp_rref *h1 = (struct rxp_rref *)&d1; /* opaque, not read */
	struct rxp_rref *h2 = (struct rxp_rref *)&d2;
	struct rxp_value x = rxp_v_rref(h1), y = rxp_v_rref(h1);

	assert_int_equal(x.kind, RXP_V_RREF);
	assert_ptr_equal(x.u.rref.ref, h1);
	assert_null(x.u.rref.desc);
	/* no descriptors: the same handle */
	assert_true(rxp_value_equal(&x, &y));
	y = rxp_v_rref(h2);
	assert_false(rxp_value_equal(&x, &y));
	x = rxp_v_rref(NULL);
	y = rxp_v_rref(NULL);
	assert_true(rxp_value_equal(&x, &y));
	/* one descriptor: never equal */
	y.u.rref.desc = &d1;
	assert_false(rxp_value_equal(&x, &y));
	assert_false(rxp_value_equal(&y, &x));
	/* both: by value, whatever the handles */
	x = rxp_v_rref(h1);
	x.u.rref.desc = &d1;
	y = rxp_v_rref(h2);
	y.u.rref.desc = &d2;
	assert_true(rxp_value_equal(&x, &y));
	d2.fork.local = 7;
	assert_false(rxp_value_equal(&x, &y));
	d2 = d1;
	d2.owner = 9;
	assert_false(rxp_value_equal(&x, &y));
	d2 = d1;
	d2.parent = 9;
	assert_false(rxp_value_equal(&x, &y));
	d2 = d1;
	d2.rref.creator = 9;
	assert_false(rxp_value_equal(&x, &y));
	d2 = d1;
	d2.rref.reserved = 1;
	assert_false(rxp_value_equal(&x, &y));
	d2 = d1;
	assert_true(rxp_value_equal(&x, &y));
	/* an RRef is not any other kind */
	y = rxp_v_none();
	assert_false(rxp_value_equal(&x, &y));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena_uses_caller_memory_first),
		cmocka_unit_test(test_arena_alignment),
		cmocka_unit_test(test_arena_grows_geometrically),
		cmocka_unit_test(test_arena_fails_when_malloc_fails),
		cmocka_unit_test(test_dtype_size),
		cmocka_unit_test(test_tensor_span),
		cmocka_unit_test(test_builders_and_equal),
		cmocka_unit_test(test_rref_builder_and_equal),
	};

	return cmocka_run_group_tests_name("codec_arena", tests, NULL, NULL);
}
