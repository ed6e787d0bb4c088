/* SPDX-License-Identifier: MIT */
/*
 * The polling thread: takes submitted requests and responses, drives the
 * transport, turns its callbacks into future completions and worker-pool
 * tasks, expires deadlines, and sleeps on the transport's fd when idle.
 *
 * Threads (docs/DESIGN.md, "Threads"): everything here runs with the
 * agent's progress lock held, by the polling thread or by a submitter that
 * found the poller asleep and leads for a moment (kick); the transport's
 * callbacks below run on whichever thread that is. The submit functions
 * run on any thread and push onto lock-free stacks.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent_int.h"

/* The agent whose progress lock this thread holds (the "leader"). */
static __thread const struct rxp_agent *current_leader;

/* cookies given to tp->send: futures as is, calls tagged with bit 0 */
#define CALL_TAG 0x1u

static const char *peer_name(const struct rxp_agent *a, uint32_t id)
{
	return id < (uint32_t)a->world ? a->workers[id].name : "?";
}

/* ------------------------------------------------------------ submit */

static void wake(struct rxp_agent *a)
{
	uint64_t one = 1;

	if (write(a->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		rxp_warn("agent", "wake: %s", strerror(errno));
}

static int drain_submissions(struct rxp_agent *a, bool cancel)
	RXP_REQUIRES(rxp__progress);
static bool work_queued(struct rxp_agent *a);

/*
 * A thread that led progress while the polling thread sleeps hands back:
 * re-arm the transport's notification (the leader may have consumed it),
 * and wake the poller if work arrived meanwhile or if a deadline now comes
 * before the time it sleeps until.
 */
static void leave_lead(struct rxp_agent *a) RXP_REQUIRES(rxp__progress)
{
	struct rxp__dl d;

	current_leader = NULL;
	if (a->ops->arm(a->tp) != 0 || work_queued(a) ||
	    (rxp__heap_top(&a->deadlines, &d) && d.t < a->sleep_until_ns))
		wake(a);
}

/*
 * Someone pushed work while the polling thread sleeps. Instead of waking
 * it (a context switch on the critical path), send it ourselves if the
 * progress lock is free: drain the submit stacks and reap what the
 * transport completed, then let go. If another thread leads, wake the
 * sleepers so that the work is seen. Called inside the submit gate, so
 * the transport cannot be closed under us; a stopped agent is left to
 * its shutdown path.
 */
static void kick(struct rxp_agent *a)
{
	if (!atomic_load(&a->sleeping))
		return; /* the poller is awake and will see the push */
	if (current_leader == a || !rxp__progress_trylock(&a->progress_mu)) {
		wake(a);
		return;
	}
	if (!atomic_load(&a->stopped) && a->tp) {
		current_leader = a;
		drain_submissions(a, false);
		a->ops->progress(a->tp);
		leave_lead(a);
	}
	rxp__progress_unlock(&a->progress_mu);
}

/* Gate: new work is refused once stopped; shutdown waits for threads
 * that passed the gate to finish their push. */
static bool gate_enter(struct rxp_agent *a)
{
	atomic_fetch_add(&a->submitters, 1);
	if (atomic_load(&a->stopped)) {
		atomic_fetch_sub(&a->submitters, 1);
		return false;
	}
	return true;
}

int rxp__submit_future(struct rxp_agent *a, struct rxp_future *f)
{
	if (!gate_enter(a))
		return -RXP_E_SHUTDOWN;
	RXP__STACK_PUSH(&a->sub_futs, f, memory_order_seq_cst);
	kick(a);
	atomic_fetch_sub(&a->submitters, 1);
	return 0;
}

void rxp__submit_call(struct rxp_agent *a, struct rxp_call *c)
{
	if (!gate_enter(a)) {
		rxp__call_put(c); /* no one will send it */
		return;
	}
	RXP__STACK_PUSH(&a->sub_calls, c, memory_order_seq_cst);
	kick(a);
	atomic_fetch_sub(&a->submitters, 1);
}

/* ------------------------------------------------------ completions */

/* How a lost peer reads in @f's error ("owner lost" for an RRef fetch). */
static const char *peer_lost(const struct rxp_agent *a,
			     const struct rxp_future *f)
{
	const struct rxp__feature *ft =
		f->type < RXP_MSG_USER ? a->msg_feat[f->type] : NULL;
	const char *w = ft && ft->peer_lost ? ft->peer_lost(f->type) : NULL;

	return w ? w : "peer lost";
}

/* Outcome known (response, error, timeout) and the transport is done with
 * the request's memory: fulfil. */
static void maybe_complete(struct rxp_agent *a, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress)
{
	if (!f->send_done || !f->resp_done)
		return;
	atomic_fetch_sub(&a->client_active, 1);
	if (f->hooked) {
		const struct rxp__feature *ft;

		rxp__for_each_feature(ft) if (ft->on_done) ft->on_done(a, f);
	}
	if (f->dst < (uint32_t)a->world) {
		struct rxp__worker *w = &a->workers[f->dst];

		/* answered (a value or the callee's error): its round trip */
		if (f->resp_payload) {
			int64_t rtt = rxp_now_ns() - f->t_submit_ns;

			rxp__lat_record(&w->lat, rtt);
			if (rxp_unlikely(!w->said_answered)) {
				w->said_answered = true;
				rxp_dbg("agent",
					"first answer from worker '%s' (rank "
					"%u) after %lld us: %s",
					w->name, f->dst, (long long)rtt / 1000,
					rxp_strerror(f->status));
			}
		}
		if (f->status) {
			atomic_fetch_add(&w->errors, 1);
			rxp_dbg("agent", "call to worker '%s' failed: %s: %s",
				w->name, rxp_strerror(f->status),
				f->errmsg     ? f->errmsg
				: f->errconst ? f->errconst
					      : "-");
		}
	}
	if (f->status)
		atomic_fetch_add(&a->calls_failed, 1);
	rxp__future_fulfil(f, f->status);
}

static void backlog_unlink(struct rxp_agent *a, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress);

static void fail_future(struct rxp_agent *a, struct rxp_future *f, int status,
			const char *msg) RXP_REQUIRES(rxp__progress)
{
	if (f->resp_done)
		return;
	if (f->backlogged)
		backlog_unlink(a, f);
	if (f->id)
		rxp__slots_del(&a->pending, f->id);
	f->resp_done = true;
	f->status = status;
	rxp__future_set_error(f, msg);
	maybe_complete(a, f);
}

/* -EAGAIN from the transport means "queue full, progress and retry": such
 * requests wait, in order, on their worker's backlog (poller-owned), with
 * their pending slot and deadline already in place, and go out as the
 * transport drains. Anything submitted to that worker while its backlog is
 * not empty queues behind it; other workers' traffic does not (issue 12
 * item 5: one peer that stops reading must delay only its own calls). */
static void bl_activate(struct rxp_agent *a, struct rxp__worker *w)
	RXP_REQUIRES(rxp__progress)
{
	if (w->bl_active)
		return;
	w->bl_active = true;
	w->bl_next = a->bl_active;
	a->bl_active = w;
}

static void backlog_add(struct rxp_agent *a, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress)
{
	struct rxp__worker *w = &a->workers[f->dst];

	f->next = NULL;
	f->bl_prev = w->bl_tail;
	f->backlogged = true;
	w->bl_len++;
	if (w->bl_tail)
		w->bl_tail->next = f;
	else
		w->bl_head = f;
	w->bl_tail = f;
	bl_activate(a, w);
}

/* O(1): off its worker's backlog, from anywhere in it */
static void bl_remove(struct rxp__worker *w, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress)
{
	if (f->bl_prev)
		f->bl_prev->next = f->next;
	else
		w->bl_head = f->next;
	if (f->next)
		f->next->bl_prev = f->bl_prev;
	else
		w->bl_tail = f->bl_prev;
	f->next = f->bl_prev = NULL;
	f->backlogged = false;
	w->bl_len--;
}

/* a deadline takes a future off the middle of its backlog */
static void backlog_unlink(struct rxp_agent *a, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress)
{
	bl_remove(&a->workers[f->dst], f);
	f->send_done = true; /* never handed to the transport */
}

/* 0 sent, -EAGAIN not now, other -errno failed */
static int transmit(struct rxp_agent *a, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress)
{
	struct rxp__worker *w = &a->workers[f->dst];
	struct rxp_msg_out m = {.type = f->type,
				.id = f->id,
				.payload = &f->payload_iov,
				.npayload = 1,
				.storages = f->st,
				.nstorages = f->nst};
	uint64_t bytes = f->payload_iov.len;
	int ret;

	if (!w->conn)
		return -RXP_E_PEER_LOST; /* it failed while we waited */
	f->conn_key = w->conn_key;
	ret = a->ops->send(w->conn, &m, f);
	if (ret)
		return ret;
	atomic_fetch_add(&w->calls, 1);
	for (uint32_t i = 0; i < f->nst; i++)
		bytes += f->st[i].len;
	atomic_fetch_add(&w->bytes_sent, bytes);
	if (rxp_unlikely(!w->said_sent)) {
		w->said_sent = true;
		rxp_dbg("agent",
			"first request to worker '%s' (rank %u) handed to %s: "
			"type %u, %llu bytes",
			w->name, f->dst, a->tp->name, f->type,
			(unsigned long long)bytes);
	}
	return 0;
}

static void send_failed(struct rxp_agent *a, struct rxp_future *f, int ret)
	RXP_REQUIRES(rxp__progress)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "cannot send to worker '%s': %s",
		 peer_name(a, f->dst), rxp_strerror(ret));
	f->send_done = true;
	/* a connection that failed but is not yet reported refuses sends
	 * with its socket error: the peer is lost, as on_send says */
	switch (ret) {
	case -ECONNRESET:
	case -ECONNREFUSED:
	case -ECONNABORTED:
	case -EPIPE:
	case -ENOTCONN:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
		ret = -RXP_E_PEER_LOST;
		break;
	default: /* this send alone was refused: its own error */
		break;
	}
	fail_future(a, f, ret, msg);
}

/* Send what waits on @w's request backlog; stop at its first -EAGAIN. */
static int backlog_retry(struct rxp_agent *a, struct rxp__worker *w)
	RXP_REQUIRES(rxp__progress)
{
	int n = 0;

	while (w->bl_head) {
		struct rxp_future *f = w->bl_head;
		int ret = transmit(a, f);

		if (ret == -EAGAIN)
			break;
		bl_remove(w, f); /* it is the head: next becomes the head */
		if (ret)
			send_failed(a, f, ret);
		n++;
	}
	return n;
}

static void queue_full(struct rxp_agent *a, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress)
{
	char msg[256];

	snprintf(msg, sizeof(msg),
		 "cannot send to worker '%s': %u calls already wait for its "
		 "connection (RXP_MAX_QUEUED_CALLS)",
		 peer_name(a, f->dst), a->max_queued_calls);
	f->send_done = true;
	fail_future(a, f, -RXP_E_LIMIT, msg);
}

static void send_request(struct rxp_agent *a, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress)
{
	struct rxp__worker *w = &a->workers[f->dst];
	int ret;

	if (!w->conn) {
		rxp_dbg("agent", "connecting to worker '%s' (rank %u) at %s",
			w->name, f->dst, w->addr);
		ret = a->ops->connect(a->tp, w->addr, f->dst, &w->conn);
		if (ret) {
			rxp_dbg("agent", "cannot connect to worker '%s': %s",
				w->name, rxp_strerror(ret));
			goto err;
		}
		ret = rxp__slots_add(&a->conns, w->conn, &w->conn_key);
		if (ret) {
			a->ops->disconnect(w->conn); /* on_conn sees no key */
			goto err;
		}
		w->conn->agent_data = (void *)(uintptr_t)w->conn_key;
	}
	ret = rxp__slots_add(&a->pending, f, &f->id);
	if (ret)
		goto err;
	f->conn_key = w->conn_key;
	if (f->timeout_ns) {
		f->deadline_ns = f->t_submit_ns + f->timeout_ns;
		ret = rxp__heap_push(&a->deadlines, f->deadline_ns, f->id);
		if (ret)
			goto err_pending;
	}
	ret = w->bl_head ? -EAGAIN : transmit(a, f);
	if (ret == -EAGAIN && w->bl_len >= a->max_queued_calls) {
		/* the peer is not taking what its connection already holds;
		 * memory for more would be unbounded (docs/DESIGN.md
		 * "Budgets") */
		atomic_fetch_add(&a->calls_refused_queue, 1);
		queue_full(a, f); /* fail_future frees its pending slot */
		return;
	}
	if (ret == -EAGAIN) {
		backlog_add(a, f);
		return;
	}
	if (ret)
		goto err_pending;
	return;

err_pending:
	rxp__slots_del(&a->pending, f->id);
	f->id = 0;
err:
	send_failed(a, f, ret);
}

/* The response cannot be delivered (its connection is gone): count it and
 * let go of the call. */
static void drop_response(struct rxp_agent *a, struct rxp_call *c, int why)
	RXP_REQUIRES(rxp__progress)
{
	atomic_fetch_add(&a->responses_dropped, 1);
	rxp_dbg("agent", "response to '%s' dropped: %s",
		peer_name(a, c->caller), rxp_strerror(why));
	rxp__call_put(c);
}

/* 0 sent or dropped (connection gone), -EAGAIN not now */
static int transmit_response(struct rxp_agent *a, struct rxp_call *c)
	RXP_REQUIRES(rxp__progress)
{
	struct rxp_conn *conn = rxp__slots_get(&a->conns, c->conn_key);
	struct rxp_iov piov = {.base = c->resp, .len = c->resp_len};
	struct rxp_msg_out m = {.type = RXP__MSG_RESP,
				.flags = c->resp_flags,
				.id = c->id,
				.payload = &piov,
				.npayload = 1,
				.storages = c->rst_iov,
				.nstorages = c->nrst};
	int ret =
		conn ? a->ops->send(conn, &m, (void *)((uintptr_t)c | CALL_TAG))
		     : -ENOTCONN;

	if (ret == -EAGAIN)
		return ret;
	if (ret)
		drop_response(a, c, ret);
	return 0;
}

/*
 * Responses wait on their caller's backlog, like requests (see above).
 * transmit_response() gives the call away (to the transport, or frees it
 * when the connection is gone), so the link to the next one is read
 * first: a call's ->next must not be touched once it left our hands.
 */
static int response_retry(struct rxp_agent *a, struct rxp__worker *w)
	RXP_REQUIRES(rxp__progress)
{
	int n = 0;

	while (w->rbl_head) {
		struct rxp_call *c = w->rbl_head;
		struct rxp_call *next = c->next;

		if (transmit_response(a, c) == -EAGAIN)
			break;
		w->rbl_head = next;
		if (!next)
			w->rbl_tail = NULL;
		w->rbl_len--;
		n++;
	}
	return n;
}

/* Retry every worker with a backlog; a worker whose lists are empty
 * leaves the active list. */
static int backlogs_retry(struct rxp_agent *a) RXP_REQUIRES(rxp__progress)
{
	struct rxp__worker **pp = &a->bl_active;
	int n = 0;

	while (*pp) {
		struct rxp__worker *w = *pp;

		n += backlog_retry(a, w) + response_retry(a, w);
		if (w->bl_head || w->rbl_head) {
			pp = &w->bl_next;
			continue;
		}
		*pp = w->bl_next;
		w->bl_next = NULL;
		w->bl_active = false;
	}
	return n;
}

/* A connection from @peer closed: the responses still waiting for it can
 * never go out; free them now instead of when the backlog reaches them. */
static void response_purge_conn(struct rxp_agent *a, uint64_t conn_key,
				uint32_t peer) RXP_REQUIRES(rxp__progress)
{
	struct rxp__worker *w;
	struct rxp_call **pp, *prev = NULL;

	if (peer >= (uint32_t)a->world)
		return;
	w = &a->workers[peer];
	pp = &w->rbl_head;
	while (*pp) {
		struct rxp_call *c = *pp;

		if (c->conn_key != conn_key) {
			prev = c;
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		if (w->rbl_tail == c)
			w->rbl_tail = prev;
		w->rbl_len--;
		drop_response(a, c, -ENOTCONN);
	}
}

/*
 * The caller sends requests but does not read its responses: beyond
 * RXP_MAX_QUEUED_RESPONSES the connection they came on is closed (its
 * queued responses are freed by on_conn), rather than hold memory
 * without bound. Its calls fail on its side with -RXP_E_PEER_LOST; a
 * real caller never has that many responses unread.
 */
static void backlog_close(struct rxp_agent *a, struct rxp__worker *w,
			  struct rxp_call *c) RXP_REQUIRES(rxp__progress)
{
	struct rxp_conn *conn = rxp__slots_get(&a->conns, c->conn_key);

	drop_response(a, c, -RXP_E_LIMIT);
	if (!conn)
		return;
	atomic_fetch_add(&a->backlog_closes, 1);
	rxp_warn("agent",
		 "closing a connection from worker '%s': %u responses wait "
		 "for it to read (RXP_MAX_QUEUED_RESPONSES)",
		 w->name, w->rbl_len);
	a->ops->disconnect(conn); /* on_conn purges what it left queued */
}

static void send_response(struct rxp_agent *a, struct rxp_call *c)
	RXP_REQUIRES(rxp__progress)
{
	struct rxp__worker *w;

	if (c->caller >= (uint32_t)a->world) { /* on_conn refuses such ids */
		drop_response(a, c, -ENOTCONN);
		return;
	}
	w = &a->workers[c->caller];
	if (!w->rbl_head && !transmit_response(a, c))
		return;
	if (w->rbl_len >= a->max_queued_resps) {
		backlog_close(a, w, c);
		return;
	}
	w->rbl_len++;
	c->next = NULL;
	if (w->rbl_tail)
		w->rbl_tail->next = c;
	else
		w->rbl_head = c;
	w->rbl_tail = c;
	bl_activate(a, w);
}

/* Reverse a pushed stack into submission order. */
#define REVERSE(type, head)                                                    \
	do {                                                                   \
		type *prev_ = NULL;                                            \
		while (head) {                                                 \
			type *next_ = head->next;                              \
			head->next = prev_;                                    \
			prev_ = head;                                          \
			head = next_;                                          \
		}                                                              \
		head = prev_;                                                  \
	} while (0)

static int drain_submissions(struct rxp_agent *a, bool cancel)
	RXP_REQUIRES(rxp__progress)
{
	struct rxp_future *f = atomic_exchange(&a->sub_futs, NULL);
	struct rxp_call *c = atomic_exchange(&a->sub_calls, NULL);
	int n = 0;

	REVERSE(struct rxp_future, f);
	REVERSE(struct rxp_call, c);
	if (!cancel)
		n += backlogs_retry(a);
	while (f) {
		struct rxp_future *next = f->next;

		if (f->kind == RXP__FUT_CTRL) {
			int r = -ECANCELED;

			if (!cancel)
				r = f->ctrl_op == 1
					    ? a->ops->mem_register(a->tp,
								   f->ctrl_ptr,
								   f->ctrl_len)
					    : a->ops->mem_unregister(
						      a->tp, f->ctrl_ptr,
						      f->ctrl_len);
			rxp__future_fulfil(f, r);
		} else if (cancel) {
			f->send_done = true;
			fail_future(a, f, -ECANCELED, "agent shut down");
		} else {
			send_request(a, f);
		}
		f = next;
		n++;
	}
	while (c) {
		struct rxp_call *next = c->next;

		if (cancel)
			rxp__call_put(c);
		else
			send_response(a, c);
		c = next;
		n++;
	}
	return n;
}

/*
 * Deadlines that hold (issue 12 item 4; docs/DESIGN.md). A future fails at
 * its deadline, but it completes only once nothing reads the caller's
 * memory any more. A request still on its backlog is simply dropped. One
 * the transport holds is taken back if no byte of it has gone (ops->cancel,
 * counted in calls.timed_out_unsent), so it completes at the deadline too.
 * One the transport has started (or cannot take back) is "stuck": if the
 * transport has not let go RXP_SEND_GRACE_MS later, its connection is
 * closed, which fails the send and lets the future complete. The unsent
 * rest is never copied instead: an io_uring SENDMSG in flight, a SEND_ZC
 * awaiting its notification, or a peer's RDMA READ of a verbs rendezvous
 * storage may each read that memory at any moment, and only closing the
 * connection makes them stop.
 */
static void stuck_unlink(struct rxp_agent *a, struct rxp_future *f)
	RXP_REQUIRES(rxp__progress)
{
	if (f->stuck_prev)
		f->stuck_prev->stuck_next = f->stuck_next;
	else
		a->stuck_head = f->stuck_next;
	if (f->stuck_next)
		f->stuck_next->stuck_prev = f->stuck_prev;
	else
		a->stuck_tail = f->stuck_prev;
	f->stuck_prev = f->stuck_next = NULL;
	f->stuck = false;
}

/* @f timed out while the transport holds its request */
static void timed_out_in_transport(struct rxp_agent *a, struct rxp_future *f,
				   int64_t now) RXP_REQUIRES(rxp__progress)
{
	struct rxp_conn *conn = rxp__slots_get(&a->conns, f->conn_key);

	if (conn && a->ops->cancel(conn, f) == 0) {
		atomic_fetch_add(&a->sends_withdrawn, 1);
		f->send_done = true;
		maybe_complete(a, f);
		return;
	}
	/* grace times are in deadline order: append keeps the list sorted */
	f->grace_ns = now + a->send_grace_ns;
	f->stuck = true;
	f->stuck_next = NULL;
	f->stuck_prev = a->stuck_tail;
	if (a->stuck_tail)
		a->stuck_tail->stuck_next = f;
	else
		a->stuck_head = f;
	a->stuck_tail = f;
}

static int fail_conn_calls(struct rxp_agent *a, uint64_t key, int status,
			   uint32_t peer) RXP_REQUIRES(rxp__progress);

/* Close the connections of stuck sends whose grace is over. */
/*
 * The agent closes @conn itself (a stuck peer, a protocol error), not at
 * shutdown. An outgoing connection leaves its worker at once: the
 * transport may report it closed later (in-flight I/O), and a call made
 * in between must open a new connection, not land on the closing one
 * and fail "cancelled". Calls still on @conn fail when on_conn comes.
 */
void rxp__close_conn(struct rxp_agent *a, struct rxp_conn *conn)
{
	if (conn->outgoing && conn->peer_id < (uint32_t)a->world &&
	    a->workers[conn->peer_id].conn == conn) {
		a->workers[conn->peer_id].conn = NULL;
		a->workers[conn->peer_id].conn_key = 0;
	}
	a->ops->disconnect(conn);
}

static int check_stuck(struct rxp_agent *a, int64_t now)
	RXP_REQUIRES(rxp__progress)
{
	int n = 0;

	while (a->stuck_head && a->stuck_head->grace_ns <= now) {
		struct rxp_future *f = a->stuck_head;
		uint64_t key = f->conn_key;
		struct rxp_conn *conn = rxp__slots_get(&a->conns, key);

		stuck_unlink(a, f);
		n++;
		if (!conn)
			continue; /* closing already: its on_send will come */
		atomic_fetch_add(&a->stuck_closes, 1);
		rxp_warn(
			"agent",
			"worker '%s' has not taken a timed-out request %lld ms "
			"after its deadline: closing the connection (its other "
			"calls fail)",
			peer_name(a, f->dst),
			(long long)(a->send_grace_ns / 1000000));
		fail_conn_calls(a, key, -ETIMEDOUT, f->dst);
		rxp__close_conn(a, conn); /* on_send(f) comes, now or later */
	}
	return n;
}

static int check_deadlines(struct rxp_agent *a, int64_t now)
	RXP_REQUIRES(rxp__progress)
{
	struct rxp__dl d;
	char msg[256];
	int n = 0;

	while (rxp__heap_top(&a->deadlines, &d) && d.t <= now) {
		struct rxp_future *f;
		bool in_tp;

		rxp__heap_pop(&a->deadlines);
		f = rxp__slots_get(&a->pending, d.id);
		if (!f || f->deadline_ns != d.t)
			continue;
		snprintf(msg, sizeof(msg),
			 "call to worker '%s' timed out after %lld ms",
			 peer_name(a, f->dst),
			 (long long)(f->timeout_ns / 1000000));
		atomic_fetch_add(&a->calls_timed_out, 1);
		/* read first: once complete, f may be gone */
		in_tp = !f->send_done && !f->backlogged;
		fail_future(a, f, -ETIMEDOUT, msg);
		if (in_tp)
			timed_out_in_transport(a, f, now);
		n++;
	}
	return n + check_stuck(a, now);
}

/* ------------------------------------------------ transport callbacks */

static void on_send(void *ctx, void *cookie, int status)
{
	struct rxp_agent *a = ctx;

	rxp__progress_held(a); /* the transport calls back under it */

	if ((uintptr_t)cookie & CALL_TAG) {
		struct rxp_call *c = (struct rxp_call *)((uintptr_t)cookie &
							 ~(uintptr_t)CALL_TAG);

		rxp__call_put(c);
		return;
	}
	struct rxp_future *f = cookie;

	if (f->stuck)
		stuck_unlink(a, f);
	f->send_done = true;
	if (status && !f->resp_done) {
		char msg[256];
		int st = status;

		/* a send fails because its connection did: the peer is lost,
		 * whatever the socket or QP said (kept in the message) */
		if (st == -ECANCELED && atomic_load(&a->stopping))
			st = -ECANCELED;
		else if (st != -RXP_E_TOO_BIG && st != -EINVAL &&
			 st != -RXP_E_AUTH)
			st = -RXP_E_PEER_LOST;
		snprintf(msg, sizeof(msg), "%s: send to worker '%s' failed: %s",
			 st == -RXP_E_AUTH ? "refused" : peer_lost(a, f),
			 peer_name(a, f->dst), rxp_strerror(status));
		fail_future(a, f, st, msg);
		return;
	}
	maybe_complete(a, f);
}

/* Fail every call waiting on connection @key; returns how many. */
static int fail_conn_calls(struct rxp_agent *a, uint64_t key, int status,
			   uint32_t peer) RXP_REQUIRES(rxp__progress)
{
	char msg[256];
	int n = 0;

	for (uint32_t i = 0; i < a->pending.cap; i++) {
		struct rxp_future *f = a->pending.v[i].ptr;

		if (f && f->conn_key == key) {
			snprintf(msg, sizeof(msg),
				 "%s: connection to worker '%s' failed (%s)",
				 status == -ECANCELED ? "cancelled"
						      : peer_lost(a, f),
				 peer_name(a, peer), rxp_strerror(status));
			fail_future(a, f,
				    status == -ECANCELED ||
						    status == -RXP_E_AUTH
					    ? status
					    : -RXP_E_PEER_LOST,
				    msg);
			n++;
		}
	}
	return n;
}

static void on_conn(void *ctx, struct rxp_conn *c, int status)
{
	struct rxp_agent *a = ctx;
	uint64_t key = (uint64_t)(uintptr_t)c->agent_data;
	const struct rxp__feature *ft;
	int n;

	rxp__progress_held(a); /* the transport calls back under it */

	if (status == 0) {
		if (c->outgoing) {
			rxp_dbg("agent", "connection to worker '%s' is up",
				peer_name(a, c->peer_id));
			return;
		}
		if (c->peer_id >= (uint32_t)a->world) {
			rxp_warn("agent",
				 "connection from unknown worker id %u",
				 c->peer_id);
			a->ops->disconnect(c);
			return;
		}
		if (rxp__slots_add(&a->conns, c, &key)) {
			a->ops->disconnect(c);
			return;
		}
		c->agent_data = (void *)(uintptr_t)key;
		return;
	}
	if (!key || rxp__slots_del(&a->conns, key) != c)
		return;
	if (c->outgoing && c->peer_id < (uint32_t)a->world &&
	    a->workers[c->peer_id].conn == c) {
		a->workers[c->peer_id].conn = NULL;
		a->workers[c->peer_id].conn_key = 0;
	}
	if (atomic_load(&a->stopping))
		status = -ECANCELED;
	else if (status == -ECANCELED) /* rxp__close_conn: a peer misbehaved */
		status = -RXP_E_PEER_LOST;
	n = fail_conn_calls(a, key, status, c->peer_id);
	response_purge_conn(a, key, c->peer_id);
	rxp__for_each_feature(ft) if (ft->conn_closed)
		ft->conn_closed(a, c->peer_id, key);
	/* a peer that leaves with nothing pending is a normal shutdown */
	rxp_log(n ? RXP_LOG_WARN : RXP_LOG_DEBUG, "agent",
		"connection to worker '%s' closed: %s (%d calls failed)",
		peer_name(a, c->peer_id), rxp_strerror(status), n);
}

static int take_storages(struct rxp_buf ***arr, struct rxp_buf **inl,
			 uint32_t *n, const struct rxp_msg_in *m)
{
	struct rxp_buf **v = inl;

	if (m->nstorages > RXP__INLINE_STORAGES) {
		v = rxp__calloc(m->nstorages, sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < m->nstorages; i++)
		v[i] = rxp_buf_get(m->storages[i]);
	*arr = v;
	*n = m->nstorages;
	return 0;
}

static void on_response(struct rxp_agent *a, struct rxp_conn *c,
			const struct rxp_msg_in *m) RXP_REQUIRES(rxp__progress)
{
	struct rxp_future *f = rxp__slots_get(&a->pending, m->id);
	uint64_t lens_inline[RXP__INLINE_STORAGES] = {0}, *lens;
	int ret;

	if (f && f->conn_key != (uint64_t)(uintptr_t)c->agent_data) {
		/* pending, but not from where its request went: a stranger
		 * (or a confused peer) must not settle it */
		if (!atomic_fetch_add(&a->forged_responses, 1))
			rxp_warn("agent",
				 "ignored a response for a pending call to "
				 "'%s' that came on another connection (from "
				 "'%s'); further ones are only counted "
				 "(calls.forged_responses)",
				 peer_name(a, f->dst),
				 peer_name(a, c->peer_id));
		return;
	}
	if (!f || f->resp_done) {
		atomic_fetch_add(&a->late_responses, 1);
		return;
	}
	rxp__slots_del(&a->pending, m->id);
	f->resp_done = true;
	f->resp_payload = rxp_buf_get(m->payload);
	ret = take_storages(&f->rst, f->rst_inline, &f->nrst, m);
	if (ret) {
		f->status = ret;
		goto out;
	}
	if (!(m->flags & RXP__RESP_ERROR) && f->kind == RXP__FUT_MSG)
		goto out;
	lens = rxp__buf_lens(f->rst, f->nrst, lens_inline);
	if (!lens) {
		f->status = -ENOMEM;
		goto out;
	}
	{
		struct rxp_decoded_resp r;

		ret = rxp_codec_resp_decode(m->payload->data, m->payload->len,
					    f->nrst, lens, &f->arena, &r);
		if (ret) {
			f->status = ret;
			rxp__future_set_error(f, "malformed response");
		} else if (r.is_error) {
			int code = r.err_code;

			/* the callee's code is untrusted: keep known ones */
			if (code >= 0 || code <= -4096)
				code = -RXP_E_REMOTE;
			f->status = code;
			rxp__future_set_error(f, r.err_msg);
		} else {
			f->value = r.value;
		}
		if (r.ext.has_prof)
			f->resp_ext = r.ext;
	}
	if (lens != lens_inline)
		rxp__free(lens);
out:
	maybe_complete(a, f);
}

static void on_request(struct rxp_agent *a, struct rxp_conn *c,
		       const struct rxp_msg_in *m) RXP_REQUIRES(rxp__progress)
{
	struct rxp_call *call = rxp__call_new(a);

	if (!call) {
		rxp_warn("agent", "dropping a request from '%s': out of memory",
			 peer_name(a, c->peer_id));
		return;
	}
	call->conn_key = (uint64_t)(uintptr_t)c->agent_data;
	call->id = m->id;
	call->caller = c->peer_id;
	call->type = m->type;
	call->t_recv_ns = rxp_now_ns();
	call->payload = rxp_buf_get(m->payload);
	atomic_fetch_add(&a->server_active, 1);
	if (take_storages(&call->st, call->st_inline, &call->nst, m)) {
		rxp__call_fail_code(call, -ENOMEM, "callee out of memory");
		rxp__call_put(call); /* the dispatch reference */
		return;
	}
	if (m->type < RXP_MSG_USER && a->msg_feat[m->type]) {
		/* a feature's protocol: handled here, in arrival order */
		a->msg_feat[m->type]->on_msg(a, call);
		rxp__call_put(call);
		return;
	}
	if (rxp__call_queue(a, call))
		rxp__call_put(call);
}

static void on_recv(void *ctx, struct rxp_conn *c, const struct rxp_msg_in *m)
{
	struct rxp_agent *a = ctx;
	uint64_t bytes = m->payload->len;

	rxp__progress_held(a); /* the transport calls back under it */
	for (uint32_t i = 0; i < m->nstorages; i++)
		bytes += m->storages[i]->len;
	if (c->peer_id < (uint32_t)a->world)
		atomic_fetch_add(&a->workers[c->peer_id].bytes_recv, bytes);

	if (m->type == RXP__MSG_RESP) {
		on_response(a, c, m);
	} else if (m->type == RXP__MSG_CALL || m->type >= RXP_MSG_USER ||
		   a->msg_feat[m->type]) {
		on_request(a, c, m);
	} else {
		atomic_fetch_add(&a->proto_errors, 1);
		rxp_warn("agent", "unknown message type %u from '%s': closing",
			 m->type, peer_name(a, c->peer_id));
		rxp__close_conn(a, c);
	}
}

/* ------------------------------------------------------------ poller */

static int next_timeout_ms(struct rxp_agent *a, int64_t now)
	RXP_REQUIRES(rxp__progress)
{
	struct rxp__dl d;
	int64_t t, ms;

	if (!rxp__heap_top(&a->deadlines, &d))
		d.t = INT64_MAX;
	t = d.t;
	if (a->stuck_head && a->stuck_head->grace_ns < t)
		t = a->stuck_head->grace_ns;
	if (a->metrics_next_ns < t) /* RXP_METRICS_FILE */
		t = a->metrics_next_ns;
	if (t == INT64_MAX)
		return -1;
	ms = (t - now + 999999) / 1000000;
	if (ms < 0)
		ms = 0;
	return ms > 60000 ? 60000 : (int)ms;
}

static bool work_queued(struct rxp_agent *a)
{
	return atomic_load(&a->sub_futs) || atomic_load(&a->sub_calls) ||
	       atomic_load(&a->stopping);
}

/* backlogs wait for the transport: its completions wake the poller */

/*
 * The polling thread goes to sleep: it lets go of the progress lock, so
 * that submitters send directly (kick), and sleeps on the fds; then it
 * takes the lock back (waiting for such a submitter to finish).
 */
static void poller_sleep(struct rxp_agent *a, int64_t now)
	RXP_REQUIRES(rxp__progress)
{
	bool woken = false;
	int tmo;

	atomic_store(&a->sleeping, true);
	if (work_queued(a) || a->ops->arm(a->tp) != 0) {
		atomic_store(&a->sleeping, false);
		return;
	}
	tmo = next_timeout_ms(a, now);
	/* a backlog waits for the transport's completions; should those
	 * not wake us, look again soon anyway */
	if (a->bl_active && (tmo < 0 || tmo > 1))
		tmo = 1;
	a->sleep_until_ns = tmo < 0 ? INT64_MAX : now + (int64_t)tmo * 1000000;
	current_leader = NULL;
	rxp__progress_unlock(&a->progress_mu);
	{
		struct pollfd p[2] = {
			{.fd = a->ops->wait_fd(a->tp), .events = POLLIN},
			{.fd = a->wake_fd, .events = POLLIN},
		};

		/* armed above; a thread that leads meanwhile re-arms when it
		 * hands back (leave_lead) */
		woken = poll(p, 2, tmo) > 0 && (p[1].revents & POLLIN);
	}
	rxp__progress_lock(&a->progress_mu);
	current_leader = a;
	atomic_store(&a->sleeping, false);
	if (woken) {
		uint64_t v;

		if (read(a->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			rxp_warn("agent", "wake fd: %s", strerror(errno));
	}
}

static void poller_shutdown(struct rxp_agent *a) RXP_REQUIRES(rxp__progress)
{
	for (int i = 0; i < a->world; i++) {
		struct rxp__worker *w = &a->workers[i];

		while (w->rbl_head) {
			struct rxp_call *c = w->rbl_head;

			w->rbl_head = c->next;
			rxp__call_put(c);
		}
		w->rbl_tail = NULL;
		w->rbl_len = 0;
	}
	drain_submissions(a, true);
	a->ops->close(a->tp); /* pending sends and conns fail -ECANCELED */
	a->tp = NULL;
	for (uint32_t i = 0; i < a->pending.cap; i++) {
		struct rxp_future *f = a->pending.v[i].ptr;

		if (f) {
			f->send_done = true;
			fail_future(a, f, -ECANCELED, "agent shut down");
		}
	}
	/* stragglers that passed the gate before it closed */
	while (atomic_load(&a->submitters))
		sched_yield();
	drain_submissions(a, true);
}

void *rxp__poller_main(void *arg)
{
	struct rxp_agent *a = arg;
	int64_t spin_ns = (int64_t)a->poll_us * 1000;
	int64_t idle_since = rxp_now_ns();

	rxp__log_thread_id(&a->log_id);
	rxp__progress_lock(&a->progress_mu);
	current_leader = a;
	a->metrics_next_ns = rxp__mexport_first_due(a, idle_since);
	while (!atomic_load(&a->stopping)) {
		int64_t now;
		int n = drain_submissions(a, false);
		int r = a->ops->progress(a->tp);

		if (r < 0) {
			rxp_err("agent", "transport failed: %s",
				rxp_strerror(r));
			break;
		}
		now = rxp_now_ns();
		n += r + check_deadlines(a, now);
		if (rxp_unlikely(now >= a->metrics_next_ns))
			a->metrics_next_ns = rxp__mexport_due(a, now);
		if (n) {
			idle_since = now;
			continue;
		}
		if (now - idle_since < spin_ns)
			continue;
		poller_sleep(a, now);
		idle_since = rxp_now_ns();
	}
	atomic_store(&a->stopped, true);
	poller_shutdown(a);
	current_leader = NULL;
	rxp__progress_unlock(&a->progress_mu);
	return NULL;
}

bool rxp__on_poller(const struct rxp_agent *a)
{
	return current_leader == a;
}

void rxp__lead_begin(struct rxp_agent *a)
{
	current_leader = a;
}

void rxp__lead_end(struct rxp_agent *a)
{
	(void)a;
	current_leader = NULL;
}

void rxp__progress_held(const struct rxp_agent *a)
{
	assert(current_leader == a);
	(void)a;
	rxp__progress_assert_held();
}

void rxp__poller_callbacks(struct rxp_agent *a)
{
	a->cb = (struct rxp_tp_cb){.ctx = a,
				   .on_conn = on_conn,
				   .on_recv = on_recv,
				   .on_send = on_send};
}
