/* SPDX-License-Identifier: MIT */
/* Built when rdma-core is missing: verbs is never usable. */
#include <stdio.h>

#include "rxp_transport.h"

int rxp_verbs_probe(const char *bind_addr, char *why, size_t len)
{
	snprintf(why, len, "rxp was built without libibverbs/librdmacm");
	return -RXP_E_NO_DEVICE;
}

const struct rxp_tp_ops rxp_verbs_ops = {
	.name = "verbs",
};
