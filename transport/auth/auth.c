/* SPDX-License-Identifier: MIT */
/*
 * The job secret, handshake MACs, nonces and the id PRF (rxp_auth.h), on
 * libsodium. sodium_init() is idempotent and thread-safe; every entry
 * point that needs the library calls it (through auth_init()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <rxp/errno.h>
#include "rxp_auth.h"
#include "rxp_util.h"

#define AUTH_LOG "auth"
#define KEY_LABEL "rxp job secret v1"

_Static_assert(RXP_AUTH_KEY_BYTES == crypto_auth_hmacsha256_KEYBYTES,
	       "key size");
_Static_assert(RXP_AUTH_MAC_BYTES == crypto_auth_hmacsha256_BYTES, "mac size");
_Static_assert(sizeof(((struct rxp_auth_prf *)0)->k) ==
		       crypto_shorthash_KEYBYTES,
	       "prf key size");

static void auth_init(void)
{
	/* 0 first time, 1 already done, -1 only if the OS has no RNG */
	if (sodium_init() < 0)
		abort();
}

/* The key: BLAKE2b-256 of the secret under a fixed label, so the secret
 * itself need not be kept (and a long one costs nothing per MAC). */
static int key_from(const void *secret, size_t len, struct rxp_auth_key *out)
{
	if (len < RXP_AUTH_MIN_SECRET) {
		rxp_err(AUTH_LOG,
			"job secret of %zu bytes refused: at least %u "
			"(use %u random bytes)",
			len, RXP_AUTH_MIN_SECRET, RXP_AUTH_GOOD_SECRET);
		return -EINVAL;
	}
	if (len < RXP_AUTH_GOOD_SECRET)
		rxp_warn(AUTH_LOG,
			 "job secret is only %zu bytes; use %u random bytes",
			 len, RXP_AUTH_GOOD_SECRET);
	crypto_generichash(out->k, sizeof(out->k), secret, len,
			   (const unsigned char *)KEY_LABEL,
			   sizeof(KEY_LABEL) - 1);
	out->on = true;
	return 0;
}

static int load_file(const char *path, struct rxp_auth_key *out)
{
	uint8_t buf[RXP_AUTH_MAX_SECRET];
	size_t have = 0;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		rxp_err(AUTH_LOG, "RXP_SECRET_FILE %s: %s", path,
			strerror(errno));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rxp_err(AUTH_LOG, "RXP_SECRET_FILE %s is not a regular file",
			path);
		ret = -EINVAL;
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rxp_err(AUTH_LOG,
			"RXP_SECRET_FILE %s is accessible by group or others "
			"(mode %03o): refused; chmod 600 it",
			path, (unsigned)(st.st_mode & 0777));
		ret = -EPERM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			rxp_err(AUTH_LOG, "RXP_SECRET_FILE %s: %s", path,
				strerror(errno));
			goto out;
		}
		if (n == 0 || (have += (size_t)n) == sizeof(buf))
			break;
	}
	ret = key_from(buf, have, out);
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return ret;
}

int rxp_auth_load(const void *secret, size_t len, struct rxp_auth_key *out)
{
	const char *path;

	auth_init();
	memset(out, 0, sizeof(*out));
	if (secret)
		return key_from(secret, len, out);
	path = getenv("RXP_SECRET_FILE");
	if (!path || !*path)
		return 0;
	return load_file(path, out);
}

void rxp_auth_wipe(struct rxp_auth_key *k)
{
	if (k)
		sodium_memzero(k, sizeof(*k));
}

void rxp_auth_mac(const struct rxp_auth_key *k, const char *label,
		  const void *a, size_t alen, const void *b, size_t blen,
		  uint8_t out[RXP_AUTH_MAC_BYTES])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, k->k, sizeof(k->k));
	/* the label's NUL ends it, so no label is a prefix of another */
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)label,
				      strlen(label) + 1);
	crypto_auth_hmacsha256_update(&st, a, alen);
	crypto_auth_hmacsha256_update(&st, b, blen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

int rxp_auth_verify(const struct rxp_auth_key *k, const char *label,
		    const void *a, size_t alen, const void *b, size_t blen,
		    const uint8_t mac[RXP_AUTH_MAC_BYTES])
{
	uint8_t want[RXP_AUTH_MAC_BYTES];
	int ok;

	rxp_auth_mac(k, label, a, alen, b, blen, want);
	ok = sodium_memcmp(want, mac, sizeof(want)) == 0;
	sodium_memzero(want, sizeof(want));
	return ok ? 0 : -RXP_E_AUTH;
}

void rxp_auth_nonce(void *buf, size_t n)
{
	auth_init();
	randombytes_buf(buf, n);
}

void rxp_auth_prf_init(struct rxp_auth_prf *p)
{
	auth_init();
	crypto_shorthash_keygen(p->k);
}

uint64_t rxp_auth_prf(const struct rxp_auth_prf *p, uint64_t x)
{
	uint8_t in[8], out[crypto_shorthash_BYTES];

	rxp_put_le64(in, x);
	crypto_shorthash(out, in, sizeof(in), p->k);
	return rxp_get_le64(out);
}
