// SPDX-License-Identifier: MIT
//
// rxp-bench: Google Benchmark microbenchmarks of rxp's codec and of calls
// between two workers on 127.0.0.1.
//
//   rxp-bench [--verify] [--benchmark_filter=...] [--benchmark_min_time=..]
//             [--benchmark_out=FILE --benchmark_out_format=json]
//
// --verify checks every echoed byte and every decoded tree.
// The end-to-end benchmarks start a second process (this binary again,
// with --rxp-peer) as the serving worker; see bench_e2e.cc.
#include <cstring>
#include <vector>

#include <rxp/rxp.h>

#include "bench_util.h"

namespace rxpbench
{
bool g_verify = false;
#ifdef RXP_BENCH_E2E
void register_e2e();
int peer_main(int argc, char **argv); // --rxp-peer mode
void teardown_e2e();
#endif
} // namespace rxpbench

int main(int argc, char **argv)
{
	std::vector<char *> args;

#ifdef RXP_BENCH_E2E
	if (argc > 1 && !strcmp(argv[1], "--rxp-peer"))
		return rxpbench::peer_main(argc, argv);
#endif
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--verify"))
			rxpbench::g_verify = true;
		else
			args.push_back(argv[i]);
	}
	int n = (int)args.size();
	args.push_back(nullptr);
	benchmark::Initialize(&n, args.data());
	if (benchmark::ReportUnrecognizedArguments(n, args.data()))
		return 1;
	benchmark::AddCustomContext("rxp_version", rxp_version());
	benchmark::AddCustomContext("verify", rxpbench::g_verify ? "1" : "0");
#ifdef RXP_BENCH_E2E
	rxpbench::register_e2e();
#endif
	benchmark::RunSpecifiedBenchmarks();
#ifdef RXP_BENCH_E2E
	rxpbench::teardown_e2e();
#endif
	benchmark::Shutdown();
	return 0;
}
