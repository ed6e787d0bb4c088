/* SPDX-License-Identifier: MIT */
/*
 * Network interfaces and the address rxp's data transport binds and
 * advertises (netif.c). One place for the rules, so the agent and
 * rxp-info agree:
 *
 *   RXP_SOCKET_IFNAME  interface names or prefixes, comma-separated, as
 *                      NCCL_SOCKET_IFNAME: "eth" matches eth0 and eth1;
 *                      a leading '^' excludes the list ("^docker,lo"); a
 *                      leading '=' (after '^' if both) makes every entry
 *                      an exact name ("=eth0").
 *
 * The matcher works on a list of (name, flags, address) entries, so tests
 * need no real interfaces. Sees util/ only. Not installed.
 */
#ifndef RXP_NETIF_H
#define RXP_NETIF_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define RXP_NETIF_VAR "RXP_SOCKET_IFNAME"
/* used when the route to MASTER_ADDR gives no address a remote peer can
 * reach (NCCL's default) */
#define RXP_NETIF_DEFAULT_SPEC "^docker,lo"
#define RXP_NETIF_IPLEN 64

/* One address of one interface (or an interface with no address: family
 * AF_UNSPEC), in the order getifaddrs lists them. */
struct rxp_netif {
	char name[IF_NAMESIZE];
	unsigned flags; /* IFF_UP, IFF_RUNNING, IFF_LOOPBACK ... */
	struct sockaddr_storage addr;
};

/* Does interface @name match @spec (the syntax above)? NULL or "" matches
 * every name. */
bool rxp_netif_match(const char *spec, const char *name);
/* Index of the first entry that matches @spec, is up and has an address
 * rxp can use (IPv4, or global IPv6), preferring @family (AF_INET,
 * AF_INET6; AF_UNSPEC: IPv4 first), else -ENODEV. */
int rxp_netif_pick(const struct rxp_netif *ifs, size_t n, const char *spec,
		   int family);
/* This host's interfaces (getifaddrs; IPv4 and IPv6 addresses, and one
 * AF_UNSPEC entry per interface without any). Free with rxp__free. */
int rxp_netif_list(struct rxp_netif **out, size_t *n);
/* Numeric text of @e's address ("" for AF_UNSPEC). */
void rxp_netif_ip(const struct rxp_netif *e, char *ip, size_t len);
/* "lo, eth0 (down), ..." : the names in @ifs, each once */
void rxp_netif_names(const struct rxp_netif *ifs, size_t n, char *buf,
		     size_t len);

/* Is @ip (numeric) a wildcard (0.0.0.0, ::) / a loopback (127/8, ::1)? */
bool rxp_ip_is_any(const char *ip);
bool rxp_ip_is_loopback(const char *ip);
/* Does @host (name or number) resolve to a loopback address? */
bool rxp_host_is_loopback(const char *host);
/* The local address that routes to @host (a connected UDP socket: no
 * packet is sent): 0, or -errno (no route, cannot resolve). */
int rxp_route_ip(const char *host, char *ip, size_t len);

/* Where the data transport binds and what it advertises. */
struct rxp_addr_plan {
	char bind[RXP_NETIF_IPLEN];	 /* numeric IP to listen on */
	char advertise[RXP_NETIF_IPLEN]; /* numeric IP peers connect to */
	char ifname[IF_NAMESIZE];	 /* interface picked, or "" */
	char why[160];			 /* how, for the log */
};
/*
 * The address rules (docs/DESIGN.md "Address choice"):
 *  - @bind (attr.bind_addr / RXP_BIND_ADDR) set and not a wildcard: bind
 *    and advertise it;
 *  - else @ifspec (RXP_SOCKET_IFNAME) set: its first match; a wildcard
 *    @bind is kept for listening, the match is advertised;
 *  - else @route_ip, the local address that reaches @master (a wildcard
 *    @bind is kept for listening);
 *  - the advertised address is never a wildcard, and never loopback
 *    unless @master is (then the whole world is on one host): a route that
 *    gives one falls back to RXP_NETIF_DEFAULT_SPEC's first match.
 * @route_ip may be NULL or "" (no route). @ifs/@n: the interfaces
 * (rxp_netif_list). 0, or -EINVAL (an explicit loopback bind with a
 * remote master), -ENODEV (@ifspec matches nothing; logged with the
 * interfaces there are), -EADDRNOTAVAIL (nothing reachable); logged.
 */
int rxp_addr_plan(const char *bind, const char *ifspec, const char *master,
		  const char *route_ip, const struct rxp_netif *ifs, size_t n,
		  struct rxp_addr_plan *out);
/* rxp_addr_plan over this host's interfaces. */
int rxp_addr_plan_host(const char *bind, const char *ifspec, const char *master,
		       const char *route_ip, struct rxp_addr_plan *out);
/* @tp_addr ("host:port", "[v6]:port") with a wildcard host replaced by
 * @ip; any other host is kept. 0 or -ENOSPC/-EINVAL. */
int rxp_addr_advertise(const char *tp_addr, const char *ip, char *out,
		       size_t len);

#endif
