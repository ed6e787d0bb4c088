/* SPDX-License-Identifier: MIT */
/* Metrics: PyTorch's agent keys plus rxp's own, read racily (relaxed). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent_int.h"

#define M(name, expr)                                                          \
	static int64_t m_##name(struct rxp_agent *a)                           \
	{                                                                      \
		return (int64_t)(expr);                                        \
	}
M(client_active, atomic_load(&a->client_active))
M(server_active, atomic_load(&a->server_active))
M(server_active_async, atomic_load(&a->server_active_async))
M(pool_size, a->pool.nthreads)
M(idle, atomic_load(&a->pool.idle))
M(calls_sent, atomic_load(&a->calls_sent))
M(calls_failed, atomic_load(&a->calls_failed))
M(calls_timed_out, atomic_load(&a->calls_timed_out))
M(late, atomic_load(&a->late_responses))
M(proto, atomic_load(&a->proto_errors))
M(served, atomic_load(&a->calls_served))
M(resp_dropped, atomic_load(&a->responses_dropped))
M(forged, atomic_load(&a->forged_responses))
M(withdrawn, atomic_load(&a->sends_withdrawn))
M(stuck_closes, atomic_load(&a->stuck_closes))
M(refused_queue, atomic_load(&a->calls_refused_queue))
M(backlog_closes, atomic_load(&a->backlog_closes))
M(conns_limited, a->tp ? atomic_load(&a->tp->conns_limited) : 0)
M(conns_stalled, a->tp ? atomic_load(&a->tp->conns_stalled) : 0)
M(accept_pauses, a->tp ? atomic_load(&a->tp->accept_pauses) : 0)
M(auth_refused,
  a->tp ? atomic_load_explicit(&a->tp->auth_refused, memory_order_relaxed) : 0)
M(bytes_sent, a->tp ? rxp_tp_counter(&a->tp->bytes_sent) : 0)
M(bytes_recv, a->tp ? rxp_tp_counter(&a->tp->bytes_received) : 0)
M(msgs_sent, a->tp ? rxp_tp_counter(&a->tp->msgs_sent) : 0)
M(msgs_recv, a->tp ? rxp_tp_counter(&a->tp->msgs_received) : 0)
#undef M

static const struct rxp__metric metrics[] = {
	{"agent.client_active_calls", m_client_active},
	{"agent.server_active_calls", m_server_active},
	{"agent.server_active_async_calls", m_server_active_async},
	{"agent.thread_pool_size", m_pool_size},
	{"agent.num_idle_threads", m_idle},
	{"calls.sent", m_calls_sent},
	{"calls.failed", m_calls_failed},
	{"calls.timed_out", m_calls_timed_out},
	{"calls.late_responses", m_late},
	{"calls.served", m_served},
	{"calls.responses_dropped", m_resp_dropped},
	{"calls.forged_responses", m_forged},
	{"calls.timed_out_unsent", m_withdrawn},
	{"conns.closed_stuck", m_stuck_closes},
	{"calls.refused_queue_full", m_refused_queue},
	{"conns.closed_unread_responses", m_backlog_closes},
	{"conns.refused_limit", m_conns_limited},
	{"conns.closed_stalled", m_conns_stalled},
	{"conns.accept_pauses", m_accept_pauses},
	{"errors.protocol", m_proto},
	{"transport.bytes_sent", m_bytes_sent},
	{"transport.bytes_received", m_bytes_recv},
	{"transport.msgs_sent", m_msgs_sent},
	{"transport.msgs_received", m_msgs_recv},
	{"transport.auth_refused", m_auth_refused},
};

static const char *const peer_keys[] = {"calls", "bytes_sent", "bytes_received",
					"errors"};

static int64_t peer_metric(struct rxp__worker *w, unsigned k)
{
	switch (k) {
	case 0:
		return (int64_t)atomic_load(&w->calls);
	case 1:
		return (int64_t)atomic_load(&w->bytes_sent);
	case 2:
		return (int64_t)atomic_load(&w->bytes_recv);
	default:
		return (int64_t)atomic_load(&w->errors);
	}
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
				if (!strcmp(dot + 1, peer_keys[k])) {
					*value = peer_metric(&a->workers[w], k);
					return 0;
				}
		}
	}
	return -ENOENT;
}

int rxp_agent_metrics_dump(struct rxp_agent *a, char *buf, size_t len)
{
	const struct rxp__feature *ft;
	size_t off = 0;

	if (!a || (len && !buf))
		return -EINVAL;
#define APPEND(...)                                                            \
	do {                                                                   \
		int n_ = snprintf(off < len ? buf + off : NULL,                \
				  off < len ? len - off : 0, __VA_ARGS__);     \
		if (n_ > 0)                                                    \
			off += (size_t)n_;                                     \
	} while (0)
	for (size_t i = 0; i < RXP_ARRAY_SIZE(metrics); i++)
		APPEND("%s %lld\n", metrics[i].key,
		       (long long)metrics[i].get(a));
	rxp__for_each_feature(ft) for (unsigned i = 0; i < ft->nmetrics; i++)
		APPEND("%s %lld\n", ft->metrics[i].key,
		       (long long)ft->metrics[i].get(a));
	for (int w = 0; w < a->world; w++)
		for (unsigned k = 0; k < RXP_ARRAY_SIZE(peer_keys); k++)
			APPEND("peer.%s.%s %lld\n", a->workers[w].name,
			       peer_keys[k],
			       (long long)peer_metric(&a->workers[w], k));
#undef APPEND
	return off > (size_t)INT32_MAX ? -RXP_E_TOO_BIG : (int)off;
}
