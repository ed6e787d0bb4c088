/* SPDX-License-Identifier: MIT */
/*
 * Frame and private-data encoding, and the validation of everything that
 * comes from the peer (frames, descriptors, private data). Also the
 * tables that turn work-completion statuses and rdma_cm events into
 * rxp's errors and text.
 */
#include <string.h>

#include "verbs.h"

void verbs_hdr_encode(void *out, const struct verbs_hdr *h)
{
	uint8_t *p = out;

	rxp_put_le16(p, VERBS_WIRE_MAGIC);
	p[2] = h->kind;
	p[3] = h->hflags;
	p[4] = h->type;
	p[5] = h->flags;
	rxp_put_le16(p + 6, h->npay);
	rxp_put_le32(p + 8, h->credits);
	rxp_put_le32(p + 12, h->count);
	rxp_put_le64(p + 16, h->id);
	rxp_put_le64(p + 24, h->payload_len);
	rxp_put_le32(p + 32, h->token);
	rxp_put_le32(p + 36, 0);
}

void verbs_hdr_patch(void *frame, uint32_t credits, uint32_t token)
{
	uint8_t *p = frame;

	rxp_put_le32(p + 8, credits);
	rxp_put_le32(p + 32, token);
}

void verbs_desc_encode(void *out, const struct verbs_desc *d)
{
	uint8_t *p = out;

	rxp_put_le64(p, d->addr);
	rxp_put_le64(p + 8, d->len);
	rxp_put_le32(p + 16, d->rkey);
	rxp_put_le32(p + 20, d->dflags);
}

void verbs_desc_decode(const void *in, struct verbs_desc *d)
{
	const uint8_t *p = in;

	d->addr = rxp_get_le64(p);
	d->len = rxp_get_le64(p + 8);
	d->rkey = rxp_get_le32(p + 16);
	d->dflags = rxp_get_le32(p + 20);
}

void verbs_done_encode(void *out, const struct verbs_done *d)
{
	uint8_t *p = out;

	rxp_put_le32(p, d->token);
	rxp_put_le32(p + 4, (uint32_t)d->status);
}

void verbs_done_decode(const void *in, struct verbs_done *d)
{
	const uint8_t *p = in;

	d->token = rxp_get_le32(p);
	d->status = (int32_t)rxp_get_le32(p + 4);
}

static int bad(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -RXP_E_PROTO;
}

static int check_remote(const struct verbs_desc *d, const char **why)
{
	if (d->dflags)
		return bad(why, "remote descriptor with flags");
	if (!d->len)
		return bad(why, "empty remote descriptor");
	if (d->addr + d->len < d->addr)
		return bad(why, "remote range wraps around");
	return 0;
}

static int check_data(const uint8_t *p, size_t len,
		      const struct verbs_limits *lim, struct verbs_hdr *h,
		      const char **why)
{
	uint32_t ndesc = h->npay + h->count;
	size_t desc_end, data_start;
	uint64_t sum = 0;
	bool remote = h->npay > 0;
	struct verbs_desc d;

	if (h->hflags)
		return bad(why, "unknown header flags");
	if (h->count > RXP_WIRE_MAX_STORAGES)
		return bad(why, "too many storages");
	if (h->npay > VERBS_MAX_PAYDESC)
		return bad(why, "too many payload pieces");
	if (h->payload_len > lim->max_payload)
		return bad(why, "payload over the limit");
	desc_end = VERBS_HDR_SIZE + (size_t)ndesc * VERBS_DESC_SIZE;
	if (desc_end > len)
		return bad(why, "descriptors past the end of the frame");
	data_start = desc_end;
	if (!h->npay) {
		if (h->payload_len > len - desc_end)
			return bad(why, "inline payload past the frame");
		data_start += h->payload_len;
	}
	for (uint32_t i = 0; i < h->npay; i++) {
		verbs_desc_decode(p + VERBS_HDR_SIZE + i * VERBS_DESC_SIZE, &d);
		if (check_remote(&d, why))
			return -RXP_E_PROTO;
		if (d.len > h->payload_len - sum)
			return bad(why, "payload pieces exceed payload_len");
		sum += d.len;
	}
	if (h->npay && sum != h->payload_len)
		return bad(why, "payload pieces do not add up");
	for (uint32_t i = h->npay; i < ndesc; i++) {
		verbs_desc_decode(p + VERBS_HDR_SIZE + i * VERBS_DESC_SIZE, &d);
		if (d.len > lim->max_storage)
			return bad(why, "storage over the limit");
		if (d.dflags & ~VERBS_DF_INLINE)
			return bad(why, "unknown descriptor flags");
		if (d.dflags & VERBS_DF_INLINE) {
			if (d.addr < data_start || d.addr > len ||
			    d.len > len - d.addr)
				return bad(why, "inline storage out of range");
			continue;
		}
		if (check_remote(&d, why))
			return -RXP_E_PROTO;
		remote = true;
	}
	if (remote != (h->token != 0))
		return bad(why, "rendezvous token mismatch");
	return 0;
}

int verbs_frame_check(const void *buf, size_t len,
		      const struct verbs_limits *lim, struct verbs_hdr *h,
		      const char **why)
{
	const uint8_t *p = buf;

	if (len < VERBS_HDR_SIZE)
		return bad(why, "short frame");
	if (rxp_get_le16(p) != VERBS_WIRE_MAGIC)
		return bad(why, "bad magic");
	h->kind = p[2];
	h->hflags = p[3];
	h->type = p[4];
	h->flags = p[5];
	h->npay = rxp_get_le16(p + 6);
	h->credits = rxp_get_le32(p + 8);
	h->count = rxp_get_le32(p + 12);
	h->id = rxp_get_le64(p + 16);
	h->payload_len = rxp_get_le64(p + 24);
	h->token = rxp_get_le32(p + 32);
	if (rxp_get_le32(p + 36))
		return bad(why, "reserved field set");
	switch (h->kind) {
	case VERBS_K_DATA:
		return check_data(p, len, lim, h, why);
	case VERBS_K_ACK:
		if (h->hflags & ~VERBS_HF_BYE)
			return bad(why, "unknown ack flags");
		if (h->count > VERBS_ACK_MAX_DONE)
			return bad(why, "too many rendezvous acks");
		if (len < VERBS_HDR_SIZE + (size_t)h->count * VERBS_DONE_SIZE)
			return bad(why, "short ack");
		return 0;
	default:
		return bad(why, "unknown frame kind");
	}
}

/* ---------------------------------------------------------- auth frame */

void verbs_auth_encode(void *out, const uint8_t *nonce, const uint8_t *mac)
{
	uint8_t *p = out;

	memset(p, 0, VERBS_HDR_SIZE);
	rxp_put_le16(p, VERBS_WIRE_MAGIC);
	p[2] = VERBS_K_AUTH;
	memcpy(p + VERBS_HDR_SIZE, nonce, RXP_AUTH_NONCE_BYTES);
	memcpy(p + VERBS_HDR_SIZE + RXP_AUTH_NONCE_BYTES, mac,
	       RXP_AUTH_MAC_BYTES);
}

int verbs_auth_decode(const void *in, size_t len, uint8_t *nonce, uint8_t *mac)
{
	const uint8_t *p = in;

	if (len != VERBS_AUTH_FRAME || rxp_get_le16(p) != VERBS_WIRE_MAGIC ||
	    p[2] != VERBS_K_AUTH)
		return -RXP_E_PROTO;
	for (unsigned i = 3; i < VERBS_HDR_SIZE; i++)
		if (p[i])
			return -RXP_E_PROTO;
	memcpy(nonce, p + VERBS_HDR_SIZE, RXP_AUTH_NONCE_BYTES);
	memcpy(mac, p + VERBS_HDR_SIZE + RXP_AUTH_NONCE_BYTES,
	       RXP_AUTH_MAC_BYTES);
	return 0;
}

/* ------------------------------------------------------- private data */

void verbs_pdata_encode(void *out, const struct verbs_pdata *pd)
{
	uint8_t *p = out;

	memset(p, 0, VERBS_PD_SIZE);
	rxp_put_le32(p, VERBS_PD_MAGIC);
	rxp_put_le16(p + 4, pd->version);
	rxp_put_le16(p + 6, VERBS_PD_SIZE);
	rxp_put_le32(p + 8, pd->worker_id);
	rxp_put_le32(p + 12, pd->credits);
	rxp_put_le32(p + 16, pd->eager_size);
	rxp_put_le16(p + 20, pd->max_rdv);
	rxp_put_le16(p + 22, pd->reject);
	rxp_put_le64(p + 24, pd->max_payload);
	rxp_put_le64(p + 32, pd->max_storage);
	rxp_put_le64(p + 40, pd->features);
}

int verbs_pdata_decode(const void *in, size_t len, struct verbs_pdata *pd,
		       const char **why)
{
	const uint8_t *p = in;

	memset(pd, 0, sizeof(*pd));
	if (!p || len < 8)
		return bad(why, "private data missing or short");
	pd->magic = rxp_get_le32(p);
	pd->version = rxp_get_le16(p + 4);
	pd->size = rxp_get_le16(p + 6);
	if (pd->magic != VERBS_PD_MAGIC)
		return bad(why, "private data has a bad magic");
	if (pd->version != VERBS_PROTO_VERSION) {
		if (why)
			*why = "protocol version mismatch";
		return -RXP_E_VERSION;
	}
	if (len < VERBS_PD_SIZE || pd->size < VERBS_PD_SIZE || pd->size > len)
		return bad(why, "private data too short");
	pd->worker_id = rxp_get_le32(p + 8);
	pd->credits = rxp_get_le32(p + 12);
	pd->eager_size = rxp_get_le32(p + 16);
	pd->max_rdv = rxp_get_le16(p + 20);
	pd->reject = rxp_get_le16(p + 22);
	pd->max_payload = rxp_get_le64(p + 24);
	pd->max_storage = rxp_get_le64(p + 32);
	pd->features = rxp_get_le64(p + 40);
	if (!pd->credits || pd->credits > VERBS_MAX_CREDITS)
		return bad(why, "credits out of range");
	if (pd->eager_size < VERBS_MIN_EAGER ||
	    pd->eager_size > VERBS_MAX_EAGER)
		return bad(why, "eager size out of range");
	if (!pd->max_rdv || pd->max_rdv > VERBS_MAX_RDV)
		return bad(why, "rendezvous depth out of range");
	if (!pd->max_payload || !pd->max_storage)
		return bad(why, "zero message limits");
	if (pd->reject > VERBS_REJ_AUTH)
		return bad(why, "unknown reject reason");
	if (pd->features & ~VERBS_PDF_AUTH)
		return bad(why, "unknown features");
	return 0;
}

/* --------------------------------------------------------- status maps */

/* X(status, error, text): the error a failed work request reports. */
#define VERBS_WC_STATUSES(X)                                                   \
	X(IBV_WC_SUCCESS, 0, "success")                                        \
	X(IBV_WC_LOC_LEN_ERR, -RXP_E_PROTO,                                    \
	  "local length error (frame larger than the receive buffer)")         \
	X(IBV_WC_LOC_QP_OP_ERR, -EIO, "local QP operation error")              \
	X(IBV_WC_LOC_EEC_OP_ERR, -EIO, "local EE context operation error")     \
	X(IBV_WC_LOC_PROT_ERR, -EFAULT, "local protection error (bad lkey)")   \
	X(IBV_WC_WR_FLUSH_ERR, -ECANCELED, "flushed (queue pair in error)")    \
	X(IBV_WC_MW_BIND_ERR, -EIO, "memory window bind error")                \
	X(IBV_WC_BAD_RESP_ERR, -EPROTO, "bad response from the peer")          \
	X(IBV_WC_LOC_ACCESS_ERR, -EFAULT, "local access error")                \
	X(IBV_WC_REM_INV_REQ_ERR, -RXP_E_PROTO,                                \
	  "remote invalid request (the peer refused the request)")             \
	X(IBV_WC_REM_ACCESS_ERR, -EACCES,                                      \
	  "remote access error (rkey/range not valid at the peer)")            \
	X(IBV_WC_REM_OP_ERR, -EREMOTEIO, "remote operation error")             \
	X(IBV_WC_RETRY_EXC_ERR, -RXP_E_PEER_LOST,                              \
	  "transport retry counter exceeded (peer unreachable)")               \
	X(IBV_WC_RNR_RETRY_EXC_ERR, -ENOBUFS,                                  \
	  "RNR retry counter exceeded (peer had no receive buffer)")           \
	X(IBV_WC_LOC_RDD_VIOL_ERR, -EIO, "local RDD violation")                \
	X(IBV_WC_REM_INV_RD_REQ_ERR, -EIO, "remote invalid RD request")        \
	X(IBV_WC_REM_ABORT_ERR, -ECONNABORTED, "remote aborted")               \
	X(IBV_WC_INV_EECN_ERR, -EIO, "invalid EE context number")              \
	X(IBV_WC_INV_EEC_STATE_ERR, -EIO, "invalid EE context state")          \
	X(IBV_WC_FATAL_ERR, -EIO, "fatal device error")                        \
	X(IBV_WC_RESP_TIMEOUT_ERR, -ETIMEDOUT, "response timeout")             \
	X(IBV_WC_GENERAL_ERR, -EIO, "general error")                           \
	X(IBV_WC_TM_ERR, -EIO, "tag matching error")                           \
	X(IBV_WC_TM_RNDV_INCOMPLETE, -EIO, "tag matching rendezvous incomplete")

static const struct {
	int err;
	const char *text;
} wc_table[] = {
#define VERBS_WC_ROW(st, e, t) [st] = {e, t},
	VERBS_WC_STATUSES(VERBS_WC_ROW)
#undef VERBS_WC_ROW
};

int verbs_wc_status_to_err(enum ibv_wc_status st)
{
	if ((unsigned)st >= RXP_ARRAY_SIZE(wc_table) || !wc_table[st].text)
		return -RXP_E_WC;
	return wc_table[st].err;
}

const char *verbs_wc_status_str(enum ibv_wc_status st)
{
	if ((unsigned)st >= RXP_ARRAY_SIZE(wc_table) || !wc_table[st].text)
		return "unknown work completion status";
	return wc_table[st].text;
}

const char *verbs_cm_event_str(enum rdma_cm_event_type ev)
{
	static const char *const names[] = {
		[RDMA_CM_EVENT_ADDR_RESOLVED] = "ADDR_RESOLVED",
		[RDMA_CM_EVENT_ADDR_ERROR] = "ADDR_ERROR",
		[RDMA_CM_EVENT_ROUTE_RESOLVED] = "ROUTE_RESOLVED",
		[RDMA_CM_EVENT_ROUTE_ERROR] = "ROUTE_ERROR",
		[RDMA_CM_EVENT_CONNECT_REQUEST] = "CONNECT_REQUEST",
		[RDMA_CM_EVENT_CONNECT_RESPONSE] = "CONNECT_RESPONSE",
		[RDMA_CM_EVENT_CONNECT_ERROR] = "CONNECT_ERROR",
		[RDMA_CM_EVENT_UNREACHABLE] = "UNREACHABLE",
		[RDMA_CM_EVENT_REJECTED] = "REJECTED",
		[RDMA_CM_EVENT_ESTABLISHED] = "ESTABLISHED",
		[RDMA_CM_EVENT_DISCONNECTED] = "DISCONNECTED",
		[RDMA_CM_EVENT_DEVICE_REMOVAL] = "DEVICE_REMOVAL",
		[RDMA_CM_EVENT_MULTICAST_JOIN] = "MULTICAST_JOIN",
		[RDMA_CM_EVENT_MULTICAST_ERROR] = "MULTICAST_ERROR",
		[RDMA_CM_EVENT_ADDR_CHANGE] = "ADDR_CHANGE",
		[RDMA_CM_EVENT_TIMEWAIT_EXIT] = "TIMEWAIT_EXIT",
	};

	if ((unsigned)ev >= RXP_ARRAY_SIZE(names) || !names[ev])
		return "UNKNOWN_EVENT";
	return names[ev];
}
