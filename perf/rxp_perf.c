/* SPDX-License-Identifier: MIT */
/*
 * rxp-perf: perftest-style latency/bandwidth tool over rxp's public API.
 * Flags follow perftest (ib_send_lat, ib_send_bw) where they overlap;
 * usage() is the reference, docs/perf/README.md the long form.
 *
 * Latency mode (default): round trips of the tiny call bench.add(1, 2)
 * (-s 0) or of the echo of a uint8 tensor of -s bytes; min/p50/p99/p99.9/
 * max/avg per call, issue to completion (a round trip: ib_send_lat's
 * t_typical is half of one). Bandwidth mode (--bw): bench.sink(tensor)
 * with -t calls in flight; MB/s = 10^6 bytes the client sent per second,
 * one direction, as ib_*_bw counts. Both sides stop by themselves: the
 * server leaves once the client joins, or after 600 s.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rxp/rxp.h>

#include "perf_fns.h"
#include "perf_stats.h"

#define SERVER_RANK 0 /* the client calls it by this id */

#define ALL_MIN 2 /* -a: 2 B .. 8 MiB, as perftest's */
#define ALL_MAX (8u << 20)

struct opts {
	const char *transport, *addr, *host, *label;
	int port, poll_us, verify, json, all, bw;
	size_t size, iters, warm;
	unsigned window;
};

static const char usage_text[] =
	"usage: rxp-perf [options]              server (rank 0)\n"
	"       rxp-perf [options] <server>     client (rank 1)\n"
	"perftest's flags where they overlap (ib_send_lat, ib_send_bw):\n"
	"  -d, --ib-dev DEV      RDMA device (RXP_VERBS_DEVICE); with\n"
	"                        --transport tcp: the interface "
	"(RXP_SOCKET_IFNAME=DEV)\n"
	"  -i, --ib-port N       RDMA port (RXP_VERBS_PORT)\n"
	"  -x, --gid-index N     GID index (RXP_VERBS_GID_INDEX)\n"
	"  -p, --port N          rendezvous port (default 18560)\n"
	"  -s, --size N          bytes (k/m/g suffixes); 0 = tiny call "
	"bench.add(1, 2)\n"
	"                        (default 0; --bw: 65536)\n"
	"  -a, --all             every size 2 B .. 8 MiB, powers of two\n"
	"  -n, --iters N         measured calls per size (default 1000)\n"
	"  -t, --tx-depth N      calls in flight (default 1; --bw: 16)\n"
	"rxp's own:\n"
	"      --bw              bandwidth: bench.sink(tensor), one-way MB/s\n"
	"      --transport T     auto|tcp|verbs|shm, both sides (default "
	"$RXP_TRANSPORT, auto)\n"
	"      --bind ADDR       server: address to serve the rendezvous on\n"
	"                        (default 0.0.0.0: every interface; peers\n"
	"                        are told the first one they can reach)\n"
	"      --warmup N        warm-up calls (default iters/10, at most "
	"1000)\n"
	"  -P, --poll-us N       agent spin time before sleeping (default "
	"$RXP_POLL_US, 0)\n"
	"      --label S         system name in the output (default "
	"rxp-<transport>)\n"
	"      --verify          check the echoed bytes\n"
	"      --json            one JSON line per size: system, scenario, "
	"size, window,\n"
	"                        iters, min_us, p50_us, p99_us, p999_us, "
	"max_us, avg_us,\n"
	"                        mb_s, calls_s (perf/perf_stats.h)\n"
	"  -h, --help            this text\n"
	"Latency is a round trip per call, in us. MB/s is 10^6 bytes/s: with "
	"--bw the\n"
	"bytes the client sent (one direction, as ib_*_bw); for an echo both "
	"directions.\n";

/* Exit 2 with a message on stderr; never returns. */
__attribute__((format(printf, 1, 2), noreturn)) static void
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rxp-perf: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nrxp-perf: see rxp-perf --help\n");
	exit(2);
}

/* Strict unsigned decimal for flag @flag; exits 2 on anything else. */
static unsigned long long num_arg(const char *flag, const char *v,
				  unsigned long long max)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (!*v || *end || errno || n > max || v[0] == '-') {
		fprintf(stderr,
			"rxp-perf: %s: '%s' is not a number in 0..%llu\n", flag,
			v, max);
		if (!strcmp(flag, "-t"))
			fprintf(stderr, "rxp-perf: -t is perftest's tx depth "
					"(calls in flight); the transport is "
					"--transport\n");
		exit(2);
	}
	return n;
}

/* Flags rxp-perf had before it followed perftest, and where they went. */
static const char *moved_flag(int c)
{
	switch (c) {
	case 'w':
		return "-w (window) is -t/--tx-depth now";
	case 'W':
		return "-W (warm-up) is --warmup now";
	case 'l':
		return "-l (label) is --label now";
	case 'V':
		return "-V (verify) is --verify now";
	default:
		return NULL;
	}
}

/*
 * -a took the server's address before; now it takes none. A word right
 * after -a is refused rather than read as the server host, so an old
 * "-a ADDR" cannot silently start a client.
 */
static void refuse_old_bind(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return;
		if (strcmp(argv[i], "-a"))
			continue;
		if (argv[i + 1][0] != '-')
			bad_usage("-a takes no argument (all sizes, as in "
				  "perftest): the server's address is --bind "
				  "%s now; for a client sweep put the server "
				  "before -a or use --all",
				  argv[i + 1]);
	}
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

/* Warm up, measure and print one size; 0 or -1. @buf holds @size bytes. */
static int run_size(struct rxp_agent *a, const struct opts *o, size_t size,
		    const unsigned char *buf, uint64_t *lat)
{
	struct perf_summary s;
	struct perf_call c;
	char label[64];
	uint64_t t0, t1;
	double sec, calls, mb;
	const char *scen;

	perf_call_init(&c, size, (void *)buf);
	if (o->bw)
		perf_call_sink(&c);
	if (run_calls(a, &c, o->warm, o->window, o->verify, NULL))
		return -1;
	t0 = perf_now_ns();
	if (run_calls(a, &c, o->iters, o->window, o->verify, lat))
		return -1;
	t1 = perf_now_ns();

	s = perf_summarize(lat, o->iters);
	sec = (double)(t1 - t0) / 1e9;
	calls = (double)o->iters / sec;
	/* --bw: bytes the client sent, one way (ib_*_bw); an echo moves
	 * them both ways (perf_stats.h) */
	mb = !size ? -1 : (o->bw ? 1.0 : 2.0) * (double)size * calls / 1e6;
	scen = o->bw	       ? "stream"
	       : o->window > 1 ? "calls"
	       : size	       ? "echo"
			       : "rtt";
	if (o->label)
		snprintf(label, sizeof(label), "%s", o->label);
	else
		snprintf(label, sizeof(label), "rxp-%s",
			 rxp_agent_transport(a));
	if (o->json)
		perf_print_json(stdout, label, scen, size, o->window, o->iters,
				&s, mb, calls);
	else
		perf_print_text(stdout, label, scen, size, o->window, o->iters,
				&s, mb, calls);
	return 0;
}

static int run_client(const struct opts *o)
{
	struct rxp_agent_attr attr;
	struct rxp_agent *a = NULL;
	uint64_t *lat = NULL;
	unsigned char *buf = NULL;
	size_t i, max = o->all ? ALL_MAX : o->size;
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
	if (max) {
		buf = malloc(max);
		if (!buf)
			goto out;
		for (i = 0; i < max; i++)
			buf[i] = (unsigned char)(i * 131 + 7);
		rxp_mem_register(a, buf, max);
	}
	lat = calloc(o->iters, sizeof(*lat));
	if (!lat)
		goto out;
	if (!o->all) {
		if (run_size(a, o, o->size, buf, lat))
			goto out;
	} else {
		for (size_t sz = ALL_MIN; sz <= ALL_MAX; sz <<= 1)
			if (run_size(a, o, sz, buf, lat))
				goto out;
	}
	rc = 0;
out:
	if (buf)
		rxp_mem_unregister(a, buf, max);
	ret = rxp_agent_join(a, 30000);
	if (ret)
		fprintf(stderr, "rxp-perf: rxp_agent_join: %s\n",
			rxp_strerror(ret));
	rxp_agent_shutdown(a);
	free(buf);
	free(lat);
	return rc;
}

/* -d: the RDMA device, or with tcp the interface (an exact name). */
static void set_device_env(const struct opts *o, const char *dev)
{
	char spec[128];

	if (!dev)
		return;
	if (o->transport && !strcmp(o->transport, "tcp")) {
		snprintf(spec, sizeof(spec), "=%s", dev);
		setenv("RXP_SOCKET_IFNAME", spec, 1);
	} else {
		setenv("RXP_VERBS_DEVICE", dev, 1);
	}
}

enum {
	OPT_JSON = 256,
	OPT_VERIFY,
	OPT_BW,
	OPT_TRANSPORT,
	OPT_BIND,
	OPT_WARMUP,
	OPT_LABEL
};

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"ib-dev", required_argument, NULL, 'd'},
		{"ib-port", required_argument, NULL, 'i'},
		{"gid-index", required_argument, NULL, 'x'},
		{"port", required_argument, NULL, 'p'},
		{"size", required_argument, NULL, 's'},
		{"all", no_argument, NULL, 'a'},
		{"iters", required_argument, NULL, 'n'},
		{"tx-depth", required_argument, NULL, 't'},
		{"poll-us", required_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, OPT_JSON},
		{"verify", no_argument, NULL, OPT_VERIFY},
		{"bw", no_argument, NULL, OPT_BW},
		{"transport", required_argument, NULL, OPT_TRANSPORT},
		{"bind", required_argument, NULL, OPT_BIND},
		{"warmup", required_argument, NULL, OPT_WARMUP},
		{"label", required_argument, NULL, OPT_LABEL},
		{NULL, 0, NULL, 0}};
	struct opts o = {.addr = "0.0.0.0",
			 .port = 18560,
			 .poll_us = -1,
			 .iters = 1000,
			 .size = (size_t)-1,
			 .warm = (size_t)-1};
	const char *dev = NULL, *ibport = NULL, *gid = NULL, *moved;
	unsigned long long depth = 0;
	int c;

	alarm(900);
	refuse_old_bind(argc, argv);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:i:x:p:s:an:t:P:h", lopts,
				NULL)) != -1) {
		switch (c) {
		case 'd':
			dev = optarg;
			break;
		case 'i':
			ibport = optarg;
			num_arg("-i", optarg, 255);
			break;
		case 'x':
			gid = optarg;
			num_arg("-x", optarg, 65535);
			break;
		case 'p':
			o.port = (int)num_arg("-p", optarg, 65535);
			break;
		case 's':
			o.size = perf_parse_size(optarg);
			if (!o.size && strcmp(optarg, "0"))
				bad_usage("-s: '%s' is not a size (64, 4k, 1m)",
					  optarg);
			break;
		case 'a':
			o.all = 1;
			break;
		case 'n':
			o.iters = num_arg("-n", optarg, 1ull << 32);
			break;
		case 't':
			depth = num_arg("-t", optarg, 65536);
			break;
		case 'P':
			o.poll_us = (int)num_arg("-P", optarg, 100000000);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case OPT_JSON:
			o.json = 1;
			break;
		case OPT_VERIFY:
			o.verify = 1;
			break;
		case OPT_BW:
			o.bw = 1;
			break;
		case OPT_TRANSPORT:
			if (strcmp(optarg, "auto") && strcmp(optarg, "tcp") &&
			    strcmp(optarg, "verbs") && strcmp(optarg, "shm"))
				bad_usage("--transport: '%s' is not "
					  "auto, tcp, verbs or shm",
					  optarg);
			o.transport = optarg;
			break;
		case OPT_BIND:
			o.addr = optarg;
			break;
		case OPT_WARMUP:
			o.warm = num_arg("--warmup", optarg, 1ull << 32);
			break;
		case OPT_LABEL:
			o.label = optarg;
			break;
		case ':':
			if (optopt > ' ' && optopt < 127)
				bad_usage("-%c needs a value", optopt);
			bad_usage("%s needs a value", argv[optind - 1]);
		default:
			moved = optopt > ' ' && optopt < 127
					? moved_flag(optopt)
					: NULL;
			if (moved)
				bad_usage("%s", moved);
			if (optopt > ' ' && optopt < 127)
				bad_usage("unknown flag -%c", optopt);
			bad_usage("unknown flag %s", argv[optind - 1]);
		}
	}
	if (o.transport && !strcmp(o.transport, "auto"))
		o.transport = NULL;
	set_device_env(&o, dev);
	if (ibport)
		setenv("RXP_VERBS_PORT", ibport, 1);
	if (gid)
		setenv("RXP_VERBS_GID_INDEX", gid, 1);
	if (optind == argc)
		return perf_serve("server", SERVER_RANK, o.addr, o.port,
				  o.transport, o.poll_us, 600);
	if (argc - optind > 1)
		bad_usage("one server host, not also '%s'", argv[optind + 1]);
	if (!o.iters)
		bad_usage("-n: at least one call");
	if (o.all && o.size != (size_t)-1)
		bad_usage("%s", "-a and -s: give one of them");
	if (o.size == (size_t)-1)
		o.size = o.bw ? 65536 : 0;
	if (o.bw && !o.size && !o.all)
		bad_usage("%s", "--bw needs a size (-s N > 0, or -a)");
	o.window = depth ? (unsigned)depth : o.bw ? 16 : 1;
	if (o.warm == (size_t)-1)
		o.warm = o.iters / 10 < 1000 ? o.iters / 10 : 1000;
	o.host = argv[optind];
	return run_client(&o);
}
