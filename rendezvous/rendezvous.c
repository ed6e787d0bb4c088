/* SPDX-License-Identifier: MIT */
/*
 * Rendezvous in the MASTER_ADDR/MASTER_PORT style: rank 0 serves a small
 * TCP store; every worker (rank 0 too) connects, says who it is and where
 * its transport listens, and gets the whole table back once all
 * world_size workers are in. The same connection serves join() barriers.
 *
 * Protocol v2 (docs/DESIGN.md, "Rendezvous and join"). Frames: u32 length
 * (of type + body), u8 type, body; every multi-byte field little-endian.
 *   rank 0 -> worker   CHALLENGE  magic u32, version u16, flags u16,
 *                                 world u32, nonce[32]
 *   worker -> rank 0   HELLO      magic u32, version u16, flags u16,
 *                                 rank u32, world u32, name/addr/transport
 *                                 lengths u16 x3, pad u16, nonce[32],
 *                                 the three strings, [mac[32]]
 *   rank 0 -> worker   STATUS     joined u32, world u32, n u32, n ranks
 *                                 u32 still missing (at most 16 listed)
 *                      TABLE      world u32, per rank: name and addr
 *                                 lengths u16 x2 and bytes, [mac[32]]
 *                      ERROR      code u32 (-errno), text
 *   worker <-> rank 0  BARRIER, BARRIER_DONE (no body)
 * With a job secret (flags bit 0) the HELLO's mac is HMAC-SHA256 under the
 * job key over the CHALLENGE and the HELLO, so a hello proves the secret
 * and cannot be replayed (the nonce is fresh per connection); the TABLE's
 * mac covers the worker's nonce and the table, so the worker knows the
 * table came from a rank 0 that knows the secret.
 *
 * The server never blocks on one client: it polls every connection and
 * keeps a partial frame per connection. A rank's slot is taken by the
 * first valid hello for it and given back when that connection closes
 * before the world forms; a bad hello is refused to its sender only; a
 * connection that has not sent a valid hello within RDV_HELLO_MS is
 * closed, and when the connection table is full the oldest connection that
 * is not a member goes first. Everything from a socket is bounds-checked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "rxp_auth.h"
#include "rxp_util.h"

#define LOG "rendezvous"

enum {
	RDV_CHALLENGE = 1,
	RDV_HELLO,
	RDV_STATUS,
	RDV_TABLE,
	RDV_ERROR,
	RDV_BARRIER,
	RDV_BARRIER_DONE,
};

#define RDV_MAGIC 0x52585652u /* "RXVR" */
#define RDV_VERSION 2
#define RDV_F_AUTH 0x1u
#define NAME_LEN RDV_NAME_LEN
#define ADDR_LEN RDV_ADDR_LEN
#define TPNAME_LEN RDV_TPNAME_LEN
#define MAX_WORLD RDV_MAX_WORLD
#define MAC_LEN RXP_AUTH_MAC_BYTES
#define NONCE_LEN RXP_AUTH_NONCE_BYTES

#define CHAL_LEN (4 + 2 + 2 + 4 + NONCE_LEN)
#define HELLO_FIXED (4 + 2 + 2 + 4 + 4 + 2 * 4 + NONCE_LEN)
/* the largest frame a worker may send rank 0 (a hello); more closes it */
#define SRV_IN_MAX                                                             \
	(5 + HELLO_FIXED + NAME_LEN + ADDR_LEN + TPNAME_LEN + MAC_LEN)
#define STATUS_LISTED 16
#define TABLE_ENT_MAX (4 + NAME_LEN + ADDR_LEN)
/* connections beyond the members that may wait for their hello */
#define SRV_PENDING_MAX 64
#define RDV_HELLO_MS 10000	/* to send a valid hello after connecting */
#define RDV_CLOSE_GRACE_MS 1000 /* to flush an ERROR before closing */
#define LABEL_HELLO "rxp rendezvous v2 hello"
#define LABEL_TABLE "rxp rendezvous v2 table"

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

static void frame_hdr(uint8_t hdr[5], uint8_t type, uint32_t len)
{
	rxp_put_le32(hdr, len + 1);
	hdr[4] = type;
}

/* the worker's side: blocking up to @deadline */
static int send_frame(int fd, uint8_t type, const void *body, uint32_t len,
		      int64_t deadline)
{
	uint8_t hdr[5];
	int ret;

	frame_hdr(hdr, type, len);
	ret = io_all(fd, hdr, sizeof(hdr), true, deadline);
	if (!ret && len)
		ret = io_all(fd, (void *)body, len, true, deadline);
	return ret;
}

/* Receive one frame of at most @max body bytes into a heap buffer (*body,
 * *len); the caller frees it. */
static int recv_frame(int fd, uint8_t *type, void **body, uint32_t *len,
		      uint32_t max, int64_t deadline)
{
	uint8_t hdr[5];
	uint32_t flen;
	int ret;

	ret = io_all(fd, hdr, sizeof(hdr), false, deadline);
	if (ret)
		return ret;
	flen = rxp_get_le32(hdr);
	if (flen < 1 || flen - 1 > max)
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

/* Resolve @host, retrying temporary failures (a name that is not in DNS
 * yet while a cluster starts) with back-off until @deadline. */
static int resolve(const char *host, int port, bool passive, int64_t deadline,
		   struct sockaddr_storage *ss, socklen_t *sl)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = passive ? AI_PASSIVE : 0};
	struct addrinfo *res;
	char sport[16];
	useconds_t backoff = 50000;
	int ret;

	snprintf(sport, sizeof(sport), "%d", port);
	for (;;) {
		ret = getaddrinfo(host, sport, &hints, &res);
		if (!ret)
			break;
		if ((ret != EAI_AGAIN && ret != EAI_NONAME &&
		     ret != EAI_NODATA) ||
		    !deadline || rxp_now_ns() > deadline) {
			rxp_err(LOG, "cannot resolve %s: %s", host,
				gai_strerror(ret));
			return -RXP_E_RENDEZVOUS;
		}
		rxp_dbg(LOG, "resolving %s: %s; retrying", host,
			gai_strerror(ret));
		usleep(backoff);
		backoff = backoff < 1000000 ? backoff * 2 : 1000000;
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

/* ---------------------------------------------------------------- client */

int rxp__rdv_connect(const char *host, int port, int64_t timeout_ms,
		     const struct rxp_auth_key *key, struct rxp__rdv **out,
		     char *local_ip, size_t iplen)
{
	int64_t deadline = rdv_deadline(timeout_ms);
	struct sockaddr_storage ss, me;
	socklen_t sl, ml = sizeof(me);
	useconds_t backoff = 20000;
	struct rxp__rdv *r;
	int fd = -1, ret, one = 1;

	ret = resolve(host, port, false, deadline, &ss, &sl);
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
		    ret != -ETIMEDOUT && ret != -EHOSTUNREACH &&
		    ret != -ENETUNREACH) {
			rxp_err(LOG, "connect to %s:%d: %s", host, port,
				rxp_strerror(ret));
			return -RXP_E_RENDEZVOUS;
		}
		if (deadline && rxp_now_ns() > deadline) {
			rxp_err(LOG,
				"no rendezvous server at %s:%d (is rank 0 up?)",
				host, port);
			return -RXP_E_RENDEZVOUS;
		}
		usleep(backoff); /* rank 0 may start later than this one */
		backoff = backoff < 500000 ? backoff * 3 / 2 : 500000;
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
	if (key)
		r->key = *key;
	snprintf(r->where, sizeof(r->where), "%s:%d", host, port);
	rxp_dbg(LOG, "connected to rank 0 at %s", r->where);
	*out = r;
	return 0;
}

/* "2,3,7" from a STATUS body's missing list (@n listed of @missing) */
static void status_text(const uint8_t *body, uint32_t len, char *out,
			size_t cap)
{
	uint32_t missing, n;
	size_t o = 0;

	out[0] = 0;
	if (len < 12)
		return;
	missing = rxp_get_le32(body + 4) - rxp_get_le32(body);
	n = rxp_get_le32(body + 8);
	if (n > STATUS_LISTED || len != 12 + 4 * n)
		return;
	for (uint32_t i = 0; i < n && o + 12 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%" PRIu32,
				      i ? "," : "",
				      rxp_get_le32(body + 12 + 4 * i));
	if (missing > n && o + 8 < cap)
		snprintf(out + o, cap - o, ",...");
}

/* A TABLE body into @peers: every length checked, strings terminated. */
static int parse_table(const uint8_t *b, uint32_t len, int world,
		       struct rxp__rdv_peer *peers)
{
	size_t o = 4;

	if (len < 4 || rxp_get_le32(b) != (uint32_t)world)
		return -RXP_E_PROTO;
	for (int i = 0; i < world; i++) {
		size_t nl, al;

		if (len - o < 4)
			return -RXP_E_PROTO;
		nl = rxp_get_le16(b + o);
		al = rxp_get_le16(b + o + 2);
		o += 4;
		if (nl == 0 || nl >= NAME_LEN || al == 0 || al >= ADDR_LEN ||
		    len - o < nl + al)
			return -RXP_E_PROTO;
		memcpy(peers[i].name, b + o, nl);
		peers[i].name[nl] = 0;
		memcpy(peers[i].addr, b + o + nl, al);
		peers[i].addr[al] = 0;
		if (strlen(peers[i].name) != nl || strlen(peers[i].addr) != al)
			return -RXP_E_PROTO; /* NUL inside */
		peers[i].rank = i;
		o += nl + al;
	}
	return o == len ? 0 : -RXP_E_PROTO;
}

int rxp__rdv_exchange(struct rxp__rdv *r, int rank, int world, const char *name,
		      const char *tp_addr, const char *tp_name,
		      struct rxp__rdv_peer *peers, int64_t timeout_ms)
{
	int64_t deadline = rdv_deadline(timeout_ms);
	size_t nl = strlen(name), al = strlen(tp_addr), tl = strlen(tp_name);
	uint8_t chal[CHAL_LEN], hello[SRV_IN_MAX], nonce[NONCE_LEN];
	char missing[160] = "";
	uint8_t type;
	void *body = NULL;
	uint32_t len, max_table;
	size_t hl;
	int ret;

	if (r->store)
		return rxp__rdv_store_exchange(r, rank, world, name, tp_addr,
					       tp_name, peers, timeout_ms);
	if (!nl || nl >= NAME_LEN || !al || al >= ADDR_LEN || !tl ||
	    tl >= TPNAME_LEN || world < 1 || world > MAX_WORLD)
		return -EINVAL;
	max_table = 4 + (uint32_t)world * TABLE_ENT_MAX + MAC_LEN;
	/* rank 0 speaks first: its challenge, with a fresh nonce */
	ret = recv_frame(r->fd, &type, &body, &len, CHAL_LEN, deadline);
	if (!ret && (type != RDV_CHALLENGE || len != CHAL_LEN))
		ret = -RXP_E_PROTO;
	if (!ret) {
		memcpy(chal, body, CHAL_LEN);
		if (rxp_get_le32(chal) != RDV_MAGIC ||
		    rxp_get_le16(chal + 4) != RDV_VERSION) {
			rxp_err(LOG,
				"%s is not an rxp %d rendezvous (magic %08x "
				"version %u)",
				r->where, RDV_VERSION, rxp_get_le32(chal),
				rxp_get_le16(chal + 4));
			ret = -RXP_E_RENDEZVOUS;
		} else if (!!(rxp_get_le16(chal + 6) & RDV_F_AUTH) !=
			   r->key.on) {
			rxp_err(LOG,
				"rank 0 at %s %s a job secret but this worker "
				"%s: set RXP_SECRET_FILE (or attr.secret) the "
				"same on every worker",
				r->where,
				r->key.on ? "does not use" : "requires",
				r->key.on ? "has one" : "has none");
			ret = -RXP_E_AUTH;
		}
	}
	rxp__free(body);
	body = NULL;
	if (ret)
		goto out;

	rxp_auth_nonce(nonce, sizeof(nonce));
	rxp_put_le32(hello, RDV_MAGIC);
	rxp_put_le16(hello + 4, RDV_VERSION);
	rxp_put_le16(hello + 6, r->key.on ? RDV_F_AUTH : 0);
	rxp_put_le32(hello + 8, (uint32_t)rank);
	rxp_put_le32(hello + 12, (uint32_t)world);
	rxp_put_le16(hello + 16, (uint16_t)nl);
	rxp_put_le16(hello + 18, (uint16_t)al);
	rxp_put_le16(hello + 20, (uint16_t)tl);
	rxp_put_le16(hello + 22, 0);
	memcpy(hello + 24, nonce, NONCE_LEN);
	hl = HELLO_FIXED;
	memcpy(hello + hl, name, nl);
	memcpy(hello + hl + nl, tp_addr, al);
	memcpy(hello + hl + nl + al, tp_name, tl);
	hl += nl + al + tl;
	if (r->key.on) {
		rxp_auth_mac(&r->key, LABEL_HELLO, chal, CHAL_LEN, hello, hl,
			     hello + hl);
		hl += MAC_LEN;
	}
	ret = send_frame(r->fd, RDV_HELLO, hello, (uint32_t)hl, deadline);
	while (!ret) {
		ret = recv_frame(r->fd, &type, &body, &len, max_table,
				 deadline);
		if (ret)
			break;
		if (type == RDV_STATUS) {
			status_text(body, len, missing, sizeof(missing));
			rxp__free(body);
			body = NULL;
			continue;
		}
		if (type == RDV_ERROR) {
			int code = len >= 4 ? (int)rxp_get_le32(body) : 0;

			rxp_err(LOG, "rank 0 at %s refused this worker: %.*s",
				r->where, len >= 4 ? (int)len - 4 : 0,
				(char *)body + 4);
			/* the two a user can act on keep their code */
			ret = code == -RXP_E_AUTH || code == -RXP_E_DUP_NAME
				      ? code
				      : -RXP_E_RENDEZVOUS;
		} else if (type != RDV_TABLE ||
			   len < 4 + (r->key.on ? MAC_LEN : 0)) {
			ret = -RXP_E_PROTO;
		} else {
			if (r->key.on) {
				len -= MAC_LEN;
				ret = rxp_auth_verify(
					&r->key, LABEL_TABLE, nonce, NONCE_LEN,
					body, len, (uint8_t *)body + len);
				if (ret)
					rxp_err(LOG,
						"the table from %s is not "
						"signed with the job secret: "
						"refused",
						r->where);
			}
			if (!ret)
				ret = parse_table(body, len, world, peers);
		}
		break;
	}
out:
	rxp__free(body);
	if (ret == -ETIMEDOUT)
		rxp_err(LOG, "no world after %lld ms at %s%s%s%s",
			(long long)timeout_ms, r->where,
			*missing ? ": ranks " : "", missing,
			*missing ? " never joined" : "");
	else if (ret && ret != -RXP_E_AUTH && ret != -RXP_E_DUP_NAME &&
		 ret != -RXP_E_RENDEZVOUS)
		rxp_err(LOG, "exchange with %s failed: %s", r->where,
			rxp_strerror(ret));
	if (ret == -ETIMEDOUT || ret == -RXP_E_AUTH || ret == -RXP_E_DUP_NAME)
		return ret;
	return ret ? -RXP_E_RENDEZVOUS : 0;
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
	/* STATUS frames may still be on their way: skip them */
	while (!ret) {
		ret = recv_frame(r->fd, &type, &body, &len, 4096, deadline);
		if (ret || type != RDV_STATUS)
			break;
		rxp__free(body);
		body = NULL;
	}
	if (ret)
		return ret == -ETIMEDOUT ? ret : -RXP_E_RENDEZVOUS;
	if (type != RDV_BARRIER_DONE) {
		if (type == RDV_ERROR && len >= 4)
			rxp_err(LOG, "barrier failed: %.*s", (int)len - 4,
				(char *)body + 4);
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
	rxp_auth_wipe(&r->key);
	rxp__free(r);
}

/* ---------------------------------------------------------------- server */

enum sc_state {
	SC_FREE,
	SC_PENDING, /* challenged, waiting for a valid hello */
	SC_MEMBER,  /* holds a rank */
	SC_CLOSING, /* flushing an ERROR, then closed */
};

struct srv_conn {
	int fd;
	enum sc_state st;
	int64_t since;	  /* accepted at (oldest pending goes first) */
	int64_t deadline; /* hello (pending) or flush (closing) by then */
	char peer[64];	  /* "ip:port" */
	uint8_t chal[CHAL_LEN];
	uint8_t in[SRV_IN_MAX];
	size_t in_len;
	uint8_t *out;
	size_t out_len, out_off;
	bool shut; /* closing: our side shut down, draining theirs */
	bool in_barrier;
	/* member */
	int rank;
	uint8_t nonce[NONCE_LEN];
	char name[NAME_LEN], addr[ADDR_LEN], tpname[TPNAME_LEN];
};

struct rxp__rdv_server {
	int lfd;
	int stop_pipe[2];
	int world;
	struct rxp_auth_key key;
	struct srv_conn *c;
	int nconn;   /* capacity: world + SRV_PENDING_MAX */
	int *slot;   /* rank -> conn index, or -1 */
	bool *seen;  /* rank -> held at some time */
	int joined;  /* ranks held */
	bool formed; /* table sent */
	bool gone;   /* a member left after the table was sent */
	uint64_t refused, refused_logged;
	char last_refused[192]; /* "peer: why", for the did-not-form error */
	char where[80];
	pthread_t thread;
};

/* Refusals are logged with a rate limit: the first 10, then every 100th
 * with the count (a port scanner or a crash loop must not flood the log). */
static void srv_refused(struct rxp__rdv_server *s, const char *peer,
			const char *why)
{
	s->refused++;
	snprintf(s->last_refused, sizeof(s->last_refused), "%s: %s", peer, why);
	if (s->refused <= 10 || s->refused % 100 == 0) {
		rxp_warn(LOG,
			 "rank 0 refused %s: %s (%" PRIu64 " refused so far)",
			 peer, why, s->refused);
		s->refused_logged = s->refused;
	}
}

static void srv_close(struct rxp__rdv_server *s, struct srv_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	rxp__free(c->out);
	*c = (struct srv_conn){.fd = -1, .st = SC_FREE};
	(void)s;
}

/* Queue @len body bytes of @type for @c (sent as the socket takes them). */
static int srv_queue(struct srv_conn *c, uint8_t type, const void *body,
		     size_t len)
{
	size_t need = c->out_len - c->out_off + 5 + len;
	uint8_t *b;

	if (c->out_off) { /* compact what is left first */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	b = rxp__realloc(c->out, need);
	if (!b)
		return -ENOMEM;
	c->out = b;
	frame_hdr(b + c->out_len, type, (uint32_t)len);
	if (len)
		memcpy(b + c->out_len + 5, body, len);
	c->out_len += 5 + len;
	return 0;
}

static void srv_flush(struct rxp__rdv_server *s, struct srv_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		c->out_off = c->out_len = 0; /* peer gone: nothing to flush */
		break;
	}
	/* A refused peer may have sent more than we read: closing now would
	 * reset the connection and could discard the ERROR before it is
	 * read. Shut our side and drain theirs until EOF or the grace ends
	 * (srv_read, srv_expire). */
	if (c->st == SC_CLOSING && c->out_off == c->out_len && !c->shut) {
		shutdown(c->fd, SHUT_WR);
		c->shut = true;
	}
}

/* a closing connection: discard what comes until EOF */
static void srv_drain(struct rxp__rdv_server *s, struct srv_conn *c)
{
	uint8_t junk[4096];

	for (;;) {
		ssize_t n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT);

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		srv_close(s, c);
		return;
	}
}

/* Refuse @c with an ERROR to it alone, then close it. */
static void srv_refuse(struct rxp__rdv_server *s, struct srv_conn *c, int code,
		       const char *msg)
{
	uint8_t b[4 + 512];
	size_t n = strlen(msg);

	if (n > sizeof(b) - 4)
		n = sizeof(b) - 4;
	srv_refused(s, c->peer, msg);
	rxp_put_le32(b, (uint32_t)code);
	memcpy(b + 4, msg, n);
	if (srv_queue(c, RDV_ERROR, b, 4 + n)) {
		srv_close(s, c);
		return;
	}
	c->st = SC_CLOSING;
	c->deadline = rxp_now_ns() + (int64_t)RDV_CLOSE_GRACE_MS * 1000000;
	srv_flush(s, c);
}

/* Tell every member how many have joined and who is missing. */
static void srv_status(struct rxp__rdv_server *s)
{
	uint8_t b[12 + 4 * STATUS_LISTED];
	uint32_t n = 0;

	for (int r = 0; r < s->world && n < STATUS_LISTED; r++)
		if (s->slot[r] < 0)
			rxp_put_le32(b + 12 + 4 * n++, (uint32_t)r);
	rxp_put_le32(b, (uint32_t)s->joined);
	rxp_put_le32(b + 4, (uint32_t)s->world);
	rxp_put_le32(b + 8, n);
	for (int i = 0; i < s->nconn; i++)
		if (s->c[i].st == SC_MEMBER &&
		    !srv_queue(&s->c[i], RDV_STATUS, b, 12 + 4 * n))
			srv_flush(s, &s->c[i]);
}

/* All ranks held: the table, to the members only. */
static void srv_table(struct rxp__rdv_server *s)
{
	size_t cap = 4 + (size_t)s->world * TABLE_ENT_MAX + MAC_LEN, o = 4;
	uint8_t *t = rxp__malloc(cap);

	if (!t) {
		rxp_err(LOG, "rank 0 out of memory for the table");
		for (int i = 0; i < s->nconn; i++)
			if (s->c[i].st == SC_MEMBER)
				srv_refuse(s, &s->c[i], -ENOMEM,
					   "rank 0 out of memory");
		s->formed = true;
		return;
	}
	rxp_put_le32(t, (uint32_t)s->world);
	for (int r = 0; r < s->world; r++) {
		const struct srv_conn *m = &s->c[s->slot[r]];
		size_t nl = strlen(m->name), al = strlen(m->addr);

		rxp_put_le16(t + o, (uint16_t)nl);
		rxp_put_le16(t + o + 2, (uint16_t)al);
		memcpy(t + o + 4, m->name, nl);
		memcpy(t + o + 4 + nl, m->addr, al);
		o += 4 + nl + al;
	}
	for (int r = 0; r < s->world; r++) {
		struct srv_conn *m = &s->c[s->slot[r]];

		if (s->key.on)
			rxp_auth_mac(&s->key, LABEL_TABLE, m->nonce, NONCE_LEN,
				     t, o, t + o);
		if (srv_queue(m, RDV_TABLE, t, o + (s->key.on ? MAC_LEN : 0)))
			srv_close(s, m);
		else
			srv_flush(s, m);
	}
	rxp__free(t);
	s->formed = true;
	rxp_info(LOG, "world of %d formed at %s", s->world, s->where);
}

/* A HELLO from @c: checked field by field; the slot goes to it, or it
 * alone is refused. */
static void srv_hello(struct rxp__rdv_server *s, struct srv_conn *c,
		      const uint8_t *b, size_t len)
{
	size_t nl, al, tl, need;
	uint32_t rank, world;
	char msg[512];

	if (len < HELLO_FIXED || rxp_get_le32(b) != RDV_MAGIC ||
	    rxp_get_le16(b + 4) != RDV_VERSION) {
		srv_refuse(s, c, -RXP_E_PROTO,
			   "not an rxp v2 rendezvous hello (different rxp "
			   "versions?)");
		return;
	}
	nl = rxp_get_le16(b + 16);
	al = rxp_get_le16(b + 18);
	tl = rxp_get_le16(b + 20);
	need = HELLO_FIXED + nl + al + tl + (s->key.on ? MAC_LEN : 0);
	if (len != need || !nl || nl >= NAME_LEN || !al || al >= ADDR_LEN ||
	    !tl || tl >= TPNAME_LEN) {
		srv_refuse(s, c, -RXP_E_PROTO, "malformed hello");
		return;
	}
	/* nothing of the hello is trusted before its MAC is checked */
	if (s->key.on &&
	    rxp_auth_verify(&s->key, LABEL_HELLO, c->chal, CHAL_LEN, b,
			    len - MAC_LEN, b + len - MAC_LEN)) {
		srv_refuse(s, c, -RXP_E_AUTH,
			   "authentication failed (job secret missing or "
			   "different)");
		return;
	}
	rank = rxp_get_le32(b + 8);
	world = rxp_get_le32(b + 12);
	memcpy(c->name, b + HELLO_FIXED, nl);
	c->name[nl] = 0;
	memcpy(c->addr, b + HELLO_FIXED + nl, al);
	c->addr[al] = 0;
	memcpy(c->tpname, b + HELLO_FIXED + nl + al, tl);
	c->tpname[tl] = 0;
	if (strlen(c->name) != nl || strlen(c->addr) != al ||
	    strlen(c->tpname) != tl) {
		srv_refuse(s, c, -RXP_E_PROTO, "NUL inside a hello string");
		return;
	}
	if (world != (uint32_t)s->world || rank >= world) {
		snprintf(msg, sizeof(msg),
			 "worker '%s' says rank %" PRIu32 " of world %" PRIu32
			 "; rank 0 serves a world of %d",
			 c->name, rank, world, s->world);
		srv_refuse(s, c, -EINVAL, msg);
		return;
	}
	if (s->slot[rank] >= 0) {
		snprintf(msg, sizeof(msg),
			 "rank %" PRIu32 " is held by '%s' (two workers with "
			 "one rank?)",
			 rank, s->c[s->slot[rank]].name);
		srv_refuse(s, c, -EEXIST, msg);
		return;
	}
	for (int r = 0; r < s->world; r++) {
		const struct srv_conn *m =
			s->slot[r] >= 0 ? &s->c[s->slot[r]] : NULL;

		if (m && !strcmp(m->name, c->name)) {
			snprintf(msg, sizeof(msg),
				 "name '%s' is taken by rank %d", c->name, r);
			srv_refuse(s, c, -RXP_E_DUP_NAME, msg);
			return;
		}
		if (m && strcmp(m->tpname, c->tpname)) {
			snprintf(msg, sizeof(msg),
				 "worker '%s' chose transport %s but '%s' "
				 "chose %s: set RXP_TRANSPORT the same on "
				 "every worker",
				 c->name, c->tpname, m->name, m->tpname);
			srv_refuse(s, c, -EINVAL, msg);
			return;
		}
	}
	memcpy(c->nonce, b + 24, NONCE_LEN);
	c->rank = (int)rank;
	c->st = SC_MEMBER;
	s->slot[rank] = (int)(c - s->c);
	s->seen[rank] = true;
	s->joined++;
	rxp_dbg(LOG, "rank %d ('%s') joined from %s (%d of %d)", c->rank,
		c->name, c->peer, s->joined, s->world);
	if (s->joined == s->world)
		srv_table(s);
	else
		srv_status(s);
}

static void srv_barrier_check(struct rxp__rdv_server *s)
{
	int n = 0;

	for (int i = 0; i < s->nconn; i++)
		n += s->c[i].st == SC_MEMBER && s->c[i].in_barrier;
	if (s->gone) {
		static const char m[] = "a worker left before join()";
		uint8_t b[4 + sizeof(m)];

		rxp_put_le32(b, (uint32_t)-RXP_E_PEER_LOST);
		memcpy(b + 4, m, sizeof(m) - 1);
		for (int i = 0; i < s->nconn; i++)
			if (s->c[i].st == SC_MEMBER && s->c[i].in_barrier) {
				s->c[i].in_barrier = false;
				if (!srv_queue(&s->c[i], RDV_ERROR, b,
					       sizeof(b) - 1))
					srv_flush(s, &s->c[i]);
			}
		return;
	}
	if (n < s->world)
		return;
	for (int i = 0; i < s->nconn; i++)
		if (s->c[i].st == SC_MEMBER) {
			s->c[i].in_barrier = false;
			if (!srv_queue(&s->c[i], RDV_BARRIER_DONE, NULL, 0))
				srv_flush(s, &s->c[i]);
		}
}

/* @c's connection ended (EOF, error, garbage). */
static void srv_lost(struct rxp__rdv_server *s, struct srv_conn *c)
{
	bool member = c->st == SC_MEMBER;
	int rank = c->rank;

	if (member && !s->formed) {
		/* give the slot back: the worker (or a restarted one) may
		 * come again */
		s->slot[rank] = -1;
		s->joined--;
		rxp_info(LOG,
			 "rank %d ('%s', %s) left before the world formed; "
			 "its slot is free again",
			 rank, c->name, c->peer);
	} else if (member) {
		s->gone = true;
	}
	srv_close(s, c);
	if (member && !s->formed)
		srv_status(s);
	if (member && s->formed)
		srv_barrier_check(s);
}

/* One complete frame in @c->in. */
static void srv_frame(struct rxp__rdv_server *s, struct srv_conn *c,
		      uint8_t type, const uint8_t *body, size_t len)
{
	if (type == RDV_HELLO && c->st == SC_PENDING)
		srv_hello(s, c, body, len);
	else if (type == RDV_BARRIER && c->st == SC_MEMBER && s->formed &&
		 len == 0) {
		c->in_barrier = true;
		srv_barrier_check(s);
	} else if (c->st == SC_MEMBER) {
		srv_lost(s, c); /* a member off the protocol: drop it */
	} else {
		srv_refuse(s, c, -RXP_E_PROTO, "unexpected message");
	}
}

static void srv_read(struct rxp__rdv_server *s, struct srv_conn *c)
{
	if (c->st == SC_CLOSING) {
		srv_drain(s, c);
		return;
	}
	for (;;) {
		size_t want = 5;
		ssize_t n;

		if (c->in_len >= 5) {
			uint32_t flen = rxp_get_le32(c->in);

			if (flen < 1 || (size_t)flen + 4 > sizeof(c->in)) {
				if (c->st == SC_MEMBER)
					srv_lost(s, c);
				else
					srv_refuse(s, c, -RXP_E_PROTO,
						   "oversized frame");
				return;
			}
			want = (size_t)flen + 4;
		}
		if (c->in_len == want) {
			c->in_len = 0;
			srv_frame(s, c, c->in[4], c->in + 5, want - 5);
			if (c->st == SC_FREE || c->st == SC_CLOSING)
				return;
			continue;
		}
		n = recv(c->fd, c->in + c->in_len, want - c->in_len,
			 MSG_DONTWAIT);
		if (n > 0) {
			c->in_len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		srv_lost(s, c); /* EOF or error */
		return;
	}
}

/* A free connection entry, making room by dropping the oldest connection
 * that holds no rank when all are taken. NULL: only members. */
static struct srv_conn *srv_room(struct rxp__rdv_server *s)
{
	struct srv_conn *oldest = NULL;

	for (int i = 0; i < s->nconn; i++) {
		struct srv_conn *c = &s->c[i];

		if (c->st == SC_FREE)
			return c;
		if (c->st != SC_MEMBER && (!oldest || c->since < oldest->since))
			oldest = c;
	}
	if (oldest) {
		srv_refused(s, oldest->peer,
			    "too many connections: the oldest without a rank "
			    "is dropped");
		srv_close(s, oldest);
	}
	return oldest;
}

static void srv_accept(struct rxp__rdv_server *s)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct srv_conn *c;
	char ip[INET6_ADDRSTRLEN] = "?";
	int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl,
			 SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE) {
			/* back off instead of spinning on a full table */
			srv_refused(s, "a new connection",
				    "out of file descriptors");
			usleep(100000);
		}
		return;
	}
	sockaddr_ip(&ss, ip, sizeof(ip));
	c = srv_room(s);
	if (!c) {
		close(fd);
		return;
	}
	*c = (struct srv_conn){.fd = fd, .st = SC_PENDING, .rank = -1};
	c->since = rxp_now_ns();
	c->deadline = c->since + (int64_t)RDV_HELLO_MS * 1000000;
	snprintf(c->peer, sizeof(c->peer), "%s:%u", ip,
		 ss.ss_family == AF_INET6
			 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
			 : ntohs(((struct sockaddr_in *)&ss)->sin_port));
	if (s->formed) {
		srv_refuse(s, c, -EALREADY,
			   "the world has formed: no rank is free");
		return;
	}
	rxp_put_le32(c->chal, RDV_MAGIC);
	rxp_put_le16(c->chal + 4, RDV_VERSION);
	rxp_put_le16(c->chal + 6, s->key.on ? RDV_F_AUTH : 0);
	rxp_put_le32(c->chal + 8, (uint32_t)s->world);
	rxp_auth_nonce(c->chal + 12, NONCE_LEN);
	if (srv_queue(c, RDV_CHALLENGE, c->chal, CHAL_LEN)) {
		srv_close(s, c);
		return;
	}
	srv_flush(s, c);
}

/* Close connections past their deadline; the next deadline, or 0. */
static int64_t srv_expire(struct rxp__rdv_server *s, int64_t now)
{
	int64_t next = 0;

	for (int i = 0; i < s->nconn; i++) {
		struct srv_conn *c = &s->c[i];

		if (c->st == SC_PENDING && now >= c->deadline)
			srv_refuse(s, c, -ETIMEDOUT, "no valid hello in time");
		else if (c->st == SC_CLOSING && now >= c->deadline)
			srv_close(s, c); /* it does not read its ERROR */
	}
	for (int i = 0; i < s->nconn; i++) {
		const struct srv_conn *c = &s->c[i];

		if ((c->st == SC_PENDING || c->st == SC_CLOSING) &&
		    (!next || c->deadline < next))
			next = c->deadline;
	}
	return next;
}

static void *srv_main(void *arg)
{
	struct rxp__rdv_server *s = arg;
	struct pollfd *p = rxp__calloc((size_t)s->nconn + 2, sizeof(*p));
	int *idx = rxp__calloc((size_t)s->nconn + 2, sizeof(*idx));

	if (!p || !idx)
		goto out;
	for (;;) {
		int64_t now = rxp_now_ns(), next = srv_expire(s, now);
		int n = 0, members = 0, ms = -1;

		p[n++] = (struct pollfd){.fd = s->stop_pipe[0],
					 .events = POLLIN};
		p[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
		for (int i = 0; i < s->nconn; i++) {
			struct srv_conn *c = &s->c[i];

			if (c->st == SC_FREE)
				continue;
			members += c->st == SC_MEMBER;
			idx[n] = i;
			p[n++] = (struct pollfd){
				.fd = c->fd,
				.events = (short)(POLLIN |
						  (c->out_off < c->out_len
							   ? POLLOUT
							   : 0))};
		}
		/* formed and every member gone (joined shut down): done */
		if (s->formed && !members)
			break;
		if (next) {
			int64_t left = (next - now) / 1000000 + 1;

			ms = left > 1000 ? 1000 : (int)left;
		}
		if (poll(p, (nfds_t)n, ms) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN)
			srv_accept(s);
		for (int k = 2; k < n; k++) {
			struct srv_conn *c = &s->c[idx[k]];

			if (c->st == SC_FREE || c->fd != p[k].fd)
				continue; /* closed or reused meanwhile */
			if (p[k].revents & POLLOUT)
				srv_flush(s, c);
			if (c->st != SC_FREE &&
			    (p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				srv_read(s, c);
		}
	}
out:
	rxp__free(idx);
	rxp__free(p);
	return NULL;
}

/* Bind @fd to @ss or, when that is not an address of this host (a
 * MASTER_ADDR that is a service or DNS address forwarding here), to the
 * wildcard of its family. 0 or -errno. */
static int srv_bind(int fd, struct sockaddr_storage *ss, socklen_t sl,
		    const char *host, int port)
{
	bool v6 = ss->ss_family == AF_INET6;

	if (!bind(fd, (struct sockaddr *)ss, sl))
		return 0;
	if (errno != EADDRNOTAVAIL)
		return -errno;
	if (v6)
		((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_any;
	else
		((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_ANY);
	rxp_info(LOG,
		 "%s is not an address of this host: rank 0 listens on %s "
		 "port %d instead",
		 host, v6 ? "[::]" : "0.0.0.0", port);
	return bind(fd, (struct sockaddr *)ss, sl) ? -errno : 0;
}

int rxp__rdv_serve(const char *host, int port, int world,
		   const struct rxp_auth_key *key, struct rxp__rdv_server **out)
{
	struct rxp__rdv_server *s;
	struct sockaddr_storage ss;
	socklen_t sl;
	int ret, one = 1;

	if (world < 1 || world > MAX_WORLD)
		return -EINVAL;
	ret = resolve(host, port, true, 0, &ss, &sl);
	if (ret)
		return ret;
	s = rxp__calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->world = world;
	s->lfd = -1;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	if (key)
		s->key = *key;
	snprintf(s->where, sizeof(s->where), "%s:%d", host, port);
	s->nconn = world + SRV_PENDING_MAX;
	s->c = rxp__calloc((size_t)s->nconn, sizeof(*s->c));
	s->slot = rxp__malloc((size_t)world * sizeof(*s->slot));
	s->seen = rxp__calloc((size_t)world, sizeof(*s->seen));
	if (!s->c || !s->slot || !s->seen) {
		ret = -ENOMEM;
		goto err_free;
	}
	for (int i = 0; i < s->nconn; i++)
		s->c[i] = (struct srv_conn){.fd = -1, .st = SC_FREE};
	for (int r = 0; r < world; r++)
		s->slot[r] = -1;
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		ret = -errno;
		goto err_free;
	}
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ret = srv_bind(s->lfd, &ss, sl, host, port);
	if (ret || listen(s->lfd, 128)) {
		ret = ret ? ret : -errno;
		rxp_err(LOG, "rank 0 cannot listen on %s:%d: %s", host, port,
			rxp_strerror(ret));
		goto err_free;
	}
	if (pipe2(s->stop_pipe, O_CLOEXEC)) {
		ret = -errno;
		goto err_free;
	}
	ret = -pthread_create(&s->thread, NULL, srv_main, s);
	if (ret)
		goto err_free;
	rxp_dbg(LOG, "rank 0 serves the rendezvous of %d on %s%s", world,
		s->where, s->key.on ? " (authenticated)" : "");
	*out = s;
	return 0;

err_free:
	if (s->stop_pipe[0] >= 0) {
		close(s->stop_pipe[0]);
		close(s->stop_pipe[1]);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	rxp_auth_wipe(&s->key);
	rxp__free(s->seen);
	rxp__free(s->slot);
	rxp__free(s->c);
	rxp__free(s);
	return ret;
}

int rxp__rdv_server_port(const struct rxp__rdv_server *s)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(s->lfd, (struct sockaddr *)&ss, &sl))
		return -errno;
	return ntohs(ss.ss_family == AF_INET6
			     ? ((struct sockaddr_in6 *)&ss)->sin6_port
			     : ((struct sockaddr_in *)&ss)->sin_port);
}

/* The ranks no worker ever held, as "2,3,..." into @buf; returns how
 * many. */
static int srv_missing(const struct rxp__rdv_server *s, char *buf, size_t cap)
{
	size_t o = 0;
	int n = 0;

	buf[0] = 0;
	for (int r = 0; r < s->world; r++) {
		if (s->seen[r])
			continue;
		if (n < STATUS_LISTED && o + 12 < cap)
			o += (size_t)snprintf(buf + o, cap - o, "%s%d",
					      n ? "," : "", r);
		n++;
	}
	if (n > STATUS_LISTED && o + 8 < cap)
		snprintf(buf + o, cap - o, ",...");
	return n;
}

void rxp__rdv_server_stop(struct rxp__rdv_server *s)
{
	char missing[160];

	if (!s)
		return;
	if (write(s->stop_pipe[1], "x", 1) < 0) {
		/* the thread still exits when every member has gone */
	}
	pthread_join(s->thread, NULL);
	/* the thread has ended: its state can be read without a lock */
	if (!s->formed && srv_missing(s, missing, sizeof(missing)))
		rxp_err(LOG,
			"the world at %s did not form: ranks %s never "
			"joined%s%s%s",
			s->where, missing, s->refused ? " (last refused: " : "",
			s->last_refused, s->refused ? ")" : "");
	if (s->refused > s->refused_logged)
		rxp_warn(LOG, "rank 0 refused %" PRIu64 " connections in all",
			 s->refused);
	for (int i = 0; i < s->nconn; i++)
		if (s->c[i].st != SC_FREE)
			srv_close(s, &s->c[i]);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	close(s->lfd);
	rxp_auth_wipe(&s->key);
	rxp__free(s->seen);
	rxp__free(s->slot);
	rxp__free(s->c);
	rxp__free(s);
}
