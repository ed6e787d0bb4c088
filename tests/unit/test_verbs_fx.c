/* SPDX-License-Identifier: MIT */
/* Two verbs transports on the fake fabric: see test_verbs_fake.h. */
#include "test_verbs_fake.h"

int fx_open(struct fx_side *s, uint32_t id)
{
	return fx_open_key(s, id, NULL);
}

int fx_open_key(struct fx_side *s, uint32_t id, const struct rxp_auth_key *key)
{
	verbs_sys_set(&fk_sys);
	return fx_open_at(s, &rxp_verbs_ops, id, "10.0.0.1", key, FX_WORLD);
}
