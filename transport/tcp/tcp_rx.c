/* SPDX-License-Identifier: MIT */
/*
 * Receive parser shared by both backends. Bytes arrive either through
 * tcp_rx_feed() (copied out of an io_uring provided buffer or the poll
 * path's staging buffer) or straight into their destination through
 * tcp_rx_direct_iov() + tcp_rx_direct_done().
 *
 * States: RX_HS (peer handshake) [-> RX_HS_EXT (its nonce) -> RX_PROOF
 * (its proof of the job secret), when authenticating] -> RX_HDR (32-byte
 * frame header) ->
 * RX_LENS (nstorages x u64) -> RX_BODY (pieces: payload, then each
 * storage) -> RX_HDR ... Every length is checked against the limits
 * before anything is allocated; a piece's buffer is allocated only when
 * the parser reaches it (small ones from the pool, large ones on the
 * heap), so a lying header costs at most one allocation, and all
 * connections together hold at most RXP_MAX_RX_MEMORY bytes of buffers
 * for frames not yet delivered (base.rx_ahead). Until the
 * peer's proof checks out nothing but the handshake is parsed: no frame,
 * no allocation, no callback.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tcp.h"

int tcp_rx_init(struct tcp_rx *rx)
{
	memset(rx, 0, sizeof(*rx));
	rx->state = RX_HS;
	return 0;
}

/* The frame parser's arrays (16 KiB), only once the peer is accepted: a
 * connection that never completes its handshake costs none of it. */
static int rx_arm(struct tcp_rx *rx)
{
	size_t lens = 8 * (size_t)RXP_WIRE_MAX_STORAGES;
	size_t bufs = sizeof(struct rxp_buf *) * (RXP_WIRE_MAX_STORAGES + 1);
	uint8_t *mem = rxp__malloc(lens + bufs);

	if (!mem)
		return -ENOMEM;
	rx->lens = (uint64_t *)mem;
	rx->lens_raw = mem;
	rx->bufs = (struct rxp_buf **)(mem + lens);
	return 0;
}

/* Receive memory: the progress lock's holder is the one writer, so a
 * relaxed load and store (no locked instruction) keep the gauge. */
static void rx_mem_add(struct tcp_tp *tp, uint64_t add, uint64_t sub)
{
	atomic_uint_fast64_t *g = &tp->base.rx_ahead;

	atomic_store_explicit(
		g, atomic_load_explicit(g, memory_order_relaxed) + add - sub,
		memory_order_relaxed);
}

/* The frame's buffers are delivered or dropped: no longer ahead. */
static void rx_uncharge(struct tcp_conn *c)
{
	rx_mem_add(c->tp, 0, c->rx.charged);
	c->rx.charged = 0;
}

/* A piece of @len bytes would pass the budget: fail this connection (a
 * peer that announces more than the worker can hold), logged once a
 * second with the count. */
static int rx_mem_refuse(struct tcp_conn *c, uint64_t len)
{
	struct tcp_tp *tp = c->tp;
	char why[200];

	snprintf(why, sizeof(why),
		 "a %llu-byte piece would pass RXP_MAX_RX_MEMORY=%llu "
		 "(%llu bytes wait for frames to complete)",
		 (unsigned long long)len, (unsigned long long)tp->rx_mem_max,
		 (unsigned long long)rxp_tp_counter(&tp->base.rx_ahead));
	tcp_refusal(&tp->base.rx_mem_refused, &tp->stats.rxmem_log, c->peer_str,
		    "closed", why);
	return -RXP_E_LIMIT;
}

void tcp_rx_fini(struct tcp_conn *c)
{
	struct tcp_rx *rx = &c->rx;

	if (!rx->lens_raw)
		return;
	rx_uncharge(c);
	for (uint32_t i = 0; i < rx->nbufs; i++)
		rxp_buf_put(rx->bufs[i]);
	rx->nbufs = 0;
	rxp__free(rx->lens_raw);
	rx->lens_raw = NULL;
}

static uint64_t piece_len(const struct tcp_rx *rx, uint32_t i)
{
	return i ? rx->lens[i - 1] : rx->h.payload_len;
}

static int alloc_piece(struct tcp_conn *c, uint32_t i)
{
	struct tcp_rx *rx = &c->rx;
	uint64_t len = piece_len(rx, i);
	uint64_t ahead = rxp_tp_counter(&c->tp->base.rx_ahead);
	struct rxp_buf *b;

	if (len > c->tp->rx_mem_max - ahead) /* ahead <= max always */
		return rx_mem_refuse(c, len);
	if (len <= TCP_SMALL_BUF)
		b = rxp_bufpool_get(c->tp->pool_small, len);
	else if (len <= rxp_bufpool_bufsz(c->tp->pool))
		b = rxp_bufpool_get(c->tp->pool, len);
	else
		b = len <= SIZE_MAX ? rxp_buf_alloc(len) : NULL;
	if (!b) {
		rxp_warn(TCP_LOG, "%s: no memory for a %llu-byte piece",
			 c->peer_str, (unsigned long long)len);
		return -ENOMEM;
	}
	rx->bufs[i] = b;
	rx->nbufs = i + 1;
	rx->charged += len;
	rx_mem_add(c->tp, len, 0);
	return 0;
}

static int deliver(struct tcp_conn *c)
{
	struct tcp_rx *rx = &c->rx;
	struct tcp_tp *tp = c->tp;
	struct rxp_msg_in m = {
		.type = rx->h.type,
		.flags = rx->h.flags,
		.id = rx->h.id,
		.payload = rx->bufs[0],
		.nstorages = rx->h.nstorages,
		.storages = rx->bufs + 1,
	};
	uint32_t nb = rx->nbufs;

	rx->state = RX_HDR;
	rx->have = 0;
	rx->nbufs = 0;
	rx_uncharge(c); /* the buffers are the agent's now */
	rxp_tp_count(&tp->base.msgs_received, 1);
	tcp_cb_enter(c);
	tp->cb.on_recv(tp->cb.ctx, &c->base, &m);
	tcp_cb_leave(c);
	for (uint32_t i = 0; i < nb; i++)
		rxp_buf_put(rx->bufs[i]);
	return 0;
}

/* Allocate the current piece, skip finished ones, deliver at the end. */
static int settle(struct tcp_conn *c)
{
	struct tcp_rx *rx = &c->rx;
	uint32_t npieces = rx->h.nstorages + 1;
	int err;

	for (;;) {
		if (rx->piece == npieces)
			return deliver(c);
		if (rx->nbufs == rx->piece) {
			err = alloc_piece(c, rx->piece);
			if (err)
				return err;
		}
		if (rx->off < rx->bufs[rx->piece]->len)
			return 0;
		rx->piece++;
		rx->off = 0;
	}
}

static int start_body(struct tcp_conn *c, uint64_t body)
{
	struct tcp_rx *rx = &c->rx;

	rx->state = RX_BODY;
	rx->piece = 0;
	rx->off = 0;
	rx->nbufs = 0;
	rx->body_left = body;
	return settle(c);
}

/* A refused connection: counted, and logged at most once a second with
 * the number refused since the last line (a stranger must not flood). */
static int auth_refuse(struct tcp_conn *c, int err, const char *why)
{
	tcp_refusal(&c->tp->base.auth_refused, &c->tp->stats.auth_log,
		    c->peer_str, "refused", why);
	return err;
}

/* An operator sees who got in: the first accepted connection of each
 * worker id is logged (later ones, reconnects, at debug). */
static void log_accepted(struct tcp_conn *c)
{
	struct tcp_tp *tp = c->tp;
	uint32_t id = c->base.peer_id;
	bool first = id < tp->world_size &&
		     !(tp->peer_seen[id / 8] & (1u << (id % 8)));

	if (first)
		tp->peer_seen[id / 8] |= (uint8_t)(1u << (id % 8));
	rxp_log(first ? RXP_LOG_INFO : RXP_LOG_DEBUG, TCP_LOG,
		"%s: accepted a connection from worker %u (%s)", c->peer_str,
		id,
		tp->key.on ? "authenticated with the job secret"
			   : "unauthenticated: no job secret");
}

/* The peer is who it says (or no one authenticates): open. */
static int hs_done(struct tcp_conn *c, const struct tcp_hs *hs)
{
	if (rx_arm(&c->rx)) {
		rxp_warn(TCP_LOG, "%s: no memory for the receive parser",
			 c->peer_str);
		return -ENOMEM;
	}
	c->peer_max_payload = hs->max_payload;
	c->peer_max_storage = hs->max_storage;
	c->peer_max_storages = hs->max_storages < RXP_WIRE_MAX_STORAGES
				       ? hs->max_storages
				       : RXP_WIRE_MAX_STORAGES;
	if (!c->base.outgoing) {
		c->base.peer_id = hs->worker_id;
		log_accepted(c);
	} else if (hs->worker_id != c->base.peer_id)
		rxp_warn(TCP_LOG, "%s: expected worker %u, peer says %u",
			 c->peer_str, c->base.peer_id, hs->worker_id);
	c->hs_rcvd = true;
	c->rx.state = RX_HDR;
	c->rx.have = 0;
	if (c->auth_wait) {
		c->auth_wait = false;
		tcp_tx_release(c); /* frames queued meanwhile */
	}
	if (c->state == TC_HANDSHAKE) {
		c->state = TC_OPEN;
		c->announced = true;
		tcp_cb_conn(c, 0);
	}
	return 0;
}

static int got_hs(struct tcp_conn *c)
{
	struct tcp_hs hs;
	int err = tcp_hs_decode(c->rx.hdr, &hs);

	if (err) {
		c->tp->stats.hs_failures++;
		rxp_warn(TCP_LOG, "%s: handshake rejected: %s", c->peer_str,
			 rxp_strerror(err));
		return err;
	}
	if (c->tp->key.on && !(hs.features & TCP_F_AUTH))
		return auth_refuse(c, -RXP_E_AUTH,
				   "the peer has no job secret and this worker "
				   "requires one (RXP_SECRET_FILE)");
	if (!c->tp->key.on && (hs.features & TCP_F_AUTH))
		return auth_refuse(c, -RXP_E_AUTH,
				   "the peer requires authentication and this "
				   "worker has no job secret (set "
				   "RXP_SECRET_FILE on every worker)");
	if (!c->tp->key.on)
		return hs_done(c, &hs);
	c->rx.state = RX_HS_EXT; /* have stays TCP_HS_SIZE */
	return 0;
}

static const uint8_t *hello_of(const struct tcp_conn *c, bool connector)
{
	return connector == c->base.outgoing ? c->hello_mine : c->hello_peer;
}

/* Our proof, released to the send queue ahead of every frame. */
static void send_proof(struct tcp_conn *c)
{
	tcp_proof_make(c->proof_slot->hdr_inline, &c->tp->key,
		       c->base.outgoing ? TCP_LABEL_CONNECTOR
					: TCP_LABEL_ACCEPTOR,
		       hello_of(c, true), hello_of(c, false));
	c->proof_slot->hold = false;
	c->proof_slot = NULL;
	tcp_tx_release(c);
}

/* The peer's nonce. The connector proves itself first; the acceptor (the
 * side strangers reach) answers only a proof that checked out, so a
 * stranger gets nothing from it but its hello. */
static int got_hs_ext(struct tcp_conn *c)
{
	struct tcp_tp *tp = c->tp;
	struct tcp_hs hs;
	uint32_t world;
	char why[96];

	tcp_hs_decode(c->rx.hdr, &hs); /* checked by got_hs */
	if (tcp_hs_ext_decode(c->rx.hdr + TCP_HS_SIZE, &world))
		return auth_refuse(c, -RXP_E_PROTO, "malformed hello");
	if (world != tp->world_size) {
		snprintf(why, sizeof(why), "peer is in a world of %u, not %u",
			 world, tp->world_size);
		return auth_refuse(c, -RXP_E_AUTH, why);
	}
	if (c->base.outgoing && hs.worker_id != c->base.peer_id) {
		snprintf(why, sizeof(why), "expected worker %u, peer says %u",
			 c->base.peer_id, hs.worker_id);
		return auth_refuse(c, -RXP_E_AUTH, why);
	}
	memcpy(c->hello_peer, c->rx.hdr, TCP_HELLO_MAX);
	if (c->base.outgoing)
		send_proof(c);
	c->rx.state = RX_PROOF;
	c->rx.have = 0;
	return 0;
}

static int got_proof(struct tcp_conn *c)
{
	struct tcp_hs hs;
	int err = tcp_proof_check(c->rx.hdr, &c->tp->key,
				  c->base.outgoing ? TCP_LABEL_ACCEPTOR
						   : TCP_LABEL_CONNECTOR,
				  hello_of(c, true), hello_of(c, false));

	if (err)
		return auth_refuse(
			c, -RXP_E_AUTH,
			err == -RXP_E_PROTO
				? "malformed proof"
				: "wrong proof of the job secret (different "
				  "secret, or a replayed handshake)");
	if (!c->base.outgoing)
		send_proof(c);
	tcp_hs_decode(c->hello_peer, &hs);
	return hs_done(c, &hs);
}

static int got_hdr(struct tcp_conn *c)
{
	struct tcp_rx *rx = &c->rx;
	int err = tcp_hdr_decode(rx->hdr, RXP_WIRE_MAX_STORAGES,
				 c->tp->max_payload, &rx->h);

	if (err)
		return err;
	rx->have = 0;
	if (rx->h.nstorages) {
		rx->state = RX_LENS;
		return 0;
	}
	return start_body(c, rx->h.payload_len);
}

static int got_lens(struct tcp_conn *c)
{
	struct tcp_rx *rx = &c->rx;
	uint64_t body = rx->h.payload_len;

	for (uint32_t i = 0; i < rx->h.nstorages; i++) {
		uint64_t len = rxp_get_le64(rx->lens_raw + 8 * (size_t)i);

		if (len > c->tp->max_storage || len > UINT64_MAX - body)
			return -RXP_E_PROTO;
		rx->lens[i] = len; /* in place: same offset, same size */
		body += len;
	}
	return start_body(c, body);
}

static size_t gather(uint8_t *dst, size_t *have, size_t need, const uint8_t *p,
		     size_t n)
{
	size_t take = need - *have < n ? need - *have : n;

	memcpy(dst + *have, p, take);
	*have += take;
	return take;
}

int tcp_rx_feed(struct tcp_conn *c, const uint8_t *p, size_t n)
{
	struct tcp_rx *rx = &c->rx;
	int err = 0;

	rxp_tp_count(&c->tp->base.bytes_received, n);
	c->rx_total += n;
	while (n && tcp_conn_live(c)) {
		size_t take;

		switch (rx->state) {
		case RX_HS:
			take = gather(rx->hdr, &rx->have, TCP_HS_SIZE, p, n);
			if (rx->have == TCP_HS_SIZE)
				err = got_hs(c);
			break;
		case RX_HS_EXT:
			take = gather(rx->hdr, &rx->have, TCP_HELLO_MAX, p, n);
			if (rx->have == TCP_HELLO_MAX)
				err = got_hs_ext(c);
			break;
		case RX_PROOF:
			take = gather(rx->hdr, &rx->have, TCP_PROOF_SIZE, p, n);
			if (rx->have == TCP_PROOF_SIZE)
				err = got_proof(c);
			break;
		case RX_HDR:
			take = gather(rx->hdr, &rx->have, TCP_HDR_SIZE, p, n);
			if (rx->have == TCP_HDR_SIZE)
				err = got_hdr(c);
			break;
		case RX_LENS:
			take = gather(rx->lens_raw, &rx->have,
				      8 * (size_t)rx->h.nstorages, p, n);
			if (rx->have == 8 * (size_t)rx->h.nstorages)
				err = got_lens(c);
			break;
		default: {
			struct rxp_buf *b = rx->bufs[rx->piece];

			take = b->len - rx->off < n ? b->len - rx->off : n;
			memcpy((uint8_t *)b->data + rx->off, p, take);
			rx->off += take;
			rx->body_left -= take;
			c->tp->stats.body_copied += take;
			err = settle(c);
			break;
		}
		}
		if (err)
			return err;
		p += take;
		n -= take;
	}
	return 0;
}

bool tcp_rx_want_direct(const struct tcp_conn *c)
{
	return c->rx.state == RX_BODY && c->rx.body_left > c->tp->rx_copy_max;
}

/*
 * At most TCP_RX_DIRECT_CHUNK bytes per direct receive: pieces past it
 * are not allocated yet (a header announcing 1,024 storages of 16 GiB
 * reserves one of them, not 2 TiB), and a MSG_WAITALL receive completes
 * often enough for the stall check to see the bytes arrive.
 */
int tcp_rx_direct_iov(struct tcp_conn *c, struct iovec *iov, int max)
{
	struct tcp_rx *rx = &c->rx;
	uint32_t npieces = rx->h.nstorages + 1;
	size_t off = rx->off, room = TCP_RX_DIRECT_CHUNK;
	int n = 0, err;

	for (uint32_t i = rx->piece; i < npieces && n < max && room;
	     i++, off = 0) {
		struct rxp_buf *b;

		if (rx->nbufs == i) {
			err = alloc_piece(c, i);
			if (err)
				return err;
		}
		b = rx->bufs[i];
		if (b->len > off) {
			size_t len = b->len - off;

			iov[n].iov_base = (uint8_t *)b->data + off;
			iov[n].iov_len = len < room ? len : room;
			room -= iov[n].iov_len;
			n++;
		}
	}
	return n;
}

int tcp_rx_direct_done(struct tcp_conn *c, size_t n)
{
	struct tcp_rx *rx = &c->rx;

	rxp_tp_count(&c->tp->base.bytes_received, n);
	c->rx_total += n;
	if (n > rx->body_left)
		return -EIO; /* the kernel wrote past the iovecs we gave it */
	rx->body_left -= n;
	c->tp->stats.body_direct += n;
	while (n) {
		struct rxp_buf *b = rx->bufs[rx->piece];
		size_t take = b->len - rx->off < n ? b->len - rx->off : n;

		rx->off += take;
		n -= take;
		if (rx->off == b->len) {
			rx->piece++;
			rx->off = 0;
		}
	}
	return settle(c);
}
