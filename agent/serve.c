/* SPDX-License-Identifier: MIT */
/*
 * Serving: the function registry and running incoming calls and user
 * messages on the worker pool (decode, RRef arguments, autograd hook,
 * profiling span, the function itself, and what to do if it misbehaves).
 */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent_int.h"

/* ------------------------------------------------------- registry */

int rxp_agent_register(struct rxp_agent *a, const char *qualname, rxp_fn fn,
		       unsigned flags, void *user)
{
	int ret = 0;

	if (!a || !qualname || !*qualname || !fn || (flags & ~RXP_FN_ASYNC) ||
	    strlen(qualname) > RXP_CODEC_MAX_NAME)
		return -EINVAL;
	rxp__registry_wrlock(&a->fn_lock);
	for (uint32_t i = 0; i < a->nfns; i++)
		if (!strcmp(a->fns[i].name, qualname)) {
			ret = -EEXIST;
			goto out;
		}
	if (a->nfns == a->cap_fns) {
		uint32_t ncap = a->cap_fns ? a->cap_fns * 2 : 16;
		struct rxp__fn_entry *v =
			rxp__realloc(a->fns, ncap * sizeof(*v));

		if (!v) {
			ret = -ENOMEM;
			goto out;
		}
		a->fns = v;
		a->cap_fns = ncap;
	}
	a->fns[a->nfns].name = rxp__strdup(qualname);
	if (!a->fns[a->nfns].name) {
		ret = -ENOMEM;
		goto out;
	}
	a->fns[a->nfns].fn = fn;
	a->fns[a->nfns].flags = flags;
	a->fns[a->nfns].user = user;
	a->nfns++;
out:
	rxp__registry_wrunlock(&a->fn_lock);
	return ret;
}

static bool find_fn(struct rxp_agent *a, const char *name,
		    struct rxp__fn_entry *out)
{
	bool found = false;

	rxp__registry_rdlock(&a->fn_lock);
	for (uint32_t i = 0; i < a->nfns; i++)
		if (!strcmp(a->fns[i].name, name)) {
			*out = a->fns[i];
			found = true;
			break;
		}
	rxp__registry_rdunlock(&a->fn_lock);
	return found;
}

int rxp_agent_set_handler(struct rxp_agent *a, rxp_msg_handler h, void *user)
{
	if (!a)
		return -EINVAL;
	rxp__registry_wrlock(&a->fn_lock);
	a->handler = h;
	a->handler_user = user;
	rxp__registry_wrunlock(&a->fn_lock);
	return 0;
}

/* ------------------------------------------------------ serving */

static void serve_script_call(struct rxp_call *c)
{
	struct rxp_agent *a = c->agent;
	const struct rxp__feature *ft;
	struct rxp__fn_entry e;
	int ret;

	if (!c->decoded) {
		uint64_t lens_inline[RXP__INLINE_STORAGES] = {0};
		uint64_t *lens = rxp__buf_lens(c->st, c->nst, lens_inline);

		if (!lens) {
			rxp__call_fail_code(c, -ENOMEM, "callee out of memory");
			return;
		}
		ret = rxp_codec_call_decode(c->payload->data, c->payload->len,
					    c->nst, lens, &c->arena, &c->dc);
		if (lens != lens_inline)
			rxp__free(lens);
		if (ret) {
			atomic_fetch_add(&a->proto_errors, 1);
			rxp__call_fail_code(c, ret,
					    "callee could not decode the call");
			return;
		}
	}
	rxp__for_each_feature(ft) if (ft->on_decoded) ft->on_decoded(c);
	if (!find_fn(a, c->dc.name, &e)) {
		char msg[RXP_CODEC_MAX_NAME + 128];

		snprintf(msg, sizeof(msg),
			 "unknown function '%s' on worker '%s'", c->dc.name,
			 a->name);
		rxp__call_fail_code(c, -RXP_E_NO_FUNCTION, msg);
		return;
	}
	if (!!(e.flags & RXP_FN_ASYNC) !=
	    !!(c->dc.meta.flags & RXP_CALL_ASYNC_EXEC)) {
		char msg[RXP_CODEC_MAX_NAME + 128];

		snprintf(msg, sizeof(msg),
			 "function '%s' is %s but the call says %s", c->dc.name,
			 e.flags & RXP_FN_ASYNC ? "async" : "not async",
			 c->dc.meta.flags & RXP_CALL_ASYNC_EXEC ? "async"
								: "sync");
		rxp__call_fail_code(c, -RXP_E_ASYNC_MISMATCH, msg);
		return;
	}
	rxp__for_each_feature(
		ft) if (ft->before_run &&
			ft->before_run(
				c)) return; /* the feature failed the call */
	if (c->dc.meta.has_autograd) {
		struct rxp_autograd_hooks h = {0};
		struct rxp_autograd_meta m;

		rxp__registry_rdlock(&a->fn_lock);
		if (a->has_ag_hooks)
			h = a->ag_hooks;
		rxp__registry_rdunlock(&a->fn_lock);
		rxp_call_autograd(c, &m);
		if (h.on_recv)
			h.on_recv(h.user, &m, (int)c->caller, c->dc.name);
	}
	if (e.flags & RXP_FN_ASYNC) {
		c->async_fn = true;
		atomic_fetch_add(&a->server_active_async, 1);
	}
	atomic_fetch_add(&a->calls_served, 1);
	rxp__for_each_feature(ft) if (ft->on_start) ft->on_start(c);
	ret = e.fn(c, e.user);
	/* an async function may have completed (and the completion path
	 * released) the call already; our dispatch reference keeps it */
	if (atomic_load(&c->completed))
		return;
	if (ret)
		rxp__call_fail_code(c, -RXP_E_REMOTE, rxp_strerror(ret));
	else if (!c->async_fn)
		rxp__call_fail_code(c, -RXP_E_REMOTE,
				    "function returned without a result");
}

/* Why a call was refused, for its caller (the limit's variable named). */
static void refusal_text(struct rxp_agent *a, const struct rxp_call *c,
			 uint64_t bytes, enum rxp__pool_limit hit, char *msg,
			 size_t len)
{
	const struct rxp__pool_limits *l = &a->pool.lim;
	const char *var = rxp__pool_limit_var(hit);
	const char *from = a->workers[c->caller].name;

	switch (hit) {
	case RXP__POOL_PER_PEER:
		snprintf(msg, len,
			 "worker '%s' is busy: calls from '%s' waiting for a "
			 "thread reached %s=%u",
			 a->name, from, var, l->per_peer);
		break;
	case RXP__POOL_MAX:
		snprintf(msg, len,
			 "worker '%s' is busy: calls waiting for a thread "
			 "reached %s=%u",
			 a->name, var, l->max);
		break;
	default:
		snprintf(msg, len,
			 "worker '%s' is busy: this call's %llu bytes would "
			 "pass %s=%llu for calls %s%s%s waiting for a thread",
			 a->name, (unsigned long long)bytes, var,
			 (unsigned long long)(hit == RXP__POOL_BYTES_MAX
						      ? l->bytes_max
						      : l->bytes_per_peer),
			 hit == RXP__POOL_BYTES_MAX ? "" : "from '",
			 hit == RXP__POOL_BYTES_MAX ? "" : from,
			 hit == RXP__POOL_BYTES_MAX ? "" : "'");
		break;
	}
}

int rxp__call_queue(struct rxp_agent *a, struct rxp_call *c)
{
	enum rxp__pool_limit hit;
	uint64_t bytes = c->payload ? c->payload->len : 0, n;
	char msg[RXP_CODEC_MAX_NAME + 256];
	int ret;

	for (uint32_t i = 0; i < c->nst; i++)
		bytes += c->st[i]->len;
	ret = rxp__pool_push_call(&a->pool, c, bytes, &hit);
	if (!ret)
		return 0;
	if (ret != -RXP_E_LIMIT) {
		rxp__call_fail_code(c, -RXP_E_SHUTDOWN,
				    "callee is busy or shutting down");
		return ret;
	}
	/* the storages are not needed for the error: give them back now */
	for (uint32_t i = 0; i < c->nst; i++)
		rxp_buf_put(c->st[i]);
	c->nst = 0;
	refusal_text(a, c, bytes, hit, msg, sizeof(msg));
	n = atomic_fetch_add(&a->calls_refused_pool, 1) + 1;
	if (rxp_ratelog_due(&a->pool_log, n, &n))
		rxp_warn("agent", "refused %llu call(s) (%s): %s",
			 (unsigned long long)n, rxp__pool_limit_var(hit), msg);
	rxp__call_fail_code(c, -RXP_E_LIMIT, msg);
	return ret;
}

void rxp__dispatch(void *arg)
{
	struct rxp_call *c = arg;
	struct rxp_agent *a = c->agent;

	if (c->type == RXP__MSG_CALL || c->type == RXP__MSG_REMOTE) {
		serve_script_call(c);
	} else {
		rxp_msg_handler h;
		void *user;

		rxp__registry_rdlock(&a->fn_lock);
		h = a->handler;
		user = a->handler_user;
		rxp__registry_rdunlock(&a->fn_lock);
		if (h)
			h((struct rxp_request *)c, user);
		else
			rxp__call_fail_code(c, -RXP_E_NO_FUNCTION,
					    "no message handler registered");
	}
	rxp__call_put(c);
}

/* ---------------------------------------------------- autograd hooks */

int rxp_agent_set_autograd_hooks(struct rxp_agent *a,
				 const struct rxp_autograd_hooks *h)
{
	struct rxp_autograd_hooks copy = {0};
	int ret;

	if (!a)
		return -EINVAL;
	/* the first layout (0.2): size, on_send, on_recv, user */
	if (h &&
	    (ret = rxp_struct_in(&copy, sizeof(copy), h,
				 offsetof(struct rxp_autograd_hooks, user) +
					 sizeof(void *))))
		return ret;
	rxp__registry_wrlock(&a->fn_lock);
	a->has_ag_hooks = h != NULL;
	a->ag_hooks = copy;
	rxp__registry_wrunlock(&a->fn_lock);
	return 0;
}
