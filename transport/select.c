/* SPDX-License-Identifier: MIT */
/* Transport choice: RXP_TRANSPORT=auto|verbs|tcp (or fault:<one>). */
#include <errno.h>
#include <string.h>

#include "rxp_transport.h"

static int no_cancel(struct rxp_conn *c, void *cookie)
{
	(void)c;
	(void)cookie;
	return -EBUSY; /* cannot take it back: wait for on_send */
}

static int no_mem(struct rxp_tp *tp, void *ptr, size_t len)
{
	(void)tp;
	(void)ptr;
	(void)len;
	return 0; /* nothing to cache */
}

void rxp_tp_ops_complete(struct rxp_tp_ops *out, const struct rxp_tp_ops *in)
{
	*out = *in;
	if (!out->cancel)
		out->cancel = no_cancel;
	if (!out->mem_register || !out->mem_unregister) {
		out->mem_register = no_mem;
		out->mem_unregister = no_mem;
	}
}

/* The one backend @want names, without fault: */
static const struct rxp_tp_ops *pick(const char *want, const char *bind_addr,
				     int *err)
{
	char why[512];
	int ret;

	*err = 0;
	if (!strcmp(want, "tcp"))
		return &rxp_tcp_ops;
	if (!strcmp(want, "shm"))
		return &rxp_shm_ops; /* every peer on this host */
	if (strcmp(want, "verbs") && strcmp(want, "auto")) {
		rxp_err("transport",
			"RXP_TRANSPORT=%s is not one of auto, verbs, tcp, shm "
			"(or fault:<one of them>)",
			want);
		*err = -EINVAL;
		return NULL;
	}
	ret = rxp_verbs_probe(bind_addr, why, sizeof(why));
	if (ret == 0 && rxp_verbs_ops.open) {
		rxp_info("transport", "using verbs: %s", why);
		return &rxp_verbs_ops;
	}
	if (!strcmp(want, "verbs")) {
		rxp_err("transport", "RXP_TRANSPORT=verbs but %s", why);
		*err = -RXP_E_NO_DEVICE;
		return NULL;
	}
	rxp_info("transport", "using tcp: no usable RDMA device for %s (%s)",
		 bind_addr ? bind_addr : "?", why);
	return &rxp_tcp_ops;
}

void rxp_tp_counters_sum(struct rxp_tp *out, struct rxp_tp *const *in, int n)
{
#define SUM(field)                                                             \
	do {                                                                   \
		uint64_t v = 0;                                                \
		for (int i = 0; i < n; i++)                                    \
			v += rxp_tp_counter(&in[i]->field);                    \
		atomic_store_explicit(&out->field, v, memory_order_relaxed);   \
	} while (0)
	SUM(bytes_sent);
	SUM(bytes_received);
	SUM(msgs_sent);
	SUM(msgs_received);
	SUM(auth_refused);
	SUM(conns_limited);
	SUM(conns_stalled);
	SUM(accept_pauses);
	SUM(conns_prehs_failed);
	SUM(rx_ahead);
	SUM(rx_mem_refused);
#undef SUM
}

int rxp_tp_select(const char *want, const char *bind_addr,
		  struct rxp_tp_choice *out)
{
	const struct rxp_tp_ops *ops;
	bool wrapped = false;
	int err;

	memset(out, 0, sizeof(*out));
	if (!want || !*want)
		want = "auto";
	if (!strncmp(want, "fault:", 6)) {
		/* fault injection over another backend (tests) */
		want += 6;
		wrapped = true;
	}
	ops = pick(want, bind_addr, &err);
	if (!ops)
		return err;
	out->caches_mem = ops->mem_register && ops->mem_unregister;
	out->wire_name = ops->name;
	out->wrapped = wrapped;
	if (wrapped) {
		rxp_tp_ops_complete(&out->inner, ops);
		ops = &rxp_fault_ops;
	} else if (!strcmp(want, "auto")) {
		/* and shm for the peers on this host */
		out->muxed = true;
		rxp_tp_ops_complete(&out->inner, ops);
		ops = &rxp_mux_ops;
	}
	rxp_tp_ops_complete(&out->ops, ops);
	return 0;
}
