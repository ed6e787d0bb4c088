/* SPDX-License-Identifier: MIT */
/*
 * Multi-process test worlds: fork the other ranks (before the parent
 * creates any thread), each running a worker that registers the standard
 * test functions and stays until join() or rank 0 goes away.
 *
 * Transport and addresses come from the environment, so the same tests
 * run on tcp, tcp-poll (RXP_NO_URING=1) and verbs (in the rxe guest):
 *   RXP_TRANSPORT          tcp | verbs | auto (default: auto)
 *   RXP_ADDR_A, RXP_ADDR_B rank 0 and master on A; odd ranks bind B
 *                          (two rxe devices); default 127.0.0.1
 */
#ifndef RXP_TEST_WORLD_H
#define RXP_TEST_WORLD_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include <rxp/rxp.h>

#define WORLD_MAX 8

struct world {
	int size;
	int port;
	pid_t pids[WORLD_MAX]; /* [0] unused (the test process) */
	struct rxp_agent *a;   /* rank 0's agent, in the test process */
	/* after a failed world_start: each worker's exit code (-1: killed
	 * still running); WORLD_EXIT_AUTH if its create failed with
	 * -RXP_E_AUTH */
	int exit_code[WORLD_MAX];
};

#define WORLD_EXIT_AUTH 4

/* false (after saying why) if the environment asks for a transport that
 * cannot run here, e.g. RXP_TRANSPORT=verbs without an RDMA device: the
 * test program then exits 77 (skipped). */
bool world_transport_usable(void);

/* Factor for time bounds in tests: $RXP_TEST_TIMEOUT_SCALE (CI sets 20
 * inside the rxe guest, which runs 15-20x slower), else 1. */
int world_time_scale(void);

/* A free TCP port on the loopback, this process's alone until it exits
 * (an flock per port, below the ephemeral range: see world.c), so tests
 * run in parallel never share one; -1 if none is left. */
int world_free_port(void);

/* If set, rank 0 (this process) uses this transport instead of
 * $RXP_TRANSPORT, e.g. "fault:tcp" for fault injection on one side. */
extern const char *world_rank0_transport;
/* If > 0, rank 0's default call timeout (attr.rpc_timeout_ms). */
extern int64_t world_rank0_rpc_timeout_ms;
/* If > 0, rank 0's attr.init_timeout_ms (the others keep 30 s). */
extern int64_t world_rank0_init_timeout_ms;
/* If set, rank 0 uses this job secret (the others: $RXP_SECRET_FILE). */
extern const void *world_rank0_secret;
extern size_t world_rank0_secret_len;

/* Fill @attr for @rank of @size on @port from the environment. */
void world_attr(struct rxp_agent_attr *attr, int rank, int size, int port,
		char *name, size_t namelen);

/*
 * Fork ranks 1..size-1 (each runs world_worker_main and _exits), then
 * create rank 0's agent in this process. Returns 0, 77 if the transport
 * is unusable here (e.g. verbs without a device: the caller skips), or
 * -errno; after a failure the workers have been given a second to exit
 * on their own (then killed) and w->exit_code says how each ended.
 */
int world_start(struct world *w, int size);
/* First thing in main() of a program that uses world_start(): when this
 * process is one of the forked workers, run it (never returns). */
void world_maybe_worker(int argc, char **argv);
/* join (if @join), shut rank 0 down, and reap the children; returns the
 * number of children that exited with a non-zero status or a signal
 * other than SIGKILL. */
int world_stop(struct world *w, bool join);

/* The test functions every worker has from the start (world_attr puts
 * them in attr->functions; see world.c):
 *   t.echo(args...)           returns its args as a tuple, storages echoed
 *   t.add(int a, int b)       a + b
 *   t.fail(str msg)           fails with msg
 *   t.sleep_ms(int ms)        sleeps, then returns ms
 *   t.hang()                  async: never completes until shutdown
 *   t.async_echo(args...)     async: completes from another thread
 *   t.whoami()                the callee's name
 *   t.call(str dst, str fn)   nested rpc_sync to dst.fn(), returns its int
 *   t.metric(str key)         the callee's rxp_agent_metric(key) (-1: none)
 *   t.fill(int n, int byte)   returns a tensor of n bytes = byte
 */
/* Rank @rank's metric @key, read through its t.metric: 0 and *@out, or
 * the call's error. */
int world_metric_of(struct world *w, int rank, const char *key, int64_t *out);

/* Complete every call t.hang() is holding (with an error). */
void world_release_hung(void);

#endif
