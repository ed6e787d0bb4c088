/* SPDX-License-Identifier: MIT */
/*
 * What rxp-perf and rxp-bench share: the functions the serving worker
 * registers, and the client-side helpers to call them. Public API only.
 *
 *   bench.add(int a, int b) -> int a + b       the "tiny call"
 *   bench.echo(tensor t)     -> t               zero-copy echo: returns the
 *                                               received storage itself
 *   bench.sink(tensor t)     -> int nbytes      one-way: the tensor goes to
 *                                               the callee only (rxp-perf --bw)
 */
#ifndef RXP_PERF_FNS_H
#define RXP_PERF_FNS_H

#include <stddef.h>
#include <stdint.h>

#include <rxp/rxp.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PERF_FN_ADD "bench.add"
#define PERF_FN_ECHO "bench.echo"
#define PERF_FN_SINK "bench.sink"

/* Register bench.add and bench.echo on @a. 0 or -errno. */
int perf_register_fns(struct rxp_agent *a);

/*
 * Call bench.add on worker @dst (an id) until it answers (the peer registers
 * its functions only after the rendezvous): retries -RXP_E_NO_FUNCTION for up
 * to @timeout_ms. 0, or the last error.
 */
int perf_wait_ready(struct rxp_agent *a, int dst, int64_t timeout_ms);

/*
 * A prepared call: the tiny add (size 0) or the echo of a uint8 tensor of
 * @size bytes whose storage is @buf (caller memory, filled by the caller).
 */
struct perf_call {
	const char *fn;
	struct rxp_value args[2];
	uint32_t nargs;
	int64_t shape[1];
	struct rxp_iov iov;
	uint32_t niov;
	size_t size;
};
void perf_call_init(struct perf_call *c, size_t size, void *buf);
/* Make @c (size > 0) a bench.sink call: the payload goes one way. */
void perf_call_sink(struct perf_call *c);
int perf_call_issue(struct rxp_agent *a, int dst, const struct perf_call *c,
		    struct rxp_future **out);
/*
 * Check a fulfilled future of @c: status 0, add returned 3, echo returned
 * a tensor of @size bytes (and, when @verify, the same bytes as @c's
 * buffer), sink returned @size. 0 or a negative code; @why gets a message on
 * failure.
 */
int perf_call_check(const struct perf_call *c, struct rxp_future *f, int verify,
		    const char **why);

/*
 * The serving worker's whole life: create the agent (rank, world size 2,
 * rendezvous at @addr:@port over @transport), register the functions,
 * wait in rxp_agent_join until the client is done (at most @max_s s),
 * shut down. Prints "READY <transport>" on stdout once the agent exists.
 * Returns a process exit code.
 */
int perf_serve(const char *name, int rank, const char *addr, int port,
	       const char *transport, int poll_us, int max_s);

#ifdef __cplusplus
}
#endif

#endif
