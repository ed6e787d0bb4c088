/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the value codec.
 *
 * Input: byte 0 picks the decoder (bit 0: 0 = call, 1 = response) and the
 * number of storages (bits 1-2, lengths from storage_lens[]); the rest is
 * the payload. A payload that decodes must re-encode (with its call
 * metadata or response extensions), and the re-encoding must decode to an
 * equal tree, equal metadata and extensions, and re-encode to the same
 * bytes (otherwise abort()).
 *
 * Built two ways (tests/fuzz/codec.cmake):
 *  - fuzz_codec: libFuzzer (clang only), e.g.
 *      ./fuzz_codec -max_total_time=60 tests/fuzz/corpus/codec
 *  - fuzz_codec_replay: a plain main that runs the target over files and
 *    directories (the checked-in corpus, crash files); registered as a
 *    ctest. "fuzz_codec_replay --write-seeds DIR" regenerates the seeds.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t storage_lens[3] = {24, 64, 4096};

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_codec: property violated: %s\n", what);
		abort();
	}
}

static bool id_eq(const struct rxp_rref_id *a, const struct rxp_rref_id *b)
{
	return a->creator == b->creator && a->reserved == b->reserved &&
	       a->local == b->local;
}

/* Field by field: the struct has padding. */
static bool meta_eq(const struct rxp_call_meta *a,
		    const struct rxp_call_meta *b)
{
	return a->flags == b->flags && a->has_autograd == b->has_autograd &&
	       a->autograd_ctx_id == b->autograd_ctx_id &&
	       a->autograd_msg_id == b->autograd_msg_id &&
	       a->force_grad_recording == b->force_grad_recording &&
	       a->profiling == b->profiling && a->has_rref == b->has_rref &&
	       id_eq(&a->rref_id, &b->rref_id) &&
	       id_eq(&a->fork_id, &b->fork_id);
}

static bool ext_eq(const struct rxp_resp_ext *a, const struct rxp_resp_ext *b)
{
	uint32_t i;

	if (a->has_prof != b->has_prof || a->t_recv_ns != b->t_recv_ns ||
	    a->t_done_ns != b->t_done_ns || a->nevents != b->nevents)
		return false;
	for (i = 0; i < a->nevents; i++)
		if (a->events[i].name_len != b->events[i].name_len ||
		    strcmp(a->events[i].name, b->events[i].name) ||
		    a->events[i].start_ns != b->events[i].start_ns ||
		    a->events[i].end_ns != b->events[i].end_ns)
			return false;
	return true;
}

/* Encoding what was decoded from @b2 gives @b2 again (canonical). */
static void check_canonical(const uint8_t *b2, size_t n2, const uint8_t *b3,
			    int64_t n3)
{
	check(n3 == (int64_t)n2 && !memcmp(b2, b3, n2),
	      "re-encoding is canonical");
}

static void roundtrip_call(const struct rxp_decoded_call *c, uint32_t nst)
{
	struct rxp_decoded_call c2;
	struct rxp_arena a;
	uint8_t *b, *b3;
	int64_t n;
	uint32_t i;

	n = rxp_codec_call_size(c->name, c->args, c->nargs, nst, &c->meta);
	check(n > 0, "decoded call re-encodes");
	b = malloc((size_t)n);
	check(b != NULL, "malloc");
	check(rxp_codec_call_encode(c->name, c->args, c->nargs, nst, &c->meta,
				    b, (size_t)n) == n,
	      "encode writes the size");
	rxp_arena_init(&a, NULL, 0);
	check(!rxp_codec_call_decode(b, (size_t)n, nst, storage_lens, &a, &c2),
	      "re-encoded call decodes");
	check(!strcmp(c->name, c2.name) && c->nargs == c2.nargs,
	      "name and nargs survive");
	for (i = 0; i < c->nargs; i++)
		check(rxp_value_equal(&c->args[i], &c2.args[i]),
		      "args survive");
	check(meta_eq(&c->meta, &c2.meta), "meta survives");
	b3 = malloc((size_t)n);
	check(b3 != NULL, "malloc");
	check_canonical(b, (size_t)n, b3,
			rxp_codec_call_encode(c2.name, c2.args, c2.nargs, nst,
					      &c2.meta, b3, (size_t)n));
	free(b3);
	rxp_arena_fini(&a);
	free(b);
}

static void roundtrip_resp(const struct rxp_decoded_resp *r, uint32_t nst)
{
	struct rxp_decoded_resp r2;
	struct rxp_arena a;
	uint8_t *b, *b3;
	int64_t n, n3;

	n = r->is_error
		    ? rxp_codec_error_size_ext(r->err_code, r->err_msg, &r->ext)
		    : rxp_codec_value_size_ext(r->value, nst, &r->ext);
	check(n > 0, "decoded response re-encodes");
	b = malloc((size_t)n);
	check(b != NULL, "malloc");
	check((r->is_error ? rxp_codec_error_encode_ext(r->err_code, r->err_msg,
							&r->ext, b, (size_t)n)
			   : rxp_codec_value_encode_ext(r->value, nst, &r->ext,
							b, (size_t)n)) == n,
	      "encode writes the size");
	rxp_arena_init(&a, NULL, 0);
	check(!rxp_codec_resp_decode(b, (size_t)n, nst, storage_lens, &a, &r2),
	      "re-encoded response decodes");
	check(r->is_error == r2.is_error, "kind survives");
	if (r->is_error)
		check(r->err_code == r2.err_code &&
			      !strcmp(r->err_msg, r2.err_msg),
		      "error survives");
	else
		check(rxp_value_equal(r->value, r2.value), "value survives");
	check(ext_eq(&r->ext, &r2.ext), "extensions survive");
	b3 = malloc((size_t)n);
	check(b3 != NULL, "malloc");
	if (r2.is_error)
		n3 = rxp_codec_error_encode_ext(r2.err_code, r2.err_msg,
						&r2.ext, b3, (size_t)n);
	else
		n3 = rxp_codec_value_encode_ext(r2.value, nst, &r2.ext, b3,
						(size_t)n);
	check_canonical(b, (size_t)n, b3, n3);
	free(b3);
	rxp_arena_fini(&a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char mem[512];
	struct rxp_decoded_call c;
	struct rxp_decoded_resp r;
	struct rxp_arena a;
	uint32_t nst;
	int ret;

	if (!size)
		return 0;
	nst = (data[0] >> 1) % 4;
	rxp_arena_init(&a, mem, sizeof(mem));
	if (data[0] & 1) {
		ret = rxp_codec_resp_decode(data + 1, size - 1, nst,
					    storage_lens, &a, &r);
		if (!ret)
			roundtrip_resp(&r, nst);
	} else {
		ret = rxp_codec_call_decode(data + 1, size - 1, nst,
					    storage_lens, &a, &c);
		if (!ret)
			roundtrip_call(&c, nst);
	}
	check(ret == 0 || ret == -RXP_E_DECODE || ret == -ENOMEM,
	      "decode returns 0, -RXP_E_DECODE or -ENOMEM");
	rxp_arena_fini(&a);
	return 0;
}

#ifdef RXP_FUZZ_REPLAY
/* ------------------------------------------------------------ replay */

static int replay_file(const char *path)
{
	uint8_t *buf;
	long len;
	FILE *f = fopen(path, "rb");

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return -1;
	}
	/* exactly sized, so ASan sees overreads */
	buf = malloc(len ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
}

static int replay(const char *path, unsigned *n)
{
	char sub[4096];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int ret = 0;

	if (stat(path, &st))
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		++*n;
		return replay_file(path);
	}
	d = opendir(path);
	if (!d)
		return -1;
	while (!ret && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		ret = replay(sub, n);
	}
	closedir(d);
	return ret;
}

/* Seeds: each message kind and value kind, so mutations start deep. */
static int write_seed(const char *dir, const char *name, uint8_t sel,
		      const uint8_t *b, int64_t n)
{
	char path[4096];
	FILE *f;
	int ok;

	if (n <= 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	ok = fwrite(&sel, 1, 1, f) == 1 &&
	     fwrite(b, 1, (size_t)n, f) == (size_t)n;
	return fclose(f) || !ok ? -1 : 0;
}

static int write_seeds(const char *dir)
{
	static const int64_t sh[2] = {2, 3}, st[2] = {1, 2};
	static const struct rxp_rref_desc rd = {
		.owner = 1,
		.parent = 2,
		.rref = {.creator = 1, .local = 10},
		.fork = {.creator = 2, .local = 3}};
	static const struct rxp_prof_wire_event ev[2] = {
		{.name = "fwd", .name_len = 3, .start_ns = 5, .end_ns = 9},
		{.name = "", .name_len = 0, .start_ns = 7, .end_ns = 7}};
	const struct rxp_resp_ext prof = {.has_prof = 1,
					  .t_recv_ns = 1,
					  .t_done_ns = 20,
					  .nevents = 2,
					  .events = ev};
	struct rxp_call_meta rmeta = {.has_rref = 1,
				      .rref_id = {.creator = 1, .local = 11},
				      .fork_id = {.creator = 1, .local = 12}};
	struct rxp_value l[3], args[6], d0, rr[3], rl;
	struct rxp_dict_entry rde = {.key = "r", .key_len = 1};
	struct rxp_dict_entry de = {.key = "k", .key_len = 1};
	struct rxp_call_meta meta = {.flags = 1,
				     .has_autograd = 1,
				     .autograd_ctx_id = 5,
				     .autograd_msg_id = 6,
				     .force_grad_recording = 1,
				     .profiling = 1};
	uint8_t b[2048];
	int64_t n;
	int ret = 0;

	l[0] = rxp_v_int(-1);
	l[1] = rxp_v_str("s");
	l[2] = rxp_v_tuple(NULL, 0);
	de.value = rxp_v_list(l, 3);
	d0 = rxp_v_dict(&de, 1);
	args[0] = rxp_v_int(3);
	args[1] = rxp_v_double(0.5);
	args[2] = rxp_v_bool(true);
	args[3] = rxp_v_none();
	args[4] = rxp_v_tensor(RXP_DT_F32, 2, sh, st, 1, 4);
	args[5] = d0;

	n = rxp_codec_call_encode("m.add", args, 2, 0, NULL, b, sizeof(b));
	ret |= write_seed(dir, "call-tiny", 0, b, n);
	n = rxp_codec_call_encode("m.all", args, 6, 2, &meta, b, sizeof(b));
	ret |= write_seed(dir, "call-all", 2 << 1, b, n);
	n = rxp_codec_value_encode(&d0, 0, b, sizeof(b));
	ret |= write_seed(dir, "resp-dict", 1, b, n);
	n = rxp_codec_value_encode(&args[4], 2, b, sizeof(b));
	ret |= write_seed(dir, "resp-tensor", 1 | 2 << 1, b, n);
	n = rxp_codec_error_encode(-5, "boom", b, sizeof(b));
	ret |= write_seed(dir, "resp-error", 1, b, n);

	/* RRefs (top level, in a list, in a dict), the call's RRef record,
	 * response profiles */
	rr[0] = rxp_v_rref(NULL);
	rr[0].u.rref.desc = &rd;
	rde.value = rr[0];
	rr[1] = rxp_v_dict(&rde, 1);
	rl = rxp_v_list(rr, 2);
	rr[2] = rl;
	n = rxp_codec_call_encode("m.rref", rr, 3, 0, &rmeta, b, sizeof(b));
	ret |= write_seed(dir, "call-rref", 0, b, n);
	n = rxp_codec_value_encode_ext(&rl, 0, &prof, b, sizeof(b));
	ret |= write_seed(dir, "resp-rref-prof", 1, b, n);
	n = rxp_codec_error_encode_ext(-5, "boom", &prof, b, sizeof(b));
	ret |= write_seed(dir, "resp-error-prof", 1, b, n);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned n = 0;
	int i;

	if (argc == 3 && !strcmp(argv[1], "--write-seeds"))
		return write_seeds(argv[2]) ? 1 : 0;
	for (i = 1; i < argc; i++) {
		if (replay(argv[i], &n)) {
			fprintf(stderr, "fuzz_codec_replay: cannot read %s\n",
				argv[i]);
			return 1;
		}
	}
	printf("fuzz_codec_replay: %u inputs, no property violated\n", n);
	return n ? 0 : 1;
}
#endif
