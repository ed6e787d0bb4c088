// SPDX-License-Identifier: MIT
//
// Codec microbenchmarks (codec/codec.h, internal API):
//   BM_codec_encode/{tiny,tensor4d,dict}  size + encode of one call
//   BM_codec_decode/{tiny,tensor4d,dict}  decode of that payload
// Bytes processed = payload bytes. --verify decodes and compares the tree
// with the original every iteration (encode) / checks it (decode).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "codec.h"
}

#include "bench_util.h"

namespace
{

using rxpbench::g_verify;

// One call to encode: name, args, storage count and lengths.
struct Case {
	std::string name;
	std::vector<rxp_value> args;
	uint32_t nstorages = 0;
	std::vector<uint64_t> storage_lens;
	// backing memory for nested values
	std::vector<rxp_value> items, inner;
	std::vector<rxp_dict_entry> dict, sub;
	int64_t shape[4] = {8, 3, 32, 32};
	int64_t strides[4] = {3 * 32 * 32, 32 * 32, 32, 1};
};

void build(Case &c, int which)
{
	c.args.clear();
	switch (which) {
	case 0: // tiny: add(1, 2)
		c.name = "bench.add";
		c.args = {rxp_v_int(1), rxp_v_int(2)};
		break;
	case 1: // a float32 NCHW tensor + an int
		c.name = "model.forward";
		c.args = {rxp_v_tensor(RXP_DT_F32, 4, c.shape, c.strides, 0, 0),
			  rxp_v_int(7)};
		c.nstorages = 1;
		c.storage_lens = {8 * 3 * 32 * 32 * 4};
		break;
	default: { // nested dict, 3 levels, 16 values
		c.name = "trainer.step";
		c.inner = {rxp_v_int(1), rxp_v_bool(true), rxp_v_double(0.5)};
		c.items = {rxp_v_double(3.25), rxp_v_str("adam"),
			   rxp_v_tuple(c.inner.data(), 3), rxp_v_none()};
		c.sub = {{"weight", 6,
			  rxp_v_tensor(RXP_DT_F32, 2, c.shape + 2, nullptr, 0,
				       0)},
			 {"bias", 4,
			  rxp_v_tensor(RXP_DT_F32, 1, c.shape + 3, nullptr, 0,
				       32 * 32 * 4)},
			 {"step", 4, rxp_v_int(1000)}};
		c.dict = {{"lr", 2, rxp_v_double(1e-3)},
			  {"opt", 3, rxp_v_list(c.items.data(), 4)},
			  {"params", 6, rxp_v_dict(c.sub.data(), 3)},
			  {"name", 4, rxp_v_str("resnet18.layer1.0.conv1")}};
		c.args = {rxp_v_dict(c.dict.data(), 4), rxp_v_int(42)};
		c.nstorages = 1;
		c.storage_lens = {(32 * 32 + 32) * 4};
		break;
	}
	}
}

const char *const case_names[] = {"tiny", "tensor4d", "dict"};

std::vector<char> encode_once(const Case &c)
{
	int64_t n = rxp_codec_call_size(c.name.c_str(), c.args.data(),
					(uint32_t)c.args.size(), c.nstorages,
					nullptr);
	if (n < 0)
		return {};
	std::vector<char> buf((size_t)n);
	if (rxp_codec_call_encode(c.name.c_str(), c.args.data(),
				  (uint32_t)c.args.size(), c.nstorages, nullptr,
				  buf.data(), buf.size()) != n)
		return {};
	return buf;
}

// Decode @buf and compare it with @c. true if equal.
bool check(const Case &c, const std::vector<char> &buf)
{
	alignas(16) char mem[8192];
	rxp_arena arena;
	rxp_decoded_call d;
	bool ok;

	rxp_arena_init(&arena, mem, sizeof(mem));
	ok = !rxp_codec_call_decode(buf.data(), buf.size(), c.nstorages,
				    c.storage_lens.data(), &arena, &d) &&
	     d.nargs == c.args.size() && c.name == d.name;
	for (uint32_t i = 0; ok && i < d.nargs; i++)
		ok = rxp_value_equal(&c.args[i], &d.args[i]);
	rxp_arena_fini(&arena);
	return ok;
}

void BM_codec_encode(benchmark::State &st, int which)
{
	Case c;
	build(c, which);
	std::vector<char> buf = encode_once(c);
	if (buf.empty() || !check(c, buf)) {
		st.SkipWithError("encode/decode round trip failed");
		return;
	}
	for (auto _ : st) {
		int64_t n = rxp_codec_call_size(c.name.c_str(), c.args.data(),
						(uint32_t)c.args.size(),
						c.nstorages, nullptr);
		int64_t w = rxp_codec_call_encode(
			c.name.c_str(), c.args.data(), (uint32_t)c.args.size(),
			c.nstorages, nullptr, buf.data(), buf.size());
		benchmark::DoNotOptimize(w);
		if (w != n || (g_verify && !check(c, buf))) {
			st.SkipWithError("encode failed");
			break;
		}
		benchmark::ClobberMemory();
	}
	st.SetBytesProcessed((int64_t)st.iterations() * (int64_t)buf.size());
	st.counters["payload_bytes"] = (double)buf.size();
}

void BM_codec_decode(benchmark::State &st, int which)
{
	Case c;
	build(c, which);
	std::vector<char> buf = encode_once(c);
	if (buf.empty() || !check(c, buf)) {
		st.SkipWithError("encode/decode round trip failed");
		return;
	}
	alignas(16) char mem[8192];
	for (auto _ : st) {
		rxp_arena arena;
		rxp_decoded_call d;

		rxp_arena_init(&arena, mem, sizeof(mem));
		int r = rxp_codec_call_decode(
			buf.data(), buf.size(), c.nstorages,
			c.storage_lens.data(), &arena, &d);
		benchmark::DoNotOptimize(d);
		bool ok = !r;
		for (uint32_t i = 0; ok && g_verify && i < d.nargs; i++)
			ok = rxp_value_equal(&c.args[i], &d.args[i]);
		rxp_arena_fini(&arena);
		if (!ok) {
			st.SkipWithError("decode failed");
			break;
		}
	}
	st.SetBytesProcessed((int64_t)st.iterations() * (int64_t)buf.size());
	st.counters["payload_bytes"] = (double)buf.size();
}

int register_codec()
{
	for (int i = 0; i < 3; i++) {
		benchmark::RegisterBenchmark(
			(std::string("BM_codec_encode/") + case_names[i])
				.c_str(),
			BM_codec_encode, i);
		benchmark::RegisterBenchmark(
			(std::string("BM_codec_decode/") + case_names[i])
				.c_str(),
			BM_codec_decode, i);
	}
	return 0;
}

const int registered = register_codec();

} // namespace
