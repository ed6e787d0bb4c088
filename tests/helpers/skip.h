/* SPDX-License-Identifier: MIT */
/*
 * Exit code for "this test cannot run here" (no RDMA device, backend not
 * built): 77, which ctest reports as skipped, unless the environment says
 * the device must be there (RXP_TEST_REQUIRE_DEVICE=1, set by CI inside the
 * rxe guest): then 1, so a verbs suite that silently skipped fails CI.
 */
#ifndef RXP_TEST_SKIP_H
#define RXP_TEST_SKIP_H

#include <stdlib.h>
#include <string.h>

static inline int rxp_test_skip_code(void)
{
	const char *v = getenv("RXP_TEST_REQUIRE_DEVICE");

	return v && *v && strcmp(v, "0") ? 1 : 77;
}

#endif
