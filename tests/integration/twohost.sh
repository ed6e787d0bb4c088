#!/bin/sh
# Two "hosts": network namespaces joined by a veth pair (10.77.0.1/24,
# 10.77.0.2/24). rxp_pingpong runs rank 0 in one and rank 1 in the other,
# with default settings and then with RXP_SOCKET_IFNAME; each must
# advertise its 10.77.0.x address (never 127.0.0.1 or 0.0.0.0) and the
# calls must work. Then rxp-perf (if given) with its defaults: the server
# serves on every interface and must advertise 10.77.0.1 to the client.
# Needs root, ip and unshare: else exit 77 (skipped).
# usage: twohost.sh <rxp_pingpong> [<rxp-perf>]
pp=$1 perf=${2:-}
command -v ip >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 || exit 77
[ "$(id -u)" = 0 ] || exit 77
a=rxpA$$ b=rxpB$$ dir=$(mktemp -d)
cleanup() { ip netns del $a 2>/dev/null; ip netns del $b 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
ip netns add $a && ip netns add $b || exit 77
ip link add va$$ netns $a type veth peer name vb$$ netns $b || exit 77
ip -n $a addr add 10.77.0.1/24 dev va$$ && ip -n $a link set va$$ up &&
	ip -n $a link set lo up && ip -n $b addr add 10.77.0.2/24 dev vb$$ &&
	ip -n $b link set vb$$ up && ip -n $b link set lo up || exit 1

# $1: label; $2: program; $3, $4: rank 0's environment and arguments (in
# A); $5, $6: rank 1's (in B). Both must exit 0 and rank 0 must advertise
# 10.77.0.1; the logs are in $dir/s.log and $dir/c.log.
pair() {
	ip netns exec $a env $3 "$2" $4 >"$dir/s.log" 2>&1 &
	sp=$!
	ip netns exec $b env $5 timeout 30 "$2" $6 >"$dir/c.log" 2>&1
	crc=$?
	wait $sp
	src=$?
	cat "$dir/s.log" "$dir/c.log" | sed "s/^/$1: /"
	[ $crc = 0 ] && [ $src = 0 ] || { echo "$1: exit $src/$crc"; exit 1; }
	grep -q "up on tcp 10.77.0.1:" "$dir/s.log" || { echo "$1: rank 0 did not advertise 10.77.0.1"; exit 1; }
}
run() { # $1: label; $2, $3: rank 0's and rank 1's environment
	pair "$1" "$pp" "$2" "server 29511" "$3" "client 10.77.0.1 29511"
	grep -q "up on tcp 10.77.0.2:" "$dir/c.log" || { echo "$1: rank 1 did not advertise 10.77.0.2"; exit 1; }
}
run default RXP_TRANSPORT=tcp RXP_TRANSPORT=tcp
run ifname "RXP_TRANSPORT=tcp RXP_SOCKET_IFNAME=va" "RXP_TRANSPORT=tcp RXP_SOCKET_IFNAME=vb"
run wildcard "RXP_TRANSPORT=tcp RXP_BIND_ADDR=0.0.0.0" "RXP_TRANSPORT=tcp RXP_BIND_ADDR=0.0.0.0"
if [ -n "$perf" ] && [ -x "$perf" ]; then
	# perftest's habit: a server with no address, a client naming it
	pair rxp-perf "$perf" "" "-p 29512 -n 100" "" "-p 29512 -n 100 10.77.0.1"
	grep -q "p50" "$dir/c.log" || { echo "rxp-perf: no result"; exit 1; }
fi
echo ok
