/* SPDX-License-Identifier: MIT */
/*
 * Value codec, encoder: sizing and writing calls and responses.
 * The wire format is specified in docs/codec.md; keep the two in step.
 *
 * Encoding walks the tree once per pass with the same code: the sizing
 * pass only counts, the writing pass also stores (and re-checks room, so a
 * tree changed between the passes cannot overrun the buffer).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "codec_wire.h"

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

/* A str is valid: not NULL with len > 0, no embedded NUL. */
static inline bool str_ok(const char *s, uint32_t len)
{
	return s ? !memchr(s, 0, len) : len == 0;
}

/* u32 len, bytes, NUL. -EINVAL: NULL with len > 0, or an embedded NUL. */
static int e_str(struct enc *e, const char *s, uint32_t len)
{
	if (!str_ok(s, len))
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

/* u32 creator, u32 reserved (0), u64 local. */
static void e_rref_id(struct enc *e, const struct rxp_rref_id *id)
{
	e_u32(e, id->creator);
	e_u32(e, 0);
	e_u64(e, id->local);
}

/* The descriptor the agent filled in; the handle itself never travels. */
static int enc_rref(struct enc *e, const struct rxp_rref_desc *d)
{
	if (!d || d->rref.reserved || d->fork.reserved)
		return -EINVAL;
	e_u8(e, RXP_V_RREF);
	e_u32(e, d->owner);
	e_u32(e, d->parent);
	e_rref_id(e, &d->rref);
	e_rref_id(e, &d->fork);
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
	case RXP_V_RREF:
		return enc_rref(e, v->u.rref.desc);
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

static inline void e_ext_hdr(struct enc *e, uint16_t type, uint32_t len)
{
	e_u16(e, type);
	e_u32(e, len);
}

/* The call's extension block: u16 count, then the records. */
static void enc_call_ext(struct enc *e, const struct rxp_call_meta *meta)
{
	bool ag = meta && meta->has_autograd, prof = meta && meta->profiling;
	bool rref = meta && meta->has_rref;

	e_u16(e, (uint16_t)(ag + prof + rref));
	if (ag) {
		e_ext_hdr(e, EXT_AUTOGRAD, EXT_AUTOGRAD_LEN);
		e_u64(e, (uint64_t)meta->autograd_ctx_id);
		e_u64(e, (uint64_t)meta->autograd_msg_id);
		e_u8(e, meta->force_grad_recording ? 1 : 0);
	}
	if (prof)
		e_ext_hdr(e, EXT_PROFILING, 0);
	if (rref) {
		e_ext_hdr(e, EXT_RREF, EXT_RREF_LEN);
		e_rref_id(e, &meta->rref_id);
		e_rref_id(e, &meta->fork_id);
	}
}

/*
 * Validate the profile record of @x and compute its length: 0 with *len
 * set, -EINVAL (NULL events, bad name, end before start) or
 * -RXP_E_TOO_BIG (too many events, record past 4 GiB).
 */
static int prof_len(const struct rxp_resp_ext *x, uint32_t *len)
{
	uint64_t n = PROF_FIXED;
	uint32_t i;

	if (x->nevents > RXP_CODEC_MAX_PROF_EVENTS)
		return -RXP_E_TOO_BIG;
	if (x->nevents && !x->events)
		return -EINVAL;
	for (i = 0; i < x->nevents; i++) {
		const struct rxp_prof_wire_event *ev = &x->events[i];

		if (!str_ok(ev->name, ev->name_len) ||
		    ev->end_ns < ev->start_ns)
			return -EINVAL;
		n += PROF_MIN_EVENT + (uint64_t)ev->name_len;
	}
	if (n > UINT32_MAX)
		return -RXP_E_TOO_BIG;
	*len = (uint32_t)n;
	return 0;
}

/* A response's extension block; @len from prof_len() when has_prof. */
static void enc_resp_ext(struct enc *e, const struct rxp_resp_ext *x,
			 uint32_t len)
{
	const struct rxp_prof_wire_event *ev;
	uint32_t i;

	if (!x || !x->has_prof) {
		e_u16(e, 0);
		return;
	}
	e_u16(e, 1);
	e_ext_hdr(e, EXT_PROFILE, len);
	e_u64(e, (uint64_t)x->t_recv_ns);
	e_u64(e, (uint64_t)x->t_done_ns);
	e_u32(e, x->nevents);
	for (i = 0; i < x->nevents; i++) {
		ev = &x->events[i];
		e_str(e, ev->name, ev->name_len); /* checked by prof_len */
		e_u64(e, (uint64_t)ev->start_ns);
		e_u64(e, (uint64_t)ev->end_ns);
	}
}

/* Validate @x (may be NULL) before anything is written. */
static int resp_ext_check(const struct rxp_resp_ext *x, uint32_t *len)
{
	*len = 0;
	return x && x->has_prof ? prof_len(x, len) : 0;
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
	if (meta && meta->has_rref &&
	    (meta->rref_id.reserved || meta->fork_id.reserved))
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
	enc_call_ext(e, meta);
	return e->err;
}

static int enc_resp_value(struct enc *e, const struct rxp_value *v,
			  const struct rxp_resp_ext *x)
{
	uint32_t xlen;
	int ret;

	if (!v)
		return -EINVAL;
	ret = resp_ext_check(x, &xlen);
	if (ret)
		return ret;
	e->items = 1;
	enc_header(e, WIRE_RESP_VALUE);
	ret = enc_value(e, v, 0);
	if (ret)
		return ret;
	enc_resp_ext(e, x, xlen);
	return e->err;
}

static int enc_resp_error(struct enc *e, int32_t code, const char *msg,
			  const struct rxp_resp_ext *x)
{
	size_t len = msg ? strlen(msg) : 0;
	uint32_t xlen;
	int ret;

	if (code >= 0)
		return -EINVAL;
	if (len >= UINT32_MAX)
		return -RXP_E_TOO_BIG;
	ret = resp_ext_check(x, &xlen);
	if (ret)
		return ret;
	enc_header(e, WIRE_RESP_ERROR);
	e_u32(e, (uint32_t)code);
	e_str(e, msg, (uint32_t)len);
	enc_resp_ext(e, x, xlen);
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

int64_t rxp_codec_value_size_ext(const struct rxp_value *v, uint32_t nstorages,
				 const struct rxp_resp_ext *ext)
{
	struct enc e = {.nstorages = nstorages};

	return enc_result(&e, enc_resp_value(&e, v, ext));
}

int64_t rxp_codec_value_encode_ext(const struct rxp_value *v,
				   uint32_t nstorages,
				   const struct rxp_resp_ext *ext, void *buf,
				   size_t cap)
{
	struct enc e;

	if (enc_writer(&e, buf, cap, nstorages))
		return -EINVAL;
	return enc_result(&e, enc_resp_value(&e, v, ext));
}

int64_t rxp_codec_error_size_ext(int32_t code, const char *msg,
				 const struct rxp_resp_ext *ext)
{
	struct enc e = {.nstorages = 0};

	return enc_result(&e, enc_resp_error(&e, code, msg, ext));
}

int64_t rxp_codec_error_encode_ext(int32_t code, const char *msg,
				   const struct rxp_resp_ext *ext, void *buf,
				   size_t cap)
{
	struct enc e;

	if (enc_writer(&e, buf, cap, 0))
		return -EINVAL;
	return enc_result(&e, enc_resp_error(&e, code, msg, ext));
}

int64_t rxp_codec_value_size(const struct rxp_value *v, uint32_t nstorages)
{
	return rxp_codec_value_size_ext(v, nstorages, NULL);
}

int64_t rxp_codec_value_encode(const struct rxp_value *v, uint32_t nstorages,
			       void *buf, size_t cap)
{
	return rxp_codec_value_encode_ext(v, nstorages, NULL, buf, cap);
}

int64_t rxp_codec_error_size(int32_t code, const char *msg)
{
	return rxp_codec_error_size_ext(code, msg, NULL);
}

int64_t rxp_codec_error_encode(int32_t code, const char *msg, void *buf,
			       size_t cap)
{
	return rxp_codec_error_encode_ext(code, msg, NULL, buf, cap);
}
