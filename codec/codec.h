/* SPDX-License-Identifier: MIT */
/*
 * Value codec: script calls and responses <-> payload bytes.
 *
 * Wire format (docs/DESIGN.md "Value codec"): little-endian, versioned
 * header, values as tagged records. Tensors carry dtype/shape/strides/
 * storage index/byte offset; their bytes travel as storages beside the
 * payload, never inside it. Strings are stored with a trailing NUL so a
 * decoded string can point straight into the payload buffer.
 *
 * Decoding treats the payload as hostile: every length, count, index and
 * offset is checked against the buffer, the limits below and the storage
 * lengths; failures return -RXP_E_DECODE and never read out of bounds.
 * Decoded trees live in a caller-provided arena plus the payload buffer.
 * Decode returns 0, -RXP_E_DECODE (malformed), -ENOMEM (arena) or -EINVAL
 * (caller error); encode returns the size, -EINVAL, -RXP_E_TOO_BIG or
 * -ENOSPC (buffer too small).
 */
#ifndef RXP_CODEC_H
#define RXP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <rxp/rxp.h>

#define RXP_CODEC_VERSION 1
#define RXP_CODEC_MAX_DEPTH 64	       /* nesting of list/tuple/dict */
#define RXP_CODEC_MAX_ITEMS (1u << 20) /* values in one message */
#define RXP_CODEC_MAX_NAME 1024	       /* qualified name bytes */

/* ------------------------------------------------------------- arena */
/*
 * Bump allocator for decoded trees. Starts in caller-provided memory
 * (no malloc for small messages), grows with rxp__malloc'd chunks.
 */
struct rxp_arena {
	char *cur, *end;
	void *chunks; /* malloc'd chunks, freed by rxp_arena_fini */
};
void rxp_arena_init(struct rxp_arena *a, void *mem, size_t len);
void *rxp_arena_alloc(struct rxp_arena *a, size_t n, size_t align);
void rxp_arena_fini(struct rxp_arena *a); /* frees chunks */

/* --------------------------------------------------------- messages */

/* Optional call metadata (extensions), carried only when present. */
struct rxp_call_meta {
	uint32_t flags; /* RXP_CALL_* from rxp.h */
	/* distributed autograd (issue 5): valid if has_autograd */
	int has_autograd;
	int64_t autograd_ctx_id, autograd_msg_id;
	int force_grad_recording;
	/* profiling requested by the caller */
	int profiling;
	/* remote(): the RRef (and the creator's fork) this call creates */
	int has_rref;
	struct rxp_rref_id rref_id, fork_id;
};

/* Profiling events a callee returns with its response (remote profiling). */
struct rxp_prof_wire_event {
	const char *name; /* NUL-terminated (decoded: points into payload) */
	uint32_t name_len;
	int64_t start_ns, end_ns; /* callee's CLOCK_MONOTONIC */
};

/* Optional response metadata (extensions), carried only when present. */
struct rxp_resp_ext {
	int has_prof;
	int64_t t_recv_ns; /* callee clock: request received */
	int64_t t_done_ns; /* callee clock: response ready */
	uint32_t nevents;  /* <= RXP_CODEC_MAX_PROF_EVENTS */
	const struct rxp_prof_wire_event *events;
};
#define RXP_CODEC_MAX_PROF_EVENTS 4096

struct rxp_decoded_call {
	const char *name; /* NUL-terminated, points into the payload */
	uint32_t name_len;
	const struct rxp_value *args;
	uint32_t nargs;
	struct rxp_call_meta meta;
};

/* A response payload is either a value or an error. */
struct rxp_decoded_resp {
	int is_error;
	int32_t err_code;    /* -errno / -RXP_E_* as sent by the callee */
	const char *err_msg; /* NUL-terminated, in the payload */
	const struct rxp_value *value; /* when !is_error */
	struct rxp_resp_ext ext;       /* zeroed when absent */
};

/*
 * Encoding is two-pass so the caller can place the bytes in a registered
 * or pooled buffer: *_size() returns the exact byte count (or -errno:
 * -EINVAL for a malformed tree such as a bad kind, a tensor storage index
 * >= nstorages, a string with an embedded NUL; -RXP_E_TOO_BIG past the
 * limits), then *_encode() writes exactly that many bytes into @buf
 * (@cap >= size) and returns it.
 */
int64_t rxp_codec_call_size(const char *name, const struct rxp_value *args,
			    uint32_t nargs, uint32_t nstorages,
			    const struct rxp_call_meta *meta);
int64_t rxp_codec_call_encode(const char *name, const struct rxp_value *args,
			      uint32_t nargs, uint32_t nstorages,
			      const struct rxp_call_meta *meta, void *buf,
			      size_t cap);

int64_t rxp_codec_value_size(const struct rxp_value *v, uint32_t nstorages);
int64_t rxp_codec_value_encode(const struct rxp_value *v, uint32_t nstorages,
			       void *buf, size_t cap);

int64_t rxp_codec_error_size(int32_t code, const char *msg);
int64_t rxp_codec_error_encode(int32_t code, const char *msg, void *buf,
			       size_t cap);

/* The same with response extensions (@ext may be NULL = none). */
int64_t rxp_codec_value_size_ext(const struct rxp_value *v, uint32_t nstorages,
				 const struct rxp_resp_ext *ext);
int64_t rxp_codec_value_encode_ext(const struct rxp_value *v,
				   uint32_t nstorages,
				   const struct rxp_resp_ext *ext, void *buf,
				   size_t cap);
int64_t rxp_codec_error_size_ext(int32_t code, const char *msg,
				 const struct rxp_resp_ext *ext);
int64_t rxp_codec_error_encode_ext(int32_t code, const char *msg,
				   const struct rxp_resp_ext *ext, void *buf,
				   size_t cap);

/*
 * Decode. @storage_lens gives the byte length of each of the message's
 * @nstorages storages: a tensor whose span (offset + extent) does not fit
 * its storage is rejected. The result points into @buf and @arena.
 * Returns 0 or -RXP_E_DECODE (or -ENOMEM when the arena cannot grow).
 */
int rxp_codec_call_decode(const void *buf, size_t len, uint32_t nstorages,
			  const uint64_t *storage_lens, struct rxp_arena *arena,
			  struct rxp_decoded_call *out);
int rxp_codec_resp_decode(const void *buf, size_t len, uint32_t nstorages,
			  const uint64_t *storage_lens, struct rxp_arena *arena,
			  struct rxp_decoded_resp *out);

/* Deep equality of two value trees (tests, --verify modes). */
bool rxp_value_equal(const struct rxp_value *a, const struct rxp_value *b);

#endif
