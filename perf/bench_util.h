// SPDX-License-Identifier: MIT
//
// Helpers for the Google Benchmark harness (rxp-bench).
#ifndef RXP_BENCH_UTIL_H
#define RXP_BENCH_UTIL_H

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

namespace rxpbench
{

// --verify: check every result (echoed bytes, decoded trees) each
// iteration, not only once. Set by main() before the benchmarks run.
extern bool g_verify;

inline uint64_t now_ns()
{
	return (uint64_t)std::chrono::duration_cast<std::chrono::nanoseconds>(
		       std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

// Per-iteration timings -> p50/p99 counters (us), nearest rank.
class Latencies
{
      public:
	explicit Latencies(const benchmark::State &st)
	{
		ns_.reserve((size_t)std::min<benchmark::IterationCount>(
			st.max_iterations, 10000000));
	}
	void add(uint64_t ns)
	{
		ns_.push_back(ns);
	}
	void report(benchmark::State &st)
	{
		if (ns_.empty())
			return;
		std::sort(ns_.begin(), ns_.end());
		st.counters["p50_us"] = pct(0.50);
		st.counters["p99_us"] = pct(0.99);
		st.counters["max_us"] = (double)ns_.back() / 1e3;
	}

      private:
	double pct(double p) const
	{
		size_t i = (size_t)std::ceil(p * (double)ns_.size());
		return (double)ns_[i ? i - 1 : 0] / 1e3;
	}
	std::vector<uint64_t> ns_;
};

} // namespace rxpbench

#endif
