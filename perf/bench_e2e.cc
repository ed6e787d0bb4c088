// SPDX-License-Identifier: MIT
//
// End-to-end benchmarks between two workers on 127.0.0.1 (public API):
//
//   BM_<tr>_rtt_tiny               rxp_rpc_sync of bench.add(1, 2)
//   BM_<tr>_calls_inflight/N       N calls outstanding (items/s = calls/s)
//   BM_<tr>_echo/<bytes>           bench.echo of one uint8 tensor, 64 B..256
//   MiB;
//                                  bytes processed = 2 * size per call
//
// <tr> is tcp, tcpnouring (RXP_NO_URING=1 in both processes) or verbs
// (skipped with an error when no RDMA device is usable). Poll vs sleep
// mode comes from $RXP_POLL_US, inherited by the peer.
//
// The peer is this binary re-executed with --rxp-peer <transport> <port>
// (rank 1, "peer"); the benchmark process is rank 0 ("bench") and serves
// the rendezvous on a free port. One pair lives while consecutive
// benchmarks use the same transport; it is replaced when the transport
// changes. p50_us/p99_us counters come from per-iteration timings.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <rxp/rxp.h>

#include "bench_util.h"
#include "perf_fns.h"

namespace rxpbench
{

namespace
{

const char *const kPeer = "peer";
const int kPeerRank = 1; // calls address it by id

struct Transport {
	const char *bm;	  // name in BM_<bm>_...
	const char *name; // rxp transport
	bool no_uring;
};
const Transport kTransports[] = {
	{"tcp", "tcp", false},
	{"tcpnouring", "tcp", true},
	{"verbs", "verbs", false},
};

struct Pair {
	const Transport *tr = nullptr;
	pid_t pid = -1;
	rxp_agent *agent = nullptr;
};
Pair g_pair;
std::map<std::string, std::string> g_failed; // transport -> why

int free_port()
{
	sockaddr_in sa{};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!bind(fd, (sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(fd, (sockaddr *)&sa, &len))
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

void reap(pid_t pid, int wait_s)
{
	for (int i = 0; i < wait_s * 100; i++) {
		if (waitpid(pid, nullptr, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, nullptr, 0);
}

void teardown()
{
	if (g_pair.agent) {
		rxp_agent_join(g_pair.agent, 10000);
		rxp_agent_shutdown(g_pair.agent);
	}
	if (g_pair.pid > 0)
		reap(g_pair.pid, 10);
	g_pair = Pair();
}

// The agent of a live pair for @tr, or nullptr with *why set.
rxp_agent *pair_for(const Transport *tr, std::string *why)
{
	if (g_pair.tr == tr && g_pair.agent)
		return g_pair.agent;
	auto f = g_failed.find(tr->bm);
	if (f != g_failed.end()) {
		*why = f->second;
		return nullptr;
	}
	teardown();
	if (tr->no_uring)
		setenv("RXP_NO_URING", "1", 1);
	else
		unsetenv("RXP_NO_URING");

	int port = free_port();
	if (port < 0) {
		*why = "no free port";
		return nullptr;
	}
	std::string ports = std::to_string(port);
	pid_t pid = fork();
	if (pid < 0) {
		*why = std::string("fork: ") + strerror(errno);
		return nullptr;
	}
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull,
			     STDOUT_FILENO); // keep JSON on stdout clean
		execl("/proc/self/exe", "rxp-bench", "--rxp-peer", tr->name,
		      ports.c_str(), (char *)nullptr);
		_exit(127);
	}

	rxp_agent_attr attr;
	rxp_agent_attr_init(&attr);
	attr.name = "bench";
	attr.rank = 0;
	attr.world_size = 2;
	attr.master_addr = "127.0.0.1";
	attr.master_port = port;
	attr.transport = tr->name;
	attr.init_timeout_ms = 30000;
	attr.rpc_timeout_ms = 120000;
	rxp_agent *a = nullptr;
	int ret = rxp_agent_create(&attr, &a);
	if (!ret)
		ret = perf_wait_ready(a, kPeerRank, 10000);
	if (ret) {
		*why = std::string(tr->bm) + ": " + rxp_strerror(ret);
		g_failed[tr->bm] = *why;
		if (a)
			rxp_agent_shutdown(a);
		kill(pid, SIGTERM);
		reap(pid, 5);
		return nullptr;
	}
	g_pair.tr = tr;
	g_pair.pid = pid;
	g_pair.agent = a;
	benchmark::AddCustomContext(std::string("transport_") + tr->bm,
				    rxp_agent_transport(a));
	return a;
}

void BM_rtt_tiny(benchmark::State &st, const Transport *tr)
{
	std::string why;
	rxp_agent *a = pair_for(tr, &why);
	if (!a) {
		st.SkipWithError(why.c_str());
		return;
	}
	perf_call c;
	perf_call_init(&c, 0, nullptr);
	Latencies lat(st);
	for (auto _ : st) {
		rxp_future *f = nullptr;
		const char *msg = "";
		uint64_t t0 = now_ns();
		int ret = rxp_rpc_sync(a, kPeerRank, c.fn, c.args, c.nargs,
				       nullptr, 0, nullptr, &f);
		lat.add(now_ns() - t0);
		if (!ret)
			ret = perf_call_check(&c, f, g_verify, &msg);
		else
			msg = rxp_strerror(ret);
		rxp_future_release(f);
		if (ret) {
			st.SkipWithError(msg);
			break;
		}
	}
	st.SetItemsProcessed(st.iterations());
	lat.report(st);
}

void BM_calls_inflight(benchmark::State &st, const Transport *tr)
{
	std::string why;
	rxp_agent *a = pair_for(tr, &why);
	if (!a) {
		st.SkipWithError(why.c_str());
		return;
	}
	const size_t window = (size_t)st.range(0);
	std::vector<rxp_future *> futs(window, nullptr);
	std::vector<uint64_t> start(window, 0);
	perf_call c;
	perf_call_init(&c, 0, nullptr);
	Latencies lat(st);
	const char *msg = nullptr;

	for (size_t i = 0; i < window && !msg; i++) {
		start[i] = now_ns();
		int ret = perf_call_issue(a, kPeerRank, &c, &futs[i]);
		if (ret)
			msg = rxp_strerror(ret);
	}
	size_t slot = 0;
	for (auto _ : st) {
		if (msg)
			break;
		rxp_future_wait(futs[slot]);
		lat.add(now_ns() - start[slot]);
		int ret = perf_call_check(&c, futs[slot], g_verify, &msg);
		rxp_future_release(futs[slot]);
		futs[slot] = nullptr;
		if (ret)
			break;
		start[slot] = now_ns();
		ret = perf_call_issue(a, kPeerRank, &c, &futs[slot]);
		if (ret) {
			msg = rxp_strerror(ret);
			break;
		}
		slot = (slot + 1) % window;
	}
	for (rxp_future *f : futs) { // drain, untimed
		if (f) {
			rxp_future_wait(f);
			rxp_future_release(f);
		}
	}
	if (msg) {
		st.SkipWithError(msg);
		return;
	}
	st.SetItemsProcessed(st.iterations());
	lat.report(st);
}

void BM_echo(benchmark::State &st, const Transport *tr)
{
	std::string why;
	rxp_agent *a = pair_for(tr, &why);
	if (!a) {
		st.SkipWithError(why.c_str());
		return;
	}
	const size_t size = (size_t)st.range(0);
	std::vector<unsigned char> buf(size);
	for (size_t i = 0; i < size; i++)
		buf[i] = (unsigned char)(i * 131 + 7);
	rxp_mem_register(a, buf.data(), size);
	perf_call c;
	perf_call_init(&c, size, buf.data());
	Latencies lat(st);
	uint64_t n = 0;
	for (auto _ : st) {
		if (g_verify && size >= 8) { // new bytes each call
			n++;
			memcpy(buf.data(), &n, sizeof(n));
		}
		rxp_future *f = nullptr;
		const char *msg = "";
		uint64_t t0 = now_ns();
		int ret = rxp_rpc_sync(a, kPeerRank, c.fn, c.args, c.nargs,
				       &c.iov, 1, nullptr, &f);
		lat.add(now_ns() - t0);
		if (!ret)
			ret = perf_call_check(&c, f, g_verify, &msg);
		else
			msg = rxp_strerror(ret);
		rxp_future_release(f);
		if (ret) {
			st.SkipWithError(msg);
			break;
		}
	}
	rxp_mem_unregister(a, buf.data(), size);
	st.SetBytesProcessed((int64_t)st.iterations() * 2 * (int64_t)size);
	st.SetItemsProcessed(st.iterations());
	lat.report(st);
}

} // namespace

void register_e2e()
{
	for (const Transport &tr : kTransports) {
		std::string p = std::string("BM_") + tr.bm;
		benchmark::RegisterBenchmark((p + "_rtt_tiny").c_str(),
					     BM_rtt_tiny, &tr)
			->UseRealTime();
		benchmark::RegisterBenchmark((p + "_calls_inflight").c_str(),
					     BM_calls_inflight, &tr)
			->Arg(1)
			->Arg(16)
			->Arg(256)
			->UseRealTime();
		benchmark::RegisterBenchmark((p + "_echo").c_str(), BM_echo,
					     &tr)
			->RangeMultiplier(16)
			->Range(64, 1 << 20) // 64 B .. 1 MiB
			->Arg(16 << 20)
			->Arg(64 << 20)
			->Arg(256 << 20)
			->UseRealTime();
	}
}

void teardown_e2e()
{
	teardown();
}

// --rxp-peer <transport> <port>: the serving worker (rank 1).
int peer_main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	alarm(3600);
	return perf_serve(kPeer, kPeerRank, "127.0.0.1", atoi(argv[3]), argv[2],
			  -1, 3600);
}

} // namespace rxpbench
