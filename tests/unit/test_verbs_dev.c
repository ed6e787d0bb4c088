/* SPDX-License-Identifier: MIT */
/*
 * Device choice (rxp_verbs_probe and the overrides) on fake devices, and
 * the pure parts of the wire: private data, addresses, status tables.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rxp_addr.h"
#include "test_verbs_fake.h"

static char why[2048];

static int setup(void **state)
{
	fk_reset();
	verbs_sys_set(&fk_sys);
	return 0;
}

static int teardown(void **state)
{
	unsetenv("RXP_VERBS_DEVICE");
	unsetenv("RXP_VERBS_PORT");
	unsetenv("RXP_VERBS_GID_INDEX");
	verbs_sys_set(NULL);
	return 0;
}

static void expect_no(const char *addr, const char *reason)
{
	assert_int_equal(rxp_verbs_probe(addr, why, sizeof(why)),
			 -RXP_E_NO_DEVICE);
	if (!strstr(why, reason))
		fail_msg("'%s' does not say '%s'", why, reason);
}

static void test_probe_picks_the_roce_v2_gid(void **state)
{
	assert_int_equal(rxp_verbs_probe("10.0.0.1", why, sizeof(why)), 0);
	assert_string_equal(why, "fk0 port 1 gid[1] ::ffff:10.0.0.1 (RoCEv2), "
				 "mtu 1024");
	/* the wildcard takes the first IPv4 RoCEv2 GID */
	assert_int_equal(rxp_verbs_probe("0.0.0.0", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "gid[1]"));
}

static void test_probe_rejections_say_why(void **state)
{
	fk.ndev = 0;
	expect_no("10.0.0.1", "no RDMA devices");
	fk.ndev = 1;
	expect_no("10.9.9.9", "fk0 port 1: no RoCEv2 GID for the address");
	fk.dev[0].state = IBV_PORT_DOWN;
	expect_no("10.0.0.1", "fk0 port 1: state DOWN");
	fk.dev[0].state = IBV_PORT_ACTIVE;
	fk.dev[0].max_srq = 0;
	expect_no("10.0.0.1", "fk0: no SRQ support");
	fk.dev[0].max_srq = 1024;
	fk.dev[0].v1_only = true;
	expect_no("10.0.0.1", "only a RoCEv1 GID");
	fk.dev[0].v1_only = false;
	fk.dev[0].link_layer = IBV_LINK_LAYER_INFINIBAND;
	expect_no("10.0.0.1", "InfiniBand port without a LID");
	fk.dev[0].link_layer = IBV_LINK_LAYER_ETHERNET;
	expect_no("not-an-ip", "not a numeric IP address");
	/* every rejected device is listed */
	fk.ndev = 2;
	fk.dev[1].state = IBV_PORT_INIT;
	expect_no("10.0.0.7", "fk0 port 1: no RoCEv2 GID");
	expect_no("10.0.0.7", "fk1 port 1: state INIT");
}

static void test_probe_second_device(void **state)
{
	fk.ndev = 2;
	fk.dev[0].state = IBV_PORT_DOWN;
	assert_int_equal(rxp_verbs_probe("10.0.0.2", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "fk1 port 1 gid[1] ::ffff:10.0.0.2"));
}

static void test_probe_overrides(void **state)
{
	fk.ndev = 2;
	setenv("RXP_VERBS_DEVICE", "nope", 1);
	expect_no("10.0.0.1", "device nope not found");
	setenv("RXP_VERBS_DEVICE", "fk1", 1);
	expect_no("10.0.0.1", "fk1 port 1: no RoCEv2 GID");
	assert_int_equal(rxp_verbs_probe("10.0.0.2", why, sizeof(why)), 0);
	unsetenv("RXP_VERBS_DEVICE");
	setenv("RXP_VERBS_PORT", "2", 1);
	expect_no("10.0.0.1", "no usable device");
	unsetenv("RXP_VERBS_PORT");
	setenv("RXP_VERBS_GID_INDEX", "0", 1);
	expect_no("10.0.0.1", "forced gid[0] is fe80::1");
	setenv("RXP_VERBS_GID_INDEX", "2", 1); /* RoCEv1 */
	expect_no("10.0.0.1", "no RoCEv2 gid[2]");
	setenv("RXP_VERBS_GID_INDEX", "1", 1);
	assert_int_equal(rxp_verbs_probe("10.0.0.1", why, sizeof(why)), 0);
}

static void test_open_honours_attr_overrides(void **state)
{
	struct rxp_tp_cb cb = {0};
	struct rxp_tp_attr attr = {
		.bind_addr = "10.0.0.1", .cb = &cb, .dev_name = "fk1"};
	struct rxp_tp *tp = NULL;

	fk.ndev = 2;
	assert_int_equal(rxp_verbs_ops.open(&attr, &tp), -RXP_E_NO_DEVICE);
	attr.dev_name = NULL;
	attr.gid_index = 2;
	assert_int_equal(rxp_verbs_ops.open(&attr, &tp), -RXP_E_NO_DEVICE);
	attr.gid_index = 0; /* a zeroed attr means "choose" */
	assert_int_equal(rxp_verbs_ops.open(&attr, &tp), 0);
	rxp_verbs_ops.close(tp);
	attr.bind_addr = "nonsense";
	assert_int_equal(rxp_verbs_ops.open(&attr, &tp), -EINVAL);
	assert_int_equal(rxp_verbs_ops.open(NULL, &tp), -EINVAL);
}

/* ---------------------------------------------------------------- wire */

static void test_pdata_round_trip_and_checks(void **state)
{
	struct verbs_pdata in = {.version = VERBS_PROTO_VERSION,
				 .worker_id = 42,
				 .credits = 32,
				 .eager_size = 65536,
				 .max_rdv = 8,
				 .max_payload = 1 << 26,
				 .max_storage = (uint64_t)1 << 34};
	struct verbs_pdata out;
	uint8_t b[VERBS_PD_SIZE + 8] = {0};
	const char *w;

	verbs_pdata_encode(b, &in);
	assert_int_equal(verbs_pdata_decode(b, sizeof(b), &out, &w), 0);
	assert_int_equal(out.worker_id, 42);
	assert_int_equal(out.credits, 32);
	assert_int_equal(out.max_storage, (uint64_t)1 << 34);
	assert_int_equal(verbs_pdata_decode(b, VERBS_PD_SIZE - 1, &out, &w),
			 -RXP_E_PROTO);
	assert_int_equal(verbs_pdata_decode(NULL, 0, &out, &w), -RXP_E_PROTO);
	in.version = 9;
	verbs_pdata_encode(b, &in);
	assert_int_equal(verbs_pdata_decode(b, 8, &out, &w), -RXP_E_VERSION);
	assert_int_equal(out.version, 9);
	in.version = VERBS_PROTO_VERSION;
	in.eager_size = 100;
	verbs_pdata_encode(b, &in);
	assert_int_equal(verbs_pdata_decode(b, sizeof(b), &out, &w),
			 -RXP_E_PROTO);
	assert_string_equal(w, "eager size out of range");
	in.eager_size = 65536;
	in.max_rdv = 0;
	verbs_pdata_encode(b, &in);
	assert_int_equal(verbs_pdata_decode(b, sizeof(b), &out, &w),
			 -RXP_E_PROTO);
	in.max_rdv = 8;
	in.reject = 99;
	verbs_pdata_encode(b, &in);
	assert_int_equal(verbs_pdata_decode(b, sizeof(b), &out, &w),
			 -RXP_E_PROTO);
}

static void test_addresses(void **state)
{
	struct sockaddr_storage sa;
	char s[64];

	assert_int_equal(rxp_addr_parse("10.1.2.3:4567", &sa, NULL), 0);
	verbs_format_addr((struct sockaddr *)&sa, s, sizeof(s));
	assert_string_equal(s, "10.1.2.3:4567");
	assert_int_equal(rxp_addr_parse("[fe80::1]:9", &sa, NULL), 0);
	verbs_format_addr((struct sockaddr *)&sa, s, sizeof(s));
	assert_string_equal(s, "[fe80::1]:9");
	assert_int_equal(rxp_addr_parse("fe80::1:9", &sa, NULL), -EINVAL);
	assert_int_equal(rxp_addr_parse("10.1.2.3", &sa, NULL), -EINVAL);
	assert_int_equal(rxp_addr_parse("10.1.2.3:", &sa, NULL), -EINVAL);
	assert_int_equal(rxp_addr_parse("10.1.2.3:x", &sa, NULL), -EINVAL);
	assert_int_equal(rxp_addr_parse(":80", &sa, NULL), -EINVAL);
	assert_int_equal(rxp_addr_parse("host:80", &sa, NULL), -EINVAL);
	assert_int_equal(rxp_addr_parse(NULL, &sa, NULL), -EINVAL);
}

static void test_status_tables(void **state)
{
	assert_int_equal(verbs_wc_status_to_err(IBV_WC_WR_FLUSH_ERR),
			 -ECANCELED);
	assert_int_equal(verbs_wc_status_to_err(IBV_WC_LOC_LEN_ERR),
			 -RXP_E_PROTO);
	for (int st = IBV_WC_SUCCESS + 1; st <= IBV_WC_TM_RNDV_INCOMPLETE;
	     st++) {
		assert_true(verbs_wc_status_to_err(st) < 0);
		assert_string_not_equal(verbs_wc_status_str(st),
					"unknown work completion status");
	}
	assert_string_equal(verbs_cm_event_str(RDMA_CM_EVENT_REJECTED),
			    "REJECTED");
	assert_string_equal(verbs_cm_event_str(99), "UNKNOWN_EVENT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_probe_picks_the_roce_v2_gid),
		T(test_probe_rejections_say_why),
		T(test_probe_second_device),
		T(test_probe_overrides),
		T(test_open_honours_attr_overrides),
		T(test_pdata_round_trip_and_checks),
		T(test_addresses),
		T(test_status_tables),
#undef T
	};

	setenv("RXP_LOG", "error", 0);
	return cmocka_run_group_tests_name("verbs_dev", tests, NULL, NULL);
}
