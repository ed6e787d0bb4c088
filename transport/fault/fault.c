/* SPDX-License-Identifier: MIT */
/*
 * The fault transport: wraps another backend and makes chosen operations
 * fail, so that the agent's error paths run on demand and
 * deterministically (count-based, no randomness).
 *
 *   RXP_TRANSPORT=fault:tcp   (or fault:verbs)
 *   RXP_FAULT="send:nth=1:err=-105;recv:every=3:drop;sendcb:after=10:err=-104"
 *
 * Rules, separated by ';': "<point>:<when>:<what>"
 *   point  send     tp->send() returns the error (nothing queued)
 *          connect  tp->connect() returns the error
 *          sendcb   a send completes (on_send) with the error instead
 *          recv     a received message is dropped (the caller times out)
 *   when   nth=N    the N-th time only (1-based)
 *          every=N  every N-th time
 *          after=N  every time after the N-th (persistent)
 *   what   err=E    a negative errno or -RXP_E_* value
 *          drop     (recv only)
 * A malformed RXP_FAULT fails open() with -EINVAL and says why.
 *
 * Connections are the inner backend's; only the ops and callbacks pass
 * through here. Threads: as the inner backend (one thread at a time).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rxp_transport.h"

enum fault_point { FP_SEND, FP_CONNECT, FP_SENDCB, FP_RECV, FP__COUNT };
enum fault_when { FW_NTH, FW_EVERY, FW_AFTER };

#define MAX_RULES 16

struct fault_rule {
	enum fault_point point;
	enum fault_when when;
	uint64_t n;
	int err; /* 0 for drop */
};

struct fault_tp {
	struct rxp_tp base;
	struct rxp_tp_ops inner_ops; /* attr->inner's, complete */
	struct rxp_tp *inner;
	struct rxp_tp_cb cb;	    /* given to the inner backend */
	const struct rxp_tp_cb *up; /* the agent's */
	struct fault_rule rules[MAX_RULES];
	unsigned nrules;
	uint64_t count[FP__COUNT];
	uint64_t injected;
};

static const char *const point_names[FP__COUNT] = {"send", "connect", "sendcb",
						   "recv"};

static struct fault_tp *to_ftp(struct rxp_tp *tp)
{
	return rxp_container_of(tp, struct fault_tp, base);
}

/* Connections belong to the inner backend; the inner instance points back
 * at us (rxp_tp.outer, set in f_open before any connection exists). */
static struct fault_tp *of_conn(const struct rxp_conn *c)
{
	return c->tp->outer ? to_ftp(c->tp->outer) : NULL;
}

/* 0 = no fault now; otherwise the error (1 = drop) */
static int fault_check(struct fault_tp *f, enum fault_point p)
{
	uint64_t c = ++f->count[p];

	for (unsigned i = 0; i < f->nrules; i++) {
		const struct fault_rule *r = &f->rules[i];
		bool hit = false;

		if (r->point != p)
			continue;
		switch (r->when) {
		case FW_NTH:
			hit = c == r->n;
			break;
		case FW_EVERY:
			hit = c % r->n == 0;
			break;
		case FW_AFTER:
			hit = c > r->n;
			break;
		}
		if (hit) {
			f->injected++;
			rxp_dbg("fault", "%s #%llu: injecting %d",
				point_names[p], (unsigned long long)c, r->err);
			return r->err ? r->err : 1;
		}
	}
	return 0;
}

static int parse_rule(const char *s, struct fault_rule *r)
{
	char point[16], when[16], what[32];
	unsigned long long n;
	int i;

	if (sscanf(s, "%15[a-z]:%15[a-z]=%llu:%31s", point, when, &n, what) !=
	    4)
		return -EINVAL;
	for (i = 0; i < FP__COUNT; i++)
		if (!strcmp(point, point_names[i]))
			break;
	if (i == FP__COUNT || n == 0)
		return -EINVAL;
	r->point = (enum fault_point)i;
	if (!strcmp(when, "nth"))
		r->when = FW_NTH;
	else if (!strcmp(when, "every"))
		r->when = FW_EVERY;
	else if (!strcmp(when, "after"))
		r->when = FW_AFTER;
	else
		return -EINVAL;
	r->n = n;
	if (!strcmp(what, "drop")) {
		if (r->point != FP_RECV)
			return -EINVAL;
		r->err = 0;
		return 0;
	}
	if (sscanf(what, "err=%d", &r->err) != 1 || r->err >= 0 ||
	    r->point == FP_RECV)
		return -EINVAL;
	return 0;
}

static int parse_spec(struct fault_tp *f, const char *spec)
{
	char buf[512], *save = NULL, *tok;

	if (!spec)
		return 0;
	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	for (tok = strtok_r(buf, ";", &save); tok;
	     tok = strtok_r(NULL, ";", &save)) {
		if (f->nrules == MAX_RULES ||
		    parse_rule(tok, &f->rules[f->nrules])) {
			rxp_err("fault",
				"bad RXP_FAULT rule '%s' (see "
				"transport/fault/fault.c)",
				tok);
			return -EINVAL;
		}
		f->nrules++;
	}
	return 0;
}

/* ---------------------------------------------------------- callbacks */

static void f_on_conn(void *ctx, struct rxp_conn *c, int status)
{
	struct fault_tp *f = ctx;

	f->up->on_conn(f->up->ctx, c, status);
}

static void f_on_recv(void *ctx, struct rxp_conn *c, const struct rxp_msg_in *m)
{
	struct fault_tp *f = ctx;

	if (fault_check(f, FP_RECV))
		return; /* lost on the way */
	f->up->on_recv(f->up->ctx, c, m);
}

static void f_on_send(void *ctx, void *cookie, int status)
{
	struct fault_tp *f = ctx;
	int err = status ? 0 : fault_check(f, FP_SENDCB);

	f->up->on_send(f->up->ctx, cookie, err ? err : status);
}

/* ----------------------------------------------------------------- ops */

static int f_open(const struct rxp_tp_attr *attr, struct rxp_tp **out)
{
	struct rxp_tp_attr ia = *attr;
	struct fault_tp *f;
	int ret;

	if (!attr->inner || !attr->inner->open) {
		rxp_err("fault", "no backend to wrap (RXP_TRANSPORT=fault:tcp, "
				 "fault:verbs)");
		return -EINVAL;
	}
	f = rxp__calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	ret = parse_spec(f, getenv("RXP_FAULT"));
	if (ret)
		goto err_free;
	rxp_tp_ops_complete(&f->inner_ops, attr->inner);
	ia.inner = NULL;
	f->up = attr->cb;
	f->cb = (struct rxp_tp_cb){.ctx = f,
				   .on_conn = f_on_conn,
				   .on_recv = f_on_recv,
				   .on_send = f_on_send};
	ia.cb = &f->cb;
	ret = f->inner_ops.open(&ia, &f->inner);
	if (ret)
		goto err_free;
	f->inner->outer = &f->base;
	f->base.ops = &rxp_fault_ops;
	f->base.name = f->inner->name;
	rxp_info("fault", "fault injection over %s: %u rule(s)", f->inner->name,
		 f->nrules);
	*out = &f->base;
	return 0;
err_free:
	rxp__free(f);
	return ret;
}

static void f_close(struct rxp_tp *tp)
{
	struct fault_tp *f = to_ftp(tp);

	f->inner_ops.close(f->inner); /* callbacks still come through f */
	rxp__free(f);
}

static int f_address(struct rxp_tp *tp, char *buf, size_t len)
{
	struct fault_tp *f = to_ftp(tp);

	return f->inner_ops.address(f->inner, buf, len);
}

static int f_connect(struct rxp_tp *tp, const char *addr, uint32_t peer,
		     struct rxp_conn **out)
{
	struct fault_tp *f = to_ftp(tp);
	int err = fault_check(f, FP_CONNECT);

	if (err)
		return err;
	return f->inner_ops.connect(f->inner, addr, peer, out);
}

static void f_disconnect(struct rxp_conn *c)
{
	c->tp->ops->disconnect(c); /* the inner connection */
}

static int f_send(struct rxp_conn *c, const struct rxp_msg_out *m, void *cookie)
{
	struct fault_tp *f = of_conn(c);
	int err = f ? fault_check(f, FP_SEND) : 0;

	if (err)
		return err;
	return c->tp->ops->send(c, m, cookie);
}

static int f_cancel(struct rxp_conn *c, void *cookie)
{
	struct fault_tp *f = of_conn(c);

	/* the conns are the inner backend's */
	return f ? f->inner_ops.cancel(c, cookie) : -EBUSY;
}

static int f_progress(struct rxp_tp *tp)
{
	struct fault_tp *f = to_ftp(tp);
	int r = f->inner_ops.progress(f->inner);

	rxp_tp_counters_sum(&f->base, &f->inner, 1);
	return r;
}

static int f_wait_fd(struct rxp_tp *tp)
{
	struct fault_tp *f = to_ftp(tp);

	return f->inner_ops.wait_fd(f->inner);
}

static int f_arm(struct rxp_tp *tp)
{
	struct fault_tp *f = to_ftp(tp);

	return f->inner_ops.arm(f->inner);
}

static int f_mem_register(struct rxp_tp *tp, void *p, size_t len)
{
	struct fault_tp *f = to_ftp(tp);

	return f->inner_ops.mem_register(f->inner, p, len);
}

static int f_mem_unregister(struct rxp_tp *tp, void *p, size_t len)
{
	struct fault_tp *f = to_ftp(tp);

	return f->inner_ops.mem_unregister(f->inner, p, len);
}

const struct rxp_tp_ops rxp_fault_ops = {
	.name = "fault",
	.open = f_open,
	.close = f_close,
	.address = f_address,
	.connect = f_connect,
	.disconnect = f_disconnect,
	.send = f_send,
	.cancel = f_cancel,
	.progress = f_progress,
	.wait_fd = f_wait_fd,
	.arm = f_arm,
	.mem_register = f_mem_register,
	.mem_unregister = f_mem_unregister,
};
