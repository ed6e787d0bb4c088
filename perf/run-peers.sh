#!/usr/bin/env bash
# perf/run-peers.sh [--rounds N] [--quick] [--only rtt,echo,calls,torch,percall]
#                   [--no-install] [--no-bench] [--build DIR] [--out DIR]
#
# One command for rxp's side-by-side comparison on 127.0.0.1:
#  1. installs what it needs from Debian (idempotent: nothing is done when
#     every package is there),
#  2. builds rxp + perf/ in Release (build/perf-release by default),
#  3. runs rxp (rxp-perf) and every peer (raw TCP, UCX ucx_perftest,
#     TensorPipe, PyTorch RPC) in alternating rounds (perf/compare.py),
#  4. writes docs/perf/results.md, results.json and the PNG plots, and the
#     Google Benchmark JSON of rxp-bench (docs/perf/rxp-bench.json),
#  5. (group "torch") runs torch.distributed.rpc on RXP (plugins/torch) and
#     on TENSORPIPE (default, shm+cma, uv+basic) back to back in each round
#     (perf/torch_compare.py) and writes docs/perf/torch.md and torch.json,
#  6. (group "percall") counts what one tiny call costs each side:
#     allocations, syscalls and instructions (perf/percall.sh), into
#     docs/perf/percall.md.
# If rxp's agent is not in the tree (or fails), the peers still run and the
# rxp rows are listed as missing. Loopback only; every run is bounded.
# Default run: 3 rounds, well under 10 minutes on 2 cores for the peers,
# plus about 7 minutes for the torch rows (--only rtt,echo,calls,percall skips them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build/perf-release"
OUT="$ROOT/docs/perf"
ROUNDS=3
QUICK=()
ONLY=rtt,echo,calls,torch,percall
INSTALL=1
BENCH=1
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift ;;
	--quick) QUICK=(--quick) ;;
	--only) ONLY=$2; shift ;;
	--no-install) INSTALL=0 ;;
	--no-bench) BENCH=0 ;;
	--build) BUILD=$2; shift ;;
	--out) OUT=$2; shift ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "run-peers.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

# ---------------------------------------------------------------- 1. deps
PKGS=(build-essential cmake ninja-build pkg-config liburing-dev
      libibverbs-dev librdmacm-dev libbenchmark-dev
      ucx-utils libtensorpipe-dev python3-torch python3-numpy
      python3-matplotlib util-linux libtorch-dev python3-dev pybind11-dev
      strace valgrind)
if [ "$INSTALL" = 1 ]; then
	missing=()
	for p in "${PKGS[@]}"; do
		st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		[ "${st:0:2}" = "ii" ] || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		echo "run-peers: installing ${missing[*]}"
		SUDO=()
		[ "$(id -u)" = 0 ] || SUDO=(sudo -n)
		export DEBIAN_FRONTEND=noninteractive
		"${SUDO[@]}" apt-get update -qq
		"${SUDO[@]}" apt-get install -y -qq -o Dpkg::Use-Pty=0 \
			"${missing[@]}" >/dev/null
	else
		echo "run-peers: all ${#PKGS[@]} packages present"
	fi
fi

# ---------------------------------------------------------------- 2. build
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
	-DRXP_BUILD_TESTS=OFF -DRXP_BUILD_EXAMPLES=OFF >/dev/null
# Build the peers first (they do not need rxp), then rxp's tools: a
# library that does not link yet must not stop the peers from running.
targets=(tcp_pingpong)
[ -n "$(ninja -C "$BUILD" -t targets all 2>/dev/null | grep -E '^tp_pingpong:')" ] &&
	targets+=(tp_pingpong)
cmake --build "$BUILD" --target "${targets[@]}" -j"$(nproc)"
has_group() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }
tools=(rxp-perf rxp-bench)
has_group percall && tools+=(rxp_malloc_count)
has_group torch && tools+=(rxp_torch_ext) # the RXP backend (plugins/torch)
for t in "${tools[@]}"; do
	if ninja -C "$BUILD" -t targets all 2>/dev/null | grep -qE "^$t:"; then
		cmake --build "$BUILD" --target "$t" -j"$(nproc)" ||
			echo "run-peers: $t does not build yet; rxp rows will be missing" >&2
	else
		echo "run-peers: no $t target (agent not in the tree?)" >&2
	fi
done

# ---------------------------------------------------------------- 3+4. run
mkdir -p "$OUT"
peer_groups=$(echo ",$ONLY," | sed 's/,torch,/,/g; s/,percall,/,/g; s/^,//; s/,$//')
if [ -n "$peer_groups" ]; then
	/usr/bin/python3 "$ROOT/perf/compare.py" --bin "$BUILD/perf" \
		--out "$OUT" --rounds "$ROUNDS" "${QUICK[@]}" \
		--only "$peer_groups"
fi
if has_group torch; then
	# RXP and each TENSORPIPE variant back to back in every round
	timeout 900 /usr/bin/python3 "$ROOT/perf/torch_compare.py" \
		--pythonpath "$BUILD/python" --out "$OUT" --rounds "$ROUNDS" \
		"${QUICK[@]}" ||
		echo "run-peers: torch comparison failed" >&2
fi

if has_group percall; then
	timeout 600 bash "$ROOT/perf/percall.sh" --build "$BUILD" \
		--out "$OUT/percall.md" ||
		echo "run-peers: per-call counts failed" >&2
fi

if [ "$BENCH" = 1 ] && [ -x "$BUILD/perf/rxp-bench" ]; then
	mt=0.2
	[ "${#QUICK[@]}" -gt 0 ] && mt=0.01
	# 256 MiB echo is left to explicit runs: it is slow and large here.
	timeout 300 "$BUILD/perf/rxp-bench" \
		--benchmark_min_time=$mt \
		--benchmark_filter='-/268435456' \
		--benchmark_out="$OUT/rxp-bench.json" \
		--benchmark_out_format=json >"$OUT/rxp-bench.txt" 2>&1 ||
		echo "run-peers: rxp-bench failed (see $OUT/rxp-bench.txt)" >&2
fi
[ -n "$peer_groups" ] && echo "run-peers: wrote $OUT/results.md"
has_group torch && echo "run-peers: wrote $OUT/torch.md"
has_group percall && echo "run-peers: wrote $OUT/percall.md"
exit 0
