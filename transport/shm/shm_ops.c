/* SPDX-License-Identifier: MIT */
/*
 * struct rxp_tp_ops rxp_shm_ops: listening, connecting, the hand-shake,
 * connection failure, progress and sleep (docs/shm.md).
 *
 * Environment:
 *   RXP_SHM_RING_SIZE=n   bytes per direction (power of two, 64 KiB ..
 *                         64 MiB; 1 MiB)
 *   RXP_SHM_CMA_MIN=n     storages of at least n bytes go by address when
 *                         the peer can read ours (65536)
 *   RXP_SHM_CMA=0         never by address (as when the kernel refuses)
 *   RXP_SHM_HS_TIMEOUT_MS hand-shake deadline (10000)
 *   RXP_MAX_RX_MEMORY=n   receive budget, as tcp (physical memory)
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "shm.h"

#define SHM_MAX_UNAUTH 64 /* accepted connections in their hand-shake */
#define SHM_ADDR_PREFIX "shm:"

/* ------------------------------------------------------- addresses */

/* "shm:<name>" -> an abstract socket address; -EINVAL if malformed. */
static int addr_parse(const char *addr, struct sockaddr_un *sa, socklen_t *len)
{
	const char *name;
	size_t n;

	if (!addr || strncmp(addr, SHM_ADDR_PREFIX, 4))
		return -EINVAL;
	name = addr + 4;
	n = strlen(name);
	if (n == 0 || n + 1 > sizeof(sa->sun_path))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
		      ch == '_'))
			return -EINVAL;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, name, n); /* sun_path[0] = 0: abstract */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	return 0;
}

static pid_t peer_pid(int sock)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len))
		return -1;
	return cr.pid;
}

/* ------------------------------------------------------ connections */

static void conn_free(struct shm_conn *c)
{
	if (c->map)
		munmap(c->map, c->map_len);
	rxp__free(c->rx_st.desc_raw);
	rxp__free(c->rx_st.bufs);
	rxp__free(c);
}

static int conn_new(struct shm_tp *tp, int sock, bool outgoing,
		    struct shm_conn **out)
{
	struct shm_conn *c = rxp__calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->rx_st.desc_raw =
		rxp__malloc((size_t)SHM_DESC_SIZE * RXP_WIRE_MAX_STORAGES);
	c->rx_st.bufs = rxp__calloc(RXP_WIRE_MAX_STORAGES + 1,
				    sizeof(struct rxp_buf *));
	if (!c->rx_st.desc_raw || !c->rx_st.bufs) {
		conn_free(c);
		return -ENOMEM;
	}
	c->base.tp = &tp->base;
	c->base.outgoing = outgoing;
	c->tp = tp;
	c->sock = sock;
	c->ev = (struct shm_ev){SHM_EV_SOCK, c};
	c->state = SC_HS;
	c->deadline = rxp_now_ns() + tp->hs_timeout_ns;
	if (sock >= 0) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
					 .data.ptr = &c->ev};

		if (epoll_ctl(tp->epfd, EPOLL_CTL_ADD, sock, &ev)) {
			int err = -errno;

			conn_free(c);
			return err;
		}
	}
	c->next = tp->conns;
	tp->conns = c;
	tp->nhs++;
	*out = c;
	return 0;
}

static void close_sock(struct shm_conn *c)
{
	if (c->sock < 0)
		return;
	epoll_ctl(c->tp->epfd, EPOLL_CTL_DEL, c->sock, NULL);
	close(c->sock);
	c->sock = -1;
}

/*
 * Fail @c: the socket goes (the peer sees the hang-up), every send gets
 * its on_send, then on_conn once, if the agent knows the connection. The
 * memory is freed at the end of progress (or close), never under a
 * callback that may still hold @c.
 */
static void conn_fail(struct shm_conn *c, int err)
{
	struct shm_tp *tp = c->tp;

	if (c->state == SC_DEAD)
		return;
	rxp_dbg(SHM_LOG, "%s: connection closed: %s", c->peer_str,
		rxp_strerror(err));
	if (c->state == SC_HS || c->state == SC_REFUSED)
		tp->nhs--;
	if (!c->base.outgoing && !c->announced && err != -RXP_E_AUTH)
		rxp_tp_count(&tp->base.conns_prehs_failed, 1);
	c->state = SC_DEAD;
	c->err = err;
	if (c->map)
		shm_ring_close_tx(&c->tx); /* before storages may be freed */
	close_sock(c);
	if (!c->rx_st.delivering)
		shm_rx_reset(c);
	shm_tx_fail_all(c, err);
	if (c->base.outgoing || c->announced)
		tp->cb.on_conn(tp->cb.ctx, &c->base, err);
}

static void sweep(struct shm_tp *tp)
{
	struct shm_conn **pp = &tp->conns, *c;

	while ((c = *pp)) {
		if (c->state == SC_DEAD) {
			*pp = c->next;
			conn_free(c);
		} else {
			pp = &c->next;
		}
	}
}

static void conn_open(struct shm_conn *c)
{
	struct shm_tp *tp = c->tp;

	c->state = SC_OPEN;
	tp->nhs--;
	if (!c->i_read_peer && !tp->cma_off)
		rxp_info(SHM_LOG,
			 "%s (worker %u): cannot read its memory "
			 "(process_vm_readv refused: Yama ptrace_scope, or "
			 "another user or container?); its storages come "
			 "through the ring",
			 c->peer_str, c->base.peer_id);
	rxp_dbg(SHM_LOG,
		"%s (worker %u): open, %llu-byte rings, by address: "
		"%s out, %s in",
		c->peer_str, c->base.peer_id, (unsigned long long)c->tx.cap,
		c->peer_reads_me ? "yes" : "no", c->i_read_peer ? "yes" : "no");
	if (!c->base.outgoing)
		rxp_info(SHM_LOG,
			 "accepted a connection from worker %u (pid %d)",
			 c->base.peer_id, (int)c->peer_pid);
	shm_tx_check_queued(c);
	c->announced = true;
	tp->cb.on_conn(tp->cb.ctx, &c->base, 0);
}

/* ------------------------------------------------------- hand-shake */

static void hello_fill(const struct shm_tp *tp, struct shm_hello *h,
		       uint16_t kind)
{
	memset(h, 0, sizeof(*h));
	h->kind = kind;
	h->worker_id = tp->local_id;
	h->world_size = tp->world_size;
	h->max_storages = RXP_WIRE_MAX_STORAGES;
	h->max_payload = tp->max_payload;
	h->max_storage = tp->max_storage;
	h->features = tp->key.on ? SHM_F_AUTH : 0;
	h->probe_addr = (uint64_t)(uintptr_t)&tp->probe_val;
	h->probe_val = tp->probe_val;
	if (tp->key.on)
		rxp_auth_nonce(h->nonce, sizeof(h->nonce));
}

static int map_rings(struct shm_conn *c, int fd, uint64_t cap, bool connector)
{
	void *m;

	c->map_len = shm_map_bytes(cap);
	m = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	c->map = m;
	shm_ring_view(&c->tx, m, cap, connector ? 0 : 1);
	shm_ring_view(&c->rx, m, cap, connector ? 1 : 0);
	return 0;
}

/* May we read the peer's memory? Its hello says where its probe word is. */
static void probe_peer(struct shm_conn *c, const struct shm_hello *h)
{
	c->i_read_peer =
		!c->tp->cma_off &&
		shm_cma_probe(c->peer_pid, h->probe_addr, h->probe_val);
}

static int peer_limits(struct shm_conn *c, const struct shm_hello *h)
{
	struct shm_tp *tp = c->tp;

	if (!!(h->features & SHM_F_AUTH) != tp->key.on) {
		rxp_warn(SHM_LOG, "%s: %s", c->peer_str,
			 tp->key.on ? "peer did not authenticate"
				    : "peer wants a job secret we do not have");
		return -RXP_E_AUTH;
	}
	if (tp->world_size && h->world_size &&
	    h->world_size != tp->world_size) {
		rxp_warn(SHM_LOG, "%s: world size %u, ours %u", c->peer_str,
			 h->world_size, tp->world_size);
		return -RXP_E_PROTO;
	}
	c->peer_max_payload = h->max_payload;
	c->peer_max_storage = h->max_storage;
	c->peer_max_storages = h->max_storages;
	return 0;
}

/* Acceptor: the HELLO, with the connector's memfd. */
static int got_hello(struct shm_conn *c, const uint8_t *b, ssize_t n, int fd)
{
	struct shm_tp *tp = c->tp;
	struct shm_hello h, w;
	uint8_t out[SHM_HS_MAX];
	size_t olen = SHM_HELLO_SIZE;
	int err;

	if (n != SHM_HELLO_SIZE || fd < 0)
		return -RXP_E_PROTO;
	err = shm_hello_decode(b, &h);
	if (err || h.kind != SHM_HS_HELLO)
		return err ? err : -RXP_E_PROTO;
	if (h.ring_cap < SHM_RING_MIN || h.ring_cap > SHM_RING_MAX ||
	    (h.ring_cap & (h.ring_cap - 1)))
		return -RXP_E_PROTO;
	err = peer_limits(c, &h);
	if (err)
		return err;
	err = shm_memfd_check(fd, shm_map_bytes(h.ring_cap));
	if (!err)
		err = map_rings(c, fd, h.ring_cap, false);
	if (err)
		return err;
	c->base.peer_id = h.worker_id;
	probe_peer(c, &h);
	memcpy(c->hello, b, SHM_HELLO_SIZE);
	hello_fill(tp, &w, SHM_HS_WELCOME);
	w.can_read_you = c->i_read_peer;
	shm_hello_encode(out, &w);
	memcpy(c->welcome, out, SHM_HELLO_SIZE);
	if (tp->key.on) {
		rxp_auth_mac(&tp->key, SHM_LABEL_ACCEPTOR, c->hello,
			     SHM_HELLO_SIZE, c->welcome, SHM_HELLO_SIZE,
			     out + SHM_HELLO_SIZE);
		olen += RXP_AUTH_MAC_BYTES;
	}
	return shm_msg_send(c->sock, out, olen, -1);
}

static size_t hs_len(const struct shm_tp *tp)
{
	return SHM_HELLO_SIZE + (tp->key.on ? RXP_AUTH_MAC_BYTES : 0);
}

/*
 * A WELCOME or READY of @kind: its size, its hello and, with a job
 * secret, the proof after it: the HMAC under @label of our HELLO and
 * @welcome (the WELCOME's hello, which is @b itself for a WELCOME).
 */
static int hs_check(struct shm_conn *c, const uint8_t *b, ssize_t n,
		    uint16_t kind, const char *label, const uint8_t *welcome,
		    struct shm_hello *h)
{
	struct shm_tp *tp = c->tp;
	int err;

	if ((size_t)n != hs_len(tp))
		return tp->key.on ? -RXP_E_AUTH : -RXP_E_PROTO;
	err = shm_hello_decode(b, h);
	if (err || h->kind != kind)
		return err ? err : -RXP_E_PROTO;
	if (tp->key.on &&
	    rxp_auth_verify(&tp->key, label, c->hello, SHM_HELLO_SIZE, welcome,
			    SHM_HELLO_SIZE, b + SHM_HELLO_SIZE)) {
		rxp_warn(SHM_LOG, "%s: refused: wrong proof of the job secret",
			 c->peer_str);
		rxp_tp_count(&tp->base.auth_refused, 1);
		return -RXP_E_AUTH;
	}
	return 0;
}

/* Connector: the WELCOME; answer READY and open. */
static int got_welcome(struct shm_conn *c, const uint8_t *b, ssize_t n)
{
	struct shm_tp *tp = c->tp;
	struct shm_hello h, r;
	uint8_t out[SHM_HS_MAX];
	int err;

	err = hs_check(c, b, n, SHM_HS_WELCOME, SHM_LABEL_ACCEPTOR, b, &h);
	if (!err)
		err = peer_limits(c, &h);
	if (err)
		return err;
	c->peer_reads_me = h.can_read_you;
	probe_peer(c, &h);
	memcpy(c->welcome, b, SHM_HELLO_SIZE);
	hello_fill(tp, &r, SHM_HS_READY);
	r.can_read_you = c->i_read_peer;
	shm_hello_encode(out, &r);
	if (tp->key.on)
		rxp_auth_mac(&tp->key, SHM_LABEL_CONNECTOR, c->hello,
			     SHM_HELLO_SIZE, c->welcome, SHM_HELLO_SIZE,
			     out + SHM_HELLO_SIZE);
	err = shm_msg_send(c->sock, out, hs_len(tp), -1);
	if (err)
		return err;
	conn_open(c);
	return 0;
}

/* Acceptor: the READY; check the proof and open. */
static int got_ready(struct shm_conn *c, const uint8_t *b, ssize_t n)
{
	struct shm_hello h;
	int err = hs_check(c, b, n, SHM_HS_READY, SHM_LABEL_CONNECTOR,
			   c->welcome, &h);

	if (err)
		return err;
	c->peer_reads_me = h.can_read_you;
	conn_open(c);
	return 0;
}

static int hs_message(struct shm_conn *c, const uint8_t *b, ssize_t n, int fd)
{
	int err;

	if (!c->base.outgoing && !c->map) {
		err = got_hello(c, b, n, fd);
		if (fd >= 0)
			close(fd); /* mapped (or refused): not needed */
		return err;
	}
	if (fd >= 0) { /* only the HELLO carries one */
		close(fd);
		return -RXP_E_PROTO;
	}
	return c->base.outgoing ? got_welcome(c, b, n) : got_ready(c, b, n);
}

/* The socket is readable: hand-shake messages, doorbells, or hang-up. */
static int sock_events(struct shm_conn *c, unsigned *did)
{
	uint8_t b[SHM_HS_MAX];

	while (c->state == SC_HS || c->state == SC_OPEN) {
		int fd = -1, err;
		ssize_t n = shm_msg_recv(c->sock, b, sizeof(b), &fd);

		if (n == -EAGAIN)
			return 0;
		*did += 1;
		if (n <= 0) {
			/* hang-up: what the peer wrote before it still counts
			 */
			if (c->state == SC_OPEN) {
				err = shm_rx_pull(c, did);
				if (err)
					return err;
			}
			return n == 0 || n == -ECONNRESET ? -RXP_E_PEER_LOST
							  : (int)n;
		}
		if (c->state == SC_HS) {
			err = hs_message(c, b, n, fd);
			if (err)
				return err;
		} else if (fd >= 0) { /* a doorbell carries no fd */
			close(fd);
			return -RXP_E_PROTO;
		}
	}
	return 0;
}

/* -------------------------------------------------------- listening */

static void accept_all(struct shm_tp *tp, unsigned *did)
{
	for (;;) {
		struct shm_conn *c;
		int fd = accept4(tp->lfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				rxp_tp_count(&tp->base.accept_pauses, 1);
			return;
		}
		*did += 1;
		if (tp->nhs >= SHM_MAX_UNAUTH || conn_new(tp, fd, false, &c)) {
			rxp_tp_count(&tp->base.conns_limited, 1);
			close(fd);
			continue;
		}
		c->peer_pid = peer_pid(fd);
		snprintf(c->peer_str, sizeof(c->peer_str), "shm peer pid %d",
			 (int)c->peer_pid);
	}
}

static int tp_listen(struct shm_tp *tp)
{
	struct sockaddr_un sa;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tp->lev};
	uint32_t rnd;
	socklen_t len;
	int err;

	rxp_auth_nonce(&rnd, sizeof(rnd));
	snprintf(tp->addr_str, sizeof(tp->addr_str),
		 SHM_ADDR_PREFIX "rxp.%d.%08x", (int)getpid(), rnd);
	err = addr_parse(tp->addr_str, &sa, &len);
	if (err)
		return err;
	tp->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC,
			 0);
	if (tp->lfd < 0)
		return -errno;
	if (bind(tp->lfd, (struct sockaddr *)&sa, len) ||
	    listen(tp->lfd, 512) ||
	    epoll_ctl(tp->epfd, EPOLL_CTL_ADD, tp->lfd, &ev))
		return -errno;
	return 0;
}

/* ----------------------------------------------------- deadlines */

/* A timerfd in the wait set, so that a hand-shake deadline passes also
 * while the poller sleeps: a silent peer must not hold its slot (of
 * SHM_MAX_UNAUTH) until someone else wakes us. */
static int timer_init(struct shm_tp *tp)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tp->tev};

	tp->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tp->tfd < 0 || epoll_ctl(tp->epfd, EPOLL_CTL_ADD, tp->tfd, &ev))
		return -errno;
	return 0;
}

/* Before sleeping: the timer fires at the earliest hand-shake deadline
 * (only when one is in progress: no syscall otherwise). */
static void timer_arm(struct shm_tp *tp)
{
	struct itimerspec its = {{0, 0}, {0, 0}};
	int64_t first = INT64_MAX;

	if (!tp->nhs)
		return;
	for (struct shm_conn *c = tp->conns; c; c = c->next)
		if (c->state == SC_HS && c->deadline < first)
			first = c->deadline;
	if (first == INT64_MAX)
		return;
	first += 1000000; /* past it, so that progress sees it passed */
	its.it_value.tv_sec = first / 1000000000;
	its.it_value.tv_nsec = first % 1000000000;
	timerfd_settime(tp->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ------------------------------------------------------------- ops */

static int env_settings(struct shm_tp *tp)
{
	long ring, cma_min, tmo, rxmem;
	int err;

	err = rxp_env_int("RXP_SHM_RING_SIZE", SHM_RING_MIN, SHM_RING_MAX,
			  SHM_RING_DEFAULT, &ring);
	if (!err && (ring & (ring - 1))) {
		rxp_err(SHM_LOG, "RXP_SHM_RING_SIZE=%ld is not a power of two",
			ring);
		err = -EINVAL;
	}
	if (!err)
		err = rxp_env_int("RXP_SHM_CMA_MIN", 1, LONG_MAX,
				  SHM_CMA_DEFAULT, &cma_min);
	if (!err)
		err = rxp_env_int("RXP_SHM_HS_TIMEOUT_MS", 1, 86400000, 10000,
				  &tmo);
	if (!err)
		err = rxp_env_int("RXP_MAX_RX_MEMORY", 1, LONG_MAX,
				  (long)rxp_phys_mem(), &rxmem);
	if (err)
		return err;
	tp->ring_cap = (uint64_t)ring;
	tp->cma_min = (uint64_t)cma_min;
	tp->cma_off = !rxp_env_bool("RXP_SHM_CMA", 1);
	tp->hs_timeout_ns = (int64_t)tmo * 1000000;
	tp->rx_mem_max = (uint64_t)rxmem;
	return 0;
}

static void shm_op_close(struct rxp_tp *rtp);

static int shm_op_open(const struct rxp_tp_attr *attr, struct rxp_tp **out)
{
	struct shm_tp *tp;
	int err;

	rxp__log_init();
	if (!attr || !out || !attr->cb || !attr->cb->on_conn ||
	    !attr->cb->on_recv || !attr->cb->on_send)
		return -EINVAL;
	tp = rxp__calloc(1, sizeof(*tp));
	if (!tp)
		return -ENOMEM;
	tp->base.ops = &rxp_shm_ops;
	tp->base.name = "shm";
	tp->cb = *attr->cb;
	tp->local_id = attr->local_id;
	tp->world_size = attr->world_size;
	if (attr->key)
		tp->key = *attr->key;
	tp->max_payload = attr->max_payload ? attr->max_payload
					    : RXP_WIRE_DEFAULT_MAX_PAYLOAD;
	tp->max_storage = attr->max_storage ? attr->max_storage
					    : RXP_WIRE_DEFAULT_MAX_STORAGE;
	tp->lfd = -1;
	tp->tfd = -1;
	tp->lev = (struct shm_ev){SHM_EV_LISTEN, NULL};
	tp->tev = (struct shm_ev){SHM_EV_TIMER, NULL};
	rxp_auth_nonce(&tp->probe_val, sizeof(tp->probe_val));
	tp->epfd = epoll_create1(EPOLL_CLOEXEC);
	err = tp->epfd < 0 ? -errno : env_settings(tp);
	if (!err)
		err = rxp_bufpool_create(SHM_SMALL_BUF, 128, &tp->pool_small);
	if (!err)
		err = rxp_bufpool_create(SHM_POOL_BUF, 32, &tp->pool);
	if (!err)
		err = timer_init(tp);
	if (!err)
		err = tp_listen(tp);
	if (err) {
		rxp_err(SHM_LOG, "cannot listen: %s", rxp_strerror(err));
		shm_op_close(&tp->base);
		return err;
	}
	rxp_info(SHM_LOG, "listening on %s (%llu-byte rings)", tp->addr_str,
		 (unsigned long long)tp->ring_cap);
	*out = &tp->base;
	return 0;
}

static void shm_op_close(struct rxp_tp *rtp)
{
	struct shm_tp *tp;

	if (!rtp)
		return;
	tp = to_stp(rtp);
	for (struct shm_conn *c = tp->conns; c; c = c->next)
		conn_fail(c, -ECANCELED);
	sweep(tp);
	if (tp->lfd >= 0)
		close(tp->lfd);
	if (tp->tfd >= 0)
		close(tp->tfd);
	if (tp->epfd >= 0)
		close(tp->epfd);
	shm_sends_free(tp);
	rxp_bufpool_put(tp->pool_small);
	rxp_bufpool_put(tp->pool);
	rxp_auth_wipe(&tp->key);
	rxp__free(tp);
}

static int shm_op_address(struct rxp_tp *rtp, char *buf, size_t len)
{
	return rxp_str_out(buf, len, to_stp(rtp)->addr_str);
}

/* The connector's half of set-up: the rings and the HELLO. */
static int dial(struct shm_conn *c, const struct sockaddr_un *sa, socklen_t len)
{
	struct shm_tp *tp = c->tp;
	struct shm_hello h;
	int fd, err;

	if (connect(c->sock, (const struct sockaddr *)sa, len))
		return errno == EAGAIN ? -ECONNREFUSED : -errno;
	c->peer_pid = peer_pid(c->sock);
	fd = shm_memfd_new(shm_map_bytes(tp->ring_cap));
	if (fd < 0)
		return fd;
	err = map_rings(c, fd, tp->ring_cap, true);
	if (!err) {
		hello_fill(tp, &h, SHM_HS_HELLO);
		h.ring_cap = tp->ring_cap;
		shm_hello_encode(c->hello, &h);
		err = shm_msg_send(c->sock, c->hello, SHM_HELLO_SIZE, fd);
	}
	close(fd);
	return err;
}

static int shm_op_connect(struct rxp_tp *rtp, const char *addr,
			  uint32_t peer_id, struct rxp_conn **out)
{
	struct shm_tp *tp = to_stp(rtp);
	struct sockaddr_un sa;
	struct shm_conn *c;
	socklen_t len;
	int fd, err;

	if (!out)
		return -EINVAL;
	err = addr_parse(addr, &sa, &len);
	if (err) {
		rxp_err(SHM_LOG, "connect: '%s' is not shm:<name>",
			addr ? addr : "");
		return err;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = conn_new(tp, fd, true, &c);
	if (err) {
		close(fd);
		return err;
	}
	c->base.peer_id = peer_id;
	snprintf(c->peer_str, sizeof(c->peer_str), "%s", addr);
	err = dial(c, &sa, len);
	if (err) {
		/* reported by the next progress(), never from here */
		c->state = SC_REFUSED;
		c->err = err;
	}
	*out = &c->base;
	return 0;
}

static int shm_op_cancel(struct rxp_conn *rc, void *cookie)
{
	struct shm_conn *c = to_sconn(rc);

	/* a failing connection reports every send with its error anyway */
	if (c->state == SC_DEAD || c->err)
		return -EBUSY;
	return shm_tx_cancel(c, cookie);
}

static void shm_op_disconnect(struct rxp_conn *rc)
{
	if (rc)
		conn_fail(to_sconn(rc), -ECANCELED);
}

static int shm_op_send(struct rxp_conn *rc, const struct rxp_msg_out *m,
		       void *cookie)
{
	struct shm_conn *c;
	unsigned did = 0;
	int err;

	if (!rc || !m)
		return -EINVAL;
	c = to_sconn(rc);
	if (c->state == SC_DEAD || (c->state == SC_OPEN && c->err))
		return c->err ? c->err : -ENOTCONN;
	err = shm_tx_queue(c, m, cookie);
	if (err)
		return err;
	/* straight into the ring: no wait for the next progress; a failure
	 * is reported there (no callback from inside send) */
	if (c->state == SC_OPEN && !c->err)
		c->err = shm_tx_push(c, &did);
	return 0;
}

static unsigned poll_events(struct shm_tp *tp)
{
	struct epoll_event ev[32];
	unsigned did = 0;
	int n = epoll_wait(tp->epfd, ev, RXP_ARRAY_SIZE(ev), 0);

	for (int i = 0; i < n; i++) {
		struct shm_ev *e = ev[i].data.ptr;
		int err;

		if (e->kind == SHM_EV_LISTEN) {
			accept_all(tp, &did);
			continue;
		}
		if (e->kind == SHM_EV_TIMER) { /* progress checks deadlines */
			uint64_t v;

			if (read(tp->tfd, &v, sizeof(v)) < 0)
				v = 0;
			continue;
		}
		err = sock_events(e->c, &did);
		if (err)
			conn_fail(e->c, err);
	}
	return did;
}

static int shm_op_progress(struct rxp_tp *rtp)
{
	struct shm_tp *tp = to_stp(rtp);
	unsigned did = 0;
	int64_t now = 0;

	/* the sockets carry set-up, doorbells and hang-ups: look at them
	 * after a sleep, during set-up, and every 64th call while polling */
	if (tp->poll_due || tp->nhs || ++tp->spins >= 64) {
		tp->spins = 0;
		tp->poll_due = false;
		did += poll_events(tp);
		if (tp->nhs)
			now = rxp_now_ns();
	}
	for (struct shm_conn *c = tp->conns; c; c = c->next) {
		int err = 0;

		switch (c->state) {
		case SC_REFUSED:
			did++;
			conn_fail(c, c->err);
			continue;
		case SC_HS:
			if (now && now > c->deadline)
				conn_fail(c, -ETIMEDOUT);
			continue;
		case SC_OPEN:
			shm_ring_awake_rx(&c->rx);
			err = c->err;
			if (!err)
				err = shm_rx_pull(c, &did);
			if (!err)
				err = shm_tx_push(c, &did);
			if (err) {
				did++;
				conn_fail(c, err);
				continue;
			}
			if (c->done.head) {
				did++;
				shm_tx_report(c);
			}
			continue;
		default:
			continue;
		}
	}
	sweep(tp);
	return (int)did;
}

static int shm_op_wait_fd(struct rxp_tp *rtp)
{
	return to_stp(rtp)->epfd;
}

static int shm_op_arm(struct rxp_tp *rtp)
{
	struct shm_tp *tp = to_stp(rtp);
	bool work = false;

	for (struct shm_conn *c = tp->conns; c; c = c->next) {
		if (c->state == SC_REFUSED || c->state == SC_DEAD)
			work = true;
		if (c->state != SC_OPEN)
			continue;
		if (c->err || c->done.head || shm_ring_sleep_rx(&c->rx))
			work = true;
		if ((c->txq.head || c->acks_owed) && shm_ring_sleep_tx(&c->tx))
			work = true;
	}
	if (work)
		return 1;
	timer_arm(tp);
	tp->poll_due = true;
	return 0;
}

const struct rxp_tp_ops rxp_shm_ops = {
	.name = "shm",
	.open = shm_op_open,
	.close = shm_op_close,
	.address = shm_op_address,
	.connect = shm_op_connect,
	.disconnect = shm_op_disconnect,
	.send = shm_op_send,
	.cancel = shm_op_cancel,
	.progress = shm_op_progress,
	.wait_fd = shm_op_wait_fd,
	.arm = shm_op_arm,
	.mem_register = NULL,
	.mem_unregister = NULL,
};
