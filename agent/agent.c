/* SPDX-License-Identifier: MIT */
/*
 * The agent's life: creation (functions, rendezvous, transport choice,
 * threads), join, shutdown, worker info and memory registration. The
 * polling thread is in poller.c, calls in rpc.c, futures in future.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent_int.h"
#include "netif.h"

/* --------------------------------------------------------- references */

/* The last reference is gone: no other thread can reach @a, so the
 * registry is freed without its lock (which is being destroyed). */
RXP_NO_THREAD_SAFETY_ANALYSIS static void registry_free(struct rxp_agent *a)
{
	for (uint32_t i = 0; i < a->nfns; i++)
		rxp__free(a->fns[i].name);
	rxp__free(a->fns);
}

static void agent_free(struct rxp_agent *a)
{
	const struct rxp__feature *ft;

	rxp__for_each_feature(ft) if (ft->fini) ft->fini(a);
	rxp__calls_returned_free(a);
	rxp__log_drop_id(&a->log_id);
	rxp__mexport_free(a);
	registry_free(a);
	rxp_rwlock_destroy(&a->fn_lock);
	rxp_mutex_destroy(&a->progress_mu);
	rxp__free(a->workers);
	rxp__free(a);
}

void rxp__agent_get(struct rxp_agent *a)
{
	atomic_fetch_add(&a->refs, 1);
}

void rxp__agent_put(struct rxp_agent *a)
{
	if (atomic_fetch_sub(&a->refs, 1) == 1)
		agent_free(a);
}

/* ---------------------------------------------------------- lifecycle */

void rxp_agent_attr_init(struct rxp_agent_attr *attr)
{
	memset(attr, 0, sizeof(*attr));
	attr->size = sizeof(*attr);
	attr->rank = -1;      /* $RANK, else 0 */
	attr->world_size = 0; /* $WORLD_SIZE, else 1 */
	attr->rpc_timeout_ms = RXP_DEFAULT_RPC_TIMEOUT_MS;
	attr->init_timeout_ms = RXP_TIMEOUT_DEFAULT; /* see init_timeout() */
	attr->num_worker_threads = 4;
	attr->poll_us = -1;
}

/* What launchers (torchrun, mpirun wrappers, SLURM scripts) set: $RANK and
 * $WORLD_SIZE fill what the attr leaves unset, strictly parsed. */
static int launcher_env(struct rxp_agent_attr *at)
{
	long v;
	int ret;

	if (at->world_size == 0) {
		ret = rxp_env_int("WORLD_SIZE", 1, 65536, 1, &v);
		if (ret)
			return ret;
		at->world_size = (int)v;
	}
	if (at->rank < 0) {
		ret = rxp_env_int("RANK", 0, 65535, 0, &v);
		if (ret)
			return ret;
		at->rank = (int)v;
	}
	return 0;
}

/* What an init_timeout_ms of RXP_TIMEOUT_DEFAULT means: the launcher's
 * $RXP_RENDEZVOUS_TIMEOUT in whole seconds, strictly parsed, else 60 s. */
static int init_timeout_default(int64_t *ms)
{
	long s;
	int ret = rxp_env_int("RXP_RENDEZVOUS_TIMEOUT", 1, 86400,
			      RXP_DEFAULT_INIT_TIMEOUT_MS / 1000, &s);

	if (ret) {
		rxp_err("agent", "RXP_RENDEZVOUS_TIMEOUT is whole seconds, "
				 "1..86400");
		return ret;
	}
	*ms = (int64_t)s * 1000;
	return 0;
}

static int check_attr(const struct rxp_agent_attr *at)
{
	if (!at->name || !*at->name || strlen(at->name) >= 128) {
		rxp_err("agent", "worker name must be 1..127 bytes");
		return -EINVAL;
	}
	if (at->world_size < 1 || at->world_size > 65536 || at->rank < 0 ||
	    at->rank >= at->world_size) {
		rxp_err("agent", "rank %d / world_size %d out of range",
			at->rank, at->world_size);
		return -EINVAL;
	}
	if (at->nfunctions && !at->functions)
		return -EINVAL;
	if (at->rpc_timeout_ms < RXP_TIMEOUT_NEVER ||
	    at->init_timeout_ms < RXP_TIMEOUT_NEVER ||
	    at->num_worker_threads < 1 || at->num_worker_threads > 1024 ||
	    at->master_port < 0 || at->master_port > 65535) {
		rxp_err("agent", "bad timeout, thread count or port");
		return -EINVAL;
	}
	return 0;
}

/* rank 0's server and the connection to it, or the framework's store;
 * @local_ip: where the data transport binds unless told otherwise */
static int rendezvous_open(struct rxp_agent *a, const struct rxp_agent_attr *at,
			   const struct rxp_auth_key *key, const char *maddr,
			   int port, char *local_ip, size_t iplen)
{
	int ret;

	if (at->store) {
		ret = rxp__rdv_store_open(at->store, at->store_ctx, &a->rdv);
		if (!ret && rxp_route_ip(maddr, local_ip, iplen))
			local_ip[0] = '\0'; /* rxp_addr_plan falls back */
		return ret;
	}
	if (a->rank == 0) {
		ret = rxp__rdv_serve(maddr, port, a->world, key,
				     &a->rdv_server);
		if (ret)
			return ret;
	}
	ret = rxp__rdv_connect(maddr, port, a->init_timeout_ms, key, &a->rdv,
			       local_ip, iplen);
	if (ret) {
		rxp__rdv_server_stop(a->rdv_server);
		a->rdv_server = NULL;
	}
	return ret;
}

/* Where the data transport binds and what it advertises (netif.h has the
 * rules). @route_ip NULL: only when that needs no route (a bind address or
 * RXP_SOCKET_IFNAME given), so that a bad setting fails before the
 * rendezvous waits; 1 then means "needs the route", to ask again. */
static int plan_addr(const struct rxp_agent_attr *at, const char *maddr,
		     const char *route_ip, struct rxp_addr_plan *plan)
{
	const char *bind =
		at->bind_addr ? at->bind_addr : getenv("RXP_BIND_ADDR");
	const char *ifspec = getenv(RXP_NETIF_VAR);

	if (!route_ip && !(bind && *bind && !rxp_ip_is_any(bind)) &&
	    !(ifspec && *ifspec))
		return 1;
	return rxp_addr_plan_host(bind, ifspec, maddr, route_ip, plan);
}

static int start_transport(struct rxp_agent *a, const struct rxp_agent_attr *at,
			   const struct rxp_auth_key *key,
			   const struct rxp_addr_plan *plan, char *addr,
			   size_t addrlen)
{
	const char *want =
		at->transport ? at->transport : getenv("RXP_TRANSPORT");
	struct rxp_tp_attr ta = {0};
	char tp_addr[128];
	int ret;

	rxp_info("agent", "data transport binds %s, advertises %s%s%s (%s)",
		 plan->bind, plan->advertise, *plan->ifname ? " on " : "",
		 plan->ifname, plan->why);
	/* the device that serves the address peers use */
	ret = rxp_tp_select(want, plan->advertise, &a->tpc);
	if (ret)
		return ret;
	a->ops = &a->tpc.ops;
	rxp__poller_callbacks(a);
	ta.bind_addr = plan->bind;
	ta.local_id = (uint32_t)at->rank;
	ta.cb = &a->cb;
	ta.port_num = -1;
	ta.gid_index = -1;
	ta.key = key;
	ta.world_size = (uint32_t)a->world;
	ta.inner = rxp_tp_choice_inner(&a->tpc);
	ret = a->ops->open(&ta, &a->tp);
	if (ret) {
		rxp_err("agent", "cannot open transport %s on %s: %s",
			a->ops->name, plan->bind, rxp_strerror(ret));
		return ret;
	}
	ret = a->ops->address(a->tp, tp_addr, sizeof(tp_addr));
	if (!ret) /* never a wildcard: peers connect to it */
		ret = rxp_addr_advertise(tp_addr, plan->advertise, addr,
					 addrlen);
	if (ret) {
		a->ops->close(a->tp);
		a->tp = NULL;
	}
	return ret;
}

/* Each feature claims its internal message types and sets up its state. */
static int features_init(struct rxp_agent *a)
{
	const struct rxp__feature *ft;

	rxp__for_each_feature(ft)
	{
		int ret;

		for (unsigned t = ft->msg_first;
		     ft->on_msg && t <= ft->msg_last; t++) {
			if (t >= RXP_MSG_USER || a->msg_feat[t])
				return -EINVAL; /* a build error, not input */
			a->msg_feat[t] = ft;
		}
		ret = ft->init ? ft->init(a) : 0;
		if (ret)
			return ret;
	}
	return 0;
}

/* The progress lock's tables, made before the polling thread starts (and
 * freed if it never did): no other thread can take the lock yet. */
static int tables_init(struct rxp_agent *a)
{
	int ret = rxp__slots_init(&a->pending, 1024);

	if (ret)
		return ret;
	ret = rxp__slots_init(&a->conns, 64);
	if (ret)
		rxp__slots_fini(&a->pending);
	return ret;
}

/* Create's error path, or shutdown with the lock held */
static void tables_fini(struct rxp_agent *a)
{
	rxp__slots_fini(&a->conns);
	rxp__slots_fini(&a->pending);
}

_Static_assert(sizeof(((struct rxp__worker *)0)->name) ==
			       sizeof(((struct rxp__rdv_peer *)0)->name) &&
		       sizeof(((struct rxp__worker *)0)->addr) ==
			       sizeof(((struct rxp__rdv_peer *)0)->addr),
	       "worker and rendezvous peer names have one size");

/* Rendezvous: learn every worker's name and transport address. */
static int exchange(struct rxp_agent *a, const char *addr, int64_t timeout_ms)
{
	struct rxp__rdv_peer *peers =
		rxp__calloc((size_t)a->world, sizeof(*peers));
	int ret;

	if (!peers)
		return -ENOMEM;
	rxp_dbg("agent",
		"rendezvous: telling rank 0 this worker's %s address %s, "
		"waiting for all %d workers",
		a->tpc.wire_name, addr, a->world);
	ret = rxp__rdv_exchange(a->rdv, a->rank, a->world, a->name, addr,
				a->tpc.wire_name, peers, timeout_ms);
	if (!ret)
		rxp_dbg("agent", "rendezvous: the world of %d is known",
			a->world);
	for (int i = 0; !ret && i < a->world; i++) {
		struct rxp__worker *w = &a->workers[i];

		memcpy(w->name, peers[i].name, sizeof(w->name));
		memcpy(w->addr, peers[i].addr, sizeof(w->addr));
		w->rank = peers[i].rank;
		/* a large world: the first ones tell the story */
		if (i < 16 || i == a->world - 1)
			rxp_dbg("agent", "rendezvous: worker %d is '%s' at %s",
				i, w->name, w->addr);
	}
	rxp__free(peers);
	return ret;
}

int rxp_agent_create(const struct rxp_agent_attr *at, struct rxp_agent **out)
{
	const char *maddr;
	char local_ip[RXP_NETIF_IPLEN], addr[128];
	struct rxp_addr_plan plan;
	struct rxp_auth_key key;
	struct rxp_agent_attr eff;
	const struct rxp_log_id *prev_id;
	struct rxp_agent *a;
	int port, ret, need_route;
	int64_t ns, init_def = RXP_DEFAULT_INIT_TIMEOUT_MS;
	long grace_ms, max_calls, max_resps;
	struct rxp__pool_limits pool_lim;

	if (!at || !out)
		return -EINVAL;
	rxp__log_init();
	rxp_agent_attr_init(&eff);
	ret = rxp_struct_in(&eff, sizeof(eff), at, 0);
	if (ret) {
		rxp_err("agent", "%s",
			ret == -E2BIG
				? "attr sets fields this rxp does not know "
				  "(built against a newer rxp.h?)"
				: "attr not initialised: call "
				  "rxp_agent_attr_init first");
		return ret;
	}
	ret = launcher_env(&eff);
	if (ret)
		return ret;
	at = &eff;
	ret = check_attr(at);
	if (ret)
		return ret;
	if (at->init_timeout_ms == RXP_TIMEOUT_DEFAULT) {
		ret = init_timeout_default(&init_def);
		if (ret)
			return ret;
	}
	maddr = at->master_addr ? at->master_addr : getenv("MASTER_ADDR");
	if (!maddr || !*maddr)
		maddr = "127.0.0.1";
	/* with a store, no port of rxp's own */
	port = at->master_port;
	if (!at->store && !port) {
		long p;

		ret = rxp_env_int("MASTER_PORT", 1, 65535, 29500, &p);
		if (ret)
			return ret;
		port = (int)p;
	}
	ret = rxp_env_int("RXP_SEND_GRACE_MS", 0, 3600000, 1000, &grace_ms);
	if (!ret)
		ret = rxp_env_int("RXP_MAX_QUEUED_CALLS", 1, UINT32_MAX / 2,
				  65536, &max_calls);
	if (!ret)
		ret = rxp_env_int("RXP_MAX_QUEUED_RESPONSES", 1, UINT32_MAX / 2,
				  65536, &max_resps);
	if (!ret)
		ret = rxp__pool_limits_env(&pool_lim);
	if (ret)
		return ret;
	need_route = plan_addr(at, maddr, NULL, &plan);
	if (need_route < 0)
		return need_route;

	/* before anything waits on the network: a bad secret fails at once */
	ret = rxp_auth_load(at->secret, at->secret_len, &key);
	if (ret)
		return ret;
	a = rxp__calloc(1, sizeof(*a));
	if (!a) {
		rxp_auth_wipe(&key);
		return -ENOMEM;
	}
	atomic_init(&a->refs, 1);
	a->wake_fd = -1;
	snprintf(a->name, sizeof(a->name), "%s", at->name);
	a->rank = at->rank;
	a->world = at->world_size;
	/* from here on this thread's lines name this worker, and so do
	 * other threads' until an agent created before it does */
	a->log_id.rank = a->rank;
	memcpy(a->log_id.name, a->name, sizeof(a->log_id.name));
	prev_id = rxp__log_thread_id(&a->log_id);
	rxp__log_offer_id(&a->log_id);
	/* both checked by check_attr, so these cannot fail */
	rxp_timeout_ns(at->rpc_timeout_ms, RXP_DEFAULT_RPC_TIMEOUT_MS * 1000000,
		       &a->rpc_timeout_ns);
	rxp_timeout_ns(at->init_timeout_ms, init_def * 1000000, &ns);
	a->init_timeout_ms = ns ? (ns + 999999) / 1000000 : 0;
	a->send_grace_ns = (int64_t)grace_ms * 1000000;
	a->max_queued_calls = (uint32_t)max_calls;
	a->max_queued_resps = (uint32_t)max_resps;
	a->poll_us = at->poll_us >= 0 ? at->poll_us
				      : (int)rxp_env_long("RXP_POLL_US", 0);
	rxp_rwlock_init(&a->fn_lock);
	rxp_mutex_init(&a->join_mu);
	rxp_mutex_init(&a->progress_mu);
	rxp_agent_set_handler(a, at->handler, at->handler_user);
	ret = rxp__mexport_config(a);
	if (ret)
		goto err_free;
	ret = features_init(a);
	if (ret)
		goto err_free;
	a->workers = rxp__calloc((size_t)a->world, sizeof(*a->workers));
	if (!a->workers) {
		ret = -ENOMEM;
		goto err_free;
	}
	for (uint32_t i = 0; i < at->nfunctions; i++) {
		const struct rxp_fn_def *d = &at->functions[i];

		ret = rxp_agent_register(a, d->qualname, d->fn, d->flags,
					 d->user);
		if (ret) {
			rxp_err("agent",
				"cannot register function %u ('%s'): %s", i,
				d->qualname ? d->qualname : "(null)",
				rxp_strerror(ret));
			goto err_free;
		}
	}
	ret = rendezvous_open(a, at, &key, maddr, port, local_ip,
			      sizeof(local_ip));
	if (ret)
		goto err_free;
	if (need_route) /* the default: the address that reaches rank 0 */
		ret = plan_addr(at, maddr, local_ip, &plan);
	if (!ret)
		ret = start_transport(a, at, &key, &plan, addr, sizeof(addr));
	rxp_auth_wipe(&key); /* the transport keeps its own copy */
	if (ret)
		goto err_rdv;
	ret = exchange(a, addr, a->init_timeout_ms);
	if (ret)
		goto err_tp;
	ret = tables_init(a);
	if (ret)
		goto err_tp;
	a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->wake_fd < 0) {
		ret = -errno;
		goto err_conns;
	}
	ret = rxp__pool_start(&a->pool, at->num_worker_threads,
			      (uint32_t)a->world, &pool_lim, &a->log_id);
	if (ret)
		goto err_wake;
	ret = -pthread_create(&a->poller, NULL, rxp__poller_main, a);
	if (ret)
		goto err_pool;
	rxp__mexport_first(a);
	rxp_info("agent", "worker '%s' rank %d/%d up on %s %s (poll %d us)",
		 a->name, a->rank, a->world, a->tp->name, addr, a->poll_us);
	*out = a;
	rxp__log_thread_id(prev_id);
	return 0;

err_pool:
	rxp__pool_stop(&a->pool);
err_wake:
	close(a->wake_fd);
err_conns:
	tables_fini(a);
err_tp:
	a->ops->close(a->tp);
err_rdv:
	rxp__rdv_close(a->rdv);
	rxp__rdv_server_stop(a->rdv_server);
err_free:
	rxp_auth_wipe(&key);
	agent_free(a);
	rxp__log_thread_id(prev_id);
	return ret;
}

void rxp_agent_shutdown(struct rxp_agent *a)
{
	const struct rxp_log_id *prev_id;

	if (!a)
		return;
	if (rxp__on_poller(a) || rxp__pool_is_worker(&a->pool)) {
		rxp_err("agent", "rxp_agent_shutdown called from an agent "
				 "thread: refused");
		return;
	}
	prev_id = rxp__log_thread_id(&a->log_id);
	/* the last snapshot, while the transport's counters are there */
	rxp__mexport_close(a);
	atomic_store(&a->stopping, true);
	{
		uint64_t one = 1;

		if (write(a->wake_fd, &one, sizeof(one)) < 0)
			rxp_warn("agent", "wake: %s", strerror(errno));
	}
	pthread_join(a->poller, NULL);
	{
		const struct rxp__feature *ft;

		rxp__for_each_feature(ft) if (ft->stop) ft->stop(a);
	}
	/* runs what is queued: calls complete into the closed gate */
	rxp__pool_stop(&a->pool);
	/* the poller is gone and the gate closed: no one else takes the
	 * lock now, but the tables are its, so free them under it */
	rxp__progress_lock(&a->progress_mu);
	rxp__call_cache_flush(a);
	rxp__heap_fini(&a->deadlines);
	tables_fini(a);
	rxp__progress_unlock(&a->progress_mu);
	close(a->wake_fd);
	rxp__rdv_close(a->rdv);
	rxp__rdv_server_stop(a->rdv_server);
	rxp_mutex_destroy(&a->join_mu);
	/* other threads' lines no longer name it */
	rxp__log_drop_id(&a->log_id);
	rxp__log_thread_id(prev_id);
	rxp__agent_put(a);
}

int rxp_agent_join(struct rxp_agent *a, int64_t timeout_ms)
{
	int64_t deadline, ns;
	int ret;

	if (!a || rxp_timeout_ns(timeout_ms, a->init_timeout_ms * 1000000, &ns))
		return -EINVAL;
	deadline = ns ? rxp_now_ns() + ns : 0;
	if (atomic_load(&a->stopped))
		return -RXP_E_SHUTDOWN;
	while (atomic_load(&a->client_active) > 0) {
		if (deadline && rxp_now_ns() > deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
	rxp_mutex_lock(&a->join_mu);
	rxp_dbg("agent", "join: no call of ours is pending; waiting for the "
			 "other workers at the barrier");
	ret = rxp__rdv_barrier(
		a->rdv, deadline ? (deadline - rxp_now_ns()) / 1000000 + 1 : 0);
	rxp_mutex_unlock(&a->join_mu);
	rxp_log(ret ? RXP_LOG_WARN : RXP_LOG_DEBUG, "agent", "join: %s",
		ret ? rxp_strerror(ret) : "every worker is there");
	return ret;
}

/* -------------------------------------------------------- worker info */

int rxp_agent_worker_count(const struct rxp_agent *a)
{
	return a ? a->world : -EINVAL;
}

int rxp_agent_worker_by_id(const struct rxp_agent *a, int id,
			   struct rxp_worker_info *out)
{
	if (!a || !out)
		return -EINVAL;
	if (id < 0 || id >= a->world)
		return -RXP_E_NO_WORKER;
	out->name = a->workers[id].name;
	out->id = id;
	return 0;
}

int rxp_agent_worker_by_name(const struct rxp_agent *a, const char *name,
			     struct rxp_worker_info *out)
{
	int id = a && name ? rxp__worker_id(a, name) : -EINVAL;

	return id < 0 ? id : rxp_agent_worker_by_id(a, id, out);
}

int rxp_agent_self(const struct rxp_agent *a, struct rxp_worker_info *out)
{
	return rxp_agent_worker_by_id(a, a ? a->rank : 0, out);
}

int rxp__worker_id(const struct rxp_agent *a, const char *name)
{
	for (int i = 0; i < a->world; i++)
		if (!strcmp(a->workers[i].name, name))
			return i;
	return -RXP_E_NO_WORKER;
}

const char *rxp_agent_transport(const struct rxp_agent *a)
{
	return a && a->tp ? a->tp->name : (a && a->ops ? a->ops->name : "none");
}

/* ------------------------------------------------- memory registration */

static int mem_ctrl(struct rxp_agent *a, int op, void *ptr, size_t len)
{
	struct rxp_future *f;
	int ret;

	if (!a || (!ptr && len))
		return -EINVAL;
	if (!a->tpc.caches_mem)
		return 0; /* nothing to cache on this transport */
	if (rxp__on_poller(a))
		return -EDEADLK;
	f = rxp__future_new(a, RXP__FUT_CTRL);
	if (!f)
		return -ENOMEM;
	f->ctrl_op = op;
	f->ctrl_ptr = ptr;
	f->ctrl_len = len;
	ret = rxp__submit_future(a, f);
	if (ret) {
		rxp__future_put(f);
		rxp__future_put(f);
		return ret;
	}
	ret = rxp_future_wait(f);
	rxp__future_put(f);
	return ret;
}

int rxp_mem_register(struct rxp_agent *a, void *ptr, size_t len)
{
	return mem_ctrl(a, 1, ptr, len);
}

int rxp_mem_unregister(struct rxp_agent *a, void *ptr, size_t len)
{
	return mem_ctrl(a, 2, ptr, len);
}
