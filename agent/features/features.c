/* SPDX-License-Identifier: MIT */
/*
 * The features librxp is built with (feature.h). The only file that names
 * them: the agent core reaches them through this table, so adding one is a
 * folder, a line here and a USES in CMakeLists.txt.
 */
#include <stddef.h>

#include "profiler.h"
#include "rref.h"

const struct rxp__feature *const rxp__features[] = {
	&rxp__rref_feature,
	&rxp__prof_feature,
	NULL,
};
