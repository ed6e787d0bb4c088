// SPDX-License-Identifier: MIT
// Message <-> rxp message: see wire.h for the format.
#include "wire.h"

#include <cstring>
#include <sstream>
#include <unordered_map>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>

#include <rxp/rxp.h>

namespace rxp_torch
{

using torch::distributed::rpc::Message;
using torch::distributed::rpc::MessageType;

namespace
{

// ------------------------------------------------------------ writing

struct Writer {
	std::vector<char> &b;

	void u8(uint8_t v)
	{
		b.push_back(static_cast<char>(v));
	}
	void le(uint64_t v, int n)
	{
		for (int i = 0; i < n; i++)
			b.push_back(static_cast<char>(v >> (8 * i)));
	}
	void u16(uint16_t v)
	{
		le(v, 2);
	}
	void u32(uint32_t v)
	{
		le(v, 4);
	}
	void u64(uint64_t v)
	{
		le(v, 8);
	}
	void i64(int64_t v)
	{
		le(static_cast<uint64_t>(v), 8);
	}
};

struct Encoder {
	Writer w;
	Encoded &out;
	std::unordered_map<const c10::StorageImpl *, uint32_t> index;

	uint32_t storage_index(const at::Tensor &t)
	{
		const c10::Storage &s = t.storage();
		auto it = index.find(s.unsafeGetStorageImpl());

		if (it != index.end())
			return it->second;
		if (out.storages.size() >= kMaxStorages)
			throw WireError("RXP: a message may carry at most " +
					std::to_string(kMaxStorages) +
					" distinct tensor storages");
		uint32_t i = static_cast<uint32_t>(out.storages.size());
		index.emplace(s.unsafeGetStorageImpl(), i);
		out.storages.push_back(s);
		return i;
	}

	void strided(const at::Tensor &t, uint8_t flags)
	{
		uint32_t nd = static_cast<uint32_t>(t.dim());

		w.u8(0);
		w.u8(static_cast<uint8_t>(t.scalar_type()));
		w.u8(flags);
		w.u8(static_cast<uint8_t>(nd));
		for (int64_t s : t.sizes())
			w.i64(s);
		w.u32(storage_index(t));
		w.u64(static_cast<uint64_t>(t.storage_offset()));
		for (int64_t s : t.strides())
			w.i64(s);
	}

	void tensor(const at::Tensor &t)
	{
		if (!t.device().is_cpu())
			throw WireError(
				"RXP cannot send a tensor on device " +
				t.device().str() +
				" yet (CUDA tensors and device_maps are not "
				"supported): move it to the CPU first");
		if (t.dim() > static_cast<int64_t>(kMaxDims))
			throw WireError("RXP: tensor has more than 64 dims");
		if (t.is_quantized())
			throw WireError(
				"RXP cannot send quantized tensors yet");
		uint8_t flags = t.requires_grad() ? 1 : 0;

		if (t.layout() == c10::kStrided) {
			strided(t, flags);
		} else if (t.layout() == c10::kSparse) {
			if (t.is_coalesced())
				flags |= 2;
			w.u8(1);
			w.u8(static_cast<uint8_t>(t.scalar_type()));
			w.u8(flags);
			w.u8(static_cast<uint8_t>(t.dim()));
			for (int64_t s : t.sizes())
				w.i64(s);
			strided(t._indices(), 0);
			strided(t._values(), 0);
		} else {
			std::ostringstream os;
			os << "RXP cannot send a tensor of layout "
			   << t.layout() << " yet";
			throw WireError(os.str());
		}
	}
};

// ------------------------------------------------------------ reading

struct Reader {
	const uint8_t *p, *end;

	void need(size_t n) const
	{
		if (static_cast<size_t>(end - p) < n)
			throw WireError("RXP: truncated tensor metadata");
	}
	uint64_t le(int n)
	{
		uint64_t v = 0;

		need(static_cast<size_t>(n));
		for (int i = 0; i < n; i++)
			v |= static_cast<uint64_t>(p[i]) << (8 * i);
		p += n;
		return v;
	}
	uint8_t u8()
	{
		return static_cast<uint8_t>(le(1));
	}
	uint32_t u32()
	{
		return static_cast<uint32_t>(le(4));
	}
	uint64_t u64()
	{
		return le(8);
	}
	int64_t i64()
	{
		return static_cast<int64_t>(le(8));
	}
};

void release_storage(void *ctx)
{
	rxp_storage_release(static_cast<rxp_storage *>(ctx));
}

struct Decoder {
	Reader r;
	const Received &in;
	std::vector<c10::optional<c10::Storage>> storages;

	const c10::Storage &storage(uint32_t i)
	{
		if (i >= in.nstorages)
			throw WireError("RXP: tensor names storage " +
					std::to_string(i) + " of " +
					std::to_string(in.nstorages));
		if (!storages[i]) {
			rxp_storage *s = in.storage(in.src, i);

			if (!s)
				throw WireError("RXP: storage missing");
			rxp_storage_retain(s);
			size_t n = rxp_storage_size(s);
			void *d = rxp_storage_data(s);
			c10::DataPtr ptr(d, s, release_storage,
					 c10::Device(c10::kCPU));
			storages[i] =
				c10::Storage(c10::Storage::use_byte_size_t(), n,
					     std::move(ptr), nullptr, false);
		}
		return *storages[i];
	}

	static c10::ScalarType dtype(uint8_t d)
	{
		auto st = static_cast<c10::ScalarType>(d);

		if (d >= static_cast<uint8_t>(c10::ScalarType::NumOptions) ||
		    st == c10::ScalarType::Undefined || c10::isQIntType(st))
			throw WireError("RXP: unknown dtype " +
					std::to_string(d));
		return st;
	}

	std::vector<int64_t> dims(uint32_t nd)
	{
		std::vector<int64_t> v(nd);

		for (auto &x : v)
			x = r.i64();
		return v;
	}

	// sizes must be >= 0 with a product that fits in int64 (torch's
	// numel), whatever the strides say
	static void check_sizes(const std::vector<int64_t> &sizes)
	{
		int64_t n = 1;

		for (int64_t s : sizes)
			if (s < 0 || __builtin_mul_overflow(n, s, &n))
				throw WireError("RXP: tensor sizes overflow");
	}

	at::Tensor strided(c10::ScalarType st, uint8_t flags, uint32_t nd,
			   std::vector<int64_t> sizes)
	{
		uint32_t si = r.u32();
		uint64_t off = r.u64();
		std::vector<int64_t> strides = dims(nd);
		check_sizes(sizes);
		const c10::Storage &s = storage(si);
		uint64_t esize = c10::elementSize(st);
		// the last byte any element can touch must be in the storage
		uint64_t last = off;
		bool empty = false;

		for (uint32_t k = 0; k < nd; k++) {
			uint64_t span;

			if (sizes[k] < 0 || strides[k] < 0)
				throw WireError("RXP: negative size or stride");
			if (sizes[k] == 0)
				empty = true;
			else if (__builtin_mul_overflow(
					 static_cast<uint64_t>(sizes[k] - 1),
					 static_cast<uint64_t>(strides[k]),
					 &span) ||
				 __builtin_add_overflow(last, span, &last))
				throw WireError("RXP: tensor extent overflows");
		}
		if (!empty) {
			uint64_t bytes;

			if (__builtin_add_overflow(last, 1, &last) ||
			    __builtin_mul_overflow(last, esize, &bytes) ||
			    bytes > s.nbytes())
				throw WireError(
					"RXP: tensor reaches past its storage");
		} else if (off > s.nbytes() / esize) {
			throw WireError("RXP: tensor offset past its storage");
		}
		at::Tensor t = at::empty({0}, at::TensorOptions().dtype(st));
		t.set_(s, static_cast<int64_t>(off), sizes, strides);
		if (flags & 1) {
			if (!c10::isFloatingType(st) && !c10::isComplexType(st))
				throw WireError("RXP: requires_grad on an "
						"integer tensor");
			t.set_requires_grad(true);
		}
		return t;
	}

	at::Tensor tensor()
	{
		uint8_t layout = r.u8();
		c10::ScalarType st = dtype(r.u8());
		uint8_t flags = r.u8();
		uint32_t nd = r.u8();

		if (nd > kMaxDims || layout > 1)
			throw WireError("RXP: bad tensor layout or rank");
		std::vector<int64_t> sizes = dims(nd);
		check_sizes(sizes);
		if (layout == 0)
			return strided(st, flags, nd, std::move(sizes));

		// sparse COO: indices then values, each a strided entry
		at::Tensor parts[2];
		for (auto &part : parts) {
			if (r.u8() != 0)
				throw WireError("RXP: bad sparse part");
			c10::ScalarType pst = dtype(r.u8());
			uint8_t pf = r.u8();
			uint32_t pnd = r.u8();

			if (pnd > kMaxDims)
				throw WireError("RXP: bad sparse part rank");
			std::vector<int64_t> ps = dims(pnd);
			part = strided(pst, pf & ~1u, pnd, std::move(ps));
		}
		if (parts[0].scalar_type() != c10::kLong ||
		    parts[0].dim() != 2 || parts[1].scalar_type() != st ||
		    parts[1].dim() < 1 ||
		    parts[0].size(1) != parts[1].size(0) ||
		    parts[0].size(0) + parts[1].dim() - 1 !=
			    static_cast<int64_t>(nd))
			throw WireError("RXP: inconsistent sparse tensor");
		at::Tensor t = at::_sparse_coo_tensor_unsafe(
			parts[0], parts[1], sizes,
			at::TensorOptions().dtype(st).layout(c10::kSparse));
		t._coalesced_((flags & 2) != 0);
		if (flags & 1)
			t.set_requires_grad(true);
		return t;
	}
};

uint64_t rd(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= static_cast<uint64_t>(p[i]) << (8 * i);
	return v;
}

} // namespace

void encode(const Message &m, Encoded &out)
{
	Encoder e{Writer{out.bytes}, out, {}};
	const std::vector<char> &pl = m.payload();

	if (pl.size() > UINT32_MAX)
		throw WireError("RXP: payload too big");
	out.bytes.reserve(kEnvelopeSize + pl.size() + 64 * m.tensors().size());
	e.w.u32(kMagic);
	e.w.u16(kVersion);
	e.w.u16(0);
	e.w.u32(static_cast<uint32_t>(m.type()));
	e.w.u32(static_cast<uint32_t>(m.tensors().size()));
	e.w.u32(0); // nstorages, patched below
	e.w.u32(static_cast<uint32_t>(pl.size()));
	e.w.i64(m.id());
	out.bytes.insert(out.bytes.end(), pl.begin(), pl.end());
	for (const at::Tensor &t : m.tensors())
		e.tensor(t);
	uint32_t ns = static_cast<uint32_t>(out.storages.size());
	for (int i = 0; i < 4; i++)
		out.bytes[16 + i] = static_cast<char>(ns >> (8 * i));
}

c10::intrusive_ptr<Message> decode(const Received &in)
{
	const auto *p = static_cast<const uint8_t *>(in.data);

	if (in.len < kEnvelopeSize || rd(p, 4) != kMagic)
		throw WireError("RXP: not a torch message");
	if (rd(p + 4, 2) != kVersion)
		throw WireError("RXP: torch message version " +
				std::to_string(rd(p + 4, 2)) + ", this is " +
				std::to_string(kVersion));
	uint32_t type = static_cast<uint32_t>(rd(p + 8, 4));
	uint32_t nt = static_cast<uint32_t>(rd(p + 12, 4));
	uint32_t ns = static_cast<uint32_t>(rd(p + 16, 4));
	uint64_t plen = rd(p + 20, 4);
	int64_t id = static_cast<int64_t>(rd(p + 24, 8));

	if (ns != in.nstorages)
		throw WireError("RXP: message says " + std::to_string(ns) +
				" storages, " + std::to_string(in.nstorages) +
				" arrived");
	if (plen > in.len - kEnvelopeSize)
		throw WireError("RXP: payload length past the message");
	// each tensor needs at least its 4-byte head
	if (nt > (in.len - kEnvelopeSize - plen) / 4)
		throw WireError("RXP: more tensors than metadata");
	if (!(type & (torch::distributed::rpc::REQUEST_TYPE |
		      torch::distributed::rpc::RESPONSE_TYPE)) ||
	    type > 0xfff)
		throw WireError("RXP: bad torch message type " +
				std::to_string(type));
	const char *pl = reinterpret_cast<const char *>(p + kEnvelopeSize);
	std::vector<char> payload(pl, pl + plen);
	Decoder d{Reader{p + kEnvelopeSize + plen, p + in.len}, in, {}};
	d.storages.resize(ns);
	std::vector<at::Tensor> tensors;
	tensors.reserve(nt);
	try {
		for (uint32_t i = 0; i < nt; i++)
			tensors.push_back(d.tensor());
	} catch (const c10::Error &e) {
		// torch refused what the checks above let through: still the
		// message's fault, not the process's
		throw WireError(std::string("RXP: bad tensor: ") +
				e.what_without_backtrace());
	}
	if (d.r.p != d.r.end)
		throw WireError("RXP: trailing bytes after tensor metadata");
	return c10::make_intrusive<Message>(std::move(payload),
					    std::move(tensors),
					    static_cast<MessageType>(type), id);
}

} // namespace rxp_torch
