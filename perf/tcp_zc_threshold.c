/* SPDX-License-Identifier: MIT */
/*
 * Where does IORING_OP_SENDMSG_ZC start to beat IORING_OP_SENDMSG?
 * Sends messages of 4 KiB .. 64 MiB over one TCP connection (default
 * loopback) the way the rxp TCP transport does: one sendmsg in flight,
 * and for ZC a buffer is reused only after its IORING_CQE_F_NOTIF. A
 * thread drains the other end. Prints throughput and the sender thread's
 * CPU time per GiB for both.
 *
 * Build (not part of perf/CMakeLists.txt):
 *   gcc -O2 -Wall -Wextra -o /tmp/tcp_zc_threshold perf/tcp_zc_threshold.c \
 *       -luring -lpthread
 * Run:  /tmp/tcp_zc_threshold [bytes per size, default 1 GiB]
 *       (loopback: both ends in this process)
 * Two hosts (a real NIC; a local address of this host is loopback too):
 *       receiver: /tmp/tcp_zc_threshold sink PORT
 *       sender:   /tmp/tcp_zc_threshold [bytes per size] IP:PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NBUF 8

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double thread_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void *drain(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t n = 8u << 20;
	char *sink = malloc(n);

	for (;;) {
		ssize_t r = recv(fd, sink, n, 0);

		if (r <= 0)
			break;
	}
	free(sink);
	return NULL;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "%s: %s\n", what, strerror(err));
	exit(1);
}

/* Send @total bytes in messages of @size; returns seconds, *cpu. */
static double run(struct io_uring *ring, int fd, char **bufs, size_t size,
		  size_t total, int zc, double *cpu)
{
	int busy[NBUF] = {0}; /* NOTIF pending */
	size_t sent_msgs = 0, nmsgs = total / size ? total / size : 1;
	int inflight = 0, next = 0, notifs = 0;
	struct iovec iov;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	size_t left = 0;
	double t0 = now(), c0 = thread_cpu();

	while (sent_msgs < nmsgs || inflight || notifs) {
		struct io_uring_cqe *cqe;

		if (!inflight && sent_msgs < nmsgs && !busy[next]) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

			if (!left)
				left = size;
			iov.iov_base = bufs[next] + (size - left);
			iov.iov_len = left;
			if (zc)
				io_uring_prep_sendmsg_zc(sqe, fd, &msg,
							 MSG_NOSIGNAL);
			else
				io_uring_prep_sendmsg(sqe, fd, &msg,
						      MSG_NOSIGNAL);
			io_uring_sqe_set_data64(sqe, (uint64_t)next);
			io_uring_submit(ring);
			inflight = 1;
		}
		if (io_uring_wait_cqe(ring, &cqe))
			die("wait_cqe", errno);
		if (cqe->flags & IORING_CQE_F_NOTIF) {
			busy[cqe->user_data] = 0;
			notifs--;
		} else {
			if (cqe->res < 0)
				die("sendmsg", -cqe->res);
			inflight = 0;
			if (cqe->flags & IORING_CQE_F_MORE) {
				busy[cqe->user_data] = 1;
				notifs++;
			}
			left -= (size_t)cqe->res;
			if (!left) {
				sent_msgs++;
				next = (next + 1) % NBUF;
			}
		}
		io_uring_cqe_seen(ring, cqe);
	}
	*cpu = thread_cpu() - c0;
	return now() - t0;
}

static __attribute__((noreturn)) void sink(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(lfd, 1))
		die("listen", errno);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			die("accept", errno);
		drain((void *)(intptr_t)fd);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	size_t total = argc > 1 ? strtoull(argv[1], NULL, 0) : (1ull << 30);
	const char *ip = argc > 2 ? argv[2] : "127.0.0.1";
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int lfd, cfd, sfd = -1, one = 1;
	struct io_uring ring;
	pthread_t th;
	char *bufs[NBUF], host[64];
	const char *colon = strrchr(ip, ':');
	size_t maxsz = 64u << 20;

	if (argc > 2 && !strcmp(argv[1], "sink"))
		sink(atoi(argv[2]));
	if (colon && (size_t)(colon - ip) < sizeof(host)) {
		memcpy(host, ip, (size_t)(colon - ip));
		host[colon - ip] = '\0';
		sa.sin_port = htons((uint16_t)atoi(colon + 1));
		ip = host;
	}
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		die("address", EINVAL);
	if (!colon) {
		lfd = socket(AF_INET, SOCK_STREAM, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
		    listen(lfd, 1) ||
		    getsockname(lfd, (struct sockaddr *)&sa, &sl))
			die("listen", errno);
	}
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(cfd, (struct sockaddr *)&sa, sizeof(sa)))
		die("connect", errno);
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!colon) {
		sfd = accept(lfd, NULL, NULL);
		pthread_create(&th, NULL, drain, (void *)(intptr_t)sfd);
	}
	if (io_uring_queue_init(64, &ring, 0))
		die("io_uring_queue_init", errno);
	for (int i = 0; i < NBUF; i++) {
		bufs[i] = aligned_alloc(4096, maxsz);
		memset(bufs[i], i + 1, maxsz);
	}
	printf("# %s, %zu MiB per size, one sendmsg in flight, %d buffers\n",
	       ip, total >> 20, NBUF);
	printf("%10s %12s %12s %8s %14s %14s\n", "size", "copy MB/s", "zc MB/s",
	       "zc/copy", "copy cpu s/GiB", "zc cpu s/GiB");
	for (size_t size = 4096; size <= maxsz; size *= 2) {
		double cc, zcpu, tc, tz, gib;
		size_t n = total / size ? total / size * size : size;

		run(&ring, cfd, bufs, size, n / 8 ? n / 8 : size, 0, &cc);
		tc = run(&ring, cfd, bufs, size, n, 0, &cc);
		tz = run(&ring, cfd, bufs, size, n, 1, &zcpu);
		gib = n / (double)(1ull << 30);
		printf("%10zu %12.0f %12.0f %8.2f %14.3f %14.3f\n", size,
		       n / tc / 1e6, n / tz / 1e6, tc / tz, cc / gib,
		       zcpu / gib);
		fflush(stdout);
	}
	close(cfd);
	if (sfd >= 0)
		pthread_join(th, NULL);
	io_uring_queue_exit(&ring);
	return 0;
}
