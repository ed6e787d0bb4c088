/* SPDX-License-Identifier: MIT */
/*
 * Test harness for the transport conformance suite: two transport
 * instances in one process, driven by calling progress() on both until a
 * condition holds or a deadline passes (no threads). Callbacks record
 * events with a global sequence number so tests can check their order.
 */
#ifndef RXP_TP_HARNESS_H
#define RXP_TP_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "pattern.h"
#include "rxp_transport.h"

#define H_MAX_MSGS 4096
#define H_MAX_CONNS 16
#define H_MAX_KEEP 8

struct h_send {	   /* one send's cookie */
	int calls; /* on_send calls: must end at exactly 1 */
	int status;
	uint64_t seq;
};

struct h_msg { /* one received message */
	uint8_t type, flags;
	uint64_t id;
	size_t payload_len;
	uint32_t nstorages;
	bool ok; /* payload and storages matched the pattern */
	struct rxp_conn *conn;
	struct rxp_buf *keep[H_MAX_KEEP]; /* refs taken when side->keep */
	uint32_t nkeep;
};

struct h_conn_ev {
	struct rxp_conn *c;
	int status;
	uint32_t peer_id;
	bool outgoing;
	uint64_t seq;
};

struct h_side {
	const char *name;
	struct rxp_tp *tp;
	uint32_t id;
	char addr[128];
	struct rxp_tp_cb cb;
	bool keep;   /* take a reference on received buffers */
	bool verify; /* check payload/storage patterns */
	struct h_conn_ev up[H_MAX_CONNS], down[H_MAX_CONNS];
	int nup, ndown;
	/* called at the end of on_recv (may send / disconnect) */
	void (*recv_hook)(struct h_side *s, struct rxp_conn *c,
			  const struct rxp_msg_in *m);
	void *hook_arg;
	struct h_msg *msgs; /* H_MAX_MSGS */
	int nmsgs;
	int nsend_cb;
};

/* The backend under test, from RXP_TEST_TRANSPORT (tcp|tcp-poll|verbs|shm). */
const struct rxp_tp_ops *h_ops(unsigned *flags, const char **want_name);
const char *h_bind_addr(void);

/* Open @s on the backend under test. 0, or the open() error; exits 77
 * when the backend is unavailable on this host. */
int h_open(struct h_side *s, const char *name, uint32_t id,
	   const struct rxp_tp_attr *tmpl);
/* Same with an explicit backend; @want NULL: accept whatever it picks. */
int h_open_ops(struct h_side *s, const char *name, uint32_t id,
	       const struct rxp_tp_attr *tmpl, const struct rxp_tp_ops *ops,
	       unsigned flags, const char *want);
void h_close(struct h_side *s);

/* Progress both (either may be NULL) until @cond(arg) or @ms elapse. */
bool h_pump(struct h_side *a, struct h_side *b, bool (*cond)(void *), void *arg,
	    int ms);
/* Progress both for @ms. */
void h_spin(struct h_side *a, struct h_side *b, int ms);

/* Connect a -> b and pump until both ends are up. */
struct rxp_conn *h_connect(struct h_side *a, struct h_side *b,
			   struct rxp_conn **accepted);

/* Content of message @id, piece @k (0 = payload): pattern_fill/check */

uint64_t h_seq(void);
int64_t h_now_ms(void);
/* A port on @addr where nobody listens (bound then closed). */
int h_dead_port(const char *addr);
/* An address of the backend under test where nobody listens: 0 or -1. */
int h_dead_addr(char *buf, size_t len);
/* Is the backend under test shm (addresses are not ip:port)? */
bool h_is_shm(void);

#endif
