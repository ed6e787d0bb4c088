/* SPDX-License-Identifier: MIT */
/*
 * Rendezvous in the MASTER_ADDR/MASTER_PORT style: rank 0 serves a small
 * TCP store; every worker (rank 0 too) connects, says who it is and where
 * its transport listens, and gets the whole table back once all
 * world_size workers are in. The same connection serves join() barriers.
 *
 * Frames: u32 length (of type + body, little-endian), u8 type, body.
 * Everything from the socket is checked; a bad frame fails rendezvous.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rxp/rxp.h>
#include "rdv_int.h"
#include "rxp_util.h"

enum { RDV_HELLO = 1, RDV_TABLE, RDV_ERROR, RDV_BARRIER, RDV_BARRIER_DONE };

#define RDV_MAGIC 0x52585652u /* "RXVR" */
#define RDV_VERSION 1
#define NAME_LEN RDV_NAME_LEN
#define ADDR_LEN RDV_ADDR_LEN
#define TPNAME_LEN RDV_TPNAME_LEN
#define MAX_FRAME (1u << 24)
#define MAX_WORLD RDV_MAX_WORLD

struct hello {
	uint32_t magic, version;
	int32_t rank, world;
	char name[NAME_LEN];
	char addr[ADDR_LEN];
	char tpname[TPNAME_LEN];
};

/* ------------------------------------------------------------ socket io */

static int wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int ret;

	do {
		int ms = -1;

		if (deadline) {
			int64_t left = (deadline - rxp_now_ns()) / 1000000;

			if (left <= 0)
				return -ETIMEDOUT;
			ms = left > 1000 ? 1000 : (int)left;
		}
		ret = poll(&p, 1, ms);
	} while ((ret == 0 && (!deadline || rxp_now_ns() < deadline)) ||
		 (ret < 0 && errno == EINTR));
	if (ret < 0)
		return -errno;
	return ret ? 0 : -ETIMEDOUT;
}

static int io_all(int fd, void *buf, size_t len, bool wr, int64_t deadline)
{
	char *p = buf;

	while (len) {
		ssize_t n = wr ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
			       : recv(fd, p, len, MSG_DONTWAIT);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		n = wait_fd(fd, wr ? POLLOUT : POLLIN, deadline);
		if (n)
			return (int)n;
	}
	return 0;
}

static int send_frame(int fd, uint8_t type, const void *body, uint32_t len,
		      int64_t deadline)
{
	uint8_t hdr[5];
	uint32_t flen = len + 1;
	int ret;

	memcpy(hdr, &flen, 4);
	hdr[4] = type;
	ret = io_all(fd, hdr, sizeof(hdr), true, deadline);
	if (!ret && len)
		ret = io_all(fd, (void *)body, len, true, deadline);
	return ret;
}

/* Receive one frame into a heap buffer (*body, *len); caller frees. */
static int recv_frame(int fd, uint8_t *type, void **body, uint32_t *len,
		      int64_t deadline)
{
	uint8_t hdr[5];
	uint32_t flen;
	int ret;

	ret = io_all(fd, hdr, sizeof(hdr), false, deadline);
	if (ret)
		return ret;
	memcpy(&flen, hdr, 4);
	if (flen < 1 || flen > MAX_FRAME)
		return -RXP_E_PROTO;
	*type = hdr[4];
	*len = flen - 1;
	*body = rxp__malloc(*len ? *len : 1);
	if (!*body)
		return -ENOMEM;
	ret = io_all(fd, *body, *len, false, deadline);
	if (ret) {
		rxp__free(*body);
		*body = NULL;
	}
	return ret;
}

static int resolve(const char *host, int port, bool passive,
		   struct sockaddr_storage *ss, socklen_t *sl)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = passive ? AI_PASSIVE : 0};
	struct addrinfo *res;
	char sport[16];
	int ret;

	snprintf(sport, sizeof(sport), "%d", port);
	ret = getaddrinfo(host, sport, &hints, &res);
	if (ret) {
		rxp_err("rendezvous", "cannot resolve %s: %s", host,
			gai_strerror(ret));
		return -RXP_E_RENDEZVOUS;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sl = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Numeric text of @ss's address into @ip; 0 or -1. */
static int sockaddr_ip(const struct sockaddr_storage *ss, char *ip,
		       size_t iplen)
{
	const void *a =
		ss->ss_family == AF_INET6
			? (const void *)&((const struct sockaddr_in6 *)ss)
				  ->sin6_addr
			: (const void *)&((const struct sockaddr_in *)ss)
				  ->sin_addr;

	return inet_ntop(ss->ss_family, a, ip, (socklen_t)iplen) ? 0 : -1;
}

void rxp__rdv_route_ip(const char *host, char *ip, size_t iplen)
{
	struct sockaddr_storage ss, me;
	socklen_t sl, ml = sizeof(me);
	int fd = -1;

	/* a connected UDP socket: the kernel picks the route, sends nothing */
	if (!resolve(host, 9, false, &ss, &sl)) {
		fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && !connect(fd, (struct sockaddr *)&ss, sl) &&
		    !getsockname(fd, (struct sockaddr *)&me, &ml) &&
		    !sockaddr_ip(&me, ip, iplen)) {
			close(fd);
			return;
		}
		if (fd >= 0)
			close(fd);
	}
	rxp_warn("rendezvous", "no route to %s: binding 127.0.0.1", host);
	snprintf(ip, iplen, "127.0.0.1");
}

/* ---------------------------------------------------------------- client */

int rxp__rdv_connect(const char *host, int port, int64_t timeout_ms,
		     struct rxp__rdv **out, char *local_ip, size_t iplen)
{
	int64_t deadline = rdv_deadline(timeout_ms);
	struct sockaddr_storage ss, me;
	socklen_t sl, ml = sizeof(me);
	struct rxp__rdv *r;
	int fd = -1, ret, one = 1;

	ret = resolve(host, port, false, &ss, &sl);
	if (ret)
		return ret;
	for (;;) {
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&ss, sl))
			break;
		ret = -errno;
		close(fd);
		if (ret != -ECONNREFUSED && ret != -ENOENT &&
		    ret != -ETIMEDOUT && ret != -EHOSTUNREACH) {
			rxp_err("rendezvous", "connect to %s:%d: %s", host,
				port, rxp_strerror(ret));
			return -RXP_E_RENDEZVOUS;
		}
		if (deadline && rxp_now_ns() > deadline) {
			rxp_err("rendezvous",
				"no rendezvous server at %s:%d (is rank 0 up?)",
				host, port);
			return -RXP_E_RENDEZVOUS;
		}
		usleep(20000);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (getsockname(fd, (struct sockaddr *)&me, &ml) ||
	    sockaddr_ip(&me, local_ip, iplen)) {
		close(fd);
		return -RXP_E_RENDEZVOUS;
	}
	r = rxp__calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	r->fd = fd;
	*out = r;
	return 0;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		return -EINVAL;
	memcpy(dst, src, n + 1);
	return 0;
}

int rxp__rdv_exchange(struct rxp__rdv *r, int rank, int world, const char *name,
		      const char *tp_addr, const char *tp_name,
		      struct rxp__rdv_peer *peers, int64_t timeout_ms)
{
	int64_t deadline = rdv_deadline(timeout_ms);
	struct hello h = {.magic = RDV_MAGIC,
			  .version = RDV_VERSION,
			  .rank = rank,
			  .world = world};
	uint8_t type;
	void *body = NULL;
	uint32_t len;
	int ret;

	if (r->store)
		return rxp__rdv_store_exchange(r, rank, world, name, tp_addr,
					       tp_name, peers, timeout_ms);
	if (copy_str(h.name, sizeof(h.name), name) ||
	    copy_str(h.addr, sizeof(h.addr), tp_addr) ||
	    copy_str(h.tpname, sizeof(h.tpname), tp_name))
		return -EINVAL;
	ret = send_frame(r->fd, RDV_HELLO, &h, sizeof(h), deadline);
	if (!ret)
		ret = recv_frame(r->fd, &type, &body, &len, deadline);
	if (ret) {
		rxp_err("rendezvous", "exchange failed: %s", rxp_strerror(ret));
		return ret == -ETIMEDOUT ? ret : -RXP_E_RENDEZVOUS;
	}
	if (type == RDV_ERROR) {
		rxp_err("rendezvous", "rank 0 refused: %.*s", (int)len,
			(char *)body);
		ret = -RXP_E_RENDEZVOUS;
	} else if (type != RDV_TABLE ||
		   len != (uint32_t)world * (NAME_LEN + ADDR_LEN)) {
		ret = -RXP_E_PROTO;
	} else {
		for (int i = 0; i < world; i++) {
			const char *e = (char *)body +
					(size_t)i * (NAME_LEN + ADDR_LEN);

			memcpy(peers[i].name, e, NAME_LEN);
			memcpy(peers[i].addr, e + NAME_LEN, ADDR_LEN);
			peers[i].name[NAME_LEN - 1] = 0;
			peers[i].addr[ADDR_LEN - 1] = 0;
			peers[i].rank = i;
		}
	}
	rxp__free(body);
	return ret;
}

int rxp__rdv_barrier(struct rxp__rdv *r, int64_t timeout_ms)
{
	int64_t deadline = rdv_deadline(timeout_ms);
	uint8_t type;
	void *body = NULL;
	uint32_t len;
	int ret;

	if (r->store)
		return rxp__rdv_store_barrier(r, timeout_ms);
	ret = send_frame(r->fd, RDV_BARRIER, NULL, 0, deadline);
	if (!ret)
		ret = recv_frame(r->fd, &type, &body, &len, deadline);
	if (ret)
		return ret == -ETIMEDOUT ? ret : -RXP_E_RENDEZVOUS;
	if (type != RDV_BARRIER_DONE) {
		if (type == RDV_ERROR)
			rxp_err("rendezvous", "barrier failed: %.*s", (int)len,
				(char *)body);
		ret = -RXP_E_RENDEZVOUS;
	}
	rxp__free(body);
	return ret;
}

void rxp__rdv_close(struct rxp__rdv *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	rxp__free(r);
}

/* ---------------------------------------------------------------- server */

struct srv_client {
	int fd;
	bool hello, in_barrier, gone;
	struct hello h;
};

struct rxp__rdv_server {
	int lfd;
	int stop_pipe[2];
	int world;
	struct srv_client *cl;
	int ncl;
	bool table_sent;
	pthread_t thread;
};

static void srv_drop(struct srv_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->gone = true;
}

static void srv_broadcast_error(struct rxp__rdv_server *s, const char *msg)
{
	int64_t dl = rdv_deadline(1000);

	rxp_err("rendezvous", "%s", msg);
	for (int i = 0; i < s->ncl; i++)
		if (s->cl[i].fd >= 0)
			send_frame(s->cl[i].fd, RDV_ERROR, msg,
				   (uint32_t)strlen(msg), dl);
}

/* All hellos in: validate and send the table (or an error). */
static void srv_table(struct rxp__rdv_server *s)
{
	size_t ent = NAME_LEN + ADDR_LEN;
	char msg[512];
	char *tbl;
	int64_t dl = rdv_deadline(5000);

	for (int i = 0; i < s->ncl; i++) {
		struct hello *a = &s->cl[i].h;

		for (int j = 0; j < i; j++) {
			struct hello *b = &s->cl[j].h;

			if (a->rank == b->rank || !strcmp(a->name, b->name)) {
				snprintf(msg, sizeof(msg),
					 "two workers share rank %d or name "
					 "'%s'",
					 a->rank, a->name);
				goto fail;
			}
			if (strcmp(a->tpname, b->tpname)) {
				snprintf(msg, sizeof(msg),
					 "worker '%s' chose transport %s but "
					 "'%s' "
					 "chose %s; set RXP_TRANSPORT the same "
					 "on "
					 "every worker",
					 a->name, a->tpname, b->name,
					 b->tpname);
				goto fail;
			}
		}
	}
	tbl = rxp__calloc((size_t)s->world, ent);
	if (!tbl) {
		snprintf(msg, sizeof(msg), "rank 0 out of memory");
		goto fail;
	}
	for (int i = 0; i < s->ncl; i++) {
		char *e = tbl + (size_t)s->cl[i].h.rank * ent;

		memcpy(e, s->cl[i].h.name, NAME_LEN);
		memcpy(e + NAME_LEN, s->cl[i].h.addr, ADDR_LEN);
	}
	for (int i = 0; i < s->ncl; i++)
		if (send_frame(s->cl[i].fd, RDV_TABLE, tbl,
			       (uint32_t)(ent * (size_t)s->world), dl))
			srv_drop(&s->cl[i]);
	rxp__free(tbl);
	s->table_sent = true;
	return;
fail:
	srv_broadcast_error(s, msg);
	s->table_sent = true;
}

static void srv_barrier_check(struct rxp__rdv_server *s)
{
	int64_t dl = rdv_deadline(5000);
	int n = 0;

	for (int i = 0; i < s->ncl; i++) {
		if (s->cl[i].gone) {
			for (int j = 0; j < s->ncl; j++)
				if (s->cl[j].in_barrier) {
					static const char m[] =
						"a worker left before join()";
					send_frame(s->cl[j].fd, RDV_ERROR, m,
						   sizeof(m) - 1, dl);
					s->cl[j].in_barrier = false;
				}
			return;
		}
		n += s->cl[i].in_barrier;
	}
	if (n < s->world)
		return;
	for (int i = 0; i < s->ncl; i++) {
		s->cl[i].in_barrier = false;
		send_frame(s->cl[i].fd, RDV_BARRIER_DONE, NULL, 0, dl);
	}
}

static void srv_handle(struct rxp__rdv_server *s, struct srv_client *c)
{
	uint8_t type;
	void *body = NULL;
	uint32_t len;
	int ret = recv_frame(c->fd, &type, &body, &len, rdv_deadline(5000));

	if (ret) {
		srv_drop(c);
		if (s->table_sent)
			srv_barrier_check(s);
		return;
	}
	if (type == RDV_HELLO && !c->hello && len == sizeof(struct hello)) {
		memcpy(&c->h, body, sizeof(c->h));
		c->h.name[NAME_LEN - 1] = c->h.addr[ADDR_LEN - 1] = 0;
		c->h.tpname[TPNAME_LEN - 1] = 0;
		if (c->h.magic != RDV_MAGIC || c->h.version != RDV_VERSION ||
		    c->h.world != s->world || c->h.rank < 0 ||
		    c->h.rank >= s->world) {
			char msg[256];

			snprintf(
				msg, sizeof(msg),
				"bad hello from '%s': rank %d world %d (rank 0 "
				"expects world %d, protocol %d)",
				c->h.name, c->h.rank, c->h.world, s->world,
				RDV_VERSION);
			srv_broadcast_error(s, msg);
			srv_drop(c);
		} else {
			c->hello = true;
		}
	} else if (type == RDV_BARRIER && s->table_sent && c->hello) {
		c->in_barrier = true;
		srv_barrier_check(s);
	} else {
		srv_drop(c);
	}
	rxp__free(body);
}

static void *srv_main(void *arg)
{
	struct rxp__rdv_server *s = arg;
	struct pollfd *p = rxp__calloc((size_t)s->world + 2, sizeof(*p));

	if (!p)
		return NULL;
	for (;;) {
		int n = 0, live = 0, hellos = 0;

		p[n++] = (struct pollfd){.fd = s->stop_pipe[0],
					 .events = POLLIN};
		p[n++] = (struct pollfd){.fd = s->ncl < s->world ? s->lfd : -1,
					 .events = POLLIN};
		for (int i = 0; i < s->ncl; i++) {
			p[n++] = (struct pollfd){.fd = s->cl[i].fd,
						 .events = POLLIN};
			live += s->cl[i].fd >= 0;
			hellos += s->cl[i].hello;
		}
		if (s->table_sent && !live)
			break;
		if (poll(p, (nfds_t)n, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
				s->cl[s->ncl++] = (struct srv_client){.fd = fd};
		}
		for (int i = 0; i < s->ncl; i++)
			if (s->cl[i].fd >= 0 && p[2 + i].revents)
				srv_handle(s, &s->cl[i]);
		hellos = 0;
		for (int i = 0; i < s->ncl; i++)
			hellos += s->cl[i].hello;
		if (!s->table_sent && hellos == s->world)
			srv_table(s);
	}
	rxp__free(p);
	return NULL;
}

int rxp__rdv_serve(const char *host, int port, int world,
		   struct rxp__rdv_server **out)
{
	struct rxp__rdv_server *s;
	struct sockaddr_storage ss;
	socklen_t sl;
	int ret, one = 1;

	if (world < 1 || world > MAX_WORLD)
		return -EINVAL;
	ret = resolve(host, port, true, &ss, &sl);
	if (ret)
		return ret;
	s = rxp__calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->world = world;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->cl = rxp__calloc((size_t)world, sizeof(*s->cl));
	if (!s->cl) {
		ret = -ENOMEM;
		goto err_free;
	}
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		ret = -errno;
		goto err_free;
	}
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->lfd, (struct sockaddr *)&ss, sl) || listen(s->lfd, 128)) {
		ret = -errno;
		rxp_err("rendezvous", "rank 0 cannot listen on %s:%d: %s", host,
			port, rxp_strerror(ret));
		goto err_close;
	}
	if (pipe2(s->stop_pipe, O_CLOEXEC)) {
		ret = -errno;
		goto err_close;
	}
	ret = -pthread_create(&s->thread, NULL, srv_main, s);
	if (ret)
		goto err_pipe;
	*out = s;
	return 0;

err_pipe:
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
err_close:
	close(s->lfd);
err_free:
	rxp__free(s->cl);
	rxp__free(s);
	return ret == -EADDRINUSE ? -EADDRINUSE : ret;
}

void rxp__rdv_server_stop(struct rxp__rdv_server *s)
{
	if (!s)
		return;
	if (write(s->stop_pipe[1], "x", 1) < 0) {
		/* the thread still exits when every client has gone */
	}
	pthread_join(s->thread, NULL);
	for (int i = 0; i < s->ncl; i++)
		if (s->cl[i].fd >= 0)
			close(s->cl[i].fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	close(s->lfd);
	rxp__free(s->cl);
	rxp__free(s);
}
