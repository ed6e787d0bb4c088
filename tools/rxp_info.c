/* SPDX-License-Identifier: MIT */
/*
 * rxp-info: the RDMA devices, ports and GIDs this host has, and which
 * transport rxp would pick for an address, and why.
 *
 *   rxp-info [ADDR]     ADDR: the bind address to judge (default: the
 *                       address rxp would advertise, below)
 *
 * Also the TCP interfaces, which one RXP_SOCKET_IFNAME selects and the
 * address rxp would advertise (util/netif: the agent's rules). Exit 1 when
 * what the environment asks for cannot be had (RXP_SOCKET_IFNAME matching
 * nothing, RXP_TRANSPORT=verbs without a device), 2 on bad usage.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netif.h"
#include "verbs/verbs.h"

static const char *link_str(int ll)
{
	switch (ll) {
	case IBV_LINK_LAYER_INFINIBAND:
		return "InfiniBand";
	case IBV_LINK_LAYER_ETHERNET:
		return "Ethernet";
	default:
		return "unspecified";
	}
}

static void show_gids(struct ibv_context *ctx, uint8_t port, int tbl_len)
{
	struct ibv_gid_entry *ent;
	ssize_t n;

	if (tbl_len <= 0)
		return;
	ent = calloc((size_t)tbl_len, sizeof(*ent));
	if (!ent)
		return;
	n = ibv_query_gid_table(ctx, ent, (size_t)tbl_len, 0);
	if (n < 0) {
		printf("      gids: ibv_query_gid_table: %s\n",
		       strerror((int)-n));
		free(ent);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		char gid[INET6_ADDRSTRLEN] = "?", ifn[IF_NAMESIZE] = "-";

		if (ent[i].port_num != port)
			continue;
		inet_ntop(AF_INET6, ent[i].gid.raw, gid, sizeof(gid));
		if (ent[i].ndev_ifindex &&
		    !if_indextoname(ent[i].ndev_ifindex, ifn))
			snprintf(ifn, sizeof(ifn), "if%u", ent[i].ndev_ifindex);
		printf("      gid[%3u] %-40s %-7s %s\n", ent[i].gid_index, gid,
		       verbs_gid_type_str(ent[i].gid_type), ifn);
	}
	free(ent);
}

static int show_devices(void)
{
	struct ibv_device **list;
	int n = 0;

	list = ibv_get_device_list(&n);
	if (!list) {
		printf("no RDMA devices: ibv_get_device_list: %s\n",
		       strerror(errno));
		return 0;
	}
	if (!n)
		printf("no RDMA devices\n");
	for (int i = 0; i < n; i++) {
		struct ibv_context *ctx = ibv_open_device(list[i]);
		struct ibv_device_attr da;

		printf("%s (node guid %016llx)\n", ibv_get_device_name(list[i]),
		       (unsigned long long)be64toh(
			       ibv_get_device_guid(list[i])));
		if (!ctx) {
			printf("  cannot open: %s\n", strerror(errno));
			continue;
		}
		if (ibv_query_device(ctx, &da)) {
			printf("  ibv_query_device failed\n");
			ibv_close_device(ctx);
			continue;
		}
		printf("  fw %s, ports %u, max_qp %d, max_qp_wr %d, max_cqe "
		       "%d, "
		       "max_srq %d (wr %d), max_sge %d, max_mr_size %llu, "
		       "rd_atom %d/%d\n",
		       da.fw_ver, da.phys_port_cnt, da.max_qp, da.max_qp_wr,
		       da.max_cqe, da.max_srq, da.max_srq_wr, da.max_sge,
		       (unsigned long long)da.max_mr_size, da.max_qp_rd_atom,
		       da.max_qp_init_rd_atom);
		for (uint8_t p = 1; p <= da.phys_port_cnt; p++) {
			struct ibv_port_attr pa;

			if (ibv_query_port(ctx, p, &pa)) {
				printf("  port %u: ibv_query_port failed\n", p);
				continue;
			}
			printf("    port %u: %s, %s, mtu %d (max %d), lid %u, "
			       "max_msg_sz %u, gid table %d\n",
			       p, verbs_port_state_str(pa.state),
			       link_str(pa.link_layer),
			       verbs_mtu_bytes(pa.active_mtu),
			       verbs_mtu_bytes(pa.max_mtu), pa.lid,
			       pa.max_msg_sz, pa.gid_tbl_len);
			show_gids(ctx, p, pa.gid_tbl_len);
		}
		ibv_close_device(ctx);
	}
	ibv_free_device_list(list);
	return n;
}

/* The interfaces and the address plan; -errno if the plan fails. The
 * advertised address goes to @adv. */
static int show_interfaces(char *adv, size_t advlen)
{
	const char *spec = getenv(RXP_NETIF_VAR);
	const char *master = getenv("MASTER_ADDR");
	char ip[RXP_NETIF_IPLEN], route[RXP_NETIF_IPLEN] = "";
	struct rxp_addr_plan plan;
	struct rxp_netif *ifs;
	size_t n;
	int ret = rxp_netif_list(&ifs, &n);

	if (ret) {
		printf("interfaces: %s\n", strerror(-ret));
		return ret;
	}
	printf("\nTCP interfaces (" RXP_NETIF_VAR "=%s):\n",
	       spec && *spec ? spec : "(unset)");
	for (size_t i = 0; i < n; i++) {
		rxp_netif_ip(&ifs[i], ip, sizeof(ip));
		printf("  %-12s %-4s %-40s%s\n", ifs[i].name,
		       ifs[i].flags & IFF_UP ? "up" : "down", *ip ? ip : "-",
		       spec && *spec && rxp_netif_match(spec, ifs[i].name)
			       ? " matches"
			       : "");
	}
	if (!master || !*master)
		master = "127.0.0.1";
	if (rxp_route_ip(master, route, sizeof(route)))
		route[0] = '\0';
	ret = rxp_addr_plan(getenv("RXP_BIND_ADDR"), spec, master, route, ifs,
			    n, &plan);
	rxp__free(ifs);
	if (ret) {
		printf("  no data address: %s (see the error above)\n",
		       strerror(-ret));
		return ret;
	}
	snprintf(adv, advlen, "%s", plan.advertise);
	printf("  MASTER_ADDR=%s: binds %s, advertises %s%s%s (%s)\n", master,
	       plan.bind, plan.advertise, *plan.ifname ? " on " : "",
	       plan.ifname, plan.why);
	return 0;
}

extern char **environ;

/* The settings this process would start with: every RXP_* variable and
 * the launcher's (README "Configuration" says what each means). */
static void show_config(void)
{
	static const char *const launcher[] = {
		"MASTER_ADDR=", "MASTER_PORT=", "RANK=", "WORLD_SIZE=",
		"LOCAL_RANK="};
	int n = 0;

	printf("\nconfiguration from the environment:\n");
	for (char **e = environ; *e; e++) {
		int show = !strncmp(*e, "RXP_", 4);

		for (size_t i = 0; i < sizeof(launcher) / sizeof(*launcher);
		     i++)
			show |= !strncmp(*e, launcher[i], strlen(launcher[i]));
		if (show && ++n)
			printf("  %s\n", *e);
	}
	if (!n)
		printf("  none set: every default applies\n");
}

int main(int argc, char **argv)
{
	const char *addr = argc > 1 ? argv[1] : NULL;
	const char *want = getenv("RXP_TRANSPORT");
	char why[2048], adv[RXP_NETIF_IPLEN] = "";
	int ret, bad;

	if (argc > 1 &&
	    (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: rxp-info [bind-address]\n"
		       "RDMA devices, TCP interfaces, and the address and "
		       "transport rxp would use.\n"
		       "Exit 1 if RXP_SOCKET_IFNAME matches nothing or "
		       "RXP_TRANSPORT=verbs has no device.\n");
		return 0;
	}
	if (argc > 1 && argv[1][0] == '-') {
		fprintf(stderr,
			"rxp-info: unknown flag %s\nusage: rxp-info "
			"[bind-address]\n",
			argv[1]);
		return 2;
	}
	if (argc > 2) {
		fprintf(stderr,
			"rxp-info: one address, not also '%s'\nusage: "
			"rxp-info [bind-address]\n",
			argv[2]);
		return 2;
	}
	printf("rxp %s, fork: %s\n", rxp_version(),
	       ibv_is_fork_initialized() == IBV_FORK_UNNEEDED
		       ? "kernel copies pinned pages (no ibv_fork_init needed)"
		       : "ibv_fork_init() will be called before registering");
	bad = show_devices() == 0 && want && !strcmp(want, "verbs");
	show_config();
	bad |= show_interfaces(adv, sizeof(adv)) != 0;
	if (!addr)
		addr = adv; /* what a peer would reach */
	if (!*addr) {
		printf("\n(give an address to see which transport rxp "
		       "picks)\n");
		return bad;
	}
	ret = rxp_verbs_probe(addr, why, sizeof(why));
	printf("\nfor %s with RXP_TRANSPORT=%s:\n", addr,
	       want && *want ? want : "auto");
	if (want && !strcmp(want, "tcp")) {
		printf("  tcp (forced)\n");
	} else if (!ret) {
		printf("  verbs: %s\n", why);
	} else if (want && !strcmp(want, "verbs")) {
		printf("  none: RXP_TRANSPORT=verbs but %s\n", why);
		bad = 1;
	} else {
		printf("  tcp: %s\n", why);
	}
	return bad;
}
