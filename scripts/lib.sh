# shellcheck shell=bash
# Common settings and helpers for every vslice script. Sourced, never run.
#
# Cache layout (outside the work tree so that CI clones reuse it):
#   $VSLICE_CACHE/root/<rootkey>/        trixie build root (chroot)
#   $VSLICE_CACHE/work/                  bind-mounted at the same path in the root
#     kernel/src-<ver>-p<patches>/       unpacked linux-source, patches applied
#     kernel/<variant>-<kkey>/           kernel build trees (O=), one per key
#     build/                             module/initramfs outputs of the last run
#     results/<stamp>-<what>/            logs of every run
#   $VSLICE_CACHE/lock                   serialises build-root creation and builds
# Keys are content hashes: a change to pins, config fragments or the build
# scripts gives a new key and a rebuild; nothing else does.

set -euo pipefail

VSLICE_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VSLICE_CACHE=${VSLICE_CACHE:-${HOME:-/root}/.cache/vslice}
VSLICE_WORK=$VSLICE_CACHE/work
export VSLICE_TOP VSLICE_CACHE VSLICE_WORK
# The nested-QEMU run's device: more than 128 contexts (an instance's
# MSI-X table then outgrows the old fixed PBA offset) and more than 4 GiB
# of VRAM (the whole-device slice takes several scrub passes).
VSLICE_NESTED_HWSIM_ARGS='--contexts 192 --vram-mib 8192'

log() { printf '[vslice %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[vslice] error: %s\n' "$*" >&2; exit 1; }

need_root() {
	[ "$(id -u)" = 0 ] || die "this step needs root (debootstrap, chroot, mounts); run as root"
}

# need_disk DIR GIB: fail early with a clear message when DIR's fs is short.
need_disk() {
	local dir=$1 gib=$2 avail
	mkdir -p "$dir"
	avail=$(df -Pk "$dir" | awk 'NR==2 {print int($4 / 1048576)}')
	[ "$avail" -ge "$gib" ] || die "need ${gib} GiB free under $dir, have ${avail} GiB"
}

# hash_files FILE...: short content hash of the named files (names included).
hash_files() {
	local f
	for f in "$@"; do
		printf '%s\n' "${f#"$VSLICE_TOP"/}"
		cat "$f"
	done | sha256sum | cut -c1-16
}

# The build root's key: the pins and the script that builds the root.
root_key() { hash_files "$VSLICE_TOP/config/pins.conf" "$VSLICE_TOP/scripts/buildroot.sh"; }
root_dir() { echo "$VSLICE_CACHE/root/$(root_key)"; }

# require_root: the complete build root exists (built by scripts/buildroot.sh).
require_root() {
	[ -e "$(root_dir)/.complete" ] || "$VSLICE_TOP/scripts/buildroot.sh"
}

# with_lock NAME CMD...: run CMD holding $VSLICE_CACHE/NAME.lock exclusively.
with_lock() {
	local name=$1
	shift
	mkdir -p "$VSLICE_CACHE"
	(
		flock 9 || die "cannot lock $VSLICE_CACHE/$name.lock"
		"$@"
	) 9>"$VSLICE_CACHE/$name.lock"
}

# in_root CMD: run a bash command line inside the build root, in a private
# mount namespace so that every mount disappears with the process, whatever
# way it ends. The repo and the cache's work dir appear at the same paths.
in_root() {
	local root
	root=$(root_dir)
	[ -e "$root/.debootstrap-done" ] || die "build root $root is missing; run scripts/buildroot.sh"
	mkdir -p "$VSLICE_WORK"
	unshare --mount --propagation private -- bash -euc '
		root=$1; top=$2; work=$3; shift 3
		mount -t proc proc "$root/proc"
		mount -t sysfs sys "$root/sys"
		mount --rbind /dev "$root/dev"
		mount -t tmpfs tmp "$root/tmp"
		mkdir -p "$root$top" "$root$work"
		mount --bind "$top" "$root$top"
		mount --bind "$work" "$root$work"
		exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			VSLICE_TOP="$top" VSLICE_WORK="$work" TERM=dumb \
			/bin/bash -euc "$*"
	' _ "$root" "$VSLICE_TOP" "$VSLICE_WORK" "$*"
}

# logname NAME: NAME as a file name (stage and check logs).
logname() { printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_'; }

# stage NAME CMD...: print a stage line, run CMD with its output in a log
# file, print the elapsed time; on failure show the log's tail and its path.
stage() {
	local name=$1 logf start rc=0
	shift
	logf=${VSLICE_LOGDIR:-$VSLICE_WORK/logs}/$(logname "$name").log
	mkdir -p "$(dirname "$logf")"
	start=$(date +%s)
	log "$name ..."
	"$@" >"$logf" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		printf '[vslice] %s FAILED (exit %s) after %ss; last lines of %s:\n' \
			"$name" "$rc" "$(($(date +%s) - start))" "$logf" >&2
		tail -n 40 "$logf" | sed 's/^/    /' >&2
		return "$rc"
	fi
	log "$name done in $(($(date +%s) - start))s (log: $logf)"
}

# save_reports SCRIPT_OUT DIR: the guest's "VSLICE-REPORT <name> <json>"
# lines (reliability scenarios) as DIR/<name>.json.
save_reports() {
	mkdir -p "$2"
	tr -d '\r' <"$1" | sed -n 's/^VSLICE-REPORT //p' | while read -r name json; do
		printf '%s\n' "$json" >"$2/$name.json"
	done
}
