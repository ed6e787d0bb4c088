/* SPDX-License-Identifier: MIT */
/*
 * Frames through a ring (docs/shm.md "Wire"):
 *   header   32 bytes: u16 magic "SX", u8 version, u8 kind, u8 type,
 *            u8 flags, u16 zero, u32 nstorages, u32 zero, u64 id,
 *            u64 payload length
 *   storage descriptors, 16 bytes each: u64 length (top bit: by address),
 *            u64 the sender's address of it (by address only, else 0)
 *   payload, then each storage not sent by address, in order
 * An ack frame (kind 1, no body) says the receiver has read the storages
 * of the next @id frames that had some by address; their sends complete.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "shm.h"

/* ------------------------------------------------------------ header */

void shm_hdr_encode(uint8_t out[SHM_HDR_SIZE], const struct shm_hdr *h)
{
	memset(out, 0, SHM_HDR_SIZE);
	rxp_put_le16(out, SHM_HDR_MAGIC);
	out[2] = SHM_PROTO_VERSION;
	out[3] = h->kind;
	out[4] = h->type;
	out[5] = h->flags;
	rxp_put_le32(out + 8, h->nstorages);
	rxp_put_le64(out + 16, h->id);
	rxp_put_le64(out + 24, h->payload_len);
}

int shm_hdr_decode(const uint8_t in[SHM_HDR_SIZE], uint32_t max_storages,
		   uint64_t max_payload, struct shm_hdr *h)
{
	if (rxp_get_le16(in) != SHM_HDR_MAGIC || in[2] != SHM_PROTO_VERSION ||
	    in[6] || in[7] || rxp_get_le32(in + 12))
		return -RXP_E_PROTO;
	h->kind = in[3];
	h->type = in[4];
	h->flags = in[5];
	h->nstorages = rxp_get_le32(in + 8);
	h->id = rxp_get_le64(in + 16);
	h->payload_len = rxp_get_le64(in + 24);
	if (h->kind > SHM_KIND_ACK || h->nstorages > max_storages ||
	    h->payload_len > max_payload)
		return -RXP_E_PROTO;
	if (h->kind == SHM_KIND_ACK &&
	    (h->nstorages || h->payload_len || h->type || h->flags))
		return -RXP_E_PROTO;
	return 0;
}

/* ------------------------------------------------------------- lists */

static void list_push(struct shm_list *l, struct shm_send *s)
{
	s->next = NULL;
	if (l->tail)
		l->tail->next = s;
	else
		l->head = s;
	l->tail = s;
	l->n++;
}

static struct shm_send *list_pop(struct shm_list *l)
{
	struct shm_send *s = l->head;

	if (s) {
		l->head = s->next;
		if (!l->head)
			l->tail = NULL;
		l->n--;
	}
	return s;
}

/* Send records come from a free list: none is allocated in steady state
 * (only frames with more than SHM_INLINE_IOV pieces or SHM_INLINE_DESC
 * storages allocate their arrays). */
static struct shm_send *send_get(struct shm_tp *tp)
{
	struct shm_send *s = tp->free_sends;

	if (s)
		tp->free_sends = s->next;
	else
		s = rxp__malloc(sizeof(*s));
	return s;
}

static void send_put(struct shm_tp *tp, struct shm_send *s)
{
	rxp__free(s->ext);
	s->ext = NULL;
	s->next = tp->free_sends;
	tp->free_sends = s;
}

void shm_sends_free(struct shm_tp *tp)
{
	struct shm_send *s;

	while ((s = tp->free_sends)) {
		tp->free_sends = s->next;
		rxp__free(s);
	}
}

/* -------------------------------------------------------------- send */

static int limits(const struct shm_conn *c, const struct rxp_msg_out *m,
		  uint64_t *plen)
{
	const struct shm_tp *tp = c->tp;
	uint64_t max_payload = tp->max_payload, max_storage = tp->max_storage;
	uint32_t max_st = RXP_WIRE_MAX_STORAGES;

	if (c->state == SC_OPEN) { /* the peer's are known */
		if (c->peer_max_payload < max_payload)
			max_payload = c->peer_max_payload;
		if (c->peer_max_storage < max_storage)
			max_storage = c->peer_max_storage;
		if (c->peer_max_storages < max_st)
			max_st = c->peer_max_storages;
	}
	if (m->nstorages > max_st)
		return -RXP_E_TOO_BIG;
	*plen = 0;
	for (uint32_t i = 0; i < m->npayload; i++) {
		if (m->payload[i].len && !m->payload[i].base)
			return -EINVAL;
		if (m->payload[i].len > max_payload - *plen)
			return -RXP_E_TOO_BIG;
		*plen += m->payload[i].len;
	}
	for (uint32_t i = 0; i < m->nstorages; i++) {
		if (m->storages[i].len && !m->storages[i].base)
			return -EINVAL;
		if (m->storages[i].len > max_storage)
			return -RXP_E_TOO_BIG;
	}
	return 0;
}

/*
 * Encode @m into @s: header, descriptors, and the pieces that go through
 * the ring. Storages go by address when the peer can read ours and they
 * are big enough; so this waits until the hand-shake said whether it can.
 */
static int encode(struct shm_conn *c, struct shm_send *s,
		  const struct rxp_msg_out *m)
{
	uint32_t npieces = m->npayload + m->nstorages;
	size_t hlen = SHM_HDR_SIZE + (size_t)SHM_DESC_SIZE * m->nstorages;
	struct shm_hdr h = {
		.kind = SHM_KIND_MSG,
		.type = m->type,
		.flags = m->flags,
		.nstorages = m->nstorages,
		.id = m->id,
		.payload_len = s->payload_len,
	};
	uint32_t n = 0;

	s->piece = s->piece_inline;
	s->hdr = s->hdr_inline;
	if (npieces > SHM_INLINE_IOV || m->nstorages > SHM_INLINE_DESC) {
		s->ext = rxp__malloc(npieces * sizeof(struct rxp_iov) + hlen);
		if (!s->ext)
			return -ENOMEM;
		s->piece = s->ext;
		s->hdr = (uint8_t *)(s->piece + npieces);
	}
	shm_hdr_encode(s->hdr, &h);
	s->bytes = hlen;
	for (uint32_t i = 0; i < m->npayload; i++)
		if (m->payload[i].len)
			s->piece[n++] = m->payload[i];
	for (uint32_t i = 0; i < m->nstorages; i++) {
		const struct rxp_iov *st = &m->storages[i];
		uint8_t *d = s->hdr + SHM_HDR_SIZE + (size_t)SHM_DESC_SIZE * i;
		bool by_addr = c->peer_reads_me && st->len >= c->tp->cma_min;

		rxp_put_le64(d, st->len | (by_addr ? SHM_DESC_CMA : 0));
		rxp_put_le64(d + 8,
			     by_addr ? (uint64_t)(uintptr_t)st->base : 0);
		s->cma |= by_addr;
		s->cma_bytes += by_addr ? st->len : 0;
		if (!by_addr && st->len) {
			s->piece[n++] = *st;
			s->bytes += st->len;
		}
	}
	s->bytes += s->payload_len;
	s->npieces = n;
	s->hdr_len = (uint32_t)hlen;
	return 0;
}

int shm_tx_queue(struct shm_conn *c, const struct rxp_msg_out *m, void *cookie)
{
	struct shm_send *s;
	uint64_t plen;
	int err;

	if ((m->npayload && !m->payload) || (m->nstorages && !m->storages))
		return -EINVAL;
	err = limits(c, m, &plen);
	if (err)
		return err;
	if (c->txq.n >= SHM_MAX_SENDS)
		return -EAGAIN;
	s = send_get(c->tp);
	if (!s)
		return -ENOMEM;
	*s = (struct shm_send){.cookie = cookie, .payload_len = plen};
	/* Until the hand-shake is done we cannot tell which storages go by
	 * address: encode as if none did, and again when it is done. */
	err = encode(c, s, m);
	if (err) {
		send_put(c->tp, s);
		return err;
	}
	list_push(&c->txq, s);
	return 0;
}

/* Frames queued before the hand-shake finished: the peer's limits and
 * whether it reads our memory are known now. A frame over its limits
 * completes with -RXP_E_TOO_BIG; the others keep their encoding (through
 * the ring), which is always valid. */
void shm_tx_check_queued(struct shm_conn *c)
{
	struct shm_list keep = {0};
	struct shm_send *s;

	while ((s = list_pop(&c->txq))) {
		uint32_t nst = (s->hdr_len - SHM_HDR_SIZE) / SHM_DESC_SIZE;
		bool big = s->payload_len > c->peer_max_payload ||
			   nst > c->peer_max_storages;

		for (uint32_t i = 0; !big && i < nst; i++)
			big = (rxp_get_le64(s->hdr + SHM_HDR_SIZE +
					    (size_t)SHM_DESC_SIZE * i) &
			       ~SHM_DESC_CMA) > c->peer_max_storage;
		if (big) {
			s->status = -RXP_E_TOO_BIG;
			list_push(&c->done, s);
		} else {
			list_push(&keep, s);
		}
	}
	c->txq = keep;
}

void shm_ring_bell(struct shm_conn *c)
{
	static const uint8_t one = 1;

	/* EAGAIN: the peer has doorbells queued already */
	(void)send(c->sock, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int put_ack(struct shm_conn *c, int64_t *space)
{
	struct shm_hdr h = {.kind = SHM_KIND_ACK, .id = c->acks_owed};
	uint8_t b[SHM_HDR_SIZE];

	if (*space < SHM_HDR_SIZE)
		return 0;
	shm_hdr_encode(b, &h);
	shm_ring_put(&c->tx, b, sizeof(b));
	*space -= SHM_HDR_SIZE;
	c->acks_owed = 0;
	return 1;
}

/* Write what fits of @s; true when all of it is in the ring. */
static bool put_send(struct shm_conn *c, struct shm_send *s, int64_t *space)
{
	while (*space > 0) {
		const uint8_t *src;
		uint64_t len, n;

		if (!s->hdr_done) {
			src = s->hdr;
			len = s->hdr_len;
		} else if (s->cur < s->npieces) {
			src = s->piece[s->cur].base;
			len = s->piece[s->cur].len;
		} else {
			return true;
		}
		n = len - s->off;
		if (n > (uint64_t)*space)
			n = (uint64_t)*space;
		shm_ring_put(&c->tx, src + s->off, (size_t)n);
		*space -= (int64_t)n;
		s->off += n;
		if (s->off == len) {
			s->off = 0;
			if (s->hdr_done)
				s->cur++;
			s->hdr_done = true;
		}
	}
	return s->hdr_done && s->cur == s->npieces;
}

int shm_tx_push(struct shm_conn *c, unsigned *did)
{
	uint64_t start = c->tx.pos;
	int64_t space;
	struct shm_send *s;

	if (c->state != SC_OPEN)
		return 0;
	space = shm_ring_space(&c->tx);
	if (space < 0)
		return (int)space;
	for (;;) {
		s = c->txq.head;
		/* acks go between frames */
		if (c->acks_owed && (!s || (!s->hdr_done && !s->off)) &&
		    !put_ack(c, &space))
			break;
		if (!s || !put_send(c, s, &space))
			break;
		list_pop(&c->txq);
		list_push(s->cma ? &c->await : &c->done, s);
		rxp_tp_count(&c->tp->base.msgs_sent, 1);
		rxp_tp_count(&c->tp->base.bytes_sent, s->cma_bytes);
	}
	if (c->tx.pos != start) {
		rxp_tp_count(&c->tp->base.bytes_sent, c->tx.pos - start);
		*did += 1;
		if (shm_ring_publish(&c->tx))
			shm_ring_bell(c);
	}
	return 0;
}

static int got_ack(struct shm_conn *c, uint64_t n)
{
	if (n == 0 || n > c->await.n)
		return -RXP_E_PROTO; /* acks for frames we never sent */
	while (n--)
		list_push(&c->done, list_pop(&c->await));
	return 0;
}

int shm_tx_cancel(struct shm_conn *c, void *cookie)
{
	struct shm_send **pp = &c->txq.head, *s, *prev = NULL;

	for (; (s = *pp); prev = s, pp = &s->next) {
		if (s->cookie != cookie)
			continue;
		if (s->hdr_done || s->off)
			return -EBUSY; /* part of it is in the ring */
		*pp = s->next;
		if (c->txq.tail == s)
			c->txq.tail = prev;
		c->txq.n--;
		send_put(c->tp, s);
		return 0;
	}
	for (s = c->await.head; s; s = s->next)
		if (s->cookie == cookie)
			return -EBUSY;
	for (s = c->done.head; s; s = s->next)
		if (s->cookie == cookie)
			return -EBUSY;
	return -ENOENT;
}

void shm_tx_report(struct shm_conn *c)
{
	struct shm_send *s;

	/* pop before calling: on_send may send, or disconnect, which
	 * reports the rest itself */
	while ((s = list_pop(&c->done))) {
		void *cookie = s->cookie;
		int status = s->status;

		send_put(c->tp, s);
		c->tp->cb.on_send(c->tp->cb.ctx, cookie, status);
	}
}

void shm_tx_fail_all(struct shm_conn *c, int err)
{
	struct shm_send *s;

	shm_tx_report(c);
	while ((s = list_pop(&c->await)) || (s = list_pop(&c->txq))) {
		void *cookie = s->cookie;

		send_put(c->tp, s);
		c->tp->cb.on_send(c->tp->cb.ctx, cookie, err);
	}
}

/* ----------------------------------------------------------- receive */

void shm_rx_reset(struct shm_conn *c)
{
	struct shm_rx *r = &c->rx_st;

	if (r->state == RX_BODY)
		for (uint32_t i = 0; i <= r->h.nstorages; i++) {
			rxp_buf_put(r->bufs[i]);
			r->bufs[i] = NULL;
		}
	rxp_tp_count(&c->tp->base.rx_ahead, 0 - r->charged);
	r->charged = 0;
	r->state = RX_HDR;
	r->have = 0;
	r->piece = 0;
	r->off = 0;
}

static uint64_t desc_len(const struct shm_rx *r, uint32_t i)
{
	return rxp_get_le64(r->desc_raw + (size_t)SHM_DESC_SIZE * i) &
	       ~SHM_DESC_CMA;
}

static bool desc_cma(const struct shm_rx *r, uint32_t i)
{
	return rxp_get_le64(r->desc_raw + (size_t)SHM_DESC_SIZE * i) &
	       SHM_DESC_CMA;
}

static struct rxp_buf *rx_buf(struct shm_tp *tp, uint64_t len)
{
	if (len <= SHM_SMALL_BUF)
		return rxp_bufpool_get(tp->pool_small, (size_t)len);
	if (len <= SHM_POOL_BUF)
		return rxp_bufpool_get(tp->pool, (size_t)len);
	return len <= SIZE_MAX ? rxp_buf_alloc((size_t)len) : NULL;
}

/* The descriptors are in: check them, charge the budget, take buffers. */
static int rx_start_body(struct shm_conn *c)
{
	struct shm_tp *tp = c->tp;
	struct shm_rx *r = &c->rx_st;
	uint64_t total = r->h.payload_len;

	for (uint32_t i = 0; i < r->h.nstorages; i++) {
		uint64_t len = desc_len(r, i);

		if (len > tp->max_storage ||
		    (desc_cma(r, i) && !c->i_read_peer))
			return -RXP_E_PROTO;
		if (!desc_cma(r, i) &&
		    rxp_get_le64(r->desc_raw + SHM_DESC_SIZE * i + 8))
			return -RXP_E_PROTO;
		total += len; /* <= 1024 x 16 GiB: no overflow */
	}
	if (total > tp->rx_mem_max - rxp_tp_counter(&tp->base.rx_ahead)) {
		rxp_tp_count(&tp->base.rx_mem_refused, 1);
		rxp_warn(SHM_LOG,
			 "%s: a frame of %llu bytes would pass the receive "
			 "budget (RXP_MAX_RX_MEMORY); closing",
			 c->peer_str, (unsigned long long)total);
		return -RXP_E_TOO_BIG;
	}
	r->charged = total;
	rxp_tp_count(&tp->base.rx_ahead, total);
	r->state = RX_BODY;
	for (uint32_t i = 0; i <= r->h.nstorages; i++) {
		r->bufs[i] =
			rx_buf(tp, i ? desc_len(r, i - 1) : r->h.payload_len);
		if (!r->bufs[i]) {
			/* the ones taken are put by shm_rx_reset */
			for (uint32_t k = i; k <= r->h.nstorages; k++)
				r->bufs[k] = NULL;
			return -ENOMEM;
		}
	}
	r->piece = 0;
	r->off = 0;
	return 0;
}

/* Piece @p's ring bytes: the payload, or a storage not sent by address. */
static uint64_t piece_ring_len(const struct shm_rx *r, uint32_t p)
{
	if (p == 0)
		return r->h.payload_len;
	return desc_cma(r, p - 1) ? 0 : desc_len(r, p - 1);
}

/* Every ring byte of the frame is in: read the rest, deliver it. */
static int rx_deliver(struct shm_conn *c)
{
	struct shm_tp *tp = c->tp;
	struct shm_rx *r = &c->rx_st;
	struct rxp_msg_in m = {
		.type = r->h.type,
		.flags = r->h.flags,
		.id = r->h.id,
		.payload = r->bufs[0],
		.nstorages = r->h.nstorages,
		.storages = r->bufs + 1,
	};
	bool cma = false;

	for (uint32_t i = 0; i < r->h.nstorages; i++) {
		int err;

		if (!desc_cma(r, i))
			continue;
		err = shm_cma_read(
			c->peer_pid, r->bufs[1 + i]->data,
			rxp_get_le64(r->desc_raw + SHM_DESC_SIZE * i + 8),
			desc_len(r, i));
		if (err) {
			rxp_warn(SHM_LOG,
				 "%s: cannot read a storage the peer "
				 "announced: %s",
				 c->peer_str, rxp_strerror(err));
			return err == -EFAULT ? -RXP_E_PROTO : err;
		}
		rxp_tp_count(&tp->base.bytes_received, desc_len(r, i));
		cma = true;
	}
	/* The sender sets closed before it lets the owners of its storages
	 * free them (it failed its sends): what we read may be stale. */
	if (cma && shm_ring_peer_closed(&c->rx))
		return -RXP_E_PEER_LOST;
	c->acks_owed += cma;
	rxp_tp_count(&tp->base.msgs_received, 1);
	r->delivering = true;
	tp->cb.on_recv(tp->cb.ctx, &c->base, &m);
	r->delivering = false;
	shm_rx_reset(c); /* puts our references */
	return 0;
}

/* Gather up to @want bytes of a header or descriptors into @dst. */
static uint64_t gather(struct shm_conn *c, uint8_t *dst, uint64_t want,
		       int64_t *avail)
{
	struct shm_rx *r = &c->rx_st;
	uint64_t n = want - r->have;

	if (n > (uint64_t)*avail)
		n = (uint64_t)*avail;
	shm_ring_get(&c->rx, dst + r->have, (size_t)n);
	r->have += n;
	*avail -= (int64_t)n;
	return r->have == want;
}

static int rx_step(struct shm_conn *c, int64_t *avail)
{
	struct shm_tp *tp = c->tp;
	struct shm_rx *r = &c->rx_st;
	int err;

	/* one state leads into the next within a call when the bytes are
	 * there: a frame without storages has no descriptors to wait for */
	if (r->state == RX_HDR) {
		if (!gather(c, r->hdr, SHM_HDR_SIZE, avail))
			return 0;
		r->have = 0;
		err = shm_hdr_decode(r->hdr, RXP_WIRE_MAX_STORAGES,
				     tp->max_payload, &r->h);
		if (err)
			return err;
		if (r->h.kind == SHM_KIND_ACK)
			return got_ack(c, r->h.id);
		r->state = RX_DESC;
	}
	if (r->state == RX_DESC) {
		if (r->h.nstorages &&
		    !gather(c, r->desc_raw,
			    (uint64_t)SHM_DESC_SIZE * r->h.nstorages, avail))
			return 0;
		err = rx_start_body(c);
		if (err)
			return err;
	}
	while (r->piece <= r->h.nstorages) {
		uint64_t len = piece_ring_len(r, r->piece), n;

		n = len - r->off;
		if (n > (uint64_t)*avail)
			n = (uint64_t)*avail;
		shm_ring_get(&c->rx,
			     (uint8_t *)r->bufs[r->piece]->data + r->off,
			     (size_t)n);
		*avail -= (int64_t)n;
		r->off += n;
		if (r->off < len)
			return 0;
		r->piece++;
		r->off = 0;
	}
	return rx_deliver(c);
}

int shm_rx_pull(struct shm_conn *c, unsigned *did)
{
	uint64_t start = c->rx.pos;
	int err = 0;

	while (c->state == SC_OPEN) {
		int64_t avail = shm_ring_avail(&c->rx);

		if (avail <= 0) {
			err = (int)avail;
			break;
		}
		/* one frame at most per step, so a callback that closes
		 * the connection stops the loop */
		while (avail > 0 && c->state == SC_OPEN && !err)
			err = rx_step(c, &avail);
		if (err)
			break;
		if (shm_ring_release(&c->rx))
			shm_ring_bell(c);
	}
	if (c->rx.pos != start) {
		rxp_tp_count(&c->tp->base.bytes_received, c->rx.pos - start);
		*did += 1;
	}
	return err;
}
