/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "rxp_addr.h"

int rxp_addr_parse_ip(const char *ip, uint16_t port,
		      struct sockaddr_storage *sa, socklen_t *len)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET,
				 .sin_port = htons(port)};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6,
				  .sin6_port = htons(port)};

	memset(sa, 0, sizeof(*sa));
	if (!ip || !*ip)
		ip = "0.0.0.0";
	/* parsed into the address types, then copied: no punned stores */
	if (inet_pton(AF_INET, ip, &v4.sin_addr) == 1) {
		memcpy(sa, &v4, sizeof(v4));
		if (len)
			*len = sizeof(v4);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &v6.sin6_addr) == 1) {
		memcpy(sa, &v6, sizeof(v6));
		if (len)
			*len = sizeof(v6);
		return 0;
	}
	return -EINVAL;
}

int rxp_addr_parse(const char *s, struct sockaddr_storage *sa, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1], ipport[INET6_ADDRSTRLEN + 16];
	const char *h, *colon;
	unsigned long port;
	size_t hl;
	char *end;

	if (!s)
		return -EINVAL;
	/* "ip:port;more=fields" (an auto transport's address, transport/mux):
	 * the fields are not ours */
	hl = strcspn(s, ";");
	if (hl >= sizeof(ipport))
		return -EINVAL;
	memcpy(ipport, s, hl);
	ipport[hl] = '\0';
	s = h = ipport;
	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
		if (!memchr(h, ':', hl))
			return -EINVAL; /* brackets are for IPv6 only */
	} else {
		colon = strchr(s, ':');
		if (!colon || strchr(colon + 1, ':'))
			return -EINVAL; /* no port, or IPv6 without brackets */
		hl = (size_t)(colon - s);
	}
	if (!hl || hl >= sizeof(host) || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || !port || port > 65535)
		return -EINVAL;
	return rxp_addr_parse_ip(host, (uint16_t)port, sa, len);
}
