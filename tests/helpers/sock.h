/* SPDX-License-Identifier: MIT */
/*
 * Raw TCP clients for tests that speak a wire format by hand: a blocking
 * connection to an IPv4 address with a 3 s receive timeout and no Nagle.
 */
#ifndef RXP_TEST_SOCK_H
#define RXP_TEST_SOCK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A connected socket to @ip:@port, or -1. */
static inline int test_tcp_connect(const char *ip, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 3};
	int fd, one = 1;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

#endif
