/* SPDX-License-Identifier: MIT */
/*
 * Inside rendezvous/: the one rendezvous handle both kinds share. The
 * built-in one (rendezvous.c) talks to rank 0 over @fd; the store one
 * (rdv_store.c) goes through a framework's key-value store.
 */
#ifndef RXP_RDV_INT_H
#define RXP_RDV_INT_H

#include <stdint.h>

#include <rxp/rxp.h>
#include "rendezvous.h"
#include "rxp_auth.h"
#include "rxp_util.h"

#define RDV_NAME_LEN 128
#define RDV_ADDR_LEN 128
#define RDV_TPNAME_LEN 32
#define RDV_MAX_WORLD 65536

/* join barrier rounds through a store: where a round stopped */
enum rdv_join_step { RDV_JOIN_ADD, RDV_JOIN_SET_DONE, RDV_JOIN_WAIT };

struct rxp__rdv {
	int fd;			 /* the connection to rank 0; -1 with a store */
	struct rxp_auth_key key; /* off: no job secret (and with a store) */
	char where[80];		 /* "host:port" of rank 0, for messages */
	const struct rxp_store_ops *store; /* &store_ops, or NULL */
	struct rxp_store_ops store_ops;	   /* the framework's, copied */
	void *store_ctx;
	int world;
	uint64_t round; /* the store join barrier's current round */
	enum rdv_join_step step;
};

/* CLOCK_MONOTONIC ns @timeout_ms from now; 0 (no deadline) if <= 0 */
static inline int64_t rdv_deadline(int64_t timeout_ms)
{
	return timeout_ms > 0 ? rxp_now_ns() + timeout_ms * 1000000 : 0;
}

int rxp__rdv_store_exchange(struct rxp__rdv *r, int rank, int world,
			    const char *name, const char *tp_addr,
			    const char *tp_name, struct rxp__rdv_peer *peers,
			    int64_t timeout_ms);
int rxp__rdv_store_barrier(struct rxp__rdv *r, int64_t timeout_ms);

#endif
