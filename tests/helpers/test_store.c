/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "test_store.h"

struct tstore_ent {
	char key[TSTORE_KEY_LEN];
	size_t len;
	unsigned char val[TSTORE_VAL_LEN];
};

struct tstore {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n;
	struct tstore_ent e[TSTORE_KEYS];
};

struct tstore *tstore_new(void)
{
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	struct tstore *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (s == MAP_FAILED)
		return NULL;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_init(&ca);
	pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	return s;
}

void tstore_free(struct tstore *s)
{
	if (!s)
		return;
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	munmap(s, sizeof(*s));
}

static struct tstore_ent *find(struct tstore *s, const char *key)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->e[i].key, key))
			return &s->e[i];
	return NULL;
}

/* under s->mu */
static int put_locked(struct tstore *s, const char *key, const void *val,
		      size_t len)
{
	struct tstore_ent *e = find(s, key);

	if (strlen(key) >= TSTORE_KEY_LEN || len > TSTORE_VAL_LEN)
		return -E2BIG;
	if (!e) {
		if (s->n == TSTORE_KEYS)
			return -ENOSPC;
		e = &s->e[s->n++];
		snprintf(e->key, sizeof(e->key), "%s", key);
	}
	memcpy(e->val, val, len);
	e->len = len;
	pthread_cond_broadcast(&s->cv);
	return 0;
}

int tstore_put(struct tstore *s, const char *key, const void *val, size_t len)
{
	int ret;

	pthread_mutex_lock(&s->mu);
	ret = put_locked(s, key, val, len);
	pthread_mutex_unlock(&s->mu);
	return ret;
}

int tstore_nkeys(struct tstore *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static int injected(struct tstore_ctx *c)
{
	int n = atomic_fetch_add(&c->nops, 1) + 1;

	return c->fail_at && n == c->fail_at ? -EIO : 0;
}

static int ts_set(void *ctx, const char *key, const void *val, size_t len)
{
	struct tstore_ctx *c = ctx;

	return injected(c) ?: tstore_put(c->s, key, val, len);
}

static int ts_get(void *ctx, const char *key, void *buf, size_t cap,
		  size_t *len, int64_t timeout_ms)
{
	struct tstore_ctx *c = ctx;
	struct tstore *s = c->s;
	struct tstore_ent *e;
	struct timespec dl;
	int ret = injected(c);

	if (ret)
		return ret;
	if (timeout_ms <= 0)
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->mu);
	while (!(e = find(s, key)) && ret == 0)
		ret = -pthread_cond_timedwait(&s->cv, &s->mu, &dl);
	if (e) {
		memcpy(buf, e->val, e->len < cap ? e->len : cap);
		*len = e->len;
		ret = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return ret;
}

static int ts_add(void *ctx, const char *key, int64_t delta, int64_t *out)
{
	struct tstore_ctx *c = ctx;
	struct tstore *s = c->s;
	struct tstore_ent *e;
	char num[32];
	int64_t v = 0;
	int ret = injected(c);

	if (ret)
		return ret;
	pthread_mutex_lock(&s->mu);
	e = find(s, key);
	if (e) {
		memcpy(num, e->val, e->len < 31 ? e->len : 31);
		num[e->len < 31 ? e->len : 31] = 0;
		v = strtoll(num, NULL, 10);
	}
	v += delta;
	snprintf(num, sizeof(num), "%" PRId64, v);
	ret = put_locked(s, key, num, strlen(num));
	pthread_mutex_unlock(&s->mu);
	if (!ret)
		*out = v;
	return ret;
}

const struct rxp_store_ops tstore_ops = {
	.set = ts_set,
	.get = ts_get,
	.add = ts_add,
};
