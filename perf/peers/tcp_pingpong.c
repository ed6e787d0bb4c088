/* SPDX-License-Identifier: MIT */
/*
 * Raw TCP floor for rxp's comparison: what the loopback stack itself costs.
 *
 *   tcp_pingpong [-p port] [-a bind_addr]                  server (one session)
 *   tcp_pingpong [-p port] [-m block|busy|stream] [-s size] [-n iters]
 *                [-w warmup] [--json] <server-host>         client
 *
 * block:  blocking send/recv ping-pong of @size bytes each way, TCP_NODELAY.
 * busy:   the same with non-blocking sockets spinning on MSG_DONTWAIT
 *         (both sides), the busy-poll floor.
 * stream: the client streams @iters messages of @size bytes, the server
 *         reads them all and acks with one byte: one-way throughput.
 * The client tells the server the mode/size/count in a 24-byte hello.
 * Both sides stop by themselves: SO_RCVTIMEO 30 s, alarm(600).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../perf_stats.h"

enum mode { M_BLOCK = 0, M_BUSY = 1, M_STREAM = 2 };
static const char *const mode_names[] = {"block", "busy", "stream"};

struct hello {
	uint32_t magic, mode;
	uint64_t size, iters; /* iters includes warm-up */
};
#define HELLO_MAGIC 0x52585054u /* "RXPT" */

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void sock_opts(int fd, int busy)
{
	int one = 1, big = 4 << 20;
	struct timeval tv = {30, 0};

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)big;
	if (busy)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* All @len bytes, or exit. In busy mode EAGAIN spins (bounded by 30 s). */
static void xfer(int fd, void *buf, size_t len, int is_send, int busy)
{
	char *p = buf;
	uint64_t spin_start = 0;

	while (len) {
		ssize_t r = is_send ? send(fd, p, len, MSG_NOSIGNAL)
				    : recv(fd, p, len, 0);
		if (r > 0) {
			p += r;
			len -= (size_t)r;
			spin_start = 0;
			continue;
		}
		if (r == 0) {
			fprintf(stderr, "tcp_pingpong: peer closed\n");
			exit(1);
		}
		if (errno == EINTR)
			continue;
		if (busy && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!spin_start)
				spin_start = perf_now_ns();
			else if (perf_now_ns() - spin_start > 30000000000ull) {
				fprintf(stderr, "tcp_pingpong: spin timeout\n");
				exit(1);
			}
			continue;
		}
		die(is_send ? "send" : "recv");
	}
}

static void *alloc_buf(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("malloc");
	memset(p, 0x5a, n);
	return p;
}

static int run_server(const char *addr, int port)
{
	struct sockaddr_in sa = {0};
	struct hello h;
	int lfd, fd, one = 1;
	char *buf;
	uint64_t i;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		die("inet_pton");
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1))
		die("bind/listen");
	printf("READY tcp://%s:%d\n", addr, port);
	fflush(stdout);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	close(lfd);
	sock_opts(fd, 0);
	xfer(fd, &h, sizeof(h), 0, 0);
	if (h.magic != HELLO_MAGIC || h.mode > M_STREAM ||
	    h.size > (1ull << 32))
		die("bad hello");
	if (h.mode == M_BUSY)
		sock_opts(fd, 1);
	buf = alloc_buf(h.size);
	if (h.mode == M_STREAM) {
		char ack = 1;

		for (i = 0; i < h.iters; i++)
			xfer(fd, buf, h.size, 0, 0);
		xfer(fd, &ack, 1, 1, 0);
	} else {
		for (i = 0; i < h.iters; i++) {
			xfer(fd, buf, h.size, 0, h.mode == M_BUSY);
			xfer(fd, buf, h.size, 1, h.mode == M_BUSY);
		}
	}
	free(buf);
	close(fd);
	return 0;
}

static int connect_to(const char *host, int port)
{
	struct addrinfo hints = {0}, *res;
	char ports[16];
	int fd, tries;

	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ports, sizeof(ports), "%d", port);
	if (getaddrinfo(host, ports, &hints, &res))
		die("getaddrinfo");
	for (tries = 0; tries < 200; tries++) { /* server may still start */
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			die("socket");
		if (!connect(fd, res->ai_addr, res->ai_addrlen)) {
			freeaddrinfo(res);
			return fd;
		}
		close(fd);
		usleep(25000);
	}
	die("connect");
	return -1;
}

static int run_client(const char *host, int port, enum mode m, size_t size,
		      size_t iters, size_t warm, int json, const char *label)
{
	struct hello h = {HELLO_MAGIC, (uint32_t)m, size, iters + warm};
	struct perf_summary s;
	uint64_t *lat, t0, t1;
	char *buf;
	size_t i;
	int fd;

	fd = connect_to(host, port);
	sock_opts(fd, 0);
	xfer(fd, &h, sizeof(h), 1, 0);
	buf = alloc_buf(size);
	if (m == M_STREAM) {
		char ack;

		t0 = perf_now_ns();
		for (i = 0; i < iters + warm; i++)
			xfer(fd, buf, size, 1, 0);
		xfer(fd, &ack, 1, 0, 0);
		t1 = perf_now_ns();
		double sec = (double)(t1 - t0) / 1e9;
		double n = (double)(iters + warm);
		if (json)
			perf_print_json(stdout, label, "stream", size, 1,
					iters + warm, NULL,
					n * (double)size / sec / 1e6, n / sec);
		else
			perf_print_text(stdout, label, "stream", size, 1,
					iters + warm, NULL,
					n * (double)size / sec / 1e6, n / sec);
		close(fd);
		free(buf);
		return 0;
	}
	if (m == M_BUSY)
		sock_opts(fd, 1);
	lat = calloc(iters ? iters : 1, sizeof(*lat));
	if (!lat)
		die("calloc");
	for (i = 0; i < warm; i++) {
		xfer(fd, buf, size, 1, m == M_BUSY);
		xfer(fd, buf, size, 0, m == M_BUSY);
	}
	t0 = perf_now_ns();
	for (i = 0; i < iters; i++) {
		uint64_t a = perf_now_ns();

		xfer(fd, buf, size, 1, m == M_BUSY);
		xfer(fd, buf, size, 0, m == M_BUSY);
		lat[i] = perf_now_ns() - a;
	}
	t1 = perf_now_ns();
	{
		double sec = (double)(t1 - t0) / 1e9;
		const char *scen = size <= 64 ? "rtt" : "echo";

		s = perf_summarize(lat, iters);
		if (json)
			perf_print_json(stdout, label, scen, size, 1, iters, &s,
					2.0 * (double)size * (double)iters /
						sec / 1e6,
					(double)iters / sec);
		else
			perf_print_text(stdout, label, scen, size, 1, iters, &s,
					2.0 * (double)size * (double)iters /
						sec / 1e6,
					(double)iters / sec);
	}
	free(lat);
	free(buf);
	close(fd);
	return 0;
}

/* --help: @f stdout, @code 0; bad usage: stderr, 2 */
static void usage_to(FILE *f, int code)
{
	fprintf(f,
		"usage: tcp_pingpong [-p port] [-a bind_addr]   (server)\n"
		"       tcp_pingpong [-p port] [-m block|busy|stream] [-s size]"
		" [-n iters] [-w warmup] [-l label] [--json] <host>\n");
	exit(code);
}

static void usage(void)
{
	usage_to(stderr, 2);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {{"json", no_argument, NULL, 'j'},
					      {"help", no_argument, NULL, 'h'},
					      {NULL, 0, NULL, 0}};
	const char *bind_addr = "127.0.0.1", *label = NULL;
	size_t size = 64, iters = 10000, warm = 1000;
	enum mode m = M_BLOCK;
	int port = 18515, json = 0, c;
	char deflabel[32];

	alarm(600);
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "p:a:m:s:n:w:l:jh", lopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'a':
			bind_addr = optarg;
			break;
		case 'm':
			if (!strcmp(optarg, "block"))
				m = M_BLOCK;
			else if (!strcmp(optarg, "busy"))
				m = M_BUSY;
			else if (!strcmp(optarg, "stream"))
				m = M_STREAM;
			else
				usage();
			break;
		case 's':
			size = perf_parse_size(optarg);
			if (!size)
				usage();
			break;
		case 'n':
			iters = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			warm = strtoull(optarg, NULL, 10);
			break;
		case 'l':
			label = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage_to(stdout, 0);
			break;
		default:
			usage();
		}
	}
	if (optind == argc)
		return run_server(bind_addr, port);
	if (!iters)
		usage();
	if (!label) {
		snprintf(deflabel, sizeof(deflabel), "raw-tcp-%s",
			 mode_names[m]);
		label = deflabel;
	}
	return run_client(argv[optind], port, m, size, iters, warm, json,
			  label);
}
