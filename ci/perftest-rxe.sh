#!/usr/bin/env bash
# ci/perftest-rxe.sh: perftest between the rxe devices of the guest, for
# information (the guest is TCG-emulated: never gate on these figures).
# Runs INSIDE the guest:  ci/rxe-vm.sh -- ci/perftest-rxe.sh
#
# Server on device B (RXP_VM_DEV_B / RXP_ADDR_B; in mode one both ends are
# rxe0 and 10.66.0.1), client on device A; connection through rdma_cm (-R),
# which picks the RoCEv2 IPv4 GID itself. Prints the figures and a summary;
# exits non-zero only if perftest could not run at all.
#   --iters N    iterations of ib_send_lat (default 1000)
#   --bw-iters N iterations of ib_write_bw, 64 KiB each (default 1000)
set -uo pipefail

lat_iters=1000 bw_iters=1000
while [ $# -gt 0 ]; do
	case "$1" in
	--iters) lat_iters=$2; shift 2 ;;
	--bw-iters) bw_iters=$2; shift 2 ;;
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	*) echo "perftest-rxe: unknown option $1" >&2; exit 2 ;;
	esac
done

[ "${RXP_VM:-}" = 1 ] || echo "perftest-rxe: warning: not in the rxe guest (RXP_VM unset)" >&2
dev_a=${RXP_VM_DEV_A:-rxe0}
dev_b=${RXP_VM_DEV_B:-$dev_a}
addr_a=${RXP_ADDR_A:-10.66.0.1}
addr_b=${RXP_ADDR_B:-$addr_a}
for t in ib_send_lat ib_write_bw; do
	command -v "$t" >/dev/null || { echo "perftest-rxe: $t not found (apt-get install perftest)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=18515

# run_pair NAME TOOL ARGS... : server on B in the background, client on A
run_pair() {
	local name=$1 tool=$2 rc=1 srv
	shift 2
	port=$((port + 1))
	"$tool" -d "$dev_b" -R -F -p "$port" "$@" >"$work/$name.srv" 2>&1 &
	srv=$!
	# the server needs a moment to listen (process start is slow in the
	# guest); a client that came too early is refused at once: try again
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		sleep 0.5
		kill -0 "$srv" 2>/dev/null || break
		timeout 120 "$tool" -d "$dev_a" -R -F -p "$port" "$@" "$addr_b" >"$work/$name.cli" 2>&1
		rc=$?
		[ "$rc" != 0 ] || break
		grep -qiE 'reject|refused|unreachable|failed to connect|Couldn.t connect' "$work/$name.cli" || break
	done
	if [ "$rc" = 0 ]; then
		wait "$srv" || true
	else
		kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
		echo "perftest-rxe: $name failed (client rc $rc); client said:" >&2
		tail -n 15 "$work/$name.cli" >&2
		echo "perftest-rxe: server said:" >&2
		tail -n 15 "$work/$name.srv" >&2
	fi
	return "$rc"
}

# the first line of figures after the header that starts with " #bytes"
figures() { awk '/^ *#bytes/ { h = 1; next } h && NF > 2 { print; exit }' "$1"; }

fail=0
lat="" bw=""
echo "perftest-rxe: $dev_a ($addr_a) -> $dev_b ($addr_b), mode ${RXP_VM_MODE:-?}"
t0=${EPOCHREALTIME/./}
if run_pair send_lat ib_send_lat -n "$lat_iters"; then
	figures "$work/send_lat.cli" | sed 's/^/  ib_send_lat: /'
	# bytes iters t_min t_max t_typical t_avg t_stdev p99 p99.9
	lat=$(figures "$work/send_lat.cli" | awk '{ printf "t_typical %s us, t_avg %s us, t_min %s us, p99 %s us", $5, $6, $3, $8 }')
	[ -n "$lat" ] || fail=1
else
	fail=1
fi
if run_pair write_bw ib_write_bw -s 65536 -n "$bw_iters" --report_gbits; then
	figures "$work/write_bw.cli" | sed 's/^/  ib_write_bw: /'
	# bytes iters BW_peak BW_avg MsgRate
	bw=$(figures "$work/write_bw.cli" | awk '{ printf "BW avg %s Gb/s (peak %s), %s Mpps", $4, $3, $5 }')
	[ -n "$bw" ] || fail=1
else
	fail=1
fi
# rxp itself over the same device pair, with rxp-perf (server rank 0 on
# A, client rank 1 bound to B), when the build has it ($RXP_PERF_BIN)
rxp_lat="" rxp_bw=""
run_rxp() { # name, rxp-perf client args...
	local name=$1 srv rc=1
	shift
	port=$((port + 1))
	RXP_LOG=warn "$RXP_PERF_BIN" --transport verbs --bind "$addr_a" -p "$port" \
		>"$work/$name.srv" 2>&1 &
	srv=$!
	RXP_LOG=warn RXP_BIND_ADDR=$addr_b timeout 300 "$RXP_PERF_BIN" --transport verbs \
		-p "$port" "$@" "$addr_a" >"$work/$name.cli" 2>&1
	rc=$?
	wait "$srv" 2>/dev/null || true
	if [ "$rc" != 0 ]; then
		echo "perftest-rxe: rxp-perf $name failed (rc $rc):" >&2
		tail -n 15 "$work/$name.cli" "$work/$name.srv" >&2
	fi
	return "$rc"
}
if [ -n "${RXP_PERF_BIN:-}" ] && [ -x "$RXP_PERF_BIN" ]; then
	if run_rxp rxp_lat -s 0 -n 300; then
		cat "$work/rxp_lat.cli" | sed 's/^/  rxp-perf: /'
		rxp_lat=$(grep -oE 'p50 +[0-9.]+' "$work/rxp_lat.cli" | head -1)
		rxp_lat=${rxp_lat:+$rxp_lat us}
	else
		fail=1
	fi
	# one way, 16 calls in flight, as ib_*_bw counts
	if run_rxp rxp_bw --bw -s 1m -n 64 --warmup 4; then
		cat "$work/rxp_bw.cli" | sed 's/^/  rxp-perf: /'
		rxp_bw=$(grep -oE '[0-9.]+ MB/s' "$work/rxp_bw.cli" | head -1)
	else
		fail=1
	fi
fi
t1=${EPOCHREALTIME/./}
echo "perftest-rxe: summary ($(( (t1 - t0) / 1000000 )) s; TCG guest, informational only)"
echo "  ib_send_lat  2 B x $lat_iters:    ${lat:-FAILED}"
echo "  ib_write_bw  64 KiB x $bw_iters: ${bw:-FAILED}"
if [ -n "${RXP_PERF_BIN:-}" ]; then
	echo "  rxp verbs tiny call round trip: ${rxp_lat:-FAILED} (ib_send_lat t_typical is one way)"
	echo "  rxp verbs 1 MiB x 64 one way:   ${rxp_bw:-FAILED} (--bw: bytes sent, one direction)"
fi
exit "$fail"
