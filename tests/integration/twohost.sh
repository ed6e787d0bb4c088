#!/bin/sh
# Two "hosts": network namespaces joined by a veth pair (10.77.0.1/24,
# 10.77.0.2/24). rxp_pingpong runs rank 0 in one and rank 1 in the other,
# with default settings and then with RXP_SOCKET_IFNAME; each must
# advertise its 10.77.0.x address (never 127.0.0.1 or 0.0.0.0) and the
# calls must work. Then rxp-perf (if given) with its defaults: the server
# serves on every interface and must advertise 10.77.0.1 to the client.
# Then a world of three with the default transport (issue 11): ranks 0
# and 1 in A must reach each other by shm, and rank 2 in B both of them by
# tcp; every worker calls every other one.
# Needs root, ip and unshare: else exit 77 (skipped).
# usage: twohost.sh <rxp_pingpong> [<rxp-perf> [<mixed_worker>]]
pp=$1 perf=${2:-} mixed=${3:-}
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
	grep -Eq "up on tcp(\+shm)? 10.77.0.1:" "$dir/s.log" || { echo "$1: rank 0 did not advertise 10.77.0.1"; exit 1; }
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
if [ -n "$mixed" ]; then
	for r in 0 1; do
		ip netns exec $a "$mixed" $r 10.77.0.1 29513 >"$dir/m$r.log" 2>&1 &
		eval "p$r=\$!"
	done
	ip netns exec $b timeout 30 "$mixed" 2 10.77.0.1 29513 >"$dir/m2.log" 2>&1
	rc2=$?
	wait $p0; rc0=$?
	wait $p1; rc1=$?
	cat "$dir/m0.log" "$dir/m1.log" "$dir/m2.log" | sed "s/^/mixed: /"
	[ $rc0 = 0 ] && [ $rc1 = 0 ] && [ $rc2 = 0 ] || { echo "mixed: exit $rc0/$rc1/$rc2"; exit 1; }
	# who connected how: a rank logs the peers it reached by shm, and the
	# ones that reached it (one connection may serve both ways)
	shm_with() { # $1: log, $2: the peer's rank
		grep -Eq "worker $2 is on this host: shm|shm: accepted a connection from worker $2 " "$1"
	}
	shm_with "$dir/m0.log" 1 || shm_with "$dir/m1.log" 0 ||
		{ echo "mixed: ranks 0 and 1 did not connect by shm"; exit 1; }
	if shm_with "$dir/m0.log" 2 || shm_with "$dir/m1.log" 2 ||
		shm_with "$dir/m2.log" 0 || shm_with "$dir/m2.log" 1; then
		echo "mixed: rank 2 (another namespace) was reached by shm"; exit 1
	fi
	grep -c "called both others over tcp+shm" "$dir"/m?.log | grep -q ':0' &&
		{ echo "mixed: a rank did not use tcp+shm"; exit 1; }
fi
echo ok
