/* SPDX-License-Identifier: MIT */
/*
 * Send side shared by both backends: per-connection send slots (allocated
 * in chunks of TCP_SLOTS_PER_CHUNK and recycled, so a warm connection
 * sends without malloc), the FIFO of queued frames, the iovec windows
 * handed to sendmsg, and on_send delivery in queue order.
 *
 * Queue: tx_head .. tx_tail holds every slot not yet reported; tx_cur is
 * the first one with bytes the kernel has not taken. A slot is reported
 * once all its bytes are sent and no SEND_ZC notification covering it is
 * outstanding (zc_refs == 0).
 */
#include <errno.h>
#include <string.h>

#include "tcp.h"

#define TCP_MAX_PAYLOAD_IOV 65536u

static struct tcp_slot *slot_alloc(struct tcp_conn *c, int *err)
{
	struct tcp_slot *s = c->slot_free;

	if (!s) {
		struct tcp_slot_chunk *ch;

		if (c->nslots >= TCP_MAX_SLOTS) {
			*err = -EAGAIN;
			return NULL;
		}
		ch = rxp__calloc(1, sizeof(*ch));
		if (!ch) {
			*err = -ENOMEM;
			return NULL;
		}
		ch->next = c->chunks;
		c->chunks = ch;
		c->nchunks++;
		for (int i = TCP_SLOTS_PER_CHUNK - 1; i >= 0; i--) {
			ch->slots[i].next = c->slot_free;
			c->slot_free = &ch->slots[i];
		}
		s = c->slot_free;
	}
	c->slot_free = s->next;
	c->nslots++;
	s->next = NULL;
	s->cookie = NULL;
	s->cur = 0;
	s->off = 0;
	s->zc_refs = 0;
	s->internal = false;
	s->sent = false;
	s->zc = false;
	s->hold = false;
	s->ext = NULL;
	s->bytes = 0;
	return s;
}

static void slot_release(struct tcp_conn *c, struct tcp_slot *s)
{
	rxp__free(s->ext);
	s->ext = NULL;
	s->next = c->slot_free;
	c->slot_free = s;
	c->nslots--;
}

static void slot_enqueue(struct tcp_conn *c, struct tcp_slot *s)
{
	if (c->tx_tail)
		c->tx_tail->next = s;
	else
		c->tx_head = s;
	c->tx_tail = s;
	if (!c->tx_cur)
		c->tx_cur = s;
}

_Static_assert(sizeof(((struct tcp_slot *)0)->hdr_inline) >= TCP_HELLO_MAX,
	       "a hello fits a slot");

static struct tcp_slot *internal_slot(struct tcp_conn *c, size_t len, int *err)
{
	struct tcp_slot *s = slot_alloc(c, err);

	if (!s)
		return NULL;
	s->internal = true;
	s->iov = s->iov_inline;
	s->iov[0].iov_base = s->hdr_inline;
	s->iov[0].iov_len = len;
	s->niov = 1;
	s->bytes = len;
	return s;
}

/* The hello, and with a job secret its extension and the (held) slot of
 * the proof, which needs the peer's hello first. */
int tcp_tx_queue_hs(struct tcp_conn *c)
{
	struct tcp_tp *tp = c->tp;
	struct tcp_hs hs = {
		.magic = TCP_HS_MAGIC,
		.version = TCP_PROTO_VERSION,
		.size = TCP_HS_SIZE,
		.worker_id = tp->local_id,
		.max_storages = RXP_WIRE_MAX_STORAGES,
		.max_payload = tp->max_payload,
		.max_storage = tp->max_storage,
		.features = tp->key.on ? TCP_F_AUTH : 0,
	};
	size_t len = tp->key.on ? TCP_HELLO_MAX : TCP_HS_SIZE;
	struct tcp_slot *s, *proof = NULL;
	int err;

	s = internal_slot(c, len, &err);
	if (!s)
		return err;
	if (tp->key.on) {
		uint8_t nonce[RXP_AUTH_NONCE_BYTES];

		proof = internal_slot(c, TCP_PROOF_SIZE, &err);
		if (!proof) {
			slot_release(c, s);
			return err;
		}
		proof->hold = true;
		rxp_auth_nonce(nonce, sizeof(nonce));
		tcp_hs_ext_encode(s->hdr_inline + TCP_HS_SIZE, tp->world_size,
				  nonce);
	}
	tcp_hs_encode(s->hdr_inline, &hs);
	memcpy(c->hello_mine, s->hdr_inline, len);
	slot_enqueue(c, s);
	if (proof) {
		slot_enqueue(c, proof);
		c->proof_slot = proof;
		c->auth_wait = true;
	}
	return 0;
}

/* Checks @m against our limits and, once known, the peer's. */
static int tx_check(struct tcp_conn *c, const struct rxp_msg_out *m,
		    uint64_t *plen, uint32_t *niov, bool *zc)
{
	struct tcp_tp *tp = c->tp;
	uint64_t max_payload = tp->max_payload, max_storage = tp->max_storage;
	uint32_t max_st = RXP_WIRE_MAX_STORAGES;

	if (c->hs_rcvd) {
		if (c->peer_max_payload < max_payload)
			max_payload = c->peer_max_payload;
		if (c->peer_max_storage < max_storage)
			max_storage = c->peer_max_storage;
		if (c->peer_max_storages < max_st)
			max_st = c->peer_max_storages;
	}
	if ((m->npayload && !m->payload) || (m->nstorages && !m->storages))
		return -EINVAL;
	if (m->npayload > TCP_MAX_PAYLOAD_IOV)
		return -EINVAL;
	if (m->nstorages > max_st)
		return -RXP_E_TOO_BIG;
	*plen = 0;
	*niov = 1;
	*zc = false;
	for (uint32_t i = 0; i < m->npayload; i++) {
		size_t len = m->payload[i].len;

		if (len && !m->payload[i].base)
			return -EINVAL;
		if (len > max_payload - *plen)
			return -RXP_E_TOO_BIG;
		*plen += len;
		*niov += len != 0;
	}
	for (uint32_t i = 0; i < m->nstorages; i++) {
		size_t len = m->storages[i].len;

		if (len && !m->storages[i].base)
			return -EINVAL;
		if (len > max_storage)
			return -RXP_E_TOO_BIG;
		*niov += len != 0;
		if (len >= tp->zc_threshold)
			*zc = true;
	}
	return 0;
}

int tcp_tx_queue(struct tcp_conn *c, const struct rxp_msg_out *m, void *cookie)
{
	struct tcp_hdr h = {
		.version = TCP_PROTO_VERSION,
		.type = m->type,
		.flags = m->flags,
		.nstorages = m->nstorages,
		.id = m->id,
	};
	size_t hdrlen = TCP_HDR_SIZE + 8 * (size_t)m->nstorages;
	struct tcp_slot *s;
	uint8_t *hdr;
	uint32_t niov, n = 1;
	uint64_t bytes;
	bool zc;
	int err;

	err = tx_check(c, m, &h.payload_len, &niov, &zc);
	if (err)
		return err;
	s = slot_alloc(c, &err);
	if (!s)
		return err;
	if (niov > TCP_SLOT_INLINE_IOV || m->nstorages > TCP_SLOT_INLINE_LENS) {
		s->ext = rxp__malloc(niov * sizeof(struct iovec) + hdrlen);
		if (!s->ext) {
			slot_release(c, s);
			return -ENOMEM;
		}
		s->iov = s->ext;
		hdr = (uint8_t *)(s->iov + niov);
	} else {
		s->iov = s->iov_inline;
		hdr = s->hdr_inline;
	}
	tcp_hdr_encode(hdr, &h);
	s->iov[0].iov_base = hdr;
	s->iov[0].iov_len = hdrlen;
	bytes = hdrlen + h.payload_len;
	for (uint32_t i = 0; i < m->npayload; i++) {
		if (!m->payload[i].len)
			continue;
		s->iov[n].iov_base = (void *)(uintptr_t)m->payload[i].base;
		s->iov[n++].iov_len = m->payload[i].len;
	}
	for (uint32_t i = 0; i < m->nstorages; i++) {
		size_t len = m->storages[i].len;

		rxp_put_le64(hdr + TCP_HDR_SIZE + 8 * (size_t)i, len);
		bytes += len;
		if (!len)
			continue;
		s->iov[n].iov_base = (void *)(uintptr_t)m->storages[i].base;
		s->iov[n++].iov_len = len;
	}
	s->niov = n;
	s->bytes = bytes;
	s->cookie = cookie;
	s->zc = zc;
	slot_enqueue(c, s);
	return 0;
}

/* Authentication holds the proof until it is made and frames until the
 * peer is proven (docs/tcp.md "Authentication"). */
static bool tx_held(const struct tcp_conn *c, const struct tcp_slot *s)
{
	return s->hold || (c->auth_wait && !s->internal);
}

int tcp_tx_fill(struct tcp_conn *c, struct iovec *iov, int max,
		unsigned *nslots, bool *zc)
{
	int n = 0;

	*nslots = 0;
	*zc = false;
	for (struct tcp_slot *s = c->tx_cur; s && n < max; s = s->next) {
		size_t off = s->off;

		if (tx_held(c, s))
			break;
		(*nslots)++;
		*zc |= s->zc;
		for (uint32_t i = s->cur; i < s->niov && n < max; i++) {
			iov[n].iov_base = (char *)s->iov[i].iov_base + off;
			iov[n].iov_len = s->iov[i].iov_len - off;
			off = 0;
			n++;
		}
	}
	return n;
}

void tcp_tx_advance(struct tcp_conn *c, size_t n)
{
	struct rxp_tp *tp = &c->tp->base;

	rxp_tp_count(&tp->bytes_sent, n);
	while (c->tx_cur) {
		struct tcp_slot *s = c->tx_cur;
		size_t left = s->iov[s->cur].iov_len - s->off;

		if (n < left) {
			s->off += n;
			return;
		}
		n -= left;
		s->off = 0;
		if (++s->cur == s->niov) {
			s->sent = true;
			if (!s->internal)
				rxp_tp_count(&tp->msgs_sent, 1);
			c->tx_cur = s->next;
		}
	}
}

/* Only a frame wholly ahead of what the kernel may read goes: not sent in
 * part, not in the window of a sendmsg in flight, and none while a SEND_ZC
 * awaits its notification (those walk the queue by position). */
int tcp_tx_cancel(struct tcp_conn *c, void *cookie)
{
	struct tcp_slot *s, *prev = NULL;
	bool past_cur = false;
	unsigned k = 0; /* position from tx_cur */

	for (int i = 0; i < TCP_ZC_MAX; i++)
		if (c->zc[i].busy)
			return -EBUSY;
	for (s = c->tx_head; s; prev = s, s = s->next) {
		bool in_window;

		if (s == c->tx_cur)
			past_cur = true;
		in_window = c->send_on && past_cur && k < c->tx_window;
		if (past_cur)
			k++;
		if (s->internal || s->cookie != cookie)
			continue;
		if (!past_cur || s->sent || s->cur || s->off || s->zc_refs ||
		    in_window)
			return -EBUSY;
		if (prev)
			prev->next = s->next;
		else
			c->tx_head = s->next;
		if (c->tx_tail == s)
			c->tx_tail = prev;
		if (c->tx_cur == s)
			c->tx_cur = s->next;
		slot_release(c, s);
		return 0;
	}
	return -ENOENT;
}

bool tcp_tx_pending(const struct tcp_conn *c)
{
	return c->tx_cur && !tx_held(c, c->tx_cur);
}

void tcp_tx_release(struct tcp_conn *c)
{
	if (tcp_conn_live(c) && tcp_tx_pending(c))
		c->tp->be->conn_kick_tx(c);
}

static struct tcp_slot *pop_head(struct tcp_conn *c)
{
	struct tcp_slot *s = c->tx_head;

	c->tx_head = s->next;
	if (!c->tx_head)
		c->tx_tail = NULL;
	if (c->tx_cur == s)
		c->tx_cur = s->next;
	return s;
}

static void report(struct tcp_conn *c, struct tcp_slot *s, int status)
{
	void *cookie = s->cookie;
	bool internal = s->internal;
	struct tcp_tp *tp = c->tp;

	slot_release(c, s);
	if (internal)
		return;
	tcp_cb_enter(c);
	tp->cb.on_send(tp->cb.ctx, cookie, status);
	tcp_cb_leave(c);
}

int tcp_tx_complete(struct tcp_conn *c)
{
	struct tcp_slot *s;
	int n = 0;

	while ((s = c->tx_head) && s->sent && !s->zc_refs) {
		n += !s->internal;
		report(c, pop_head(c), 0);
	}
	return n;
}

void tcp_tx_fail_all(struct tcp_conn *c, int err)
{
	/* ZC requests still awaiting NOTIF must not walk freed slots; the
	 * kernel holds its own page references, so nothing reads our
	 * pointers any more. */
	for (int i = 0; i < TCP_ZC_MAX; i++) {
		c->zc[i].first = NULL;
		c->zc[i].nslots = 0;
	}
	while (c->tx_head) {
		struct tcp_slot *s = pop_head(c);

		report(c, s, s->sent && !s->zc_refs ? 0 : err);
	}
}

void tcp_tx_free(struct tcp_conn *c)
{
	struct tcp_slot_chunk *ch, *next;

	while (c->tx_head)
		slot_release(c, pop_head(c));
	for (ch = c->chunks; ch; ch = next) {
		next = ch->next;
		rxp__free(ch);
	}
	c->chunks = NULL;
	c->slot_free = NULL;
}
