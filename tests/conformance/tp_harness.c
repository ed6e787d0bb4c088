/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "skip.h"
#include "tp_harness.h"

static uint64_t g_seq;

uint64_t h_seq(void)
{
	return ++g_seq;
}

int64_t h_now_ms(void)
{
	return rxp_now_ns() / 1000000;
}

/* the backend fault:<x> wraps (h_ops sets it, h_open_ops gives it) */
static const struct rxp_tp_ops *g_fault_inner;

static const struct rxp_tp_ops *ops_named(const char *t, unsigned *flags,
					  const char **want_name)
{
	*flags = 0;
	if (t && !strncmp(t, "fault:", 6)) {
		/* the fault transport with no rules: a pass-through, which
		 * must meet the whole contract too */
		g_fault_inner = ops_named(t + 6, flags, want_name);
		return &rxp_fault_ops;
	}
	if (!t || !*t || !strcmp(t, "tcp")) {
		*want_name = "tcp";
		return &rxp_tcp_ops;
	}
	if (!strcmp(t, "tcp-poll")) {
		*flags = RXP_TP_F_NO_URING;
		*want_name = "tcp-poll";
		return &rxp_tcp_ops;
	}
	if (!strcmp(t, "verbs")) {
		*want_name = "verbs";
		return &rxp_verbs_ops;
	}
	if (!strcmp(t, "shm")) {
		*want_name = "shm";
		return &rxp_shm_ops;
	}
	fprintf(stderr,
		"RXP_TEST_TRANSPORT=%s: not "
		"tcp|tcp-poll|verbs|shm|fault:<one>\n",
		t);
	exit(2);
}

const struct rxp_tp_ops *h_ops(unsigned *flags, const char **want_name)
{
	return ops_named(getenv("RXP_TEST_TRANSPORT"), flags, want_name);
}

const char *h_bind_addr(void)
{
	const char *a = getenv("RXP_TEST_ADDR");

	if (!a || !*a)
		a = getenv("RXP_ADDR_A"); /* set inside the rxe guest */
	return a && *a ? a : "127.0.0.1";
}

/* Side @id's address: in the guest's two-device mode, odd sides bind
 * device B (RXP_ADDR_B), so traffic really goes rxe0 <-> rxe1. */
static const char *h_bind_addr_for(uint32_t id)
{
	const char *b = getenv("RXP_ADDR_B");

	return id % 2 && b && *b && !getenv("RXP_TEST_ADDR") ? b
							     : h_bind_addr();
}

static void on_conn(void *ctx, struct rxp_conn *c, int status)
{
	struct h_side *s = ctx;
	struct h_conn_ev ev = {
		.c = c,
		.status = status,
		.peer_id = c->peer_id,
		.outgoing = c->outgoing,
		.seq = h_seq(),
	};

	if (status == 0 && s->nup < H_MAX_CONNS)
		s->up[s->nup++] = ev;
	else if (status < 0 && s->ndown < H_MAX_CONNS)
		s->down[s->ndown++] = ev;
}

static void on_recv(void *ctx, struct rxp_conn *c, const struct rxp_msg_in *m)
{
	struct h_side *s = ctx;
	struct h_msg *r;

	if (s->nmsgs >= H_MAX_MSGS)
		return;
	r = &s->msgs[s->nmsgs++];
	memset(r, 0, sizeof(*r));
	r->type = m->type;
	r->flags = m->flags;
	r->id = m->id;
	r->conn = c;
	r->payload_len = m->payload->len;
	r->nstorages = m->nstorages;
	r->ok = true;
	if (s->verify) {
		r->ok = pattern_check(m->payload->data, m->payload->len, m->id,
				      0);
		for (uint32_t i = 0; i < m->nstorages && r->ok; i++)
			r->ok = pattern_check(m->storages[i]->data,
					      m->storages[i]->len, m->id,
					      i + 1);
	}
	if (s->keep) {
		r->keep[r->nkeep++] = rxp_buf_get(m->payload);
		for (uint32_t i = 0; i < m->nstorages && r->nkeep < H_MAX_KEEP;
		     i++)
			r->keep[r->nkeep++] = rxp_buf_get(m->storages[i]);
	}
	if (s->recv_hook)
		s->recv_hook(s, c, m);
}

static void on_send(void *ctx, void *cookie, int status)
{
	struct h_side *s = ctx;
	struct h_send *x = cookie;

	s->nsend_cb++;
	x->calls++;
	x->status = status;
	x->seq = h_seq();
}

int h_open(struct h_side *s, const char *name, uint32_t id,
	   const struct rxp_tp_attr *tmpl)
{
	unsigned flags;
	const char *want;
	const struct rxp_tp_ops *ops = h_ops(&flags, &want);

	return h_open_ops(s, name, id, tmpl, ops, flags, want);
}

int h_open_ops(struct h_side *s, const char *name, uint32_t id,
	       const struct rxp_tp_attr *tmpl, const struct rxp_tp_ops *ops,
	       unsigned flags, const char *want)
{
	struct rxp_tp_attr attr = {.flags = flags};
	int err;

	memset(s, 0, sizeof(*s));
	s->msgs = calloc(H_MAX_MSGS, sizeof(*s->msgs));
	if (!s->msgs)
		return -ENOMEM;
	s->name = name;
	s->id = id;
	s->verify = true;
	s->cb = (struct rxp_tp_cb){s, on_conn, on_recv, on_send};
	if (tmpl) {
		unsigned f = attr.flags;

		attr = *tmpl;
		attr.flags |= f;
	}
	if (!attr.bind_addr)
		attr.bind_addr = h_bind_addr_for(id);
	attr.local_id = id;
	attr.cb = &s->cb;
	if (ops == &rxp_fault_ops && !attr.inner)
		attr.inner = g_fault_inner;
	if (!ops->open) {
		fprintf(stderr, "%s: backend not built: skipped\n", want);
		exit(rxp_test_skip_code());
	}
	err = ops->open(&attr, &s->tp);
	if (err == -RXP_E_NO_DEVICE) {
		fprintf(stderr, "%s: no device: skipped\n", want);
		exit(rxp_test_skip_code());
	}
	if (err) {
		free(s->msgs);
		s->msgs = NULL;
		return err;
	}
	if (want && strcmp(s->tp->name, want)) {
		fprintf(stderr, "asked for %s, got %s: skipped\n", want,
			s->tp->name);
		exit(rxp_test_skip_code());
	}
	err = s->tp->ops->address(s->tp, s->addr, sizeof(s->addr));
	if (err)
		return err;
	return 0;
}

void h_close(struct h_side *s)
{
	if (s->tp)
		s->tp->ops->close(s->tp);
	s->tp = NULL;
	for (int i = 0; s->msgs && i < s->nmsgs; i++)
		for (uint32_t k = 0; k < s->msgs[i].nkeep; k++)
			rxp_buf_put(s->msgs[i].keep[k]);
	free(s->msgs);
	s->msgs = NULL;
}

static void step(struct h_side *s)
{
	int r;

	if (!s || !s->tp)
		return;
	r = s->tp->ops->progress(s->tp);
	if (r < 0) {
		fprintf(stderr, "%s: progress failed: %d\n", s->name, r);
		abort();
	}
}

static bool never(void *arg);

bool h_pump(struct h_side *a, struct h_side *b, bool (*cond)(void *), void *arg,
	    int ms)
{
	const char *sc = getenv("RXP_TEST_TIMEOUT_SCALE");
	int64_t end;

	/* waiting for something: allow the slow guest its factor */
	if (cond != never && sc && atoi(sc) > 1)
		ms *= atoi(sc);
	end = h_now_ms() + ms;

	do {
		if (cond(arg))
			return true;
		step(a);
		step(b);
	} while (h_now_ms() < end);
	return cond(arg);
}

static bool never(void *arg)
{
	return false;
}

void h_spin(struct h_side *a, struct h_side *b, int ms)
{
	h_pump(a, b, never, NULL, ms);
}

struct up_pair {
	struct h_side *a, *b;
};

static bool both_up(void *arg)
{
	struct up_pair *p = arg;

	return p->a->nup >= 1 && p->b->nup >= 1;
}

struct rxp_conn *h_connect(struct h_side *a, struct h_side *b,
			   struct rxp_conn **accepted)
{
	struct up_pair p = {a, b};
	struct rxp_conn *c = NULL;

	if (a->tp->ops->connect(a->tp, b->addr, b->id, &c))
		return NULL;
	if (!h_pump(a, b, both_up, &p, 5000))
		return NULL;
	if (accepted)
		*accepted = b->up[0].c;
	return c;
}

int h_dead_port(const char *addr)
{
	struct sockaddr_storage sa = {0};
	struct sockaddr_in *v4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&sa;
	socklen_t len;
	int fd, port = -1;

	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		len = sizeof(*v6);
	} else {
		return -1;
	}
	fd = socket(sa.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (!bind(fd, (struct sockaddr *)&sa, len) &&
	    !getsockname(fd, (struct sockaddr *)&sa, &len))
		port = ntohs(sa.ss_family == AF_INET ? v4->sin_port
						     : v6->sin6_port);
	close(fd);
	return port;
}

bool h_is_shm(void)
{
	const char *t = getenv("RXP_TEST_TRANSPORT");

	if (t && !strncmp(t, "fault:", 6))
		t += 6;
	return t && !strcmp(t, "shm");
}

int h_dead_addr(char *buf, size_t len)
{
	int port;

	if (h_is_shm()) /* an abstract socket name nobody has bound */
		return snprintf(buf, len, "shm:rxp.dead.%d", (int)getpid()) > 0
			       ? 0
			       : -1;
	port = h_dead_port(h_bind_addr());
	if (port <= 0)
		return -1;
	if (strchr(h_bind_addr(), ':'))
		snprintf(buf, len, "[%s]:%d", h_bind_addr(), port);
	else
		snprintf(buf, len, "%s:%d", h_bind_addr(), port);
	return 0;
}
