/* SPDX-License-Identifier: MIT */
/*
 * rxp_trace: profile a few remote() and rpc calls between two workers and
 * write them as a Chrome trace.
 *
 *   rxp_trace [out.json]      (default rxp-trace.json)
 *
 * Open the file in chrome://tracing ("Load") or https://ui.perfetto.dev
 * ("Open trace file"): one row per worker; each call appears on the
 * caller as rpc_async_jit#<fn>(<caller> -> <callee>) (rpc_sync#...,
 * rpc_remote#...), with the callee's own events nested under it, moved
 * onto the caller's clock.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rxp/rxp.h>

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* work.step(n): "computes" for n ms in two phases it records itself */
static int step(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *a = rxp_call_args(c, &n);
	int64_t ms = n ? a[0].u.i : 1, t0 = now_ns(), t1;
	struct rxp_value r = rxp_v_int(ms);

	usleep((useconds_t)(ms * 500));
	t1 = now_ns();
	rxp_call_record_event(c, "forward", t0, t1);
	usleep((useconds_t)(ms * 500));
	rxp_call_record_event(c, "backward", t1, now_ns());
	return rxp_call_return(c, &r, NULL, 0);
}

static const struct rxp_fn_def fns[] = {{"work.step", step, 0, NULL}};

static struct rxp_agent *agent(const char *name, int rank, int port)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a;
	int ret;

	rxp_agent_attr_init(&attr);
	attr.name = name;
	attr.rank = rank;
	attr.world_size = 2;
	attr.master_port = port;
	attr.functions = fns;
	attr.nfunctions = 1;
	ret = rxp_agent_create(&attr, &a);
	if (ret) {
		fprintf(stderr, "%s: %s\n", name, rxp_strerror(ret));
		return NULL;
	}
	return a;
}

int main(int argc, char **argv)
{
	const char *out = argc > 1 ? argv[1] : "rxp-trace.json";
	int port = 31000 + (int)(getpid() % 2000), ret = 0, st;
	struct rxp_worker_info server;
	struct rxp_agent *a;
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		a = agent("server", 1, port);
		if (!a)
			_exit(1);
		rxp_agent_join(a, RXP_TIMEOUT_NEVER);
		rxp_agent_shutdown(a);
		_exit(0);
	}
	a = agent("trainer", 0, port);
	if (!a)
		return 1;
	rxp_profiler_enable(a, true);
	ret = rxp_agent_worker_by_name(a, "server", &server);
	for (int i = 1; i <= 3 && !ret; i++) {
		struct rxp_value v = rxp_v_int(2 * i);
		struct rxp_future *f;
		struct rxp_rref *r;

		ret = rxp_rpc_sync(a, server.id, "work.step", &v, 1, NULL, 0,
				   NULL, &f);
		rxp_future_release(f);
		if (!ret)
			ret = rxp_remote(a, server.id, "work.step", &v, 1, NULL,
					 0, NULL, &r);
		if (!ret) {
			ret = rxp_rref_to_here(r, RXP_TIMEOUT_DEFAULT, &f);
			if (!ret)
				ret = rxp_future_wait(f);
			rxp_future_release(f);
			rxp_rref_release(r);
		}
	}
	rxp_profiler_enable(a, false);
	if (!ret)
		ret = rxp_profiler_export_chrome(a, out);
	printf("%s: %d events -> %s\n", ret ? rxp_strerror(ret) : "ok",
	       rxp_profiler_events(a, NULL, 0), out);
	rxp_agent_join(a, 10000);
	rxp_agent_shutdown(a);
	waitpid(pid, &st, 0);
	return ret ? 1 : 0;
}
