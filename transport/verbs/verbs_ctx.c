/* SPDX-License-Identifier: MIT */
/*
 * The transport instance: open/close, the shared receive queue and its
 * eager buffers, and the progress / arm / wait_fd loop.
 *
 * wait_fd is an epoll fd holding: the CQ's completion channel, the rdma_cm
 * event channel, an eventfd written when another thread releases the last
 * reference to an eager buffer (so its credit can go back to the peer),
 * and a timerfd for connect/drain deadlines.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "rxp_auth.h"
#include "rxp_addr.h"
#include "verbs.h"

/* ------------------------------------------------------------- timers */

void verbs_timers_update(struct verbs_tp *tp)
{
	struct itimerspec its = {0};
	int64_t first = 0;

	for (struct verbs_conn *c = tp->conns; c && tp->ntimed; c = c->next)
		if (c->deadline && (!first || c->deadline < first))
			first = c->deadline;
	if (tp->rc.retired && (!first || tp->rc.retired->retire_at < first))
		first = tp->rc.retired->retire_at;
	if (first == tp->next_deadline)
		return; /* armed already (or idle already) */
	tp->next_deadline = first;
	if (first) {
		its.it_value.tv_sec = first / 1000000000;
		its.it_value.tv_nsec = first % 1000000000;
	}
	if (tp->tfd >= 0)
		timerfd_settime(tp->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ---------------------------------------------------------- configure */

/* How long a released send-time registration stays (verbs.h): twice the
 * ACK timeout, at least 1 s (no duplicate outlives that in a fabric), at
 * most 60 s; 2 s under rdma_cm's own timeout (about 0.5 s on RoCE). */
int64_t verbs_retire_grace_ns(uint32_t ack_timeout)
{
	int64_t t;

	if (!ack_timeout)
		return 2000000000;
	t = 2 * (4096LL << ack_timeout); /* 4.096 us x 2^n, in ns */
	if (t < 1000000000)
		return 1000000000;
	return t > 60000000000LL ? 60000000000LL : t;
}

static uint32_t env_u32(const char *name, uint32_t def, uint32_t lo,
			uint32_t hi)
{
	long v = rxp_env_long(name, (long)def);

	if (v < (long)lo || v > (long)hi) {
		rxp_warn(VERBS_LOG, "%s=%ld out of range [%u, %u]: using %u",
			 name, v, lo, hi, def);
		return def;
	}
	return (uint32_t)v;
}

/* The caps on accepted connections, as tcp's (docs/tcp.md "What a peer
 * can make a worker hold"): a real job needs one per peer, two while it
 * reconnects; a stranger's connect holds a QP and an SRQ share until its
 * set-up (and, with a secret, its proof) is done or times out. */
static int limits_init(struct verbs_tp *tp)
{
	long conns, unauth;
	int err;

	err = rxp_env_int("RXP_MAX_CONNS", 1, 1000000,
			  2 * (long)tp->world_size + 64, &conns);
	if (!err)
		err = rxp_env_int("RXP_MAX_UNAUTH_CONNS", 1, 1000000, 64,
				  &unauth);
	if (err)
		return err;
	tp->max_conns = (unsigned)conns;
	tp->max_unauth = (unsigned)unauth;
	return 0;
}

static void configure(struct verbs_tp *tp, const struct rxp_tp_attr *attr)
{
	uint32_t acks;

	tp->local_id = attr->local_id;
	if (attr->key && attr->key->on)
		tp->key = *attr->key; /* wiped at close */
	tp->world_size = attr->world_size;
	tp->max_payload = attr->max_payload ? attr->max_payload
					    : RXP_WIRE_DEFAULT_MAX_PAYLOAD;
	tp->max_storage = attr->max_storage ? attr->max_storage
					    : RXP_WIRE_DEFAULT_MAX_STORAGE;
	tp->eager = env_u32("RXP_VERBS_EAGER_SIZE", VERBS_DEF_EAGER,
			    VERBS_MIN_EAGER, VERBS_MAX_EAGER);
	tp->eager = (tp->eager + 63) & ~63u;
	tp->rdv_threshold = env_u32("RXP_VERBS_RDV_THRESHOLD",
				    VERBS_DEF_RDV_THRESHOLD, 0, UINT32_MAX);
	tp->credits = env_u32("RXP_VERBS_CREDITS", VERBS_DEF_CREDITS, 2,
			      VERBS_MAX_CREDITS);
	/* 4.096 us x 2^n before an unacknowledged packet is sent again */
	tp->ack_timeout = env_u32("RXP_VERBS_ACK_TIMEOUT", 0, 0, 31);
	tp->rc.retired_tail = &tp->rc.retired;
	tp->rc.grace_ns = verbs_retire_grace_ns(tp->ack_timeout);
	tp->max_rdv =
		env_u32("RXP_VERBS_RDV_DEPTH", VERBS_DEF_RDV, 1, VERBS_MAX_RDV);
	tp->connect_ns = (int64_t)env_u32("RXP_VERBS_CONNECT_TIMEOUT_MS",
					  VERBS_DEF_CONNECT_MS, 100, 3600000) *
			 1000000;
	tp->ack_threshold = tp->credits / 4 ? tp->credits / 4 : 1;
	/* ACK frames in flight to us: one per rendezvous (R), one per T
	 * returned credits (C/T), one for a starved peer, one goodbye. */
	acks = tp->max_rdv +
	       (tp->credits + tp->ack_threshold - 1) / tp->ack_threshold + 2;
	tp->share = tp->credits + acks;
	tp->sq_depth = 64;
	while (tp->sq_depth < 2 * tp->credits + 2 * tp->max_rdv + 64)
		tp->sq_depth *= 2;
}

static void fork_setup(const struct verbs_sys *sys)
{
	static atomic_bool done;
	enum ibv_fork_status st;
	int ret;

	if (atomic_exchange(&done, true))
		return;
	st = sys->is_fork_initialized();
	if (st == IBV_FORK_UNNEEDED) {
		rxp_dbg(VERBS_LOG, "fork: the kernel copies pinned pages "
				   "(>= 5.13); ibv_fork_init not needed");
		return;
	}
	if (st == IBV_FORK_ENABLED)
		return;
	if (!rxp_env_bool("RXP_VERBS_FORK_INIT", 1)) {
		rxp_warn(VERBS_LOG,
			 "fork: RXP_VERBS_FORK_INIT=0 on a kernel "
			 "< 5.13: a fork() may corrupt registered memory");
		return;
	}
	ret = sys->fork_init();
	if (ret)
		rxp_warn(VERBS_LOG,
			 "ibv_fork_init: %s (memory was registered "
			 "before rxp started; fork() is unsafe)",
			 strerror(ret));
	else
		rxp_info(VERBS_LOG,
			 "fork: ibv_fork_init() done (kernel < "
			 "5.13: registered pages are MADV_DONTFORK)");
}

/* ---------------------------------------------------------- open/close */

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	return 0;
}

static int dom_new(struct verbs_tp *tp)
{
	struct verbs_dom *d = rxp__calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->sys = tp->sys;
	d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->efd < 0) {
		int err = -errno;

		rxp__free(d);
		return err;
	}
	rxp_mutex_init(&d->mu);
	atomic_init(&d->refs, 1);
	/* not yet shared: uncontended */
	verbs_dom_mu_lock(&d->mu);
	d->max_idle_big =
		(size_t)env_u32("RXP_VERBS_POOL_IDLE_MB", 256, 0, 1u << 20)
		<< 20;
	verbs_dom_mu_unlock(&d->mu);
	tp->dom = d;
	return 0;
}

/* librdmacm's context for the chosen device (the listener is bound to
 * the wildcard address, so it has none of its own). */
static struct ibv_context *cm_context(struct verbs_tp *tp)
{
	struct ibv_context **l, *ctx = NULL;
	int n = 0;

	l = tp->sys->get_devices(&n);
	for (int i = 0; l && i < n; i++)
		if (!strcmp(l[i]->device->name, tp->ch.dev))
			ctx = l[i];
	if (l)
		tp->sys->free_devices(l);
	return ctx;
}

static void format_address(struct verbs_tp *tp)
{
	struct sockaddr_storage sa = tp->bind_sa;
	uint16_t port = tp->sys->get_src_port(tp->lid);

	if (tp->bind_any && tp->ch.gid_index >= 0 && sa.ss_family == AF_INET) {
		struct sockaddr_in *v4 = (struct sockaddr_in *)&sa;

		memcpy(&v4->sin_addr, &tp->ch.gid.raw[12], 4);
	}
	if (sa.ss_family == AF_INET)
		((struct sockaddr_in *)&sa)->sin_port = port;
	else
		((struct sockaddr_in6 *)&sa)->sin6_port = port;
	verbs_format_addr((struct sockaddr *)&sa, tp->addr_str,
			  sizeof(tp->addr_str));
}

static int open_device(struct verbs_tp *tp)
{
	const struct verbs_sys *sys = tp->sys;
	struct ibv_srq_init_attr sa = {0};
	int ret;

	tp->dom->pd = sys->alloc_pd(tp->ctx);
	if (!tp->dom->pd)
		return verbs_errno();
	tp->cc = sys->create_comp_channel(tp->ctx);
	if (!tp->cc)
		return verbs_errno();
	ret = set_nonblock(tp->cc->fd);
	if (ret)
		return ret;
	tp->cq_size = tp->ch.dattr.max_cqe > 0 ? (uint32_t)tp->ch.dattr.max_cqe
					       : 4096;
	if (tp->cq_size > 32767)
		tp->cq_size = 32767;
	tp->cq = sys->create_cq(tp->ctx, (int)tp->cq_size, tp, tp->cc, 0);
	if (!tp->cq)
		return verbs_errno();
	if ((uint32_t)tp->cq->cqe < tp->cq_size)
		tp->cq_size = (uint32_t)tp->cq->cqe;
	ret = sys->req_notify_cq(tp->cq, 0);
	if (ret)
		return verbs_pos_err(ret);
	tp->armed = true;
	tp->srq_max = tp->ch.dattr.max_srq_wr > 0
			      ? (uint32_t)tp->ch.dattr.max_srq_wr
			      : 1024;
	if (tp->srq_max > 16384)
		tp->srq_max = 16384;
	if (tp->srq_max > tp->cq_size / 2)
		tp->srq_max = tp->cq_size / 2;
	sa.attr.max_wr = tp->srq_max;
	sa.attr.max_sge = 1;
	tp->srq = sys->create_srq(tp->dom->pd, &sa);
	if (!tp->srq)
		return verbs_errno();
	if (tp->sq_depth > (uint32_t)tp->ch.dattr.max_qp_wr &&
	    tp->ch.dattr.max_qp_wr > 16)
		tp->sq_depth = (uint32_t)tp->ch.dattr.max_qp_wr;
	return 0;
}

static int open_cm(struct verbs_tp *tp, const struct rxp_tp_attr *attr)
{
	const struct verbs_sys *sys = tp->sys;
	struct sockaddr_storage sa;
	int ret;

	ret = rxp_addr_parse_ip(attr->bind_addr, attr->port, &tp->bind_sa,
				NULL);
	if (ret)
		return ret;
	tp->bind_any = !attr->bind_addr || !*attr->bind_addr ||
		       !strcmp(attr->bind_addr, "0.0.0.0") ||
		       !strcmp(attr->bind_addr, "::");
	tp->ec = sys->create_event_channel();
	if (!tp->ec)
		return verbs_errno();
	ret = set_nonblock(tp->ec->fd);
	if (ret)
		return ret;
	if (sys->create_id(tp->ec, &tp->lid, tp, RDMA_PS_TCP))
		return verbs_errno();
	sa = tp->bind_sa;
	if (sys->bind_addr(tp->lid, (struct sockaddr *)&sa)) {
		ret = verbs_errno();
		rxp_err(VERBS_LOG, "rdma_bind_addr(%s port %u): %s",
			attr->bind_addr ? attr->bind_addr : "any", attr->port,
			strerror(-ret));
		return ret;
	}
	tp->ctx = tp->lid->verbs ? tp->lid->verbs : cm_context(tp);
	if (!tp->ctx || strcmp(tp->ctx->device->name, tp->ch.dev)) {
		rxp_err(VERBS_LOG,
			"rdma_cm binds %s to device %s, but %s was "
			"chosen (check RXP_VERBS_DEVICE)",
			attr->bind_addr ? attr->bind_addr : "any",
			tp->ctx ? tp->ctx->device->name : "none", tp->ch.dev);
		return -RXP_E_NO_DEVICE;
	}
	return verbs_cm_claim(tp->ch.dev);
}

static void close_all(struct verbs_tp *tp);

static int verbs_open(const struct rxp_tp_attr *attr, struct rxp_tp **out)
{
	struct verbs_override o;
	struct verbs_tp *tp;
	char why[1024];
	int ret;

	rxp__log_init();
	if (!attr || !attr->cb || !out)
		return -EINVAL;
	tp = rxp__calloc(1, sizeof(*tp));
	if (!tp)
		return -ENOMEM;
	tp->sys = verbs_sys_get();
	tp->epfd = tp->tfd = -1;
	tp->cb = *attr->cb;
	tp->base.ops = &rxp_verbs_ops;
	tp->base.name = "verbs";
	configure(tp, attr);
	ret = limits_init(tp);
	if (ret) {
		rxp_auth_wipe(&tp->key);
		rxp__free(tp);
		return ret;
	}
	verbs_override_get(attr, &o);
	ret = verbs_choose(tp->sys, attr->bind_addr, &o, &tp->ch, why,
			   sizeof(why));
	if (ret) {
		rxp_info(VERBS_LOG, "%s", why);
		rxp_auth_wipe(&tp->key);
		rxp__free(tp);
		return ret;
	}
	/* rxe (vendor 0xffffff) stalls for good on large READs (seen with
	 * ib_read_bw -s 1M on Debian 6.1); smaller READs are fine */
	tp->read_chunk = env_u32("RXP_VERBS_READ_CHUNK",
				 tp->ch.dattr.vendor_id == 0xffffff
					 ? VERBS_RXE_READ_CHUNK
					 : VERBS_READ_CHUNK,
				 4096, 1u << 30);
	if (tp->ch.max_msg_sz && tp->read_chunk > tp->ch.max_msg_sz)
		tp->read_chunk = tp->ch.max_msg_sz;
	fork_setup(tp->sys);
	ret = dom_new(tp);
	if (ret)
		goto err;
	ret = open_cm(tp, attr);
	if (ret)
		goto err;
	ret = open_device(tp);
	if (ret) {
		rxp_err(VERBS_LOG, "%s: setting up PD/CQ/SRQ failed: %s",
			tp->ch.dev, strerror(-ret));
		goto err;
	}
	if (tp->sys->listen(tp->lid, 128)) {
		ret = verbs_errno();
		rxp_err(VERBS_LOG, "rdma_listen: %s", strerror(-ret));
		goto err;
	}
	tp->epfd = epoll_create1(EPOLL_CLOEXEC);
	tp->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tp->epfd < 0 || tp->tfd < 0) {
		ret = -errno;
		goto err;
	}
	ret = epoll_add(tp->epfd, tp->cc->fd);
	if (!ret)
		ret = epoll_add(tp->epfd, tp->ec->fd);
	if (!ret)
		ret = epoll_add(tp->epfd, tp->dom->efd);
	if (!ret)
		ret = epoll_add(tp->epfd, tp->tfd);
	if (ret)
		goto err;
	format_address(tp);
	rxp_info(VERBS_LOG,
		 "listening on %s via %s (eager %u B, rendezvous "
		 ">= %u B, %u credits)",
		 tp->addr_str, why, tp->eager, tp->rdv_threshold, tp->credits);
	*out = &tp->base;
	return 0;
err:
	close_all(tp);
	return ret;
}

static bool has_zombies(struct verbs_tp *tp)
{
	for (struct verbs_conn *c = tp->conns; c; c = c->next)
		if (c->state == VC_DEAD && !c->graveyard)
			return true;
	return false;
}

static void drain_cq_events(struct verbs_tp *tp)
{
	struct ibv_cq *cq;
	void *ctx;

	/* an event can only be pending if arm() asked for one */
	while (tp->cc && tp->armed &&
	       !tp->sys->get_cq_event(tp->cc, &cq, &ctx)) {
		tp->cq_events++;
		tp->armed = false;
	}
	if (tp->cq_events >= 64) {
		tp->sys->ack_cq_events(tp->cq, tp->cq_events);
		tp->cq_events = 0;
	}
}

static void close_all(struct verbs_tp *tp)
{
	const struct verbs_sys *sys = tp->sys;
	struct verbs_dom *d = tp->dom;
	int64_t end = rxp_now_ns() + (int64_t)VERBS_DRAIN_MS * 1000000;

	for (struct verbs_conn *c = tp->conns; c; c = c->next)
		if (c->state != VC_DEAD)
			verbs_cm_disconnect(&c->base);
	if (tp->lid)
		sys->destroy_id(tp->lid);
	tp->lid = NULL;
	while (tp->cq && has_zombies(tp) && rxp_now_ns() < end) {
		struct epoll_event ev;

		drain_cq_events(tp);
		verbs_cq_poll(tp, VERBS_PROGRESS_BUDGET);
		verbs_cm_progress(tp);
		verbs_flush_dirty(tp);
		verbs_conn_reap(tp, false);
		if (has_zombies(tp) && tp->epfd >= 0)
			epoll_wait(tp->epfd, &ev, 1, 10);
	}
	verbs_deliver_dones(tp);
	verbs_conn_reap(tp, true); /* destroys every QP and cm_id */
	if (tp->srq)
		sys->destroy_srq(tp->srq);
	if (tp->cq) {
		drain_cq_events(tp);
		if (tp->cq_events)
			sys->ack_cq_events(tp->cq, tp->cq_events);
		sys->destroy_cq(tp->cq);
	}
	tp->cq = NULL;
	verbs_conn_reap(tp, true); /* the graveyard, now that no CQE can come */
	if (tp->cc)
		sys->destroy_comp_channel(tp->cc);
	if (tp->ec)
		sys->destroy_event_channel(tp->ec);
	if (d && d->pd)
		verbs_rcache_destroy(tp);
	if (tp->epfd >= 0)
		close(tp->epfd);
	if (tp->tfd >= 0)
		close(tp->tfd);
	rxp__free(tp->ctab);
	if (d) {
		/* buffers still lent out keep the domain (views hold refs) */
		verbs_dom_mu_lock(&d->mu);
		d->closed = true;
		d->returned = NULL;
		verbs_dom_mu_unlock(&d->mu);
		verbs_dom_put(d);
	}
	rxp_auth_wipe(&tp->key);
	rxp__free(tp);
}

static void verbs_close(struct rxp_tp *t)
{
	if (t)
		close_all(to_vtp(t));
}

/* -------------------------------------------------------------- loop */

static int verbs_progress(struct rxp_tp *t)
{
	struct verbs_tp *tp = to_vtp(t);
	int n = 0, ret;
	int64_t now;
	uint64_t v;

	if (tp->failed)
		return tp->fail_err;
	tp->more = false;
	verbs_deliver_dones(tp);
	n += verbs_take_returned(tp);
	drain_cq_events(tp);
	if (tp->nstash) {
		int k = tp->nstash;

		tp->nstash = 0;
		verbs_cq_handle(tp, tp->stash, k);
		n += k;
	}
	ret = verbs_cq_poll(tp, VERBS_PROGRESS_BUDGET);
	if (ret < 0)
		return ret;
	n += ret;
	now = rxp_now_ns();
	/* reading the event channel is a syscall: do it when woken (arm
	 * sets cm_kick), while connections are being set up, or each ms */
	if (tp->cm_kick || tp->ntimed || now >= tp->cm_next) {
		tp->cm_kick = false;
		tp->cm_next = now + 1000000;
		n += verbs_cm_progress(tp);
	}
	verbs_recycle_flush(tp);
	verbs_flush_dirty(tp);
	verbs_deliver_dones(tp);
	if (tp->next_deadline && now >= tp->next_deadline) {
		if (read(tp->tfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			rxp_dbg(VERBS_LOG, "timerfd: %s", strerror(errno));
		verbs_rcache_reap(tp, now);
		if (tp->ntimed)
			verbs_conn_check_timers(tp, now);
		verbs_timers_update(tp);
	}
	verbs_conn_reap(tp, false);
	if (tp->failed)
		return tp->fail_err;
	return n;
}

void verbs_debug_dump(struct rxp_tp *t)
{
	struct verbs_tp *tp = to_vtp(t);
	const struct verbs_stats *st = &tp->stats;

	rxp_info(VERBS_LOG,
		 "%s: srq posted %u alloc %u reserved %u orphans %u "
		 "recycle %d; eager tx %llu rx %llu, rdv tx %llu rx %llu, "
		 "acks %llu, reads %llu, stalls %llu; retired mrs %u "
		 "(%llu MiB, %llu early)",
		 tp->addr_str, tp->srq_posted, tp->srq_alloc, tp->srq_reserved,
		 tp->orphans, tp->recycle != NULL,
		 (unsigned long long)st->eager_tx,
		 (unsigned long long)st->eager_rx,
		 (unsigned long long)st->rdv_tx, (unsigned long long)st->rdv_rx,
		 (unsigned long long)st->acks_tx, (unsigned long long)st->reads,
		 (unsigned long long)st->credit_stalls, tp->rc.nretired,
		 (unsigned long long)(tp->rc.retired_bytes >> 20),
		 (unsigned long long)tp->rc.retired_early);
	for (struct verbs_conn *c = tp->conns; c; c = c->next)
		rxp_info(VERBS_LOG,
			 "  conn %s state %d qpn %u: tx credits %lld "
			 "sent %u peer_freed %u; rx recv %u freed %u sent %u; "
			 "sq %u/%u; ready %d pend %d rdv_tx %u rdvr %u rx ring "
			 "%u ndones %u reads %d",
			 c->peer, c->state, c->qpn, (long long)c->tx_credits,
			 c->tx_data_sent, c->tx_peer_freed, c->rx_data_recv,
			 c->rx_freed, c->rx_freed_sent, verbs_sq_used(c),
			 c->sq_depth, c->ready_head != NULL,
			 c->pend_head != NULL, c->rdv_tx_n, c->rdvr_used,
			 c->rx_tail - c->rx_head, c->ndones,
			 c->read_head != NULL);
}

static int verbs_wait_fd(struct rxp_tp *t)
{
	return to_vtp(t)->epfd;
}

static int verbs_arm(struct rxp_tp *t)
{
	struct verbs_tp *tp = to_vtp(t);
	bool returned;
	int ret, n;

	if (tp->failed || tp->more || tp->nstash || tp->dirty ||
	    tp->done_conns || tp->recycle)
		return 1;
	verbs_dom_mu_lock(&tp->dom->mu);
	returned = tp->dom->returned != NULL;
	verbs_dom_mu_unlock(&tp->dom->mu);
	if (returned)
		return 1;
	tp->cm_kick = true; /* the next progress follows a wake-up */
	if (!tp->armed) {
		ret = tp->sys->req_notify_cq(tp->cq, 0);
		if (ret) {
			rxp_warn(VERBS_LOG, "ibv_req_notify_cq: %s",
				 strerror(ret));
			return 1;
		}
		tp->armed = true;
	}
	/* a completion that arrived before the notify was armed */
	n = tp->sys->poll_cq(tp->cq, VERBS_CQ_BATCH, tp->stash);
	if (n > 0) {
		tp->nstash = n;
		return 1;
	}
	return 0;
}

static int verbs_address(struct rxp_tp *t, char *buf, size_t len)
{
	struct verbs_tp *tp = to_vtp(t);

	if (snprintf(buf, len, "%s", tp->addr_str) >= (int)len)
		return -ENOSPC;
	return 0;
}

static int verbs_mem_register(struct rxp_tp *t, void *ptr, size_t len)
{
	return verbs_rcache_pin(to_vtp(t), ptr, len);
}

static int verbs_mem_unregister(struct rxp_tp *t, void *ptr, size_t len)
{
	return verbs_rcache_unpin(to_vtp(t), ptr, len);
}

const struct rxp_tp_ops rxp_verbs_ops = {
	.name = "verbs",
	.open = verbs_open,
	.close = verbs_close,
	.address = verbs_address,
	.connect = verbs_cm_connect,
	.disconnect = verbs_cm_disconnect,
	.send = verbs_ep_send,
	.progress = verbs_progress,
	.wait_fd = verbs_wait_fd,
	.arm = verbs_arm,
	.mem_register = verbs_mem_register,
	.mem_unregister = verbs_mem_unregister,
};
