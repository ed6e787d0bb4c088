/* SPDX-License-Identifier: MIT */
/*
 * Codec: hostile input. Every truncation, single-byte corruptions at every
 * position, huge counts, bad tensors, bad headers and extensions. Inputs
 * are copied into exactly-sized heap buffers so that ASan reports any read
 * past the end.
 */
#include <errno.h>
#include <stdio.h>

#include "test_codec.h"

/* ------------------------------------------------ truncation, fuzzing */

static void expect_every_prefix_fails(const uint8_t *b, size_t len, bool call,
				      uint32_t nst, const uint64_t *lens)
{
	size_t n;
	int ret;

	for (n = 0; n < len; n++) {
		ret = call ? dec_call_copy(b, n, nst, lens)
			   : dec_resp_copy(b, n, nst, lens);
		if (ret != -RXP_E_DECODE)
			fail_msg("prefix %zu of %zu: got %d", n, len, ret);
	}
	ret = call ? dec_call_copy(b, len, nst, lens)
		   : dec_resp_copy(b, len, nst, lens);
	assert_int_equal(ret, 0);
}

static void test_every_truncation_fails(void **state)
{
	struct sample s;
	size_t len, i;
	uint8_t *b;

	sample_init(&s);
	b = enc_call_exact("pkg.fn", s.args, SAMPLE_NARGS, 2, &s.meta, &len);
	expect_every_prefix_fails(b, len, true, 2, s.lens);
	free(b);
	b = enc_call_exact("f", NULL, 0, 0, NULL, &len);
	expect_every_prefix_fails(b, len, true, 0, NULL);
	free(b);
	for (i = 0; i < SAMPLE_NARGS; i++) {
		b = enc_value_exact(&s.args[i], 2, &len);
		expect_every_prefix_fails(b, len, false, 2, s.lens);
		free(b);
	}
	b = enc_error_exact(-EIO, "no such file", &len);
	expect_every_prefix_fails(b, len, false, 0, NULL);
	free(b);
	/* responses with a profile record */
	b = enc_value_ext_exact(&s.args[17], 2, &s.ext, &len);
	expect_every_prefix_fails(b, len, false, 2, s.lens);
	free(b);
	b = enc_error_ext_exact(-EIO, "no such file", &s.ext, &len);
	expect_every_prefix_fails(b, len, false, 0, NULL);
	free(b);
}

/* Decode a corrupted copy; it must fail cleanly or yield a tree that
 * re-encodes and decodes to itself. Returns 1 if it decoded. */
static int corrupt_call(const uint8_t *b, size_t len, const struct sample *s)
{
	struct rxp_decoded_call c, c2;
	struct rxp_arena a, a2;
	uint8_t *b2;
	size_t len2;
	uint32_t i;
	int ret;

	rxp_arena_init(&a, NULL, 0);
	ret = rxp_codec_call_decode(b, len, 2, s->lens, &a, &c);
	if (ret) {
		assert_int_equal(ret, -RXP_E_DECODE);
		rxp_arena_fini(&a);
		return 0;
	}
	b2 = enc_call_exact(c.name, c.args, c.nargs, 2, &c.meta, &len2);
	rxp_arena_init(&a2, NULL, 0);
	assert_int_equal(rxp_codec_call_decode(b2, len2, 2, s->lens, &a2, &c2),
			 0);
	assert_string_equal(c.name, c2.name);
	assert_int_equal(c.nargs, c2.nargs);
	for (i = 0; i < c.nargs; i++)
		assert_true(rxp_value_equal(&c.args[i], &c2.args[i]));
	assert_true(meta_equal(&c.meta, &c2.meta));
	rxp_arena_fini(&a2);
	rxp_arena_fini(&a);
	free(b2);
	return 1;
}

static int corrupt_resp(const uint8_t *b, size_t len, const struct sample *s)
{
	struct rxp_decoded_resp r, r2;
	struct rxp_arena a, a2;
	uint8_t *b2;
	size_t len2;
	int ret;

	rxp_arena_init(&a, NULL, 0);
	ret = rxp_codec_resp_decode(b, len, 2, s->lens, &a, &r);
	if (ret) {
		assert_int_equal(ret, -RXP_E_DECODE);
		rxp_arena_fini(&a);
		return 0;
	}
	if (r.is_error)
		b2 = enc_error_ext_exact(r.err_code, r.err_msg, &r.ext, &len2);
	else
		b2 = enc_value_ext_exact(r.value, 2, &r.ext, &len2);
	rxp_arena_init(&a2, NULL, 0);
	assert_int_equal(rxp_codec_resp_decode(b2, len2, 2, s->lens, &a2, &r2),
			 0);
	assert_int_equal(r.is_error, r2.is_error);
	if (r.is_error) {
		assert_int_equal(r.err_code, r2.err_code);
		assert_string_equal(r.err_msg, r2.err_msg);
	} else {
		assert_true(rxp_value_equal(r.value, r2.value));
	}
	assert_true(ext_equal(&r.ext, &r2.ext));
	rxp_arena_fini(&a2);
	rxp_arena_fini(&a);
	free(b2);
	return 1;
}

static unsigned corrupt_everywhere(const uint8_t *b, size_t len, bool call,
				   const struct sample *s, unsigned *tries)
{
	unsigned ok = 0, k;
	uint8_t *c = dup_exact(b, len);
	size_t i;

	for (i = 0; i < len; i++) {
		const uint8_t orig = b[i];
		const uint8_t vals[] = {orig ^ 0xff, orig ^ 0x01, orig ^ 0x80,
					0x00,	     0xff,	  orig + 1};

		for (k = 0; k < RXP_ARRAY_SIZE(vals); k++) {
			if (vals[k] == orig)
				continue;
			c[i] = vals[k];
			ok += call ? corrupt_call(c, len, s)
				   : corrupt_resp(c, len, s);
			++*tries;
		}
		c[i] = orig;
	}
	free(c);
	return ok;
}

static void test_single_byte_corruptions(void **state)
{
	unsigned ok = 0, tries = 0;
	struct sample s;
	size_t len, i;
	uint8_t *b;

	sample_init(&s);
	b = enc_call_exact("pkg.fn", s.args, SAMPLE_NARGS, 2, &s.meta, &len);
	ok += corrupt_everywhere(b, len, true, &s, &tries);
	free(b);
	for (i = 0; i < SAMPLE_NARGS; i++) {
		b = enc_value_exact(&s.args[i], 2, &len);
		ok += corrupt_everywhere(b, len, false, &s, &tries);
		free(b);
	}
	b = enc_error_exact(-EIO, "io", &len);
	ok += corrupt_everywhere(b, len, false, &s, &tries);
	free(b);
	b = enc_value_ext_exact(&s.args[16], 2, &s.ext, &len);
	ok += corrupt_everywhere(b, len, false, &s, &tries);
	free(b);
	b = enc_error_ext_exact(-EIO, "io", &s.ext, &len);
	ok += corrupt_everywhere(b, len, false, &s, &tries);
	free(b);
	/* both outcomes happen (a value byte flip still decodes) */
	assert_true(ok > 0 && ok < tries);
}

/* ------------------------------------------------------- huge counts */

/* A hostile message must fail without touching the heap. */
static void expect_fails_fast(struct wb *w, bool call)
{
	long n;

	rxp__alloc_fail_after(-1);
	if (call)
		assert_int_equal(dec_call_copy(w->b, w->n, 0, NULL),
				 -RXP_E_DECODE);
	else
		assert_int_equal(dec_resp_copy(w->b, w->n, 0, NULL),
				 -RXP_E_DECODE);
	n = rxp__alloc_fail_after(-1);
	assert_int_equal(n, 0); /* dup_exact uses plain malloc */
	wb_free(w);
}

static void test_huge_counts_fail_fast(void **state)
{
	static const uint32_t counts[] = {UINT32_MAX, 1u << 31, 1u << 20, 8};
	struct wb w = {0};
	size_t i;

	for (i = 0; i < RXP_ARRAY_SIZE(counts); i++) {
		wb_call(&w, "f", counts[i]); /* nargs */
		wb_u8(&w, RXP_V_NONE);
		expect_fails_fast(&w, true);

		wb_hdr(&w, W_VALUE); /* list count, then 2 bytes */
		wb_u8(&w, RXP_V_LIST);
		wb_u32(&w, counts[i]);
		wb_u16(&w, 0);
		expect_fails_fast(&w, false);

		wb_hdr(&w, W_VALUE); /* string length */
		wb_u8(&w, RXP_V_STRING);
		wb_u32(&w, counts[i]);
		wb_raw(&w, "abc", 4);
		wb_u16(&w, 0);
		expect_fails_fast(&w, false);

		wb_hdr(&w, W_VALUE); /* extension record length */
		wb_u8(&w, RXP_V_NONE);
		wb_u16(&w, 1);
		wb_u16(&w, 0x77);
		wb_u32(&w, counts[i]);
		wb_u32(&w, 0);
		expect_fails_fast(&w, false);

		wb_hdr(&w, W_ERROR); /* profile event count */
		wb_u32(&w, (uint32_t)-1);
		wb_str(&w, "");
		wb_u16(&w, 1);
		wb_u16(&w, W_EXT_PROFILE);
		wb_u32(&w, 20 + 21);
		wb_u64(&w, 1);
		wb_u64(&w, 2);
		wb_u32(&w, counts[i]);
		wb_str(&w, "");
		wb_u64(&w, 0);
		wb_u64(&w, 0);
		expect_fails_fast(&w, false);
	}
	/* a dict count that fits 1-byte items but not 6-byte entries */
	wb_hdr(&w, W_VALUE);
	wb_u8(&w, RXP_V_DICT);
	wb_u32(&w, 100);
	for (i = 0; i < 100; i++)
		wb_u8(&w, 0);
	expect_fails_fast(&w, false);
	/* extension count with nothing behind it */
	wb_hdr(&w, W_VALUE);
	wb_u8(&w, RXP_V_NONE);
	wb_u16(&w, 0xffff);
	expect_fails_fast(&w, false);
}

/* ----------------------------------------------------------- tensors */

/* A value response holding one tensor; decoded against @lens. */
static int dec_tensor_msg(uint8_t dtype, uint8_t ndim, uint32_t storage,
			  uint64_t offset, const int64_t *shape,
			  const int64_t *strides, uint32_t nst,
			  const uint64_t *lens)
{
	struct wb w = {0};
	int ret;

	wb_hdr(&w, W_VALUE);
	wb_tensor(&w, dtype, ndim, storage, offset, shape, strides);
	wb_u16(&w, 0);
	ret = dec_resp_copy(w.b, w.n, nst, lens);
	wb_free(&w);
	return ret;
}

static void test_bad_tensors(void **state)
{
	const int64_t six[1] = {6}, one[1] = {1}, zero[1] = {0};
	const int64_t neg[1] = {-1}, nstr[1] = {-1}, st11[2] = {1, 1};
	const int64_t big[2] = {INT64_C(1) << 62, INT64_C(1) << 62};
	const int64_t ones[17] = {1, 1, 1, 1, 1, 1, 1, 1, 1,
				  1, 1, 1, 1, 1, 1, 1, 1};
	const uint64_t l24[2] = {24, 24}, lmax[1] = {UINT64_MAX};
	const uint8_t F32 = RXP_DT_F32;

	/* exactly fits, then one element too far */
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 0, six, one, 1, l24), 0);
	assert_int_equal(dec_tensor_msg(F32, 1, 1, 0, six, one, 2, l24), 0);
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 4, six, one, 1, l24),
			 -RXP_E_DECODE);
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 24, one, one, 1, l24),
			 -RXP_E_DECODE);
	/* storage index == nstorages; no storages at all */
	assert_int_equal(dec_tensor_msg(F32, 1, 2, 0, one, one, 2, l24),
			 -RXP_E_DECODE);
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 0, one, one, 0, NULL),
			 -RXP_E_DECODE);
	/* offset + span wraps around 2^64 */
	assert_int_equal(
		dec_tensor_msg(F32, 1, 0, UINT64_MAX - 3, six, one, 1, lmax),
		-RXP_E_DECODE);
	assert_int_equal(
		dec_tensor_msg(F32, 1, 0, UINT64_MAX - 3, one, one, 1, lmax),
		-RXP_E_DECODE);
	/* empty tensors: offset up to the end of the storage, not past */
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 24, zero, one, 1, l24), 0);
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 28, zero, one, 1, l24),
			 -RXP_E_DECODE);
	/* bad metadata */
	assert_int_equal(dec_tensor_msg(8, 1, 0, 0, one, one, 1, l24),
			 -RXP_E_DECODE);
	assert_int_equal(dec_tensor_msg(12, 1, 0, 0, one, one, 1, l24),
			 -RXP_E_DECODE);
	assert_int_equal(dec_tensor_msg(255, 1, 0, 0, one, one, 1, l24),
			 -RXP_E_DECODE);
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 0, neg, one, 1, l24),
			 -RXP_E_DECODE);
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 0, six, nstr, 1, l24),
			 -RXP_E_DECODE);
	assert_int_equal(dec_tensor_msg(F32, 1, 0, 2, one, one, 1, l24),
			 -RXP_E_DECODE); /* offset not a multiple of 4 */
	assert_int_equal(dec_tensor_msg(F32, 2, 0, 0, big, st11, 1, lmax),
			 -RXP_E_DECODE); /* (2^63 - 1) * 4 bytes */
	assert_int_equal(dec_tensor_msg(RXP_DT_U8, 2, 0, 0, big, st11, 1, lmax),
			 0); /* 2^63 - 1 bytes: fits this (unreal) storage */
	assert_int_equal(dec_tensor_msg(RXP_DT_U8, 2, 0, 0, big, big, 1, lmax),
			 -RXP_E_DECODE); /* overflow */
	assert_int_equal(dec_tensor_msg(F32, 16, 0, 0, ones, ones, 1, l24), 0);
	assert_int_equal(dec_tensor_msg(F32, 17, 0, 0, ones, ones, 1, l24),
			 -RXP_E_DECODE);
}

/* ------------------------------------------------------- other values */

static int dec_value_msg(const void *rec, size_t n)
{
	struct wb w = {0};
	int ret;

	wb_hdr(&w, W_VALUE);
	wb_raw(&w, rec, n);
	wb_u16(&w, 0);
	ret = dec_resp_copy(w.b, w.n, 0, NULL);
	wb_free(&w);
	return ret;
}

static void test_bad_scalars_and_strings(void **state)
{
	/* tag, u32 len, bytes, NUL */
	static const uint8_t ok_str[] = {4, 2, 0, 0, 0, 'h', 'i', 0};
	static const uint8_t no_nul[] = {4, 2, 0, 0, 0, 'h', 'i', 'x'};
	static const uint8_t emb_nul[] = {4, 2, 0, 0, 0, 'h', 0, 0};
	static const uint8_t key_nul[] = {8, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
	static const uint8_t key_ok[] = {8, 1, 0, 0, 0, 1, 0, 0, 0, 'k', 0, 0};
	uint8_t rec[2];

	assert_int_equal(dec_value_msg(ok_str, sizeof(ok_str)), 0);
	assert_int_equal(dec_value_msg(no_nul, sizeof(no_nul)), -RXP_E_DECODE);
	assert_int_equal(dec_value_msg(emb_nul, sizeof(emb_nul)),
			 -RXP_E_DECODE);
	assert_int_equal(dec_value_msg(key_ok, sizeof(key_ok)), 0);
	assert_int_equal(dec_value_msg(key_nul, sizeof(key_nul)),
			 -RXP_E_DECODE);
	rec[0] = RXP_V_BOOL;
	for (unsigned b = 0; b < 256; b++) {
		rec[1] = (uint8_t)b;
		assert_int_equal(dec_value_msg(rec, 2),
				 b <= 1 ? 0 : -RXP_E_DECODE);
	}
	for (unsigned t = RXP_V__COUNT; t < 256; t++) {
		rec[0] = (uint8_t)t;
		assert_int_equal(dec_value_msg(rec, 1), -RXP_E_DECODE);
	}
}

static void test_bad_rrefs(void **state)
{
	static const struct {
		uint32_t rsv_rref, rsv_fork;
		int want;
	} cases[] = {
		{0, 0, 0},
		{1, 0, -RXP_E_DECODE},
		{0, 1, -RXP_E_DECODE},
		{0x80000000u, 0, -RXP_E_DECODE},
		{0, UINT32_MAX, -RXP_E_DECODE},
	};
	struct wb w = {0};
	size_t i, n;

	for (i = 0; i < RXP_ARRAY_SIZE(cases); i++) {
		wb_u8(&w, RXP_V_RREF);
		wb_u32(&w, 1);
		wb_u32(&w, 2);
		wb_rref_id(&w, 3, cases[i].rsv_rref, 4);
		wb_rref_id(&w, 5, cases[i].rsv_fork, 6);
		assert_int_equal(dec_value_msg(w.b, w.n), cases[i].want);
		/* nested in a list and a dict */
		{
			struct wb v = {0};

			wb_u8(&v, RXP_V_LIST);
			wb_u32(&v, 2);
			wb_u8(&v, RXP_V_DICT);
			wb_u32(&v, 1);
			wb_str(&v, "k");
			wb_raw(&v, w.b, w.n);
			wb_raw(&v, w.b, w.n);
			assert_int_equal(dec_value_msg(v.b, v.n),
					 cases[i].want);
			wb_free(&v);
		}
		wb_free(&w);
	}
	/* a short body */
	wb_u8(&w, RXP_V_RREF);
	wb_u32(&w, 1);
	wb_u32(&w, 2);
	wb_rref_id(&w, 3, 0, 4);
	wb_rref_id(&w, 5, 0, 6);
	for (n = 0; n < w.n; n++)
		assert_int_equal(dec_value_msg(w.b, n), -RXP_E_DECODE);
	wb_free(&w);
}

static void test_bad_names(void **state)
{
	char name[RXP_CODEC_MAX_NAME + 2];
	struct wb w = {0};

	memset(name, 'n', sizeof(name));
	name[RXP_CODEC_MAX_NAME] = 0;
	wb_call(&w, name, 0);
	wb_u16(&w, 0);
	assert_int_equal(dec_call_copy(w.b, w.n, 0, NULL), 0);
	wb_free(&w);
	name[RXP_CODEC_MAX_NAME] = 'n';
	name[RXP_CODEC_MAX_NAME + 1] = 0;
	wb_call(&w, name, 0);
	wb_u16(&w, 0);
	assert_int_equal(dec_call_copy(w.b, w.n, 0, NULL), -RXP_E_DECODE);
	wb_free(&w);
	wb_call(&w, "", 0);
	wb_u16(&w, 0);
	assert_int_equal(dec_call_copy(w.b, w.n, 0, NULL), -RXP_E_DECODE);
	wb_free(&w);
	wb_hdr(&w, W_CALL); /* "a\0b" */
	wb_u32(&w, 0);
	wb_u32(&w, 3);
	wb_raw(&w, "a\0b", 4);
	wb_u32(&w, 0);
	wb_u16(&w, 0);
	assert_int_equal(dec_call_copy(w.b, w.n, 0, NULL), -RXP_E_DECODE);
	wb_free(&w);
}

static void test_bad_error_codes(void **state)
{
	static const uint32_t codes[] = {0, 1, 0x7fffffff};
	struct wb w = {0};
	size_t i;

	for (i = 0; i < RXP_ARRAY_SIZE(codes); i++) {
		wb_hdr(&w, W_ERROR);
		wb_u32(&w, codes[i]);
		wb_str(&w, "m");
		wb_u16(&w, 0);
		assert_int_equal(dec_resp_copy(w.b, w.n, 0, NULL),
				 -RXP_E_DECODE);
		wb_free(&w);
	}
}

/* ------------------------------------------------ headers, trailers */

static void test_bad_headers(void **state)
{
	struct rxp_value v = rxp_v_int(5);
	uint8_t *call, *resp, *c;
	size_t clen, rlen;

	call = enc_call_exact("f", &v, 1, 0, NULL, &clen);
	resp = enc_value_exact(&v, 0, &rlen);
	/* decoders do not take each other's messages */
	assert_int_equal(dec_call_copy(resp, rlen, 0, NULL), -RXP_E_DECODE);
	assert_int_equal(dec_resp_copy(call, clen, 0, NULL), -RXP_E_DECODE);
	c = dup_exact(call, clen);
	c[0] ^= 1; /* magic */
	assert_int_equal(dec_call_copy(c, clen, 0, NULL), -RXP_E_DECODE);
	c[0] ^= 1;
	c[4] = 0; /* versions this decoder does not know */
	assert_int_equal(dec_call_copy(c, clen, 0, NULL), -RXP_E_DECODE);
	c[4] = RXP_CODEC_VERSION + 1;
	assert_int_equal(dec_call_copy(c, clen, 0, NULL), -RXP_E_DECODE);
	c[4] = RXP_CODEC_VERSION;
	c[5] = 4; /* kind */
	assert_int_equal(dec_call_copy(c, clen, 0, NULL), -RXP_E_DECODE);
	assert_int_equal(dec_resp_copy(c, clen, 0, NULL), -RXP_E_DECODE);
	c[5] = W_CALL;
	c[7] = 1; /* reserved */
	assert_int_equal(dec_call_copy(c, clen, 0, NULL), -RXP_E_DECODE);
	c[7] = 0;
	assert_int_equal(dec_call_copy(c, clen, 0, NULL), 0);
	free(c);
	/* trailing bytes */
	c = malloc(clen + 1);
	assert_non_null(c);
	memcpy(c, call, clen);
	c[clen] = 0;
	assert_int_equal(dec_call_copy(c, clen + 1, 0, NULL), -RXP_E_DECODE);
	memcpy(c, resp, rlen);
	c[rlen] = 0;
	assert_int_equal(dec_resp_copy(c, rlen + 1, 0, NULL), -RXP_E_DECODE);
	free(c);
	free(call);
	free(resp);
}

/* ------------------------------------------------------- extensions */

/* A call "f" with no args and the extension records in @ext. */
static int dec_call_ext(uint16_t count, const struct wb *ext,
			struct rxp_call_meta *meta)
{
	struct rxp_decoded_call c;
	struct rxp_arena a;
	struct wb w = {0};
	uint8_t *b;
	int ret;

	wb_call(&w, "f", 0);
	wb_u16(&w, count);
	if (ext->n)
		wb_raw(&w, ext->b, ext->n);
	b = dup_exact(w.b, w.n);
	rxp_arena_init(&a, NULL, 0);
	ret = rxp_codec_call_decode(b, w.n, 0, NULL, &a, &c);
	if (!ret && meta)
		*meta = c.meta;
	rxp_arena_fini(&a);
	free(b);
	wb_free(&w);
	return ret;
}

static void ext_rec(struct wb *w, uint16_t type, const void *body, uint32_t len)
{
	wb_u16(w, type);
	wb_u32(w, len);
	if (len)
		wb_raw(w, body, len);
}

static void ext_autograd(struct wb *w, int64_t ctx, int64_t msg, uint8_t f)
{
	wb_u16(w, W_EXT_AUTOGRAD);
	wb_u32(w, 17);
	wb_u64(w, (uint64_t)ctx);
	wb_u64(w, (uint64_t)msg);
	wb_u8(w, f);
}

static void ext_rref(struct wb *w, uint32_t rsv_rref, uint32_t rsv_fork)
{
	wb_u16(w, W_EXT_RREF);
	wb_u32(w, 32);
	wb_rref_id(w, 8, rsv_rref, 9);
	wb_rref_id(w, 10, rsv_fork, 11);
}

static void test_extensions(void **state)
{
	struct rxp_call_meta m;
	struct wb e = {0};

	/* unknown types are skipped, before and after known ones */
	ext_rec(&e, 0x77, "junk", 4);
	ext_autograd(&e, 11, 12, 0);
	ext_rec(&e, 0, NULL, 0);
	ext_rec(&e, W_EXT_PROFILING, NULL, 0);
	assert_int_equal(dec_call_ext(4, &e, &m), 0);
	assert_true(m.has_autograd);
	assert_int_equal(m.autograd_ctx_id, 11);
	assert_int_equal(m.autograd_msg_id, 12);
	assert_int_equal(m.force_grad_recording, 0);
	assert_true(m.profiling);
	/* the count must match the records exactly */
	assert_int_equal(dec_call_ext(3, &e, NULL), -RXP_E_DECODE);
	assert_int_equal(dec_call_ext(5, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	/* unknown critical types are refused */
	ext_rec(&e, 0x8077, "x", 1);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	/* duplicates, wrong lengths, bad flag byte */
	ext_autograd(&e, 1, 2, 1);
	ext_autograd(&e, 1, 2, 1);
	assert_int_equal(dec_call_ext(2, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rec(&e, W_EXT_PROFILING, NULL, 0);
	ext_rec(&e, W_EXT_PROFILING, NULL, 0);
	assert_int_equal(dec_call_ext(2, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rec(&e, W_EXT_PROFILING, "\1", 1);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_autograd(&e, 1, 2, 2);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rec(&e, W_EXT_AUTOGRAD, "0123456789abcdef", 16);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rec(&e, W_EXT_AUTOGRAD, "0123456789abcdef\0\0", 18);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	/* call types mean nothing in responses: skipped unless critical
	 * (type 1 there is the profile, tested below) */
	wb_hdr(&e, W_VALUE);
	wb_u8(&e, RXP_V_NONE);
	wb_u16(&e, 3);
	ext_rec(&e, W_EXT_PROFILING, NULL, 0);
	ext_rref(&e, 0, 0);
	ext_rec(&e, 0x1234, "abc", 3);
	assert_int_equal(dec_resp_copy(e.b, e.n, 0, NULL), 0);
	e.b[9] = 4;
	ext_rec(&e, 0x8001, NULL, 0);
	assert_int_equal(dec_resp_copy(e.b, e.n, 0, NULL), -RXP_E_DECODE);
	wb_free(&e);
}

static void test_rref_call_record(void **state)
{
	struct rxp_call_meta m;
	struct wb e = {0};
	uint8_t body[33] = {0};

	ext_rec(&e, 0x77, "junk", 4);
	ext_rref(&e, 0, 0);
	ext_autograd(&e, 1, 2, 1);
	assert_int_equal(dec_call_ext(3, &e, &m), 0);
	assert_true(m.has_rref);
	assert_int_equal(m.rref_id.creator, 8);
	assert_int_equal(m.rref_id.local, 9);
	assert_int_equal(m.fork_id.creator, 10);
	assert_int_equal(m.fork_id.local, 11);
	assert_true(m.has_autograd);
	assert_false(m.profiling);
	wb_free(&e);
	/* reserved fields, duplicates, wrong lengths */
	ext_rref(&e, 1, 0);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rref(&e, 0, 0x100);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rref(&e, 0, 0);
	ext_rref(&e, 0, 0);
	assert_int_equal(dec_call_ext(2, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rec(&e, W_EXT_RREF, body, 31);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rec(&e, W_EXT_RREF, body, 33);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rec(&e, W_EXT_RREF, NULL, 0);
	assert_int_equal(dec_call_ext(1, &e, NULL), -RXP_E_DECODE);
	wb_free(&e);
	ext_rec(&e, W_EXT_RREF, body, 32); /* all zero: fine */
	assert_int_equal(dec_call_ext(1, &e, &m), 0);
	assert_true(m.has_rref);
	wb_free(&e);
}

/* One profile event. */
static void prof_ev(struct wb *w, const char *name, int64_t start, int64_t end)
{
	wb_str(w, name);
	wb_u64(w, (uint64_t)start);
	wb_u64(w, (uint64_t)end);
}

/* Copies of the first decoded events (names not kept: they point into
 * the freed payload). */
static struct rxp_prof_wire_event saved_ev[4];

/*
 * A response (@error or value) whose extension block holds @count
 * records: @pre, then a profile record of declared length @len (0: the
 * body's own) with @nev events and body @body. *@out gets the extension,
 * its events copied to saved_ev.
 */
static int dec_prof_msg(bool error, uint16_t count, const struct wb *pre,
			uint32_t len, uint32_t nev, const struct wb *body,
			struct rxp_resp_ext *out)
{
	struct rxp_decoded_resp r;
	struct rxp_arena a;
	struct wb w = {0};
	uint8_t *b;
	int ret;

	wb_hdr(&w, error ? W_ERROR : W_VALUE);
	if (error) {
		wb_u32(&w, (uint32_t)-5);
		wb_str(&w, "m");
	} else {
		wb_u8(&w, RXP_V_INT);
		wb_u64(&w, 3);
	}
	wb_u16(&w, count);
	if (pre && pre->n)
		wb_raw(&w, pre->b, pre->n);
	wb_u16(&w, W_EXT_PROFILE);
	wb_u32(&w, len ? len : 20 + (uint32_t)body->n);
	wb_u64(&w, 10);
	wb_u64(&w, 20);
	wb_u32(&w, nev);
	if (body->n)
		wb_raw(&w, body->b, body->n);
	b = dup_exact(w.b, w.n);
	rxp_arena_init(&a, NULL, 0);
	ret = rxp_codec_resp_decode(b, w.n, 0, NULL, &a, &r);
	if (!ret && out) {
		*out = r.ext;
		if (r.ext.events) {
			memcpy(saved_ev, r.ext.events,
			       (r.ext.nevents < 4 ? r.ext.nevents : 4) *
				       sizeof(saved_ev[0]));
			for (unsigned i = 0; i < 4; i++)
				saved_ev[i].name = NULL;
			out->events = saved_ev;
		}
	}
	if (!ret)
		assert_int_equal(r.is_error, error);
	rxp_arena_fini(&a);
	free(b);
	wb_free(&w);
	return ret;
}

static void test_profile_record(void **state)
{
	struct rxp_resp_ext x;
	struct wb body = {0}, pre = {0};
	int err;

	for (err = 0; err < 2; err++) {
		/* good: two events, and none; unknown records around it */
		prof_ev(&body, "a", 1, 2);
		prof_ev(&body, "", -3, -3);
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 2, &body, &x),
				 0);
		assert_true(x.has_prof);
		assert_int_equal(x.t_recv_ns, 10);
		assert_int_equal(x.t_done_ns, 20);
		assert_int_equal(x.nevents, 2);
		assert_int_equal(x.events[1].start_ns, -3);
		ext_rec(&pre, 0x99, "zz", 2);
		assert_int_equal(dec_prof_msg(err, 2, &pre, 0, 2, &body, NULL),
				 0);
		/* the event count must match the record's bytes exactly */
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 1, &body, NULL),
				 -RXP_E_DECODE);
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 3, &body, NULL),
				 -RXP_E_DECODE);
		/* a record length that cuts the events, or runs past them
		 * (into the next record or the message end) */
		assert_int_equal(dec_prof_msg(err, 1, NULL, 20 + body.n - 1, 2,
					      &body, NULL),
				 -RXP_E_DECODE);
		wb_u8(&body, 0);
		assert_int_equal(
			dec_prof_msg(err, 1, NULL, 0, 2, &body, NULL),
			-RXP_E_DECODE); /* trailing byte in the record */
		assert_int_equal(dec_prof_msg(err, 1, NULL, 20 + body.n - 1, 2,
					      &body, NULL),
				 -RXP_E_DECODE); /* ... in the message */
		wb_free(&body);
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 0, &body, &x),
				 0);
		assert_int_equal(x.nevents, 0);
		assert_null(x.events);
		assert_int_equal(
			dec_prof_msg(err, 1, NULL, 19, 0, &body, NULL),
			-RXP_E_DECODE); /* shorter than the fixed part */
		/* duplicate */
		wb_u16(&pre, W_EXT_PROFILE);
		wb_u32(&pre, 20);
		wb_u64(&pre, 0);
		wb_u64(&pre, 0);
		wb_u32(&pre, 0);
		assert_int_equal(dec_prof_msg(err, 3, &pre, 0, 0, &body, NULL),
				 -RXP_E_DECODE);
		wb_free(&pre);
		/* end before start; equal is fine */
		prof_ev(&body, "x", 5, 4);
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 1, &body, NULL),
				 -RXP_E_DECODE);
		wb_free(&body);
		prof_ev(&body, "x", INT64_MAX, INT64_MIN);
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 1, &body, NULL),
				 -RXP_E_DECODE);
		wb_free(&body);
		/* names: no NUL, embedded NUL */
		wb_u32(&body, 2);
		wb_raw(&body, "abc", 3);
		wb_u64(&body, 0);
		wb_u64(&body, 0);
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 1, &body, NULL),
				 -RXP_E_DECODE);
		wb_free(&body);
		wb_u32(&body, 2);
		wb_raw(&body, "a\0", 3);
		wb_u64(&body, 0);
		wb_u64(&body, 0);
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 1, &body, NULL),
				 -RXP_E_DECODE);
		wb_free(&body);
		/* a name length running past the record */
		wb_u32(&body, 100);
		wb_raw(&body, "abc", 3);
		wb_u64(&body, 0);
		wb_u64(&body, 0);
		assert_int_equal(dec_prof_msg(err, 1, NULL, 0, 1, &body, NULL),
				 -RXP_E_DECODE);
		wb_free(&body);
	}
}

/* RXP_CODEC_MAX_PROF_EVENTS events decode; one more is refused even
 * though the bytes are there. */
static void test_profile_event_limit(void **state)
{
	struct rxp_resp_ext x;
	struct wb body = {0};
	uint32_t i;

	for (i = 0; i < RXP_CODEC_MAX_PROF_EVENTS; i++)
		prof_ev(&body, "", i, i);
	assert_int_equal(dec_prof_msg(false, 1, NULL, 0,
				      RXP_CODEC_MAX_PROF_EVENTS, &body, &x),
			 0);
	assert_int_equal(x.nevents, RXP_CODEC_MAX_PROF_EVENTS);
	prof_ev(&body, "", 0, 0);
	assert_int_equal(dec_prof_msg(false, 1, NULL, 0,
				      RXP_CODEC_MAX_PROF_EVENTS + 1, &body,
				      NULL),
			 -RXP_E_DECODE);
	wb_free(&body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_truncation_fails),
		cmocka_unit_test(test_single_byte_corruptions),
		cmocka_unit_test(test_huge_counts_fail_fast),
		cmocka_unit_test(test_bad_tensors),
		cmocka_unit_test(test_bad_scalars_and_strings),
		cmocka_unit_test(test_bad_rrefs),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_bad_error_codes),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_rref_call_record),
		cmocka_unit_test(test_profile_record),
		cmocka_unit_test(test_profile_event_limit),
	};

	return cmocka_run_group_tests_name("codec_malformed", tests, NULL,
					   NULL);
}
