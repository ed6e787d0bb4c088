/* SPDX-License-Identifier: MIT */
/*
 * rxp-demo: a two-worker job on this machine over the default transport
 * (RXP_TRANSPORT=auto: verbs when an RDMA device serves the address, else
 * TCP on io_uring, and shared memory between workers on one host, as these
 * two are). Worker "trainer" calls functions on worker "ps" (a
 * parameter server) with tensors, prints what it sent and got back, then
 * measures the small-call round trip and a large tensor echo.
 *
 *   rxp-demo [--iters N] [--mib M] [--addr IP] [--port P]
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rxp/rxp.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ps.axpy(alpha: float, x: float32 tensor, y: float32 tensor) -> alpha*x+y */
static int axpy(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *a = rxp_call_args(c, &n);
	const struct rxp_tensor *x, *y;
	struct rxp_storage *out;
	const float *px, *py;
	float *po;
	int64_t len;
	struct rxp_value r;
	int ret;

	if (n != 3 || a[0].kind != RXP_V_DOUBLE || a[1].kind != RXP_V_TENSOR ||
	    a[2].kind != RXP_V_TENSOR)
		return rxp_call_fail(c, "ps.axpy(alpha, x, y): bad arguments");
	x = &a[1].u.tensor;
	y = &a[2].u.tensor;
	if (x->dtype != RXP_DT_F32 || y->dtype != RXP_DT_F32 || x->ndim != 1 ||
	    y->ndim != 1 || x->shape[0] != y->shape[0] || x->strides[0] != 1 ||
	    y->strides[0] != 1)
		return rxp_call_fail(c, "ps.axpy: x and y must be contiguous "
					"float32 vectors of one length");
	len = x->shape[0];
	/* the decoder checked that each tensor fits its storage */
	px = (const float *)((char *)rxp_storage_data(
				     rxp_call_storage(c, x->storage)) +
			     x->offset);
	py = (const float *)((char *)rxp_storage_data(
				     rxp_call_storage(c, y->storage)) +
			     y->offset);
	out = rxp_storage_alloc((size_t)len * sizeof(float));
	if (!out)
		return -ENOMEM;
	po = rxp_storage_data(out);
	for (int64_t i = 0; i < len; i++)
		po[i] = (float)a[0].u.d * px[i] + py[i];
	r = rxp_v_tensor(RXP_DT_F32, 1, x->shape, NULL, 0, 0);
	ret = rxp_call_return(c, &r, &out, 1);
	rxp_storage_release(out);
	return ret;
}

/* ps.echo(x) -> x (storages travel back as they came) */
static int echo(struct rxp_call *c, void *user)
{
	uint32_t n, ns = rxp_call_nstorages(c);
	const struct rxp_value *a = rxp_call_args(c, &n);
	struct rxp_storage *st[16];

	if (n != 1 || ns > 16)
		return rxp_call_fail(c, "ps.echo takes one value");
	for (uint32_t i = 0; i < ns; i++)
		st[i] = rxp_call_storage(c, i);
	return rxp_call_return(c, &a[0], st, ns);
}

static int ping(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *a = rxp_call_args(c, &n);

	return rxp_call_return(c, n ? &a[0] : NULL, NULL, 0);
}

static const struct rxp_fn_def ps_functions[] = {
	{"ps.axpy", axpy, 0, NULL},
	{"ps.echo", echo, 0, NULL},
	{"ps.ping", ping, 0, NULL},
};

static struct rxp_agent *make_agent(const char *name, int rank,
				    const char *addr, int port)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a;
	int ret;

	rxp_agent_attr_init(&attr);
	attr.name = name;
	attr.rank = rank;
	attr.world_size = 2;
	attr.master_addr = addr;
	attr.master_port = port;
	attr.init_timeout_ms = 30000;
	if (rank == 1) { /* the functions exist before anyone can call */
		attr.functions = ps_functions;
		attr.nfunctions =
			sizeof(ps_functions) / sizeof(ps_functions[0]);
	}
	ret = rxp_agent_create(&attr, &a);
	if (ret) {
		fprintf(stderr, "%s: rxp_agent_create: %s\n", name,
			rxp_strerror(ret));
		return NULL;
	}
	return a;
}

static void run_ps(const char *addr, int port)
{
	struct rxp_agent *a;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	a = make_agent("ps", 1, addr, port);
	if (!a)
		_exit(1);
	rxp_agent_join(a, RXP_TIMEOUT_NEVER);
	rxp_agent_shutdown(a);
	_exit(0);
}

/* the parameter server's worker id: calls address workers by id, and the
 * name is looked up once */
static int ps_id;

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static int demo_axpy(struct rxp_agent *a)
{
	enum { N = 8 };
	float x[N], y[N];
	int64_t shape[1] = {N};
	struct rxp_value args[3] = {
		rxp_v_double(2.0),
		rxp_v_tensor(RXP_DT_F32, 1, shape, NULL, 0, 0),
		rxp_v_tensor(RXP_DT_F32, 1, shape, NULL, 1, 0)};
	struct rxp_iov st[2] = {{x, sizeof(x)}, {y, sizeof(y)}};
	struct rxp_future *f;
	const float *r;
	int ret;

	for (int i = 0; i < N; i++) {
		x[i] = (float)i;
		y[i] = 0.5f;
	}
	ret = rxp_rpc_sync(a, ps_id, "ps.axpy", args, 3, st, 2, NULL, &f);
	if (ret || rxp_future_status(f)) {
		fprintf(stderr, "ps.axpy failed: %s\n",
			ret ? rxp_strerror(ret) : rxp_future_error(f));
		rxp_future_release(f);
		return 1;
	}
	r = rxp_storage_data(rxp_future_storage(f, 0));
	printf("call  ps.axpy(2.0, x=[0..7] f32, y=[0.5 x8] f32)\n");
	printf("  ->  tensor f32[%lld] in a %zu-byte rxp storage:",
	       (long long)rxp_future_value(f)->u.tensor.shape[0],
	       rxp_storage_size(rxp_future_storage(f, 0)));
	for (int i = 0; i < N; i++) {
		printf(" %g", r[i]);
		if (fabsf(r[i] - (2.0f * (float)i + 0.5f)) > 1e-6f) {
			printf("\nwrong result at %d\n", i);
			rxp_future_release(f);
			return 1;
		}
	}
	printf("\n");
	rxp_future_release(f);

	/* the callee's errors come back as the future's error */
	args[0] = rxp_v_str("not a number");
	rxp_rpc_sync(a, ps_id, "ps.axpy", args, 3, st, 2, NULL, &f);
	printf("call  ps.axpy(\"not a number\", ...)\n  ->  error %d: %s\n",
	       rxp_future_status(f), rxp_future_error(f));
	rxp_future_release(f);
	rxp_rpc_sync(a, ps_id, "ps.nope", NULL, 0, NULL, 0, NULL, &f);
	printf("call  ps.nope()\n  ->  error %d: %s\n", rxp_future_status(f),
	       rxp_future_error(f));
	rxp_future_release(f);
	return 0;
}

static int bench_rtt(struct rxp_agent *a, int iters)
{
	double *t = calloc((size_t)iters, sizeof(double));
	struct rxp_value v = rxp_v_int(1);
	struct rxp_future *f;

	if (!t)
		return 1;
	for (int i = -iters / 10; i < iters; i++) {
		double t0 = now_us();

		if (rxp_rpc_sync(a, ps_id, "ps.ping", &v, 1, NULL, 0, NULL,
				 &f) ||
		    rxp_future_status(f)) {
			fprintf(stderr, "ps.ping failed\n");
			free(t);
			return 1;
		}
		rxp_future_release(f);
		if (i >= 0)
			t[i] = now_us() - t0;
	}
	qsort(t, (size_t)iters, sizeof(double), cmp_double);
	printf("small call round trip (%d calls): p50 %.1f us  p99 %.1f us\n",
	       iters, t[iters / 2], t[iters * 99 / 100]);
	free(t);
	return 0;
}

static int bench_echo(struct rxp_agent *a, size_t mib)
{
	size_t n = mib << 20;
	unsigned char *buf = malloc(n);
	int64_t shape[1] = {(int64_t)n};
	struct rxp_value v = rxp_v_tensor(RXP_DT_U8, 1, shape, NULL, 0, 0);
	struct rxp_iov st = {buf, n};
	struct rxp_future *f;
	double best = 1e30;
	int ok = 1;

	if (!buf)
		return 1;
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	for (int r = 0; r < 5; r++) {
		double t0 = now_us(), dt;

		if (rxp_rpc_sync(a, ps_id, "ps.echo", &v, 1, &st, 1, NULL,
				 &f) ||
		    rxp_future_status(f)) {
			ok = 0;
			break;
		}
		dt = now_us() - t0;
		if (dt < best)
			best = dt;
		if (r == 0 &&
		    (rxp_storage_size(rxp_future_storage(f, 0)) != n ||
		     memcmp(rxp_storage_data(rxp_future_storage(f, 0)), buf,
			    n)))
			ok = 0;
		rxp_future_release(f);
		if (!ok)
			break;
	}
	if (ok)
		printf("%zu MiB tensor echo (there and back, verified): best "
		       "%.1f ms = %.2f GB/s each way\n",
		       mib, best / 1e3, 2.0 * (double)n / (best * 1e3));
	else
		fprintf(stderr, "echo failed or corrupted\n");
	free(buf);
	return !ok;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"iters", required_argument, NULL, 'n'},
		{"mib", required_argument, NULL, 'm'},
		{"addr", required_argument, NULL, 'a'},
		{"port", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{0}};
	const char *addr = "127.0.0.1";
	int iters = 2000, port = 29500 + (int)(getpid() % 1000), c, rc = 0;
	size_t mib = 64;
	struct rxp_agent *a;
	char metrics[4096];
	pid_t ps;
	int st;

	while ((c = getopt_long(argc, argv, "n:m:a:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			iters = atoi(optarg);
			break;
		case 'm':
			mib = (size_t)atol(optarg);
			break;
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: %s [--iters N] [--mib M] [--addr IP] "
				"[--port P]\n",
				argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	if (iters < 10 || mib < 1 || mib > 4096) {
		fprintf(stderr, "--iters >= 10, --mib 1..4096\n");
		return 2;
	}
	printf("rxp %s demo: workers 'trainer' (rank 0) and 'ps' (rank 1) on "
	       "%s:%d\n",
	       rxp_version(), addr, port);
	fflush(stdout);
	ps = fork();
	if (ps < 0)
		return 1;
	if (ps == 0)
		run_ps(addr, port);
	a = make_agent("trainer", 0, addr, port);
	if (!a) {
		kill(ps, SIGTERM);
		waitpid(ps, NULL, 0);
		return 1;
	}
	printf("transport: %s (set RXP_TRANSPORT=tcp|verbs to choose)\n",
	       rxp_agent_transport(a));
	{
		struct rxp_worker_info wi;

		rc = rxp_agent_worker_by_name(a, "ps", &wi) ? 1 : 0;
		ps_id = wi.id;
	}
	if (!rc)
		rc |= demo_axpy(a);
	if (!rc)
		rc |= bench_rtt(a, iters);
	if (!rc)
		rc |= bench_echo(a, mib);
	if (rxp_agent_metrics_dump(a, metrics, sizeof(metrics)) > 0)
		printf("trainer metrics:\n%s", metrics);
	rxp_agent_join(a, 30000);
	rxp_agent_shutdown(a);
	if (waitpid(ps, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		rc = 1;
	printf("%s\n", rc ? "demo FAILED" : "demo OK");
	return rc;
}
