/* SPDX-License-Identifier: MIT */
/*
 * Numeric socket addresses, one set of rules for every transport (issue
 * 8: tcp accepted "fe80::1:2:443", which verbs refused). Not installed.
 *
 *   rxp_addr_parse_ip("10.0.0.1" | "fe80::1" | "" | NULL, port, ...)
 *        an IPv4 or IPv6 literal; empty or NULL is 0.0.0.0
 *   rxp_addr_parse("10.0.0.1:80" | "[fe80::1]:80", ...)
 *        what follows a ';' is ignored (the auto transport's fields)
 *        host and port 1..65535; an IPv6 host must be in brackets
 *        ("fe80::1:80" is ambiguous and refused)
 *
 * Both return 0 with *sa (and *len, if not NULL) set, or -EINVAL.
 */
#ifndef RXP_ADDR_H
#define RXP_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

int rxp_addr_parse_ip(const char *ip, uint16_t port,
		      struct sockaddr_storage *sa, socklen_t *len);
int rxp_addr_parse(const char *s, struct sockaddr_storage *sa, socklen_t *len);

#endif
