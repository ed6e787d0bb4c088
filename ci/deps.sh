#!/usr/bin/env bash
# ci/deps.sh [--vm|--demo] [--check]: install what the CI (or only the rxe
# guest, with --vm; or only what the library and its demo build needs,
# with --demo) needs on a Debian 12 machine. Idempotent: when dpkg already has
# every package it does nothing (no apt-get update), so it is cheap to call
# at the start of every script. --check only reports (exit 1 if missing).
set -euo pipefail

VM_PKGS=(qemu-system-x86 busybox-static kmod binutils cpio xz-utils iproute2
	 rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest)
BUILD_PKGS=(build-essential cmake ninja-build pkg-config gcc g++ clang-14
	    libclang-rt-14-dev liburing-dev libcmocka-dev libibverbs-dev
	    librdmacm-dev libsodium-dev libbenchmark-dev python3 git util-linux
	    python3-dev python3-torch libtorch-dev pybind11-dev abigail-tools
	    python3-prometheus-client strace valgrind)
# the library, its tools and examples: a compiler, cmake, and the four
# libraries it links (io_uring, libsodium, libibverbs, librdmacm); the
# providers so that a real RDMA device is found
DEMO_PKGS=(build-essential cmake ninja-build pkg-config liburing-dev
	   libsodium-dev libibverbs-dev librdmacm-dev ibverbs-providers)

want=("${VM_PKGS[@]}")
check_only=0
pkgset=0
for a in "$@"; do
	case "$a" in
	--vm) pkgset=1 ;;
	--demo) pkgset=2 ;;
	--check) check_only=1 ;;
	-h|--help) sed -n '2,6p' "$0"; exit 0 ;;
	*) echo "deps.sh: unknown option $a" >&2; exit 2 ;;
	esac
done
case "$pkgset" in
0) want+=("${BUILD_PKGS[@]}") ;;
2) want=("${DEMO_PKGS[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[ "${st:0:2}" = "ii" ] || missing+=("$p")
done

if [ "${#missing[@]}" = 0 ]; then
	echo "deps: all ${#want[@]} packages present"
	exit 0
fi
echo "deps: missing: ${missing[*]}"
[ "$check_only" = 0 ] || exit 1

SUDO=()
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null; then SUDO=(sudo -n); else
		echo "deps: not root and no sudo: install them by hand" >&2; exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
echo "deps: installed ${#missing[@]} packages"
