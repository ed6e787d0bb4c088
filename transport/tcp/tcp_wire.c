/* SPDX-License-Identifier: MIT */
/*
 * Wire format of the TCP transport (all integers little-endian).
 *
 * Handshake, sent once by each side as its first 40 bytes:
 *   0 u32 magic "RXPH"   4 u16 version   6 u16 size (40)
 *   8 u32 worker id     12 u32 max storages per message
 *  16 u64 max payload   24 u64 max bytes per storage   32 u64 features
 *
 * Features: 0, or TCP_F_AUTH (bit 0): the sender has a job secret. Its
 * hello then goes on for 40 more bytes (the extension):
 *   0 u32 world size     4 u32 0     8 32-byte random nonce
 * then the connector (once it has the acceptor's hello), and the acceptor
 * after checking that, send their proofs:
 *   0 u32 magic "RXPA"   4 u16 version   6 u16 size (40)
 *   8 32-byte HMAC-SHA256(key, label || 0 || connector's 80-byte hello ||
 *                         acceptor's 80-byte hello)
 * (label TCP_LABEL_CONNECTOR or TCP_LABEL_ACCEPTOR by who sends it). No
 * frame is sent or parsed before the peer's proof checked out.
 *
 * Message frame:
 *   0 u16 magic "RX"   2 u8 version   3 u8 type   4 u8 flags   5 u8 0
 *   6 u16 0            8 u32 nstorages           12 u32 0
 *  16 u64 id          24 u64 payload length
 *  32 nstorages x u64 storage lengths, then the payload, then the
 *     storages back to back.
 */
#include <errno.h>
#include <string.h>

#include "tcp.h"

void tcp_hs_encode(uint8_t out[TCP_HS_SIZE], const struct tcp_hs *hs)
{
	rxp_put_le32(out, hs->magic);
	rxp_put_le16(out + 4, hs->version);
	rxp_put_le16(out + 6, hs->size);
	rxp_put_le32(out + 8, hs->worker_id);
	rxp_put_le32(out + 12, hs->max_storages);
	rxp_put_le64(out + 16, hs->max_payload);
	rxp_put_le64(out + 24, hs->max_storage);
	rxp_put_le64(out + 32, hs->features);
}

int tcp_hs_decode(const uint8_t in[TCP_HS_SIZE], struct tcp_hs *hs)
{
	hs->magic = rxp_get_le32(in);
	hs->version = rxp_get_le16(in + 4);
	hs->size = rxp_get_le16(in + 6);
	if (hs->magic != TCP_HS_MAGIC)
		return -RXP_E_PROTO;
	/* version first: a future version may have another size */
	if (hs->version != TCP_PROTO_VERSION)
		return -RXP_E_VERSION;
	if (hs->size != TCP_HS_SIZE)
		return -RXP_E_PROTO;
	hs->worker_id = rxp_get_le32(in + 8);
	hs->max_storages = rxp_get_le32(in + 12);
	hs->max_payload = rxp_get_le64(in + 16);
	hs->max_storage = rxp_get_le64(in + 24);
	hs->features = rxp_get_le64(in + 32);
	if (hs->features & ~TCP_F_AUTH)
		return -RXP_E_VERSION; /* unknown optional features */
	return 0;
}

void tcp_hs_ext_encode(uint8_t out[TCP_HS_EXT_SIZE], uint32_t world_size,
		       const uint8_t nonce[RXP_AUTH_NONCE_BYTES])
{
	rxp_put_le32(out, world_size);
	rxp_put_le32(out + 4, 0);
	memcpy(out + 8, nonce, RXP_AUTH_NONCE_BYTES);
}

int tcp_hs_ext_decode(const uint8_t in[TCP_HS_EXT_SIZE], uint32_t *world_size)
{
	if (rxp_get_le32(in + 4))
		return -RXP_E_PROTO;
	*world_size = rxp_get_le32(in);
	return 0;
}

void tcp_proof_make(uint8_t out[TCP_PROOF_SIZE], const struct rxp_auth_key *key,
		    const char *label, const uint8_t *conn_hello,
		    const uint8_t *acc_hello)
{
	rxp_put_le32(out, TCP_PROOF_MAGIC);
	rxp_put_le16(out + 4, TCP_PROTO_VERSION);
	rxp_put_le16(out + 6, TCP_PROOF_SIZE);
	rxp_auth_mac(key, label, conn_hello, TCP_HELLO_MAX, acc_hello,
		     TCP_HELLO_MAX, out + 8);
}

int tcp_proof_check(const uint8_t in[TCP_PROOF_SIZE],
		    const struct rxp_auth_key *key, const char *label,
		    const uint8_t *conn_hello, const uint8_t *acc_hello)
{
	if (rxp_get_le32(in) != TCP_PROOF_MAGIC ||
	    rxp_get_le16(in + 4) != TCP_PROTO_VERSION ||
	    rxp_get_le16(in + 6) != TCP_PROOF_SIZE)
		return -RXP_E_PROTO;
	return rxp_auth_verify(key, label, conn_hello, TCP_HELLO_MAX, acc_hello,
			       TCP_HELLO_MAX, in + 8);
}

void tcp_hdr_encode(uint8_t out[TCP_HDR_SIZE], const struct tcp_hdr *h)
{
	memset(out, 0, TCP_HDR_SIZE);
	rxp_put_le16(out, TCP_HDR_MAGIC);
	out[2] = h->version;
	out[3] = h->type;
	out[4] = h->flags;
	rxp_put_le32(out + 8, h->nstorages);
	rxp_put_le64(out + 16, h->id);
	rxp_put_le64(out + 24, h->payload_len);
}

int tcp_hdr_decode(const uint8_t in[TCP_HDR_SIZE], uint32_t max_storages,
		   uint64_t max_payload, struct tcp_hdr *h)
{
	if (rxp_get_le16(in) != TCP_HDR_MAGIC || in[2] != TCP_PROTO_VERSION)
		return -RXP_E_PROTO;
	if (in[5] || rxp_get_le16(in + 6) || rxp_get_le32(in + 12))
		return -RXP_E_PROTO;
	h->version = in[2];
	h->type = in[3];
	h->flags = in[4];
	h->nstorages = rxp_get_le32(in + 8);
	h->id = rxp_get_le64(in + 16);
	h->payload_len = rxp_get_le64(in + 24);
	if (h->nstorages > max_storages || h->payload_len > max_payload)
		return -RXP_E_PROTO;
	return 0;
}
