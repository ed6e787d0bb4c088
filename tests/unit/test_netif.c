/* SPDX-License-Identifier: MIT */
/* RXP_SOCKET_IFNAME matching and the address plan, over made-up
 * interface lists (no real interfaces needed). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "netif.h"

static struct rxp_netif mk(const char *name, unsigned flags, const char *ip)
{
	struct rxp_netif e = {0};
	struct sockaddr_in *v4 = (struct sockaddr_in *)&e.addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&e.addr;

	strcpy(e.name, name);
	e.flags = flags;
	if (ip && inet_pton(AF_INET, ip, &v4->sin_addr) == 1)
		e.addr.ss_family = AF_INET;
	else if (ip && inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1)
		e.addr.ss_family = AF_INET6;
	return e;
}

#define UP (IFF_UP | IFF_RUNNING)

static void test_netif_match_names_prefixes_and_exclusions(void **state)
{
	assert_true(rxp_netif_match("eth", "eth0"));
	assert_true(rxp_netif_match("eth", "eth1"));
	assert_false(rxp_netif_match("eth", "ens3"));
	assert_true(rxp_netif_match("ib,eth", "eth1"));
	assert_false(rxp_netif_match("=eth", "eth0"));
	assert_true(rxp_netif_match("=eth0", "eth0"));
	assert_false(rxp_netif_match("^docker,lo", "lo"));
	assert_false(rxp_netif_match("^docker,lo", "docker0"));
	assert_true(rxp_netif_match("^docker,lo", "eth0"));
	assert_false(rxp_netif_match("^=eth0", "eth0"));
	assert_true(rxp_netif_match("^=eth0", "eth01"));
	assert_true(rxp_netif_match(NULL, "x"));
	assert_true(rxp_netif_match("", "x"));
}

static void test_netif_pick_fails_when_nothing_matches(void **state)
{
	struct rxp_netif ifs[] = {
		mk("lo", UP | IFF_LOOPBACK, "127.0.0.1"),
		mk("eth0", 0, "10.0.0.5"), /* down */
		mk("eth1", UP, "fe80::1"), /* link-local only */
		mk("eth2", UP, NULL),	   /* no address */
		mk("veth7", UP, "2001:db8::7"),
		mk("veth8", UP, "10.77.0.2"),
	};
	size_t n = sizeof(ifs) / sizeof(ifs[0]);

	assert_int_equal(rxp_netif_pick(ifs, n, "eth", AF_UNSPEC), -ENODEV);
	assert_int_equal(rxp_netif_pick(ifs, n, "wlan", AF_UNSPEC), -ENODEV);
	assert_int_equal(rxp_netif_pick(ifs, n, "veth", AF_UNSPEC), 5);
	assert_int_equal(rxp_netif_pick(ifs, n, "veth", AF_INET6), 4);
	assert_int_equal(rxp_netif_pick(ifs, n, "^lo", AF_UNSPEC), 5);
	assert_int_equal(rxp_netif_pick(ifs, n, "=lo", AF_UNSPEC), 0);
}

static void test_netif_plan_never_advertises_wildcard_or_loopback(void **state)
{
	struct rxp_netif ifs[] = {
		mk("lo", UP | IFF_LOOPBACK, "127.0.0.1"),
		mk("docker0", UP, "172.17.0.1"),
		mk("eth0", UP, "10.77.0.2"),
	};
	size_t n = sizeof(ifs) / sizeof(ifs[0]);
	struct rxp_addr_plan p;
	char out[128];

	/* wildcard bind: listen there, advertise the route */
	assert_int_equal(rxp_addr_plan("0.0.0.0", NULL, "10.77.0.1",
				       "10.77.0.2", ifs, n, &p),
			 0);
	assert_string_equal(p.bind, "0.0.0.0");
	assert_string_equal(p.advertise, "10.77.0.2");
	/* a loopback route with a remote master: first non-docker, non-lo */
	assert_int_equal(
		rxp_addr_plan(NULL, NULL, "10.77.0.1", "127.0.0.1", ifs, n, &p),
		0);
	assert_string_equal(p.advertise, "10.77.0.2");
	assert_string_equal(p.ifname, "eth0");
	/* the interface named */
	assert_int_equal(rxp_addr_plan(NULL, "eth", "10.77.0.1", "172.17.0.1",
				       ifs, n, &p),
			 0);
	assert_string_equal(p.bind, "10.77.0.2");
	assert_int_equal(
		rxp_addr_plan(NULL, "nope", "10.77.0.1", NULL, ifs, n, &p),
		-ENODEV);
	/* explicit loopback with a remote master */
	assert_int_equal(
		rxp_addr_plan("127.0.0.1", NULL, "10.77.0.1", NULL, ifs, n, &p),
		-EINVAL);
	/* loopback master: one host, loopback is fine */
	assert_int_equal(
		rxp_addr_plan(NULL, NULL, "127.0.0.1", "127.0.0.1", ifs, n, &p),
		0);
	assert_string_equal(p.advertise, "127.0.0.1");
	/* a wildcard master (a server serving on every interface): listen
	 * on the wildcard, advertise the first interface others can reach */
	assert_int_equal(
		rxp_addr_plan(NULL, NULL, "0.0.0.0", "127.0.0.1", ifs, n, &p),
		0);
	assert_string_equal(p.bind, "0.0.0.0");
	assert_string_equal(p.advertise, "10.77.0.2");
	/* ... and loopback when there is nothing else: one host */
	assert_int_equal(
		rxp_addr_plan(NULL, NULL, "0.0.0.0", "127.0.0.1", ifs, 1, &p),
		0);
	assert_string_equal(p.bind, "0.0.0.0");
	assert_string_equal(p.advertise, "127.0.0.1");
	assert_int_equal(rxp_addr_plan(NULL, NULL, "::", NULL, ifs, 1, &p), 0);
	assert_string_equal(p.advertise, "::1");
	/* an explicit bind still wins */
	assert_int_equal(
		rxp_addr_plan("10.77.0.2", NULL, "0.0.0.0", NULL, ifs, n, &p),
		0);
	assert_string_equal(p.bind, "10.77.0.2");
	assert_int_equal(rxp_addr_advertise("0.0.0.0:4242", "10.77.0.2", out,
					    sizeof(out)),
			 0);
	assert_string_equal(out, "10.77.0.2:4242");
	assert_int_equal(
		rxp_addr_advertise("[::]:7", "2001:db8::1", out, sizeof(out)),
		0);
	assert_string_equal(out, "[2001:db8::1]:7");
	assert_int_equal(
		rxp_addr_advertise("10.0.0.1:7", "10.77.0.2", out, sizeof(out)),
		0);
	assert_string_equal(out, "10.0.0.1:7");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_netif_match_names_prefixes_and_exclusions),
		cmocka_unit_test(test_netif_pick_fails_when_nothing_matches),
		cmocka_unit_test(
			test_netif_plan_never_advertises_wildcard_or_loopback),
	};

	return cmocka_run_group_tests_name("netif", tests, NULL, NULL);
}
