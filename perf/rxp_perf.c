/* SPDX-License-Identifier: MIT */
/*
 * rxp-perf: perftest-style latency/throughput tool over rxp's public API.
 *
 *   rxp-perf [opts]                server: rank 0, serves the rendezvous at
 *                                  -a addr (127.0.0.1) : -p port
 *   rxp-perf [opts] <server-host>  client: rank 1, calls the server
 *
 *   -t auto|tcp|verbs   transport (both sides; default: $RXP_TRANSPORT/auto)
 *   -p port             rendezvous port (default 18560)
 *   -a addr             server: address to serve the rendezvous on
 *   -s size             0 = tiny call bench.add(1, 2); else echo of a uint8
 *                       tensor of that many bytes (k/m/g suffixes)
 *   -n iters            measured calls (default 10000)
 *   -W warmup           warm-up calls (default iters/10, at most 1000)
 *   -w window           calls in flight (default 1)
 *   -P poll_us          agent spin time before sleeping (default
 *                       $RXP_POLL_US, else 0 = sleep at once)
 *   -l label            system name in the output (default rxp-<transport>)
 *   -V                  verify echoed bytes
 *   --json              one JSON result line (see perf_stats.h)
 *
 * Latency is per call (issue to completion, us); throughput counts bytes
 * moved both ways (2 * size per echo) and calls/s. Both sides stop by
 * themselves: the server leaves once the client joins, or after 600 s.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rxp/rxp.h>

#include "perf_fns.h"
#include "perf_stats.h"

#define SERVER_RANK 0 /* the client calls it by this id */

struct opts {
	const char *transport, *addr, *host, *label;
	int port, poll_us, verify, json;
	size_t size, iters, warm;
	unsigned window;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: rxp-perf [-t auto|tcp|verbs] [-p port] [-a addr]"
		" [-P poll_us]   (server)\n"
		"       rxp-perf [-t ..] [-p port] [-s size] [-n iters] [-W "
		"warmup]"
		" [-w window] [-P poll_us] [-l label] [-V] [--json] "
		"<server-host>\n");
	exit(2);
}

/* Run @n calls keeping @window in flight; latencies into @lat (or NULL). */
static int run_calls(struct rxp_agent *a, const struct perf_call *c, size_t n,
		     unsigned window, int verify, uint64_t *lat)
{
	struct rxp_future **futs = calloc(window, sizeof(*futs));
	uint64_t *start = calloc(window, sizeof(*start));
	size_t issued = 0, done = 0;
	int ret = 0;

	if (!futs || !start) {
		ret = -12;
		goto out;
	}
	while (done < n) {
		while (issued < n && issued - done < window) {
			unsigned slot = (unsigned)(issued % window);

			start[slot] = perf_now_ns();
			ret = perf_call_issue(a, SERVER_RANK, c, &futs[slot]);
			if (ret) {
				fprintf(stderr, "rxp-perf: rxp_rpc_async: %s\n",
					rxp_strerror(ret));
				goto out;
			}
			issued++;
		}
		{
			unsigned slot = (unsigned)(done % window);
			const char *why = "";

			rxp_future_wait(futs[slot]);
			if (lat)
				lat[done] = perf_now_ns() - start[slot];
			ret = perf_call_check(c, futs[slot], verify, &why);
			rxp_future_release(futs[slot]);
			futs[slot] = NULL;
			done++;
			if (ret) {
				fprintf(stderr, "rxp-perf: call failed: %s\n",
					why);
				goto out;
			}
		}
	}
out:
	/* drain what is still in flight after an error */
	while (futs && done < issued) {
		unsigned slot = (unsigned)(done % window);

		if (futs[slot]) {
			rxp_future_wait(futs[slot]);
			rxp_future_release(futs[slot]);
		}
		done++;
	}
	free(futs);
	free(start);
	return ret;
}

static int run_client(const struct opts *o)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	struct perf_summary s;
	struct perf_call c;
	char label[64];
	uint64_t *lat = NULL, t0, t1;
	unsigned char *buf = NULL;
	size_t i;
	int ret, rc = 1;

	rxp_agent_attr_init(&attr);
	attr.name = "client";
	attr.rank = 1;
	attr.world_size = 2;
	attr.master_addr = o->host;
	attr.master_port = o->port;
	attr.transport = o->transport;
	attr.poll_us = o->poll_us;
	attr.init_timeout_ms = 30000;
	attr.rpc_timeout_ms = 120000;
	ret = rxp_agent_create(&attr, &a);
	if (ret) {
		fprintf(stderr, "rxp-perf: rxp_agent_create: %s\n",
			rxp_strerror(ret));
		return ret == -RXP_E_NO_DEVICE ? 77 : 1;
	}
	ret = perf_wait_ready(a, SERVER_RANK, 10000);
	if (ret) {
		fprintf(stderr, "rxp-perf: server not ready: %s\n",
			rxp_strerror(ret));
		goto out;
	}
	if (o->size) {
		buf = malloc(o->size);
		if (!buf)
			goto out;
		for (i = 0; i < o->size; i++)
			buf[i] = (unsigned char)(i * 131 + 7);
		rxp_mem_register(a, buf, o->size);
	}
	perf_call_init(&c, o->size, buf);
	lat = calloc(o->iters, sizeof(*lat));
	if (!lat)
		goto out;
	if (run_calls(a, &c, o->warm, o->window, o->verify, NULL))
		goto out;
	t0 = perf_now_ns();
	if (run_calls(a, &c, o->iters, o->window, o->verify, lat))
		goto out;
	t1 = perf_now_ns();

	s = perf_summarize(lat, o->iters);
	{
		double sec = (double)(t1 - t0) / 1e9;
		double calls = (double)o->iters / sec;
		double mb = o->size ? 2.0 * (double)o->size * calls / 1e6 : 0;
		const char *scen = o->window > 1 ? "calls"
				   : o->size	 ? "echo"
						 : "rtt";

		if (o->label)
			snprintf(label, sizeof(label), "%s", o->label);
		else
			snprintf(label, sizeof(label), "rxp-%s",
				 rxp_agent_transport(a));
		if (o->json)
			perf_print_json(stdout, label, scen, o->size, o->window,
					o->iters, &s, mb, calls);
		else
			perf_print_text(stdout, label, scen, o->size, o->window,
					o->iters, &s, mb, calls);
	}
	rc = 0;
out:
	if (buf)
		rxp_mem_unregister(a, buf, o->size);
	ret = rxp_agent_join(a, 30000);
	if (ret)
		fprintf(stderr, "rxp-perf: rxp_agent_join: %s\n",
			rxp_strerror(ret));
	rxp_agent_shutdown(a);
	free(buf);
	free(lat);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"verify", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct opts o = {.addr = "127.0.0.1",
			 .port = 18560,
			 .poll_us = -1,
			 .iters = 10000,
			 .warm = (size_t)-1,
			 .window = 1};
	int c;

	alarm(900);
	while ((c = getopt_long(argc, argv, "t:p:a:s:n:W:w:P:l:Vjh", lopts,
				NULL)) != -1) {
		switch (c) {
		case 't':
			o.transport = optarg;
			break;
		case 'p':
			o.port = atoi(optarg);
			break;
		case 'a':
			o.addr = optarg;
			break;
		case 's':
			o.size = perf_parse_size(optarg);
			if (!o.size && strcmp(optarg, "0"))
				usage();
			break;
		case 'n':
			o.iters = strtoull(optarg, NULL, 10);
			break;
		case 'W':
			o.warm = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			o.window = (unsigned)atoi(optarg);
			break;
		case 'P':
			o.poll_us = atoi(optarg);
			break;
		case 'l':
			o.label = optarg;
			break;
		case 'V':
			o.verify = 1;
			break;
		case 'j':
			o.json = 1;
			break;
		default:
			usage();
		}
	}
	if (o.transport && !strcmp(o.transport, "auto"))
		o.transport = NULL;
	if (optind == argc)
		return perf_serve("server", SERVER_RANK, o.addr, o.port,
				  o.transport, o.poll_us, 600);
	if (!o.iters || !o.window)
		usage();
	if (o.warm == (size_t)-1)
		o.warm = o.iters / 10 < 1000 ? o.iters / 10 : 1000;
	o.host = argv[optind];
	return run_client(&o);
}
