/* SPDX-License-Identifier: MIT */
#ifndef RXP_ERRNO_H
#define RXP_ERRNO_H

/*
 * rxp functions return 0 (or a count) on success and a negative error code on
 * failure: either -errno (e.g. -EINVAL, -ENOMEM, -ETIMEDOUT, -ECANCELED) or
 * one of rxp's own codes below, which start at RXP_ERRNO_BASE so they never
 * collide with errno values. rxp_strerror() names both kinds.
 *
 * Blast radius of each rxp code: "call" = that call/future only;
 * "conn" = every call in flight on that connection; "agent" = the agent.
 */
#define RXP_ERRNO_BASE 1024

/* X(name, offset, message) */
#define RXP_ERRORS(X)                                                          \
	X(RXP_E_PEER_LOST, 0, "peer lost (connection to the worker failed)")   \
	X(RXP_E_REMOTE, 1, "the callee's function failed")                     \
	X(RXP_E_NO_FUNCTION, 2, "no function registered under that name")      \
	X(RXP_E_PROTO, 3, "malformed or unexpected message from peer")         \
	X(RXP_E_VERSION, 4, "peer speaks an incompatible protocol version")    \
	X(RXP_E_NO_WORKER, 5, "no worker with that name or id")                \
	X(RXP_E_SHUTDOWN, 6, "agent is shut down")                             \
	X(RXP_E_DECODE, 7, "value could not be decoded")                       \
	X(RXP_E_TOO_BIG, 8, "message exceeds a configured limit")              \
	X(RXP_E_NO_DEVICE, 9, "no usable RDMA device")                         \
	X(RXP_E_RENDEZVOUS, 10, "rendezvous with the other workers failed")    \
	X(RXP_E_WC, 11, "RDMA work completion error")                          \
	X(RXP_E_ASYNC_MISMATCH, 12,                                            \
	  "async-execution flag does not match the function")                  \
	X(RXP_E_UNKNOWN_RREF, 13, "unknown RRef")                              \
	X(RXP_E_REFUSED, 14, "request refused by the peer")                    \
	X(RXP_E_AUTH, 15,                                                      \
	  "peer authentication failed (job secret missing or different)")      \
	X(RXP_E_DUP_NAME, 16, "worker name is not unique in the world")        \
	X(RXP_E_LIMIT, 17,                                                     \
	  "a configured limit of the worker was reached (see its log)")

enum rxp_errno {
#define RXP__ERR_ENUM(name, off, msg) name = RXP_ERRNO_BASE + (off),
	RXP_ERRORS(RXP__ERR_ENUM)
#undef RXP__ERR_ENUM
		RXP_E__LAST
};

#endif
