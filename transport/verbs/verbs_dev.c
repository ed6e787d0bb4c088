/* SPDX-License-Identifier: MIT */
/*
 * Device choice: which device, port and GID serve the bind address.
 *
 * Usable = the port is ACTIVE with a known MTU, the device has an SRQ,
 * and either (RoCE) the port's GID table holds a RoCEv2 GID for the
 * address (::ffff:a.b.c.d for IPv4) or (InfiniBand) the port has a LID
 * and rdma_cm binds the address to that device and port. The GID table
 * is read with ibv_query_gid_table() (one ioctl, valid entries only;
 * rdma-core >= 32), never by walking sysfs.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rxp_addr.h"
#include "verbs.h"

struct whybuf {
	char *p;
	size_t len, used;
};

static void why_add(struct whybuf *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void why_add(struct whybuf *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!w->p || !w->len || w->used >= w->len - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(w->p + w->used, w->len - w->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		w->used += (size_t)n;
	if (w->used >= w->len)
		w->used = w->len - 1;
}

const char *verbs_gid_type_str(uint32_t t)
{
	switch (t) {
	case IBV_GID_TYPE_IB:
		return "IB";
	case IBV_GID_TYPE_ROCE_V1:
		return "RoCEv1";
	case IBV_GID_TYPE_ROCE_V2:
		return "RoCEv2";
	default:
		return "?";
	}
}

const char *verbs_port_state_str(enum ibv_port_state s)
{
	switch (s) {
	case IBV_PORT_NOP:
		return "NOP";
	case IBV_PORT_DOWN:
		return "DOWN";
	case IBV_PORT_INIT:
		return "INIT";
	case IBV_PORT_ARMED:
		return "ARMED";
	case IBV_PORT_ACTIVE:
		return "ACTIVE";
	case IBV_PORT_ACTIVE_DEFER:
		return "ACTIVE_DEFER";
	default:
		return "?";
	}
}

int verbs_mtu_bytes(enum ibv_mtu m)
{
	return m >= IBV_MTU_256 && m <= IBV_MTU_4096 ? 128 << m : 0;
}

void verbs_format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)sa;

		inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(v4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)sa;

		inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(v6->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

void verbs_ip_to_gid(const struct sockaddr *sa, union ibv_gid *gid)
{
	memset(gid, 0, sizeof(*gid));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)sa;

		gid->raw[10] = 0xff;
		gid->raw[11] = 0xff;
		memcpy(&gid->raw[12], &v4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)sa;

		memcpy(gid->raw, &v6->sin6_addr, 16);
	}
}

static bool is_any(const struct sockaddr_storage *sa)
{
	union ibv_gid g, zero = {0};

	verbs_ip_to_gid((const struct sockaddr *)sa, &g);
	if (sa->ss_family == AF_INET)
		return !memcmp(&g.raw[12], &zero.raw[12], 4);
	return !memcmp(g.raw, zero.raw, 16);
}

static bool gid_is_v4mapped(const union ibv_gid *g)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0,	  0,
					0, 0, 0, 0, 0xff, 0xff};

	return !memcmp(g->raw, pfx, sizeof(pfx));
}

void verbs_override_get(const struct rxp_tp_attr *attr,
			struct verbs_override *o)
{
	const char *d = getenv("RXP_VERBS_DEVICE");

	o->dev_name = d && *d ? d : NULL;
	o->port = (int)rxp_env_long("RXP_VERBS_PORT", 0);
	o->gid_index = (int)rxp_env_long("RXP_VERBS_GID_INDEX", -1);
	if (!attr)
		return;
	if (attr->dev_name && *attr->dev_name)
		o->dev_name = attr->dev_name;
	if (attr->port_num > 0)
		o->port = attr->port_num;
	/* 0 is what a zeroed attr holds: only > 0 forces (env can force 0) */
	if (attr->gid_index > 0)
		o->gid_index = attr->gid_index;
}

/* rdma_cm's own view of which device/port owns @sa (InfiniBand ports). */
static int cm_owner(const struct verbs_sys *sys,
		    const struct sockaddr_storage *sa, char *dev, size_t len,
		    uint8_t *port)
{
	struct rdma_event_channel *ec;
	struct rdma_cm_id *id = NULL;
	struct sockaddr_storage tmp = *sa;
	int ret = -ENODEV;

	ec = sys->create_event_channel();
	if (!ec)
		return verbs_errno();
	if (sys->create_id(ec, &id, NULL, RDMA_PS_TCP)) {
		ret = verbs_errno();
		goto out_ec;
	}
	if (sys->bind_addr(id, (struct sockaddr *)&tmp)) {
		ret = verbs_errno();
		goto out_id;
	}
	if (id->verbs) {
		snprintf(dev, len, "%s", id->verbs->device->name);
		*port = id->port_num;
		ret = verbs_cm_claim(dev);
	}
out_id:
	sys->destroy_id(id);
out_ec:
	sys->destroy_event_channel(ec);
	return ret;
}

struct pick {
	const struct verbs_sys *sys;
	const struct sockaddr_storage *sa;
	const struct verbs_override *o;
	bool any;
	union ibv_gid want;
	struct whybuf *why;
	bool cm_done;
	int cm_ret;
	char cm_dev[64];
	uint8_t cm_port;
	bool nomem;
};

/* RoCE: a RoCEv2 GID for the address on @port. Index or -1 (why noted). */
static int pick_gid(struct pick *pk, const char *name, uint8_t port,
		    const struct ibv_gid_entry *ent, ssize_t n)
{
	char ip[INET6_ADDRSTRLEN];
	bool v1_only = false;

	for (ssize_t i = 0; i < n; i++) {
		const struct ibv_gid_entry *e = &ent[i];
		bool match;

		if (e->port_num != port)
			continue;
		if (pk->any)
			match = pk->sa->ss_family == AF_INET
					? gid_is_v4mapped(&e->gid)
					: !gid_is_v4mapped(&e->gid);
		else
			match = !memcmp(e->gid.raw, pk->want.raw, 16);
		if (pk->o->gid_index >= 0 &&
		    e->gid_index != (uint32_t)pk->o->gid_index)
			continue;
		if (!match) {
			if (pk->o->gid_index >= 0) {
				inet_ntop(AF_INET6, e->gid.raw, ip, sizeof(ip));
				why_add(pk->why,
					"%s port %u: forced gid[%d] is %s, not "
					"the bind address; ",
					name, port, pk->o->gid_index, ip);
				return -1;
			}
			continue;
		}
		if (e->gid_type == IBV_GID_TYPE_ROCE_V2)
			return (int)e->gid_index;
		v1_only = true;
	}
	if (pk->o->gid_index >= 0)
		why_add(pk->why, "%s port %u: no RoCEv2 gid[%d]; ", name, port,
			pk->o->gid_index);
	else if (v1_only)
		why_add(pk->why,
			"%s port %u: only a RoCEv1 GID for the address; ", name,
			port);
	else
		why_add(pk->why, "%s port %u: no RoCEv2 GID for the address; ",
			name, port);
	return -1;
}

static bool pick_ib(struct pick *pk, const char *name, uint8_t port,
		    const struct ibv_port_attr *pa)
{
	if (!pa->lid) {
		why_add(pk->why, "%s port %u: InfiniBand port without a LID; ",
			name, port);
		return false;
	}
	if (pk->any)
		return true;
	if (!pk->cm_done) {
		pk->cm_done = true;
		pk->cm_ret = cm_owner(pk->sys, pk->sa, pk->cm_dev,
				      sizeof(pk->cm_dev), &pk->cm_port);
	}
	if (pk->cm_ret || strcmp(pk->cm_dev, name) || pk->cm_port != port) {
		why_add(pk->why,
			"%s port %u: the address is not on it "
			"(rdma_cm); ",
			name, port);
		return false;
	}
	return true;
}

/* 1 if a usable port was found on this device (out filled). */
static int try_device(struct pick *pk, struct ibv_device *dev,
		      struct verbs_choice *out)
{
	const struct verbs_sys *sys = pk->sys;
	const char *name = sys->get_device_name(dev);
	struct ibv_device_attr da;
	struct ibv_gid_entry *ent = NULL;
	struct ibv_context *ctx;
	ssize_t n = -1;
	size_t total = 0;
	int found = 0, ret;

	ctx = sys->open_device(dev);
	if (!ctx) {
		why_add(pk->why, "%s: cannot open (%s); ", name,
			strerror(errno));
		return 0;
	}
	ret = sys->query_device(ctx, &da);
	if (ret) {
		why_add(pk->why, "%s: query_device failed (%s); ", name,
			strerror(ret));
		goto out;
	}
	if (da.max_srq <= 0 || da.max_srq_wr <= 0) {
		why_add(pk->why, "%s: no SRQ support; ", name);
		goto out;
	}
	for (uint8_t p = 1; p <= da.phys_port_cnt && !found; p++) {
		struct ibv_port_attr pa;
		int gi = -1;

		if (pk->o->port > 0 && p != pk->o->port)
			continue;
		ret = sys->query_port(ctx, p, &pa);
		if (ret) {
			why_add(pk->why, "%s port %u: query_port failed (%s); ",
				name, p, strerror(ret));
			continue;
		}
		if (pa.state != IBV_PORT_ACTIVE) {
			why_add(pk->why, "%s port %u: state %s; ", name, p,
				verbs_port_state_str(pa.state));
			continue;
		}
		if (!verbs_mtu_bytes(pa.active_mtu)) {
			why_add(pk->why, "%s port %u: unknown MTU; ", name, p);
			continue;
		}
		if (pa.link_layer == IBV_LINK_LAYER_INFINIBAND) {
			if (!pick_ib(pk, name, p, &pa))
				continue;
		} else {
			if (n < 0) {
				for (uint8_t q = 1; q <= da.phys_port_cnt;
				     q++) {
					struct ibv_port_attr qa;

					if (!sys->query_port(ctx, q, &qa))
						total += (size_t)qa.gid_tbl_len;
				}
				ent = rxp__calloc(total ? total : 1,
						  sizeof(*ent));
				if (!ent) {
					why_add(pk->why, "%s: out of memory; ",
						name);
					pk->nomem = true;
					goto out;
				}
				n = sys->query_gid_table(ctx, ent, total);
				if (n < 0) {
					why_add(pk->why,
						"%s: query_gid_table failed "
						"(%s); ",
						name, strerror((int)-n));
					goto out;
				}
			}
			gi = pick_gid(pk, name, p, ent, n);
			if (gi < 0)
				continue;
		}
		memset(out, 0, sizeof(*out));
		snprintf(out->dev, sizeof(out->dev), "%s", name);
		out->port = p;
		out->gid_index = gi;
		for (ssize_t i = 0; gi >= 0 && i < n; i++)
			if (ent[i].port_num == p &&
			    ent[i].gid_index == (uint32_t)gi)
				out->gid = ent[i].gid;
		out->link_layer = pa.link_layer;
		out->mtu = pa.active_mtu;
		out->max_msg_sz = pa.max_msg_sz;
		out->dattr = da;
		found = 1;
	}
out:
	rxp__free(ent);
	sys->close_device(ctx);
	return found;
}

int verbs_choose(const struct verbs_sys *sys, const char *bind_addr,
		 const struct verbs_override *o, struct verbs_choice *out,
		 char *why, size_t len)
{
	struct whybuf w = {why, len, 0};
	struct sockaddr_storage sa;
	struct ibv_device **list;
	struct pick pk = {.sys = sys, .sa = &sa, .o = o, .why = &w};
	int n = 0, found = 0;
	bool seen = false;
	char gid[INET6_ADDRSTRLEN];

	if (why && len)
		why[0] = 0;
	if (rxp_addr_parse_ip(bind_addr, 0, &sa, NULL)) {
		why_add(&w, "'%s' is not a numeric IP address", bind_addr);
		return -EINVAL;
	}
	pk.any = is_any(&sa);
	verbs_ip_to_gid((struct sockaddr *)&sa, &pk.want);
	list = sys->get_device_list(&n);
	if (!list || n <= 0) {
		why_add(&w, "no RDMA devices (no rdma_rxe/HCA driver loaded?)");
		if (list)
			sys->free_device_list(list);
		return -RXP_E_NO_DEVICE;
	}
	why_add(&w, "no usable device for %s: ", bind_addr ? bind_addr : "any");
	for (int i = 0; i < n && !found; i++) {
		if (o->dev_name &&
		    strcmp(o->dev_name, sys->get_device_name(list[i])))
			continue;
		seen = true;
		found = try_device(&pk, list[i], out);
	}
	sys->free_device_list(list);
	if (!seen)
		why_add(&w, "device %s not found", o->dev_name);
	if (!found && pk.nomem)
		return -ENOMEM;
	if (!found) {
		/* drop the trailing "; " */
		if (w.used >= 2 && why[w.used - 2] == ';')
			why[w.used - 2] = 0;
		return -RXP_E_NO_DEVICE;
	}
	w.used = 0;
	if (why && len)
		why[0] = 0;
	if (out->gid_index >= 0) {
		inet_ntop(AF_INET6, out->gid.raw, gid, sizeof(gid));
		why_add(&w, "%s port %u gid[%d] %s (RoCEv2), mtu %d", out->dev,
			out->port, out->gid_index, gid,
			verbs_mtu_bytes(out->mtu));
	} else {
		why_add(&w, "%s port %u (InfiniBand), mtu %d", out->dev,
			out->port, verbs_mtu_bytes(out->mtu));
	}
	return 0;
}

int rxp_verbs_probe(const char *bind_addr, char *why, size_t len)
{
	struct verbs_override o;
	struct verbs_choice ch;
	int ret;

	verbs_override_get(NULL, &o);
	ret = verbs_choose(verbs_sys_get(), bind_addr, &o, &ch, why, len);
	return ret ? -RXP_E_NO_DEVICE : 0;
}
