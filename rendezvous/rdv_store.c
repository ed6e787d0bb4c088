/* SPDX-License-Identifier: MIT */
/*
 * Rendezvous through a framework's key-value store (struct rxp_store_ops in
 * rxp.h): no socket of rxp's own. Each worker sets its record under
 * rxp/w/<rank> and gets every other rank's; join() is a counter barrier on
 * rxp/join/<n> and rxp/join/<n>/done.
 *
 * Record (little-endian, through util/'s rxp_put_le* / rxp_get_le*):
 *    0 u32 magic "RXWS"     4 u16 version (1)     6 u16 reserved (0)
 *    8 u32 rank            12 u32 world size
 *   16 u16 name_len        18 u16 addr_len       20 u16 tpname_len
 *   22 u16 reserved (0)
 *   24 name, addr, tpname: each NUL-terminated, its length counting the NUL
 * A record is exactly 24 bytes plus the three lengths. What the store gives
 * back is untrusted: every field is checked, and a bad record fails the
 * rendezvous with a log line naming the rank and what was wrong.
 */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdv_int.h"
#include "rxp_abi.h"
#include "rxp_util.h"

#define REC_MAGIC 0x53575852u /* "RXWS" */
#define REC_VERSION 1
#define REC_HDR 24
#define REC_MAX (REC_HDR + RDV_NAME_LEN + RDV_ADDR_LEN + RDV_TPNAME_LEN)
#define SLICE_MS 1000 /* one get's wait when there is no deadline */
#define MAX_LISTED 16 /* missing ranks named in the log line */
#define LOG "rendezvous"

static const char *const str_what[3] = {"name", "address", "transport name"};
static const size_t str_cap[3] = {RDV_NAME_LEN, RDV_ADDR_LEN, RDV_TPNAME_LEN};

int rxp__rdv_store_open(const struct rxp_store_ops *ops, void *ctx,
			struct rxp__rdv **out)
{
	struct rxp_store_ops copy = {0};
	struct rxp__rdv *r;
	int ret;

	if (!ops)
		return -EINVAL;
	/* the first layout (0.2): size, set, get, add */
	ret = rxp_struct_in(&copy, sizeof(copy), ops,
			    offsetof(struct rxp_store_ops, add) +
				    sizeof(copy.add));
	if (ret == -E2BIG)
		rxp_err(LOG, "attr.store has ops this rxp does not know "
			     "(built against a newer rxp.h?)");
	if (ret)
		return ret;
	if (!copy.set || !copy.get || !copy.add) {
		rxp_err(LOG, "attr.store needs set, get and add");
		return -EINVAL;
	}
	r = rxp__calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = -1;
	r->store_ops = copy;
	r->store = &r->store_ops;
	r->store_ctx = ctx;
	*out = r;
	return 0;
}

static int store_err(const char *op, const char *key, int ret)
{
	rxp_err(LOG, "store %s '%s' failed: %d (%s)", op, key, ret,
		rxp_strerror(ret));
	return -RXP_E_RENDEZVOUS;
}

/* get, waiting until @deadline (0: no limit, in slices of SLICE_MS) */
static int get_until(struct rxp__rdv *r, const char *key, void *buf, size_t cap,
		     size_t *len, int64_t deadline)
{
	for (;;) {
		int64_t ms = SLICE_MS;
		int ret;

		if (deadline) {
			ms = (deadline - rxp_now_ns()) / 1000000;
			if (ms < 1)
				ms = 1;
		}
		ret = r->store->get(r->store_ctx, key, buf, cap, len, ms);
		if (ret != -ETIMEDOUT || (deadline && rxp_now_ns() >= deadline))
			return ret;
	}
}

static size_t rec_encode(uint8_t *p, int rank, int world,
			 const char *const s[3])
{
	size_t off = REC_HDR;

	rxp_put_le32(p, REC_MAGIC);
	rxp_put_le16(p + 4, REC_VERSION);
	rxp_put_le16(p + 6, 0);
	rxp_put_le32(p + 8, (uint32_t)rank);
	rxp_put_le32(p + 12, (uint32_t)world);
	rxp_put_le16(p + 22, 0);
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(s[i]) + 1;

		rxp_put_le16(p + 16 + 2 * i, (uint16_t)n);
		memcpy(p + off, s[i], n);
		off += n;
	}
	return off;
}

/* 0 and @s[] pointing into @p if @p[0..len) is a good record of @rank in a
 * world of @world; else -1 with what is wrong in @why. */
static int rec_decode(const uint8_t *p, size_t len, int rank, int world,
		      const char *s[3], char *why, size_t wlen)
{
	size_t off = REC_HDR;

	if (len < REC_HDR || len > REC_MAX) {
		snprintf(why, wlen, "record of %zu bytes (valid: %d..%d)", len,
			 REC_HDR, REC_MAX);
		return -1;
	}
	if (rxp_get_le32(p) != REC_MAGIC) {
		snprintf(why, wlen, "bad magic 0x%08x (not an rxp record)",
			 rxp_get_le32(p));
		return -1;
	}
	if (rxp_get_le16(p + 4) != REC_VERSION) {
		snprintf(why, wlen, "record version %u (this rxp reads %d)",
			 rxp_get_le16(p + 4), REC_VERSION);
		return -1;
	}
	if (rxp_get_le32(p + 8) != (uint32_t)rank ||
	    rxp_get_le32(p + 12) != (uint32_t)world) {
		snprintf(why, wlen,
			 "record says rank %u of world %u (expected rank %d of "
			 "%d)",
			 rxp_get_le32(p + 8), rxp_get_le32(p + 12), rank,
			 world);
		return -1;
	}
	for (int i = 0; i < 3; i++) {
		size_t n = rxp_get_le16(p + 16 + 2 * i);

		if (n < 2 || n > str_cap[i] || n > len - off) {
			snprintf(why, wlen,
				 "%s length %zu (valid: 2..%zu, within the "
				 "%zu-byte record)",
				 str_what[i], n, str_cap[i], len);
			return -1;
		}
		if (p[off + n - 1] || memchr(p + off, 0, n - 1)) {
			snprintf(why, wlen,
				 "%s is not one NUL-terminated string of its "
				 "length",
				 str_what[i]);
			return -1;
		}
		s[i] = (const char *)p + off;
		off += n;
	}
	if (off != len) {
		snprintf(why, wlen, "%zu bytes after the record's strings",
			 len - off);
		return -1;
	}
	return 0;
}

/* Read and check rank @i's record into @peers[i]. */
static int get_peer(struct rxp__rdv *r, int i, int world, const char *tp_name,
		    const struct rxp__rdv_peer *self,
		    struct rxp__rdv_peer *peer, int64_t deadline)
{
	uint8_t buf[REC_MAX];
	const char *s[3];
	char key[32], why[160];
	size_t len = 0;
	int ret;

	snprintf(key, sizeof(key), "rxp/w/%d", i);
	ret = get_until(r, key, buf, sizeof(buf), &len, deadline);
	if (ret)
		return ret == -ETIMEDOUT ? ret : store_err("get", key, ret);
	if (rec_decode(buf, len, i, world, s, why, sizeof(why))) {
		rxp_err(LOG, "bad record from rank %d ('%s'): %s", i, key, why);
		return -RXP_E_RENDEZVOUS;
	}
	if (strcmp(s[2], tp_name)) {
		rxp_err(LOG,
			"worker '%s' (rank %d) chose transport %s but '%s' "
			"(rank %d) chose %s; set RXP_TRANSPORT the same on "
			"every worker",
			self->name, self->rank, tp_name, s[0], i, s[2]);
		return -RXP_E_RENDEZVOUS;
	}
	memcpy(peer->name, s[0], strlen(s[0]) + 1);
	memcpy(peer->addr, s[1], strlen(s[1]) + 1);
	peer->rank = i;
	return 0;
}

static void log_missing(const struct rxp__rdv_peer *peers, int world,
			int nmissing, int64_t timeout_ms)
{
	char list[MAX_LISTED * 8 + 32];
	size_t off = 0;
	int listed = 0;

	list[0] = 0;
	for (int i = 0; i < world && listed < MAX_LISTED; i++) {
		if (peers[i].rank >= 0)
			continue;
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%d",
					listed ? "," : "", i);
		listed++;
	}
	if (listed < nmissing)
		snprintf(list + off, sizeof(list) - off, ",... (%d in all)",
			 nmissing);
	rxp_err(LOG, "%s %s never published within %" PRId64 " ms",
		nmissing > 1 ? "ranks" : "rank", list, timeout_ms);
}

static int cmp_name(const void *x, const void *y)
{
	const struct rxp__rdv_peer *a = *(const struct rxp__rdv_peer *const *)x;
	const struct rxp__rdv_peer *b = *(const struct rxp__rdv_peer *const *)y;
	int c = strcmp(a->name, b->name);

	return c ? c : a->rank - b->rank;
}

/* Every worker checks the table itself: names must be unique. */
static int check_names(const struct rxp__rdv_peer *peers, int world)
{
	const struct rxp__rdv_peer **v = rxp__calloc((size_t)world, sizeof(*v));
	int ret = 0;

	if (!v)
		return -ENOMEM;
	for (int i = 0; i < world; i++)
		v[i] = &peers[i];
	qsort(v, (size_t)world, sizeof(*v), cmp_name);
	for (int i = 1; i < world && !ret; i++)
		if (!strcmp(v[i - 1]->name, v[i]->name)) {
			rxp_err(LOG,
				"workers of rank %d and %d share the name '%s'",
				v[i - 1]->rank, v[i]->rank, v[i]->name);
			ret = -RXP_E_DUP_NAME;
		}
	rxp__free(v);
	return ret;
}

int rxp__rdv_store_exchange(struct rxp__rdv *r, int rank, int world,
			    const char *name, const char *tp_addr,
			    const char *tp_name, struct rxp__rdv_peer *peers,
			    int64_t timeout_ms)
{
	const char *const mine[3] = {name, tp_addr, tp_name};
	int64_t deadline = rdv_deadline(timeout_ms);
	uint8_t rec[REC_MAX];
	int nmissing = 0, ret;
	char key[32];
	size_t len;

	if (world < 1 || world > RDV_MAX_WORLD || rank < 0 || rank >= world)
		return -EINVAL;
	for (int i = 0; i < 3; i++)
		if (strlen(mine[i]) >= str_cap[i])
			return -EINVAL;
	r->world = world;
	len = rec_encode(rec, rank, world, mine);
	snprintf(key, sizeof(key), "rxp/w/%d", rank);
	ret = r->store->set(r->store_ctx, key, rec, len);
	if (ret)
		return store_err("set", key, ret);
	memcpy(peers[rank].name, name, strlen(name) + 1);
	memcpy(peers[rank].addr, tp_addr, strlen(tp_addr) + 1);
	peers[rank].rank = rank;
	for (int i = 0; i < world; i++) {
		if (i == rank)
			continue;
		ret = get_peer(r, i, world, tp_name, &peers[rank], &peers[i],
			       deadline);
		if (ret == -ETIMEDOUT) {
			peers[i].rank = -1;
			nmissing++;
		} else if (ret) {
			return ret;
		}
	}
	if (nmissing) {
		log_missing(peers, world, nmissing, timeout_ms);
		return -ETIMEDOUT;
	}
	return check_names(peers, world);
}

int rxp__rdv_store_barrier(struct rxp__rdv *r, int64_t timeout_ms)
{
	int64_t deadline = rdv_deadline(timeout_ms), n;
	char key[48], done[64];
	uint8_t b;
	size_t len;
	int ret;

	snprintf(key, sizeof(key), "rxp/join/%" PRIu64, r->round);
	snprintf(done, sizeof(done), "%s/done", key);
	if (r->step == RDV_JOIN_ADD) {
		ret = r->store->add(r->store_ctx, key, 1, &n);
		if (ret)
			return store_err("add", key, ret);
		if (n < 1 || n > r->world) {
			rxp_err(LOG,
				"store add '%s' gave %" PRId64 " in a world of "
				"%d (two worlds on one store?)",
				key, n, r->world);
			return -RXP_E_RENDEZVOUS;
		}
		r->step = n == r->world ? RDV_JOIN_SET_DONE : RDV_JOIN_WAIT;
	}
	if (r->step == RDV_JOIN_SET_DONE) {
		ret = r->store->set(r->store_ctx, done, "1", 1);
		if (ret)
			return store_err("set", done, ret);
		r->step = RDV_JOIN_WAIT;
	}
	/* a timeout keeps the step: the next join resumes this round */
	ret = get_until(r, done, &b, sizeof(b), &len, deadline);
	if (ret)
		return ret == -ETIMEDOUT ? ret : store_err("get", done, ret);
	r->round++;
	r->step = RDV_JOIN_ADD;
	return 0;
}
