/* SPDX-License-Identifier: MIT */
/*
 * The public API's conventions in one place (rxp.h, "Conventions" and "ABI
 * rules"): extensible structs that begin with their size, and timeouts.
 * Not installed.
 */
#ifndef RXP_ABI_H
#define RXP_ABI_H

#include <stddef.h>
#include <stdint.h>

/*
 * Copy the caller's extensible struct @src (its first field a size_t size)
 * into @dst, @dst_size bytes that already hold the defaults. Reads only
 * min(src->size, dst_size) bytes of @src; a size of 0 reads @first_size
 * (the first layout). Bytes of @src past @dst_size must be zero. Sets
 * dst->size to @dst_size. 0, -EINVAL (size 0 where @first_size is 0, or
 * a size smaller than its own field), -E2BIG (non-zero bytes past what
 * this library knows).
 */
int rxp_struct_in(void *dst, size_t dst_size, const void *src,
		  size_t first_size);

/*
 * A public timeout_ms (> 0 ms, 0 = RXP_TIMEOUT_DEFAULT, -1 =
 * RXP_TIMEOUT_NEVER) as nanoseconds, where 0 means no limit: @dflt_ns for
 * the default. 0 or -EINVAL (other negative values). Huge values saturate.
 */
int rxp_timeout_ns(int64_t timeout_ms, int64_t dflt_ns, int64_t *ns);

#endif
