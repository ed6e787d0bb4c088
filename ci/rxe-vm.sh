#!/usr/bin/env bash
# shellcheck disable=SC2054 # qemu options are comma lists
# ci/rxe-vm.sh: run a command inside a throwaway QEMU guest that has rxe
# (soft-RoCE) devices, on a host that has no RDMA of its own.
#
#   ci/rxe-vm.sh [options] -- CMD [ARGS...]
#
#   --mode two|one   two (default): rxe0 on eth0 10.66.0.1 and rxe1 on eth1
#                    10.66.0.2, a veth pair joined by policy routing so that
#                    traffic between them crosses the wire; one: rxe0 on a
#                    dummy netdev eth0 10.66.0.1 (loopback to itself).
#   --timeout SEC    whole run, boot included (default 900); exit 201 past it
#   --share DIR      share DIR read-write at the same path (repeatable); with
#                    no --share the current directory is shared (unless /)
#   --env K=V        set K in the command's environment (repeatable)
#   --mtu N          MTU of the guest netdevs (default 1500; rxe uses 1024)
#   --mem MB         guest memory (default 1024)
#   --keep           keep the control dir (console log) and print its path
#   -q, --quiet      no timing line on stderr
#
# CMD runs as root in a chroot of the host's root (read-only 9p), cwd = the
# host cwd (if it exists in the guest), stdin /dev/null, its stdout and
# stderr streamed to our stdout through a second serial port. Its
# environment: RXP_VM=1 RXP_VM_MODE RXP_ADDR_A [RXP_ADDR_B] RXP_VM_DEV_A
# [RXP_VM_DEV_B] RXP_VM_GID_A [RXP_VM_GID_B] (index of the RoCEv2 IPv4 GID),
# plus the host's RXP_*, CTEST_*, *SAN_OPTIONS and CI variables.
#
# Exit: CMD's exit code; 200 when the guest could not be prepared, booted or
# set up (no rxe device, no GID...), with the guest console on stderr; 201
# on timeout. The guest has no NIC (-nic none): no packet leaves it.
#
# Environment: RXP_VM_CACHE (default /var/cache/rxp-vm, else ~/.cache/rxp-vm)
# holds the guest kernel, modules and initramfs per kernel version;
# RXP_VM_ACCEL=tcg|kvm forces the accelerator; RXP_VM_BOOT_TIMEOUT (180 s)
# bounds the boot alone; RXP_VM_KERNEL_PKG forces the kernel package.
set -euo pipefail

readonly E_SETUP=200 E_TIMEOUT=201
ADDR_A=10.66.0.1 ADDR_B=10.66.0.2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mode=two timeout=900 mtu=1500 mem=1024 keep=0 quiet=0
shares=() extra_env=()

say() { [ "$quiet" = 1 ] || echo "rxe-vm: $*" >&2; }
die() { echo "rxe-vm: ERROR: $*" >&2; exit "$E_SETUP"; }
usage() { sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-2}"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
secs() { printf '%d.%d' $(($1 / 1000)) $((($1 % 1000) / 100)); }

while [ $# -gt 0 ]; do
	case "$1" in
	--mode) mode=${2:?}; shift 2 ;;
	--mode=*) mode=${1#*=}; shift ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--timeout=*) timeout=${1#*=}; shift ;;
	--share) shares+=("${2:?}"); shift 2 ;;
	--share=*) shares+=("${1#*=}"); shift ;;
	--env) extra_env+=("${2:?}"); shift 2 ;;
	--env=*) extra_env+=("${1#*=}"); shift ;;
	--mtu) mtu=${2:?}; shift 2 ;;
	--mem) mem=${2:?}; shift 2 ;;
	--keep) keep=1; shift ;;
	-q|--quiet) quiet=1; shift ;;
	-h|--help) usage 0 ;;
	--) shift; break ;;
	-*) echo "rxe-vm: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "rxe-vm: no command given" >&2; usage; }
case "$mode" in one|two) ;; *) echo "rxe-vm: --mode one|two" >&2; usage ;; esac
[[ "$timeout" =~ ^[0-9]+$ && "$mtu" =~ ^[0-9]+$ && "$mem" =~ ^[0-9]+$ ]] ||
	{ echo "rxe-vm: --timeout/--mtu/--mem take numbers" >&2; usage; }
boot_timeout=${RXP_VM_BOOT_TIMEOUT:-180}

t_start=$(now_ms)

# ------------------------------------------------------------ host packages
if ! "$HERE/deps.sh" --vm --check >/dev/null 2>&1; then
	say "installing the guest's host packages"
	"$HERE/deps.sh" --vm >&2 || die "could not install the host packages (ci/deps.sh --vm)"
fi

# ------------------------------------------------- cache: kernel + modules
if [ -n "${RXP_VM_CACHE:-}" ]; then
	cache=$RXP_VM_CACHE
elif mkdir -p /var/cache/rxp-vm 2>/dev/null && [ -w /var/cache/rxp-vm ]; then
	cache=/var/cache/rxp-vm
else
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/rxp-vm
fi
mkdir -p "$cache" || die "cannot create the cache dir $cache"

# Modules the guest loads (with their dependencies, in order). crc32_generic
# first: without it rxe fails "failed to init crc32 algorithm err:-2".
# configfs/ib_cm/iw_cm/rdma_cm/rdma_ucm are for librdmacm.
ROOT_MODS="crc32_generic virtio_pci 9pnet_virtio 9p rdma_rxe rdma_ucm dummy veth sch_netem"

apt_update_done=0
apt_update() {
	[ "$apt_update_done" = 0 ] || return 0
	apt_update_done=1
	say "apt-get update"
	if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 || true
	else sudo -n apt-get update -qq >&2 || true; fi
}
resolve_kpkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | sed -n 1p || true
}

prepare_kernel() { # $1 = kernel package; fills $cache/$kver
	local pkg=$1 kver=${1#linux-image-} dir scratch deb m r
	dir=$cache/$kver
	scratch=$(mktemp -d "$cache/.scratch.XXXXXX")
	(
		set -euo pipefail
		cd "$scratch"
		if ! apt-get download -o APT::Sandbox::User="$(id -un)" "$pkg" >/dev/null 2>apt.err; then
			apt_update
			apt-get download -o APT::Sandbox::User="$(id -un)" "$pkg" >/dev/null 2>apt.err ||
				{ cat apt.err >&2; exit 1; }
		fi
		deb=$(echo ./*.deb)
		mkdir root
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C root ./boot ./lib/modules
		rm -f "$deb"
		depmod -b root "$kver"
		mkdir -p out/modules
		# vmlinux out of vmlinuz: qemu boots the ELF through its PVH note
		# (much faster than the bzImage under TCG)
		off=$(LC_ALL=C grep -m1 -obUaP '\xfd7zXZ\x00' "root/boot/vmlinuz-$kver" | cut -d: -f1 | sed -n 1p)
		[ -n "$off" ] || { echo "no xz payload in vmlinuz" >&2; exit 1; }
		set +o pipefail # tail gets SIGPIPE once xz has its stream
		tail -c +$((off + 1)) "root/boot/vmlinuz-$kver" | xz -dc --single-stream >out/vmlinux
		set -o pipefail
		file_magic=$(od -An -c -N4 out/vmlinux | tr -d ' ')
		[ "$file_magic" = '177ELF' ] || { echo "vmlinux is not ELF" >&2; exit 1; }
		: >out/modules.order
		for m in $ROOT_MODS; do
			modprobe -d root -S "$kver" --show-depends "$m" | while read -r ins path args; do
				[ "$ins" = insmod ] || continue
				base=$(basename "$path")
				grep -q "^$base\b" out/modules.order && continue
				strip --strip-debug -o "out/modules/$base" "$path"
				case "$base" in dummy.ko) args="numdummies=0" ;; esac
				echo "$base${args:+ $args}" >>out/modules.order
			done
		done
		echo "$pkg" >out/package
		echo "$ROOT_MODS" >out/roots
		rm -rf "$dir"
		mv out "$dir"
	)
	r=$?
	rm -rf "$scratch"
	return "$r"
}
# (call it with set +e, never in an if/||: bash would then ignore the
# subshell's set -e and a failed step could leave a half-made cache)

kernel_ready() { # prepared, for the same module list
	[ -s "$cache/$1/vmlinux" ] && [ -s "$cache/$1/modules.order" ] &&
		[ "$(cat "$cache/$1/roots" 2>/dev/null)" = "$ROOT_MODS" ]
}

t_prep=$(now_ms)
exec 9>"$cache/.lock"
flock 9
kpkg=${RXP_VM_KERNEL_PKG:-$(resolve_kpkg)}
if [ -z "$kpkg" ]; then
	apt_update
	kpkg=$(resolve_kpkg)
fi
if [ -n "$kpkg" ]; then
	kver=${kpkg#linux-image-}
	if ! kernel_ready "$kver"; then
		say "preparing guest kernel $kver in $cache (first run only)"
		# not in an if/|| context: its set -e must hold
		set +e; prepare_kernel "$kpkg"; prc=$?; set -e
		if [ "$prc" != 0 ]; then # an old package list? update, try again
			apt_update
			kpkg2=$(resolve_kpkg)
			if [ -n "$kpkg2" ] && [ "$kpkg2" != "$kpkg" ]; then
				kpkg=$kpkg2 kver=${kpkg#linux-image-}
			fi
			if ! kernel_ready "$kver"; then
				set +e; prepare_kernel "$kpkg"; set -e
			fi
		fi
	fi
fi
if [ -z "${kver:-}" ] || ! kernel_ready "$kver"; then
	# offline, or the archive moved on: fall back to what the cache has
	old=$(ls -1d "$cache"/[0-9]*-amd64 2>/dev/null | sort -V | tail -n1 || true)
	[ -n "$old" ] && kernel_ready "$(basename "$old")" ||
		die "could not get a guest kernel (apt-cache depends linux-image-amd64 -> '${kpkg:-}')"
	kver=$(basename "$old")
	say "WARNING: using cached kernel $kver (could not fetch ${kpkg:-the current one})"
fi
kdir=$cache/$kver
# drop kernels the archive no longer names
for d in "$cache"/[0-9]*-amd64; do
	[ -d "$d" ] && [ "$d" != "$kdir" ] && rm -rf "$d"
done

# ------------------------------------------------------------ initramfs
# PID 1 of the guest. Everything that varies per run comes from the ctl
# share (guest.conf, shares, ip.batch, rdma.batch, run.sh), so this only
# changes when this script does. Its stdout is the console (ttyS0), which
# the host keeps in ctl/console.log and prints when set-up fails.
read -r -d '' INIT <<'EOF_INIT' || true
#!/bin/sh
export PATH=/bin
fail() {
	echo "rxp-vm-guest: SETUP FAILED: $*"
	[ -d /ctl/. ] && echo "$*" >/ctl/setup-failed
	sync
	poweroff -f
	sleep 60
}
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo /bin/true >/proc/sys/kernel/modprobe
while read -r m args; do
	insmod "/modules/$m" $args || fail "insmod $m $args"
done </modules.order
mkdir -p /ctl /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 ctl /ctl ||
	fail "mount ctl share"
. /ctl/guest.conf || fail "read guest.conf"
echo "$(cut -d' ' -f1 /proc/uptime)" >/ctl/t-init
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /newroot ||
	fail "mount hostroot"
R=/newroot
for d in tmp run var/tmp root; do mount -t tmpfs tmpfs "$R/$d" || fail "tmpfs $d"; done
chmod 1777 "$R/tmp" "$R/var/tmp"
mount -t proc proc "$R/proc" && mount -t sysfs sys "$R/sys" &&
	mount -t devtmpfs dev "$R/dev" || fail "proc/sys/dev in newroot"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts" &&
	mount -t tmpfs tmpfs "$R/dev/shm" || fail "devpts/shm"
mkdir -p "$R$CTL" && mount -o bind /ctl "$R$CTL" || fail "bind ctl at $CTL"
while read -r tag path; do
	[ -n "$tag" ] || continue
	mkdir -p "$R$path" 2>/dev/null
	mount -t 9p -o trans=virtio,version=9p2000.L,cache=mmap,msize=512000 "$tag" "$R$path" ||
		fail "mount share $path"
done </ctl/shares
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6
echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6
chroot "$R" /bin/ip -batch "$CTL/ip.batch" || fail "ip -batch (network set-up)"
for i in all default $NETDEVS; do
	echo 1 >/proc/sys/net/ipv4/conf/$i/accept_local
	echo 0 >/proc/sys/net/ipv4/conf/$i/rp_filter
done
chroot "$R" /bin/rdma -b "$CTL/rdma.batch" || fail "rdma link add (rxe)"
# wait for each port ACTIVE and its RoCEv2 IPv4 GID (builtins only: rxe
# has 1024 GID entries and every process start is slow under TCG)
: >/ctl/gid.env
for want in $GIDS; do
	dev=${want%%=*} rest=${want#*=} var=${rest%%=*} gid=${rest#*=}
	p=/sys/class/infiniband/$dev/ports/1
	n=0 idx=
	while [ $n -lt 200 ]; do
		st=; read -r st <"$p/state" 2>/dev/null
		if [ "${st#*ACTIVE}" != "$st" ]; then
			i=0
			while [ $i -lt 16 ]; do
				g=; read -r g <"$p/gids/$i" 2>/dev/null
				t=; read -r t <"$p/gid_attrs/types/$i" 2>/dev/null
				if [ "$g" = "$gid" ] && [ "$t" = "RoCE v2" ]; then idx=$i; break; fi
				i=$((i + 1))
			done
		fi
		[ -n "$idx" ] && break
		n=$((n + 1))
		sleep 0.05
	done
	[ -n "$idx" ] || fail "$dev: port not ACTIVE or no RoCEv2 GID $gid (state: $st)"
	echo "export $var=$idx" >>/ctl/gid.env
done
echo "$(cut -d' ' -f1 /proc/uptime)" >/ctl/booted
stty -F /dev/ttyS1 raw -echo 2>/dev/null
chroot "$R" /usr/bin/env -i /bin/bash --noprofile --norc "$CTL/run.sh" </dev/null 2>&1 |
	cat >/dev/ttyS1
sync
poweroff -f
sleep 60
EOF_INIT

bb=$(command -v busybox) || die "busybox not found"
ikey=$( { echo "$INIT"; cat "$kdir/modules.order"; busybox 2>&1 | sed -n 1p; } | sha256sum | cut -c1-16)
initrd=$kdir/initrd-$ikey.img
if [ ! -s "$initrd" ]; then
	say "building initramfs $initrd"
	irt=$(mktemp -d "$cache/.initrd.XXXXXX")
	set +e
	(
		set -euo pipefail
		cd "$irt"
		mkdir -p bin proc sys dev ctl newroot modules
		cp "$bb" bin/busybox
		for a in $(bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "bin/$a"; done
		cp "$kdir"/modules/*.ko modules/
		cp "$kdir/modules.order" modules.order
		printf '%s\n' "$INIT" >init
		chmod 755 init
		find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 >"$initrd.tmp"
	)
	irc=$?
	set -e
	[ "$irc" = 0 ] || { rm -rf "$irt" "$initrd.tmp"; die "could not build the initramfs"; }
	rm -rf "$irt"
	rm -f "$kdir"/initrd-*.img
	mv "$initrd.tmp" "$initrd"
fi
flock -u 9
exec 9>&-
t_prep=$(( $(now_ms) - t_prep ))

# ------------------------------------------------------------ control dir
ctl=$(mktemp -d "${TMPDIR:-/tmp}/rxp-vm.XXXXXX")
ctl=$(cd "$ctl" && pwd -P)
qpid=
cleanup() {
	[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
	if [ "$keep" = 1 ]; then echo "rxe-vm: kept $ctl" >&2; else rm -rf "$ctl"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cwd=$(pwd -P)
if [ ${#shares[@]} = 0 ] && [ "$cwd" != / ]; then shares=("$cwd"); fi
for s in "${shares[@]}"; do
	[ -d "$s" ] || die "--share $s: no such directory"
done
share_args=()
: >"$ctl/shares"
declare -A seen=()
n=0
# shortest first, so that a share inside another is mounted on top of it
while IFS= read -r s; do
	[ -n "$s" ] || continue
	[ -z "${seen[$s]:-}" ] || continue
	seen[$s]=1
	[ "$s" != / ] || die "--share / is not allowed (the host root is shared read-only)"
	share_args+=(-fsdev "local,id=rw$n,path=${s//,/,,},security_model=none,multidevs=remap"
		     -device "virtio-9p-pci,fsdev=rw$n,mount_tag=rw$n")
	printf 'rw%d %s\n' "$n" "$s" >>"$ctl/shares"
	n=$((n + 1))
done < <(for s in "${shares[@]}"; do
		p=$(cd "$s" && pwd -P); printf '%d %s\n' "${#p}" "$p"
	 done | sort -n | cut -d' ' -f2-)

gid_of() { # 10.66.0.1 -> sysfs form of its IPv4-mapped GID
	local IFS=. a b c d
	read -r a b c d <<<"$1"
	printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' "$a" "$b" "$c" "$d"
}
{
	echo "link set lo up"
	if [ "$mode" = two ]; then
		cat <<-EOF
		link add eth0 mtu $mtu type veth peer name eth1 mtu $mtu
		addr add $ADDR_A/24 dev eth0
		addr add $ADDR_B/24 dev eth1
		link set eth0 up
		link set eth1 up
		rule add pref 10 to $ADDR_B iif lo lookup 10
		rule add pref 11 to $ADDR_A iif lo lookup 11
		rule add pref 100 lookup local
		rule del pref 0 lookup local
		route add $ADDR_B dev eth0 src $ADDR_A table 10
		route add $ADDR_A dev eth1 src $ADDR_B table 11
		EOF
	else
		cat <<-EOF
		link add eth0 mtu $mtu type dummy
		addr add $ADDR_A/24 dev eth0
		link set eth0 up
		EOF
	fi
} >"$ctl/ip.batch"
{
	echo "link add rxe0 type rxe netdev eth0"
	[ "$mode" = one ] || echo "link add rxe1 type rxe netdev eth1"
} >"$ctl/rdma.batch"
gids="rxe0=RXP_VM_GID_A=$(gid_of $ADDR_A)"
[ "$mode" = one ] || gids+=" rxe1=RXP_VM_GID_B=$(gid_of $ADDR_B)"
netdevs=eth0
[ "$mode" = one ] || netdevs="eth0 eth1"
printf 'CTL=%q\nNETDEVS=%q\nGIDS=%q\n' "$ctl" "$netdevs" "$gids" >"$ctl/guest.conf"

# the command's script: a clean environment, then what we pass through
{
	echo '#!/bin/bash'
	echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	echo 'export HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 TMPDIR=/tmp'
	while IFS= read -r v; do
		case "$v" in
		RXP_*|CTEST_*|*SAN_OPTIONS|CI) printf 'export %s=%q\n' "$v" "${!v}" ;;
		esac
	done < <(compgen -e)
	for kv in "${extra_env[@]+"${extra_env[@]}"}"; do
		[[ "$kv" == [A-Za-z_]*=* ]] || die "--env $kv: want NAME=VALUE"
		printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
	done
	echo "export RXP_VM=1 RXP_VM_MODE=$mode RXP_ADDR_A=$ADDR_A RXP_VM_DEV_A=rxe0"
	if [ "$mode" = two ]; then
		echo "export RXP_ADDR_B=$ADDR_B RXP_VM_DEV_B=rxe1"
	else
		echo "unset RXP_ADDR_B RXP_VM_DEV_B RXP_VM_GID_B"
	fi
	printf '. %q\n' "$ctl/gid.env"
	echo 'ulimit -l unlimited 2>/dev/null; ulimit -c 0'
	printf 'cd %q 2>/dev/null || { echo "rxe-vm: cwd %s is not in the guest (not shared?), running in /" >&2; cd /; }\n' "$cwd" "$cwd"
	printf '%q ' "$@"
	echo
	printf 'echo $? >%q\n' "$ctl/rc"
} >"$ctl/run.sh"

# ------------------------------------------------------------ qemu
accel=(-accel tcg,thread=multi -cpu max)
want_accel=${RXP_VM_ACCEL:-auto}
if [ "$want_accel" = kvm ] || { [ "$want_accel" = auto ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
	[ ! -e /sys/module/kvm_pvm ] && { [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; }; }; then
	# a real KVM (the nested "PVM" one cannot run a stock kernel)
	accel=(-accel kvm -cpu host)
fi
smp=$(nproc); [ "$smp" -le 2 ] || smp=2
qemu=(qemu-system-x86_64 -M pc "${accel[@]}" -m "$mem" -smp "$smp"
	-nodefaults -no-user-config -display none -no-reboot -nic none
	-serial "file:$ctl/console.log" -serial stdio
	-kernel "$kdir/vmlinux" -initrd "$initrd"
	-append "console=ttyS0 quiet loglevel=3 panic=-1 cryptomgr.notests tsc=reliable no_timer_check 8250.nr_uarts=2"
	-fsdev "local,id=fs0,path=/,security_model=none,multidevs=remap,readonly=on"
	-device virtio-9p-pci,fsdev=fs0,mount_tag=hostroot
	-fsdev "local,id=fs1,path=${ctl//,/,,},security_model=none,multidevs=remap"
	-device virtio-9p-pci,fsdev=fs1,mount_tag=ctl
	"${share_args[@]}")

show_console() {
	echo "rxe-vm: ---- guest console (last 40 lines) ----" >&2
	tail -n 40 "$ctl/console.log" 2>/dev/null | tr -d '\r' >&2 || true
	echo "rxe-vm: ----" >&2
}

say "kernel $kver, mode $mode, ${accel[1]%%,*}, shares: $(cut -d' ' -f2- "$ctl/shares" | tr '\n' ' ')"
t_boot0=$(now_ms)
"${qemu[@]}" </dev/null 2>"$ctl/qemu.err" &
qpid=$!
deadline=$((t_start + timeout * 1000))
boot_deadline=$((t_boot0 + boot_timeout * 1000))
t_booted=
why=
while kill -0 "$qpid" 2>/dev/null; do
	t=$(now_ms)
	if [ -z "$t_booted" ] && [ -e "$ctl/booted" ]; then t_booted=$t; fi
	if [ "$t" -ge "$deadline" ]; then why=timeout; break; fi
	if [ -z "$t_booted" ] && [ "$t" -ge "$boot_deadline" ]; then why=boot-timeout; break; fi
	sleep 0.2
done
if [ -n "$why" ]; then
	kill "$qpid" 2>/dev/null || true
	sleep 0.5
	kill -9 "$qpid" 2>/dev/null || true
fi
qrc=0
wait "$qpid" || qrc=$?
qpid=
t_end=$(now_ms)
[ -n "$t_booted" ] || [ ! -e "$ctl/booted" ] || t_booted=$t_end

timing() {
	local b=- c=-
	[ -z "$t_booted" ] || { b=$(secs $((t_booted - t_boot0))); c=$(secs $((t_end - t_booted))); }
	say "prepare $(secs "$t_prep") s, boot $b s, command $c s, total $(secs $((t_end - t_start))) s; $1"
}

if [ "$why" = boot-timeout ] || { [ "$why" = timeout ] && [ -z "$t_booted" ]; }; then
	show_console
	echo "rxe-vm: ERROR: the guest did not finish booting within $((boot_deadline > deadline ? timeout : boot_timeout)) s" >&2
	timing "exit $E_SETUP"
	exit "$E_SETUP"
fi
if [ "$why" = timeout ]; then
	echo "rxe-vm: ERROR: timeout: the command ran past --timeout $timeout s; guest killed" >&2
	timing "exit $E_TIMEOUT"
	exit "$E_TIMEOUT"
fi
if [ -s "$ctl/rc" ]; then
	rc=$(<"$ctl/rc")
	timing "exit $rc"
	exit "$rc"
fi
show_console
[ ! -s "$ctl/qemu.err" ] || { echo "rxe-vm: qemu said:" >&2; cat "$ctl/qemu.err" >&2; }
if [ -e "$ctl/setup-failed" ]; then
	echo "rxe-vm: ERROR: guest set-up failed: $(<"$ctl/setup-failed")" >&2
elif [ -n "$t_booted" ]; then
	echo "rxe-vm: ERROR: the guest stopped before the command finished (no exit code; qemu rc $qrc)" >&2
else
	echo "rxe-vm: ERROR: the guest did not boot (qemu rc $qrc)" >&2
fi
timing "exit $E_SETUP"
exit "$E_SETUP"
