/* SPDX-License-Identifier: MIT */
/*
 * Value codec: script calls and responses <-> payload bytes.
 * The wire format and the validation rules are specified in docs/codec.md;
 * keep the two in step.
 *
 * Encoding walks the tree once per pass with the same code: the sizing
 * pass only counts, the writing pass also stores (and re-checks room, so a
 * tree changed between the passes cannot overrun the buffer). Decoding is
 * one forward pass over the payload; every read is bounds-checked first.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"

#define WIRE_MAGIC 0x43505852u /* "RXPC" as a little-endian u32 */
#define HDR_SIZE 8	       /* magic u32, version u8, kind u8, rsvd u16 */

enum wire_kind { WIRE_CALL = 1, WIRE_RESP_VALUE = 2, WIRE_RESP_ERROR = 3 };

/* Extension (TLV) records: u16 type, u32 len, len bytes. */
#define EXT_HDR 6
#define EXT_CRITICAL 0x8000u /* unknown and critical: reject the message */
enum ext_type { EXT_AUTOGRAD = 1, EXT_PROFILING = 2 };
#define EXT_AUTOGRAD_LEN 17 /* i64 ctx id, i64 msg id, u8 force_grad */

/* Smallest encodings, to bound counts by the bytes left. */
#define MIN_VALUE 1	/* tag of a none */
#define MIN_ENTRY 6	/* u32 key len, NUL, tag */
#define TENSOR_FIXED 15 /* tag, dtype, ndim, u32 storage, u64 offset */

#define DECODE_ERR (-RXP_E_DECODE)

/* ---------------------------------------------------- byte order */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LE16(x) __builtin_bswap16(x)
#define LE32(x) __builtin_bswap32(x)
#define LE64(x) __builtin_bswap64(x)
#else
#define LE16(x) (x)
#define LE32(x) (x)
#define LE64(x) (x)
#endif

static inline uint16_t ld_u16(const uint8_t *r)
{
	uint16_t v;

	memcpy(&v, r, 2);
	return LE16(v);
}

static inline uint32_t ld_u32(const uint8_t *r)
{
	uint32_t v;

	memcpy(&v, r, 4);
	return LE32(v);
}

static inline uint64_t ld_u64(const uint8_t *r)
{
	uint64_t v;

	memcpy(&v, r, 8);
	return LE64(v);
}

/* ------------------------------------------------------------ encoder */

struct enc {
	uint8_t *p, *end; /* p == NULL: sizing pass (or out of room) */
	int64_t n;	  /* bytes accounted so far */
	int err;	  /* -ENOSPC once the buffer was too small */
	uint32_t nstorages;
	uint32_t items; /* values announced so far (counts, nargs) */
};

/* Account for @n bytes and store them when writing. Never writes past
 * the end: out of room, the pass goes on as a sizing pass. */
static inline void e_raw(struct enc *e, const void *src, size_t n)
{
	e->n += (int64_t)n;
	if (!e->p)
		return;
	if (n > (size_t)(e->end - e->p)) {
		e->p = NULL;
		e->err = -ENOSPC;
		return;
	}
	memcpy(e->p, src, n);
	e->p += n;
}

static inline void e_u8(struct enc *e, uint8_t v)
{
	e_raw(e, &v, 1);
}

static inline void e_u16(struct enc *e, uint16_t v)
{
	v = LE16(v);
	e_raw(e, &v, 2);
}

static inline void e_u32(struct enc *e, uint32_t v)
{
	v = LE32(v);
	e_raw(e, &v, 4);
}

static inline void e_u64(struct enc *e, uint64_t v)
{
	v = LE64(v);
	e_raw(e, &v, 8);
}

/* u32 len, bytes, NUL. -EINVAL: NULL with len > 0, or an embedded NUL. */
static int e_str(struct enc *e, const char *s, uint32_t len)
{
	if (s ? !!memchr(s, 0, len) : len != 0)
		return -EINVAL;
	e_u32(e, len);
	if (len)
		e_raw(e, s, len);
	e_u8(e, 0);
	return 0;
}

static int enc_tensor(struct enc *e, const struct rxp_tensor *t)
{
	uint64_t es = rxp_dtype_size(t->dtype), s = 1;
	int64_t strides[RXP_MAX_DIMS], span;
	uint32_t k;

	if (!es || t->ndim > RXP_MAX_DIMS || (t->ndim && !t->shape) ||
	    t->storage >= e->nstorages)
		return -EINVAL;
	span = rxp_tensor_span(t); /* negative dims/strides, overflow */
	if (span < 0 || t->offset % es ||
	    t->offset > UINT64_MAX - (uint64_t)span)
		return -EINVAL;
	if (t->strides) {
		memcpy(strides, t->strides, t->ndim * sizeof(int64_t));
	} else { /* row-major; PyTorch counts sizes 0 and 1 as 1 */
		for (k = t->ndim; k-- > 0;) {
			strides[k] = (int64_t)s;
			if (t->shape[k] > 1 &&
			    __builtin_mul_overflow(s, (uint64_t)t->shape[k],
						   &s))
				return -EINVAL;
		}
		if (s > INT64_MAX)
			return -EINVAL;
	}
	e_u8(e, RXP_V_TENSOR);
	e_u8(e, (uint8_t)t->dtype);
	e_u8(e, (uint8_t)t->ndim);
	e_u32(e, t->storage);
	e_u64(e, t->offset);
	for (k = 0; k < t->ndim; k++)
		e_u64(e, (uint64_t)t->shape[k]);
	for (k = 0; k < t->ndim; k++)
		e_u64(e, (uint64_t)strides[k]);
	return 0;
}

static int enc_value(struct enc *e, const struct rxp_value *v, unsigned depth);

/* Tag, u32 count, then the items (lists, tuples) or entries (dicts). */
static int enc_container(struct enc *e, const struct rxp_value *v,
			 unsigned depth)
{
	bool dict = v->kind == RXP_V_DICT;
	uint32_t i, n = dict ? v->u.dict.n : v->u.list.n;
	const struct rxp_dict_entry *de = dict ? v->u.dict.items : NULL;
	int ret = 0;

	if (n && (dict ? !de : !v->u.list.items))
		return -EINVAL;
	if (depth >= RXP_CODEC_MAX_DEPTH || n > RXP_CODEC_MAX_ITEMS - e->items)
		return -RXP_E_TOO_BIG;
	e->items += n;
	e_u8(e, (uint8_t)v->kind);
	e_u32(e, n);
	for (i = 0; i < n && !ret; i++) {
		if (!dict)
			ret = enc_value(e, &v->u.list.items[i], depth + 1);
		else if (!(ret = e_str(e, de[i].key, de[i].key_len)))
			ret = enc_value(e, &de[i].value, depth + 1);
	}
	return ret;
}

/* One value record; @depth = containers around it. */
static int enc_value(struct enc *e, const struct rxp_value *v, unsigned depth)
{
	uint64_t bits;

	switch (v->kind) {
	case RXP_V_NONE:
		e_u8(e, RXP_V_NONE);
		return 0;
	case RXP_V_BOOL:
		e_u8(e, RXP_V_BOOL);
		e_u8(e, v->u.b ? 1 : 0);
		return 0;
	case RXP_V_INT:
	case RXP_V_DOUBLE:
		if (v->kind == RXP_V_INT)
			bits = (uint64_t)v->u.i;
		else
			memcpy(&bits, &v->u.d, 8);
		e_u8(e, (uint8_t)v->kind);
		e_u64(e, bits);
		return 0;
	case RXP_V_STRING:
		e_u8(e, RXP_V_STRING);
		return e_str(e, v->u.str.ptr, v->u.str.len);
	case RXP_V_TENSOR:
		return enc_tensor(e, &v->u.tensor);
	case RXP_V_LIST:
	case RXP_V_TUPLE:
	case RXP_V_DICT:
		return enc_container(e, v, depth);
	default:
		return -EINVAL;
	}
}

static void enc_header(struct enc *e, enum wire_kind kind)
{
	e_u32(e, WIRE_MAGIC);
	e_u8(e, RXP_CODEC_VERSION);
	e_u8(e, kind);
	e_u16(e, 0);
}

/* The extension block: u16 count, then the records. */
static void enc_ext(struct enc *e, const struct rxp_call_meta *meta)
{
	bool ag = meta && meta->has_autograd, prof = meta && meta->profiling;

	e_u16(e, (uint16_t)(ag + prof));
	if (ag) {
		e_u16(e, EXT_AUTOGRAD);
		e_u32(e, EXT_AUTOGRAD_LEN);
		e_u64(e, (uint64_t)meta->autograd_ctx_id);
		e_u64(e, (uint64_t)meta->autograd_msg_id);
		e_u8(e, meta->force_grad_recording ? 1 : 0);
	}
	if (prof) {
		e_u16(e, EXT_PROFILING);
		e_u32(e, 0);
	}
}

static int enc_call(struct enc *e, const char *name,
		    const struct rxp_value *args, uint32_t nargs,
		    const struct rxp_call_meta *meta)
{
	size_t nlen;
	uint32_t i;
	int ret;

	if (!name || (nargs && !args))
		return -EINVAL;
	nlen = strnlen(name, RXP_CODEC_MAX_NAME + 1);
	if (!nlen)
		return -EINVAL;
	if (nlen > RXP_CODEC_MAX_NAME || nargs > RXP_CODEC_MAX_ITEMS)
		return -RXP_E_TOO_BIG;
	e->items = nargs;
	enc_header(e, WIRE_CALL);
	e_u32(e, meta ? meta->flags : 0);
	e_str(e, name, (uint32_t)nlen);
	e_u32(e, nargs);
	for (i = 0; i < nargs; i++) {
		ret = enc_value(e, &args[i], 0);
		if (ret)
			return ret;
	}
	enc_ext(e, meta);
	return e->err;
}

static int enc_resp_value(struct enc *e, const struct rxp_value *v)
{
	int ret;

	if (!v)
		return -EINVAL;
	e->items = 1;
	enc_header(e, WIRE_RESP_VALUE);
	ret = enc_value(e, v, 0);
	enc_ext(e, NULL);
	return ret ? ret : e->err;
}

static int enc_resp_error(struct enc *e, int32_t code, const char *msg)
{
	size_t len = msg ? strlen(msg) : 0;

	if (code >= 0)
		return -EINVAL;
	if (len >= UINT32_MAX)
		return -RXP_E_TOO_BIG;
	enc_header(e, WIRE_RESP_ERROR);
	e_u32(e, (uint32_t)code);
	e_str(e, msg, (uint32_t)len);
	enc_ext(e, NULL);
	return e->err;
}

static int64_t enc_result(const struct enc *e, int ret)
{
	return ret ? ret : e->n;
}

/* Set up a writing pass into @buf[0..cap). */
static int enc_writer(struct enc *e, void *buf, size_t cap, uint32_t nst)
{
	memset(e, 0, sizeof(*e));
	e->nstorages = nst;
	if (!buf)
		return -EINVAL;
	e->p = buf;
	e->end = e->p + cap;
	return 0;
}

int64_t rxp_codec_call_size(const char *name, const struct rxp_value *args,
			    uint32_t nargs, uint32_t nstorages,
			    const struct rxp_call_meta *meta)
{
	struct enc e = {.nstorages = nstorages};

	return enc_result(&e, enc_call(&e, name, args, nargs, meta));
}

int64_t rxp_codec_call_encode(const char *name, const struct rxp_value *args,
			      uint32_t nargs, uint32_t nstorages,
			      const struct rxp_call_meta *meta, void *buf,
			      size_t cap)
{
	struct enc e;

	if (enc_writer(&e, buf, cap, nstorages))
		return -EINVAL;
	return enc_result(&e, enc_call(&e, name, args, nargs, meta));
}

int64_t rxp_codec_value_size(const struct rxp_value *v, uint32_t nstorages)
{
	struct enc e = {.nstorages = nstorages};

	return enc_result(&e, enc_resp_value(&e, v));
}

int64_t rxp_codec_value_encode(const struct rxp_value *v, uint32_t nstorages,
			       void *buf, size_t cap)
{
	struct enc e;

	if (enc_writer(&e, buf, cap, nstorages))
		return -EINVAL;
	return enc_result(&e, enc_resp_value(&e, v));
}

int64_t rxp_codec_error_size(int32_t code, const char *msg)
{
	struct enc e = {.nstorages = 0};

	return enc_result(&e, enc_resp_error(&e, code, msg));
}

int64_t rxp_codec_error_encode(int32_t code, const char *msg, void *buf,
			       size_t cap)
{
	struct enc e;

	if (enc_writer(&e, buf, cap, 0))
		return -EINVAL;
	return enc_result(&e, enc_resp_error(&e, code, msg));
}

/* ------------------------------------------------------------ decoder */

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

/* The extension block; @meta NULL for responses (no known types yet). */
static int dec_ext(struct dec *d, struct rxp_call_meta *meta)
{
	unsigned seen = 0;
	uint16_t n, type;
	const uint8_t *r;
	uint32_t len;

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
		if (!meta || (type != EXT_AUTOGRAD && type != EXT_PROFILING)) {
			if (type & EXT_CRITICAL)
				return DECODE_ERR;
			continue;
		}
		if (seen & (1u << type))
			return DECODE_ERR; /* duplicate */
		seen |= 1u << type;
		if (type == EXT_PROFILING) {
			if (len)
				return DECODE_ERR;
			meta->profiling = 1;
			continue;
		}
		if (len != EXT_AUTOGRAD_LEN || r[16] > 1)
			return DECODE_ERR;
		meta->has_autograd = 1;
		meta->autograd_ctx_id = (int64_t)ld_u64(r);
		meta->autograd_msg_id = (int64_t)ld_u64(r + 8);
		meta->force_grad_recording = r[16];
	}
	return 0;
}

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
	return dec_ext(d, &c->meta);
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
		return dec_ext(d, NULL);
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
	return dec_ext(d, NULL);
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
