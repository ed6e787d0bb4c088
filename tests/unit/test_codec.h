/* SPDX-License-Identifier: MIT */
/*
 * Shared fixtures of the codec tests: a byte builder for hand-made wire
 * messages, a sample call that uses every value kind, and helpers that
 * encode into exactly-sized heap buffers (so ASan sees any overread).
 */
#ifndef RXP_TEST_CODEC_H
#define RXP_TEST_CODEC_H

#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <cmocka.h>

#include "codec.h"
#include "rxp_util.h"

/* Wire constants, restated from docs/codec.md (tests must not trust the
 * implementation's own). */
#define W_MAGIC 0x43505852u
#define W_CALL 1
#define W_VALUE 2
#define W_ERROR 3
#define W_EXT_AUTOGRAD 1 /* call records */
#define W_EXT_PROFILING 2
#define W_EXT_RREF 3
#define W_EXT_PROFILE 1 /* response records */
#define W_RREF_BODY 40	/* owner, parent, rref id, fork id */

/* ---------------------------------------------------- byte builder */

struct wb {
	uint8_t *b;
	size_t n, cap;
};

static inline void wb_raw(struct wb *w, const void *p, size_t n)
{
	if (w->n + n > w->cap) {
		w->cap = (w->n + n) * 2 + 64;
		w->b = realloc(w->b, w->cap);
		assert_non_null(w->b);
	}
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

/* Little-endian stores (tests run on little-endian hosts; checked in
 * test_codec.c by decoding a hand-made message). */
static inline void wb_u8(struct wb *w, uint8_t v)
{
	wb_raw(w, &v, 1);
}

static inline void wb_u16(struct wb *w, uint16_t v)
{
	wb_raw(w, &v, 2);
}

static inline void wb_u32(struct wb *w, uint32_t v)
{
	wb_raw(w, &v, 4);
}

static inline void wb_u64(struct wb *w, uint64_t v)
{
	wb_raw(w, &v, 8);
}

static inline void wb_str(struct wb *w, const char *s)
{
	uint32_t n = (uint32_t)strlen(s);

	wb_u32(w, n);
	wb_raw(w, s, n + 1);
}

static inline void wb_hdr(struct wb *w, uint8_t kind)
{
	wb_u32(w, W_MAGIC);
	wb_u8(w, RXP_CODEC_VERSION);
	wb_u8(w, kind);
	wb_u16(w, 0);
}

/* Header, flags 0, name, nargs: the start of a call. */
static inline void wb_call(struct wb *w, const char *name, uint32_t nargs)
{
	wb_hdr(w, W_CALL);
	wb_u32(w, 0);
	wb_str(w, name);
	wb_u32(w, nargs);
}

static inline void wb_tensor(struct wb *w, uint8_t dtype, uint8_t ndim,
			     uint32_t storage, uint64_t offset,
			     const int64_t *shape, const int64_t *strides)
{
	wb_u8(w, RXP_V_TENSOR);
	wb_u8(w, dtype);
	wb_u8(w, ndim);
	wb_u32(w, storage);
	wb_u64(w, offset);
	for (unsigned k = 0; k < ndim; k++)
		wb_u64(w, (uint64_t)shape[k]);
	for (unsigned k = 0; k < ndim; k++)
		wb_u64(w, (uint64_t)strides[k]);
}

/* u32 creator, u32 reserved, u64 local */
static inline void wb_rref_id(struct wb *w, uint32_t creator, uint32_t reserved,
			      uint64_t local)
{
	wb_u32(w, creator);
	wb_u32(w, reserved);
	wb_u64(w, local);
}

static inline void wb_free(struct wb *w)
{
	free(w->b);
	memset(w, 0, sizeof(*w));
}

/* ---------------------------------------------------- sample call */

#define SAMPLE_NARGS 18
#define SAMPLE_NEVENTS 3

struct sample {
	int64_t sh23[2], sh32[2], st32[2], sh05[2], sh4[1], st0[1];
	struct rxp_value l1[3], l2[2], t2[2], d3[1], empty[1], lr[2];
	struct rxp_dict_entry ents[3], rent[1];
	struct rxp_rref_desc desc[2];
	struct rxp_value args[SAMPLE_NARGS];
	uint64_t lens[2];
	struct rxp_call_meta meta;
	struct rxp_prof_wire_event ev[SAMPLE_NEVENTS];
	struct rxp_resp_ext ext; /* a profile with SAMPLE_NEVENTS events */
};

/* Every kind, nested containers, empty string/list/dict/tuple, NaN and
 * -0.0, contiguous, transposed, 0-dim, empty and broadcast tensors, RRefs
 * at the top and nested; every call record; a response profile. */
static inline void sample_init(struct sample *s)
{
	static const int64_t sh23[2] = {2, 3}, sh32[2] = {3, 2};
	static const int64_t st32[2] = {1, 3}, sh05[2] = {0, 5};
	double nan_payload;
	uint64_t bits = 0x7ff8000000001234ull;

	memset(s, 0, sizeof(*s));
	memcpy(s->sh23, sh23, sizeof(sh23));
	memcpy(s->sh32, sh32, sizeof(sh32));
	memcpy(s->st32, st32, sizeof(st32));
	memcpy(s->sh05, sh05, sizeof(sh05));
	s->sh4[0] = 4;
	s->st0[0] = 0;
	memcpy(&nan_payload, &bits, 8);

	s->t2[0] = rxp_v_none();
	s->t2[1] = rxp_v_double(1.5);
	s->l2[0] = rxp_v_str("x");
	s->l2[1] = rxp_v_tuple(s->t2, 2);
	s->l1[0] = rxp_v_int(1);
	s->l1[1] = rxp_v_list(s->l2, 2);
	s->l1[2] = rxp_v_dict(NULL, 0);
	s->d3[0] = rxp_v_tensor(RXP_DT_BF16, 1, s->sh4, s->st0, 1, 2);
	s->ents[0].key = "a";
	s->ents[0].key_len = 1;
	s->ents[0].value = rxp_v_int(1);
	s->ents[1].key = "";
	s->ents[1].key_len = 0;
	s->ents[1].value = rxp_v_list(s->empty, 0);
	s->ents[2].key = "key";
	s->ents[2].key_len = 3;
	s->ents[2].value = rxp_v_tuple(s->d3, 1);

	s->args[0] = rxp_v_int(42);
	s->args[1] = rxp_v_int(INT64_MIN);
	s->args[2] = rxp_v_double(nan_payload);
	s->args[3] = rxp_v_double(-0.0);
	s->args[4] = rxp_v_str("hello");
	s->args[5] = rxp_v_str("");
	s->args[6] = rxp_v_bool(true);
	s->args[7] = rxp_v_bool(false);
	s->args[8] = rxp_v_none();
	s->args[9] = rxp_v_tensor(RXP_DT_F32, 2, s->sh23, NULL, 0, 0);
	s->args[10] = rxp_v_tensor(RXP_DT_F32, 2, s->sh32, s->st32, 0, 0);
	s->args[11] = rxp_v_tensor(RXP_DT_I64, 0, NULL, NULL, 1, 8);
	s->args[12] = rxp_v_tensor(RXP_DT_F64, 2, s->sh05, NULL, 1, 16);
	s->args[13] = rxp_v_list(s->l1, 3);
	s->args[14] = rxp_v_dict(s->ents, 3);
	s->args[15] = rxp_v_tuple(NULL, 0);

	s->desc[0].owner = 1;
	s->desc[0].parent = 2;
	s->desc[0].rref.creator = 1;
	s->desc[0].rref.local = 77;
	s->desc[0].fork.creator = 2;
	s->desc[0].fork.local = UINT64_MAX;
	s->desc[1].owner = UINT32_MAX;
	s->desc[1].rref.local = 1;
	s->args[16] = rxp_v_rref(NULL);
	s->args[16].u.rref.desc = &s->desc[0];
	s->lr[0] = rxp_v_rref(NULL);
	s->lr[0].u.rref.desc = &s->desc[1];
	s->rent[0].key = "r";
	s->rent[0].key_len = 1;
	s->rent[0].value = s->args[16];
	s->lr[1] = rxp_v_dict(s->rent, 1);
	s->args[17] = rxp_v_list(s->lr, 2);

	s->lens[0] = 24; /* exactly the 2x3 float32 tensors */
	s->lens[1] = 64;
	s->meta.flags = RXP_CALL_ASYNC_EXEC;
	s->meta.has_autograd = 1;
	s->meta.autograd_ctx_id = 7;
	s->meta.autograd_msg_id = -3;
	s->meta.force_grad_recording = 1;
	s->meta.profiling = 1;
	s->meta.has_rref = 1;
	s->meta.rref_id.creator = 3;
	s->meta.rref_id.local = 1000;
	s->meta.fork_id.creator = 4;
	s->meta.fork_id.local = (uint64_t)1 << 63;

	s->ev[0].name = "forward";
	s->ev[0].name_len = 7;
	s->ev[0].start_ns = 100;
	s->ev[0].end_ns = 250;
	s->ev[1].name = "";
	s->ev[1].start_ns = -5;
	s->ev[1].end_ns = -5;
	s->ev[2].name = "aten::add";
	s->ev[2].name_len = 9;
	s->ev[2].start_ns = INT64_MIN;
	s->ev[2].end_ns = INT64_MAX;
	s->ext.has_prof = 1;
	s->ext.t_recv_ns = 90;
	s->ext.t_done_ns = 300;
	s->ext.nevents = SAMPLE_NEVENTS;
	s->ext.events = s->ev;
}

/* ---------------------------------------------------- comparisons */

static inline bool rref_id_eq(const struct rxp_rref_id *a,
			      const struct rxp_rref_id *b)
{
	return a->creator == b->creator && a->reserved == b->reserved &&
	       a->local == b->local;
}

/* Field by field (the struct has padding). */
static inline bool meta_equal(const struct rxp_call_meta *a,
			      const struct rxp_call_meta *b)
{
	return a->flags == b->flags && a->has_autograd == b->has_autograd &&
	       a->autograd_ctx_id == b->autograd_ctx_id &&
	       a->autograd_msg_id == b->autograd_msg_id &&
	       a->force_grad_recording == b->force_grad_recording &&
	       a->profiling == b->profiling && a->has_rref == b->has_rref &&
	       rref_id_eq(&a->rref_id, &b->rref_id) &&
	       rref_id_eq(&a->fork_id, &b->fork_id);
}

static inline bool ext_equal(const struct rxp_resp_ext *a,
			     const struct rxp_resp_ext *b)
{
	uint32_t i;

	if (!!a->has_prof != !!b->has_prof)
		return false;
	if (!a->has_prof)
		return true;
	if (a->t_recv_ns != b->t_recv_ns || a->t_done_ns != b->t_done_ns ||
	    a->nevents != b->nevents)
		return false;
	for (i = 0; i < a->nevents; i++) {
		const struct rxp_prof_wire_event *x = &a->events[i];
		const struct rxp_prof_wire_event *y = &b->events[i];

		if (x->name_len != y->name_len ||
		    (x->name_len && memcmp(x->name, y->name, x->name_len)) ||
		    x->start_ns != y->start_ns || x->end_ns != y->end_ns)
			return false;
	}
	return true;
}

/* -------------------------------------------- exact-size encodings */

static inline void *dup_exact(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	assert_non_null(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

/* Encode a call into a malloc'd buffer of exactly its size. */
static inline uint8_t *enc_call_exact(const char *name,
				      const struct rxp_value *args,
				      uint32_t nargs, uint32_t nstorages,
				      const struct rxp_call_meta *meta,
				      size_t *len)
{
	int64_t n = rxp_codec_call_size(name, args, nargs, nstorages, meta);
	uint8_t *b;

	assert_true(n > 0);
	b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(rxp_codec_call_encode(name, args, nargs, nstorages,
					       meta, b, (size_t)n),
			 n);
	*len = (size_t)n;
	return b;
}

/* Responses with extensions (@ext may be NULL). */
static inline uint8_t *enc_value_ext_exact(const struct rxp_value *v,
					   uint32_t nstorages,
					   const struct rxp_resp_ext *ext,
					   size_t *len)
{
	int64_t n = rxp_codec_value_size_ext(v, nstorages, ext);
	uint8_t *b;

	assert_true(n > 0);
	b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(
		rxp_codec_value_encode_ext(v, nstorages, ext, b, (size_t)n), n);
	*len = (size_t)n;
	return b;
}

static inline uint8_t *enc_error_ext_exact(int32_t code, const char *msg,
					   const struct rxp_resp_ext *ext,
					   size_t *len)
{
	int64_t n = rxp_codec_error_size_ext(code, msg, ext);
	uint8_t *b;

	assert_true(n > 0);
	b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(
		rxp_codec_error_encode_ext(code, msg, ext, b, (size_t)n), n);
	*len = (size_t)n;
	return b;
}

/* The plain ones (also check that they match the _ext ones with NULL). */
static inline uint8_t *enc_value_exact(const struct rxp_value *v,
				       uint32_t nstorages, size_t *len)
{
	int64_t n = rxp_codec_value_size(v, nstorages);
	uint8_t *b, *x;
	size_t xlen;

	assert_true(n > 0);
	b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(rxp_codec_value_encode(v, nstorages, b, (size_t)n), n);
	x = enc_value_ext_exact(v, nstorages, NULL, &xlen);
	assert_int_equal(xlen, n);
	assert_memory_equal(x, b, xlen);
	free(x);
	*len = (size_t)n;
	return b;
}

static inline uint8_t *enc_error_exact(int32_t code, const char *msg,
				       size_t *len)
{
	int64_t n = rxp_codec_error_size(code, msg);
	uint8_t *b, *x;
	size_t xlen;

	assert_true(n > 0);
	b = malloc((size_t)n);
	assert_non_null(b);
	assert_int_equal(rxp_codec_error_encode(code, msg, b, (size_t)n), n);
	x = enc_error_ext_exact(code, msg, NULL, &xlen);
	assert_int_equal(xlen, n);
	assert_memory_equal(x, b, xlen);
	free(x);
	*len = (size_t)n;
	return b;
}

/* Decode a call from a copy of @p[0..n) in an exactly-sized buffer. */
static inline int dec_call_copy(const void *p, size_t n, uint32_t nstorages,
				const uint64_t *lens)
{
	char mem[1024];
	struct rxp_arena a;
	struct rxp_decoded_call c;
	void *b = dup_exact(p, n);
	int ret;

	rxp_arena_init(&a, mem, sizeof(mem));
	ret = rxp_codec_call_decode(b, n, nstorages, lens, &a, &c);
	rxp_arena_fini(&a);
	free(b);
	return ret;
}

static inline int dec_resp_copy(const void *p, size_t n, uint32_t nstorages,
				const uint64_t *lens)
{
	char mem[1024];
	struct rxp_arena a;
	struct rxp_decoded_resp r;
	void *b = dup_exact(p, n);
	int ret;

	rxp_arena_init(&a, mem, sizeof(mem));
	ret = rxp_codec_resp_decode(b, n, nstorages, lens, &a, &r);
	rxp_arena_fini(&a);
	free(b);
	return ret;
}

#endif
