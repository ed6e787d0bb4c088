/* SPDX-License-Identifier: MIT */
/*
 * One worker of a three-worker world for twohost.sh's mixed run: ranks 0
 * and 1 share a "host" (a network namespace), rank 2 is on another. Every
 * worker calls every other one with a small tensor and a 1 MiB one (by
 * address on shm) and checks the bytes that come back.
 *
 *   mixed_worker <rank> <master-ip> <port>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rxp/rxp.h>

static int echo(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	struct rxp_storage *s = rxp_call_storage(c, 0);

	(void)user;
	if (n != 1 || !s)
		return rxp_call_fail(c, "mx.echo takes one tensor");
	return rxp_call_return(c, &v[0], &s, 1);
}

static const struct rxp_fn_def functions[] = {{"mx.echo", echo, 0, NULL}};

static int call(struct rxp_agent *a, uint32_t dst, size_t bytes)
{
	unsigned char *x = malloc(bytes);
	int64_t shape[1] = {(int64_t)bytes};
	struct rxp_value t = rxp_v_tensor(RXP_DT_U8, 1, shape, NULL, 0, 0);
	struct rxp_iov iov = {x, bytes};
	struct rxp_future *f;
	int ret;

	if (!x)
		return -1;
	for (size_t i = 0; i < bytes; i++)
		x[i] = (unsigned char)(i * 7 + dst);
	ret = rxp_rpc_sync(a, dst, "mx.echo", &t, 1, &iov, 1, NULL, &f);
	if (!ret) {
		ret = rxp_future_status(f);
		if (!ret && (rxp_future_nstorages(f) != 1 ||
			     memcmp(rxp_storage_data(rxp_future_storage(f, 0)),
				    x, bytes)))
			ret = -1;
		rxp_future_release(f);
	}
	free(x);
	return ret;
}

int main(int argc, char **argv)
{
	static const char *const names[3] = {"w0", "w1", "w2"};
	struct rxp_agent_attr attr;
	struct rxp_agent *a;
	int ret, rank;

	if (argc != 4 || (rank = atoi(argv[1])) < 0 || rank > 2) {
		fprintf(stderr, "usage: %s <rank 0..2> <master-ip> <port>\n",
			argv[0]);
		return 2;
	}
	rxp_agent_attr_init(&attr);
	attr.name = names[rank];
	attr.rank = rank;
	attr.world_size = 3;
	attr.master_addr = argv[2];
	attr.master_port = atoi(argv[3]);
	attr.functions = functions;
	attr.nfunctions = 1;
	ret = rxp_agent_create(&attr, &a);
	if (ret) {
		fprintf(stderr, "rxp_agent_create: %s\n", rxp_strerror(ret));
		return 1;
	}
	for (uint32_t d = 0; d < 3 && !ret; d++)
		if (d != (uint32_t)rank)
			ret = call(a, d, 4096) ? -1 : call(a, d, 1u << 20);
	printf("%s: rank %d called both others over %s\n",
	       ret ? "FAILED" : "ok", rank, rxp_agent_transport(a));
	rxp_agent_join(a, RXP_TIMEOUT_NEVER);
	rxp_agent_shutdown(a);
	return ret ? 1 : 0;
}
