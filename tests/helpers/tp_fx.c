/* SPDX-License-Identifier: MIT */
/* The two-transport fixture: see tp_fx.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp_fx.h"

static void on_conn(void *ctx, struct rxp_conn *c, int status)
{
	struct fx_side *s = ctx;

	if (status == 0) {
		s->up++;
		s->conn = c;
	} else {
		s->down++;
		s->down_status = status;
		if (s->conn == c)
			s->conn = NULL;
	}
}

static void echo(struct fx_side *s, struct rxp_conn *c,
		 const struct rxp_msg_in *m)
{
	struct rxp_iov iov = {m->payload->data, m->payload->len};
	struct rxp_msg_out o = {
		.type = m->type, .id = m->id, .payload = &iov, .npayload = 1};

	s->nmsgs++;
	s->tp->ops->send(c, &o, NULL);
}

static void on_recv(void *ctx, struct rxp_conn *c, const struct rxp_msg_in *m)
{
	struct fx_side *s = ctx;
	struct fx_msg *r;

	if (s->echo) {
		echo(s, c, m);
		return;
	}
	s->bytes += m->payload->len;
	for (uint32_t i = 0; i < m->nstorages; i++)
		s->bytes += m->storages[i]->len;
	if (s->nmsgs >= FX_MAXM) {
		s->nmsgs++; /* counted, not recorded */
		return;
	}
	r = &s->msgs[s->nmsgs++];
	r->id = m->id;
	r->type = m->type;
	r->conn = c;
	r->plen = m->payload->len;
	r->nst = m->nstorages;
	r->ok = pattern_check(m->payload->data, m->payload->len, m->id, 0);
	for (uint32_t i = 0; i < m->nstorages; i++)
		r->ok = r->ok &&
			pattern_check(m->storages[i]->data, m->storages[i]->len,
				      m->id, i + 1);
	if (s->keep && s->nkept < FX_MAXM)
		s->kept[s->nkept++] = rxp_buf_get(m->payload);
	if (s->keep_storage && m->nstorages && s->nkept < FX_MAXM)
		s->kept[s->nkept++] = rxp_buf_get(m->storages[0]);
	if (s->disconnect_in_recv)
		c->tp->ops->disconnect(c);
}

static void on_send(void *ctx, void *cookie, int status)
{
	struct fx_side *s = ctx;
	struct fx_ck *k = cookie;

	if (!k)
		return;
	s->sends++;
	k->calls++;
	k->status = status;
}

int fx_open_at(struct fx_side *s, const struct rxp_tp_ops *ops, uint32_t id,
	       const char *addr, const struct rxp_auth_key *key, uint32_t world)
{
	struct rxp_tp_attr attr = {.bind_addr = addr,
				   .local_id = id,
				   .cb = &s->cb,
				   .port_num = -1,
				   .gid_index = -1,
				   .key = key,
				   .world_size = world};
	int ret;

	memset(s, 0, sizeof(*s));
	s->id = id;
	s->msgs = calloc(FX_MAXM, sizeof(*s->msgs));
	if (!s->msgs)
		return -ENOMEM;
	s->cb = (struct rxp_tp_cb){s, on_conn, on_recv, on_send};
	ret = ops->open(&attr, &s->tp);
	if (ret) {
		free(s->msgs);
		s->msgs = NULL;
		return ret;
	}
	return s->tp->ops->address(s->tp, s->addr, sizeof(s->addr));
}

void fx_release_kept(struct fx_side *s)
{
	for (int i = 0; i < s->nkept; i++)
		rxp_buf_put(s->kept[i]);
	s->nkept = 0;
}

void fx_close(struct fx_side *s)
{
	if (s->tp)
		s->tp->ops->close(s->tp);
	s->tp = NULL;
	fx_release_kept(s);
	free(s->msgs);
	s->msgs = NULL;
}

void fx_step(struct fx_side *s)
{
	if (s && s->tp && s->tp->ops->progress(s->tp) < 0) {
		fprintf(stderr, "progress failed\n");
		abort();
	}
}

struct rxp_conn *fx_connect_ms(struct fx_side *a, struct fx_side *b, int ms)
{
	struct rxp_conn *c = NULL;
	int up_a = a->up, up_b = b->up;

	if (a->tp->ops->connect(a->tp, b->addr, b->id, &c))
		return NULL;
	if (!FX_PUMP(a, b, ms, a->up > up_a && b->up > up_b))
		return NULL;
	return c;
}

int fx_send_type(struct rxp_conn *c, uint8_t type, uint64_t id, size_t plen,
		 const size_t *slen, uint32_t n, void **mem, struct fx_ck *ck)
{
	struct rxp_iov pay, st[16];
	struct rxp_msg_out m = {.type = type,
				.id = id,
				.payload = &pay,
				.npayload = 1,
				.storages = st,
				.nstorages = n};

	if (n > 16)
		abort();
	mem[0] = malloc(plen ? plen : 1);
	pattern_fill(mem[0], plen, id, 0);
	pay = (struct rxp_iov){mem[0], plen};
	for (uint32_t i = 0; i < n; i++) {
		mem[i + 1] = malloc(slen[i] ? slen[i] : 1);
		pattern_fill(mem[i + 1], slen[i], id, i + 1);
		st[i] = (struct rxp_iov){mem[i + 1], slen[i]};
	}
	return c->tp->ops->send(c, &m, ck);
}

void fx_free(void **mem, uint32_t n)
{
	for (uint32_t i = 0; i <= n; i++)
		free(mem[i]);
}
