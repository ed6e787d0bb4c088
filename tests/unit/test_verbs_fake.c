/* SPDX-License-Identifier: MIT */
/* A fake RDMA fabric behind struct verbs_sys: see test_verbs_fake.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "test_verbs_fake_int.h"

struct fk_knobs fk;
struct verbs_sys fk_sys;

struct fk_dev fk_devs[2];
struct fk_mr *fk_mrs;
struct fk_qp *fk_qps;
struct fk_id *fk_ids;
static uint32_t keyctr = 100;

bool fk__fail_now(enum fk_fn f)
{
	fk.calls[f]++;
	if (fk.fail[f].after < 0)
		return false;
	if (fk.fail[f].after > 0) {
		fk.fail[f].after--;
		return false;
	}
	if (!fk.fail[f].sticky)
		fk.fail[f].after = -1;
	errno = fk.fail[f].err;
	return true;
}

void fk_fail(enum fk_fn f, int n, int err, bool sticky)
{
	fk.fail[f].after = n;
	fk.fail[f].err = err;
	fk.fail[f].sticky = sticky;
}

#define FK_MAX_REPLAY 256
static struct fk_replay {
	uint32_t qpn, rkey; /* the responder's QP */
	uint64_t raddr, len;
	int64_t at;
} fk_replay[FK_MAX_REPLAY];
static int fk_nreplay;

void fk_reset(void)
{
	fk__fill_verbs(&fk_sys);
	fk__fill_cm(&fk_sys);
	memset(&fk, 0, sizeof(fk));
	fk_nreplay = 0;
	for (int i = 0; i < FK__COUNT; i++)
		fk.fail[i].after = -1;
	fk.ndev = 1;
	fk.max_inline = 256;
	for (int i = 0; i < 2; i++) {
		struct fk_dev_cfg *d = &fk.dev[i];

		snprintf(d->name, sizeof(d->name), "fk%d", i);
		d->state = IBV_PORT_ACTIVE;
		d->max_srq = 1024;
		d->link_layer = IBV_LINK_LAYER_ETHERNET;
		d->ip[0] = 10;
		d->ip[3] = (uint8_t)(1 + i);
	}
}

/* ------------------------------------------------------------ devices */

static struct ibv_device **f_get_device_list(int *n)
{
	struct ibv_device **l = calloc(3, sizeof(*l));

	if (!l)
		return NULL;
	*n = fk.ndev;
	for (int i = 0; i < fk.ndev; i++) {
		snprintf(fk_devs[i].dev.name, sizeof(fk_devs[i].dev.name), "%s",
			 fk.dev[i].name);
		fk_devs[i].ctx.device = &fk_devs[i].dev;
		l[i] = &fk_devs[i].dev;
	}
	if (!fk.ndev) {
		free(l);
		errno = ENOSYS;
		return NULL;
	}
	return l;
}

static void f_free_device_list(struct ibv_device **l)
{
	free(l);
}

static const char *f_get_device_name(struct ibv_device *d)
{
	return d->name;
}

static struct fk_dev_cfg *cfg_of(struct ibv_context *ctx)
{
	return &fk.dev[(struct fk_dev *)(void *)ctx->device == &fk_devs[1] ? 1
									   : 0];
}

static struct ibv_context *f_open_device(struct ibv_device *d)
{
	return &((struct fk_dev *)(void *)d)->ctx;
}

static int f_close_device(struct ibv_context *ctx)
{
	return 0;
}

static int f_query_device(struct ibv_context *ctx, struct ibv_device_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->phys_port_cnt = 1;
	a->max_qp_wr = 16384;
	a->max_cqe = 65535;
	a->max_srq = cfg_of(ctx)->max_srq;
	a->max_srq_wr = cfg_of(ctx)->max_srq ? 16384 : 0;
	a->max_qp_rd_atom = 16;
	a->max_qp_init_rd_atom = 16;
	a->vendor_id = 0x1234;
	return 0;
}

static int f_query_port(struct ibv_context *ctx, uint8_t port,
			struct ibv_port_attr *a)
{
	struct fk_dev_cfg *c = cfg_of(ctx);

	if (port != 1)
		return EINVAL;
	memset(a, 0, sizeof(*a));
	a->state = c->state;
	a->active_mtu = IBV_MTU_1024;
	a->max_mtu = IBV_MTU_4096;
	a->link_layer = (uint8_t)c->link_layer;
	a->lid = c->lid;
	a->gid_tbl_len = 4;
	a->max_msg_sz = 1u << 31;
	return 0;
}

static ssize_t f_query_gid_table(struct ibv_context *ctx,
				 struct ibv_gid_entry *e, size_t max)
{
	struct fk_dev_cfg *c = cfg_of(ctx);

	if (max < 3)
		return -EINVAL;
	memset(e, 0, 3 * sizeof(*e));
	for (int i = 0; i < 3; i++) {
		e[i].gid_index = (uint32_t)i;
		e[i].port_num = 1;
		e[i].gid_type = IBV_GID_TYPE_ROCE_V2;
	}
	e[0].gid.raw[0] = 0xfe;
	e[0].gid.raw[1] = 0x80;
	e[0].gid.raw[15] = 1;
	for (int i = 1; i < 3; i++) {
		e[i].gid.raw[10] = e[i].gid.raw[11] = 0xff;
		memcpy(&e[i].gid.raw[12], c->ip, 4);
	}
	e[2].gid_type = IBV_GID_TYPE_ROCE_V1;
	if (c->v1_only)
		e[1].gid_type = IBV_GID_TYPE_ROCE_V1;
	return 3;
}

static int f_fork_init(void)
{
	return 0;
}

static enum ibv_fork_status f_is_fork_initialized(void)
{
	return IBV_FORK_UNNEEDED;
}

static struct ibv_pd *f_alloc_pd(struct ibv_context *ctx)
{
	struct ibv_pd *pd;

	if (fk__fail_now(FK_ALLOC_PD))
		return NULL;
	pd = calloc(1, sizeof(*pd));
	if (pd)
		pd->context = ctx;
	return pd;
}

static int f_dealloc_pd(struct ibv_pd *pd)
{
	for (struct fk_mr *m = fk_mrs; m; m = m->next)
		if (m->mr.pd == pd)
			return EBUSY;
	free(pd);
	return 0;
}

struct ibv_mr *fk__reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access)
{
	struct fk_mr *m;

	fk.reg_mr_calls++;
	if (fk__fail_now(FK_REG_MR))
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	m->mr.context = pd->context;
	m->mr.pd = pd;
	m->mr.addr = addr;
	m->mr.length = len;
	m->mr.lkey = m->mr.rkey = ++keyctr;
	m->access = access;
	m->next = fk_mrs;
	fk_mrs = m;
	fk.live_mrs++;
	return &m->mr;
}

static int f_dereg_mr(struct ibv_mr *mr)
{
	for (struct fk_mr **pp = &fk_mrs; *pp; pp = &(*pp)->next) {
		if (&(*pp)->mr == mr) {
			struct fk_mr *m = *pp;

			*pp = m->next;
			free(m);
			fk.live_mrs--;
			fk.dereg_mr_calls++;
			return 0;
		}
	}
	return EINVAL;
}

static struct fk_mr *mr_find(struct ibv_pd *pd, uint32_t key, uint64_t addr,
			     uint64_t len, int need)
{
	for (struct fk_mr *m = fk_mrs; m; m = m->next) {
		uintptr_t s = (uintptr_t)m->mr.addr;

		if (m->mr.pd == pd && m->mr.lkey == key && addr >= s &&
		    addr + len <= s + m->mr.length && addr + len >= addr &&
		    (m->access & need) == need)
			return m;
	}
	return NULL;
}

/* ----------------------------------------------------------------- CQs */

static struct ibv_comp_channel *f_create_comp_channel(struct ibv_context *c)
{
	struct fk_cc *cc = calloc(1, sizeof(*cc));

	if (!cc)
		return NULL;
	cc->ch.context = c;
	cc->ch.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return &cc->ch;
}

static int f_destroy_comp_channel(struct ibv_comp_channel *ch)
{
	close(ch->fd);
	free(ch);
	return 0;
}

static struct ibv_cq *f_create_cq(struct ibv_context *ctx, int cqe,
				  void *cq_ctx, struct ibv_comp_channel *ch,
				  int vec)
{
	struct fk_cq *cq;

	if (fk__fail_now(FK_CREATE_CQ))
		return NULL;
	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return NULL;
	cq->q = calloc((size_t)cqe, sizeof(*cq->q));
	cq->cap = cqe;
	cq->cq.context = ctx;
	cq->cq.channel = ch;
	cq->cq.cq_context = cq_ctx;
	cq->cq.cqe = cqe;
	fk.live_cqs++;
	return &cq->cq;
}

static int f_destroy_cq(struct ibv_cq *c)
{
	struct fk_cq *cq = (struct fk_cq *)c;

	free(cq->q);
	free(cq);
	fk.live_cqs--;
	return 0;
}

static int f_req_notify_cq(struct ibv_cq *c, int solicited)
{
	((struct fk_cq *)c)->armed = true;
	return 0;
}

void fk__cq_push(struct fk_cq *cq, const struct ibv_wc *wc, uint32_t sqpn,
		 uint64_t seq)
{
	struct fk_cqe *e;

	if (cq->n >= cq->cap) {
		fprintf(stderr, "fake: CQ overrun\n");
		abort();
	}
	e = &cq->q[(cq->head + cq->n++) % cq->cap];
	e->wc = *wc;
	e->sq_qpn = sqpn;
	e->seq = seq;
	if (cq->armed && cq->cq.channel) {
		uint64_t one = 1;

		cq->armed = false;
		if (write(cq->cq.channel->fd, &one, sizeof(one)) < 0)
			perror("fake: eventfd");
	}
}

struct fk_qp *fk__qp_find(uint32_t qpn)
{
	for (struct fk_qp *q = fk_qps; q; q = q->next)
		if (q->qp.qp_num == qpn)
			return q;
	return NULL;
}

static int f_poll_cq(struct ibv_cq *c, int n, struct ibv_wc *wc)
{
	struct fk_cq *cq = (struct fk_cq *)c;
	int k = 0;

	if (fk__fail_now(FK_POLL_CQ))
		return -errno;
	fk_run();
	while (k < n && cq->n) {
		struct fk_cqe *e = &cq->q[cq->head];
		struct fk_qp *q = e->sq_qpn ? fk__qp_find(e->sq_qpn) : NULL;

		if (q && e->seq + 1 > q->retired)
			q->retired = e->seq + 1;
		wc[k++] = e->wc;
		cq->head = (cq->head + 1) % cq->cap;
		cq->n--;
	}
	return k;
}

static int f_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq,
			  void **ctx)
{
	uint64_t v;

	if (read(ch->fd, &v, sizeof(v)) != sizeof(v))
		return -1;
	*cq = NULL;
	*ctx = NULL;
	return 0;
}

static void f_ack_cq_events(struct ibv_cq *cq, unsigned int n)
{
}

/* ---------------------------------------------------------------- SRQ */

static struct ibv_srq *f_create_srq(struct ibv_pd *pd,
				    struct ibv_srq_init_attr *a)
{
	struct fk_srq *s;

	if (fk__fail_now(FK_CREATE_SRQ))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cap = (int)a->attr.max_wr;
	s->q = calloc((size_t)s->cap, sizeof(*s->q));
	s->srq.pd = pd;
	s->srq.context = pd->context;
	return &s->srq;
}

static int f_destroy_srq(struct ibv_srq *x)
{
	struct fk_srq *s = (struct fk_srq *)x;

	free(s->q);
	free(s);
	return 0;
}

static int f_post_srq_recv(struct ibv_srq *x, struct ibv_recv_wr *wr,
			   struct ibv_recv_wr **bad)
{
	struct fk_srq *s = (struct fk_srq *)x;

	if (fk__fail_now(FK_POST_SRQ_RECV)) {
		*bad = wr;
		return errno;
	}
	for (; wr; wr = wr->next) {
		if (s->n >= s->cap || wr->num_sge != 1) {
			*bad = wr;
			return ENOMEM;
		}
		s->q[(s->head + s->n++) % s->cap] = (struct fk_rwqe){
			wr->wr_id, wr->sg_list[0].addr, wr->sg_list[0].length,
			wr->sg_list[0].lkey};
	}
	return 0;
}

bool fk__srq_pop(struct fk_srq *s, struct fk_rwqe *out)
{
	if (!s->n)
		return false;
	*out = s->q[s->head];
	s->head = (s->head + 1) % s->cap;
	s->n--;
	return true;
}

/* ------------------------------------------------------ work requests */

static void qp_error(struct fk_qp *q)
{
	q->err = true;
}

static void send_cqe(struct fk_qp *q, struct fk_wr *w, enum ibv_wc_status st)
{
	struct ibv_wc wc = {.wr_id = w->wr_id,
			    .status = st,
			    .qp_num = q->qp.qp_num,
			    .opcode = w->opcode == IBV_WR_RDMA_READ
					      ? IBV_WC_RDMA_READ
					      : IBV_WC_SEND};

	if (st == IBV_WC_SUCCESS && !(w->flags & IBV_SEND_SIGNALED))
		return;
	fk__cq_push(q->cq, &wc, q->qp.qp_num, w->seq);
}

static enum ibv_wc_status do_send(struct fk_qp *q, struct fk_wr *w)
{
	struct fk_qp *p = q->peer;
	struct fk_rwqe r;
	struct ibv_wc wc = {0};
	const void *src = w->inl ? w->inl : (void *)(uintptr_t)w->laddr;

	if (!p || p->err)
		return IBV_WC_RETRY_EXC_ERR;
	if (w->has_sge && !w->inl &&
	    !mr_find(q->qp.pd, w->lkey, w->laddr, w->len, 0))
		return IBV_WC_LOC_PROT_ERR;
	if (!fk__srq_pop(p->srq, &r)) {
		fk.rnr++;
		return IBV_WC_RNR_RETRY_EXC_ERR;
	}
	wc.wr_id = r.wr_id;
	wc.qp_num = p->qp.qp_num;
	wc.opcode = IBV_WC_RECV;
	if (w->len > r.len) {
		wc.status = IBV_WC_LOC_LEN_ERR;
		fk__cq_push(p->cq, &wc, 0, 0);
		qp_error(p);
		return IBV_WC_REM_INV_REQ_ERR;
	}
	memcpy((void *)(uintptr_t)r.addr, src, w->len);
	wc.byte_len = w->len;
	fk__cq_push(p->cq, &wc, 0, 0);
	fk.sends_executed++;
	return IBV_WC_SUCCESS;
}

static enum ibv_wc_status do_read(struct fk_qp *q, struct fk_wr *w)
{
	struct fk_qp *p = q->peer;
	struct fk_mr *rm;

	if (!p || p->err)
		return IBV_WC_RETRY_EXC_ERR;
	if (!mr_find(q->qp.pd, w->lkey, w->laddr, w->len,
		     IBV_ACCESS_LOCAL_WRITE))
		return IBV_WC_LOC_PROT_ERR;
	rm = mr_find(p->qp.pd, w->rkey, w->raddr, w->len,
		     IBV_ACCESS_REMOTE_READ);
	if (!rm)
		return IBV_WC_REM_ACCESS_ERR;
	memcpy((void *)(uintptr_t)w->laddr, (void *)(uintptr_t)w->raddr,
	       w->len);
	fk.reads_executed++;
	if (fk.replay_reads_ms > 0 && fk_nreplay < FK_MAX_REPLAY)
		fk_replay[fk_nreplay++] = (struct fk_replay){
			p->qp.qp_num, w->rkey, w->raddr, w->len,
			rxp_now_ns() + (int64_t)fk.replay_reads_ms * 1000000};
	return IBV_WC_SUCCESS;
}

/* The duplicate READs that are due reach their responders. */
static void replay_reads(void)
{
	int64_t now = rxp_now_ns();
	int k = 0;

	for (int i = 0; i < fk_nreplay; i++) {
		struct fk_replay *r = &fk_replay[i];
		struct fk_qp *p;

		if (r->at > now) {
			fk_replay[k++] = *r;
			continue;
		}
		p = fk__qp_find(r->qpn);
		if (!p || p->err)
			continue;
		if (mr_find(p->qp.pd, r->rkey, r->raddr, r->len,
			    IBV_ACCESS_REMOTE_READ)) {
			fk.replays_ok++;
		} else {
			fk.replays_failed++;
			qp_error(p);
		}
	}
	fk_nreplay = k;
}

static void qp_run(struct fk_qp *q)
{
	while (q->sq_n) {
		struct fk_wr *w = &q->sq[q->sq_head];
		enum ibv_wc_status st;

		q->sq_head = (q->sq_head + 1) % (int)q->max_wr;
		q->sq_n--;
		if (q->err)
			st = IBV_WC_WR_FLUSH_ERR;
		else if (q->inject)
			st = (enum ibv_wc_status)q->inject;
		else if (w->opcode == IBV_WR_RDMA_READ)
			st = do_read(q, w);
		else
			st = do_send(q, w);
		q->inject = 0;
		if (st != IBV_WC_SUCCESS && st != IBV_WC_WR_FLUSH_ERR)
			qp_error(q);
		send_cqe(q, w, st);
		free(w->inl);
		w->inl = NULL;
	}
}

void fk_run(void)
{
	bool again = true;

	if (fk_nreplay)
		replay_reads();
	while (again) {
		again = false;
		for (struct fk_qp *q = fk_qps; q; q = q->next) {
			if (q->sq_n) {
				qp_run(q);
				again = true;
			}
		}
	}
}

static int f_post_send(struct ibv_qp *x, struct ibv_send_wr *wr,
		       struct ibv_send_wr **bad)
{
	struct fk_qp *q = (struct fk_qp *)x;

	if (fk__fail_now(FK_POST_SEND)) {
		*bad = wr;
		return errno;
	}
	for (; wr; wr = wr->next) {
		struct fk_wr *w;

		if (q->posted - q->retired >= q->max_wr) {
			fprintf(stderr, "fake: send queue overflow on qpn %u\n",
				q->qp.qp_num);
			*bad = wr;
			return ENOMEM;
		}
		if (wr->num_sge > 1) {
			*bad = wr;
			return EINVAL;
		}
		w = &q->sq[(q->sq_head + q->sq_n++) % (int)q->max_wr];
		memset(w, 0, sizeof(*w));
		w->wr_id = wr->wr_id;
		w->seq = q->posted++;
		w->opcode = wr->opcode;
		w->flags = (int)wr->send_flags;
		if (wr->num_sge) {
			w->has_sge = true;
			w->laddr = wr->sg_list[0].addr;
			w->len = wr->sg_list[0].length;
			w->lkey = wr->sg_list[0].lkey;
		}
		if (wr->send_flags & IBV_SEND_INLINE) {
			if (w->len > fk.max_inline) {
				q->sq_n--;
				q->posted--;
				*bad = wr;
				return EINVAL;
			}
			w->inl = malloc(w->len ? w->len : 1);
			memcpy(w->inl, (void *)(uintptr_t)w->laddr, w->len);
		}
		w->raddr = wr->wr.rdma.remote_addr;
		w->rkey = wr->wr.rdma.rkey;
	}
	return 0;
}

/* --------------------------------------------------------------- knobs */

void fk_wc_error(uint32_t qpn, enum ibv_wc_status st)
{
	struct fk_qp *q = fk__qp_find(qpn);

	if (q)
		q->inject = (int)st;
}

int fk_inject_recv(uint32_t qpn, const void *buf, size_t len)
{
	struct fk_qp *q = fk__qp_find(qpn);
	struct fk_rwqe r;
	struct ibv_wc wc = {0};

	if (!q || !fk__srq_pop(q->srq, &r))
		return -1;
	wc.wr_id = r.wr_id;
	wc.qp_num = qpn;
	wc.opcode = IBV_WC_RECV;
	if (len > r.len) {
		wc.status = IBV_WC_LOC_LEN_ERR;
	} else {
		memcpy((void *)(uintptr_t)r.addr, buf, len);
		wc.byte_len = (uint32_t)len;
	}
	fk__cq_push(q->cq, &wc, 0, 0);
	return 0;
}

uint32_t fk_peer_qpn(uint32_t qpn)
{
	struct fk_qp *q = fk__qp_find(qpn);

	return q && q->peer ? q->peer->qp.qp_num : 0;
}

int fk_srq_depth(uint32_t qpn)
{
	struct fk_qp *q = fk__qp_find(qpn);

	return q ? q->srq->n : -1;
}

struct ibv_mr *fk_peer_mr(uint32_t qpn, void *addr, size_t len, int access)
{
	struct fk_qp *q = fk__qp_find(qpn);

	return q ? fk__reg_mr(q->qp.pd, addr, len, access) : NULL;
}

void fk__fill_verbs(struct verbs_sys *s)
{
	s->get_device_list = f_get_device_list;
	s->free_device_list = f_free_device_list;
	s->get_device_name = f_get_device_name;
	s->open_device = f_open_device;
	s->close_device = f_close_device;
	s->query_device = f_query_device;
	s->query_port = f_query_port;
	s->query_gid_table = f_query_gid_table;
	s->fork_init = f_fork_init;
	s->is_fork_initialized = f_is_fork_initialized;
	s->alloc_pd = f_alloc_pd;
	s->dealloc_pd = f_dealloc_pd;
	s->reg_mr = fk__reg_mr;
	s->dereg_mr = f_dereg_mr;
	s->create_comp_channel = f_create_comp_channel;
	s->destroy_comp_channel = f_destroy_comp_channel;
	s->create_cq = f_create_cq;
	s->destroy_cq = f_destroy_cq;
	s->req_notify_cq = f_req_notify_cq;
	s->poll_cq = f_poll_cq;
	s->get_cq_event = f_get_cq_event;
	s->ack_cq_events = f_ack_cq_events;
	s->create_srq = f_create_srq;
	s->destroy_srq = f_destroy_srq;
	s->post_srq_recv = f_post_srq_recv;
	s->post_send = f_post_send;
}
