#!/bin/sh
# The tools' usage paths, and rxp-perf over tcp on a private loopback.
# usage: tools.sh <rxp-perf> <rxp-info> <check_perf_json.py> [tcp_pingpong]
perf=$1 info=$2 check=$3 tcppp=${4:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
fail() { echo "FAIL: $*"; exit 1; }

# want CODE PATTERN TOOL ARGS...: exit CODE, PATTERN in stdout+stderr
want() {
	code=$1 pat=$2
	shift 2
	"$@" >"$dir/out" 2>&1
	rc=$?
	[ "$rc" = "$code" ] || { cat "$dir/out"; fail "$* exited $rc, not $code"; }
	grep -q -- "$pat" "$dir/out" || { cat "$dir/out"; fail "$*: no '$pat'"; }
}
want 0 "usage: rxp-perf" "$perf" --help
"$perf" --help 2>/dev/null | grep -q -- "--tx-depth" || fail "rxp-perf --help not on stdout"
want 2 "unknown flag -q" "$perf" -q
want 2 "unknown flag --nope" "$perf" --nope
want 2 "is -t/--tx-depth now" "$perf" -w 4 host
want 2 "the transport is --transport" "$perf" -t tcp host
want 2 "is --verify now" "$perf" -V host
want 2 "is --bind 10.0.0.1 now" "$perf" -a 10.0.0.1
want 2 "is --bind 10.0.0.1 now" "$perf" -p 1 -a 10.0.0.1 -n 5
want 2 "'1x' is not a size" "$perf" -s 1x host
want 2 "'tcpp' is not auto, tcp, verbs or shm" "$perf" --transport tcpp host
want 2 "\-n needs a value" "$perf" -n
want 2 "\-a and -s" "$perf" -a -s 64 host
want 0 "usage: rxp-info" "$info" --help
want 2 "unknown flag --nope" "$info" --nope
want 2 "usage: rxp-info" "$info" a b
want 0 "^  RXP_POLL_US=7$" env -u RXP_TRANSPORT -u RXP_SOCKET_IFNAME RXP_POLL_US=7 "$info"
want 1 "RXP_SOCKET_IFNAME==nosuchif0" env -u RXP_TRANSPORT RXP_SOCKET_IFNAME==nosuchif0 "$info"
if [ -n "$tcppp" ]; then
	want 0 "usage: tcp_pingpong" "$tcppp" --help
	"$tcppp" --help 2>/dev/null | grep -q "usage: tcp_pingpong" || fail "tcp_pingpong --help not on stdout"
	want 2 "usage: tcp_pingpong" "$tcppp" --nope
fi

command -v unshare >/dev/null 2>&1 || exit 77
unshare -n true 2>/dev/null || exit 77
# a server per run, each on its own port; client: -a sweep, then --bw
unshare -n sh -c '
	ip link set lo up || exit 1
	perf=$1 dir=$2
	export RXP_LOG=warn
	"$perf" --transport tcp -p 18711 >"$dir/s1" 2>&1 &
	"$perf" --transport tcp -p 18711 -n 5 --warmup 1 --json 127.0.0.1 -a >"$dir/all.json" || exit 1
	wait $! || exit 1
	"$perf" --transport tcp -p 18712 >"$dir/s2" 2>&1 &
	"$perf" --transport tcp -p 18712 --bw -s 64k -n 50 --json 127.0.0.1 >"$dir/bw.json" || exit 1
	wait $! || exit 1
' sh "$perf" "$dir" || { cat "$dir"/s* "$dir"/*.json 2>/dev/null; fail "rxp-perf runs"; }
/usr/bin/python3 "$check" "$dir/all.json" "$dir/bw.json" || fail "rxp-perf JSON"
echo ok
