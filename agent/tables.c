/* SPDX-License-Identifier: MIT */
/*
 * Poller-owned tables: the slot map (pending calls by id, connections by
 * key) and the deadline heap. Both grow by doubling (rarely: the steady
 * state allocates nothing).
 */
#include <errno.h>
#include <string.h>

#include "agent_int.h"

#define SLOT_NONE UINT32_MAX

int rxp__slots_init(struct rxp__slots *s, uint32_t cap)
{
	memset(s, 0, sizeof(*s));
	s->v = rxp__calloc(cap, sizeof(*s->v));
	if (!s->v)
		return -ENOMEM;
	s->cap = cap;
	for (uint32_t i = 0; i < cap; i++)
		s->v[i].next_free = i + 1 < cap ? i + 1 : SLOT_NONE;
	s->free_head = 0;
	rxp_auth_prf_init(&s->prf);
	return 0;
}

void rxp__slots_fini(struct rxp__slots *s)
{
	rxp__free(s->v);
	memset(s, 0, sizeof(*s));
}

static int slots_grow(struct rxp__slots *s)
{
	uint32_t ncap = s->cap * 2;
	struct rxp__slot *nv;

	if (ncap <= s->cap)
		return -ENOMEM;
	nv = rxp__realloc(s->v, (size_t)ncap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	for (uint32_t i = s->cap; i < ncap; i++) {
		nv[i].key = 0;
		nv[i].ptr = NULL;
		nv[i].next_free = i + 1 < ncap ? i + 1 : SLOT_NONE;
	}
	s->free_head = s->cap;
	s->v = nv;
	s->cap = ncap;
	return 0;
}

int rxp__slots_add(struct rxp__slots *s, void *ptr, uint64_t *key)
{
	uint32_t i, gen;

	if (s->free_head == SLOT_NONE && slots_grow(s))
		return -ENOMEM;
	i = s->free_head;
	s->free_head = s->v[i].next_free;
	do /* generation 0 would make key 0 ("none") possible */
		gen = (uint32_t)rxp_auth_prf(&s->prf, s->ctr++);
	while (!gen);
	s->v[i].key = (uint64_t)gen << 32 | i;
	s->v[i].ptr = ptr;
	s->used++;
	*key = s->v[i].key;
	return 0;
}

void *rxp__slots_get(const struct rxp__slots *s, uint64_t key)
{
	uint32_t i = (uint32_t)key;

	if (i >= s->cap || s->v[i].key != key || !s->v[i].ptr)
		return NULL;
	return s->v[i].ptr;
}

void *rxp__slots_del(struct rxp__slots *s, uint64_t key)
{
	uint32_t i = (uint32_t)key;
	void *p;

	if (i >= s->cap || s->v[i].key != key || !s->v[i].ptr)
		return NULL;
	p = s->v[i].ptr;
	s->v[i].ptr = NULL;
	s->v[i].key = 0;
	s->v[i].next_free = s->free_head;
	s->free_head = i;
	s->used--;
	return p;
}

/* ------------------------------------------------------- deadline heap */

int rxp__heap_push(struct rxp__heap *h, int64_t t, uint64_t id)
{
	uint32_t i;

	if (h->n == h->cap) {
		uint32_t ncap = h->cap ? h->cap * 2 : 256;
		struct rxp__dl *nv = rxp__realloc(h->v, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		h->v = nv;
		h->cap = ncap;
	}
	i = h->n++;
	while (i > 0) {
		uint32_t p = (i - 1) / 2;

		if (h->v[p].t <= t)
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i].t = t;
	h->v[i].id = id;
	return 0;
}

bool rxp__heap_top(const struct rxp__heap *h, struct rxp__dl *out)
{
	if (!h->n)
		return false;
	*out = h->v[0];
	return true;
}

void rxp__heap_pop(struct rxp__heap *h)
{
	struct rxp__dl last;
	uint32_t i = 0;

	if (!h->n)
		return;
	last = h->v[--h->n];
	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1].t < h->v[c].t)
			c++;
		if (last.t <= h->v[c].t)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
}

void rxp__heap_fini(struct rxp__heap *h)
{
	rxp__free(h->v);
	memset(h, 0, sizeof(*h));
}

uint64_t *rxp__buf_lens(struct rxp_buf *const *v, uint32_t n, uint64_t *inl)
{
	uint64_t *lens = inl;

	if (n > RXP__INLINE_STORAGES) {
		lens = rxp__calloc(n, sizeof(*lens));
		if (!lens)
			return NULL;
	}
	for (uint32_t i = 0; i < n; i++)
		lens[i] = v[i]->len;
	return lens;
}
