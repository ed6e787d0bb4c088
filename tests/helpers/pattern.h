/* SPDX-License-Identifier: MIT */
/*
 * The byte pattern the transport tests send and check: byte i of part k
 * (0 = payload, 1.. = storages) of message @id. It differs between parts,
 * messages and nearby offsets, so a misplaced, stale or shifted byte shows.
 */
#ifndef RXP_TEST_PATTERN_H
#define RXP_TEST_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline uint8_t pattern_byte(uint64_t id, uint32_t k, size_t i)
{
	return (uint8_t)(i * 131 + (i >> 9) + k * 29 + id * 17 + 5);
}

static inline void pattern_fill(void *p, size_t len, uint64_t id, uint32_t k)
{
	uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		b[i] = pattern_byte(id, k, i);
}

static inline bool pattern_check(const void *p, size_t len, uint64_t id,
				 uint32_t k)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != pattern_byte(id, k, i))
			return false;
	return true;
}

#endif
