/* SPDX-License-Identifier: MIT */
/* Interfaces, RXP_SOCKET_IFNAME, and the address the data transport
 * binds and advertises (netif.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "netif.h"
#include "rxp_util.h"

#define LOG "net"

/* ------------------------------------------------------------ matching */

bool rxp_netif_match(const char *spec, const char *name)
{
	bool exclude = false, exact = false, hit = false;
	const char *p;

	if (!spec || !*spec)
		return true;
	if (*spec == '^') {
		exclude = true;
		spec++;
	}
	if (*spec == '=') {
		exact = true;
		spec++;
	}
	for (p = spec; *p && !hit;) {
		size_t len = strcspn(p, ",");

		if (len && (exact ? strlen(name) == len : true) &&
		    !strncmp(name, p, len))
			hit = true;
		p += len;
		if (*p == ',')
			p++;
	}
	return exclude ? !hit : hit;
}

static bool usable(const struct rxp_netif *e, int family)
{
	const struct sockaddr_in6 *v6 = (const void *)&e->addr;

	if (!(e->flags & IFF_UP) || e->addr.ss_family != family)
		return false;
	/* a link-local IPv6 address needs a scope a peer does not know */
	return family == AF_INET || (!IN6_IS_ADDR_LINKLOCAL(&v6->sin6_addr) &&
				     !IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr));
}

int rxp_netif_pick(const struct rxp_netif *ifs, size_t n, const char *spec,
		   int family)
{
	int order[2] = {AF_INET, AF_INET6};

	if (family == AF_INET6) {
		order[0] = AF_INET6;
		order[1] = AF_INET;
	}
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < n; i++)
			if (usable(&ifs[i], order[k]) &&
			    rxp_netif_match(spec, ifs[i].name))
				return (int)i;
	return -ENODEV;
}

/* --------------------------------------------------------- interfaces */

static bool listed(const struct rxp_netif *ifs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ifs[i].name, name))
			return true;
	return false;
}

static void add(struct rxp_netif *e, const struct ifaddrs *ifa)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", ifa->ifa_name);
	e->flags = ifa->ifa_flags;
	if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET)
		memcpy(&e->addr, ifa->ifa_addr, sizeof(struct sockaddr_in));
	else if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET6)
		memcpy(&e->addr, ifa->ifa_addr, sizeof(struct sockaddr_in6));
}

int rxp_netif_list(struct rxp_netif **out, size_t *n)
{
	struct ifaddrs *all, *ifa;
	struct rxp_netif *ifs;
	size_t cap = 0, k = 0;

	if (getifaddrs(&all))
		return -errno;
	for (ifa = all; ifa; ifa = ifa->ifa_next)
		cap++;
	ifs = rxp__calloc(cap ? cap : 1, sizeof(*ifs));
	if (!ifs) {
		freeifaddrs(all);
		return -ENOMEM;
	}
	for (ifa = all; ifa; ifa = ifa->ifa_next)
		if (ifa->ifa_addr && (ifa->ifa_addr->sa_family == AF_INET ||
				      ifa->ifa_addr->sa_family == AF_INET6))
			add(&ifs[k++], ifa);
	/* interfaces without an address, so that they are shown too */
	for (ifa = all; ifa; ifa = ifa->ifa_next)
		if (!listed(ifs, k, ifa->ifa_name)) {
			add(&ifs[k], ifa);
			ifs[k++].addr.ss_family = AF_UNSPEC;
		}
	freeifaddrs(all);
	*out = ifs;
	*n = k;
	return 0;
}

void rxp_netif_ip(const struct rxp_netif *e, char *ip, size_t len)
{
	const void *a =
		e->addr.ss_family == AF_INET6
			? (const void *)&((const struct sockaddr_in6 *)&e->addr)
				  ->sin6_addr
			: (const void *)&((const struct sockaddr_in *)&e->addr)
				  ->sin_addr;

	if (!len)
		return;
	*ip = '\0';
	if (e->addr.ss_family == AF_INET || e->addr.ss_family == AF_INET6)
		if (!inet_ntop(e->addr.ss_family, a, ip, (socklen_t)len))
			*ip = '\0';
}

void rxp_netif_names(const struct rxp_netif *ifs, size_t n, char *buf,
		     size_t len)
{
	size_t used = 0;

	if (!len)
		return;
	*buf = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		int w;

		if (listed(ifs, i, ifs[i].name))
			continue;
		w = snprintf(buf + used, len - used, "%s%s%s", used ? ", " : "",
			     ifs[i].name,
			     ifs[i].flags & IFF_UP ? "" : " (down)");
		if (w < 0)
			break;
		used += (size_t)w;
	}
	if (!n)
		snprintf(buf, len, "none");
}

/* ---------------------------------------------------------- addresses */

/* A numeric address into its own type: AF_INET (*a4), AF_INET6 (*a6), or
 * AF_UNSPEC when @ip is neither. Parsed into the address types
 * themselves: filling a sockaddr_storage and reading it back as a struct
 * sockaddr is type punning that gcc -O2 may reorder (the family read came
 * back 0). */
static int parse_ip(const char *ip, struct in_addr *a4, struct in6_addr *a6)
{
	if (!ip)
		return AF_UNSPEC;
	if (inet_pton(AF_INET, ip, a4) == 1)
		return AF_INET;
	return inet_pton(AF_INET6, ip, a6) == 1 ? AF_INET6 : AF_UNSPEC;
}

bool rxp_ip_is_any(const char *ip)
{
	struct in6_addr a6;
	struct in_addr a4;

	switch (parse_ip(ip, &a4, &a6)) {
	case AF_INET:
		return a4.s_addr == htonl(INADDR_ANY);
	case AF_INET6:
		return IN6_IS_ADDR_UNSPECIFIED(&a6);
	default:
		return false;
	}
}

static bool v4_loopback(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

static bool v6_loopback(const struct in6_addr *a)
{
	return IN6_IS_ADDR_LOOPBACK(a) ||
	       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static bool sa_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *v6 = (const void *)sa;

	if (sa->sa_family == AF_INET)
		return v4_loopback(&((const struct sockaddr_in *)sa)->sin_addr);
	return sa->sa_family == AF_INET6 && v6_loopback(&v6->sin6_addr);
}

bool rxp_ip_is_loopback(const char *ip)
{
	struct in6_addr a6;
	struct in_addr a4;

	switch (parse_ip(ip, &a4, &a6)) {
	case AF_INET:
		return v4_loopback(&a4);
	case AF_INET6:
		return v6_loopback(&a6);
	default:
		return false;
	}
}

bool rxp_host_is_loopback(const char *host)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	bool lo;

	if (!host || !*host)
		return true; /* MASTER_ADDR's default: 127.0.0.1 */
	if (getaddrinfo(host, NULL, &hints, &res))
		return false;
	lo = sa_loopback(res->ai_addr);
	freeaddrinfo(res);
	return lo;
}

int rxp_route_ip(const char *host, char *ip, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res;
	struct rxp_netif me = {0};
	socklen_t ml = sizeof(me.addr);
	int fd, ret = 0;

	if (!host || getaddrinfo(host, "9", &hints, &res))
		return -EHOSTUNREACH;
	/* a connected UDP socket: the kernel picks the route, sends nothing */
	fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) ||
	    getsockname(fd, (struct sockaddr *)&me.addr, &ml))
		ret = -errno;
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	if (!ret) {
		rxp_netif_ip(&me, ip, len);
		ret = *ip ? 0 : -EAFNOSUPPORT;
	}
	return ret;
}

/* AF_INET6 for an IPv6 literal, AF_UNSPEC for none, else AF_INET */
static int ip_family(const char *ip)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (!ip || !*ip)
		return AF_UNSPEC;
	return parse_ip(ip, &a4, &a6) == AF_INET6 ? AF_INET6 : AF_INET;
}

/* the interface that holds @ip, for the log */
static void ifname_of(const struct rxp_netif *ifs, size_t n, const char *ip,
		      char *name, size_t len)
{
	char have[RXP_NETIF_IPLEN];

	for (size_t i = 0; i < n; i++) {
		rxp_netif_ip(&ifs[i], have, sizeof(have));
		if (*have && !strcmp(have, ip)) {
			snprintf(name, len, "%s", ifs[i].name);
			return;
		}
	}
}

/* the first match of @spec, into @ip and @out->ifname */
static int pick_ip(const struct rxp_netif *ifs, size_t n, const char *spec,
		   int family, char *ip, size_t len, struct rxp_addr_plan *out)
{
	int i = rxp_netif_pick(ifs, n, spec, family);

	if (i < 0)
		return i;
	rxp_netif_ip(&ifs[i], ip, len);
	snprintf(out->ifname, sizeof(out->ifname), "%s", ifs[i].name);
	return 0;
}

int rxp_addr_plan(const char *bind, const char *ifspec, const char *master,
		  const char *route_ip, const struct rxp_netif *ifs, size_t n,
		  struct rxp_addr_plan *out)
{
	bool any_bind = bind && *bind && rxp_ip_is_any(bind);
	bool master_lo, master_any;
	char ip[RXP_NETIF_IPLEN], names[512];

	memset(out, 0, sizeof(*out));
	if (!master || !*master)
		master = "127.0.0.1";
	master_lo = rxp_host_is_loopback(master);
	master_any = rxp_ip_is_any(master);
	if (bind && *bind && !any_bind) {
		if (rxp_ip_is_loopback(bind) && !master_lo) {
			rxp_err(LOG,
				"bind address %s is loopback but "
				"MASTER_ADDR=%s "
				"is not: peers on other hosts could not reach "
				"it (unset RXP_BIND_ADDR or name an interface "
				"with " RXP_NETIF_VAR ")",
				bind, master);
			return -EINVAL;
		}
		snprintf(out->bind, sizeof(out->bind), "%s", bind);
		snprintf(out->advertise, sizeof(out->advertise), "%s", bind);
		ifname_of(ifs, n, bind, out->ifname, sizeof(out->ifname));
		snprintf(out->why, sizeof(out->why), "bind address given%s",
			 ifspec && *ifspec ? "; " RXP_NETIF_VAR " ignored"
					   : "");
		return 0;
	}
	if (ifspec && *ifspec) {
		if (pick_ip(ifs, n, ifspec,
			    ip_family(any_bind ? bind : route_ip), ip,
			    sizeof(ip), out)) {
			rxp_netif_names(ifs, n, names, sizeof(names));
			rxp_err(LOG,
				RXP_NETIF_VAR
				"=%s matches no interface that is "
				"up with an IPv4 or IPv6 address "
				"(interfaces: %s)",
				ifspec, names);
			return -ENODEV;
		}
		if (rxp_ip_is_loopback(ip) && !master_lo) {
			rxp_err(LOG,
				RXP_NETIF_VAR
				"=%s selects loopback %s (%s) but "
				"MASTER_ADDR=%s is not loopback",
				ifspec, out->ifname, ip, master);
			return -EINVAL;
		}
		snprintf(out->why, sizeof(out->why), RXP_NETIF_VAR "=%s",
			 ifspec);
	} else if (master_any) {
		/* rank 0 serves on every interface (a server started without
		 * an address): advertise the first one others can reach, and
		 * loopback only when there is nothing else (then every peer
		 * is on this host); listen on the wildcard */
		int family = ip_family(master);

		if (pick_ip(ifs, n, RXP_NETIF_DEFAULT_SPEC, family, ip,
			    sizeof(ip), out)) {
			snprintf(ip, sizeof(ip), "%s",
				 family == AF_INET6 ? "::1" : "127.0.0.1");
			snprintf(out->why, sizeof(out->why),
				 "MASTER_ADDR=%s and only loopback is up: one "
				 "host",
				 master);
		} else {
			snprintf(out->why, sizeof(out->why),
				 "MASTER_ADDR=%s: the first interface "
				 "not " RXP_NETIF_DEFAULT_SPEC,
				 master);
		}
		if (!any_bind) { /* bind is unset: an explicit one returned */
			bind = master;
			any_bind = true;
		}
	} else if (route_ip && *route_ip && !rxp_ip_is_any(route_ip) &&
		   (master_lo || !rxp_ip_is_loopback(route_ip))) {
		snprintf(ip, sizeof(ip), "%s", route_ip);
		ifname_of(ifs, n, ip, out->ifname, sizeof(out->ifname));
		snprintf(out->why, sizeof(out->why), "the route to %s", master);
	} else if (master_lo) {
		snprintf(ip, sizeof(ip), "127.0.0.1");
		snprintf(out->why, sizeof(out->why),
			 "MASTER_ADDR=%s is loopback: one host", master);
	} else if (!pick_ip(ifs, n, RXP_NETIF_DEFAULT_SPEC, AF_UNSPEC, ip,
			    sizeof(ip), out)) {
		snprintf(out->why, sizeof(out->why),
			 "the route to %s gives %s, which other hosts cannot "
			 "reach; first interface not " RXP_NETIF_DEFAULT_SPEC,
			 master, route_ip && *route_ip ? route_ip : "nothing");
		rxp_warn(LOG, "advertising %s (%s): %s", ip, out->ifname,
			 out->why);
	} else {
		rxp_netif_names(ifs, n, names, sizeof(names));
		rxp_err(LOG,
			"no address that peers on other hosts can reach: the "
			"route to MASTER_ADDR=%s gives %s and no interface is "
			"up with one; set " RXP_NETIF_VAR " (interfaces: %s)",
			master, route_ip && *route_ip ? route_ip : "nothing",
			names);
		return -EADDRNOTAVAIL;
	}
	snprintf(out->advertise, sizeof(out->advertise), "%s", ip);
	snprintf(out->bind, sizeof(out->bind), "%s", any_bind ? bind : ip);
	return 0;
}

int rxp_addr_plan_host(const char *bind, const char *ifspec, const char *master,
		       const char *route_ip, struct rxp_addr_plan *out)
{
	struct rxp_netif *ifs = NULL;
	size_t n = 0;
	int ret = rxp_netif_list(&ifs, &n);

	if (ret) {
		rxp_err(LOG, "cannot list interfaces: %s", strerror(-ret));
		return ret;
	}
	ret = rxp_addr_plan(bind, ifspec, master, route_ip, ifs, n, out);
	rxp__free(ifs);
	return ret;
}

int rxp_addr_advertise(const char *tp_addr, const char *ip, char *out,
		       size_t len)
{
	const char *colon = strrchr(tp_addr, ':'), *h = tp_addr;
	char host[RXP_NETIF_IPLEN];
	size_t hl;
	int w;

	if (!colon)
		return -EINVAL;
	hl = (size_t)(colon - tp_addr);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (rxp_ip_is_any(host))
		w = snprintf(out, len, strchr(ip, ':') ? "[%s]%s" : "%s%s", ip,
			     colon);
	else
		w = snprintf(out, len, "%s", tp_addr);
	return w < 0 || (size_t)w >= len ? -ENOSPC : 0;
}
