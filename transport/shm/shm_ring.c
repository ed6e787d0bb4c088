/* SPDX-License-Identifier: MIT */
/*
 * Ring views over a connection's shared memory. The counters are free
 * running 64-bit byte counts; a ring holds head - tail bytes. Each side
 * keeps its own counter locally and only stores it, so the peer writing
 * our line changes nothing we rely on; the peer's counter is loaded and
 * must lie within one ring of ours, else the connection fails.
 *
 * Sleep and wake (a Dekker pair, seq_cst on both sides): a consumer about
 * to sleep sets consumer_sleeping, then looks at head again; a producer
 * publishes head, then takes consumer_sleeping (1 -> 0) and rings the
 * doorbell if it took it. Either the consumer sees the bytes or the
 * producer sees the flag. Space for a waiting producer works the same way
 * with producer_waiting and tail. While both sides poll, nobody sleeps and
 * nothing is rung: a send costs no syscall.
 */
#include <errno.h>
#include <string.h>

#include "shm.h"

void shm_ring_view(struct shm_ring *r, void *map, uint64_t cap, int which)
{
	uint8_t *base = map;

	r->ctl = (struct shm_ring_ctl *)(base + (size_t)which * SHM_CTL_BYTES);
	r->data = base + 2 * (size_t)SHM_CTL_BYTES + (size_t)which * cap;
	r->cap = cap;
	r->mask = cap - 1;
	r->pos = 0;
}

int64_t shm_ring_space(const struct shm_ring *r)
{
	uint64_t t = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
	uint64_t used = r->pos - t;

	if (used > r->cap) /* also a tail ahead of our head */
		return -RXP_E_PROTO;
	return (int64_t)(r->cap - used);
}

int64_t shm_ring_avail(const struct shm_ring *r)
{
	uint64_t h = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
	uint64_t n = h - r->pos;

	if (n > r->cap)
		return -RXP_E_PROTO;
	return (int64_t)n;
}

void shm_ring_put(struct shm_ring *r, const void *src, size_t n)
{
	size_t at = (size_t)(r->pos & r->mask);
	size_t first = (size_t)r->cap - at;

	if (first > n)
		first = n;
	memcpy(r->data + at, src, first);
	memcpy(r->data, (const uint8_t *)src + first, n - first);
	r->pos += n;
}

void shm_ring_get(struct shm_ring *r, void *dst, size_t n)
{
	size_t at = (size_t)(r->pos & r->mask);
	size_t first = (size_t)r->cap - at;

	if (first > n)
		first = n;
	memcpy(dst, r->data + at, first);
	memcpy((uint8_t *)dst + first, r->data, n - first);
	r->pos += n;
}

/* Take a wake-up request: true if it was set (and is now clear). */
static bool take(_Atomic uint32_t *flag)
{
	uint32_t one = 1;

	if (!atomic_load_explicit(flag, memory_order_seq_cst))
		return false;
	return atomic_compare_exchange_strong(flag, &one, 0);
}

bool shm_ring_publish(struct shm_ring *r)
{
	atomic_store_explicit(&r->ctl->head, r->pos, memory_order_seq_cst);
	return take(&r->ctl->consumer_sleeping);
}

bool shm_ring_release(struct shm_ring *r)
{
	atomic_store_explicit(&r->ctl->tail, r->pos, memory_order_seq_cst);
	return take(&r->ctl->producer_waiting);
}

bool shm_ring_sleep_rx(struct shm_ring *r)
{
	atomic_store_explicit(&r->ctl->consumer_sleeping, 1,
			      memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	/* a bad head is work too: progress fails the connection */
	return shm_ring_avail(r) != 0;
}

bool shm_ring_sleep_tx(struct shm_ring *r)
{
	atomic_store_explicit(&r->ctl->producer_waiting, 1,
			      memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	return shm_ring_space(r) != 0;
}

void shm_ring_awake_rx(struct shm_ring *r)
{
	atomic_store_explicit(&r->ctl->consumer_sleeping, 0,
			      memory_order_relaxed);
}

void shm_ring_close_tx(struct shm_ring *r)
{
	atomic_store_explicit(&r->ctl->closed, 1, memory_order_seq_cst);
}

bool shm_ring_peer_closed(const struct shm_ring *r)
{
	return atomic_load_explicit(&r->ctl->closed, memory_order_seq_cst);
}
