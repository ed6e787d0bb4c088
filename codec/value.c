/* SPDX-License-Identifier: MIT */
/*
 * The value model: builders for values to send, dtype sizes, the byte
 * span of a tensor and deep equality of two value trees.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"

size_t rxp_dtype_size(int dtype)
{
	switch (dtype) {
#define RXP__DT_CASE(name, num, size, str)                                     \
	case num:                                                              \
		return size;
		RXP_DTYPES(RXP__DT_CASE)
#undef RXP__DT_CASE
	default:
		return 0;
	}
}

/* ------------------------------------------------------------ builders */

struct rxp_value rxp_v_none(void)
{
	struct rxp_value v = {.kind = RXP_V_NONE};

	return v;
}

struct rxp_value rxp_v_bool(bool b)
{
	struct rxp_value v = {.kind = RXP_V_BOOL, .u.b = b};

	return v;
}

struct rxp_value rxp_v_int(int64_t i)
{
	struct rxp_value v = {.kind = RXP_V_INT, .u.i = i};

	return v;
}

struct rxp_value rxp_v_double(double d)
{
	struct rxp_value v = {.kind = RXP_V_DOUBLE, .u.d = d};

	return v;
}

/*
 * A string that cannot be represented (longer than UINT32_MAX - 1 bytes)
 * becomes a value of the invalid kind RXP_V__COUNT, which the encoder
 * rejects with -EINVAL instead of silently truncating it. NULL is "".
 */
struct rxp_value rxp_v_str(const char *s)
{
	struct rxp_value v = {.kind = RXP_V_STRING};
	size_t n = s ? strlen(s) : 0;

	if (n >= UINT32_MAX) {
		v.kind = RXP_V__COUNT;
		return v;
	}
	v.u.str.ptr = s;
	v.u.str.len = (uint32_t)n;
	return v;
}

struct rxp_value rxp_v_list(const struct rxp_value *items, uint32_t n)
{
	struct rxp_value v = {.kind = RXP_V_LIST};

	v.u.list.items = items;
	v.u.list.n = n;
	return v;
}

struct rxp_value rxp_v_tuple(const struct rxp_value *items, uint32_t n)
{
	struct rxp_value v = {.kind = RXP_V_TUPLE};

	v.u.list.items = items;
	v.u.list.n = n;
	return v;
}

struct rxp_value rxp_v_dict(const struct rxp_dict_entry *items, uint32_t n)
{
	struct rxp_value v = {.kind = RXP_V_DICT};

	v.u.dict.items = items;
	v.u.dict.n = n;
	return v;
}

/* An RRef to send: the agent fills in u.rref.desc (a new fork) before the
 * value is encoded; the encoder refuses one whose desc is still NULL. */
struct rxp_value rxp_v_rref(struct rxp_rref *ref)
{
	struct rxp_value v = {.kind = RXP_V_RREF};

	v.u.rref.ref = ref;
	v.u.rref.desc = NULL;
	return v;
}

struct rxp_value rxp_v_tensor(int dtype, uint32_t ndim, const int64_t *shape,
			      const int64_t *strides, uint32_t storage,
			      uint64_t offset)
{
	struct rxp_value v = {.kind = RXP_V_TENSOR};

	v.u.tensor.dtype = dtype;
	v.u.tensor.ndim = ndim;
	v.u.tensor.storage = storage;
	v.u.tensor.offset = offset;
	v.u.tensor.shape = shape;
	v.u.tensor.strides = strides;
	return v;
}

/* -------------------------------------------------------------- tensors */

/*
 * Bytes from the tensor's offset to the end of its last element:
 *   (1 + sum_k (shape[k] - 1) * strides[k]) * dtype_size
 * 0 when any dimension is 0 (no element is addressed); a 0-dim tensor is
 * one element. Strides must be >= 0 (rxp rejects negative strides, as
 * PyTorch does); a stride of 0 (expand/broadcast) is fine. NULL strides
 * mean row-major contiguous: the span is numel * dtype_size.
 * Return: the span, -EINVAL (NULL, unknown dtype, ndim > RXP_MAX_DIMS,
 * NULL shape, negative dim or stride) or -EOVERFLOW.
 */
int64_t rxp_tensor_span(const struct rxp_tensor *t)
{
	int64_t es, last = 0, nel = 1, term;
	bool empty = false;
	uint32_t k;

	if (!t)
		return -EINVAL;
	es = (int64_t)rxp_dtype_size(t->dtype);
	if (!es || t->ndim > RXP_MAX_DIMS || (t->ndim && !t->shape))
		return -EINVAL;
	for (k = 0; k < t->ndim; k++) {
		if (t->shape[k] < 0 || (t->strides && t->strides[k] < 0))
			return -EINVAL;
		if (!t->shape[k])
			empty = true;
	}
	if (empty)
		return 0;
	for (k = 0; k < t->ndim; k++) {
		if (t->strides) {
			if (__builtin_mul_overflow(t->shape[k] - 1,
						   t->strides[k], &term) ||
			    __builtin_add_overflow(last, term, &last))
				return -EOVERFLOW;
		} else if (__builtin_mul_overflow(nel, t->shape[k], &nel)) {
			return -EOVERFLOW;
		}
	}
	if (!t->strides)
		last = nel - 1;
	if (__builtin_add_overflow(last, 1, &last) ||
	    __builtin_mul_overflow(last, es, &last))
		return -EOVERFLOW;
	return last;
}

/* Row-major strides (PyTorch's: sizes of 0 or 1 count as 1), wrapping on
 * overflow (only used to compare; the encoder checks overflow itself). */
static void contig_strides(const struct rxp_tensor *t, uint64_t *out)
{
	uint64_t s = 1;
	uint32_t k;

	for (k = t->ndim; k-- > 0;) {
		out[k] = s;
		s *= t->shape[k] > 1 ? (uint64_t)t->shape[k] : 1;
	}
}

static bool tensor_equal(const struct rxp_tensor *a, const struct rxp_tensor *b)
{
	uint64_t sa[RXP_MAX_DIMS], sb[RXP_MAX_DIMS];
	uint32_t k;

	if (a->dtype != b->dtype || a->ndim != b->ndim ||
	    a->storage != b->storage || a->offset != b->offset)
		return false;
	if (a->ndim > RXP_MAX_DIMS)
		return false;
	if (!a->ndim)
		return true;
	if (!a->shape || !b->shape)
		return false;
	if (memcmp(a->shape, b->shape, a->ndim * sizeof(int64_t)))
		return false;
	if (a->strides)
		memcpy(sa, a->strides, a->ndim * sizeof(int64_t));
	else
		contig_strides(a, sa);
	if (b->strides)
		memcpy(sb, b->strides, b->ndim * sizeof(int64_t));
	else
		contig_strides(b, sb);
	for (k = 0; k < a->ndim; k++)
		if (sa[k] != sb[k])
			return false;
	return true;
}

static bool rref_id_equal(const struct rxp_rref_id *a,
			  const struct rxp_rref_id *b)
{
	return a->creator == b->creator && a->reserved == b->reserved &&
	       a->local == b->local;
}

/* Descriptors compare by value (a decoded RRef has one); RRefs without
 * one (not yet sent) by handle. */
static bool rref_equal(const struct rxp_value *a, const struct rxp_value *b)
{
	const struct rxp_rref_desc *x = a->u.rref.desc, *y = b->u.rref.desc;

	if (!x || !y)
		return !x && !y && a->u.rref.ref == b->u.rref.ref;
	return x->owner == y->owner && x->parent == y->parent &&
	       rref_id_equal(&x->rref, &y->rref) &&
	       rref_id_equal(&x->fork, &y->fork);
}

static bool bytes_equal(const char *a, uint32_t alen, const char *b,
			uint32_t blen)
{
	if (alen != blen)
		return false;
	return !alen || (a && b && !memcmp(a, b, alen));
}

/*
 * Deep equality. Doubles compare by bit pattern (NaN equals the same NaN,
 * 0.0 differs from -0.0), so a round trip compares equal. Lists and tuples
 * differ; dict entries compare in order. Tensors compare metadata only
 * (NULL strides equal their row-major values), never storage bytes.
 * RRefs are equal when both descriptors are set and equal field by field
 * (the handles are not compared), or both are unset and the handles are
 * the same pointer.
 */
bool rxp_value_equal(const struct rxp_value *a, const struct rxp_value *b)
{
	uint32_t i;

	if (!a || !b)
		return a == b;
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case RXP_V_NONE:
		return true;
	case RXP_V_BOOL:
		return a->u.b == b->u.b;
	case RXP_V_INT:
		return a->u.i == b->u.i;
	case RXP_V_DOUBLE:
		return !memcmp(&a->u.d, &b->u.d, sizeof(double));
	case RXP_V_STRING:
		return bytes_equal(a->u.str.ptr, a->u.str.len, b->u.str.ptr,
				   b->u.str.len);
	case RXP_V_TENSOR:
		return tensor_equal(&a->u.tensor, &b->u.tensor);
	case RXP_V_LIST:
	case RXP_V_TUPLE:
		if (a->u.list.n != b->u.list.n)
			return false;
		if (a->u.list.n && (!a->u.list.items || !b->u.list.items))
			return false;
		for (i = 0; i < a->u.list.n; i++)
			if (!rxp_value_equal(&a->u.list.items[i],
					     &b->u.list.items[i]))
				return false;
		return true;
	case RXP_V_DICT:
		if (a->u.dict.n != b->u.dict.n)
			return false;
		if (a->u.dict.n && (!a->u.dict.items || !b->u.dict.items))
			return false;
		for (i = 0; i < a->u.dict.n; i++) {
			const struct rxp_dict_entry *x = &a->u.dict.items[i];
			const struct rxp_dict_entry *y = &b->u.dict.items[i];

			if (!bytes_equal(x->key, x->key_len, y->key,
					 y->key_len) ||
			    !rxp_value_equal(&x->value, &y->value))
				return false;
		}
		return true;
	case RXP_V_RREF:
		return rref_equal(a, b);
	default:
		return false;
	}
}
