// SPDX-License-Identifier: MIT
//
// RxpAgent: torch.distributed.rpc's RpcAgent on rxp's message-level API
// (docs/torch.md). Threads: rxp's worker threads run the request callback
// and complete futures; send() may be called from any thread; shutdown()
// must be called without the GIL (torch's binding releases it).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/rpc/rpc_agent.h>

struct rxp_agent;
struct rxp_request;

namespace rxp_torch
{

struct Options {
	float rpc_timeout_s = 60;
	int num_worker_threads = 16;
	std::string transport = "auto"; // "auto" "tcp" "verbs"
	std::string bind_addr;		// "" = rxp's choice
	float init_timeout_s = 0;	// 0 = rpc_timeout_s
	int poll_us = -1;		// -1 = $RXP_POLL_US
};

// Counters shared with callbacks that may outlive the agent object.
struct Shared {
	std::atomic<int64_t> gil_wait_us{0}, gil_waits{0};
	std::atomic<int64_t> server_active{0};
};

class RxpAgent : public torch::distributed::rpc::RpcAgent
{
      public:
	RxpAgent(const c10::intrusive_ptr<::c10d::Store> &store,
		 std::string name, int rank, int world_size,
		 const Options &opts);
	~RxpAgent() override;

	c10::intrusive_ptr<torch::distributed::rpc::JitFuture>
	send(const torch::distributed::rpc::WorkerInfo &to,
	     c10::intrusive_ptr<torch::distributed::rpc::Message> message,
	     const float rpcTimeoutSeconds =
		     torch::distributed::rpc::kUnsetRpcTimeout,
	     const torch::distributed::rpc::DeviceMap &deviceMap = {}) override;

	using RpcAgent::getWorkerInfo;
	const torch::distributed::rpc::WorkerInfo &
	getWorkerInfo(const std::string &workerName) const override;
	const torch::distributed::rpc::WorkerInfo &
	getWorkerInfo(torch::distributed::rpc::worker_id_t id) const override;
	std::vector<torch::distributed::rpc::WorkerInfo>
	getWorkerInfos() const override;

	void join(bool shutdown = false, float timeout = 0) override;
	void sync() override
	{
	}
	void startImpl() override;
	void shutdownImpl() override;
	std::unordered_map<std::string, std::string> getMetrics() override;
	std::unordered_map<std::string, std::string> getDebugInfo() override;

	// A barrier over the store with no other condition (init_rpc's end).
	void barrier(float timeout_s);
	// The transport rxp chose ("tcp", "verbs").
	std::string transportName() const;

	// rxp's handler for incoming messages (a worker thread)
	void handleRequest(rxp_request *r);

      private:
	void addGilWaitTime(std::chrono::microseconds gilWaitTime) override;

	struct StoreCtx;
	std::unique_ptr<StoreCtx> store_;
	rxp_agent *rxp_ = nullptr;
	std::mutex shutdown_mu_;
	// Requests can arrive as soon as rendezvous is done, before torch has
	// made this the current agent (RRefContext and the request callback
	// need it): they wait for startImpl() (or shutdown) on rxp's worker
	// thread.
	std::mutex start_mu_;
	std::condition_variable start_cv_;
	bool started_ = false, stopping_ = false;
	Options opts_;
	std::vector<torch::distributed::rpc::WorkerInfo> workers_;
	std::unordered_map<std::string, size_t> by_name_;
	std::shared_ptr<Shared> shared_;
	std::atomic<int64_t> next_id_{0};
};

} // namespace rxp_torch
