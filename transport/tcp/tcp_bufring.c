/* SPDX-License-Identifier: MIT */
/*
 * Provided-buffer rings for the io_uring backend, one per connection (its
 * own buffer group id). Per connection so that a multishot recv can pull
 * at most n x sz bytes ahead of the parser: when a large body follows a
 * header, at most that much is copied before the direct receive into the
 * final buffer takes over. liburing 2.3 has no io_uring_setup_buf_ring(),
 * so this does its work (mmap the ring, register it, fill it).
 */
#include <errno.h>
#include <liburing.h>
#include <sys/mman.h>

#include "tcp.h"

struct tcp_bufring {
	struct io_uring_buf_ring *br;
	size_t br_size;
	uint8_t *bufs;
	unsigned n; /* power of 2 */
	size_t sz;
	uint16_t bgid;
	bool registered;
};

void tcp_bufring_recycle(struct tcp_bufring *b, unsigned bid)
{
	io_uring_buf_ring_add(b->br, b->bufs + (size_t)bid * b->sz,
			      (unsigned)b->sz, (unsigned short)bid,
			      io_uring_buf_ring_mask(b->n), 0);
	io_uring_buf_ring_advance(b->br, 1);
}

const uint8_t *tcp_bufring_buf(const struct tcp_bufring *b, unsigned bid)
{
	return bid < b->n ? b->bufs + (size_t)bid * b->sz : NULL;
}

uint16_t tcp_bufring_bgid(const struct tcp_bufring *b)
{
	return b->bgid;
}

void tcp_bufring_free(struct io_uring *ring, struct tcp_bufring *b)
{
	if (!b)
		return;
	if (b->registered)
		io_uring_unregister_buf_ring(ring, b->bgid);
	if (b->br)
		munmap(b->br, b->br_size);
	rxp__free(b->bufs);
	rxp__free(b);
}

int tcp_bufring_new(struct io_uring *ring, uint16_t bgid, unsigned n, size_t sz,
		    struct tcp_bufring **out)
{
	struct io_uring_buf_reg reg = {0};
	struct tcp_bufring *b = rxp__calloc(1, sizeof(*b));
	int err = -ENOMEM;

	if (!b)
		return -ENOMEM;
	b->n = n;
	b->sz = sz;
	b->bgid = bgid;
	b->br_size = n * sizeof(struct io_uring_buf);
	b->br = mmap(NULL, b->br_size, PROT_READ | PROT_WRITE,
		     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (b->br == MAP_FAILED) {
		b->br = NULL;
		goto err_free;
	}
	b->bufs = rxp__aligned_alloc(4096, n * sz);
	if (!b->bufs)
		goto err_free;
	io_uring_buf_ring_init(b->br);
	reg.ring_addr = (uint64_t)(uintptr_t)b->br;
	reg.ring_entries = n;
	reg.bgid = bgid;
	err = rxp__tcp_sys->uring_register_buf_ring(ring, &reg, 0);
	if (err)
		goto err_free;
	b->registered = true;
	for (unsigned i = 0; i < n; i++)
		tcp_bufring_recycle(b, i);
	*out = b;
	return 0;

err_free:
	tcp_bufring_free(ring, b);
	return err;
}

int tcp_bgid_get(struct tcp_bgids *b)
{
	for (unsigned i = 0; i < TCP_NBGID; i++) {
		unsigned id = (b->hint + i) % TCP_NBGID;

		if (!(b->used[id / 64] & 1ull << (id % 64))) {
			b->used[id / 64] |= 1ull << (id % 64);
			b->hint = id + 1;
			return (int)id;
		}
	}
	return -EMFILE;
}

void tcp_bgid_put(struct tcp_bgids *b, uint16_t id)
{
	b->used[id / 64] &= ~(1ull << (id % 64));
}
