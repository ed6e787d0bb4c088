/* SPDX-License-Identifier: MIT */
/*
 * Value codec, decoder: payload bytes -> calls and responses.
 * The wire format and the validation rules are specified in docs/codec.md;
 * keep the two in step.
 *
 * Decoding is one forward pass over the payload; every read is
 * bounds-checked first, every count is checked against the bytes left
 * before anything is allocated for it.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "codec_wire.h"

#define DECODE_ERR (-RXP_E_DECODE)

struct dec {
	const uint8_t *p, *end;
	struct rxp_arena *arena;
	const uint64_t *lens;
	uint32_t nstorages;
	uint32_t items; /* values announced so far (counts, nargs) */
};

static inline size_t dec_left(const struct dec *d)
{
	return (size_t)(d->end - d->p);
}

static int dec_u32(struct dec *d, uint32_t *v)
{
	if (dec_left(d) < 4)
		return DECODE_ERR;
	*v = ld_u32(d->p);
	d->p += 4;
	return 0;
}

/* u32 len, len bytes without NUL, then a NUL. Points into the payload. */
static int dec_str(struct dec *d, const char **s, uint32_t *len)
{
	uint32_t n;

	if (dec_u32(d, &n) || n >= dec_left(d) || d->p[n] || memchr(d->p, 0, n))
		return DECODE_ERR;
	*s = (const char *)d->p;
	*len = n;
	d->p += (size_t)n + 1;
	return 0;
}

static int dec_tensor(struct dec *d, struct rxp_tensor *t)
{
	const uint8_t *r = d->p;
	uint64_t es, cap;
	int64_t *dims, span;
	uint32_t k;

	if (dec_left(d) < TENSOR_FIXED - 1)
		return DECODE_ERR;
	t->dtype = r[0];
	t->ndim = r[1];
	t->storage = ld_u32(r + 2);
	t->offset = ld_u64(r + 6);
	d->p += TENSOR_FIXED - 1;
	es = rxp_dtype_size(t->dtype);
	if (!es || t->ndim > RXP_MAX_DIMS || t->storage >= d->nstorages ||
	    dec_left(d) < 16 * (size_t)t->ndim || t->offset % es)
		return DECODE_ERR;
	t->shape = t->strides = NULL;
	if (t->ndim) {
		dims = rxp_arena_alloc(d->arena, 16 * (size_t)t->ndim,
				       alignof(int64_t));
		if (!dims)
			return -ENOMEM;
		for (k = 0; k < 2 * t->ndim; k++, d->p += 8)
			dims[k] = (int64_t)ld_u64(d->p);
		t->shape = dims;
		t->strides = dims + t->ndim;
	}
	span = rxp_tensor_span(t);
	cap = d->lens[t->storage];
	if (span < 0 || t->offset > cap || (uint64_t)span > cap - t->offset)
		return DECODE_ERR;
	return 0;
}

/* u32 creator, u32 reserved (must be 0), u64 local; @r has 16 bytes. */
static int ld_rref_id(const uint8_t *r, struct rxp_rref_id *id)
{
	id->creator = ld_u32(r);
	id->reserved = ld_u32(r + 4);
	id->local = ld_u64(r + 8);
	return id->reserved ? DECODE_ERR : 0;
}

/* After the tag: the descriptor, copied into the arena; no handle yet. */
static int dec_rref(struct dec *d, struct rxp_value *v)
{
	struct rxp_rref_desc *desc;
	const uint8_t *r = d->p;

	if (dec_left(d) < RREF_BODY)
		return DECODE_ERR;
	desc = rxp_arena_alloc(d->arena, sizeof(*desc),
			       alignof(struct rxp_rref_desc));
	if (!desc)
		return -ENOMEM;
	desc->owner = ld_u32(r);
	desc->parent = ld_u32(r + 4);
	if (ld_rref_id(r + 8, &desc->rref) ||
	    ld_rref_id(r + 8 + RREF_ID_SIZE, &desc->fork))
		return DECODE_ERR;
	d->p += RREF_BODY;
	v->u.rref.ref = NULL;
	v->u.rref.desc = desc;
	return 0;
}

static int dec_value(struct dec *d, struct rxp_value *v, unsigned depth);

/* After the tag: u32 count, then items or (key, value) entries. */
static int dec_container(struct dec *d, struct rxp_value *v, unsigned depth)
{
	bool dict = v->kind == RXP_V_DICT;
	size_t elem =
		dict ? sizeof(struct rxp_dict_entry) : sizeof(struct rxp_value);
	struct rxp_dict_entry *de = NULL;
	struct rxp_value *it = NULL;
	uint32_t i, n;
	void *arr = NULL;
	int ret;

	if (depth >= RXP_CODEC_MAX_DEPTH || dec_u32(d, &n) ||
	    n > dec_left(d) / (dict ? MIN_ENTRY : MIN_VALUE) ||
	    n > RXP_CODEC_MAX_ITEMS - d->items)
		return DECODE_ERR;
	d->items += n;
	if (n) {
		arr = rxp_arena_alloc(d->arena, n * elem,
				      dict ? alignof(struct rxp_dict_entry)
					   : alignof(struct rxp_value));
		if (!arr)
			return -ENOMEM;
	}
	if (dict) {
		de = arr;
		v->u.dict.items = de;
		v->u.dict.n = n;
	} else {
		it = arr;
		v->u.list.items = it;
		v->u.list.n = n;
	}
	for (i = 0; i < n; i++) {
		if (dict) {
			ret = dec_str(d, &de[i].key, &de[i].key_len);
			if (!ret)
				ret = dec_value(d, &de[i].value, depth + 1);
		} else {
			ret = dec_value(d, &it[i], depth + 1);
		}
		if (ret)
			return ret;
	}
	return 0;
}

static int dec_value(struct dec *d, struct rxp_value *v, unsigned depth)
{
	uint64_t bits;
	uint8_t tag;

	if (!dec_left(d))
		return DECODE_ERR;
	tag = *d->p++;
	memset(v, 0, sizeof(*v));
	v->kind = tag;
	switch (tag) {
	case RXP_V_NONE:
		return 0;
	case RXP_V_BOOL:
		if (!dec_left(d) || *d->p > 1)
			return DECODE_ERR;
		v->u.b = *d->p++;
		return 0;
	case RXP_V_INT:
	case RXP_V_DOUBLE:
		if (dec_left(d) < 8)
			return DECODE_ERR;
		bits = ld_u64(d->p);
		d->p += 8;
		if (tag == RXP_V_INT)
			v->u.i = (int64_t)bits;
		else
			memcpy(&v->u.d, &bits, 8);
		return 0;
	case RXP_V_STRING:
		return dec_str(d, &v->u.str.ptr, &v->u.str.len);
	case RXP_V_TENSOR:
		return dec_tensor(d, &v->u.tensor);
	case RXP_V_LIST:
	case RXP_V_TUPLE:
	case RXP_V_DICT:
		return dec_container(d, v, depth);
	case RXP_V_RREF:
		return dec_rref(d, v);
	default:
		return DECODE_ERR;
	}
}

static int dec_header(struct dec *d, enum wire_kind kind)
{
	const uint8_t *r = d->p;

	if (dec_left(d) < HDR_SIZE || ld_u32(r) != WIRE_MAGIC ||
	    r[4] != RXP_CODEC_VERSION || r[5] != kind || ld_u16(r + 6))
		return DECODE_ERR;
	d->p += HDR_SIZE;
	return 0;
}

/* ------------------------------------------------------- extensions */

/* A known call record @type, body @r[0..len). */
static int dec_call_rec(struct rxp_call_meta *m, uint16_t type,
			const uint8_t *r, uint32_t len)
{
	switch (type) {
	case EXT_AUTOGRAD:
		if (len != EXT_AUTOGRAD_LEN || r[16] > 1)
			return DECODE_ERR;
		m->has_autograd = 1;
		m->autograd_ctx_id = (int64_t)ld_u64(r);
		m->autograd_msg_id = (int64_t)ld_u64(r + 8);
		m->force_grad_recording = r[16];
		return 0;
	case EXT_PROFILING:
		if (len)
			return DECODE_ERR;
		m->profiling = 1;
		return 0;
	default: /* EXT_RREF */
		if (len != EXT_RREF_LEN || ld_rref_id(r, &m->rref_id) ||
		    ld_rref_id(r + RREF_ID_SIZE, &m->fork_id))
			return DECODE_ERR;
		m->has_rref = 1;
		return 0;
	}
}

/* The profile record: a sub-decoder over exactly its @len bytes. */
static int dec_profile(struct dec *d, struct rxp_resp_ext *x, const uint8_t *r,
		       uint32_t len)
{
	struct dec s = {.p = r, .end = r + len, .arena = d->arena};
	struct rxp_prof_wire_event *ev = NULL;
	uint32_t i, n;
	int ret;

	if (len < PROF_FIXED)
		return DECODE_ERR;
	x->t_recv_ns = (int64_t)ld_u64(r);
	x->t_done_ns = (int64_t)ld_u64(r + 8);
	n = ld_u32(r + 16);
	s.p += PROF_FIXED;
	if (n > RXP_CODEC_MAX_PROF_EVENTS || n > dec_left(&s) / PROF_MIN_EVENT)
		return DECODE_ERR;
	if (n) {
		ev = rxp_arena_alloc(d->arena, n * sizeof(*ev),
				     alignof(struct rxp_prof_wire_event));
		if (!ev)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		ret = dec_str(&s, &ev[i].name, &ev[i].name_len);
		if (ret || dec_left(&s) < 16)
			return DECODE_ERR;
		ev[i].start_ns = (int64_t)ld_u64(s.p);
		ev[i].end_ns = (int64_t)ld_u64(s.p + 8);
		s.p += 16;
		if (ev[i].end_ns < ev[i].start_ns)
			return DECODE_ERR;
	}
	if (s.p != s.end)
		return DECODE_ERR; /* the record has exactly its length */
	x->has_prof = 1;
	x->nevents = n;
	x->events = ev;
	return 0;
}

/*
 * The extension block of a call (@meta) or a response (@x). Unknown
 * types are skipped unless critical; known ones appear at most once.
 */
static int dec_ext(struct dec *d, struct rxp_call_meta *meta,
		   struct rxp_resp_ext *x)
{
	unsigned seen = 0;
	uint16_t n, type;
	const uint8_t *r;
	uint32_t len;
	bool known;
	int ret;

	if (dec_left(d) < 2)
		return DECODE_ERR;
	n = ld_u16(d->p);
	d->p += 2;
	while (n--) {
		if (dec_left(d) < EXT_HDR)
			return DECODE_ERR;
		type = ld_u16(d->p);
		len = ld_u32(d->p + 2);
		d->p += EXT_HDR;
		if (len > dec_left(d))
			return DECODE_ERR;
		r = d->p;
		d->p += len;
		known = meta ? type >= EXT_AUTOGRAD && type <= EXT_RREF
			     : type == EXT_PROFILE;
		if (!known) {
			if (type & EXT_CRITICAL)
				return DECODE_ERR;
			continue;
		}
		if (seen & (1u << type))
			return DECODE_ERR; /* duplicate */
		seen |= 1u << type;
		ret = meta ? dec_call_rec(meta, type, r, len)
			   : dec_profile(d, x, r, len);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---------------------------------------------------------- messages */

static int dec_call(struct dec *d, struct rxp_decoded_call *c)
{
	struct rxp_value *args = NULL;
	uint32_t i;
	int ret;

	if (dec_header(d, WIRE_CALL) || dec_u32(d, &c->meta.flags) ||
	    dec_str(d, &c->name, &c->name_len) || !c->name_len ||
	    c->name_len > RXP_CODEC_MAX_NAME || dec_u32(d, &c->nargs) ||
	    c->nargs > dec_left(d) / MIN_VALUE ||
	    c->nargs > RXP_CODEC_MAX_ITEMS)
		return DECODE_ERR;
	d->items = c->nargs;
	if (c->nargs) {
		args = rxp_arena_alloc(d->arena,
				       c->nargs * sizeof(struct rxp_value),
				       alignof(struct rxp_value));
		if (!args)
			return -ENOMEM;
	}
	for (i = 0; i < c->nargs; i++) {
		ret = dec_value(d, &args[i], 0);
		if (ret)
			return ret;
	}
	c->args = args;
	return dec_ext(d, &c->meta, NULL);
}

static int dec_resp(struct dec *d, struct rxp_decoded_resp *r)
{
	struct rxp_value *v;
	uint32_t len, code;
	int ret;

	if (dec_left(d) < HDR_SIZE)
		return DECODE_ERR;
	if (d->p[5] == WIRE_RESP_ERROR) {
		if (dec_header(d, WIRE_RESP_ERROR) || dec_u32(d, &code) ||
		    (int32_t)code >= 0 || dec_str(d, &r->err_msg, &len))
			return DECODE_ERR;
		r->is_error = 1;
		r->err_code = (int32_t)code;
		return dec_ext(d, NULL, &r->ext);
	}
	if (dec_header(d, WIRE_RESP_VALUE))
		return DECODE_ERR;
	d->items = 1;
	v = rxp_arena_alloc(d->arena, sizeof(*v), alignof(struct rxp_value));
	if (!v)
		return -ENOMEM;
	ret = dec_value(d, v, 0);
	if (ret)
		return ret;
	r->value = v;
	return dec_ext(d, NULL, &r->ext);
}

/*
 * Decode a call (@c) or a response (@r). On failure the arena is rewound
 * (chunks it grew stay on its list until rxp_arena_fini).
 */
static int decode(const void *buf, size_t len, uint32_t nstorages,
		  const uint64_t *storage_lens, struct rxp_arena *arena,
		  struct rxp_decoded_call *c, struct rxp_decoded_resp *r)
{
	struct dec d = {.p = buf,
			.arena = arena,
			.lens = storage_lens,
			.nstorages = nstorages};
	char *cur, *end;
	int ret;

	if ((!buf && len) || (nstorages && !storage_lens) || !arena)
		return -EINVAL;
	d.end = len ? d.p + len : d.p; /* no NULL + 0 */
	cur = arena->cur;
	end = arena->end;
	ret = c ? dec_call(&d, c) : dec_resp(&d, r);
	if (!ret && d.p != d.end)
		ret = DECODE_ERR; /* trailing bytes */
	if (ret) {
		arena->cur = cur;
		arena->end = end;
	}
	return ret;
}

int rxp_codec_call_decode(const void *buf, size_t len, uint32_t nstorages,
			  const uint64_t *storage_lens, struct rxp_arena *arena,
			  struct rxp_decoded_call *out)
{
	struct rxp_decoded_call c = {0};
	int ret;

	if (!out)
		return -EINVAL;
	ret = decode(buf, len, nstorages, storage_lens, arena, &c, NULL);
	if (!ret)
		*out = c;
	return ret;
}

int rxp_codec_resp_decode(const void *buf, size_t len, uint32_t nstorages,
			  const uint64_t *storage_lens, struct rxp_arena *arena,
			  struct rxp_decoded_resp *out)
{
	struct rxp_decoded_resp r = {0};
	int ret;

	if (!out)
		return -EINVAL;
	ret = decode(buf, len, nstorages, storage_lens, arena, NULL, &r);
	if (!ret)
		*out = r;
	return ret;
}
