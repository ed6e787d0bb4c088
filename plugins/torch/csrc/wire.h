// SPDX-License-Identifier: MIT
//
// How a torch::distributed::rpc::Message travels as one rxp message
// (docs/torch.md, "Wire"): the rxp payload is
//
//   envelope (32 bytes, little-endian)
//     u32 magic "RXPT" | u16 version | u16 flags | u32 torch MessageType
//     u32 ntensors | u32 nstorages | u32 torch payload length | i64 id
//   the torch payload, as is
//   tensor metadata, one entry per Message tensor (below)
//
// and each distinct tensor storage is one rxp storage, sent from the
// tensor's own memory: views of one storage travel once and arrive as
// views of one storage. A metadata entry is
//
//   u8 layout (0 strided, 1 sparse COO) | u8 dtype (c10::ScalarType)
//   u8 flags (1 requires_grad, 2 coalesced) | u8 ndim | i64 sizes[ndim]
//   strided: u32 storage index | u64 storage offset (elements)
//            | i64 strides[ndim]
//   sparse:  two strided entries follow: indices, then values
//
// Everything read is untrusted: a bad message throws WireError, which
// fails that message (never the process).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/csrc/distributed/rpc/message.h>

struct rxp_storage;
struct rxp_iov;

namespace rxp_torch
{

constexpr uint32_t kMagic = 0x54505852; // "RXPT"
constexpr uint16_t kVersion = 1;
constexpr size_t kEnvelopeSize = 32;
constexpr uint32_t kMaxDims = 64;
constexpr size_t kMaxStorages = 1024; // rxp's limit per message

struct WireError : std::runtime_error {
	using std::runtime_error::runtime_error;
};

// What the sender needs to keep alive and hand to rxp.
struct Encoded {
	std::vector<char> bytes;	    // envelope + payload + metadata
	std::vector<c10::Storage> storages; // distinct, in index order
};

// Throws WireError for tensors rxp cannot carry (CUDA, other layouts).
void encode(const torch::distributed::rpc::Message &m, Encoded &out);

// The storages of a received message, as rxp handed them over.
struct Received {
	const void *data;
	size_t len;
	uint32_t nstorages;
	rxp_storage *(*storage)(const void *src, uint32_t i);
	const void *src;
};

// A new Message whose tensors are views of torch storages over rxp's
// receive buffers (no copy); each storage holds an rxp reference.
c10::intrusive_ptr<torch::distributed::rpc::Message> decode(const Received &in);

} // namespace rxp_torch
