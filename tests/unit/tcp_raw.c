/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_raw.h"

static void le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

size_t raw_hs(uint8_t *out, uint32_t magic, uint16_t version, uint16_t size,
	      uint32_t worker, uint64_t features)
{
	memset(out, 0, 40);
	le(out, magic, 4);
	le(out + 4, version, 2);
	le(out + 6, size, 2);
	le(out + 8, worker, 4);
	le(out + 12, 1024, 4);
	le(out + 16, 64u << 20, 8);
	le(out + 24, 16ull << 30, 8);
	le(out + 32, features, 8);
	return 40;
}

size_t raw_hdr(uint8_t *out, uint16_t magic, uint8_t version, uint8_t type,
	       uint8_t flags, uint32_t nst, uint64_t id, uint64_t plen,
	       const uint64_t *lens)
{
	memset(out, 0, 32);
	le(out, magic, 2);
	out[2] = version;
	out[3] = type;
	out[4] = flags;
	le(out + 8, nst, 4);
	le(out + 16, id, 8);
	le(out + 24, plen, 8);
	for (uint32_t i = 0; lens && i < nst; i++)
		le(out + 32 + 8 * i, lens[i], 8);
	return 32 + 8 * (size_t)(lens ? nst : 0);
}

int raw_listen(char *addr, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 8) ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl)) {
		close(fd);
		return -1;
	}
	snprintf(addr, len, "127.0.0.1:%u", ntohs(sa.sin_port));
	return fd;
}

static bool ready(int fd, short ev, struct h_side *s, int ms)
{
	int64_t end = h_now_ms() + ms;
	struct pollfd p = {.fd = fd, .events = ev};

	do {
		if (poll(&p, 1, 1) > 0)
			return true;
		if (s && s->tp)
			s->tp->ops->progress(s->tp);
	} while (h_now_ms() < end);
	return false;
}

int raw_accept(int lfd, struct h_side *s)
{
	if (!ready(lfd, POLLIN, s, 2000))
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

int raw_connect(struct h_side *s)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (raw_connect_fd(s, fd)) {
		close(fd);
		return -1;
	}
	return fd;
}

int raw_connect_fd(struct h_side *s, int fd)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char host[64];
	const char *colon = strrchr(s->addr, ':');
	int one = 1;

	if (!colon || (size_t)(colon - s->addr) >= sizeof(host))
		return -1;
	memcpy(host, s->addr, (size_t)(colon - s->addr));
	host[colon - s->addr] = '\0';
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -1 : 0;
}

int raw_read(int fd, void *buf, size_t n, struct h_side *s)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		if (!ready(fd, POLLIN, s, 2000))
			return -1;
		r = recv(fd, (char *)buf + got, n - got, MSG_DONTWAIT);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

int raw_write(int fd, const void *buf, size_t n)
{
	return send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

bool raw_wait_closed(int fd, struct h_side *s, int ms)
{
	int64_t end = h_now_ms() + ms;
	char junk[4096];

	while (h_now_ms() < end) {
		ssize_t r;

		if (!ready(fd, POLLIN, s, (int)(end - h_now_ms())))
			return false;
		r = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN))
			return true;
	}
	return false;
}
