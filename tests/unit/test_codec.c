/* SPDX-License-Identifier: MIT */
/*
 * Codec: round trips of every kind, encoder validation, limits, and
 * decoding under allocation failure. The arena and the value model
 * helpers are in test_codec_arena.c, malformed input in
 * test_codec_malformed.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "test_codec.h"

/* ------------------------------------------------------- round trips */

static void test_tiny_call_roundtrip_allocates_nothing(void **state)
{
	struct rxp_value args[2] = {rxp_v_int(1), rxp_v_int(-2)};
	alignas(16) char mem[512];
	uint8_t buf[128];
	struct rxp_decoded_call c;
	struct rxp_arena a;
	int64_t n;

	rxp__alloc_fail_after(-1);
	n = rxp_codec_call_size("m.add", args, 2, 0, NULL);
	/* hdr 8, flags 4, name 4+5+1, nargs 4, 2 x 9, ext count 2 */
	assert_int_equal(n, 8 + 4 + 10 + 4 + 18 + 2);
	assert_int_equal(rxp_codec_call_encode("m.add", args, 2, 0, NULL, buf,
					       sizeof(buf)),
			 n);
	rxp_arena_init(&a, mem, sizeof(mem));
	assert_int_equal(rxp_codec_call_decode(buf, (size_t)n, 0, NULL, &a, &c),
			 0);
	assert_string_equal(c.name, "m.add");
	assert_int_equal(c.name_len, 5);
	assert_ptr_equal(c.name, (const char *)buf + 16); /* in the payload */
	assert_int_equal(c.nargs, 2);
	assert_true(rxp_value_equal(&c.args[0], &args[0]));
	assert_true(rxp_value_equal(&c.args[1], &args[1]));
	assert_int_equal(c.meta.flags, 0);
	assert_false(c.meta.has_autograd);
	assert_false(c.meta.profiling);
	assert_false(c.meta.has_rref);
	assert_int_equal(c.meta.rref_id.creator | c.meta.fork_id.creator, 0);
	assert_int_equal(c.meta.rref_id.local | c.meta.fork_id.local, 0);
	assert_int_equal(rxp__alloc_fail_after(-1), 0);
	rxp_arena_fini(&a);
}

static void test_call_roundtrip_every_kind(void **state)
{
	struct sample s;
	struct rxp_decoded_call c;
	struct rxp_arena a;
	char mem[256];
	size_t len;
	uint8_t *b;
	uint32_t i;

	sample_init(&s);
	b = enc_call_exact("pkg.mod.fn", s.args, SAMPLE_NARGS, 2, &s.meta,
			   &len);
	rxp_arena_init(&a, mem, sizeof(mem));
	assert_int_equal(rxp_codec_call_decode(b, len, 2, s.lens, &a, &c), 0);
	assert_string_equal(c.name, "pkg.mod.fn");
	assert_int_equal(c.nargs, SAMPLE_NARGS);
	for (i = 0; i < SAMPLE_NARGS; i++)
		assert_true(rxp_value_equal(&c.args[i], &s.args[i]));
	assert_int_equal(c.meta.flags, RXP_CALL_ASYNC_EXEC);
	assert_true(c.meta.has_autograd);
	assert_int_equal(c.meta.autograd_ctx_id, 7);
	assert_int_equal(c.meta.autograd_msg_id, -3);
	assert_int_equal(c.meta.force_grad_recording, 1);
	assert_int_equal(c.meta.profiling, 1);
	assert_true(meta_equal(&c.meta, &s.meta));
	/* strings point into the payload; tensors got explicit strides */
	assert_true((const uint8_t *)c.args[4].u.str.ptr > b &&
		    (const uint8_t *)c.args[4].u.str.ptr < b + len);
	assert_int_equal(c.args[5].u.str.ptr[0], 0);
	assert_non_null(c.args[9].u.tensor.strides);
	assert_int_equal(c.args[9].u.tensor.strides[0], 3);
	assert_int_equal(c.args[9].u.tensor.strides[1], 1);
	assert_int_equal((uintptr_t)c.args[9].u.tensor.shape % 8, 0);
	assert_null(c.args[11].u.tensor.shape); /* 0-dim */
	assert_int_equal(c.args[12].u.tensor.strides[0], 5);
	assert_null(c.args[15].u.list.items);
	rxp_arena_fini(&a);
	free(b);
}

static void test_contiguous_strides_on_the_wire(void **state)
{
	static const struct {
		int64_t shape[3], strides[3];
	} cases[] = {
		{{2, 3, 4}, {12, 4, 1}},
		{{2, 0, 3}, {3, 3, 1}}, /* PyTorch: size 0 counts as 1 */
		{{1, 5, 1}, {5, 1, 1}},
	};
	struct rxp_decoded_resp r;
	struct rxp_arena a;
	uint64_t lens[1] = {1024};
	char mem[512];
	struct rxp_value v;
	size_t i, len;
	uint8_t *b;

	for (i = 0; i < RXP_ARRAY_SIZE(cases); i++) {
		v = rxp_v_tensor(RXP_DT_I16, 3, cases[i].shape, NULL, 0, 0);
		b = enc_value_exact(&v, 1, &len);
		rxp_arena_init(&a, mem, sizeof(mem));
		assert_int_equal(rxp_codec_resp_decode(b, len, 1, lens, &a, &r),
				 0);
		assert_false(r.is_error);
		assert_memory_equal(r.value->u.tensor.strides, cases[i].strides,
				    sizeof(cases[i].strides));
		assert_true(rxp_value_equal(r.value, &v));
		rxp_arena_fini(&a);
		free(b);
	}
}

static void test_value_roundtrip_each_kind(void **state)
{
	struct sample s;
	struct rxp_decoded_resp r;
	struct rxp_arena a;
	char mem[128];
	size_t i, len;
	uint8_t *b;

	sample_init(&s);
	for (i = 0; i < SAMPLE_NARGS; i++) {
		b = enc_value_exact(&s.args[i], 2, &len);
		rxp_arena_init(&a, mem, sizeof(mem));
		assert_int_equal(
			rxp_codec_resp_decode(b, len, 2, s.lens, &a, &r), 0);
		assert_false(r.is_error);
		assert_true(rxp_value_equal(r.value, &s.args[i]));
		rxp_arena_fini(&a);
		free(b);
	}
}

static void test_error_roundtrip(void **state)
{
	struct rxp_decoded_resp r;
	struct rxp_arena a;
	char mem[64];
	size_t len;
	uint8_t *b;

	rxp_arena_init(&a, mem, sizeof(mem));
	b = enc_error_exact(-RXP_E_REMOTE, "ValueError: boom", &len);
	assert_int_equal(len, 8 + 4 + 4 + 17 + 2);
	assert_int_equal(rxp_codec_resp_decode(b, len, 0, NULL, &a, &r), 0);
	assert_true(r.is_error);
	assert_int_equal(r.err_code, -RXP_E_REMOTE);
	assert_string_equal(r.err_msg, "ValueError: boom");
	assert_null(r.value);
	free(b);
	b = enc_error_exact(INT32_MIN, NULL, &len); /* NULL message = "" */
	assert_int_equal(rxp_codec_resp_decode(b, len, 0, NULL, &a, &r), 0);
	assert_int_equal(r.err_code, INT32_MIN);
	assert_string_equal(r.err_msg, "");
	free(b);
	assert_int_equal(rxp_codec_error_size(0, "x"), -EINVAL);
	assert_int_equal(rxp_codec_error_size(5, "x"), -EINVAL);
	rxp_arena_fini(&a);
}

/* A chain of @depth nested lists around an int. */
static struct rxp_value *nest(struct rxp_value *chain, unsigned depth)
{
	unsigned i;

	chain[depth] = rxp_v_int(9);
	for (i = depth; i-- > 0;)
		chain[i] = rxp_v_list(&chain[i + 1], 1);
	return chain;
}

static void test_max_depth_ok_and_one_more_rejected(void **state)
{
	struct rxp_value chain[RXP_CODEC_MAX_DEPTH + 2];
	struct rxp_decoded_call c;
	struct rxp_arena a;
	struct wb w = {0};
	size_t len;
	uint8_t *b;
	unsigned i;

	nest(chain, RXP_CODEC_MAX_DEPTH);
	b = enc_call_exact("f", chain, 1, 0, NULL, &len);
	rxp_arena_init(&a, NULL, 0);
	assert_int_equal(rxp_codec_call_decode(b, len, 0, NULL, &a, &c), 0);
	assert_true(rxp_value_equal(&c.args[0], &chain[0]));
	rxp_arena_fini(&a);
	free(b);

	nest(chain, RXP_CODEC_MAX_DEPTH + 1);
	assert_int_equal(rxp_codec_call_size("f", chain, 1, 0, NULL),
			 -RXP_E_TOO_BIG);
	assert_int_equal(rxp_codec_value_size(chain, 0), -RXP_E_TOO_BIG);
	/* the same message made by hand is refused by the decoder */
	wb_call(&w, "f", 1);
	for (i = 0; i < RXP_CODEC_MAX_DEPTH + 1; i++) {
		wb_u8(&w, RXP_V_LIST);
		wb_u32(&w, 1);
	}
	wb_u8(&w, RXP_V_NONE);
	wb_u16(&w, 0);
	assert_int_equal(dec_call_copy(w.b, w.n, 0, NULL), -RXP_E_DECODE);
	wb_free(&w);
}

static void test_max_items(void **state)
{
	struct rxp_value one = rxp_v_none(), two[2], *many;
	struct rxp_decoded_call c;
	struct rxp_arena a;
	struct wb w = {0};
	uint32_t n = RXP_CODEC_MAX_ITEMS;

	/* counts are checked before the items are looked at */
	assert_int_equal(rxp_codec_call_size("f", &one, n + 1, 0, NULL),
			 -RXP_E_TOO_BIG);
	two[0] = rxp_v_none();
	two[1] = rxp_v_list(&one, n - 1); /* n + 1 values in all */
	assert_int_equal(rxp_codec_call_size("f", two, 2, 0, NULL),
			 -RXP_E_TOO_BIG);

	/* exactly the limit: 2 args (one a list) + n - 2 items */
	many = calloc(n, sizeof(*many));
	assert_non_null(many);
	two[1] = rxp_v_list(many, n - 2);
	assert_int_equal(rxp_codec_call_size("f", two, 2, 0, NULL),
			 8 + 4 + 6 + 4 + 1 + 5 + (n - 2) + 2);
	free(many);

	/* decoder: the same, by hand */
	wb_call(&w, "f", 2);
	wb_u8(&w, RXP_V_NONE);
	wb_u8(&w, RXP_V_LIST);
	wb_u32(&w, n - 2);
	many = calloc(1, n);
	assert_non_null(many);
	wb_raw(&w, many, n - 2);
	wb_u16(&w, 0);
	rxp_arena_init(&a, NULL, 0);
	assert_int_equal(rxp_codec_call_decode(w.b, w.n, 0, NULL, &a, &c), 0);
	assert_int_equal(c.args[1].u.list.n, n - 2);
	rxp_arena_fini(&a);
	wb_free(&w);
	wb_call(&w, "f", 2);
	wb_u8(&w, RXP_V_NONE);
	wb_u8(&w, RXP_V_LIST);
	wb_u32(&w, n - 1);
	wb_raw(&w, many, n - 1);
	wb_u16(&w, 0);
	assert_int_equal(dec_call_copy(w.b, w.n, 0, NULL), -RXP_E_DECODE);
	wb_free(&w);
	free(many);
}

/* ------------------------------------------------------------- RRefs */

static void check_decoded_rref(const struct rxp_value *v,
			       const struct rxp_rref_desc *want)
{
	assert_int_equal(v->kind, RXP_V_RREF);
	assert_null(v->u.rref.ref);
	assert_non_null(v->u.rref.desc);
	assert_int_equal(
		(uintptr_t)v->u.rref.desc % alignof(struct rxp_rref_desc), 0);
	assert_memory_equal(v->u.rref.desc, want, sizeof(*want));
}

static void test_rref_roundtrip(void **state)
{
	struct sample s;
	struct rxp_decoded_resp r;
	struct rxp_decoded_call c;
	struct rxp_arena a;
	struct wb w = {0};
	char mem[1024];
	const struct rxp_value *l;
	size_t len;
	uint8_t *b;

	sample_init(&s);
	/* top level: tag 9 and the 40-byte descriptor, as in docs/codec.md */
	b = enc_value_exact(&s.args[16], 0, &len);
	assert_int_equal(len, 8 + 1 + W_RREF_BODY + 2);
	wb_hdr(&w, W_VALUE);
	wb_u8(&w, RXP_V_RREF);
	wb_u32(&w, 1);
	wb_u32(&w, 2);
	wb_rref_id(&w, 1, 0, 77);
	wb_rref_id(&w, 2, 0, UINT64_MAX);
	wb_u16(&w, 0);
	assert_int_equal(w.n, len);
	assert_memory_equal(w.b, b, len);
	wb_free(&w);
	rxp_arena_init(&a, mem, sizeof(mem));
	assert_int_equal(rxp_codec_resp_decode(b, len, 0, NULL, &a, &r), 0);
	check_decoded_rref(r.value, &s.desc[0]);
	assert_true(rxp_value_equal(r.value, &s.args[16]));
	free(b);

	/* nested in a list and in a dict inside it */
	b = enc_call_exact("m.f", &s.args[16], 2, 0, NULL, &len);
	assert_int_equal(rxp_codec_call_decode(b, len, 0, NULL, &a, &c), 0);
	assert_int_equal(c.nargs, 2);
	check_decoded_rref(&c.args[0], &s.desc[0]);
	l = c.args[1].u.list.items;
	check_decoded_rref(&l[0], &s.desc[1]);
	assert_int_equal(l[1].kind, RXP_V_DICT);
	check_decoded_rref(&l[1].u.dict.items[0].value, &s.desc[0]);
	assert_true(rxp_value_equal(&c.args[1], &s.args[17]));
	/* a decoded RRef re-encodes to the same bytes */
	{
		size_t len2;
		uint8_t *b2 =
			enc_call_exact(c.name, c.args, c.nargs, 0, NULL, &len2);

		assert_int_equal(len2, len);
		assert_memory_equal(b2, b, len);
		free(b2);
	}
	rxp_arena_fini(&a);
	free(b);
}

static void test_rref_encoder_checks(void **state)
{
	struct rxp_rref_desc d = {.owner = 1}, r1 = d, r2 = d;
	struct rxp_rref *handle = (struct rxp_rref *)&d; /* never read */
	struct rxp_call_meta m = {.has_rref = 1};
	struct rxp_value bad[4], wrap;
	uint8_t buf[256];
	size_t i;

	r1.rref.reserved = 1;
	r2.fork.reserved = 0x80000000u;
	bad[0] = rxp_v_rref(NULL);   /* desc not filled in */
	bad[1] = rxp_v_rref(handle); /* likewise */
	bad[2] = rxp_v_rref(NULL);
	bad[2].u.rref.desc = &r1;
	bad[3] = rxp_v_rref(handle);
	bad[3].u.rref.desc = &r2;
	assert_int_equal(bad[1].kind, RXP_V_RREF);
	assert_ptr_equal(bad[1].u.rref.ref, handle);
	assert_null(bad[1].u.rref.desc);
	for (i = 0; i < RXP_ARRAY_SIZE(bad); i++) {
		assert_int_equal(rxp_codec_value_size(&bad[i], 0), -EINVAL);
		assert_int_equal(
			rxp_codec_value_encode(&bad[i], 0, buf, sizeof(buf)),
			-EINVAL);
		wrap = rxp_v_tuple(&bad[i], 1);
		assert_int_equal(rxp_codec_call_size("f", &wrap, 1, 0, NULL),
				 -EINVAL);
		assert_int_equal(rxp_codec_call_encode("f", &wrap, 1, 0, NULL,
						       buf, sizeof(buf)),
				 -EINVAL);
	}
	/* a handle with a descriptor: the descriptor is what travels */
	wrap = rxp_v_rref(handle);
	wrap.u.rref.desc = &d;
	assert_int_equal(rxp_codec_value_size(&wrap, 0), 8 + 41 + 2);

	/* reserved id fields in the call record */
	assert_true(rxp_codec_call_size("f", NULL, 0, 0, &m) > 0);
	m.rref_id.reserved = 1;
	assert_int_equal(rxp_codec_call_size("f", NULL, 0, 0, &m), -EINVAL);
	assert_int_equal(
		rxp_codec_call_encode("f", NULL, 0, 0, &m, buf, sizeof(buf)),
		-EINVAL);
	m.rref_id.reserved = 0;
	m.fork_id.reserved = 2;
	assert_int_equal(rxp_codec_call_size("f", NULL, 0, 0, &m), -EINVAL);
	m.has_rref = 0; /* ids are ignored (not sent) without has_rref */
	assert_int_equal(rxp_codec_call_size("f", NULL, 0, 0, &m),
			 rxp_codec_call_size("f", NULL, 0, 0, NULL));
}

static void test_call_rref_ids_roundtrip(void **state)
{
	struct rxp_call_meta m = {
		.has_rref = 7, /* any non-zero */
		.rref_id = {.creator = 5, .local = 9},
		.fork_id = {.creator = UINT32_MAX, .local = UINT64_MAX}};
	struct rxp_decoded_call c;
	struct rxp_arena a;
	struct wb w = {0};
	size_t len;
	uint8_t *b;

	b = enc_call_exact("f", NULL, 0, 0, &m, &len);
	/* the record: type 3, len 32, two ids */
	wb_call(&w, "f", 0);
	wb_u16(&w, 1);
	wb_u16(&w, W_EXT_RREF);
	wb_u32(&w, 32);
	wb_rref_id(&w, 5, 0, 9);
	wb_rref_id(&w, UINT32_MAX, 0, UINT64_MAX);
	assert_int_equal(w.n, len);
	assert_memory_equal(w.b, b, len);
	wb_free(&w);
	rxp_arena_init(&a, NULL, 0);
	assert_int_equal(rxp_codec_call_decode(b, len, 0, NULL, &a, &c), 0);
	assert_int_equal(c.meta.has_rref, 1);
	assert_int_equal(c.meta.rref_id.creator, 5);
	assert_int_equal(c.meta.rref_id.local, 9);
	assert_int_equal(c.meta.fork_id.creator, UINT32_MAX);
	assert_true(c.meta.fork_id.local == UINT64_MAX);
	assert_false(c.meta.has_autograd);
	assert_false(c.meta.profiling);
	rxp_arena_fini(&a);
	free(b);
}

/* -------------------------------------------------- response profile */

static void test_profile_ext_roundtrip(void **state)
{
	struct sample s;
	struct rxp_resp_ext none = {0}, empty = {.has_prof = 1,
						 .t_recv_ns = -1,
						 .t_done_ns = 1};
	struct rxp_decoded_resp r;
	struct rxp_arena a;
	char mem[512];
	size_t len, plen, i;
	uint8_t *b, *p;

	sample_init(&s);
	rxp_arena_init(&a, mem, sizeof(mem));
	/* value response: the plain encoding + a 6-byte record header and
	 * 20 + 3 * 21 + 16 name bytes */
	p = enc_value_exact(&s.args[0], 0, &plen);
	b = enc_value_ext_exact(&s.args[0], 0, &s.ext, &len);
	assert_int_equal(len, plen + 6 + 20 + 3 * 21 + 16);
	assert_int_equal(rxp_codec_resp_decode(b, len, 0, NULL, &a, &r), 0);
	assert_false(r.is_error);
	assert_true(rxp_value_equal(r.value, &s.args[0]));
	assert_true(ext_equal(&r.ext, &s.ext));
	assert_int_equal(r.ext.has_prof, 1);
	assert_int_equal((uintptr_t)r.ext.events %
				 alignof(struct rxp_prof_wire_event),
			 0);
	for (i = 0; i < SAMPLE_NEVENTS; i++) {
		assert_true((const uint8_t *)r.ext.events[i].name > b &&
			    (const uint8_t *)r.ext.events[i].name < b + len);
		assert_string_equal(r.ext.events[i].name, s.ev[i].name);
	}
	free(b);
	/* none, or has_prof 0: exactly the plain encoding; ext zeroed */
	b = enc_value_ext_exact(&s.args[0], 0, &none, &len);
	assert_int_equal(len, plen);
	assert_memory_equal(b, p, len);
	memset(&r, 0x5a, sizeof(r));
	assert_int_equal(rxp_codec_resp_decode(b, len, 0, NULL, &a, &r), 0);
	assert_int_equal(r.ext.has_prof, 0);
	assert_int_equal(r.ext.nevents, 0);
	assert_null(r.ext.events);
	assert_int_equal(r.ext.t_recv_ns | r.ext.t_done_ns, 0);
	free(b);
	free(p);

	/* error response, with the profile and with an empty one */
	p = enc_error_exact(-EIO, "io", &plen);
	b = enc_error_ext_exact(-EIO, "io", &s.ext, &len);
	assert_int_equal(len, plen + 6 + 20 + 3 * 21 + 16);
	assert_int_equal(rxp_codec_resp_decode(b, len, 0, NULL, &a, &r), 0);
	assert_true(r.is_error);
	assert_int_equal(r.err_code, -EIO);
	assert_string_equal(r.err_msg, "io");
	assert_true(ext_equal(&r.ext, &s.ext));
	free(b);
	b = enc_error_ext_exact(-EIO, "io", &empty, &len);
	assert_int_equal(len, plen + 6 + 20);
	assert_int_equal(rxp_codec_resp_decode(b, len, 0, NULL, &a, &r), 0);
	assert_int_equal(r.ext.has_prof, 1);
	assert_int_equal(r.ext.t_recv_ns, -1);
	assert_int_equal(r.ext.t_done_ns, 1);
	assert_int_equal(r.ext.nevents, 0);
	assert_null(r.ext.events);
	free(b);
	free(p);
	rxp_arena_fini(&a);
}

static void test_profile_ext_encoder_checks(void **state)
{
	struct rxp_prof_wire_event ev[2] = {{"a", 1, 5, 5}, {"b", 1, 5, 6}};
	struct rxp_resp_ext x = {.has_prof = 1, .nevents = 2, .events = ev};
	struct rxp_prof_wire_event *many;
	struct rxp_value v = rxp_v_none();
	struct rxp_decoded_resp r;
	struct rxp_arena a;
	uint8_t buf[256];
	size_t len;
	uint8_t *b;

	assert_true(rxp_codec_value_size_ext(&v, 0, &x) > 0);
	ev[1].end_ns = 4; /* ends before it starts */
	assert_int_equal(rxp_codec_value_size_ext(&v, 0, &x), -EINVAL);
	assert_int_equal(rxp_codec_error_size_ext(-1, "m", &x), -EINVAL);
	assert_int_equal(
		rxp_codec_value_encode_ext(&v, 0, &x, buf, sizeof(buf)),
		-EINVAL);
	assert_int_equal(
		rxp_codec_error_encode_ext(-1, "m", &x, buf, sizeof(buf)),
		-EINVAL);
	ev[1].end_ns = 6;
	ev[0].name = NULL; /* NULL name with a length */
	assert_int_equal(rxp_codec_value_size_ext(&v, 0, &x), -EINVAL);
	ev[0].name_len = 0; /* NULL and empty is "" */
	assert_true(rxp_codec_value_size_ext(&v, 0, &x) > 0);
	ev[0].name = "a\0b"; /* embedded NUL */
	ev[0].name_len = 3;
	assert_int_equal(rxp_codec_value_size_ext(&v, 0, &x), -EINVAL);
	ev[0].name_len = 1;
	x.events = NULL;
	assert_int_equal(rxp_codec_value_size_ext(&v, 0, &x), -EINVAL);
	x.has_prof = 0; /* nothing is looked at without has_prof */
	assert_int_equal(rxp_codec_value_size_ext(&v, 0, &x),
			 rxp_codec_value_size(&v, 0));
	assert_int_equal(rxp_codec_error_size_ext(0, "m", NULL), -EINVAL);
	assert_int_equal(rxp_codec_value_size_ext(NULL, 0, NULL), -EINVAL);

	/* RXP_CODEC_MAX_PROF_EVENTS events, then one more */
	many = calloc(RXP_CODEC_MAX_PROF_EVENTS + 1, sizeof(*many));
	assert_non_null(many);
	x.has_prof = 1;
	x.events = many;
	x.nevents = RXP_CODEC_MAX_PROF_EVENTS;
	b = enc_value_ext_exact(&v, 0, &x, &len);
	assert_int_equal(len,
			 8 + 1 + 2 + 6 + 20 + 21 * RXP_CODEC_MAX_PROF_EVENTS);
	rxp_arena_init(&a, NULL, 0);
	assert_int_equal(rxp_codec_resp_decode(b, len, 0, NULL, &a, &r), 0);
	assert_int_equal(r.ext.nevents, RXP_CODEC_MAX_PROF_EVENTS);
	assert_true(ext_equal(&r.ext, &x));
	rxp_arena_fini(&a);
	free(b);
	x.nevents++;
	assert_int_equal(rxp_codec_value_size_ext(&v, 0, &x), -RXP_E_TOO_BIG);
	assert_int_equal(rxp_codec_error_size_ext(-1, NULL, &x),
			 -RXP_E_TOO_BIG);
	free(many);
}

/* --------------------------------------------------- encoder checks */

static void test_encoder_rejects_malformed_trees(void **state)
{
	const int64_t sh[2] = {2, 3}, neg[2] = {2, -3}, nst[2] = {-1, 1};
	const int64_t huge[2] = {INT64_C(1) << 62, 4};
	const int64_t zhuge[3] = {0, INT64_C(1) << 40, INT64_C(1) << 40};
	struct rxp_dict_entry nullkey = {.key = NULL, .key_len = 2};
	struct rxp_dict_entry nulkey = {.key = "a\0b", .key_len = 3};
	struct rxp_value bad[] = {
		{.kind = RXP_V__COUNT},
		{.kind = (enum rxp_value_kind)99},
		rxp_v_tensor(RXP_DT_F32, 2, sh, NULL, 1, 0), /* storage */
		rxp_v_tensor(RXP_DT_F32, 17, sh, NULL, 0, 0),
		rxp_v_tensor(8, 2, sh, NULL, 0, 0), /* dtype */
		rxp_v_tensor(RXP_DT_F32, 2, NULL, NULL, 0, 0),
		rxp_v_tensor(RXP_DT_F32, 2, neg, NULL, 0, 0),
		rxp_v_tensor(RXP_DT_F32, 2, sh, nst, 0, 0),
		rxp_v_tensor(RXP_DT_F32, 2, sh, NULL, 0, 2), /* unaligned */
		rxp_v_tensor(RXP_DT_F32, 2, huge, NULL, 0, 0),
		rxp_v_tensor(RXP_DT_F32, 3, zhuge, NULL, 0, 0),
		rxp_v_tensor(RXP_DT_U8, 2, sh, NULL, 0, UINT64_MAX - 2),
		rxp_v_list(NULL, 2),
		rxp_v_tuple(NULL, 1),
		rxp_v_dict(NULL, 1),
		rxp_v_dict(&nullkey, 1),
		rxp_v_dict(&nulkey, 1),
		{.kind = RXP_V_STRING, .u.str = {NULL, 3}},
		{.kind = RXP_V_STRING, .u.str = {"a\0b", 3}},
	};
	struct rxp_value wrap;
	uint8_t buf[512];
	size_t i;

	for (i = 0; i < RXP_ARRAY_SIZE(bad); i++) {
		assert_int_equal(rxp_codec_value_size(&bad[i], 1), -EINVAL);
		assert_int_equal(
			rxp_codec_value_encode(&bad[i], 1, buf, sizeof(buf)),
			-EINVAL);
		assert_int_equal(rxp_codec_call_size("f", &bad[i], 1, 1, NULL),
				 -EINVAL);
		wrap = rxp_v_list(&bad[i], 1); /* found when nested too */
		assert_int_equal(rxp_codec_call_encode("f", &wrap, 1, 1, NULL,
						       buf, sizeof(buf)),
				 -EINVAL);
	}
	assert_int_equal(rxp_codec_value_size(NULL, 0), -EINVAL);
}

static void test_encoder_checks_name_and_args(void **state)
{
	char name[RXP_CODEC_MAX_NAME + 2];
	struct rxp_value v = rxp_v_int(1);
	uint8_t buf[2048];

	memset(name, 'n', sizeof(name));
	name[RXP_CODEC_MAX_NAME] = 0;
	assert_true(rxp_codec_call_size(name, &v, 1, 0, NULL) > 0);
	assert_true(rxp_codec_call_encode(name, &v, 1, 0, NULL, buf,
					  sizeof(buf)) > 0);
	name[RXP_CODEC_MAX_NAME] = 'n';
	name[RXP_CODEC_MAX_NAME + 1] = 0;
	assert_int_equal(rxp_codec_call_size(name, &v, 1, 0, NULL),
			 -RXP_E_TOO_BIG);
	assert_int_equal(rxp_codec_call_size(NULL, &v, 1, 0, NULL), -EINVAL);
	assert_int_equal(rxp_codec_call_size("", &v, 1, 0, NULL), -EINVAL);
	assert_int_equal(rxp_codec_call_size("f", NULL, 1, 0, NULL), -EINVAL);
	assert_true(rxp_codec_call_size("f", NULL, 0, 0, NULL) > 0);
	assert_int_equal(rxp_codec_call_encode("f", &v, 1, 0, NULL, NULL, 64),
			 -EINVAL);
}

/* Every capacity below the size fails with -ENOSPC and writes nothing
 * past the capacity. */
static void test_encode_never_writes_past_cap(void **state)
{
	struct sample s;
	int64_t n, cap;
	uint8_t *buf;
	int64_t i;

	sample_init(&s);
	n = rxp_codec_call_size("f", s.args, SAMPLE_NARGS, 2, &s.meta);
	assert_true(n > 0);
	buf = malloc((size_t)n + 16);
	assert_non_null(buf);
	for (cap = 0; cap < n; cap++) {
		memset(buf, 0xa5, (size_t)n + 16);
		assert_int_equal(rxp_codec_call_encode("f", s.args,
						       SAMPLE_NARGS, 2, &s.meta,
						       buf, (size_t)cap),
				 -ENOSPC);
		for (i = cap; i < n + 16; i++)
			assert_int_equal(buf[i], 0xa5);
	}
	memset(buf, 0xa5, (size_t)n + 16);
	assert_int_equal(rxp_codec_call_encode("f", s.args, SAMPLE_NARGS, 2,
					       &s.meta, buf, (size_t)n + 16),
			 n);
	assert_int_equal(buf[n], 0xa5);
	for (cap = 0; cap < 30; cap++)
		assert_int_equal(
			rxp_codec_error_encode(-EIO, "disk", buf, (size_t)cap),
			cap < 23 ? -ENOSPC : 23);
	free(buf);
	/* responses with a profile record */
	n = rxp_codec_value_size_ext(&s.args[17], 0, &s.ext);
	assert_true(n > 0);
	buf = malloc((size_t)n + 16);
	assert_non_null(buf);
	for (cap = 0; cap <= n; cap++) {
		memset(buf, 0xa5, (size_t)n + 16);
		assert_int_equal(rxp_codec_value_encode_ext(&s.args[17], 0,
							    &s.ext, buf,
							    (size_t)cap),
				 cap < n ? -ENOSPC : n);
		for (i = cap; i < n + 16; i++)
			assert_int_equal(buf[i], 0xa5);
	}
	free(buf);
	n = rxp_codec_error_size_ext(-EIO, "disk", &s.ext);
	assert_true(n > 23);
	buf = malloc((size_t)n + 16);
	assert_non_null(buf);
	for (cap = 0; cap <= n; cap++) {
		memset(buf, 0xa5, (size_t)n + 16);
		assert_int_equal(rxp_codec_error_encode_ext(-EIO, "disk",
							    &s.ext, buf,
							    (size_t)cap),
				 cap < n ? -ENOSPC : n);
		for (i = cap; i < n + 16; i++)
			assert_int_equal(buf[i], 0xa5);
	}
	free(buf);
}

/* --------------------------------------------------- decoder misuse */

static void test_decode_argument_errors(void **state)
{
	struct rxp_value v = rxp_v_int(1);
	struct rxp_decoded_call c;
	struct rxp_decoded_resp r;
	struct rxp_arena a;
	uint8_t buf[64];
	int64_t n;

	n = rxp_codec_call_encode("f", &v, 1, 0, NULL, buf, sizeof(buf));
	assert_true(n > 0);
	rxp_arena_init(&a, NULL, 0);
	assert_int_equal(
		rxp_codec_call_decode(buf, (size_t)n, 0, NULL, NULL, &c),
		-EINVAL);
	assert_int_equal(
		rxp_codec_call_decode(buf, (size_t)n, 0, NULL, &a, NULL),
		-EINVAL);
	assert_int_equal(rxp_codec_call_decode(NULL, 3, 0, NULL, &a, &c),
			 -EINVAL);
	assert_int_equal(rxp_codec_call_decode(buf, (size_t)n, 1, NULL, &a, &c),
			 -EINVAL);
	assert_int_equal(rxp_codec_resp_decode(NULL, 0, 0, NULL, &a, &r),
			 -RXP_E_DECODE);
	rxp_arena_fini(&a);
}

/* Decoding under every allocation budget: -ENOMEM until it fits, the
 * output untouched and the arena rewound (ASan checks for leaks). */
static void test_decode_enomem_sweep(void **state)
{
	struct sample s;
	struct rxp_value big[40];
	struct rxp_decoded_call c, poison;
	struct rxp_arena a;
	char mem[96];
	char *cur;
	size_t len, i;
	uint8_t *b;
	long budget;
	int ret;

	sample_init(&s);
	for (i = 0; i < RXP_ARRAY_SIZE(big); i++)
		big[i] = rxp_v_list(s.args, SAMPLE_NARGS);
	b = enc_call_exact("f", big, RXP_ARRAY_SIZE(big), 2, NULL, &len);
	memset(&poison, 0x3c, sizeof(poison));
	for (budget = 0;; budget++) {
		rxp_arena_init(&a, mem, sizeof(mem));
		cur = a.cur;
		c = poison;
		rxp__alloc_fail_after(budget);
		ret = rxp_codec_call_decode(b, len, 2, s.lens, &a, &c);
		rxp__alloc_fail_after(-1);
		if (!ret)
			break;
		assert_int_equal(ret, -ENOMEM);
		assert_memory_equal(&c, &poison, sizeof(c));
		assert_ptr_equal(a.cur, cur);
		rxp_arena_fini(&a);
	}
	assert_true(budget >= 3); /* several chunks were needed */
	for (i = 0; i < RXP_ARRAY_SIZE(big); i++)
		assert_true(rxp_value_equal(&c.args[i], &big[i]));
	rxp_arena_fini(&a);
	free(b);
}

/* The same for a response whose profile needs arena chunks. */
static void test_decode_resp_enomem_sweep(void **state)
{
	struct rxp_prof_wire_event ev[300];
	struct rxp_resp_ext x = {.has_prof = 1, .nevents = 300, .events = ev};
	struct rxp_decoded_resp r, poison;
	struct rxp_arena a;
	char mem[128];
	size_t len, i;
	uint8_t *b;
	long budget;
	int ret;

	for (i = 0; i < RXP_ARRAY_SIZE(ev); i++) {
		ev[i].name = "op";
		ev[i].name_len = 2;
		ev[i].start_ns = (int64_t)i;
		ev[i].end_ns = (int64_t)i * 2;
	}
	b = enc_error_ext_exact(-5, "e", &x, &len);
	memset(&poison, 0x3c, sizeof(poison));
	for (budget = 0;; budget++) {
		rxp_arena_init(&a, mem, sizeof(mem));
		r = poison;
		rxp__alloc_fail_after(budget);
		ret = rxp_codec_resp_decode(b, len, 0, NULL, &a, &r);
		rxp__alloc_fail_after(-1);
		if (!ret)
			break;
		assert_int_equal(ret, -ENOMEM);
		assert_memory_equal(&r, &poison, sizeof(r));
		rxp_arena_fini(&a);
	}
	assert_true(budget >= 1);
	assert_true(ext_equal(&r.ext, &x));
	rxp_arena_fini(&a);
	free(b);
}

/* ------------------------------------------ random round trips */

struct gen {
	uint64_t x;
	struct rxp_arena *a;
	unsigned budget;
};

static uint64_t gen_next(struct gen *g)
{
	g->x ^= g->x << 13;
	g->x ^= g->x >> 7;
	g->x ^= g->x << 17;
	return g->x;
}

static unsigned gen_below(struct gen *g, unsigned n)
{
	return (unsigned)(gen_next(g) % n);
}

static const char *gen_str(struct gen *g, uint32_t *len)
{
	uint32_t n = gen_below(g, 20), i;
	char *s = rxp_arena_alloc(g->a, n + 1, 1);

	assert_non_null(s);
	for (i = 0; i < n; i++)
		s[i] = (char)(1 + gen_below(g, 255));
	s[n] = 0;
	*len = n;
	return s;
}

static void gen_value(struct gen *g, struct rxp_value *v, unsigned depth)
{
	static const int dts[] = {RXP_DT_U8,  RXP_DT_I32,  RXP_DT_F16,
				  RXP_DT_F64, RXP_DT_C128, RXP_DT_BOOL};
	/* 0..5 scalars and tensors, 6 an RRef, 7..9 containers */
	unsigned kind = gen_below(g, depth < 6 && g->budget ? 10 : 7), i, n;
	struct rxp_rref_desc *rd;
	int64_t *dims;
	uint64_t bits;

	if (kind == 6)
		kind = RXP_V_RREF;
	else if (kind > 6)
		kind--; /* RXP_V_LIST.. */
	switch (kind) {
	case RXP_V_NONE:
		*v = rxp_v_none();
		break;
	case RXP_V_BOOL:
		*v = rxp_v_bool(gen_below(g, 2));
		break;
	case RXP_V_INT:
		*v = rxp_v_int((int64_t)gen_next(g));
		break;
	case RXP_V_DOUBLE:
		bits = gen_next(g);
		memcpy(&v->u.d, &bits, 8);
		v->kind = RXP_V_DOUBLE;
		break;
	case RXP_V_STRING:
		v->kind = RXP_V_STRING;
		v->u.str.ptr = gen_str(g, &v->u.str.len);
		break;
	case RXP_V_TENSOR:
		n = gen_below(g, 5);
		dims = rxp_arena_alloc(g->a, 16 * (n + 1), 8);
		assert_non_null(dims);
		for (i = 0; i < 2 * n; i++)
			dims[i] = gen_below(g, 4);
		*v = rxp_v_tensor(dts[gen_below(g, 6)], n, dims,
				  gen_below(g, 3) ? dims + n : NULL,
				  gen_below(g, 3), 0);
		v->u.tensor.offset =
			gen_below(g, 8) * rxp_dtype_size(v->u.tensor.dtype);
		break;
	case RXP_V_RREF:
		rd = rxp_arena_alloc(g->a, sizeof(*rd), 8);
		assert_non_null(rd);
		memset(rd, 0, sizeof(*rd));
		rd->owner = (uint32_t)gen_next(g);
		rd->parent = (uint32_t)gen_next(g);
		rd->rref.creator = (uint32_t)gen_next(g);
		rd->rref.local = gen_next(g);
		rd->fork.creator = (uint32_t)gen_next(g);
		rd->fork.local = gen_next(g);
		*v = rxp_v_rref(NULL);
		v->u.rref.desc = rd;
		break;
	default:
		n = gen_below(g, 5);
		g->budget = g->budget > n ? g->budget - n : 0;
		if (kind == RXP_V_DICT) {
			struct rxp_dict_entry *e =
				rxp_arena_alloc(g->a, n * sizeof(*e) + 1, 8);

			assert_non_null(e);
			for (i = 0; i < n; i++) {
				e[i].key = gen_str(g, &e[i].key_len);
				gen_value(g, &e[i].value, depth + 1);
			}
			*v = rxp_v_dict(n ? e : NULL, n);
		} else {
			struct rxp_value *it =
				rxp_arena_alloc(g->a, n * sizeof(*it) + 1, 8);

			assert_non_null(it);
			for (i = 0; i < n; i++)
				gen_value(g, &it[i], depth + 1);
			*v = kind == RXP_V_LIST ? rxp_v_list(n ? it : NULL, n)
						: rxp_v_tuple(n ? it : NULL, n);
		}
	}
}

/* Each record present or not, at random. */
static void gen_meta(struct gen *g, struct rxp_call_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->flags = (uint32_t)gen_next(g);
	if (gen_below(g, 2)) {
		m->has_autograd = 1;
		m->autograd_ctx_id = (int64_t)gen_next(g);
		m->autograd_msg_id = (int64_t)gen_next(g);
		m->force_grad_recording = (int)gen_below(g, 2);
	}
	m->profiling = (int)gen_below(g, 2);
	if (gen_below(g, 2)) {
		m->has_rref = 1;
		m->rref_id.creator = (uint32_t)gen_next(g);
		m->rref_id.local = gen_next(g);
		m->fork_id.creator = (uint32_t)gen_next(g);
		m->fork_id.local = gen_next(g);
	}
}

static void gen_ext(struct gen *g, struct rxp_resp_ext *x)
{
	struct rxp_prof_wire_event *ev;
	uint32_t i, n = gen_below(g, 6);

	memset(x, 0, sizeof(*x));
	if (!gen_below(g, 3))
		return;
	ev = rxp_arena_alloc(g->a, (n + 1) * sizeof(*ev), 8);
	assert_non_null(ev);
	for (i = 0; i < n; i++) {
		ev[i].name = gen_str(g, &ev[i].name_len);
		ev[i].start_ns =
			(int64_t)(gen_next(g) >> 2) - (INT64_C(1) << 61);
		ev[i].end_ns = ev[i].start_ns + (int64_t)gen_below(g, 1000);
	}
	x->has_prof = 1;
	x->t_recv_ns = (int64_t)gen_next(g);
	x->t_done_ns = (int64_t)gen_next(g);
	x->nevents = n;
	x->events = n ? ev : NULL;
}

/* A random value response (or error) with a random profile. */
static void resp_roundtrip(struct gen *g, const struct rxp_value *v,
			   const uint64_t *lens, uint64_t seed)
{
	struct rxp_decoded_resp r;
	struct rxp_resp_ext x;
	struct rxp_arena da;
	size_t len, len2;
	uint8_t *b, *b2;
	bool err = !v;

	gen_ext(g, &x);
	b = err ? enc_error_ext_exact(-1 - (int32_t)gen_below(g, 200), "e", &x,
				      &len)
		: enc_value_ext_exact(v, 3, &x, &len);
	rxp_arena_init(&da, NULL, 0);
	if (rxp_codec_resp_decode(b, len, 3, lens, &da, &r))
		fail_msg("seed %" PRIu64 ": response decode failed", seed);
	if (!ext_equal(&r.ext, &x) || (!err && !rxp_value_equal(r.value, v)))
		fail_msg("seed %" PRIu64 ": response differs", seed);
	b2 = err ? enc_error_ext_exact(r.err_code, r.err_msg, &r.ext, &len2)
		 : enc_value_ext_exact(r.value, 3, &r.ext, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(b2, b, len);
	free(b2);
	free(b);
	rxp_arena_fini(&da);
}

static void test_random_trees_roundtrip_canonically(void **state)
{
	const uint64_t lens[3] = {1u << 20, 1u << 20, 1u << 20};
	struct rxp_value args[4];
	struct rxp_decoded_call c;
	struct rxp_call_meta m;
	struct rxp_arena ga, da;
	struct gen g;
	uint64_t seed;
	size_t len, len2;
	uint8_t *b, *b2;
	unsigned i, n;

	for (seed = 1; seed <= 500; seed++) {
		rxp_arena_init(&ga, NULL, 0);
		g.x = seed * 0x9e3779b97f4a7c15ull;
		g.a = &ga;
		g.budget = 60;
		n = gen_below(&g, 5);
		for (i = 0; i < n; i++)
			gen_value(&g, &args[i], 0);
		gen_meta(&g, &m);
		b = enc_call_exact("rand.fn", args, n, 3, &m, &len);
		rxp_arena_init(&da, NULL, 0);
		if (rxp_codec_call_decode(b, len, 3, lens, &da, &c))
			fail_msg("seed %" PRIu64 ": decode failed", seed);
		assert_int_equal(c.nargs, n);
		for (i = 0; i < n; i++)
			if (!rxp_value_equal(&c.args[i], &args[i]))
				fail_msg("seed %" PRIu64 ": arg %u differs",
					 seed, i);
		if (!meta_equal(&c.meta, &m))
			fail_msg("seed %" PRIu64 ": meta differs", seed);
		/* decode(encode(x)) re-encodes to the same bytes */
		b2 = enc_call_exact(c.name, c.args, c.nargs, 3, &c.meta, &len2);
		assert_int_equal(len2, len);
		assert_memory_equal(b2, b, len);
		free(b2);
		free(b);
		rxp_arena_fini(&da);
		resp_roundtrip(&g, n ? &args[0] : NULL, lens, seed);
		rxp_arena_fini(&ga);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tiny_call_roundtrip_allocates_nothing),
		cmocka_unit_test(test_call_roundtrip_every_kind),
		cmocka_unit_test(test_contiguous_strides_on_the_wire),
		cmocka_unit_test(test_value_roundtrip_each_kind),
		cmocka_unit_test(test_error_roundtrip),
		cmocka_unit_test(test_max_depth_ok_and_one_more_rejected),
		cmocka_unit_test(test_max_items),
		cmocka_unit_test(test_rref_roundtrip),
		cmocka_unit_test(test_rref_encoder_checks),
		cmocka_unit_test(test_call_rref_ids_roundtrip),
		cmocka_unit_test(test_profile_ext_roundtrip),
		cmocka_unit_test(test_profile_ext_encoder_checks),
		cmocka_unit_test(test_encoder_rejects_malformed_trees),
		cmocka_unit_test(test_encoder_checks_name_and_args),
		cmocka_unit_test(test_encode_never_writes_past_cap),
		cmocka_unit_test(test_decode_argument_errors),
		cmocka_unit_test(test_decode_enomem_sweep),
		cmocka_unit_test(test_decode_resp_enomem_sweep),
		cmocka_unit_test(test_random_trees_roundtrip_canonically),
	};

	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
