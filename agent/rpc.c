/* SPDX-License-Identifier: MIT */
/*
 * Making calls: rxp_rpc_async/sync, remote()'s call, rxp_msg_send and the
 * internal messages of the RRef protocol, all handed to the poller as
 * futures.
 */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent_int.h"

/* ------------------------------------------------------- calling */

static int future_set_storages(struct rxp_future *f,
			       const struct rxp_iov *storages, uint32_t n)
{
	if (n > RXP_WIRE_MAX_STORAGES)
		return -RXP_E_TOO_BIG;
	if (n && !storages)
		return -EINVAL;
	if (n > RXP__INLINE_STORAGES) {
		f->st = rxp__malloc(n * sizeof(*f->st));
		if (!f->st) {
			f->st = f->st_inline;
			return -ENOMEM;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!storages[i].base && storages[i].len)
			return -EINVAL;
		f->st[i] = storages[i];
	}
	f->nst = n;
	return 0;
}

static void *future_payload(struct rxp_future *f, size_t len)
{
	void *p = f->payload_inline;

	if (len > RXP__INLINE_PAYLOAD) {
		p = f->payload_heap = rxp__malloc(len);
		if (!p)
			return NULL;
	}
	f->payload_iov = (struct rxp_iov){.base = p, .len = len};
	return p;
}

/* Both levels: hand @f to the poller. On error @f is freed. */
static int future_submit(struct rxp_agent *a, struct rxp_future *f,
			 struct rxp_future **out)
{
	int ret;

	f->t_submit_ns = rxp_now_ns();
	atomic_fetch_add(&a->client_active, 1);
	atomic_fetch_add(&a->calls_sent, 1);
	ret = rxp__submit_future(a, f);
	if (ret) {
		atomic_fetch_sub(&a->client_active, 1);
		atomic_fetch_sub(&a->calls_sent, 1);
		rxp__future_put(f);
		rxp__future_put(f);
		return ret;
	}
	*out = f;
	return 0;
}

/* struct rxp_call_opts as in 0.2, which size 0 means */
#define OPTS_FIRST (offsetof(struct rxp_call_opts, autograd) + sizeof(void *))

/* @opts (sized, may be NULL) into the future's timeout (ns, 0 = never) and
 * the call's metadata */
static int check_opts(struct rxp_agent *a, const struct rxp_call_opts *in,
		      int64_t *tmo_ns, struct rxp_call_meta *meta)
{
	struct rxp_call_opts o = {0}, *opts = &o;
	int ret;

	*tmo_ns = a->rpc_timeout_ns;
	if (!in)
		return 0;
	/* the common case without a copy: this very layout (or size 0 while
	 * the first layout is this one) */
	if (in->size == sizeof(o) || (in->size == 0 && OPTS_FIRST == sizeof(o)))
		opts = (struct rxp_call_opts *)in;
	else if ((ret = rxp_struct_in(&o, sizeof(o), in, OPTS_FIRST)))
		return ret;
	if (rxp_timeout_ns(opts->timeout_ms, a->rpc_timeout_ns, tmo_ns) ||
	    (opts->flags & ~RXP_CALL_ASYNC_EXEC))
		return -EINVAL;
	meta->flags = opts->flags;
	if (opts->autograd) {
		meta->has_autograd = 1;
		meta->autograd_ctx_id = opts->autograd->context_id;
		meta->autograd_msg_id = opts->autograd->message_id;
		meta->force_grad_recording =
			opts->autograd->force_grad_recording;
	}
	return 0;
}

int rxp__rpc_submit(struct rxp_agent *a, int dst, const char *qualname,
		    const struct rxp_value *args, uint32_t nargs,
		    const struct rxp_iov *storages, uint32_t nstorages,
		    const struct rxp_call_opts *opts, enum rxp__api api,
		    const struct rxp_rref_desc *remote, struct rxp_future **out)
{
	struct rxp_call_meta meta = {0};
	const struct rxp_value *sent = NULL;
	struct rxp_future *f = NULL;
	union {
		char mem[1024];
		max_align_t align_;
	} amem;
	struct rxp_arena ar;
	const struct rxp__feature *ft;
	const struct rxp__feature *prepared = NULL;
	int64_t size, tmo;
	bool hooks;
	int ret;
	void *p;

	if (!qualname || (nargs && !args))
		return -EINVAL;
	if (dst < 0 || dst >= a->world)
		return -RXP_E_NO_WORKER;
	ret = check_opts(a, opts, &tmo, &meta);
	if (ret)
		return ret;
	if (atomic_load(&a->stopped))
		return -RXP_E_SHUTDOWN;
	if (remote) {
		meta.has_rref = 1;
		meta.rref_id = remote->rref;
		meta.fork_id = remote->fork;
	}
	hooks = atomic_load_explicit(&a->call_hooks, memory_order_relaxed);
	if (hooks)
		rxp__for_each_feature(ft) if (ft->call_meta)
			ft->call_meta(a, &meta);
	/* a feature may send a copy of the arguments (RRefs: fresh forks) */
	rxp_arena_init(&ar, amem.mem, sizeof(amem.mem));
	rxp__for_each_feature(ft)
	{
		if (!ft->prepare_args)
			continue;
		ret = ft->prepare_args(a, dst, args, nargs, &ar, &sent);
		if (ret)
			goto out;
		if (sent) {
			prepared = ft;
			break;
		}
	}
	if (!sent)
		sent = args;
	size = rxp_codec_call_size(qualname, sent, nargs, nstorages, &meta);
	ret = size < 0 ? (int)size : 0;
	if (!ret && (uint64_t)size > RXP_WIRE_DEFAULT_MAX_PAYLOAD)
		ret = -RXP_E_TOO_BIG;
	if (!ret) {
		f = rxp__future_new(a, RXP__FUT_CALL);
		ret = f ? 0 : -ENOMEM;
	}
	if (ret)
		goto out;
	f->dst = (uint32_t)dst;
	f->type = remote ? RXP__MSG_REMOTE : RXP__MSG_CALL;
	f->timeout_ns = tmo;
	f->api = (uint8_t)api;
	p = future_payload(f, (size_t)size);
	ret = p ? future_set_storages(f, storages, nstorages) : -ENOMEM;
	if (!ret && hooks) {
		f->hooked = true;
		rxp__for_each_feature(ft) if (!ret && ft->on_submit) ret =
			ft->on_submit(a, f, qualname);
	}
	if (ret)
		goto out;
	rxp_codec_call_encode(qualname, sent, nargs, nstorages, &meta, p,
			      (size_t)size);
	if (meta.has_autograd) {
		struct rxp_autograd_hooks h = {0};
		struct rxp_autograd_meta m = {
			.context_id = meta.autograd_ctx_id,
			.message_id = meta.autograd_msg_id,
			.force_grad_recording = meta.force_grad_recording,
		};

		rxp__registry_rdlock(&a->fn_lock);
		if (a->has_ag_hooks)
			h = a->ag_hooks;
		rxp__registry_rdunlock(&a->fn_lock);
		if (h.on_send)
			h.on_send(h.user, &m, dst, qualname);
	}
	ret = future_submit(a, f, out);
	f = NULL; /* future_submit frees it on error */
out:
	if (ret && prepared && prepared->unprepare_args)
		prepared->unprepare_args(a, sent, nargs);
	if (f) {
		rxp__future_put(f);
		rxp__future_put(f);
	}
	rxp_arena_fini(&ar);
	return ret;
}

int rxp_rpc_async(struct rxp_agent *a, int dst, const char *qualname,
		  const struct rxp_value *args, uint32_t nargs,
		  const struct rxp_iov *storages, uint32_t nstorages,
		  const struct rxp_call_opts *opts, struct rxp_future **out)
{
	if (!a || !out)
		return -EINVAL;
	return rxp__rpc_submit(a, dst, qualname, args, nargs, storages,
			       nstorages, opts, RXP__API_ASYNC, NULL, out);
}

int rxp_rpc_sync(struct rxp_agent *a, int dst, const char *qualname,
		 const struct rxp_value *args, uint32_t nargs,
		 const struct rxp_iov *storages, uint32_t nstorages,
		 const struct rxp_call_opts *opts, struct rxp_future **out)
{
	int ret;

	if (!a || !out)
		return -EINVAL;
	ret = rxp__rpc_submit(a, dst, qualname, args, nargs, storages,
			      nstorages, opts, RXP__API_SYNC, NULL, out);
	if (!ret)
		rxp_future_wait(*out);
	return ret;
}

int rxp__send_internal(struct rxp_agent *a, int dst, uint8_t type,
		       const void *payload, size_t len, int64_t timeout_ms,
		       enum rxp__fut_kind kind, struct rxp_future **out)
{
	struct rxp_future *f;

	if (len > RXP__INLINE_PAYLOAD || dst < 0 || dst >= a->world)
		return -EINVAL;
	if (atomic_load(&a->stopped))
		return -RXP_E_SHUTDOWN;
	f = rxp__future_new(a, kind);
	if (!f)
		return -ENOMEM;
	f->dst = (uint32_t)dst;
	f->type = type;
	if (rxp_timeout_ns(timeout_ms, a->rpc_timeout_ns, &f->timeout_ns)) {
		rxp__future_put(f);
		rxp__future_put(f);
		return -EINVAL;
	}
	memcpy(future_payload(f, len), payload, len);
	return future_submit(a, f, out);
}

int rxp_msg_send(struct rxp_agent *a, int dst, int type, const void *payload,
		 size_t len, const struct rxp_iov *storages, uint32_t nstorages,
		 int64_t timeout_ms, struct rxp_future **out)
{
	struct rxp_future *f;
	int64_t tmo;
	int ret;

	if (!a || !out || type < RXP_MSG_USER || type > 255 ||
	    (len && !payload) ||
	    rxp_timeout_ns(timeout_ms, a->rpc_timeout_ns, &tmo))
		return -EINVAL;
	if (dst < 0 || dst >= a->world)
		return -RXP_E_NO_WORKER;
	if (len > RXP_WIRE_DEFAULT_MAX_PAYLOAD)
		return -RXP_E_TOO_BIG;
	if (atomic_load(&a->stopped))
		return -RXP_E_SHUTDOWN;
	f = rxp__future_new(a, RXP__FUT_MSG);
	if (!f)
		return -ENOMEM;
	f->dst = (uint32_t)dst;
	f->type = (uint8_t)type;
	f->timeout_ns = tmo;
	f->payload_iov = (struct rxp_iov){.base = payload, .len = len};
	ret = future_set_storages(f, storages, nstorages);
	if (ret) {
		rxp__future_put(f);
		rxp__future_put(f);
		return ret;
	}
	return future_submit(a, f, out);
}
