/* SPDX-License-Identifier: MIT */
/*
 * Job-secret authentication and unguessable ids, the only code in rxp that
 * touches cryptography (all of it from libsodium; nothing hand-written).
 * Not installed.
 *
 *  - rxp_auth_load():   the secret from an attr or $RXP_SECRET_FILE,
 *                       turned into a 32-byte key (the secret itself is
 *                       not kept).
 *  - rxp_auth_mac() / rxp_auth_verify(): HMAC-SHA256 of a handshake
 *                       transcript under that key; verify compares in
 *                       constant time.
 *  - rxp_auth_nonce():  fresh random bytes (randombytes_buf).
 *  - rxp_auth_prf_*():  a random per-process key and SipHash-2-4
 *                       (crypto_shorthash) of a counter, for ids a peer
 *                       cannot predict.
 *
 * Threads: all functions are thread-safe; a key is read-only once loaded.
 */
#ifndef RXP_AUTH_H
#define RXP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RXP_AUTH_KEY_BYTES 32u
#define RXP_AUTH_MAC_BYTES 32u
#define RXP_AUTH_NONCE_BYTES 32u
#define RXP_AUTH_MIN_SECRET 16u	  /* shorter secrets are refused */
#define RXP_AUTH_GOOD_SECRET 32u  /* shorter ones are warned about */
#define RXP_AUTH_MAX_SECRET 4096u /* bytes read from a secret file */

struct rxp_auth_key {
	bool on; /* false: no secret configured (no authentication) */
	uint8_t k[RXP_AUTH_KEY_BYTES];
};

/*
 * Load the job secret: @secret/@len if @secret is not NULL, else the file
 * named by $RXP_SECRET_FILE if set (it must be a regular file that is not
 * group- or world-accessible, like an ssh key), else none (out->on false).
 * Return: 0; -EPERM bad permissions; -EINVAL too short / empty;
 * -errno the file cannot be read. Each error is logged with its reason.
 */
int rxp_auth_load(const void *secret, size_t len, struct rxp_auth_key *out);
/* Forget a key (sodium_memzero). Accepts NULL. */
void rxp_auth_wipe(struct rxp_auth_key *k);

/* HMAC-SHA256(key, label || 0x00 || a || b) into @out. */
void rxp_auth_mac(const struct rxp_auth_key *k, const char *label,
		  const void *a, size_t alen, const void *b, size_t blen,
		  uint8_t out[RXP_AUTH_MAC_BYTES]);
/* 0 if @mac is rxp_auth_mac() of the same input, else -RXP_E_AUTH;
 * constant time in the MAC's bytes. */
int rxp_auth_verify(const struct rxp_auth_key *k, const char *label,
		    const void *a, size_t alen, const void *b, size_t blen,
		    const uint8_t mac[RXP_AUTH_MAC_BYTES]);
/* @n random bytes from the OS generator. */
void rxp_auth_nonce(void *buf, size_t n);

struct rxp_auth_prf {
	uint8_t k[16]; /* crypto_shorthash_KEYBYTES */
};
/* A fresh random PRF key. */
void rxp_auth_prf_init(struct rxp_auth_prf *p);
/* SipHash-2-4 of @x under @p's key. */
uint64_t rxp_auth_prf(const struct rxp_auth_prf *p, uint64_t x);

#endif
