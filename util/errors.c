/* SPDX-License-Identifier: MIT */
#include <string.h>

#include <rxp/rxp.h>

const char *rxp_strerror(int err)
{
	static const char *const msgs[] = {
#define RXP__ERR_MSG(name, off, msg) [off] = msg,
		RXP_ERRORS(RXP__ERR_MSG)
#undef RXP__ERR_MSG
	};
	int e = err < 0 ? -err : err;

	if (err == 0)
		return "success";
	if (e >= RXP_ERRNO_BASE && e < RXP_E__LAST)
		return msgs[e - RXP_ERRNO_BASE];
	if (e < RXP_ERRNO_BASE)
		return strerrordesc_np(e) ? strerrordesc_np(e)
					  : "unknown error";
	return "unknown error";
}

const char *rxp_version(void)
{
	return RXP_VERSION_STRING;
}
