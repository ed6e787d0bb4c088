/* SPDX-License-Identifier: MIT */
/* Transport choice: RXP_TRANSPORT=auto|verbs|tcp. */
#include <errno.h>
#include <string.h>

#include "rxp_transport.h"

const struct rxp_tp_ops *rxp_tp_select(const char *want, const char *bind_addr,
				       int *err)
{
	char why[512];
	int ret;

	*err = 0;
	if (!want || !*want)
		want = "auto";
	if (!strncmp(want, "fault:", 6)) {
		/* fault injection over another backend (tests) */
		rxp__fault_inner = rxp_tp_select(want + 6, bind_addr, err);
		return rxp__fault_inner ? &rxp_fault_ops : NULL;
	}
	if (!strcmp(want, "tcp"))
		return &rxp_tcp_ops;
	if (strcmp(want, "verbs") && strcmp(want, "auto")) {
		rxp_err("transport",
			"RXP_TRANSPORT=%s is not one of auto, verbs, tcp",
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

const char *rxp_tp_wire_name(const struct rxp_tp_ops *ops)
{
	return ops == &rxp_fault_ops && rxp__fault_inner
		       ? rxp__fault_inner->name
		       : ops->name;
}
