/* SPDX-License-Identifier: MIT */
/*
 * The call profiler. Caller side: each call made while profiling is on
 * records "rpc_async_jit#<name>(<caller> -> <callee>)" (rpc_sync#...,
 * rpc_remote#...) from submission to completion, plus the callee's events
 * that came back with the response, moved onto the caller's clock.
 * Callee side: a profiled call records its function's run and any events
 * the function adds, and returns them in a response extension.
 *
 * Clock offset (the NTP estimate): the caller sees the call take R =
 * end - start; the callee reports it held the call for D = t_done - t_recv
 * on its own clock; each way then takes (R - D) / 2, so the callee's
 * t_recv happened at start + (R - D) / 2 on the caller's clock.
 *
 * Everything here is off the fast path: nothing runs unless profiling is
 * on (a relaxed load in rxp_rpc_async) or the caller asked for it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "agent_int.h"
#include "profiler.h"

/* an agent's profiler mu: its events */
RXP_LOCK_CLASS(prof_mu);

struct rxp__prof {
	struct rxp_mutex mu; /* class prof_mu */
	struct rxp_prof_event *ev RXP_GUARDED_BY(prof_mu);
	size_t n RXP_GUARDED_BY(prof_mu);
	size_t cap RXP_GUARDED_BY(prof_mu);
};

#define PROF_MAX_EVENTS (1u << 20)

static inline struct rxp__prof *prof_of(const struct rxp_agent *a)
{
	return (struct rxp__prof *)a->feat[RXP__SLOT_PROF];
}

/* A profiled call's future (its extension area, feature.h). */
struct prof_future {
	char *name; /* qualified name, heap */
	bool on;
};
RXP__EXT_FITS(struct prof_future);
#define PF(f) RXP__EXT(f, RXP__SLOT_PROF, struct prof_future)

/* An incoming call's events, sent back with the response. */
struct prof_call {
	bool profiling;
	bool fn_span_open; /* ev[0] is the function's span, still open */
	uint32_t nev, capev;
	struct rxp_prof_wire_event *ev;
	char **ev_names;
};
RXP__EXT_FITS(struct prof_call);
#define PC(c) RXP__EXT(c, RXP__SLOT_PROF, struct prof_call)

static const char *const api_prefix[] = {
	[RXP__API_ASYNC] = "rpc_async_jit",
	[RXP__API_SYNC] = "rpc_sync",
	[RXP__API_REMOTE] = "rpc_remote",
};

int rxp_profiler_enable(struct rxp_agent *a, bool on)
{
	if (!a)
		return -EINVAL;
	if (on && !prof_of(a)) {
		struct rxp__prof *p = rxp__calloc(1, sizeof(*p));

		if (!p)
			return -ENOMEM;
		rxp_mutex_init(&p->mu);
		/* published once; never replaced while the agent lives */
		a->feat[RXP__SLOT_PROF] = p;
	}
	/* the only on_submit hook today: calls pay for it only while on */
	atomic_store(&a->call_hooks, on);
	return 0;
}

static struct rxp_prof_event *prof_slot(struct rxp__prof *p)
	RXP_REQUIRES(prof_mu)
{
	if (p->n == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 256;
		struct rxp_prof_event *v;

		if (ncap > PROF_MAX_EVENTS)
			return NULL;
		v = rxp__realloc(p->ev, ncap * sizeof(*v));
		if (!v)
			return NULL;
		p->ev = v;
		p->cap = ncap;
	}
	memset(&p->ev[p->n], 0, sizeof(p->ev[0]));
	return &p->ev[p->n++];
}

/* Poller, at fulfil: record the call and its callee's events. */
static void prof_record_call(struct rxp_agent *a, struct rxp_future *f)
{
	struct rxp__prof *p = prof_of(a);
	int64_t end = rxp_now_ns();
	struct rxp_prof_event *e;
	const char *callee;
	int parent;

	if (!p || !PF(f)->on)
		return;
	callee = f->dst < (uint32_t)a->world ? a->workers[f->dst].name : "?";
	prof_mu_lock(&p->mu);
	e = prof_slot(p);
	if (!e)
		goto out;
	parent = (int)(p->n - 1);
	/* bounded pieces: a key longer than the field is cut, not lost */
	snprintf(e->name, sizeof(e->name), "%s#%.120s(%.56s -> %.56s)",
		 api_prefix[f->api], PF(f)->name ? PF(f)->name : "?", a->name,
		 callee);
	e->start_ns = f->t_submit_ns;
	e->end_ns = end;
	e->worker = a->rank;
	e->parent = -1;
	e->status = f->status;
	e->bytes_sent = f->payload_iov.len;
	for (uint32_t i = 0; i < f->nst; i++)
		e->bytes_sent += f->st[i].len;
	if (f->resp_payload)
		e->bytes_received = f->resp_payload->len;
	for (uint32_t i = 0; i < f->nrst; i++)
		e->bytes_received += f->rst[i]->len;
	snprintf(e->transport, sizeof(e->transport), "%s",
		 a->tp ? a->tp->name : "?");
	if (f->resp_ext.has_prof) {
		const struct rxp_resp_ext *x = &f->resp_ext;
		int64_t r = end - f->t_submit_ns;
		int64_t d = x->t_done_ns - x->t_recv_ns;
		int64_t oneway = r > d ? (r - d) / 2 : 0;
		int64_t offset = f->t_submit_ns + oneway - x->t_recv_ns;

		for (uint32_t i = 0; i < x->nevents; i++) {
			struct rxp_prof_event *ce = prof_slot(p);

			if (!ce)
				break;
			snprintf(ce->name, sizeof(ce->name),
				 "%s#%.100s(%.40s -> %.40s)#%.40s",
				 api_prefix[f->api],
				 PF(f)->name ? PF(f)->name : "?", a->name,
				 callee, x->events[i].name);
			ce->start_ns = x->events[i].start_ns + offset;
			ce->end_ns = x->events[i].end_ns + offset;
			ce->worker = (int)f->dst;
			ce->parent = parent;
			snprintf(ce->transport, sizeof(ce->transport), "%s",
				 e->transport);
		}
	}
out:
	prof_mu_unlock(&p->mu);
}

int rxp_profiler_events(struct rxp_agent *a, struct rxp_prof_event *out,
			size_t max)
{
	struct rxp__prof *p;
	size_t n;

	if (!a || (max && !out))
		return -EINVAL;
	p = prof_of(a);
	if (!p)
		return 0;
	prof_mu_lock(&p->mu);
	n = p->n;
	if (n && max)
		memcpy(out, p->ev, (n < max ? n : max) * sizeof(*out));
	prof_mu_unlock(&p->mu);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

void rxp_profiler_clear(struct rxp_agent *a)
{
	if (!a || !prof_of(a))
		return;
	prof_mu_lock(&prof_of(a)->mu);
	prof_of(a)->n = 0;
	prof_mu_unlock(&prof_of(a)->mu);
}

static void json_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(fp, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(fp, "\\u%04x", ch);
		else
			fputc(ch, fp);
	}
	fputc('"', fp);
}

int rxp_profiler_export_chrome(struct rxp_agent *a, const char *path)
{
	struct rxp__prof *p;
	FILE *fp;
	int64_t t0 = INT64_MAX;
	int ret = 0;

	if (!a || !path)
		return -EINVAL;
	fp = fopen(path, "w");
	if (!fp)
		return -errno;
	p = prof_of(a);
	fprintf(fp, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
	/* one "process" per worker, named */
	for (int w = 0; w < a->world; w++) {
		fprintf(fp,
			"%s{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,"
			"\"args\":{\"name\":",
			w ? ",\n" : "", w);
		json_str(fp, a->workers[w].name);
		fprintf(fp, "}}");
	}
	if (p) {
		prof_mu_lock(&p->mu);
		for (size_t i = 0; i < p->n; i++)
			if (p->ev[i].start_ns < t0)
				t0 = p->ev[i].start_ns;
		for (size_t i = 0; i < p->n; i++) {
			const struct rxp_prof_event *e = &p->ev[i];

			fprintf(fp, ",\n{\"ph\":\"X\",\"name\":");
			json_str(fp, e->name);
			fprintf(fp,
				",\"cat\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":%"
				".3f,"
				"\"dur\":%.3f,\"args\":{\"status\":%d,"
				"\"bytes_sent\":%" PRIu64
				",\"bytes_received\":%" PRIu64
				",\"transport\":",
				e->parent < 0 ? "rpc" : "remote", e->worker,
				e->parent < 0 ? 0 : 1,
				(double)(e->start_ns - t0) / 1e3,
				(double)(e->end_ns - e->start_ns) / 1e3,
				e->status, e->bytes_sent, e->bytes_received);
			json_str(fp, e->transport);
			fprintf(fp, "}}");
		}
		prof_mu_unlock(&p->mu);
	}
	fprintf(fp, "\n]}\n");
	if (ferror(fp))
		ret = -EIO;
	if (fclose(fp) && !ret)
		ret = -errno;
	return ret;
}

static void prof_fini(struct rxp_agent *a)
{
	if (!prof_of(a))
		return;
	/* the agent is going: uncontended, taken to free what it guards */
	prof_mu_lock(&prof_of(a)->mu);
	rxp__free(prof_of(a)->ev);
	prof_mu_unlock(&prof_of(a)->mu);
	rxp_mutex_destroy(&prof_of(a)->mu);
	rxp__free(prof_of(a));
	a->feat[RXP__SLOT_PROF] = NULL;
}

/* ------------------------------------------------------------- callee */

int rxp_call_record_event(struct rxp_call *c, const char *name,
			  int64_t start_ns, int64_t end_ns)
{
	char *copy;

	if (!c || !name || end_ns < start_ns)
		return -EINVAL;
	if (!PC(c)->profiling)
		return 0; /* nobody asked: free when off */
	if (PC(c)->nev == RXP_CODEC_MAX_PROF_EVENTS)
		return -RXP_E_TOO_BIG;
	if (PC(c)->nev == PC(c)->capev) {
		uint32_t ncap = PC(c)->capev ? PC(c)->capev * 2 : 8;
		struct rxp_prof_wire_event *v =
			rxp__realloc(PC(c)->ev, ncap * sizeof(*v));
		char **nv;

		if (!v)
			return -ENOMEM;
		PC(c)->ev = v;
		nv = rxp__realloc(PC(c)->ev_names, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		PC(c)->ev_names = nv;
		PC(c)->capev = ncap;
	}
	copy = rxp__strdup(name);
	if (!copy)
		return -ENOMEM;
	PC(c)->ev_names[PC(c)->nev] = copy;
	PC(c)->ev[PC(c)->nev] =
		(struct rxp_prof_wire_event){.name = copy,
					     .name_len = (uint32_t)strlen(copy),
					     .start_ns = start_ns,
					     .end_ns = end_ns};
	PC(c)->nev++;
	return 0;
}

static const struct rxp_resp_ext *prof_call_ext(struct rxp_call *c,
						struct rxp_resp_ext *ext)
{
	int64_t now;

	if (!PC(c)->profiling)
		return NULL;
	now = rxp_now_ns();
	if (PC(c)->fn_span_open && PC(c)->nev) {
		PC(c)->ev[0].end_ns = now;
		PC(c)->fn_span_open = false;
	}
	*ext = (struct rxp_resp_ext){.has_prof = 1,
				     .t_recv_ns = c->t_recv_ns,
				     .t_done_ns = now,
				     .nevents = PC(c)->nev,
				     .events = PC(c)->ev};
	return ext;
}

static void prof_call_free(struct rxp_call *c)
{
	for (uint32_t i = 0; i < PC(c)->nev; i++)
		rxp__free(PC(c)->ev_names[i]);
	rxp__free(PC(c)->ev_names);
	rxp__free(PC(c)->ev);
}

/* ------------------------------------------------- the feature (hooks) */

/* call_hooks is on exactly while profiling is: ask the callee for its
 * events, and keep the name to record the call under */
static void prof_call_meta(struct rxp_agent *a, struct rxp_call_meta *meta)
{
	meta->profiling = 1;
}

static int prof_on_submit(struct rxp_agent *a, struct rxp_future *f,
			  const char *qualname)
{
	PF(f)->on = true;
	PF(f)->name = rxp__strdup(qualname); /* NULL: recorded as "?" */
	return 0;
}

static void prof_future_free(struct rxp_future *f)
{
	rxp__free(PF(f)->name);
}

static void prof_on_decoded(struct rxp_call *c)
{
	PC(c)->profiling = c->dc.meta.profiling;
}

static void prof_on_start(struct rxp_call *c)
{
	int64_t t0;

	if (!PC(c)->profiling)
		return;
	/* the function's span: event 0, closed when it completes */
	t0 = rxp_now_ns();
	PC(c)->fn_span_open = !rxp_call_record_event(c, c->dc.name, t0, t0);
}

const struct rxp__feature rxp__prof_feature = {
	.name = "profiler",
	.slot = RXP__SLOT_PROF,
	.fini = prof_fini,
	.call_meta = prof_call_meta,
	.on_submit = prof_on_submit,
	.on_done = prof_record_call,
	.future_free = prof_future_free,
	.on_decoded = prof_on_decoded,
	.on_start = prof_on_start,
	.resp_ext = prof_call_ext,
	.call_free = prof_call_free,
};
