/* SPDX-License-Identifier: MIT */
/*
 * Raw-socket peers for the TCP transport's unit tests: a hand-written
 * encoder of the wire format (independent of tcp_wire.c, so the layout
 * documented in docs/tcp.md is what gets tested) and socket helpers that
 * keep the transport under test progressing while they wait.
 */
#ifndef RXP_TCP_RAW_H
#define RXP_TCP_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp_harness.h"

/* 40-byte handshake */
size_t raw_hs(uint8_t *out, uint32_t magic, uint16_t version, uint16_t size,
	      uint32_t worker, uint64_t features);
/* 32-byte header + nst lengths */
size_t raw_hdr(uint8_t *out, uint16_t magic, uint8_t version, uint8_t type,
	       uint8_t flags, uint32_t nst, uint64_t id, uint64_t plen,
	       const uint64_t *lens);

/* Listening socket on 127.0.0.1; returns fd, *addr = "127.0.0.1:port". */
int raw_listen(char *addr, size_t len);
/* Accept on @lfd while progressing @s (2 s). */
int raw_accept(int lfd, struct h_side *s);
/* Connect to @s's listener. */
int raw_connect(struct h_side *s);
/* The same with a socket made earlier: 0 or -1. */
int raw_connect_fd(struct h_side *s, int fd);
/* Read exactly @n bytes while progressing @s (2 s); 0 or -1. */
int raw_read(int fd, void *buf, size_t n, struct h_side *s);
int raw_write(int fd, const void *buf, size_t n);
/* Read until EOF or error while progressing @s: true if the transport
 * closed the connection within @ms. */
bool raw_wait_closed(int fd, struct h_side *s, int ms);

#endif
