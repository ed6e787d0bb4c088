/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"
#include "rxp_transport.h"
#include "world.h"

int world_time_scale(void)
{
	const char *v = getenv("RXP_TEST_TIMEOUT_SCALE");
	int s = v ? atoi(v) : 1;

	return s >= 1 ? s : 1;
}

/*
 * Ports for worlds, safe under `ctest -j`. Asking the kernel for a free
 * port (bind 0, close, reuse) races: between the close and the master's
 * bind, another test, or any connect(), may be given the same port. So:
 *  - the port comes from just below the kernel's ephemeral range, which
 *    bind(0) and connect() never hand out;
 *  - a test process owns a port by holding an flock on
 *    $TMPDIR/rxp-test-port-<port>.lock, for the rest of its life (the
 *    kernel drops it when the process dies, however it dies);
 *  - the port must still bind (SO_REUSEADDR, as the master binds it), in
 *    case something outside the tests holds it.
 */
#define PORT_SPAN 8192

static void ephemeral_low(int *lo)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	*lo = 32768;
	if (f) {
		if (fscanf(f, "%d", lo) != 1)
			*lo = 32768;
		fclose(f);
	}
}

static bool port_binds(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	bool ok;

	if (fd < 0)
		return false;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ok = !bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return ok;
}

/* Lock @port for this process: true if it is ours now. */
static bool port_lock(int port)
{
	const char *dir = getenv("TMPDIR");
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/rxp-test-port-%d.lock",
		 dir && *dir ? dir : "/tmp", port);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return false;
	}
	return true; /* fd stays open: the lock lasts as long as we do */
}

int world_free_port(void)
{
	/* ports this process holds: one that binds again (its world is
	 * gone) is reused, so a long sweep holds few */
	static int held[64];
	static int nheld;
	static int next = -1; /* this process's next candidate (offset) */
	int lo, base;

	for (int i = 0; i < nheld; i++)
		if (port_binds(held[i]))
			return held[i];
	ephemeral_low(&lo);
	base = lo - PORT_SPAN;
	if (base < 1024)
		base = 1024;
	if (next < 0) /* spread the processes over the span */
		next = (int)(((unsigned)getpid() * 2654435761u) % PORT_SPAN);
	for (int i = 0; i < PORT_SPAN; i++) {
		int port = base + (next + i) % PORT_SPAN;

		if (port >= lo || port > 65535)
			continue;
		if (port_lock(port) && port_binds(port)) {
			next = (next + i + 1) % PORT_SPAN;
			if (nheld < (int)(sizeof(held) / sizeof(held[0])))
				held[nheld++] = port;
			return port;
		}
		/* a lock taken on a port that does not bind is kept: the
		 * port is no good to anyone here either */
	}
	return -1;
}

#define WORLD_NFNS 18
static const struct rxp_fn_def fns[WORLD_NFNS];

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

bool world_transport_usable(void)
{
	const char *t = getenv("RXP_TRANSPORT");
	char why[512];

	if (!t || strcmp(t, "verbs"))
		return true;
	if (rxp_verbs_probe(env_or("RXP_ADDR_A", "127.0.0.1"), why,
			    sizeof(why))) {
		fprintf(stderr, "skipping: RXP_TRANSPORT=verbs: %s\n", why);
		return false;
	}
	return true;
}

const char *world_rank0_transport;
int64_t world_rank0_rpc_timeout_ms;
int64_t world_rank0_init_timeout_ms;
const void *world_rank0_secret;
size_t world_rank0_secret_len;

void world_attr(struct rxp_agent_attr *attr, int rank, int size, int port,
		char *name, size_t namelen)
{
	const char *a = env_or("RXP_ADDR_A", "127.0.0.1");
	const char *b = env_or("RXP_ADDR_B", a);

	rxp_agent_attr_init(attr);
	snprintf(name, namelen, "worker%d", rank);
	attr->name = name;
	attr->rank = rank;
	attr->world_size = size;
	attr->master_addr = a;
	attr->master_port = port;
	attr->bind_addr = rank % 2 ? b : a;
	attr->init_timeout_ms = 30000;
	attr->num_worker_threads = 4;
	if (rank == 0 && world_rank0_transport)
		attr->transport = world_rank0_transport;
	if (rank == 0 && world_rank0_init_timeout_ms > 0)
		attr->init_timeout_ms = world_rank0_init_timeout_ms;
	if (rank == 0 && world_rank0_rpc_timeout_ms > 0)
		attr->rpc_timeout_ms = world_rank0_rpc_timeout_ms;
	if (rank == 0 && world_rank0_secret) {
		attr->secret = world_rank0_secret;
		attr->secret_len = world_rank0_secret_len;
	}
	attr->functions = fns;
	attr->nfunctions = sizeof(fns) / sizeof(fns[0]);
}

/* ------------------------------------------------------ test functions */

static pthread_mutex_t hung_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rxp_call *hung[4096];
static int nhung;

static int fn_echo(struct rxp_call *c, void *user)
{
	uint32_t n, ns = rxp_call_nstorages(c);
	const struct rxp_value *args = rxp_call_args(c, &n);
	struct rxp_storage *st[64];
	struct rxp_value tup = rxp_v_tuple(args, n);

	if (ns > 64)
		return -E2BIG;
	for (uint32_t i = 0; i < ns; i++)
		st[i] = rxp_call_storage(c, i);
	return rxp_call_return(c, &tup, st, ns);
}

static int fn_add(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	struct rxp_value r;

	if (n != 2 || v[0].kind != RXP_V_INT || v[1].kind != RXP_V_INT)
		return rxp_call_fail(c, "t.add takes two ints, got %u args", n);
	r = rxp_v_int(v[0].u.i + v[1].u.i);
	return rxp_call_return(c, &r, NULL, 0);
}

static int fn_fail(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);

	return rxp_call_fail(c, "%s",
			     n && v[0].kind == RXP_V_STRING ? v[0].u.str.ptr
							    : "t.fail");
}

/* Returns a tensor in a storage it does not pass: rxp_call_return fails,
 * and that consumed the call, so returning its error must not complete it
 * a second time (the caller sees one failure, the encoding one). */
static int fn_bad_return(struct rxp_call *c, void *user)
{
	struct rxp_value t =
		rxp_v_tensor(RXP_DT_F32, 1, (int64_t[]){4}, NULL, 0, 0);

	return rxp_call_return(c, &t, NULL, 0);
}

static int fn_sleep(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	struct timespec ts;
	struct rxp_value r;

	if (n != 1 || v[0].kind != RXP_V_INT)
		return -EINVAL;
	ts.tv_sec = v[0].u.i / 1000;
	ts.tv_nsec = (v[0].u.i % 1000) * 1000000;
	nanosleep(&ts, NULL);
	r = rxp_v_int(v[0].u.i);
	return rxp_call_return(c, &r, NULL, 0);
}

static int fn_hang(struct rxp_call *c, void *user)
{
	int ret = 0;

	pthread_mutex_lock(&hung_mu);
	if (nhung < (int)(sizeof(hung) / sizeof(hung[0])))
		hung[nhung++] = c;
	else
		ret = -ENOSPC;
	pthread_mutex_unlock(&hung_mu);
	return ret;
}

int world_metric_of(struct world *w, int rank, const char *key, int64_t *out)
{
	struct rxp_value arg = rxp_v_str(key);
	struct rxp_future *f;
	int ret = rxp_rpc_sync(w->a, rank, "t.metric", &arg, 1, NULL, 0, NULL,
			       &f);

	if (ret)
		return ret;
	ret = rxp_future_status(f);
	if (!ret)
		*out = rxp_future_value(f)->u.i;
	rxp_future_release(f);
	return ret;
}

void world_release_hung(void)
{
	pthread_mutex_lock(&hung_mu);
	for (int i = 0; i < nhung; i++)
		rxp_call_fail(hung[i], "released");
	nhung = 0;
	pthread_mutex_unlock(&hung_mu);
}

static void *async_done(void *arg)
{
	struct rxp_call *c = arg;

	usleep(2000);
	fn_echo(c, NULL);
	return NULL;
}

static int fn_async_echo(struct rxp_call *c, void *user)
{
	pthread_t t;

	if (pthread_create(&t, NULL, async_done, c))
		return -EAGAIN;
	pthread_detach(t);
	return 0;
}

static int fn_whoami(struct rxp_call *c, void *user)
{
	struct rxp_agent *a = rxp_call_agent(c);
	struct rxp_worker_info me;
	struct rxp_value r;

	rxp_agent_self(a, &me);
	r = rxp_v_str(me.name);
	return rxp_call_return(c, &r, NULL, 0);
}

static int fn_call(struct rxp_call *c, void *user)
{
	struct rxp_agent *a = rxp_call_agent(c);
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	struct rxp_worker_info dst;
	struct rxp_future *f;
	struct rxp_value r;
	int ret;

	if (n != 2 || v[0].kind != RXP_V_STRING || v[1].kind != RXP_V_STRING)
		return -EINVAL;
	/* the callee is named: callers address by id, names are looked up */
	ret = rxp_agent_worker_by_name(a, v[0].u.str.ptr, &dst);
	if (ret)
		return ret;
	ret = rxp_rpc_sync(a, dst.id, v[1].u.str.ptr, NULL, 0, NULL, 0, NULL,
			   &f);
	if (ret)
		return ret;
	if (rxp_future_status(f)) {
		ret = rxp_call_fail(c, "nested: %s", rxp_future_error(f));
	} else {
		r = *rxp_future_value(f);
		ret = rxp_call_return(c, &r, NULL, 0);
	}
	rxp_future_release(f);
	return ret;
}

static int fn_fill(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	struct rxp_storage *s;
	int64_t shape[1];
	struct rxp_value r;
	int ret;

	if (n != 2 || v[0].kind != RXP_V_INT || v[1].kind != RXP_V_INT ||
	    v[0].u.i < 0)
		return -EINVAL;
	s = rxp_storage_alloc((size_t)v[0].u.i);
	if (!s)
		return -ENOMEM;
	memset(rxp_storage_data(s), (int)v[1].u.i, (size_t)v[0].u.i);
	shape[0] = v[0].u.i;
	r = rxp_v_tensor(RXP_DT_U8, 1, shape, NULL, 0, 0);
	ret = rxp_call_return(c, &r, &s, 1);
	rxp_storage_release(s);
	return ret;
}

/* t.rref_to_here(rref): fetch a received RRef's value and return it */
static int fn_rref_to_here(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	struct rxp_storage *st[16];
	struct rxp_rref *r;
	struct rxp_future *f;
	uint32_t ns;
	int ret;

	if (n != 1 || v[0].kind != RXP_V_RREF)
		return rxp_call_fail(c, "t.rref_to_here takes one RRef");
	ret = rxp_call_rref(c, &v[0], &r);
	if (ret)
		return ret;
	ret = rxp_rref_to_here(r, RXP_TIMEOUT_DEFAULT, &f);
	rxp_rref_release(r);
	if (ret)
		return ret;
	if (rxp_future_wait(f)) {
		ret = rxp_call_fail(c, "to_here: %s", rxp_future_error(f));
	} else {
		ns = rxp_future_nstorages(f);
		for (uint32_t i = 0; i < ns && i < 16; i++)
			st[i] = rxp_future_storage(f, i);
		ret = rxp_call_return(c, rxp_future_value(f), st,
				      ns < 16 ? ns : 16);
	}
	rxp_future_release(f);
	return ret;
}

static pthread_mutex_t kept_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rxp_rref *kept[64];
static int nkept;

/* t.rref_keep(rref): hold it; returns (fork creator, fork local) */
static int fn_rref_keep(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	struct rxp_rref_id fork;
	struct rxp_value r[2];
	struct rxp_value tup;
	struct rxp_rref *h;
	int ret;

	if (n != 1 || v[0].kind != RXP_V_RREF)
		return -EINVAL;
	ret = rxp_call_rref(c, &v[0], &h);
	if (ret)
		return ret;
	ret = rxp_rref_wait_confirmed(h, 10000);
	if (ret) {
		rxp_rref_release(h);
		return ret;
	}
	rxp_rref_ids(h, NULL, &fork);
	pthread_mutex_lock(&kept_mu);
	if (nkept < 64)
		kept[nkept++] = h;
	else
		rxp_rref_release(h);
	pthread_mutex_unlock(&kept_mu);
	r[0] = rxp_v_int(fork.creator);
	r[1] = rxp_v_int((int64_t)fork.local);
	tup = rxp_v_tuple(r, 2);
	return rxp_call_return(c, &tup, NULL, 0);
}

/* t.rref_drop(): release what t.rref_keep holds */
static int fn_rref_drop(struct rxp_call *c, void *user)
{
	pthread_mutex_lock(&kept_mu);
	while (nkept)
		rxp_rref_release(kept[--nkept]);
	pthread_mutex_unlock(&kept_mu);
	return rxp_call_return(c, NULL, NULL, 0);
}

/* t.rref_stats(): (owned, forks, pending children, pending deletes,
 * placeholders, placeholders refused) */
static int fn_rref_stats(struct rxp_call *c, void *user)
{
	static const char *const keys[6] = {"rref.owned",
					    "rref.forks",
					    "rref.pending_children",
					    "rref.pending_deletes",
					    "rref.placeholders",
					    "rref.placeholders_refused"};
	struct rxp_value r[6];
	struct rxp_value tup;

	for (int i = 0; i < 6; i++) {
		int64_t v = -1;

		rxp_agent_metric(rxp_call_agent(c), keys[i], &v);
		r[i] = rxp_v_int(v);
	}
	tup = rxp_v_tuple(r, 6);
	return rxp_call_return(c, &tup, NULL, 0);
}

/* t.metric(str key): the callee's rxp_agent_metric(key), -1 if unknown */
static int fn_metric(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	int64_t val = -1;
	struct rxp_value r;

	if (n != 1 || v[0].kind != RXP_V_STRING)
		return rxp_call_fail(c, "t.metric takes one string");
	rxp_agent_metric(rxp_call_agent(c), v[0].u.str.ptr, &val);
	r = rxp_v_int(val);
	return rxp_call_return(c, &r, NULL, 0);
}

/* t.rref_fork_flood(int dst, int n): n RREF_FORK messages to dst for RRef
 * ids no one creates, as a hostile peer would send them; returns (acked,
 * refused with -RXP_E_LIMIT, the last refusal's message) */
static int fn_rref_fork_flood(struct rxp_call *c, void *user)
{
	static atomic_uint_fast64_t batch;
	struct rxp_agent *a = rxp_call_agent(c);
	uint32_t n, me = (uint32_t)a->rank;
	const struct rxp_value *v = rxp_call_args(c, &n);
	int64_t acked = 0, limited = 0;
	struct rxp_future **f;
	struct rxp_value r[3], tup;
	char last[512] = "";
	uint64_t base;
	int ret = 0;

	if (n != 2 || v[0].kind != RXP_V_INT || v[1].kind != RXP_V_INT ||
	    v[1].u.i < 1 || v[1].u.i > 1000000)
		return rxp_call_fail(c, "t.rref_fork_flood takes (dst, n)");
	n = (uint32_t)v[1].u.i;
	f = calloc(n, sizeof(*f));
	if (!f)
		return -ENOMEM;
	base = (1ull << 40) + (atomic_fetch_add(&batch, 1) << 24);
	for (uint32_t i = 0; i < n && !ret; i++) {
		uint32_t owner = (uint32_t)v[0].u.i;
		uint64_t rid = base + i, fid = base + (1ull << 23) + i;
		uint8_t p[40] = {0};

		rxp_put_le32(
			p, owner); /* {owner, 0, {me, 0, rid}, {me, 0, fid}} */
		rxp_put_le32(p + 8, me);
		rxp_put_le64(p + 16, rid);
		rxp_put_le32(p + 24, me);
		rxp_put_le64(p + 32, fid);
		ret = rxp__send_internal(a, (int)owner, RXP__MSG_RREF_FORK, p,
					 sizeof(p), RXP_TIMEOUT_DEFAULT,
					 RXP__FUT_MSG, &f[i]);
	}
	for (uint32_t i = 0; i < n && f[i]; i++) {
		int st = rxp_future_wait(f[i]);

		if (!st) {
			acked++;
		} else if (st == -RXP_E_LIMIT) {
			limited++;
			snprintf(last, sizeof(last), "%s",
				 rxp_future_error(f[i]));
		}
		rxp_future_release(f[i]);
	}
	free(f);
	if (ret)
		return rxp_call_fail(c, "send: %s", rxp_strerror(ret));
	r[0] = rxp_v_int(acked);
	r[1] = rxp_v_int(limited);
	r[2] = rxp_v_str(last);
	tup = rxp_v_tuple(r, 3);
	return rxp_call_return(c, &tup, NULL, 0);
}

/* t.autograd(): (context id, message id, force) or None */
static int fn_autograd(struct rxp_call *c, void *user)
{
	struct rxp_autograd_meta m;
	struct rxp_value r[3];
	struct rxp_value tup;

	if (rxp_call_autograd(c, &m))
		return rxp_call_return(c, NULL, NULL, 0);
	r[0] = rxp_v_int(m.context_id);
	r[1] = rxp_v_int(m.message_id);
	r[2] = rxp_v_bool(m.force_grad_recording);
	tup = rxp_v_tuple(r, 3);
	return rxp_call_return(c, &tup, NULL, 0);
}

/* t.prof_work(): records an event of its own, then sleeps 5 ms */
static int fn_prof_work(struct rxp_call *c, void *user)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	usleep(5000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	rxp_call_record_event(c, "inner", t0.tv_sec * 1000000000LL + t0.tv_nsec,
			      t1.tv_sec * 1000000000LL + t1.tv_nsec);
	return rxp_call_return(c, NULL, NULL, 0);
}

static const struct rxp_fn_def fns[WORLD_NFNS] = {
	{"t.rref_to_here", fn_rref_to_here, 0, NULL},
	{"t.rref_keep", fn_rref_keep, 0, NULL},
	{"t.rref_drop", fn_rref_drop, 0, NULL},
	{"t.rref_stats", fn_rref_stats, 0, NULL},
	{"t.metric", fn_metric, 0, NULL},
	{"t.rref_fork_flood", fn_rref_fork_flood, 0, NULL},
	{"t.autograd", fn_autograd, 0, NULL},
	{"t.prof_work", fn_prof_work, 0, NULL},
	{"t.echo", fn_echo, 0, NULL},
	{"t.add", fn_add, 0, NULL},
	{"t.fail", fn_fail, 0, NULL},
	{"t.sleep_ms", fn_sleep, 0, NULL},
	{"t.hang", fn_hang, RXP_FN_ASYNC, NULL},
	{"t.async_echo", fn_async_echo, RXP_FN_ASYNC, NULL},
	{"t.whoami", fn_whoami, 0, NULL},
	{"t.call", fn_call, 0, NULL},
	{"t.fill", fn_fill, 0, NULL},
	{"t.bad_return", fn_bad_return, 0, NULL},
};

/* ---------------------------------------------------------- processes */

static void worker_main(int rank, int size, int port)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a;
	char name[32];
	int ret;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	world_attr(&attr, rank, size, port, name, sizeof(name));
	ret = rxp_agent_create(&attr, &a);
	if (ret) {
		fprintf(stderr, "worker %d: create: %s\n", rank,
			rxp_strerror(ret));
		_exit(ret == -RXP_E_NO_DEVICE ? 77
		      : ret == -RXP_E_AUTH    ? WORLD_EXIT_AUTH
					      : 2);
	}
	/* until everyone joins, or rank 0 goes away */
	rxp_agent_join(a, RXP_TIMEOUT_NEVER);
	world_release_hung();
	pthread_mutex_lock(&kept_mu);
	while (nkept)
		rxp_rref_release(kept[--nkept]);
	pthread_mutex_unlock(&kept_mu);
	rxp_agent_shutdown(a);
	_exit(0);
}

#define WORKER_FLAG "--rxp-world-worker"

/*
 * A forked child runs its worker in a fresh image (exec of this same test
 * program): librdmacm and libibverbs keep per-process device state that a
 * child of a process that already used them cannot use ("fork before any
 * verbs use, or exec"), and the test process has used them in earlier
 * tests. world_maybe_worker() at the top of main() picks it up.
 */
static void exec_worker(int rank, int size, int port)
{
	char r[16], s[16], p[16];
	char *const argv[] = {
		(char *)"rxp-test-worker", (char *)WORKER_FLAG, r, s, p, NULL};

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	snprintf(r, sizeof(r), "%d", rank);
	snprintf(s, sizeof(s), "%d", size);
	snprintf(p, sizeof(p), "%d", port);
	execv("/proc/self/exe", argv);
	fprintf(stderr, "worker %d: exec: %s\n", rank, strerror(errno));
	_exit(3);
}

void world_maybe_worker(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], WORKER_FLAG))
		worker_main(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
}

/* Rank 0 failed: a second for the workers to end on their own (their
 * exit codes say why), then SIGKILL for the rest. */
static void reap_after_failure(struct world *w)
{
	for (int r = 1; r < w->size; r++) {
		int st = 0;
		pid_t got = 0;

		for (int i = 0; i < 100 && !got; i++) {
			got = waitpid(w->pids[r], &st, WNOHANG);
			if (!got)
				usleep(10000);
		}
		if (!got) {
			kill(w->pids[r], SIGKILL);
			waitpid(w->pids[r], &st, 0);
		}
		w->exit_code[r] =
			got > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		w->pids[r] = 0;
	}
}

int world_start(struct world *w, int size)
{
	struct rxp_agent_attr attr;
	static char name[32];
	int ret;

	memset(w, 0, sizeof(*w));
	if (size < 1 || size > WORLD_MAX)
		return -EINVAL;
	w->size = size;
	w->port = world_free_port();
	if (w->port <= 0)
		return -EADDRNOTAVAIL;
	fflush(NULL);
	for (int r = 1; r < size; r++) {
		pid_t pid = fork();

		if (pid < 0)
			return -errno;
		if (pid == 0)
			exec_worker(r, size, w->port);
		w->pids[r] = pid;
	}
	world_attr(&attr, 0, size, w->port, name, sizeof(name));
	ret = rxp_agent_create(&attr, &w->a);
	if (ret) {
		reap_after_failure(w);
		return ret == -RXP_E_NO_DEVICE ? 77 : ret;
	}
	return 0;
}

int world_stop(struct world *w, bool join)
{
	int bad = 0;

	if (join && w->a)
		rxp_agent_join(w->a, 30000);
	world_release_hung();
	rxp_agent_shutdown(w->a);
	w->a = NULL;
	for (int r = 1; r < w->size; r++) {
		int st;

		if (!w->pids[r] || waitpid(w->pids[r], &st, 0) < 0)
			continue;
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
			continue;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "worker %d: exit status 0x%x\n", r, st);
			bad++;
		}
	}
	return bad;
}
