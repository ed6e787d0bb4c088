#!/usr/bin/env bash
# The ABI of librxp.so against what is recorded (rxp.h, "ABI rules").
#
#   ci/abi.sh BUILD_DIR           check: fails on any difference
#   ci/abi.sh --update BUILD_DIR  record the built library as the ABI
#
# Checks, each one failing with what differs:
#  1. the functions declared RXP_API in include/rxp/*.h, the symbols listed
#     in cmake/rxp.map and the symbols librxp.so exports are the same set,
#     each exported under a version node;
#  2. abidiff (Debian's abigail-tools) finds no change between
#     ci/abi/librxp.abi and the built library in the functions and the
#     types the public headers expose. An intended change (a new function,
#     or a break in a new minor version while the major is 0) is recorded
#     with --update in the same commit, so it is reviewed as a diff.
# Needs a build with debug info (the CI gcc build: RelWithDebInfo).
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
build=${1:?usage: ci/abi.sh [--update] BUILD_DIR}
lib=$(readlink -f "$build/librxp.so")
base=ci/abi/librxp.abi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in abidw abidiff nm; do
	command -v "$t" >/dev/null || { echo "abi: $t missing (apt-get install abigail-tools binutils)"; exit 1; }
done

# 1. one list of functions, three places
perl -0ne 'while (/RXP_API\s+[^(;]*?\b(rxp_\w+)\s*\(/g) { print "$1\n" }' include/rxp/*.h |
	sort >"$tmp/declared"
sed -n 's/^[[:space:]]*\(rxp_[a-z0-9_]*\);$/\1/p' cmake/rxp.map | sort >"$tmp/mapped"
nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "W" || $2 == "D" || $2 == "B" { print $3 }' |
	sort >"$tmp/exported.v"
sed 's/@.*//' "$tmp/exported.v" | sort >"$tmp/exported"
ok=1
if ! diff -u "$tmp/declared" "$tmp/mapped" >"$tmp/d1"; then
	echo "abi: RXP_API declarations (-) and cmake/rxp.map (+) differ:"; sed 1,2d "$tmp/d1"; ok=0
fi
if ! diff -u "$tmp/mapped" "$tmp/exported" >"$tmp/d2"; then
	echo "abi: cmake/rxp.map (-) and the symbols $lib exports (+) differ:"; sed 1,2d "$tmp/d2"; ok=0
fi
if grep -v '@@\?RXP_' "$tmp/exported.v" >"$tmp/unver"; then
	echo "abi: exported without a version node:"; cat "$tmp/unver"; ok=0
fi
[ "$ok" = 1 ] || exit 1
echo "abi: $(wc -l <"$tmp/declared") functions: declared = cmake/rxp.map = exported, all versioned"

# 2. the recorded ABI
abidw --headers-dir include/rxp --drop-private-types --no-corpus-path \
	--no-show-locs --no-comp-dir-path "$lib" >"$tmp/now.abi"
if [ "$update" = 1 ]; then
	mkdir -p "$(dirname "$base")"
	cp "$tmp/now.abi" "$base"
	echo "abi: recorded $lib as $base"
	exit 0
fi
[ -f "$base" ] || { echo "abi: no $base: record it with ci/abi.sh --update $build"; exit 1; }
set +e
abidiff --no-show-locs "$base" "$tmp/now.abi" >"$tmp/diff"
rc=$?
set -e
if [ "$rc" != 0 ]; then
	echo "abi: librxp.so differs from $base (abidiff exit $rc):"
	cat "$tmp/diff"
	echo "abi: if the change is intended (rxp.h, \"ABI rules\"), record it:"
	echo "abi:   ci/abi.sh --update $build   and commit $base"
	exit 1
fi
echo "abi: no change against $base"
