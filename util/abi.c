/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "rxp_abi.h"
#include <rxp/rxp.h>

_Static_assert(RXP_TIMEOUT_DEFAULT == 0 && RXP_TIMEOUT_NEVER == -1,
	       "rxp_timeout_ns follows rxp.h");

/* ~73 years: now + this never overflows a CLOCK_MONOTONIC deadline */
#define RXP_TIMEOUT_MAX_NS (INT64_MAX / 4)

int rxp_struct_in(void *dst, size_t dst_size, const void *src,
		  size_t first_size)
{
	size_t size;

	memcpy(&size, src, sizeof(size));
	if (!size)
		size = first_size;
	if (size < sizeof(size_t))
		return -EINVAL;
	if (size > dst_size) {
		const unsigned char *extra = (const unsigned char *)src;

		for (size_t i = dst_size; i < size; i++)
			if (extra[i])
				return -E2BIG;
		size = dst_size;
	}
	memcpy(dst, src, size);
	memcpy(dst, &dst_size, sizeof(dst_size));
	return 0;
}

int rxp_timeout_ns(int64_t timeout_ms, int64_t dflt_ns, int64_t *ns)
{
	if (timeout_ms == RXP_TIMEOUT_DEFAULT)
		*ns = dflt_ns;
	else if (timeout_ms == RXP_TIMEOUT_NEVER)
		*ns = 0;
	else if (timeout_ms < 0)
		return -EINVAL;
	else if (timeout_ms > RXP_TIMEOUT_MAX_NS / 1000000)
		*ns = RXP_TIMEOUT_MAX_NS;
	else
		*ns = timeout_ms * 1000000;
	return 0;
}
