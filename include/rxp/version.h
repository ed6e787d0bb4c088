/* SPDX-License-Identifier: MIT */
#ifndef RXP_VERSION_H
#define RXP_VERSION_H

#define RXP_VERSION_MAJOR 0
#define RXP_VERSION_MINOR 2
#define RXP_VERSION_PATCH 0
#define RXP_VERSION_STRING "0.2.0"

#endif
