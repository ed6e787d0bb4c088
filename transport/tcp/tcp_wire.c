/* SPDX-License-Identifier: MIT */
/*
 * Wire format of the TCP transport (all integers little-endian).
 *
 * Handshake, sent once by each side as its first 40 bytes:
 *   0 u32 magic "RXPH"   4 u16 version   6 u16 size (40)
 *   8 u32 worker id     12 u32 max storages per message
 *  16 u64 max payload   24 u64 max bytes per storage   32 u64 features (0)
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

void tcp_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t tcp_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

void tcp_hs_encode(uint8_t out[TCP_HS_SIZE], const struct tcp_hs *hs)
{
	put_le32(out, hs->magic);
	put_le16(out + 4, hs->version);
	put_le16(out + 6, hs->size);
	put_le32(out + 8, hs->worker_id);
	put_le32(out + 12, hs->max_storages);
	tcp_put_le64(out + 16, hs->max_payload);
	tcp_put_le64(out + 24, hs->max_storage);
	tcp_put_le64(out + 32, hs->features);
}

int tcp_hs_decode(const uint8_t in[TCP_HS_SIZE], struct tcp_hs *hs)
{
	hs->magic = get_le32(in);
	hs->version = get_le16(in + 4);
	hs->size = get_le16(in + 6);
	if (hs->magic != TCP_HS_MAGIC)
		return -RXP_E_PROTO;
	/* version first: a future version may have another size */
	if (hs->version != TCP_PROTO_VERSION)
		return -RXP_E_VERSION;
	if (hs->size != TCP_HS_SIZE)
		return -RXP_E_PROTO;
	hs->worker_id = get_le32(in + 8);
	hs->max_storages = get_le32(in + 12);
	hs->max_payload = tcp_get_le64(in + 16);
	hs->max_storage = tcp_get_le64(in + 24);
	hs->features = tcp_get_le64(in + 32);
	if (hs->features)
		return -RXP_E_VERSION; /* no optional features exist yet */
	return 0;
}

void tcp_hdr_encode(uint8_t out[TCP_HDR_SIZE], const struct tcp_hdr *h)
{
	memset(out, 0, TCP_HDR_SIZE);
	put_le16(out, TCP_HDR_MAGIC);
	out[2] = h->version;
	out[3] = h->type;
	out[4] = h->flags;
	put_le32(out + 8, h->nstorages);
	tcp_put_le64(out + 16, h->id);
	tcp_put_le64(out + 24, h->payload_len);
}

int tcp_hdr_decode(const uint8_t in[TCP_HDR_SIZE], uint32_t max_storages,
		   uint64_t max_payload, struct tcp_hdr *h)
{
	if (get_le16(in) != TCP_HDR_MAGIC || in[2] != TCP_PROTO_VERSION)
		return -RXP_E_PROTO;
	if (in[5] || get_le16(in + 6) || get_le32(in + 12))
		return -RXP_E_PROTO;
	h->version = in[2];
	h->type = in[3];
	h->flags = in[4];
	h->nstorages = get_le32(in + 8);
	h->id = tcp_get_le64(in + 16);
	h->payload_len = tcp_get_le64(in + 24);
	if (h->nstorages > max_storages || h->payload_len > max_payload)
		return -RXP_E_PROTO;
	return 0;
}
