/* SPDX-License-Identifier: MIT */
/* The fake fabric's rdma_cm: fk_ids, ports, events (see test_verbs_fake.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "test_verbs_fake_int.h"

static int next_port = 20000;
static uint32_t qpnctr = 10;

/* -------------------------------------------------------------- rdma_cm */

static struct rdma_event_channel *f_create_event_channel(void)
{
	struct fk_ec *ec = calloc(1, sizeof(*ec));

	if (!ec)
		return NULL;
	ec->ch.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return &ec->ch;
}

static void f_destroy_event_channel(struct rdma_event_channel *ch)
{
	struct fk_ec *ec = (struct fk_ec *)ch;

	while (ec->head) {
		struct fk_ev *e = ec->head;

		ec->head = e->next;
		free(e);
	}
	close(ch->fd);
	free(ec);
}

static void ev_push(struct fk_id *id, enum rdma_cm_event_type t, int status,
		    const void *pd, size_t pdlen, struct fk_id *listen)
{
	struct fk_ec *ec = (struct fk_ec *)id->id.channel;
	struct fk_ev *e = calloc(1, sizeof(*e));
	uint64_t one = 1;

	e->ev.id = &id->id;
	e->ev.listen_id = listen ? &listen->id : NULL;
	e->ev.event = t;
	e->ev.status = status;
	if (pd) {
		memcpy(e->pd, pd, pdlen);
		e->ev.param.conn.private_data = e->pd;
		e->ev.param.conn.private_data_len = (uint8_t)pdlen;
	}
	e->ev.param.conn.initiator_depth = 16;
	e->ev.param.conn.responder_resources = 16;
	if (ec->tail)
		ec->tail->next = e;
	else
		ec->head = e;
	ec->tail = e;
	if (write(ec->ch.fd, &one, sizeof(one)) < 0)
		perror("fake: eventfd");
}

void fk_inject_event(struct rdma_cm_id *id, enum rdma_cm_event_type type,
		     int status)
{
	ev_push((struct fk_id *)id, type, status, NULL, 0, NULL);
}

static int f_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **out,
		       void *ctx, enum rdma_port_space ps)
{
	struct fk_id *id = calloc(1, sizeof(*id));

	if (!id) {
		errno = ENOMEM;
		return -1;
	}
	id->id.channel = ch;
	id->id.context = ctx;
	id->id.ps = ps;
	id->next = fk_ids;
	fk_ids = id;
	fk.live_ids++;
	*out = &id->id;
	return 0;
}

static int f_destroy_id(struct rdma_cm_id *x)
{
	struct fk_id *id = (struct fk_id *)x;
	struct fk_ec *ec = (struct fk_ec *)x->channel;

	for (struct fk_ev **pp = &ec->head; *pp;) {
		if ((*pp)->ev.id == x) {
			struct fk_ev *e = *pp;

			*pp = e->next;
			free(e);
		} else {
			pp = &(*pp)->next;
		}
	}
	ec->tail = NULL;
	for (struct fk_ev *e = ec->head; e; e = e->next)
		ec->tail = e;
	for (struct fk_id **pp = &fk_ids; *pp; pp = &(*pp)->next) {
		if (*pp == id) {
			*pp = id->next;
			break;
		}
	}
	for (struct fk_id *o = fk_ids; o; o = o->next)
		if (o->peer == id)
			o->peer = NULL;
	free(id);
	fk.live_ids--;
	return 0;
}

static int sa_port(const struct sockaddr *sa)
{
	return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

static bool sa_is_fabric(const struct sockaddr *sa)
{
	const struct sockaddr_in *v4 = (const void *)sa;
	const uint8_t *ip = (const uint8_t *)&v4->sin_addr;

	return sa->sa_family == AF_INET &&
	       (!memcmp(ip, fk.dev[0].ip, 4) || !v4->sin_addr.s_addr);
}

static int f_bind_addr(struct rdma_cm_id *x, struct sockaddr *sa)
{
	struct fk_id *id = (struct fk_id *)x;
	int port = sa_port(sa);

	if (fk__fail_now(FK_BIND))
		return -1;
	if (!sa_is_fabric(sa)) {
		errno = EADDRNOTAVAIL;
		return -1;
	}
	for (struct fk_id *o = fk_ids; o && port; o = o->next) {
		if (o != id && o->port == port) {
			errno = EADDRINUSE;
			return -1;
		}
	}
	id->port = port ? port : next_port++;
	memcpy(&x->route.addr.src_addr, sa, sizeof(struct sockaddr_in));
	((struct sockaddr_in *)&x->route.addr.src_addr)->sin_port =
		htons((uint16_t)id->port);
	x->verbs = &fk_devs[0].ctx;
	x->port_num = 1;
	return 0;
}

static int f_listen(struct rdma_cm_id *x, int backlog)
{
	((struct fk_id *)x)->listening = true;
	return 0;
}

static int f_resolve_addr(struct rdma_cm_id *x, struct sockaddr *src,
			  struct sockaddr *dst, int ms)
{
	struct fk_id *id = (struct fk_id *)x;

	if (fk__fail_now(FK_RESOLVE_ADDR))
		return -1;
	id->dst_port = sa_port(dst);
	memcpy(&x->route.addr.dst_addr, dst, sizeof(struct sockaddr_in));
	if (!id->port)
		id->port = next_port++;
	((struct sockaddr_in *)&x->route.addr.src_addr)->sin_family = AF_INET;
	memcpy(&((struct sockaddr_in *)&x->route.addr.src_addr)->sin_addr,
	       fk.dev[0].ip, 4);
	((struct sockaddr_in *)&x->route.addr.src_addr)->sin_port =
		htons((uint16_t)id->port);
	if (fk.addr_error || !sa_is_fabric(dst)) {
		ev_push(id, RDMA_CM_EVENT_ADDR_ERROR,
			fk.addr_error ? fk.addr_error : -EHOSTUNREACH, NULL, 0,
			NULL);
		return 0;
	}
	x->verbs = &fk_devs[0].ctx;
	x->port_num = 1;
	ev_push(id, RDMA_CM_EVENT_ADDR_RESOLVED, 0, NULL, 0, NULL);
	return 0;
}

static int f_resolve_route(struct rdma_cm_id *x, int ms)
{
	struct fk_id *id = (struct fk_id *)x;

	if (fk__fail_now(FK_RESOLVE_ROUTE))
		return -1;
	if (fk.route_error)
		ev_push(id, RDMA_CM_EVENT_ROUTE_ERROR, fk.route_error, NULL, 0,
			NULL);
	else
		ev_push(id, RDMA_CM_EVENT_ROUTE_RESOLVED, 0, NULL, 0, NULL);
	return 0;
}

static int f_create_qp(struct rdma_cm_id *x, struct ibv_pd *pd,
		       struct ibv_qp_init_attr *a)
{
	struct fk_qp *q;

	if (fk__fail_now(FK_CREATE_QP))
		return -1;
	if (a->cap.max_inline_data > fk.max_inline) {
		errno = EINVAL;
		return -1;
	}
	q = calloc(1, sizeof(*q));
	q->max_wr = a->cap.max_send_wr;
	q->sq = calloc(q->max_wr, sizeof(*q->sq));
	q->qp.qp_num = ++qpnctr;
	q->qp.pd = pd;
	q->qp.context = pd->context;
	q->qp.srq = a->srq;
	q->qp.qp_type = IBV_QPT_RC;
	q->cq = (struct fk_cq *)a->send_cq;
	q->srq = (struct fk_srq *)a->srq;
	q->next = fk_qps;
	fk_qps = q;
	x->qp = &q->qp;
	fk.live_qps++;
	return 0;
}

static void f_destroy_qp(struct rdma_cm_id *x)
{
	struct fk_qp *q = (struct fk_qp *)x->qp;

	if (!q)
		return;
	for (struct fk_qp **pp = &fk_qps; *pp; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	}
	for (struct fk_qp *o = fk_qps; o; o = o->next)
		if (o->peer == q)
			o->peer = NULL;
	for (int i = 0; i < q->sq_n; i++)
		free(q->sq[(q->sq_head + i) % (int)q->max_wr].inl);
	free(q->sq);
	free(q);
	x->qp = NULL;
	fk.live_qps--;
}

static struct fk_id *listener(int port)
{
	for (struct fk_id *o = fk_ids; o; o = o->next)
		if (o->listening && o->port == port)
			return o;
	return NULL;
}

static int f_connect(struct rdma_cm_id *x, struct rdma_conn_param *p)
{
	struct fk_id *id = (struct fk_id *)x, *l, *pas;
	uint8_t pd[56] = {0};

	if (fk__fail_now(FK_CONNECT))
		return -1;
	if (fk.no_answer)
		return 0;
	if (fk.unreachable) {
		ev_push(id, RDMA_CM_EVENT_UNREACHABLE, fk.unreachable, NULL, 0,
			NULL);
		return 0;
	}
	if (fk.raw_port && id->dst_port == fk.raw_port) {
		ev_push(id,
			fk.raw_reject ? RDMA_CM_EVENT_REJECTED
				      : RDMA_CM_EVENT_ESTABLISHED,
			fk.raw_reject ? 28 : 0, fk.raw_pd, fk.raw_pd_len, NULL);
		return 0;
	}
	l = listener(id->dst_port);
	if (!l) {
		ev_push(id, RDMA_CM_EVENT_REJECTED, 8, NULL, 0, NULL);
		return 0;
	}
	if (f_create_id(l->id.channel, (struct rdma_cm_id **)&pas,
			l->id.context, RDMA_PS_TCP))
		return -1;
	pas->id.verbs = &fk_devs[0].ctx;
	pas->id.port_num = 1;
	memcpy(&pas->id.route.addr.dst_addr, &x->route.addr.src_addr,
	       sizeof(struct sockaddr_in));
	pas->peer = id;
	id->peer = pas;
	memcpy(pd, p->private_data, p->private_data_len);
	ev_push(pas, RDMA_CM_EVENT_CONNECT_REQUEST, 0, pd, sizeof(pd), l);
	return 0;
}

struct rdma_cm_id *fk_inject_connect(int port, const void *pd, size_t len)
{
	struct fk_id *l = listener(port), *pas;

	if (!l || f_create_id(l->id.channel, (struct rdma_cm_id **)&pas,
			      l->id.context, RDMA_PS_TCP))
		return NULL;
	pas->id.verbs = &fk_devs[0].ctx;
	pas->id.port_num = 1;
	((struct sockaddr_in *)&pas->id.route.addr.dst_addr)->sin_family =
		AF_INET;
	ev_push(pas, RDMA_CM_EVENT_CONNECT_REQUEST, 0, pd, len, l);
	return &pas->id;
}

static int f_accept(struct rdma_cm_id *x, struct rdma_conn_param *p)
{
	struct fk_id *id = (struct fk_id *)x, *act = id->peer;
	uint8_t pd[196] = {0};

	if (fk__fail_now(FK_ACCEPT))
		return -1;
	memcpy(pd, p->private_data, p->private_data_len);
	memcpy(fk.last_accept, pd, sizeof(pd));
	fk.last_accept_len = p->private_data_len;
	if (act && act->id.qp && x->qp) {
		((struct fk_qp *)act->id.qp)->peer = (struct fk_qp *)x->qp;
		((struct fk_qp *)x->qp)->peer = (struct fk_qp *)act->id.qp;
		ev_push(act, RDMA_CM_EVENT_ESTABLISHED, 0, pd, sizeof(pd),
			NULL);
	}
	ev_push(id, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, 0, NULL);
	return 0;
}

static int f_reject(struct rdma_cm_id *x, const void *pd, uint8_t len)
{
	struct fk_id *id = (struct fk_id *)x;
	uint8_t buf[148] = {0};

	fk.rejects++;
	memcpy(buf, pd, len);
	memcpy(fk.last_reject, buf, sizeof(buf));
	fk.last_reject_len = len;
	if (id->peer)
		ev_push(id->peer, RDMA_CM_EVENT_REJECTED, 28, buf, sizeof(buf),
			NULL);
	return 0;
}

static int f_disconnect(struct rdma_cm_id *x)
{
	struct fk_id *id = (struct fk_id *)x;

	if (x->qp)
		((struct fk_qp *)x->qp)->err = true;
	if (id->peer) {
		ev_push(id->peer, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0, NULL);
		id->peer->peer = NULL;
	}
	if (id->peer || x->qp)
		ev_push(id, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, 0, NULL);
	id->peer = NULL;
	return 0;
}

static int f_get_cm_event(struct rdma_event_channel *ch,
			  struct rdma_cm_event **out)
{
	struct fk_ec *ec = (struct fk_ec *)ch;
	struct fk_ev *e = ec->head;
	uint64_t v;

	if (!e) {
		if (read(ch->fd, &v, sizeof(v)) < 0)
			(void)v;
		errno = EAGAIN;
		return -1;
	}
	ec->head = e->next;
	if (!ec->head)
		ec->tail = NULL;
	*out = &e->ev;
	return 0;
}

static int f_ack_cm_event(struct rdma_cm_event *ev)
{
	free(ev);
	return 0;
}

static uint16_t f_get_src_port(struct rdma_cm_id *x)
{
	return htons((uint16_t)((struct fk_id *)x)->port);
}

static struct ibv_context **f_get_devices(int *n)
{
	struct ibv_context **l = calloc(2, sizeof(*l));

	fk_devs[0].ctx.device = &fk_devs[0].dev;
	l[0] = &fk_devs[0].ctx;
	*n = 1;
	return l;
}

static void f_free_devices(struct ibv_context **l)
{
	free(l);
}

void fk__fill_cm(struct verbs_sys *s)
{
	s->create_event_channel = f_create_event_channel;
	s->destroy_event_channel = f_destroy_event_channel;
	s->create_id = f_create_id;
	s->destroy_id = f_destroy_id;
	s->bind_addr = f_bind_addr;
	s->listen = f_listen;
	s->resolve_addr = f_resolve_addr;
	s->resolve_route = f_resolve_route;
	s->create_qp = f_create_qp;
	s->destroy_qp = f_destroy_qp;
	s->connect = f_connect;
	s->accept = f_accept;
	s->reject = f_reject;
	s->disconnect = f_disconnect;
	s->get_cm_event = f_get_cm_event;
	s->ack_cm_event = f_ack_cm_event;
	s->get_src_port = f_get_src_port;
	s->get_devices = f_get_devices;
	s->free_devices = f_free_devices;
}
