/* SPDX-License-Identifier: MIT */
/*
 * Rendezvous (rendezvous.c): how the workers of one world find each other
 * before the transport is used. Rank 0 serves it; every worker connects,
 * says who it is and where its transport listens, and gets the whole table
 * back. Or, when the framework supplies a key-value store, every worker
 * publishes and reads the table through it (rdv_store.c). Below the agent:
 * sees util/ and auth/ (the job secret). Not installed.
 */
#ifndef RXP_RENDEZVOUS_H
#define RXP_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* One worker as rendezvous reports it. */
struct rxp__rdv_peer {
	char name[128];
	char addr[128]; /* transport address */
	int rank;
};

struct rxp_store_ops;
struct rxp_auth_key;
struct rxp__rdv; /* rendezvous client + (rank 0) server */
/* Connect to rank 0 (resolve and connect retried with back-off until
 * @timeout_ms: rank 0 may come up later). @key (copied; NULL or off: no
 * secret) must match rank 0's. */
int rxp__rdv_connect(const char *host, int port, int64_t timeout_ms,
		     const struct rxp_auth_key *key, struct rxp__rdv **out,
		     char *local_ip, size_t iplen);
/* Fills @peers[0..world) (indexed by rank). */
int rxp__rdv_exchange(struct rxp__rdv *r, int rank, int world, const char *name,
		      const char *tp_addr, const char *tp_name,
		      struct rxp__rdv_peer *peers, int64_t timeout_ms);
int rxp__rdv_barrier(struct rxp__rdv *r, int64_t timeout_ms);
void rxp__rdv_close(struct rxp__rdv *r);
/* Rendezvous through a framework's key-value store (rdv_store.c): the
 * same exchange and barrier as above, with no socket. -EINVAL if an op is
 * missing. */
int rxp__rdv_store_open(const struct rxp_store_ops *ops, void *ctx,
			struct rxp__rdv **out);
/* rank 0: serve rendezvous for @world workers on host:port; with @key on,
 * only workers that prove the job secret get a rank (and the table). */
struct rxp__rdv_server;
int rxp__rdv_serve(const char *host, int port, int world,
		   const struct rxp_auth_key *key,
		   struct rxp__rdv_server **out);
/* The TCP port the server listens on (@port 0 above: the kernel's pick). */
int rxp__rdv_server_port(const struct rxp__rdv_server *s);
/* Stop serving; logs the ranks that never joined if the world did not
 * form. */
void rxp__rdv_server_stop(struct rxp__rdv_server *s);

#endif
