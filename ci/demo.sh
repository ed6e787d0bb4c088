#!/usr/bin/env bash
# ci/demo.sh [rxp-demo options]: the README's first command. Installs what
# the library and the demo need (ci/deps.sh --demo: a compiler, cmake and
# four -dev packages; not the CI's QEMU, torch or test tools), builds rxp
# in build/demo (Release) and runs
# rxp-demo: two workers on this machine over the default transport
# (RXP_TRANSPORT=auto), calls with tensors, then round-trip and 64 MiB echo
# figures. Options are passed to rxp-demo (--iters N, --mib M, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/deps.sh --demo
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release \
	-DRXP_BUILD_TESTS=OFF -DRXP_BUILD_PERF=OFF -DRXP_TORCH=OFF >/dev/null
cmake --build build/demo --target rxp-demo rxp_pingpong -j "$(nproc)"
exec ./build/demo/examples/rxp-demo "$@"
