/* SPDX-License-Identifier: MIT */
/*
 * A key-value store for rendezvous tests (struct rxp_store_ops): a small
 * key table in an anonymous shared mapping behind a process-shared mutex
 * and condition variable, so one store serves threads of one process and
 * the processes forked after it was made. Counters (add) are kept as
 * decimal text, as torch's stores keep them.
 *
 * Each worker passes its own struct tstore_ctx: it can make the n-th op it
 * issues fail with -EIO (fault injection) and counts its ops.
 */
#ifndef RXP_TEST_STORE_H
#define RXP_TEST_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <rxp/rxp.h>

#define TSTORE_KEYS 128
#define TSTORE_KEY_LEN 64
#define TSTORE_VAL_LEN 4096

struct tstore;

struct tstore_ctx {
	struct tstore *s;
	int fail_at;	 /* 1-based op number that fails with -EIO; 0: none */
	atomic_int nops; /* ops issued through this context */
};

extern const struct rxp_store_ops tstore_ops;

struct tstore *tstore_new(void);
void tstore_free(struct tstore *s);
/* Put a value straight in (a corrupted record, say). 0 or -errno. */
int tstore_put(struct tstore *s, const char *key, const void *val, size_t len);
/* Number of keys set so far. */
int tstore_nkeys(struct tstore *s);

#endif
