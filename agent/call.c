/* SPDX-License-Identifier: MIT */
/*
 * Incoming calls and requests: the objects (recycled through the poller's
 * cache), completing them (value, error, shared owner buffers), what a
 * function reads from its call, and the message-level request API.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent_int.h"

#define CALL_CACHE_MAX 256

/* ------------------------------------------------------- call objects */

/* Move every call returned from other threads into the cache (one
 * exchange: the list is taken whole, so a push racing with it can never
 * see a half-taken list). */
static void take_returned(struct rxp_agent *a) RXP_REQUIRES(rxp__progress)
{
	struct rxp_call *c = atomic_exchange_explicit(&a->calls_returned, NULL,
						      memory_order_acquire);
	uint32_t n = 0;

	while (c) {
		struct rxp_call *next = c->next;

		c->next = a->call_cache;
		a->call_cache = c;
		a->ncall_cache++;
		n++;
		c = next;
	}
	if (n)
		atomic_fetch_sub_explicit(&a->calls_returned_n, n,
					  memory_order_relaxed);
}

struct rxp_call *rxp__call_new(struct rxp_agent *a)
{
	struct rxp_call *c;

	if (!a->call_cache)
		take_returned(a);
	c = a->call_cache;
	if (c) {
		a->call_cache = c->next;
		a->ncall_cache--;
	} else {
		c = rxp__malloc(sizeof(*c));
		if (!c)
			return NULL;
	}
	memset(c, 0, offsetof(struct rxp_call, arena_mem));
	c->agent = a;
	atomic_init(&c->refs, 2);
	atomic_init(&c->completed, 0);
	c->st = c->st_inline;
	c->rst = c->rst_inline;
	c->rst_iov = c->rst_iov_inline;
	c->resp = c->resp_inline;
	rxp_arena_init(&c->arena, c->arena_mem, sizeof(c->arena_mem));
	rxp__agent_get(a);
	return c;
}

/* Keep @c for reuse if the cache has room; false if not. */
static bool cache_put(struct rxp_agent *a, struct rxp_call *c)
{
	rxp__progress_held(a); /* rxp__on_poller() said so */
	if (a->ncall_cache >= CALL_CACHE_MAX)
		return false;
	c->next = a->call_cache;
	a->call_cache = c;
	a->ncall_cache++;
	return true;
}

/* From a thread without the progress lock: push @c on the returned list
 * if the two lists hold fewer than CALL_CACHE_MAX calls; false if not.
 * The bound is approximate under races (a few over), never unbounded. */
static bool return_call(struct rxp_agent *a, struct rxp_call *c)
{
	if (atomic_load_explicit(&a->calls_returned_n, memory_order_relaxed) >=
	    CALL_CACHE_MAX)
		return false;
	atomic_fetch_add_explicit(&a->calls_returned_n, 1,
				  memory_order_relaxed);
	RXP__STACK_PUSH(&a->calls_returned, c, memory_order_release);
	return true;
}

void rxp__call_put(struct rxp_call *c)
{
	const struct rxp__feature *ft;
	struct rxp_agent *a;

	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	a = c->agent;
	rxp__for_each_feature(ft) if (ft->call_free) ft->call_free(c);
	rxp_buf_put(c->payload);
	for (uint32_t i = 0; i < c->nst; i++)
		rxp_buf_put(c->st[i]);
	for (uint32_t i = 0; i < c->nrst; i++)
		rxp_buf_put(c->rst[i]);
	if (c->st != c->st_inline)
		rxp__free(c->st);
	if (c->rst != c->rst_inline)
		rxp__free(c->rst);
	if (c->rst_iov != c->rst_iov_inline)
		rxp__free(c->rst_iov);
	if (c->resp_buf)
		rxp_buf_put(c->resp_buf);
	else if (c->resp != c->resp_inline)
		rxp__free(c->resp);
	rxp_arena_fini(&c->arena);
	if (rxp__on_poller(a) ? !cache_put(a, c) : !return_call(a, c))
		rxp__free(c);
	rxp__agent_put(a);
}

struct rxp_call *rxp__call_get(struct rxp_call *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void rxp__calls_returned_free(struct rxp_agent *a)
{
	struct rxp_call *c = atomic_exchange(&a->calls_returned, NULL);

	while (c) {
		struct rxp_call *next = c->next;

		rxp__free(c);
		c = next;
	}
	atomic_store(&a->calls_returned_n, 0);
}

void rxp__call_cache_flush(struct rxp_agent *a)
{
	while (a->call_cache) {
		struct rxp_call *c = a->call_cache;

		a->call_cache = c->next;
		rxp__free(c);
	}
	a->ncall_cache = 0;
}

/* ------------------------------------------------- completing a call */

static int call_take_storages(struct rxp_call *c, struct rxp_storage *const *st,
			      uint32_t n);

/* Claim the completion; false if the call was already completed. */
static bool call_claim(struct rxp_call *c)
{
	if (atomic_exchange(&c->completed, 1))
		return false;
	atomic_fetch_sub(&c->agent->server_active, 1);
	if (c->async_fn)
		atomic_fetch_sub(&c->agent->server_active_async, 1);
	return true;
}

/* Make room for @len response bytes. */
static int call_resp_buf(struct rxp_call *c, size_t len)
{
	if (len > RXP__INLINE_PAYLOAD) {
		c->resp = rxp__malloc(len);
		if (!c->resp) {
			c->resp = c->resp_inline;
			return -ENOMEM;
		}
	}
	c->resp_len = len;
	return 0;
}

/* The response extensions features send with @c's response (or NULL). */
static const struct rxp_resp_ext *rxp__call_resp_ext(struct rxp_call *c,
						     struct rxp_resp_ext *mem)
{
	const struct rxp__feature *ft;

	rxp__for_each_feature(ft)
	{
		const struct rxp_resp_ext *x =
			ft->resp_ext ? ft->resp_ext(c, mem) : NULL;

		if (x)
			return x;
	}
	return NULL;
}

static void call_error_response(struct rxp_call *c, int code, const char *msg)
{
	struct rxp_resp_ext ext_mem;
	const struct rxp_resp_ext *ext = rxp__call_resp_ext(c, &ext_mem);
	int64_t n = rxp_codec_error_size_ext(code, msg, ext);

	if (c->resp != c->resp_inline) {
		rxp__free(c->resp);
		c->resp = c->resp_inline;
	}
	if (n < 0 || call_resp_buf(c, (size_t)n) ||
	    rxp_codec_error_encode_ext(code, msg, ext, c->resp, (size_t)n) !=
		    n) {
		/* the fixed message always fits the inline buffer */
		msg = "callee could not encode its error";
		n = rxp_codec_error_size(-ENOMEM, msg);
		c->resp = c->resp_inline;
		c->resp_len = (size_t)n;
		rxp_codec_error_encode(-ENOMEM, msg, c->resp, (size_t)n);
	}
	c->resp_flags = RXP__RESP_ERROR;
	/* a failed call returns no storages */
	for (uint32_t i = 0; i < c->nrst; i++)
		rxp_buf_put(c->rst[i]);
	c->nrst = 0;
}

/* The response is ready: a feature may keep the value (an RRef owner keeps
 * a remote()'s value on this worker) and then the creator gets an ack
 * instead; then send. */
static void call_finish(struct rxp_call *c)
{
	const struct rxp__feature *ft;
	bool kept = false;

	rxp__for_each_feature(ft) if (ft->on_finish && ft->on_finish(c)) kept =
		true;
	if (kept) {
		if (!(c->resp_flags & RXP__RESP_ERROR)) {
			for (uint32_t i = 0; i < c->nrst; i++)
				rxp_buf_put(c->rst[i]);
			c->nrst = 0;
			if (c->resp != c->resp_inline)
				rxp__free(c->resp);
			c->resp = c->resp_inline;
			{
				struct rxp_value none = rxp_v_none();
				struct rxp_resp_ext ext_mem;
				const struct rxp_resp_ext *ext =
					rxp__call_resp_ext(c, &ext_mem);
				int64_t n =
					rxp_codec_value_size_ext(&none, 0, ext);

				if (n < 0 || call_resp_buf(c, (size_t)n) ||
				    rxp_codec_value_encode_ext(&none, 0, ext,
							       c->resp,
							       (size_t)n) != n)
					call_error_response(
						c, -ENOMEM,
						"owner out of memory");
			}
		}
	}
	rxp__submit_call(c->agent, c);
}

void rxp__call_fail_code(struct rxp_call *c, int code, const char *msg)
{
	if (!call_claim(c))
		return;
	call_error_response(c, code, msg);
	call_finish(c);
}

void rxp__call_ack(struct rxp_call *c)
{
	rxp_call_return(c, NULL, NULL, 0);
}

void rxp__call_respond_buf(struct rxp_call *c, struct rxp_buf *payload,
			   struct rxp_buf *const *st, uint32_t nst)
{
	int err;

	if (!call_claim(c))
		return;
	err = call_take_storages(c, (struct rxp_storage *const *)st, nst);
	if (err) {
		call_error_response(c, err, "owner out of memory");
	} else {
		c->resp_buf = rxp_buf_get(payload);
		c->resp = payload->data;
		c->resp_len = payload->len;
		c->resp_flags = 0;
	}
	rxp__submit_call(c->agent, c);
}

int rxp_call_fail(struct rxp_call *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!c || !fmt)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (atomic_load(&c->completed))
		return -EALREADY;
	rxp__call_fail_code(c, -RXP_E_REMOTE, msg);
	return 0;
}

static int call_take_storages(struct rxp_call *c, struct rxp_storage *const *st,
			      uint32_t n)
{
	if (n > RXP_WIRE_MAX_STORAGES || (n && !st))
		return -EINVAL;
	if (n > RXP__INLINE_STORAGES) {
		c->rst = rxp__calloc(n, sizeof(*c->rst));
		c->rst_iov = rxp__calloc(n, sizeof(*c->rst_iov));
		if (!c->rst || !c->rst_iov)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct rxp_buf *b = (struct rxp_buf *)st[i];

		if (!b)
			return -EINVAL;
		c->rst[c->nrst++] = rxp_buf_get(b);
		c->rst_iov[i] =
			(struct rxp_iov){.base = b->data, .len = b->len};
	}
	return 0;
}

int rxp_call_return(struct rxp_call *c, const struct rxp_value *ret,
		    struct rxp_storage *const *storages, uint32_t nstorages)
{
	struct rxp_value none = rxp_v_none();
	int64_t n;
	int err;

	if (!c)
		return -EINVAL;
	if (!call_claim(c))
		return -EALREADY;
	if (!ret)
		ret = &none;
	err = call_take_storages(c, storages, nstorages);
	if (err)
		goto fail;
	{
		struct rxp_resp_ext ext_mem;
		const struct rxp_resp_ext *ext =
			rxp__call_resp_ext(c, &ext_mem);

		n = rxp_codec_value_size_ext(ret, nstorages, ext);
		if (n < 0) {
			err = (int)n;
			goto fail;
		}
		err = call_resp_buf(c, (size_t)n);
		if (err)
			goto fail;
		rxp_codec_value_encode_ext(ret, nstorages, ext, c->resp,
					   (size_t)n);
	}
	c->resp_flags = 0;
	call_finish(c);
	return 0;
fail:
	call_error_response(c, err,
			    "the function's return value could not "
			    "be encoded");
	call_finish(c);
	return err;
}

/* ------------------------------------------------- call accessors */

const struct rxp_value *rxp_call_args(const struct rxp_call *c, uint32_t *nargs)
{
	if (nargs)
		*nargs = c->dc.nargs;
	return c->dc.args;
}

uint32_t rxp_call_nstorages(const struct rxp_call *c)
{
	return c->nst;
}

struct rxp_storage *rxp_call_storage(const struct rxp_call *c, uint32_t i)
{
	return i < c->nst ? (struct rxp_storage *)c->st[i] : NULL;
}

int rxp_call_caller(const struct rxp_call *c, struct rxp_worker_info *out)
{
	return rxp_agent_worker_by_id(c->agent, (int)c->caller, out);
}

struct rxp_agent *rxp_call_agent(const struct rxp_call *c)
{
	return c->agent;
}

const char *rxp_call_name(const struct rxp_call *c)
{
	return c->dc.name ? c->dc.name : "";
}

/* ------------------------------------------------- message requests */

#define REQ(r) ((struct rxp_call *)(r))
#define CREQ(r) ((const struct rxp_call *)(r))

int rxp_request_type(const struct rxp_request *r)
{
	return CREQ(r)->type;
}

int rxp_request_payload(const struct rxp_request *r, const void **data,
			size_t *len)
{
	*data = CREQ(r)->payload->data;
	*len = CREQ(r)->payload->len;
	return 0;
}

uint32_t rxp_request_nstorages(const struct rxp_request *r)
{
	return CREQ(r)->nst;
}

struct rxp_storage *rxp_request_storage(const struct rxp_request *r, uint32_t i)
{
	return rxp_call_storage(CREQ(r), i);
}

int rxp_request_caller(const struct rxp_request *r, struct rxp_worker_info *out)
{
	return rxp_call_caller(CREQ(r), out);
}

int rxp_request_respond(struct rxp_request *r, const void *payload, size_t len,
			struct rxp_storage *const *storages, uint32_t nstorages)
{
	struct rxp_call *c = REQ(r);
	int err;

	if (!c || (len && !payload))
		return -EINVAL;
	if (!call_claim(c))
		return -EALREADY;
	err = call_take_storages(c, storages, nstorages);
	if (!err)
		err = len > RXP_WIRE_DEFAULT_MAX_PAYLOAD
			      ? -RXP_E_TOO_BIG
			      : call_resp_buf(c, len);
	if (err) {
		call_error_response(c, err, "response could not be sent");
	} else {
		if (len)
			memcpy(c->resp, payload, len);
		c->resp_flags = 0;
	}
	rxp__submit_call(c->agent, c);
	return err;
}

int rxp_request_fail(struct rxp_request *r, const char *msg)
{
	if (!r)
		return -EINVAL;
	if (atomic_load(&REQ(r)->completed))
		return -EALREADY;
	rxp__call_fail_code(REQ(r), -RXP_E_REMOTE, msg ? msg : "failed");
	return 0;
}

/* ---------------------------------------------------------- autograd */

int rxp_call_autograd(const struct rxp_call *c, struct rxp_autograd_meta *out)
{
	if (!c || !out)
		return -EINVAL;
	if (!c->dc.meta.has_autograd)
		return -ENOENT;
	out->context_id = c->dc.meta.autograd_ctx_id;
	out->message_id = c->dc.meta.autograd_msg_id;
	out->force_grad_recording = c->dc.meta.force_grad_recording;
	return 0;
}
