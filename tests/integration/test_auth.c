/* SPDX-License-Identifier: MIT */
/*
 * Who may talk to a worker (issue 12): with a job secret, a raw-socket
 * client without it, with another one, or replaying a recorded handshake
 * runs nothing (a counting function stays put) and receives nothing but
 * the worker's hello; a world with matching secrets works; a worker with
 * another secret than rank 0 is refused at rendezvous with -RXP_E_AUTH; a
 * secret file others may read is refused. And without any secret: a RESP for a
 * pending call that arrives on another connection than its request is ignored.
 *
 * The raw client has its own encoder of the wire format and computes its
 * proof with libsodium directly, so docs/tcp.md is what gets tested.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "agent_int.h"
#include "codec.h"
#include "skip.h"
#include "capture.h"
#include "sock.h"
#include "world.h"

#define HELLO 80
#define PROOF 40
#define LABEL_CONN "rxp tcp v1 proof from connector"
#define LABEL_ACC "rxp tcp v1 proof from acceptor"

static const uint8_t secret[32] = "0123456789abcdef0123456789abcde";
static const uint8_t other[32] = "fedcba9876543210fedcba987654321";
static char secret_path[64];
static atomic_int count_calls;

static int fn_count(struct rxp_call *c, void *user)
{
	struct rxp_value r = rxp_v_int(atomic_fetch_add(&count_calls, 1) + 1);

	return rxp_call_return(c, &r, NULL, 0);
}

static void le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ------------------------------------------------------- raw client */

static int raw_open(const struct world *w)
{
	const char *addr = w->a->workers[0].addr; /* "ip:port" */
	const char *colon = strrchr(addr, ':');
	char host[64];
	int fd;

	assert_non_null(colon);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	fd = test_tcp_connect(host, atoi(colon + 1));
	assert_true(fd >= 0);
	return fd;
}

static void wr(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* A send after one the worker may have refused already: its reset can
 * be back before this send, which then fails; what follows checks that
 * nothing ran. */
static void wr_after(int fd, const void *p, size_t n)
{
	ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

	if (r < 0 && (errno == EPIPE || errno == ECONNRESET))
		return;
	assert_int_equal(r, (ssize_t)n);
}

/* bytes read (< n at EOF, reset or after the 3 s timeout; errno then
 * says which: 0 at EOF) */
static size_t rd(int fd, void *p, size_t n)
{
	size_t have = 0;

	errno = 0;

	while (have < n) {
		ssize_t r = recv(fd, (uint8_t *)p + have, n - have, 0);

		if (r <= 0)
			break;
		have += (size_t)r;
	}
	return have;
}

/* A hello claiming @worker; with @auth, its extension and @nonce. */
static size_t hello(uint8_t *out, uint32_t worker, bool auth, uint32_t world,
		    const uint8_t *nonce)
{
	memset(out, 0, HELLO);
	le(out, 0x48505852, 4); /* "RXPH" */
	le(out + 4, 1, 2);
	le(out + 6, 40, 2);
	le(out + 8, worker, 4);
	le(out + 12, 1024, 4);
	le(out + 16, 64u << 20, 8);
	le(out + 24, 16ull << 30, 8);
	le(out + 32, auth ? 1 : 0, 8);
	if (!auth)
		return 40;
	le(out + 40, world, 4);
	memcpy(out + 48, nonce, 32);
	return HELLO;
}

static void proof(uint8_t out[PROOF], const uint8_t *sec, size_t seclen,
		  const char *label, const uint8_t *conn, const uint8_t *acc)
{
	static const char key_label[] = "rxp job secret v1";
	crypto_auth_hmacsha256_state st;
	uint8_t key[32];

	crypto_generichash(key, sizeof(key), sec, seclen,
			   (const uint8_t *)key_label, sizeof(key_label) - 1);
	le(out, 0x41505852, 4); /* "RXPA" */
	le(out + 4, 1, 2);
	le(out + 6, PROOF, 2);
	crypto_auth_hmacsha256_init(&st, key, sizeof(key));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)label,
				      strlen(label) + 1);
	crypto_auth_hmacsha256_update(&st, conn, HELLO);
	crypto_auth_hmacsha256_update(&st, acc, HELLO);
	crypto_auth_hmacsha256_final(&st, out + 8);
}

/* A frame with a payload and no storages. */
static size_t frame(uint8_t *out, uint8_t type, uint64_t id, const void *pl,
		    size_t len)
{
	memset(out, 0, 32);
	le(out, 0x5852, 2);
	out[2] = 1;
	out[3] = type;
	le(out + 16, id, 8);
	le(out + 24, len, 8);
	memcpy(out + 32, pl, len);
	return 32 + len;
}

/* CALL t.count() with request id @id. */
static size_t call_frame(uint8_t *out, size_t cap, uint64_t id)
{
	struct rxp_call_meta meta = {0};
	uint8_t pl[256];
	int64_t n = rxp_codec_call_encode("t.count", NULL, 0, 0, &meta, pl,
					  sizeof(pl));

	assert_true(n > 0 && 32 + (size_t)n <= cap);
	return frame(out, RXP__MSG_CALL, id, pl, (size_t)n);
}

/* The worker's hello: 80 bytes that say it authenticates. */
static void read_server_hello(int fd, uint8_t *acc)
{
	assert_int_equal(rd(fd, acc, HELLO), HELLO);
	assert_int_equal(get_le(acc, 4), 0x48505852);
	assert_int_equal(get_le(acc + 32, 8), 1); /* TCP_F_AUTH */
	assert_int_equal(get_le(acc + 40, 4), 2); /* world size */
}

/*
 * The same for a client that sent more than its hello before reading:
 * the worker refuses on the hello and closes with those bytes unread, so
 * its kernel answers with a reset, and a reset that overtakes our read
 * discards the worker's hello. Then nothing came at all, which is what
 * these tests want to see after the hello anyway; false then.
 */
static bool read_server_hello_or_reset(int fd, uint8_t *acc)
{
	size_t n = rd(fd, acc, HELLO);

	if (n < HELLO && errno == ECONNRESET)
		return false;
	assert_int_equal(n, HELLO);
	assert_int_equal(get_le(acc, 4), 0x48505852);
	assert_int_equal(get_le(acc + 32, 8), 1);
	assert_int_equal(get_le(acc + 40, 4), 2);
	return true;
}

/* After the worker's hello: nothing, then the connection closes. */
static void assert_nothing_then_closed(int fd)
{
	uint8_t b[64];

	assert_int_equal(rd(fd, b, sizeof(b)), 0);
}

static int64_t metric(struct world *w, const char *key)
{
	int64_t v = -1;

	assert_int_equal(rxp_agent_metric(w->a, key, &v), 0);
	return v;
}

static void write_secret(const char *path, const void *s, size_t n, int mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, n, f), n);
	fclose(f);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
}

static struct world *start(bool with_secret)
{
	static struct world w;
	int ret;

	if (with_secret)
		setenv("RXP_SECRET_FILE", secret_path, 1);
	else
		unsetenv("RXP_SECRET_FILE");
	ret = world_start(&w, 2);
	if (ret == 77)
		skip();
	assert_int_equal(ret, 0);
	assert_int_equal(rxp_agent_register(w.a, "t.count", fn_count, 0, NULL),
			 0);
	atomic_store(&count_calls, 0);
	return &w;
}

static int add(struct world *w, int64_t x, int64_t *out)
{
	struct rxp_value args[2] = {rxp_v_int(x), rxp_v_int(1)};
	struct rxp_future *f;
	int ret = rxp_rpc_sync(w->a, 1, "t.add", args, 2, NULL, 0, NULL, &f);

	if (ret)
		return ret;
	ret = rxp_future_status(f);
	if (!ret && out)
		*out = rxp_future_value(f)->u.i;
	if (ret)
		printf("  call failed: %s\n", rxp_future_error(f));
	rxp_future_release(f);
	return ret;
}

/* ------------------------------------------------------------ tests */

static void test_matching_secrets_work(void **state)
{
	struct world *w = start(true);
	int64_t v = 0;

	assert_int_equal(add(w, 41, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(metric(w, "transport.auth_refused"), 0);
	assert_int_equal(world_stop(w, true), 0);
}

static void test_no_secret_runs_nothing(void **state)
{
	struct world *w = start(true);
	uint8_t hs[HELLO], acc[HELLO], call[512];
	size_t n = hello(hs, 1, false, 0, NULL);
	int fd = raw_open(w);

	wr(fd, hs, n); /* a v1 hello, as a worker without a secret sends */
	wr_after(fd, call, call_frame(call, sizeof(call), 7));
	if (read_server_hello_or_reset(fd, acc))
		assert_nothing_then_closed(fd);
	close(fd);
	assert_int_equal(atomic_load(&count_calls), 0);
	assert_int_equal(metric(w, "transport.auth_refused"), 1);
	assert_int_equal(metric(w, "calls.served"), 0);
	assert_int_equal(world_stop(w, true), 0);
}

/* A client that knows @sec: 0 if t.count ran and answered. The bytes
 * it sent are kept in @rec (for the replay). */
static size_t raw_call(struct world *w, const uint8_t *sec, uint8_t *rec,
		       bool *answered)
{
	uint8_t conn[HELLO], acc[HELLO], p[PROOF], b[512], nonce[32];
	size_t n = 0, m;
	int fd = raw_open(w);

	randombytes_buf(nonce, sizeof(nonce));
	hello(conn, 1, true, 2, nonce);
	wr(fd, conn, HELLO);
	read_server_hello(fd, acc);
	proof(p, sec, 32, LABEL_CONN, conn, acc);
	m = call_frame(b, sizeof(b), 9);
	wr(fd, p, PROOF);
	wr_after(fd, b, m);
	memcpy(rec, conn, HELLO);
	memcpy(rec + HELLO, p, PROOF);
	memcpy(rec + HELLO + PROOF, b, m);
	n = HELLO + PROOF + m;
	*answered = false;
	if (sec == secret) {
		uint8_t want[PROOF];

		/* the worker's proof, then the RESP to request 9 */
		assert_int_equal(rd(fd, b, PROOF), PROOF);
		proof(want, sec, 32, LABEL_ACC, conn, acc);
		assert_memory_equal(b, want, PROOF);
		assert_int_equal(rd(fd, b, 32), 32);
		assert_int_equal(b[3], RXP__MSG_RESP);
		assert_int_equal(get_le(b + 16, 8), 9);
		*answered = true;
	} else {
		assert_nothing_then_closed(fd);
	}
	close(fd);
	return n;
}

static void test_wrong_secret_runs_nothing(void **state)
{
	struct world *w = start(true);
	uint8_t rec[1024];
	bool answered;

	raw_call(w, other, rec, &answered);
	assert_false(answered);
	assert_int_equal(atomic_load(&count_calls), 0);
	assert_int_equal(metric(w, "transport.auth_refused"), 1);
	assert_int_equal(world_stop(w, true), 0);
}

static void test_replayed_handshake_runs_nothing(void **state)
{
	struct world *w = start(true);
	uint8_t rec[1024], acc[HELLO];
	bool answered;
	size_t n;
	int fd;

	/* the control: this client, with the secret, gets its call run */
	n = raw_call(w, secret, rec, &answered);
	assert_true(answered);
	assert_int_equal(atomic_load(&count_calls), 1);
	/* the same bytes again: the worker's fresh nonce makes the old
	 * proof worthless */
	fd = raw_open(w);
	wr(fd, rec, n);
	if (read_server_hello_or_reset(fd, acc))
		assert_nothing_then_closed(fd);
	close(fd);
	assert_int_equal(atomic_load(&count_calls), 1);
	assert_int_equal(metric(w, "transport.auth_refused"), 1);
	assert_int_equal(world_stop(w, true), 0);
}

/* Rank 0 checks a worker's secret at rendezvous (issue 12): a worker with
 * another secret is refused there, fails its create at once with
 * -RXP_E_AUTH, and never gets the table; rank 0 keeps its slot open (a
 * hostile hello must not end the world) until its own init timeout. */
struct two_calls {
	struct world *w;
	int answered;
};

static void run_two_calls(void *arg)
{
	struct two_calls *t = arg;
	uint8_t rec[1024];
	bool answered;

	for (int i = 0; i < 2; i++) {
		raw_call(t->w, secret, rec, &answered);
		t->answered += answered;
	}
}

/* An operator sees who got in (issue 12 item 7): the first accepted
 * connection of a worker id is logged, once, with how it proved itself;
 * a refused one is logged as refused. */
static void test_first_accept_logged_once(void **state)
{
	struct two_calls t = {.w = start(true)};
	int saved = rxp__log_level;
	char log[8192];
	const char *p;
	int n = 0;

	rxp__log_level = RXP_LOG_INFO;
	capture_stderr(run_two_calls, &t, log, sizeof(log));
	rxp__log_level = saved;
	assert_int_equal(t.answered, 2);
	for (p = log; (p = strstr(p, "accepted a connection from worker 1 "
				     "(authenticated with the job secret)"));
	     p++)
		n++;
	assert_int_equal(n, 1);
	assert_int_equal(world_stop(t.w, true), 0);
}

static void test_mismatched_secrets_fail_clearly(void **state)
{
	static struct world w;
	int64_t t0;
	int ret;

	setenv("RXP_SECRET_FILE", secret_path, 1);
	world_rank0_secret = other; /* worker1 has `secret`, rank 0 `other` */
	world_rank0_secret_len = sizeof(other);
	world_rank0_init_timeout_ms = 1500 * world_time_scale();
	t0 = rxp_now_ns();
	ret = world_start(&w, 2);
	world_rank0_secret = NULL;
	world_rank0_init_timeout_ms = 0;
	if (ret == 77)
		skip();
	assert_int_equal(ret, -ETIMEDOUT);
	assert_null(w.a);
	assert_int_equal(w.exit_code[1], WORLD_EXIT_AUTH);
	/* the init timeout, not the workers' 30 s */
	assert_true(rxp_now_ns() - t0 < 10000000000ll * world_time_scale());
}

static void test_secret_file_bad_permissions(void **state)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	char name[32];

	world_attr(&attr, 0, 1, world_free_port(), name, sizeof(name));
	write_secret(secret_path, secret, sizeof(secret), 0644);
	setenv("RXP_SECRET_FILE", secret_path, 1);
	assert_int_equal(rxp_agent_create(&attr, &a), -EPERM);
	assert_null(a);
	chmod(secret_path, 0640);
	assert_int_equal(rxp_agent_create(&attr, &a), -EPERM);
	chmod(secret_path, 0600);
	write_secret(secret_path, secret, 8, 0600); /* too short */
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
	setenv("RXP_SECRET_FILE", "/nonexistent/rxp-secret", 1);
	assert_int_equal(rxp_agent_create(&attr, &a), -ENOENT);
	attr.secret = "short";
	attr.secret_len = 5;
	assert_int_equal(rxp_agent_create(&attr, &a), -EINVAL);
	unsetenv("RXP_SECRET_FILE");
	write_secret(secret_path, secret, sizeof(secret), 0600);
}

/* The id of rank 0's one pending call (read under the progress lock,
 * which the polling thread holds while it touches the table). */
static uint64_t pending_id(struct world *w)
{
	uint64_t id = 0;

	for (int i = 0; i < 200 && !id; i++) {
		rxp__progress_lock(&w->a->progress_mu);
		for (uint32_t s = 0; s < w->a->pending.cap; s++) {
			struct rxp_future *f = w->a->pending.v[s].ptr;

			if (f && f->dst == 1 && f->type == RXP__MSG_CALL)
				id = f->id;
		}
		rxp__progress_unlock(&w->a->progress_mu);
		if (!id)
			usleep(5000);
	}
	assert_true(id != 0);
	return id;
}

static void test_forged_response_ignored(void **state)
{
	struct world *w = start(false); /* no secret: anyone may connect */
	struct rxp_value ms = rxp_v_int(600), forged = rxp_v_int(999);
	uint8_t hs[HELLO], pl[64], b[128];
	struct rxp_future *f;
	int64_t n;
	int fd;

	assert_int_equal(
		rxp_rpc_async(w->a, 1, "t.sleep_ms", &ms, 1, NULL, 0, NULL, &f),
		0);
	/* a stranger claims to be worker 1 and answers that call first */
	fd = raw_open(w);
	wr(fd, hs, hello(hs, 1, false, 0, NULL));
	n = rxp_codec_value_encode(&forged, 0, pl, sizeof(pl));
	assert_true(n > 0);
	wr(fd, b, frame(b, RXP__MSG_RESP, pending_id(w), pl, (size_t)n));
	for (int i = 0; i < 200 && !metric(w, "calls.forged_responses"); i++)
		usleep(5000);
	assert_int_equal(metric(w, "calls.forged_responses"), 1);
	assert_int_equal(rxp_future_wait(f), 0);
	assert_int_equal(rxp_future_value(f)->u.i, 600); /* the real one */
	rxp_future_release(f);
	close(fd);
	assert_int_equal(world_stop(w, true), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matching_secrets_work),
		cmocka_unit_test(test_no_secret_runs_nothing),
		cmocka_unit_test(test_wrong_secret_runs_nothing),
		cmocka_unit_test(test_replayed_handshake_runs_nothing),
		cmocka_unit_test(test_first_accept_logged_once),
		cmocka_unit_test(test_mismatched_secrets_fail_clearly),
		cmocka_unit_test(test_secret_file_bad_permissions),
		cmocka_unit_test(test_forged_response_ignored),
	};
	int fd, fails;

	world_maybe_worker(argc, argv);
	if (!world_transport_usable())
		return 77;
	if (sodium_init() < 0)
		return 1;
	snprintf(secret_path, sizeof(secret_path), "/tmp/rxp-secret-XXXXXX");
	fd = mkstemp(secret_path);
	if (fd < 0)
		return 1;
	close(fd);
	write_secret(secret_path, secret, sizeof(secret), 0600);
	setenv("RXP_LOG", "error", 0);
	fails = cmocka_run_group_tests_name("auth", tests, NULL, NULL);
	unlink(secret_path);
	return fails ? 1 : 0;
}
