// SPDX-License-Identifier: MIT
// rxp_torch._C: the RxpAgent class, derived from torch's bound RpcAgent so
// that torch.distributed.rpc can make it the current agent. Importing it
// starts no thread; the agent's threads start in its constructor.
#include <torch/csrc/utils/pybind.h>

#include <rxp/rxp.h>

#include "agent.h"

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
