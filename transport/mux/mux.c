/* SPDX-License-Identifier: MIT */
/*
 * The per-peer choice (issue 11): RXP_TRANSPORT=auto opens the network
 * backend (verbs or tcp, as before) and shm side by side, and connects
 * each peer by shm when it is on this host, by the network otherwise.
 *
 * The address it advertises is the network one with two fields after it:
 *   10.0.0.1:4242;shm=rxp.4242.0badf00d;host=<boot id>-<net namespace>
 * A peer with the same host key (same kernel boot, same network namespace:
 * the abstract socket is reachable) connects to the shm name; any other
 * peer, and a backend that is not this one (RXP_TRANSPORT=tcp on the other
 * side), uses the part before the ';' (rxp_addr_parse stops there).
 *
 * Connections are the inner backends'; ops on a connection go to the
 * backend it belongs to (c->tp). Callbacks go straight to the agent.
 * Threads: as the inner backends (one thread at a time).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "rxp_transport.h"

#define MUX_LOG "transport"

struct mux_tp {
	struct rxp_tp base;
	struct rxp_tp_ops net_ops, shm_ops; /* complete */
	struct rxp_tp *net, *shm;	    /* shm NULL: could not open */
	int epfd;
	char name[24];	 /* "tcp+shm" */
	char host[80];	 /* this host's key */
	char addr[128];	 /* what peers connect to */
	unsigned nlocal; /* peers connected by shm (logged) */
};

static struct mux_tp *to_mtp(struct rxp_tp *tp)
{
	return rxp_container_of(tp, struct mux_tp, base);
}

/* "<boot id>-<net namespace inode>", or "" if the system does not say. */
static void host_key(char *out, size_t len)
{
	char boot[64] = "", ns[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	ssize_t n;

	*out = '\0';
	if (f) {
		if (!fgets(boot, sizeof(boot), f))
			boot[0] = '\0';
		fclose(f);
	}
	boot[strcspn(boot, "\n")] = '\0';
	n = readlink("/proc/self/ns/net", ns, sizeof(ns) - 1);
	if (!*boot || n <= 0)
		return;
	ns[n] = '\0';
	/* "net:[4026531840]" -> "4026531840" */
	n = (ssize_t)strspn(ns + 5, "0123456789");
	if (strncmp(ns, "net:[", 5) || n == 0)
		return;
	ns[5 + n] = '\0';
	snprintf(out, len, "%.40s-%.20s", boot, ns + 5);
}

static bool is_shm(const struct mux_tp *m, const struct rxp_conn *c)
{
	return m->shm && c->tp == m->shm;
}

static void mux_close(struct rxp_tp *tp);

static int mux_open(const struct rxp_tp_attr *attr, struct rxp_tp **out)
{
	struct rxp_tp_attr a;
	struct mux_tp *m;
	char net_addr[128], shm_addr[96];
	struct epoll_event ev = {.events = EPOLLIN};
	int err, w;

	if (!attr || !attr->inner || !out)
		return -EINVAL;
	m = rxp__calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->base.ops = &rxp_mux_ops;
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	rxp_tp_ops_complete(&m->net_ops, attr->inner);
	rxp_tp_ops_complete(&m->shm_ops, &rxp_shm_ops);
	a = *attr;
	a.inner = NULL;
	err = m->epfd < 0 ? -errno : m->net_ops.open(&a, &m->net);
	if (err) {
		mux_close(&m->base);
		return err;
	}
	m->net->outer = &m->base; /* owner(): from a connection to us */
	host_key(m->host, sizeof(m->host));
	if (!*m->host)
		rxp_info(MUX_LOG, "shm off: this system has no boot id or "
				  "network namespace to tell same-host peers");
	else if ((err = m->shm_ops.open(&a, &m->shm)))
		rxp_warn(MUX_LOG,
			 "shm off: %s; peers on this host use %s (set "
			 "RXP_TRANSPORT=tcp or verbs to say so)",
			 rxp_strerror(err), m->net->name);
	if (m->shm)
		m->shm->outer = &m->base;
	err = m->net_ops.address(m->net, net_addr, sizeof(net_addr));
	if (!err && m->shm)
		err = m->shm_ops.address(m->shm, shm_addr, sizeof(shm_addr));
	if (err) {
		mux_close(&m->base);
		return err;
	}
	if (m->shm)
		w = snprintf(m->addr, sizeof(m->addr), "%s;shm=%s;host=%s",
			     net_addr, shm_addr + 4, m->host);
	else
		w = snprintf(m->addr, sizeof(m->addr), "%s", net_addr);
	snprintf(m->name, sizeof(m->name), "%s%s", m->net->name,
		 m->shm ? "+shm" : "");
	m->base.name = m->name;
	ev.data.fd = m->net_ops.wait_fd(m->net);
	err = w < 0 || (size_t)w >= sizeof(m->addr) ? -ENOSPC : 0;
	if (!err && epoll_ctl(m->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
		err = -errno;
	if (!err && m->shm) {
		ev.data.fd = m->shm_ops.wait_fd(m->shm);
		if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
			err = -errno;
	}
	if (err) {
		mux_close(&m->base);
		return err;
	}
	if (m->shm)
		rxp_info(MUX_LOG,
			 "peers on this host (same boot, same network "
			 "namespace) connect by shm, the others by %s",
			 m->net->name);
	*out = &m->base;
	return 0;
}

static void mux_close(struct rxp_tp *tp)
{
	struct mux_tp *m;

	if (!tp)
		return;
	m = to_mtp(tp);
	if (m->shm)
		m->shm_ops.close(m->shm);
	if (m->net)
		m->net_ops.close(m->net);
	if (m->epfd >= 0)
		close(m->epfd);
	rxp__free(m);
}

static int mux_address(struct rxp_tp *tp, char *buf, size_t len)
{
	return rxp_str_out(buf, len, to_mtp(tp)->addr);
}

/* The value of field @key ("shm=") in the ';'-separated tail of @addr,
 * copied into @out; false if absent or too long. */
static bool field(const char *addr, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);

	for (const char *p = strchr(addr, ';'); p; p = strchr(p + 1, ';')) {
		size_t n;

		if (strncmp(p + 1, key, kl))
			continue;
		n = strcspn(p + 1 + kl, ";");
		if (n == 0 || n >= len)
			return false;
		memcpy(out, p + 1 + kl, n);
		out[n] = '\0';
		return true;
	}
	return false;
}

static int mux_connect(struct rxp_tp *tp, const char *addr, uint32_t peer_id,
		       struct rxp_conn **out)
{
	struct mux_tp *m = to_mtp(tp);
	char name[96] = "shm:", host[80];

	if (!addr)
		return -EINVAL;
	if (m->shm && field(addr, "host=", host, sizeof(host)) &&
	    !strcmp(host, m->host) &&
	    field(addr, "shm=", name + 4, sizeof(name) - 4)) {
		if (m->nlocal++ < 16)
			rxp_info(MUX_LOG, "worker %u is on this host: shm",
				 peer_id);
		return m->shm_ops.connect(m->shm, name, peer_id, out);
	}
	return m->net_ops.connect(m->net, addr, peer_id, out);
}

static struct mux_tp *owner(const struct rxp_conn *c)
{
	return to_mtp(c->tp->outer);
}

static void mux_disconnect(struct rxp_conn *c)
{
	struct mux_tp *m;

	if (!c)
		return;
	m = owner(c);
	(is_shm(m, c) ? m->shm_ops : m->net_ops).disconnect(c);
}

static int mux_send(struct rxp_conn *c, const struct rxp_msg_out *msg,
		    void *cookie)
{
	struct mux_tp *m;

	if (!c)
		return -EINVAL;
	m = owner(c);
	return (is_shm(m, c) ? m->shm_ops : m->net_ops).send(c, msg, cookie);
}

static int mux_cancel(struct rxp_conn *c, void *cookie)
{
	struct mux_tp *m = owner(c);

	return (is_shm(m, c) ? m->shm_ops : m->net_ops).cancel(c, cookie);
}

static int mux_progress(struct rxp_tp *tp)
{
	struct mux_tp *m = to_mtp(tp);
	struct rxp_tp *in[2] = {m->net, m->shm};
	int a = m->net_ops.progress(m->net), b = 0;

	if (m->shm)
		b = m->shm_ops.progress(m->shm);
	rxp_tp_counters_sum(&m->base, in, m->shm ? 2 : 1);
	if (a < 0)
		return a;
	return b < 0 ? b : a + b;
}

static int mux_wait_fd(struct rxp_tp *tp)
{
	return to_mtp(tp)->epfd;
}

static int mux_arm(struct rxp_tp *tp)
{
	struct mux_tp *m = to_mtp(tp);
	int a = m->net_ops.arm(m->net);
	int b = m->shm ? m->shm_ops.arm(m->shm) : 0;

	return a || b;
}

static int mux_mem_register(struct rxp_tp *tp, void *ptr, size_t len)
{
	struct mux_tp *m = to_mtp(tp);

	return m->net_ops.mem_register(m->net, ptr, len);
}

static int mux_mem_unregister(struct rxp_tp *tp, void *ptr, size_t len)
{
	struct mux_tp *m = to_mtp(tp);

	return m->net_ops.mem_unregister(m->net, ptr, len);
}

const struct rxp_tp_ops rxp_mux_ops = {
	.name = "mux",
	.open = mux_open,
	.close = mux_close,
	.address = mux_address,
	.connect = mux_connect,
	.disconnect = mux_disconnect,
	.send = mux_send,
	.cancel = mux_cancel,
	.progress = mux_progress,
	.wait_fd = mux_wait_fd,
	.arm = mux_arm,
	.mem_register = mux_mem_register,
	.mem_unregister = mux_mem_unregister,
};
