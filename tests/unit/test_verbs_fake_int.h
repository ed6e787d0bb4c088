/* SPDX-License-Identifier: MIT */
/* Internals shared by test_verbs_fake.c (devices, memory, queues, work
 * requests) and test_verbs_fake_cm.c (rdma_cm): not for tests. */
#ifndef RXP_TEST_VERBS_FAKE_INT_H
#define RXP_TEST_VERBS_FAKE_INT_H

#include "test_verbs_fake.h"

struct fk_dev {
	struct ibv_device dev;
	struct ibv_context ctx;
};
extern struct fk_dev fk_devs[2];

struct fk_mr {
	struct ibv_mr mr;
	int access;
	struct fk_mr *next;
};

struct fk_cc {
	struct ibv_comp_channel ch;
};

struct fk_cqe {
	struct ibv_wc wc;
	uint32_t sq_qpn; /* a send-queue completion of this QP */
	uint64_t seq;
};

struct fk_cq {
	struct ibv_cq cq;
	struct fk_cqe *q;
	int cap, head, n;
	bool armed;
};

struct fk_rwqe {
	uint64_t wr_id, addr;
	uint32_t len, lkey;
};

struct fk_srq {
	struct ibv_srq srq;
	struct fk_rwqe *q;
	int cap, head, n;
};

struct fk_wr {
	uint64_t wr_id, seq, laddr, raddr;
	int opcode, flags;
	uint32_t len, lkey, rkey;
	bool has_sge;
	uint8_t *inl;
};

struct fk_id;

struct fk_qp {
	struct ibv_qp qp;
	struct fk_qp *peer, *next;
	struct fk_cq *cq;
	struct fk_srq *srq;
	struct fk_wr *sq;
	uint32_t max_wr;
	int sq_head, sq_n;
	uint64_t posted, retired;
	bool err;
	int inject;
};

struct fk_ev {
	struct rdma_cm_event ev;
	uint8_t pd[256];
	struct fk_ev *next;
};

struct fk_ec {
	struct rdma_event_channel ch;
	struct fk_ev *head, *tail;
};

struct fk_id {
	struct rdma_cm_id id;
	struct fk_id *peer, *next;
	int port, dst_port;
	bool listening, raw;
};

extern struct fk_mr *fk_mrs;
extern struct fk_qp *fk_qps;
extern struct fk_id *fk_ids;

bool fk__fail_now(enum fk_fn f);
struct fk_qp *fk__qp_find(uint32_t qpn);
void fk__cq_push(struct fk_cq *cq, const struct ibv_wc *wc, uint32_t sqpn,
		 uint64_t seq);
bool fk__srq_pop(struct fk_srq *s, struct fk_rwqe *out);
struct ibv_mr *fk__reg_mr(struct ibv_pd *pd, void *addr, size_t len,
			  int access);
/* fill the verbs / rdma_cm entries of the table */
void fk__fill_verbs(struct verbs_sys *s);
void fk__fill_cm(struct verbs_sys *s);

#endif
