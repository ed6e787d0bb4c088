/* SPDX-License-Identifier: MIT */
/*
 * A fake RDMA fabric behind struct verbs_sys, for device-less tests of the
 * verbs transport: one device "fk0" (10.0.0.1, RoCEv2 gid 1) shared by
 * every transport in the process; rdma_cm connects ids by port; SENDs land
 * in the peer's SRQ, READs copy from the peer's registered memory (rkey,
 * range and access checked), completions follow the real rules (in order,
 * unsignaled WRs report only on error or flush, every WR flushes once the
 * QP is in error). Work requests execute when any CQ is polled, so the
 * sender's progress() moves data into the receiver's SRQ.
 *
 * Knobs inject errors: the n-th call of a function fails with an errno,
 * a QP's next WR completes with a status, a listener answers with chosen
 * private data, connections are never answered (timeouts), ...
 */
#ifndef RXP_TEST_VERBS_FAKE_H
#define RXP_TEST_VERBS_FAKE_H

#include "verbs/verbs.h"

enum fk_fn {
	FK_REG_MR,
	FK_POST_SEND,
	FK_POST_SRQ_RECV,
	FK_CREATE_QP,
	FK_CREATE_CQ,
	FK_CREATE_SRQ,
	FK_ALLOC_PD,
	FK_RESOLVE_ADDR,
	FK_RESOLVE_ROUTE,
	FK_CONNECT,
	FK_ACCEPT,
	FK_BIND,
	FK_POLL_CQ,
	FK__COUNT
};

struct fk_dev_cfg {
	char name[16];
	enum ibv_port_state state;
	int max_srq; /* 0 = no SRQ support */
	int link_layer;
	uint16_t lid;
	/* gids: idx 0 fe80::1 (RoCEv2), idx 1 ::ffff:ip (RoCEv2),
	 * idx 2 ::ffff:ip (RoCEv1) */
	uint8_t ip[4];
	bool v1_only;
};

struct fk_knobs {
	/* fail[f].after: calls to let through before failing (-1 = never);
	 * .err: the errno; .sticky: keep failing */
	struct {
		int after;
		int err;
		bool sticky;
	} fail[FK__COUNT];
	int calls[FK__COUNT];
	int ndev; /* devices listed (0 = none) */
	struct fk_dev_cfg dev[2];
	bool no_answer;	 /* connect requests vanish (timeouts) */
	int addr_error;	 /* resolve_addr -> ADDR_ERROR(status) */
	int route_error; /* resolve_route -> ROUTE_ERROR(status) */
	int unreachable; /* connect -> UNREACHABLE(status) */
	/* a listener on this port answers with these bytes instead */
	int raw_port;
	uint8_t raw_pd[196];
	uint8_t raw_pd_len;
	bool raw_reject; /* ... as a reject */
	uint32_t max_inline;
	/* what the last rdma_accept() sent */
	uint8_t last_accept[196];
	uint8_t last_accept_len;
	/* what the last rdma_reject() sent */
	uint8_t last_reject[148];
	uint8_t last_reject_len;
	int rejects;
	/* > 0: every executed READ is presented again to its responder this
	 * many ms later, as a retransmitted request that crossed the
	 * completion would be; a responder that no longer has the MR goes
	 * to the error state with no completion of its own, as rxe does */
	int replay_reads_ms;
	uint64_t replays_ok, replays_failed;
	/* counters */
	uint64_t sends_executed, reads_executed, rnr;
	uint64_t reg_mr_calls, dereg_mr_calls;
	int live_mrs, live_qps, live_ids, live_cqs;
};

extern struct fk_knobs fk;
extern struct verbs_sys fk_sys; /* filled by fk_reset() */

/* Reset the knobs and counters (and free nothing: call when idle). */
void fk_reset(void);
/* Make the n-th next call of @f fail with @err (n = 0: the next one). */
void fk_fail(enum fk_fn f, int n, int err, bool sticky);
/* The next WR executed on the QP numbered @qpn completes with @st (and
 * moves the QP to the error state). */
void fk_wc_error(uint32_t qpn, enum ibv_wc_status st);
/* Execute every queued work request now. */
void fk_run(void);
/*
 * Deliver @len bytes as if the peer of QP @qpn had sent them: they land
 * in the next SRQ buffer of @qpn's transport with a receive completion.
 * Returns 0, or -1 if the SRQ is empty.
 */
int fk_inject_recv(uint32_t qpn, const void *buf, size_t len);
/* Queue a CONNECT_REQUEST with private data @pd on the listener on @port;
 * returns the new passive cm_id (or NULL). */
struct rdma_cm_id *fk_inject_connect(int port, const void *pd, size_t len);
/* Queue an event of @type with @status on @id's channel. */
void fk_inject_event(struct rdma_cm_id *id, enum rdma_cm_event_type type,
		     int status);
/* The QP number of the peer of @qpn (0 if none). */
uint32_t fk_peer_qpn(uint32_t qpn);
/* Receive buffers posted and not yet consumed on the SRQ of @qpn. */
int fk_srq_depth(uint32_t qpn);
/* Register memory in the PD of @qpn's transport, as the peer would have. */
struct ibv_mr *fk_peer_mr(uint32_t qpn, void *addr, size_t len, int access);

#endif

/* ------------------------------------- the fixture on the fake fabric */

#include "tp_fx.h"

/* Open on the fake fabric (10.0.0.1, ephemeral port). */
int fx_open(struct fx_side *s, uint32_t id);
/* ... with a job secret (@key may be NULL), in a world of FX_WORLD */
#define FX_WORLD 4u
int fx_open_key(struct fx_side *s, uint32_t id, const struct rxp_auth_key *key);
