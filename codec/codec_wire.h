/* SPDX-License-Identifier: MIT */
/*
 * Value codec, private: wire constants and little-endian loads shared by
 * the encoder (codec_enc.c) and the decoder (codec_dec.c). The format is
 * specified in docs/codec.md; keep the two in step.
 */
#ifndef RXP_CODEC_WIRE_H
#define RXP_CODEC_WIRE_H

#include <stdint.h>
#include <string.h>

#define WIRE_MAGIC 0x43505852u /* "RXPC" as a little-endian u32 */
#define HDR_SIZE 8	       /* magic u32, version u8, kind u8, rsvd u16 */

enum wire_kind { WIRE_CALL = 1, WIRE_RESP_VALUE = 2, WIRE_RESP_ERROR = 3 };

/* Extension (TLV) records: u16 type, u32 len, len bytes. Types are
 * numbered per message kind (calls, responses). */
#define EXT_HDR 6
#define EXT_CRITICAL 0x8000u /* unknown and critical: reject the message */
enum call_ext_type { EXT_AUTOGRAD = 1, EXT_PROFILING = 2, EXT_RREF = 3 };
enum resp_ext_type { EXT_PROFILE = 1 };
#define EXT_AUTOGRAD_LEN 17 /* i64 ctx id, i64 msg id, u8 force_grad */
#define EXT_RREF_LEN 32	    /* rref id, fork id */

/* Profile record: i64 t_recv, i64 t_done, u32 nevents, then per event a
 * str name, i64 start, i64 end. */
#define PROF_FIXED 20
#define PROF_MIN_EVENT 21 /* empty name (u32 len, NUL), two i64 */

/* RRef id: u32 creator, u32 reserved (0), u64 local. */
#define RREF_ID_SIZE 16
/* RRef value body: u32 owner, u32 parent, rref id, fork id. */
#define RREF_BODY 40

/* Smallest encodings, to bound counts by the bytes left. */
#define MIN_VALUE 1	/* tag of a none */
#define MIN_ENTRY 6	/* u32 key len, NUL, tag */
#define TENSOR_FIXED 15 /* tag, dtype, ndim, u32 storage, u64 offset */

/* ---------------------------------------------------- byte order */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LE16(x) __builtin_bswap16(x)
#define LE32(x) __builtin_bswap32(x)
#define LE64(x) __builtin_bswap64(x)
#else
#define LE16(x) (x)
#define LE32(x) (x)
#define LE64(x) (x)
#endif

static inline uint16_t ld_u16(const uint8_t *r)
{
	uint16_t v;

	memcpy(&v, r, 2);
	return LE16(v);
}

static inline uint32_t ld_u32(const uint8_t *r)
{
	uint32_t v;

	memcpy(&v, r, 4);
	return LE32(v);
}

static inline uint64_t ld_u64(const uint8_t *r)
{
	uint64_t v;

	memcpy(&v, r, 8);
	return LE64(v);
}

#endif
