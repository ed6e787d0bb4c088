/* SPDX-License-Identifier: MIT */
/*
 * Bump allocator for decoded value trees.
 *
 * The arena starts in caller memory (usually a stack or per-call buffer),
 * so decoding a small message allocates nothing. When that runs out it
 * grows with rxp__malloc'd chunks, each at least twice the previous one
 * (4 KiB first), kept on a singly linked list that rxp_arena_fini frees.
 * Memory is never returned one allocation at a time.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "rxp_util.h"

#define ARENA_FIRST_CHUNK 4096u

/* Header of a malloc'd chunk; the usable bytes follow it. */
struct arena_chunk {
	struct arena_chunk *next;
	size_t size; /* usable bytes after the header */
	alignas(max_align_t) char data[];
};

void rxp_arena_init(struct rxp_arena *a, void *mem, size_t len)
{
	a->cur = mem;
	a->end = mem ? (char *)mem + len : NULL;
	a->chunks = NULL;
}

/* Round @p up to @align (a power of two); NULL if that wraps. */
static char *align_up(char *p, size_t align)
{
	uintptr_t u = (uintptr_t)p;
	uintptr_t r = (u + (align - 1)) & ~(uintptr_t)(align - 1);

	return r < u ? NULL : (char *)r;
}

static void *arena_grow(struct rxp_arena *a, size_t n, size_t align)
{
	struct arena_chunk *head = a->chunks, *c;
	size_t want = ARENA_FIRST_CHUNK;
	char *p;

	if (head && head->size <= SIZE_MAX / 2 && head->size * 2 > want)
		want = head->size * 2;
	/* room for @n even in the worst alignment case */
	if (n > SIZE_MAX - align - sizeof(*c))
		return NULL;
	if (want < n + align)
		want = n + align;
	/* no object above PTRDIFF_MAX: pointer differences must not wrap */
	if (want > PTRDIFF_MAX - sizeof(*c))
		return NULL;
	c = rxp__malloc(sizeof(*c) + want);
	if (!c)
		return NULL;
	c->next = head;
	c->size = want;
	a->chunks = c;
	p = align_up(c->data, align);
	a->cur = p + n;
	a->end = c->data + want;
	return p;
}

/*
 * Return @n bytes aligned to @align (a power of two; 0 means 1), or NULL
 * if @align is not a power of two or a new chunk cannot be allocated. The
 * bytes are uninitialised. n == 0 returns a valid, unique-enough pointer
 * that must not be dereferenced.
 */
void *rxp_arena_alloc(struct rxp_arena *a, size_t n, size_t align)
{
	char *p;

	if (!align)
		align = 1;
	if (align & (align - 1))
		return NULL;
	if (a->cur) {
		p = align_up(a->cur, align);
		if (p && p <= a->end && n <= (size_t)(a->end - p)) {
			a->cur = p + n;
			return p;
		}
	}
	return arena_grow(a, n, align);
}

void rxp_arena_fini(struct rxp_arena *a)
{
	struct arena_chunk *c = a->chunks, *next;

	while (c) {
		next = c->next;
		rxp__free(c);
		c = next;
	}
	a->chunks = NULL;
	a->cur = NULL;
	a->end = NULL;
}
