#!/bin/sh
# rxp-info's exit codes (issue 13): 0 for --help and a plain run, 2 for bad
# usage, 1 when what the environment asks for cannot be had (an interface
# name that matches nothing), with the variable named on stderr.
#   rxp_info_exit.sh PATH-TO-rxp-info
info=${1:?usage: rxp_info_exit.sh RXP_INFO}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
fail() { echo "FAIL: $*"; cat "$err"; exit 1; }
"$info" --help >/dev/null 2>"$err" || fail "--help exited $?"
"$info" >/dev/null 2>"$err" || fail "a plain run exited $?"
"$info" -x >/dev/null 2>"$err"; rc=$?
[ "$rc" = 2 ] || fail "bad option exited $rc, not 2"
"$info" a b >/dev/null 2>"$err"; rc=$?
[ "$rc" = 2 ] || fail "two arguments exited $rc, not 2"
RXP_SOCKET_IFNAME=rxp-no-such-if "$info" >/dev/null 2>"$err"; rc=$?
[ "$rc" = 1 ] || fail "RXP_SOCKET_IFNAME matching nothing exited $rc, not 1"
grep -q "RXP_SOCKET_IFNAME=rxp-no-such-if matches no interface" "$err" ||
	fail "the error does not name RXP_SOCKET_IFNAME"
echo "rxp-info exit codes: ok"
