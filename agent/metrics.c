/* SPDX-License-Identifier: MIT */
/*
 * Metrics: PyTorch's agent keys plus rxp's own, per-peer counters and
 * per-peer latency histograms; read racily (relaxed atomics), written as
 * "key value" lines or in the Prometheus text exposition format 0.0.4.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent_int.h"

/*
 * The agent's metrics, one line each: the getter's name, COUNTER (only
 * grows) or GAUGE, the key, how to read it, the help text. Adding one is
 * one line here. The key is what rxp_agent_metric() takes and the text
 * format prints; the Prometheus name is made from it: "rxp_", the key with
 * '.' as '_', and "_total" after a counter's (calls.sent ->
 * rxp_calls_sent_total). Keys are [a-z0-9_.]: test_metrics has a
 * Prometheus parser read every name.
 */
/* clang-format off */
#define AGENT_METRICS(X) \
X(client_active, GAUGE, "agent.client_active_calls", atomic_load(&a->client_active), "Calls and messages this worker sent that have not completed.") \
X(server_active, GAUGE, "agent.server_active_calls", atomic_load(&a->server_active), "Incoming calls this worker is serving.") \
X(server_async, GAUGE, "agent.server_active_async_calls", atomic_load(&a->server_active_async), "Incoming calls held by asynchronous functions.") \
X(pool_size, GAUGE, "agent.thread_pool_size", a->pool.nthreads, "Threads of the worker pool.") \
X(idle, GAUGE, "agent.num_idle_threads", atomic_load(&a->pool.idle), "Idle threads of the worker pool.") \
X(calls_sent, COUNTER, "calls.sent", atomic_load(&a->calls_sent), "Calls and messages sent.") \
X(calls_failed, COUNTER, "calls.failed", atomic_load(&a->calls_failed), "Calls and messages that completed with an error.") \
X(timed_out, COUNTER, "calls.timed_out", atomic_load(&a->calls_timed_out), "Calls and messages that timed out.") \
X(late, COUNTER, "calls.late_responses", atomic_load(&a->late_responses), "Responses that came after their call had completed.") \
X(served, COUNTER, "calls.served", atomic_load(&a->calls_served), "Incoming calls served.") \
X(resp_dropped, COUNTER, "calls.responses_dropped", atomic_load(&a->responses_dropped), "Responses whose connection closed before they were sent.") \
X(forged, COUNTER, "calls.forged_responses", atomic_load(&a->forged_responses), "Responses for a pending call that came on another connection than its request (ignored).") \
X(withdrawn, COUNTER, "calls.timed_out_unsent", atomic_load(&a->sends_withdrawn), "Timed-out requests taken back from the transport before any byte went.") \
X(stuck_closes, COUNTER, "conns.closed_stuck", atomic_load(&a->stuck_closes), "Connections closed because a timed-out request was still being sent RXP_SEND_GRACE_MS after its deadline.") \
X(refused_queue, COUNTER, "calls.refused_queue_full", atomic_load(&a->calls_refused_queue), "Calls refused because RXP_MAX_QUEUED_CALLS already waited for their worker.") \
X(backlog_closes, COUNTER, "conns.closed_unread_responses", atomic_load(&a->backlog_closes), "Connections closed because their caller left RXP_MAX_QUEUED_RESPONSES responses unread.") \
X(refused_pool, COUNTER, "calls.refused_pool_queue", atomic_load(&a->calls_refused_pool), "Incoming calls refused because the RXP_POOL_QUEUE_* budget of calls waiting for a pool thread was full.") \
X(pool_queued, GAUGE, "pool.queued_calls", pool_queued(a, false), "Incoming calls waiting for a pool thread.") \
X(pool_queued_bytes, GAUGE, "pool.queued_bytes", pool_queued(a, true), "Bytes (payloads and storages) held by incoming calls waiting for a pool thread.") \
X(conns_limited, COUNTER, "conns.refused_limit", a->tp ? atomic_load(&a->tp->conns_limited) : 0, "Accepted connections refused or dropped by RXP_MAX_CONNS or RXP_MAX_UNAUTH_CONNS.") \
X(conns_stalled, COUNTER, "conns.closed_stalled", a->tp ? atomic_load(&a->tp->conns_stalled) : 0, "Connections closed because a started frame stalled for RXP_RECV_STALL_MS.") \
X(rx_mem_refused, COUNTER, "conns.closed_rx_memory", a->tp ? rxp_tp_counter(&a->tp->rx_mem_refused) : 0, "Connections closed because a piece of a frame would have taken the receive memory past RXP_MAX_RX_MEMORY.") \
X(rx_ahead, GAUGE, "transport.rx_memory_ahead", a->tp ? rxp_tp_counter(&a->tp->rx_ahead) : 0, "Bytes of receive buffers held for frames not yet complete.") \
X(accept_pauses, COUNTER, "conns.accept_pauses", a->tp ? atomic_load(&a->tp->accept_pauses) : 0, "Times accepting paused on a resource limit (EMFILE, ENFILE, ...).") \
X(prehs_failed, COUNTER, "conns.failed_handshake", a->tp ? atomic_load(&a->tp->conns_prehs_failed) : 0, "Accepted connections that failed before completing their handshake (silence, garbage).") \
X(proto, COUNTER, "errors.protocol", atomic_load(&a->proto_errors), "Messages of an unknown type received.") \
X(bytes_sent, COUNTER, "transport.bytes_sent", a->tp ? rxp_tp_counter(&a->tp->bytes_sent) : 0, "Bytes the transport sent.") \
X(bytes_recv, COUNTER, "transport.bytes_received", a->tp ? rxp_tp_counter(&a->tp->bytes_received) : 0, "Bytes the transport received.") \
X(msgs_sent, COUNTER, "transport.msgs_sent", a->tp ? rxp_tp_counter(&a->tp->msgs_sent) : 0, "Messages the transport sent.") \
X(msgs_recv, COUNTER, "transport.msgs_received", a->tp ? rxp_tp_counter(&a->tp->msgs_received) : 0, "Messages the transport received.") \
X(auth_refused, COUNTER, "transport.auth_refused", a->tp ? atomic_load_explicit(&a->tp->auth_refused, memory_order_relaxed) : 0, "Connections refused by authentication.")

/* Per peer, the same way: key peer.<name>.<key>, Prometheus name
 * rxp_peer_<key>_total{peer="<name>"}; each reads w->field. */
#define PEER_METRICS(X) \
X(calls, COUNTER, "calls", calls, "Calls and messages sent to the peer.") \
X(bytes_sent, COUNTER, "bytes_sent", bytes_sent, "Bytes of calls and messages sent to the peer.") \
X(bytes_recv, COUNTER, "bytes_received", bytes_recv, "Bytes received from the peer.") \
X(errors, COUNTER, "errors", errors, "Calls and messages to the peer that completed with an error.")
/* clang-format on */

static uint64_t pool_queued(struct rxp_agent *a, bool bytes)
{
	uint64_t n, b;

	rxp__pool_queued(&a->pool, &n, &b);
	return bytes ? b : n;
}

#define X(id, kind, key, expr, help)                                           \
	static int64_t m_##id(struct rxp_agent *a)                             \
	{                                                                      \
		return (int64_t)(expr);                                        \
	}
AGENT_METRICS(X)
#undef X

static const struct rxp__metric metrics[] = {
#define X(id, kind, key, expr, help) {key, m_##id, RXP__##kind, help},
	AGENT_METRICS(X)
#undef X
};

static const struct {
	const char *key, *help;
	enum rxp__metric_kind kind;
} peer_keys[] = {
#define X(id, kind, key, field, help) {key, help, RXP__##kind},
	PEER_METRICS(X)
#undef X
};

static int64_t peer_metric(struct rxp__worker *w, unsigned k)
{
	unsigned i = 0;

#define X(id, kind, key, field, help)                                          \
	if (k == i++)                                                          \
		return (int64_t)atomic_load_explicit(&w->field,                \
						     memory_order_relaxed);
	PEER_METRICS(X)
#undef X
	return 0;
}

int rxp_agent_metric(struct rxp_agent *a, const char *key, int64_t *value)
{
	const struct rxp__feature *ft;

	if (!a || !key || !value)
		return -EINVAL;
	for (size_t i = 0; i < RXP_ARRAY_SIZE(metrics); i++)
		if (!strcmp(key, metrics[i].key)) {
			*value = metrics[i].get(a);
			return 0;
		}
	rxp__for_each_feature(
		ft) for (unsigned i = 0; i < ft->nmetrics;
			 i++) if (!strcmp(key, ft->metrics[i].key))
	{
		*value = ft->metrics[i].get(a);
		return 0;
	}
	if (!strncmp(key, "peer.", 5)) {
		const char *dot = strrchr(key + 5, '.');

		for (int w = 0; dot && w < a->world; w++) {
			size_t nl = strlen(a->workers[w].name);

			if ((size_t)(dot - (key + 5)) != nl ||
			    strncmp(key + 5, a->workers[w].name, nl))
				continue;
			for (unsigned k = 0; k < RXP_ARRAY_SIZE(peer_keys); k++)
				if (!strcmp(dot + 1, peer_keys[k].key)) {
					*value = peer_metric(&a->workers[w], k);
					return 0;
				}
		}
	}
	return -ENOENT;
}

/* ------------------------------------------------------------- output */

/* Text into a caller's buffer (snprintf-like: @off counts what was
 * needed) or, with fd >= 0, through a buffer on the stack to a file. */
struct out {
	char *buf;
	size_t len, off;
	int fd;
	int err; /* the first write error, -errno */
	size_t fill;
	char tmp[4096];
};

static void out_flush(struct out *o)
{
	size_t done = 0;

	while (!o->err && done < o->fill) {
		ssize_t n = write(o->fd, o->tmp + done, o->fill - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			o->err = -errno;
		else
			done += (size_t)n;
	}
	o->fill = 0;
}

static void out_printf(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->fd < 0) {
		va_start(ap, fmt);
		n = vsnprintf(o->off < o->len ? o->buf + o->off : NULL,
			      o->off < o->len ? o->len - o->off : 0, fmt, ap);
		va_end(ap);
		if (n > 0)
			o->off += (size_t)n;
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		size_t room = sizeof(o->tmp) - o->fill;

		va_start(ap, fmt);
		n = vsnprintf(o->tmp + o->fill, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room || !o->fill) {
			/* fits, or cannot fit even alone: cut (no line of
			 * ours is that long) */
			o->fill += (size_t)n < room ? (size_t)n : room - 1;
			return;
		}
		out_flush(o); /* make room, then again */
	}
}

static void write_text(struct rxp_agent *a, struct out *o)
{
	const struct rxp__feature *ft;

	for (size_t i = 0; i < RXP_ARRAY_SIZE(metrics); i++)
		out_printf(o, "%s %lld\n", metrics[i].key,
			   (long long)metrics[i].get(a));
	rxp__for_each_feature(ft) for (unsigned i = 0; i < ft->nmetrics; i++)
		out_printf(o, "%s %lld\n", ft->metrics[i].key,
			   (long long)ft->metrics[i].get(a));
	for (int w = 0; w < a->world; w++)
		for (unsigned k = 0; k < RXP_ARRAY_SIZE(peer_keys); k++)
			out_printf(o, "peer.%s.%s %lld\n", a->workers[w].name,
				   peer_keys[k].key,
				   (long long)peer_metric(&a->workers[w], k));
}

/* ------------------------------------------------- Prometheus format */

/* @s as a label value: backslash, double quote and newline escaped */
static void label_escape(char *dst, size_t cap, const char *s)
{
	size_t n = 0;

	for (; *s && n + 3 < cap; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			dst[n++] = '\\';
			dst[n++] = *s == '\n' ? 'n' : *s;
		} else {
			dst[n++] = *s;
		}
	}
	dst[n] = '\0';
}

/* "rxp_" + @prefix + @key with '.' as '_', "_total" for a counter */
static void prom_name(char *dst, size_t cap, const char *prefix,
		      const char *key, enum rxp__metric_kind kind)
{
	size_t n = (size_t)snprintf(dst, cap, "rxp_%s", prefix);

	for (; *key && n + 1 < cap; key++)
		dst[n++] = *key == '.' ? '_' : *key;
	dst[n] = '\0';
	if (kind == RXP__COUNTER)
		snprintf(dst + n, cap - n, "_total");
}

static void prom_head(struct out *o, const char *name,
		      enum rxp__metric_kind kind, const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
		   kind == RXP__COUNTER ? "counter" : "gauge");
}

/* a peer this worker never sent to, heard from or failed to reach has
 * no series: a 1000-worker job would otherwise write 30 lines of zeros
 * per peer */
static bool peer_active(struct rxp__worker *w)
{
	return atomic_load_explicit(&w->calls, memory_order_relaxed) ||
	       atomic_load_explicit(&w->bytes_recv, memory_order_relaxed) ||
	       atomic_load_explicit(&w->errors, memory_order_relaxed);
}

static const char *peer_label(struct rxp__worker *w, char *buf, size_t cap)
{
	char esc[2 * sizeof(w->name)];

	label_escape(esc, sizeof(esc), w->name);
	snprintf(buf, cap, "peer=\"%s\"", esc);
	return buf;
}

static void write_hist(struct rxp_agent *a, struct out *o, const char *self)
{
	static const char name[] = "rxp_peer_call_latency_seconds";
	char peer[2 * sizeof(a->workers[0].name) + 16];

	out_printf(o,
		   "# HELP %s Round trips of the calls and messages this "
		   "worker sent that the peer answered (submit to response).\n"
		   "# TYPE %s histogram\n",
		   name, name);
	for (int w = 0; w < a->world; w++) {
		struct rxp__lat_hist *h = &a->workers[w].lat;
		uint64_t cum = 0;

		if (!peer_active(&a->workers[w]))
			continue;
		peer_label(&a->workers[w], peer, sizeof(peer));
		/* each bucket read once: buckets, +Inf and _count agree */
		for (unsigned b = 0; b <= RXP__LAT_BUCKETS; b++) {
			cum += atomic_load_explicit(&h->n[b],
						    memory_order_relaxed);
			if (b < RXP__LAT_BUCKETS)
				out_printf(
					o,
					"%s_bucket{%s,%s,le=\"%.9g\"} %llu\n",
					name, self, peer,
					(double)(1ull << b) * 1e-6,
					(unsigned long long)cum);
			else
				out_printf(
					o,
					"%s_bucket{%s,%s,le=\"+Inf\"} %llu\n",
					name, self, peer,
					(unsigned long long)cum);
		}
		out_printf(o, "%s_sum{%s,%s} %.9f\n", name, self, peer,
			   (double)atomic_load_explicit(&h->sum_ns,
							memory_order_relaxed) /
				   1e9);
		out_printf(o, "%s_count{%s,%s} %llu\n", name, self, peer,
			   (unsigned long long)cum);
	}
}

static void write_prom(struct rxp_agent *a, struct out *o)
{
	const struct rxp__feature *ft;
	char esc[2 * sizeof(a->name)], self[sizeof(esc) + 32], name[160];
	char peer[2 * sizeof(a->workers[0].name) + 16];

	label_escape(esc, sizeof(esc), a->name);
	snprintf(self, sizeof(self), "worker=\"%s\",rank=\"%d\"", esc, a->rank);
	out_printf(o,
		   "# HELP rxp_agent_info This worker: its transport and rxp's "
		   "version in labels, value 1.\n"
		   "# TYPE rxp_agent_info gauge\n"
		   "rxp_agent_info{%s,transport=\"%s\",version=\"%s\"} 1\n",
		   self, rxp_agent_transport(a), rxp_version());
	for (size_t i = 0; i < RXP_ARRAY_SIZE(metrics); i++) {
		prom_name(name, sizeof(name), "", metrics[i].key,
			  metrics[i].kind);
		prom_head(o, name, metrics[i].kind, metrics[i].help);
		out_printf(o, "%s{%s} %lld\n", name, self,
			   (long long)metrics[i].get(a));
	}
	rxp__for_each_feature(ft) for (unsigned i = 0; i < ft->nmetrics; i++)
	{
		const struct rxp__metric *m = &ft->metrics[i];

		prom_name(name, sizeof(name), "", m->key, m->kind);
		prom_head(o, name, m->kind, m->help ? m->help : m->key);
		out_printf(o, "%s{%s} %lld\n", name, self,
			   (long long)m->get(a));
	}
	for (unsigned k = 0; k < RXP_ARRAY_SIZE(peer_keys); k++) {
		prom_name(name, sizeof(name), "peer_", peer_keys[k].key,
			  peer_keys[k].kind);
		prom_head(o, name, peer_keys[k].kind, peer_keys[k].help);
		for (int w = 0; w < a->world; w++)
			if (peer_active(&a->workers[w]))
				out_printf(o, "%s{%s,%s} %lld\n", name, self,
					   peer_label(&a->workers[w], peer,
						      sizeof(peer)),
					   (long long)peer_metric(
						   &a->workers[w], k));
	}
	write_hist(a, o, self);
}

int rxp_agent_metrics_dump(struct rxp_agent *a, char *buf, size_t len)
{
	struct out o = {.buf = buf, .len = len, .fd = -1};

	if (!a || (len && !buf))
		return -EINVAL;
	write_text(a, &o);
	return o.off > (size_t)INT32_MAX ? -RXP_E_TOO_BIG : (int)o.off;
}

int rxp_agent_metrics_write(struct rxp_agent *a, int fd, int format)
{
	struct out o = {.fd = fd};

	if (!a || fd < 0)
		return -EINVAL;
	switch (format) {
	case RXP_METRICS_TEXT:
		write_text(a, &o);
		break;
	case RXP_METRICS_PROMETHEUS:
		write_prom(a, &o);
		break;
	default:
		return -EINVAL;
	}
	out_flush(&o);
	return o.err;
}
