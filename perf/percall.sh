#!/usr/bin/env bash
# perf/percall.sh [--build DIR] [--calls N1,N2] [--port P] [--no-callgrind]
#                 [--out FILE]
#
# What one tiny call (bench.add(1, 2), sleep mode, one in flight) costs each
# side, measured the way issue 10 states its targets: rxp-perf's server and
# client on 127.0.0.1, run twice with N1 and N2 measured calls (same
# warm-up), and every count divided as (count(N2) - count(N1)) / (N2 - N1),
# so start-up, rendezvous and shutdown cancel out:
#   allocs/call    every malloc/calloc/realloc/memalign of the process
#                  (perf/percall/malloc_count.c, LD_PRELOAD)
#   syscalls/call  strace -f -c, all threads, total and the top names
#   instr/call     user-space instructions, valgrind --tool=callgrind
#                  (Ir of all threads)
# Prints a Markdown table (and writes it to --out if given). Needs strace
# and valgrind (ci/deps.sh installs both); the callgrind rows take about a
# minute and are skipped with --no-callgrind.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build/rel"
CALLS=2000,12000
PORT=18590
CALLGRIND=1
OUT=
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift ;;
	--calls) CALLS=$2; shift ;;
	--port) PORT=$2; shift ;;
	--no-callgrind) CALLGRIND=0 ;;
	--out) OUT=$2; shift ;;
	-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
	*) echo "percall.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
N1=${CALLS%,*}
N2=${CALLS#*,}
case "$N1$N2" in *[!0-9]*|'') echo "percall.sh: --calls N1,N2" >&2; exit 2 ;; esac
[ "$N2" -gt "$N1" ] || { echo "percall.sh: N2 must exceed N1" >&2; exit 2; }
PERF="$BUILD/perf/rxp-perf"
COUNT="$BUILD/perf/librxp_malloc_count.so"
for f in "$PERF" "$COUNT"; do
	[ -x "$f" ] || [ -f "$f" ] || { echo "percall.sh: $f not built" >&2; exit 2; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run <tag> <n> <wrapper...>: server and client of one run, each under the
# wrapper (which may use @SIDE@ in its words); both must exit 0 in 300 s
run() {
	local tag=$1 n=$2 side pid_s rc=0
	shift 2
	local ws=() wc=()
	for w in "$@"; do ws+=("${w//@SIDE@/$TMP/$tag.$n.server}");
		wc+=("${w//@SIDE@/$TMP/$tag.$n.client}"); done
	timeout 300 "${ws[@]}" "$PERF" -p "$PORT" --bind 127.0.0.1 \
		--transport tcp >"$TMP/$tag.$n.server.log" 2>&1 &
	pid_s=$!
	timeout 300 "${wc[@]}" "$PERF" -p "$PORT" -n "$n" --warmup 200 \
		--transport tcp 127.0.0.1 >"$TMP/$tag.$n.client.log" 2>&1 || rc=$?
	wait "$pid_s" || rc=$?
	if [ "$rc" != 0 ]; then
		echo "percall.sh: $tag run with $n calls failed ($rc):" >&2
		for side in server client; do
			tail -5 "$TMP/$tag.$n.$side.log" >&2 || true
		done
		exit 1
	fi
}

per_call() { # <count at N1> <count at N2>
	awk -v a="$1" -v b="$2" -v d=$((N2 - N1)) 'BEGIN { printf "%.2f", (b - a) / d }'
}

# --- allocations
for n in "$N1" "$N2"; do
	run allocs "$n" env LD_PRELOAD="$COUNT" RXP_MALLOC_COUNT_OUT=@SIDE@.count
done
allocs() { awk '{ s += $3 } END { print s + 0 }' "$TMP/allocs.$1.$2.count"; }

# --- syscalls
for n in "$N1" "$N2"; do
	run strace "$n" strace -f -c -o @SIDE@.strace
done
# "<name> <calls>" per syscall of one strace -c table
sys_table() {
	awk '$NF != "total" && $4 ~ /^[0-9]+$/ { print $NF, $4 }' "$TMP/strace.$1.$2.strace"
}
sys_total() { sys_table "$1" "$2" | awk '{ s += $2 } END { print s + 0 }'; }
sys_top() { # the names with >= 0.05 calls per call, most first
	join -a 2 -e 0 -o 0,1.2,2.2 <(sys_table "$N1" "$1" | sort) \
		<(sys_table "$N2" "$1" | sort) |
		awk -v d=$((N2 - N1)) '{ p = ($3 - $2) / d; if (p >= 0.05) printf "%s %.2f\n", $1, p }' |
		sort -k2 -rn | awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }'
}

# --- instructions
if [ "$CALLGRIND" = 1 ]; then
	for n in "$N1" "$N2"; do
		run callgrind "$n" valgrind -q --tool=callgrind \
			--callgrind-out-file=@SIDE@.cg
	done
fi
instr() { awk '/^summary:/ { print $2 }' "$TMP/callgrind.$1.$2.cg"; }

# every count must be there: a preload that did not load, or a tool that
# wrote nothing, fails the run rather than reading as zero
for n in "$N1" "$N2"; do
	for side in client server; do
		files=("$TMP/allocs.$n.$side.count" "$TMP/strace.$n.$side.strace")
		[ "$CALLGRIND" = 1 ] && files+=("$TMP/callgrind.$n.$side.cg")
		for f in "${files[@]}"; do
			[ -s "$f" ] || { echo "percall.sh: no counts in $f" >&2; exit 1; }
		done
	done
done

table() {
	echo "| per tiny call ($N1 vs $N2 calls, sleep mode, tcp, 127.0.0.1) | caller (client) | callee (server) |"
	echo "|---|---|---|"
	echo "| allocations | $(per_call "$(allocs "$N1" client)" "$(allocs "$N2" client)") | $(per_call "$(allocs "$N1" server)" "$(allocs "$N2" server)") |"
	echo "| syscalls, all threads | $(per_call "$(sys_total "$N1" client)" "$(sys_total "$N2" client)") | $(per_call "$(sys_total "$N1" server)" "$(sys_total "$N2" server)") |"
	echo "| of which | $(sys_top client) | $(sys_top server) |"
	if [ "$CALLGRIND" = 1 ]; then
		echo "| user-space instructions (callgrind Ir) | $(per_call "$(instr "$N1" client)" "$(instr "$N2" client)") | $(per_call "$(instr "$N1" server)" "$(instr "$N2" server)") |"
	fi
	echo
	echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u +%FT%TZ)"
}
table | tee ${OUT:+"$OUT"}
