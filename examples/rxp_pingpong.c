/* SPDX-License-Identifier: MIT */
/*
 * rxp_pingpong: the smallest complete rxp program, two processes.
 *
 *   rxp_pingpong server [port]              # rank 0, serves rendezvous
 *   rxp_pingpong client <server-ip> [port]  # rank 1, pings rank 0
 *
 * The client sends a float32 tensor to "pp.pong" 10 times; the server
 * returns it (zero-copy: the received storage goes back as is) and the
 * client checks every byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rxp/rxp.h>

static int pong(struct rxp_call *c, void *user)
{
	uint32_t n;
	const struct rxp_value *v = rxp_call_args(c, &n);
	struct rxp_storage *s = rxp_call_storage(c, 0);

	if (n != 1 || !s)
		return rxp_call_fail(c, "pp.pong takes one tensor");
	return rxp_call_return(c, &v[0], &s, 1);
}

/* registered before rendezvous, so it exists before the peer can call */
static const struct rxp_fn_def functions[] = {{"pp.pong", pong, 0, NULL}};

int main(int argc, char **argv)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a;
	int server, ret;

	if (argc < 2 ||
	    (strcmp(argv[1], "server") && strcmp(argv[1], "client")) ||
	    (!strcmp(argv[1], "client") && argc < 3)) {
		fprintf(stderr,
			"usage: %s server [port] | client <ip> [port]\n",
			argv[0]);
		return 2;
	}
	server = !strcmp(argv[1], "server");
	rxp_agent_attr_init(&attr);
	attr.name = server ? "server" : "client";
	attr.rank = server ? 0 : 1;
	attr.world_size = 2;
	attr.master_addr = server ? "0.0.0.0" : argv[2];
	attr.master_port =
		atoi(argc > (server ? 2 : 3) ? argv[server ? 2 : 3] : "29500");
	attr.functions = functions;
	attr.nfunctions = 1;
	ret = rxp_agent_create(&attr, &a);
	if (ret) {
		fprintf(stderr, "rxp_agent_create: %s\n", rxp_strerror(ret));
		return 1;
	}
	if (!server) {
		float x[1024];
		int64_t shape[1] = {1024};
		struct rxp_value t =
			rxp_v_tensor(RXP_DT_F32, 1, shape, NULL, 0, 0);
		struct rxp_iov iov = {x, sizeof(x)};
		struct rxp_worker_info srv;

		/* workers are addressed by id: look the name up once */
		ret = rxp_agent_worker_by_name(a, "server", &srv);
		for (int i = 0; i < 1024; i++)
			x[i] = (float)i * 0.5f;
		for (int i = 0; i < 10 && !ret; i++) {
			struct rxp_future *f;

			ret = rxp_rpc_sync(a, srv.id, "pp.pong", &t, 1, &iov, 1,
					   NULL, &f);
			if (!ret &&
			    (rxp_future_status(f) ||
			     memcmp(rxp_storage_data(rxp_future_storage(f, 0)),
				    x, sizeof(x))))
				ret = rxp_future_status(f)
					      ? rxp_future_status(f)
					      : -1;
			rxp_future_release(f);
		}
		printf("%s: 10 ping-pongs of a 4 KiB tensor over %s\n",
		       ret ? "FAILED" : "ok", rxp_agent_transport(a));
	}
	rxp_agent_join(a, RXP_TIMEOUT_NEVER);
	rxp_agent_shutdown(a);
	return ret ? 1 : 0;
}
