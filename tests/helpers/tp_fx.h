/* SPDX-License-Identifier: MIT */
/*
 * A two-transport fixture without threads: each side records what its
 * callbacks saw, and FX_PUMP drives both sides' progress() until a
 * condition holds. Used over the fake verbs fabric (test_verbs_fx.c:
 * fx_open) and over a real device in the rxe guest (test_verbs_live.c:
 * fx_open_at). Messages carry pattern.h's bytes.
 */
#ifndef RXP_TEST_TP_FX_H
#define RXP_TEST_TP_FX_H

#include <stdbool.h>
#include <stdint.h>

#include "pattern.h"
#include "rxp_transport.h"

#define FX_MAXM 4096

struct fx_ck {
	int calls;
	int status;
};

struct fx_msg {
	uint64_t id;
	uint8_t type;
	size_t plen;
	uint32_t nst;
	bool ok; /* payload and storages match pattern_fill(id, k) */
	struct rxp_conn *conn;
};

struct fx_side {
	struct rxp_tp *tp;
	struct rxp_tp_cb cb;
	char addr[64];
	uint32_t id;
	struct rxp_conn *conn; /* last one up */
	int up, down, down_status;
	int nmsgs; /* counts past FX_MAXM; msgs[] holds the first FX_MAXM */
	struct fx_msg *msgs;
	struct rxp_buf *kept[FX_MAXM];
	int nkept;
	bool keep;	   /* hold the payload buffer of every message */
	bool keep_storage; /* hold the first storage of every message */
	bool echo;	   /* send each payload back (no storages), record
			      nothing but the count */
	bool disconnect_in_recv;
	int sends;	/* on_send calls with a cookie */
	uint64_t bytes; /* payload and storage bytes received */
};

/* Open @s on @ops at @addr as worker @id of @world, with a job secret
 * (@key may be NULL). 0 or the open()/address() error. */
int fx_open_at(struct fx_side *s, const struct rxp_tp_ops *ops, uint32_t id,
	       const char *addr, const struct rxp_auth_key *key,
	       uint32_t world);
void fx_close(struct fx_side *s);
void fx_release_kept(struct fx_side *s);
/* progress() once; aborts if it fails */
void fx_step(struct fx_side *s);
/* Progress both until @cond or @ms of wall time. */
#define FX_PUMP(a, b, ms, cond)                                                \
	({                                                                     \
		int64_t end_ = rxp_now_ns() + (int64_t)(ms)*1000000;           \
		do {                                                           \
			fx_step(a);                                            \
			fx_step(b);                                            \
		} while (!(cond) && rxp_now_ns() < end_);                      \
		(cond);                                                        \
	})
/* Connect a -> b and pump until both are up, for up to @ms (NULL on
 * failure). */
struct rxp_conn *fx_connect_ms(struct fx_side *a, struct fx_side *b, int ms);
static inline struct rxp_conn *fx_connect(struct fx_side *a, struct fx_side *b)
{
	return fx_connect_ms(a, b, 2000);
}
/* Send message @id (type @type) with a payload of @plen and storages of
 * @slen[i] bytes (n <= 16) filled with pattern_fill; the memory goes to
 * @mem[0..n] (fx_free). */
int fx_send_type(struct rxp_conn *c, uint8_t type, uint64_t id, size_t plen,
		 const size_t *slen, uint32_t n, void **mem, struct fx_ck *ck);
static inline int fx_send(struct rxp_conn *c, uint64_t id, size_t plen,
			  const size_t *slen, uint32_t n, void **mem,
			  struct fx_ck *ck)
{
	return fx_send_type(c, 3, id, plen, slen, n, mem, ck);
}
void fx_free(void **mem, uint32_t n);

#endif
