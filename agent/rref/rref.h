/* SPDX-License-Identifier: MIT */
/* The RRef feature, as agent/features/features.c lists it. */
#ifndef RXP_RREF_H
#define RXP_RREF_H

#include "feature.h"

extern const struct rxp__feature rxp__rref_feature;

#endif
