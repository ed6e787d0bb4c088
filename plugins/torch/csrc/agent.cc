// SPDX-License-Identifier: MIT
// RxpAgent: see agent.h and docs/torch.md.
#include "agent.h"

#include <cerrno>
#include <cmath>

#include <torch/csrc/distributed/rpc/request_callback_impl.h>
#include <torch/csrc/distributed/rpc/utils.h>

#include <rxp/errno.h>
#include <rxp/rxp.h>

#include "wire.h"

namespace rxp_torch
{

using torch::distributed::rpc::JitFuture;
using torch::distributed::rpc::Message;
using torch::distributed::rpc::MessageType;
using torch::distributed::rpc::RPCErrorType;
using torch::distributed::rpc::WorkerInfo;

namespace
{

constexpr int kMsgType = RXP_MSG_USER; // every torch message

std::string rxp_error(int err)
{
	return std::string(rxp_strerror(err));
}

int64_t seconds_to_ms(float s)
{
	if (s <= 0)
		return 0;
	// nearest ms (0.15 s is 150 ms, not 151), at least 1: 0 means none
	double ms = std::round(static_cast<double>(s) * 1000.0);
	if (ms < 1)
		return 1;
	return ms > 1e15 ? int64_t(1e15) : static_cast<int64_t>(ms);
}

// torch's seconds (<= 0: no limit) as an rxp timeout_ms
int64_t rxp_timeout(float s)
{
	return s > 0 ? seconds_to_ms(s) : RXP_TIMEOUT_NEVER;
}

std::exception_ptr error_of(const std::string &text)
{
	return std::make_exception_ptr(std::runtime_error(text));
}

} // namespace

// ------------------------------------------------------------- the store

// rxp's rendezvous ops over the c10d Store init_rpc hands the backend.
// Called from the thread in rxp_agent_create and from join(): never with
// the GIL (the bindings release it), and the Store is thread-safe.
struct RxpAgent::StoreCtx {
	c10::intrusive_ptr<::c10d::Store> store;
	rxp_store_ops ops{};

	static StoreCtx *of(void *ctx)
	{
		return static_cast<StoreCtx *>(ctx);
	}

	static int set(void *ctx, const char *key, const void *val, size_t len)
	{
		try {
			const auto *p = static_cast<const uint8_t *>(val);
			of(ctx)->store->set(key,
					    std::vector<uint8_t>(p, p + len));
			return 0;
		} catch (const std::exception &e) {
			TORCH_WARN("RXP: store set(", key, "): ", e.what());
			return -EIO;
		}
	}

	static int get(void *ctx, const char *key, void *buf, size_t cap,
		       size_t *len, int64_t timeout_ms)
	{
		auto t0 = std::chrono::steady_clock::now();
		try {
			of(ctx)->store->wait(
				{key}, std::chrono::milliseconds(timeout_ms));
		} catch (const std::exception &e) {
			auto dt = std::chrono::steady_clock::now() - t0;
			if (dt >= std::chrono::milliseconds(timeout_ms))
				return -ETIMEDOUT;
			TORCH_WARN("RXP: store wait(", key, "): ", e.what());
			return -EIO;
		}
		try {
			std::vector<uint8_t> v = of(ctx)->store->get(key);
			*len = v.size();
			std::memcpy(buf, v.data(), std::min(cap, v.size()));
			return 0;
		} catch (const std::exception &e) {
			TORCH_WARN("RXP: store get(", key, "): ", e.what());
			return -EIO;
		}
	}

	static int add(void *ctx, const char *key, int64_t delta, int64_t *out)
	{
		try {
			*out = of(ctx)->store->add(key, delta);
			return 0;
		} catch (const std::exception &e) {
			TORCH_WARN("RXP: store add(", key, "): ", e.what());
			return -EIO;
		}
	}
};

// ------------------------------------------------------------- create

static void on_request(rxp_request *r, void *user)
{
	static_cast<RxpAgent *>(user)->handleRequest(r);
}

RxpAgent::RxpAgent(const c10::intrusive_ptr<::c10d::Store> &store,
		   std::string name, int rank, int world_size,
		   const Options &opts)
    : RpcAgent(WorkerInfo(name, static_cast<int64_t>(rank)),
	       std::make_unique<torch::distributed::rpc::RequestCallbackImpl>(),
	       std::chrono::milliseconds(seconds_to_ms(opts.rpc_timeout_s))),
      store_(std::make_unique<StoreCtx>()), opts_(opts),
      shared_(std::make_shared<Shared>())
{
	TORCH_CHECK(world_size >= 1 && world_size <= 32767,
		    "RXP: world_size must be 1..32767, not ", world_size);
	TORCH_CHECK(opts.num_worker_threads >= 1 &&
			    opts.num_worker_threads <= 1024,
		    "RXP: num_worker_threads must be 1..1024, not ",
		    opts.num_worker_threads);
	TORCH_CHECK(opts.transport == "auto" || opts.transport == "tcp" ||
			    opts.transport == "verbs" ||
			    opts.transport == "shm",
		    "RXP: transport must be \"auto\", \"tcp\", \"verbs\" or "
		    "\"shm\", not \"",
		    opts.transport, "\"");
	store_->store = store;
	store_->ops.size = sizeof(store_->ops);
	store_->ops.set = StoreCtx::set;
	store_->ops.get = StoreCtx::get;
	store_->ops.add = StoreCtx::add;

	rxp_agent_attr at;
	rxp_agent_attr_init(&at);
	at.name = workerInfo_.name_.c_str();
	at.rank = rank;
	at.world_size = world_size;
	at.transport = opts.transport.c_str();
	if (!opts.bind_addr.empty())
		at.bind_addr = opts.bind_addr.c_str();
	at.rpc_timeout_ms = rxp_timeout(opts.rpc_timeout_s);
	// rendezvous: its own timeout, else the rpc one, else rxp's default
	at.init_timeout_ms =
		opts.init_timeout_s > 0	 ? seconds_to_ms(opts.init_timeout_s)
		: opts.rpc_timeout_s > 0 ? seconds_to_ms(opts.rpc_timeout_s)
					 : RXP_TIMEOUT_DEFAULT;
	at.num_worker_threads = opts.num_worker_threads;
	at.poll_us = opts.poll_us;
	at.handler = on_request;
	at.handler_user = this;
	at.store = &store_->ops;
	at.store_ctx = store_.get();
	int ret = rxp_agent_create(&at, &rxp_);
	TORCH_CHECK(ret == 0, "RXP: worker '", name, "' (rank ", rank, " of ",
		    world_size, ") could not join: ", rxp_error(ret),
		    " (rxp's log above says why)");

	int n = rxp_agent_worker_count(rxp_);
	workers_.reserve(static_cast<size_t>(n));
	for (int i = 0; i < n; i++) {
		rxp_worker_info wi;

		ret = rxp_agent_worker_by_id(rxp_, i, &wi);
		if (ret) {
			rxp_agent_shutdown(rxp_);
			rxp_ = nullptr;
			TORCH_CHECK(false, "RXP: no worker ", i, ": ",
				    rxp_error(ret));
		}
		workers_.emplace_back(wi.name, static_cast<int64_t>(wi.id));
		by_name_.emplace(wi.name, static_cast<size_t>(i));
	}
}

RxpAgent::~RxpAgent()
{
	// The base destructor would call our shutdownImpl() when we are gone.
	if (rpcAgentRunning_.load())
		shutdown();
	shutdownImpl();
}

void RxpAgent::startImpl()
{
	std::lock_guard<std::mutex> g(start_mu_);

	started_ = true;
	start_cv_.notify_all();
}

void RxpAgent::shutdownImpl()
{
	{
		std::lock_guard<std::mutex> g(start_mu_);

		stopping_ = true;
		start_cv_.notify_all();
	}
	std::lock_guard<std::mutex> g(shutdown_mu_);

	if (rxp_) {
		// fails what is pending (-ECANCELED), joins rxp's threads
		rxp_agent_shutdown(rxp_);
		rxp_ = nullptr;
	}
}

// ------------------------------------------------------------- sending

namespace
{

// What a send keeps alive until rxp has completed its future: rxp reads
// the payload and the storages in place (no copy).
struct SendCtx {
	c10::intrusive_ptr<Message> msg;
	c10::intrusive_ptr<JitFuture> fut;
	Encoded enc;
	std::vector<rxp_iov> iov;
	std::string to;
	int64_t timeout_ms;
};

rxp_storage *future_storage(const void *src, uint32_t i)
{
	return rxp_future_storage(
		static_cast<const rxp_future *>(const_cast<void *>(src)), i);
}

void complete_send(rxp_future *f, void *user)
{
	std::unique_ptr<SendCtx> ctx(static_cast<SendCtx *>(user));
	int st = rxp_future_status(f);

	if (st == -ETIMEDOUT) {
		std::string text = torch::distributed::rpc::kRpcTimeoutErrorStr;
		size_t at = text.find("{}");

		if (at != std::string::npos)
			text.replace(at, 2, std::to_string(ctx->timeout_ms));
		ctx->fut->setError(
			error_of(torch::distributed::rpc::makeRPCError(
				text, RPCErrorType::TIMEOUT)));
	} else if (st) {
		const char *why = rxp_future_error(f);
		ctx->fut->setError(
			error_of("RXP: RPC to '" + ctx->to +
				 "' failed: " + rxp_error(st) +
				 (why && *why ? std::string(": ") + why : "")));
	} else {
		try {
			const void *data;
			size_t len;

			rxp_future_payload(f, &data, &len);
			Received in{data, len, rxp_future_nstorages(f),
				    future_storage, f};
			c10::intrusive_ptr<Message> resp = decode(in);
			if (resp->type() == MessageType::EXCEPTION) {
				const auto &p = resp->payload();
				ctx->fut->setError(error_of(
					std::string(p.begin(), p.end())));
			} else {
				auto storages = resp->getStorages();
				ctx->fut->markCompleted(c10::IValue(resp),
							std::move(storages));
			}
		} catch (const std::exception &e) {
			ctx->fut->setError(error_of(
				std::string("RXP: bad response from '") +
				ctx->to + "': " + e.what()));
		}
	}
	rxp_future_release(f);
}

} // namespace

c10::intrusive_ptr<JitFuture>
RxpAgent::send(const WorkerInfo &to, c10::intrusive_ptr<Message> message,
	       const float rpcTimeoutSeconds,
	       const torch::distributed::rpc::DeviceMap &deviceMap)
{
	TORCH_CHECK(deviceMap.empty(),
		    "RXP does not support device_maps yet (sending to '",
		    to.name_, "')");
	TORCH_CHECK(message->isRequest(),
		    "RXP: send() carries requests only, not message type ",
		    static_cast<int>(message->type()));
	TORCH_CHECK(rxp_, "RXP: the agent of '", workerInfo_.name_,
		    "' is shut down");
	TORCH_CHECK(to.id_ >= 0 &&
			    static_cast<size_t>(to.id_) < workers_.size(),
		    "RXP: could not find destination worker id ", to.id_);

	auto ctx = std::make_unique<SendCtx>();
	ctx->fut = c10::make_intrusive<JitFuture>(at::AnyClassType::get());
	ctx->to = to.name_;
	// the agent's timeout as torch holds it now (setRpcTimeout changes
	// it), or the call's; 0 is no limit in torch
	if (rpcTimeoutSeconds == torch::distributed::rpc::kUnsetRpcTimeout) {
		int64_t ms = getRpcTimeout().count();
		ctx->timeout_ms = ms > 0 ? ms : RXP_TIMEOUT_NEVER;
	} else {
		ctx->timeout_ms = rxp_timeout(rpcTimeoutSeconds);
	}
	message->setId(next_id_.fetch_add(1, std::memory_order_relaxed));
	encode(*message, ctx->enc); // throws WireError: the caller sees it
	ctx->iov.reserve(ctx->enc.storages.size());
	for (const c10::Storage &s : ctx->enc.storages)
		ctx->iov.push_back(rxp_iov{s.data(), s.nbytes()});
	ctx->msg = std::move(message);

	rxp_future *f = nullptr;
	int ret = rxp_msg_send(
		rxp_, static_cast<int>(to.id_), kMsgType, ctx->enc.bytes.data(),
		ctx->enc.bytes.size(), ctx->iov.data(),
		static_cast<uint32_t>(ctx->iov.size()), ctx->timeout_ms, &f);
	if (ret) {
		ctx->fut->setError(error_of("RXP: cannot send to '" + to.name_ +
					    "': " + rxp_error(ret)));
		return ctx->fut;
	}
	auto fut = ctx->fut;
	SendCtx *raw = ctx.release();
	ret = rxp_future_then(f, complete_send, raw);
	if (ret) { // cannot happen with one callback, but never lose it
		rxp_future_wait(f);
		complete_send(f, raw);
	}
	return fut;
}

// ------------------------------------------------------------- serving

namespace
{

rxp_storage *request_storage(const void *src, uint32_t i)
{
	return rxp_request_storage(static_cast<const rxp_request *>(src), i);
}

void release_wrapped(void *, void *user)
{
	delete static_cast<c10::Storage *>(user);
}

// Send @resp for @r: payload copied by rxp, storages wrapped (no copy)
// and kept alive by rxp until sent.
void respond(rxp_request *r, const Message &resp)
{
	Encoded enc;

	try {
		encode(resp, enc);
	} catch (const std::exception &e) {
		auto ex = torch::distributed::rpc::createExceptionResponse(
			std::string("RXP: cannot send the response: ") +
				e.what(),
			resp.id());
		enc = Encoded();
		encode(*ex, enc);
	}
	std::vector<rxp_storage *> st;
	st.reserve(enc.storages.size());
	for (const c10::Storage &s : enc.storages) {
		auto *keep = new c10::Storage(s);
		rxp_storage *w =
			rxp_storage_wrap(const_cast<void *>(keep->data()),
					 keep->nbytes(), release_wrapped, keep);
		if (!w) {
			delete keep;
			for (rxp_storage *x : st)
				rxp_storage_release(x);
			rxp_request_fail(r, "RXP: callee out of memory");
			return;
		}
		st.push_back(w);
	}
	rxp_request_respond(r, enc.bytes.data(), enc.bytes.size(), st.data(),
			    static_cast<uint32_t>(st.size()));
	for (rxp_storage *x : st) // rxp holds its own references
		rxp_storage_release(x);
}

} // namespace

void RxpAgent::handleRequest(rxp_request *r)
{
	c10::intrusive_ptr<Message> req;

	if (rxp_request_type(r) != kMsgType) {
		rxp_request_fail(r, "RXP: not a torch message type");
		return;
	}
	try {
		const void *data;
		size_t len;

		rxp_request_payload(r, &data, &len);
		Received in{data, len, rxp_request_nstorages(r),
			    request_storage, r};
		req = decode(in);
		TORCH_CHECK(req->isRequest(), "RXP: a response arrived as a "
					      "request");
	} catch (const std::exception &e) {
		rxp_request_fail(r, e.what());
		return;
	}
	{
		std::unique_lock<std::mutex> g(start_mu_);

		start_cv_.wait(g, [this] { return started_ || stopping_; });
		if (!started_) {
			g.unlock();
			rxp_request_fail(r,
					 "RXP: the callee shut down before it "
					 "started serving");
			return;
		}
	}
	int64_t id = req->id();
	std::shared_ptr<Shared> shared = shared_;
	c10::intrusive_ptr<JitFuture> fut;

	shared->server_active++;
	try {
		fut = (*cb_)(*req, {});
	} catch (const std::exception &e) {
		shared->server_active--;
		auto ex = torch::distributed::rpc::createExceptionResponse(
			e.what(), id);
		respond(r, *ex);
		return;
	}
	fut->addCallback([r, id, shared](JitFuture &done) {
		shared->server_active--;
		if (done.hasError()) {
			auto ex = torch::distributed::rpc::
				createExceptionResponse(
					done.tryRetrieveErrorMessage(), id);
			respond(r, *ex);
			return;
		}
		c10::intrusive_ptr<Message> resp =
			done.value().toCustomClass<Message>();
		resp->setId(id);
		respond(r, *resp);
	});
}

// ------------------------------------------------------------- workers

const WorkerInfo &RxpAgent::getWorkerInfo(const std::string &workerName) const
{
	auto it = by_name_.find(workerName);

	TORCH_CHECK(it != by_name_.end(), "name:", workerName,
		    " could not find destination (no such RXP worker)");
	return workers_[it->second];
}

const WorkerInfo &
RxpAgent::getWorkerInfo(torch::distributed::rpc::worker_id_t id) const
{
	TORCH_CHECK(id >= 0 && static_cast<size_t>(id) < workers_.size(),
		    "id:", id,
		    " could not find destination (no such RXP "
		    "worker)");
	return workers_[static_cast<size_t>(id)];
}

std::vector<WorkerInfo> RxpAgent::getWorkerInfos() const
{
	return workers_;
}

// ------------------------------------------------------------- barriers

void RxpAgent::join(bool shutdown, float timeout)
{
	TORCH_CHECK(rxp_, "RXP: join() after shutdown");
	int ret = rxp_agent_join(rxp_, rxp_timeout(timeout));

	TORCH_CHECK(ret == 0, "RXP: join() of '", workerInfo_.name_,
		    "' failed: ", rxp_error(ret),
		    ret == -ETIMEDOUT ? " (some worker did not join in time)"
				      : "");
	(void)shutdown;
}

void RxpAgent::barrier(float timeout_s)
{
	join(false, timeout_s);
}

std::string RxpAgent::transportName() const
{
	return rxp_ ? rxp_agent_transport(rxp_) : "";
}

// ------------------------------------------------------------- metrics

void RxpAgent::addGilWaitTime(std::chrono::microseconds gilWaitTime)
{
	shared_->gil_wait_us += gilWaitTime.count();
	shared_->gil_waits++;
}

std::unordered_map<std::string, std::string> RxpAgent::getMetrics()
{
	std::unordered_map<std::string, std::string> m;
	static const char *const keys[] = {
		"agent.thread_pool_size", "agent.num_idle_threads",
		"agent.client_active_calls", "agent.server_active_calls",
		"agent.server_active_async_calls"};

	for (const char *k : keys) {
		int64_t v = 0;

		if (rxp_)
			rxp_agent_metric(rxp_, k, &v);
		m[k] = std::to_string(v);
	}
	if (isGILProfilingEnabled()) {
		int64_t n = shared_->gil_waits.load();
		m["agent.gil_average_wait_time_us"] =
			std::to_string(n ? shared_->gil_wait_us.load() / n : 0);
	}
	return m;
}

std::unordered_map<std::string, std::string> RxpAgent::getDebugInfo()
{
	auto m = getMetrics();

	m["rxp.transport"] = transportName();
	m["rxp.version"] = rxp_version();
	if (rxp_) {
		int n = rxp_agent_metrics_dump(rxp_, nullptr, 0);
		if (n > 0) {
			std::string buf(static_cast<size_t>(n) + 1, '\0');
			rxp_agent_metrics_dump(rxp_, &buf[0], buf.size());
			buf.resize(static_cast<size_t>(n));
			size_t pos = 0;
			while (pos < buf.size()) {
				size_t nl = buf.find('\n', pos);
				if (nl == std::string::npos)
					nl = buf.size();
				std::string line = buf.substr(pos, nl - pos);
				size_t sp = line.rfind(' ');
				if (sp != std::string::npos)
					m["rxp." + line.substr(0, sp)] =
						line.substr(sp + 1);
				pos = nl + 1;
			}
		}
	}
	return m;
}

} // namespace rxp_torch
