/* SPDX-License-Identifier: MIT */
/*
 * Authentication of a verbs connection, when a job secret is set.
 *
 * rdma_cm's private data is too small for the whole exchange (56 bytes in
 * a REQ, 48 of them ours), so it carries the acceptor's nonce only, in the
 * accept; the proofs are the first frame each way on the QP:
 *
 *   connector                                  acceptor
 *   REQ   private data, features AUTH    ->
 *                                        <-    REP   private data + Na
 *   AUTH  Nc, proof from connector       ->    checks it; only then
 *                                        <-    AUTH  0, proof from acceptor
 *   checks it                                  (up: reported to the agent)
 *   (up: reported to the agent)
 *
 *   proof = HMAC-SHA256(key, label || 0x00 || REQ private data ||
 *                       REP private data || Na, Nc || world size)
 *
 * Both nonces are fresh (libsodium), so a recorded handshake fails against
 * a new Na (the acceptor's check) or a new Nc (the connector's); the label
 * names the direction, so a proof reflected back fails; the private data
 * holds both worker ids, the limits, the version and the features. The
 * acceptor answers only a proof that checked out, so a stranger gets
 * nothing from us but the accept. Until the peer has proved the secret the
 * connection is not reported up, the agent's sends wait in its pending
 * queue, and any frame but that one AUTH frame fails it with -RXP_E_AUTH
 * (no DATA is parsed, no READ posted, no credit counted); the connect
 * deadline covers the whole exchange. Refusals are counted
 * (stats.auth_refused) and logged at most once a second.
 */
#include <string.h>

#include "verbs.h"

#define LABEL_CONN VERBS_AUTH_LABEL_CONN
#define LABEL_ACC VERBS_AUTH_LABEL_ACC
#define T_LEN (VERBS_PD_SIZE + VERBS_PD_AUTH_SIZE) /* REQ || REP */

static void tail(const struct verbs_conn *c,
		 uint8_t b[RXP_AUTH_NONCE_BYTES + 4])
{
	memcpy(b, c->auth_t + T_LEN, RXP_AUTH_NONCE_BYTES);
	rxp_put_le32(b + RXP_AUTH_NONCE_BYTES, c->tp->world_size);
}

static void send_proof(struct verbs_conn *c, const char *label,
		       const uint8_t *nonce)
{
	uint8_t b[RXP_AUTH_NONCE_BYTES + 4], mac[RXP_AUTH_MAC_BYTES];
	uint8_t f[VERBS_AUTH_FRAME];
	int ret;

	tail(c, b);
	rxp_auth_mac(&c->tp->key, label, c->auth_t, T_LEN, b, sizeof(b), mac);
	verbs_auth_encode(f, nonce, mac);
	ret = verbs_ep_ctl(c, f, sizeof(f));
	if (ret)
		verbs_conn_down(c, ret, false);
}

void verbs_auth_start(struct verbs_conn *c)
{
	uint8_t *nc = c->auth_t + T_LEN;

	c->state = VC_AUTH;
	if (!c->base.outgoing)
		return; /* the connector proves itself first */
	rxp_auth_nonce(nc, RXP_AUTH_NONCE_BYTES);
	send_proof(c, LABEL_CONN, nc);
}

static void refuse(struct verbs_conn *c, const char *why)
{
	struct verbs_tp *tp = c->tp;
	uint64_t n;

	tp->stats.auth_refused++;
	if (rxp_ratelog_due(&tp->auth_log, tp->stats.auth_refused, &n))
		rxp_warn(VERBS_LOG,
			 "%s %s (says worker %u): %s: refused (%llu such "
			 "in the last second)",
			 c->base.outgoing ? "connection to" : "connection from",
			 c->peer, c->base.peer_id, why, (unsigned long long)n);
	verbs_conn_down(c, -RXP_E_AUTH, false);
}

void verbs_auth_recv(struct verbs_conn *c, const void *buf, size_t len)
{
	uint8_t nonce[RXP_AUTH_NONCE_BYTES], mac[RXP_AUTH_MAC_BYTES];
	uint8_t b[RXP_AUTH_NONCE_BYTES + 4];
	bool conn = c->base.outgoing;

	if (verbs_auth_decode(buf, len, nonce, mac)) {
		refuse(c, "a frame before its proof of the job secret");
		return;
	}
	if (!conn) /* the connector's nonce, covered by both proofs */
		memcpy(c->auth_t + T_LEN, nonce, RXP_AUTH_NONCE_BYTES);
	tail(c, b);
	if (rxp_auth_verify(&c->tp->key, conn ? LABEL_ACC : LABEL_CONN,
			    c->auth_t, T_LEN, b, sizeof(b), mac)) {
		refuse(c, "wrong proof of the job secret");
		return;
	}
	if (!conn) {
		static const uint8_t zero[RXP_AUTH_NONCE_BYTES];

		send_proof(c, LABEL_ACC, zero);
		if (c->state != VC_AUTH)
			return;
	}
	verbs_conn_up(c);
}
