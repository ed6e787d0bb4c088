/* SPDX-License-Identifier: MIT */
/* The call profiler feature, as agent/features/features.c lists it. */
#ifndef RXP_PROFILER_H
#define RXP_PROFILER_H

#include "feature.h"

extern const struct rxp__feature rxp__prof_feature;

#endif
