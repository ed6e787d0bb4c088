// SPDX-License-Identifier: MIT
// rxp_torch._C: the RxpAgent class, derived from torch's bound RpcAgent so
// that torch.distributed.rpc can make it the current agent. Importing it
// starts no thread; the agent's threads start in its constructor.
#include <cstring>

#include <torch/csrc/utils/pybind.h>

#include <rxp/rxp.h>

#include "agent.h"
#include "wire.h"

namespace
{

using torch::distributed::rpc::Message;
using torch::distributed::rpc::MessageType;

// Test hooks for the wire format (tests/test_wire.py): what encode()
// makes of a Message, and what decode() makes of any bytes.
py::tuple wire_encode(int type, int64_t id, const py::bytes &payload,
		      std::vector<at::Tensor> tensors)
{
	std::string pl = payload;
	auto m = c10::make_intrusive<Message>(
		std::vector<char>(pl.begin(), pl.end()), std::move(tensors),
		static_cast<MessageType>(type), id);
	rxp_torch::Encoded enc;

	rxp_torch::encode(*m, enc);
	py::list st;
	for (const c10::Storage &s : enc.storages)
		st.append(py::bytes(static_cast<const char *>(s.data()),
				    s.nbytes()));
	return py::make_tuple(py::bytes(enc.bytes.data(), enc.bytes.size()),
			      st);
}

rxp_storage *vec_storage(const void *src, uint32_t i)
{
	return (*static_cast<const std::vector<rxp_storage *> *>(src))[i];
}

py::tuple wire_decode(const py::bytes &bytes, const py::list &storages)
{
	std::string b = bytes;
	std::vector<rxp_storage *> st;

	for (const auto &o : storages) {
		std::string d = o.cast<py::bytes>();
		rxp_storage *s = rxp_storage_alloc(d.size());

		if (!s)
			throw std::bad_alloc();
		if (!d.empty())
			std::memcpy(rxp_storage_data(s), d.data(), d.size());
		st.push_back(s);
	}
	struct Release {
		std::vector<rxp_storage *> &v;
		~Release()
		{
			for (rxp_storage *s : v) // the tensors hold their own
				rxp_storage_release(s);
		}
	} release{st};
	rxp_torch::Received in{b.data(), b.size(),
			       static_cast<uint32_t>(st.size()), vec_storage,
			       &st};
	auto m = rxp_torch::decode(in);
	const auto &pl = m->payload();
	return py::make_tuple(static_cast<int>(m->type()), m->id(),
			      py::bytes(pl.data(), pl.size()), m->tensors());
}

} // namespace

namespace py = pybind11;

PYBIND11_MODULE(_C, m)
{
	// torch's RpcAgent (and c10d's Store) must be bound first
	py::module_::import("torch.distributed.rpc");

	using rxp_torch::Options;
	using rxp_torch::RxpAgent;
	using torch::distributed::rpc::RpcAgent;

	m.doc() = "rxp's torch.distributed.rpc agent (see rxp_torch)";
	m.def("rxp_version", &rxp_version);
	m.def("_wire_encode", &wire_encode);
	m.def("_wire_decode", &wire_decode);
	py::register_exception<rxp_torch::WireError>(m, "WireError",
						     PyExc_ValueError);

	py::class_<RxpAgent, RpcAgent, std::shared_ptr<RxpAgent>>(m, "RxpAgent")
		.def(py::init([](const c10::intrusive_ptr<::c10d::Store> &store,
				 std::string name, int rank, int world_size,
				 float rpc_timeout, int num_worker_threads,
				 std::string transport, std::string bind_addr,
				 float init_timeout, int poll_us) {
			     Options o;
			     o.rpc_timeout_s = rpc_timeout;
			     o.num_worker_threads = num_worker_threads;
			     o.transport = std::move(transport);
			     o.bind_addr = std::move(bind_addr);
			     o.init_timeout_s = init_timeout;
			     o.poll_us = poll_us;
			     return std::make_shared<RxpAgent>(
				     store, std::move(name), rank, world_size,
				     o);
		     }),
		     py::arg("store"), py::arg("name"), py::arg("rank"),
		     py::arg("world_size"), py::arg("rpc_timeout"),
		     py::arg("num_worker_threads"), py::arg("transport"),
		     py::arg("bind_addr"), py::arg("init_timeout"),
		     py::arg("poll_us"),
		     py::call_guard<py::gil_scoped_release>())
		.def("join", &RxpAgent::join, py::arg("shutdown") = false,
		     py::arg("timeout") = 0,
		     py::call_guard<py::gil_scoped_release>())
		.def("barrier", &RxpAgent::barrier, py::arg("timeout"),
		     py::call_guard<py::gil_scoped_release>())
		.def_property_readonly("transport", &RxpAgent::transportName)
		.def("get_worker_info",
		     (const torch::distributed::rpc::WorkerInfo &(RpcAgent::*)()
			      const) &
			     RpcAgent::getWorkerInfo,
		     py::call_guard<py::gil_scoped_release>())
		.def("get_worker_info",
		     (const torch::distributed::rpc::WorkerInfo &(
			     RxpAgent::*)(const std::string &) const) &
			     RxpAgent::getWorkerInfo,
		     py::call_guard<py::gil_scoped_release>())
		.def("get_worker_info",
		     (const torch::distributed::rpc::WorkerInfo &(
			     RxpAgent::*)(torch::distributed::rpc::worker_id_t)
			      const) &
			     RxpAgent::getWorkerInfo,
		     py::call_guard<py::gil_scoped_release>())
		.def("get_worker_infos", &RxpAgent::getWorkerInfos,
		     py::call_guard<py::gil_scoped_release>());
}
