# shellcheck shell=bash
# Common settings and helpers for every vslice script. Sourced, never run.
#
# Cache layout (outside the work tree so that CI clones reuse it):
#   $VSLICE_CACHE/root/<rootkey>/        trixie build root (chroot)
#   $VSLICE_CACHE/work/                  bind-mounted at the same path in the root
#     kernel/src-<ver>-p<patches>/       unpacked linux-source, patches applied
#     kernel/<variant>-<kkey>/           kernel build trees (O=), one per key
#     kernel/<variant>.build-steps       Kbuild steps of its last full build (progress)
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
# Cargo's output lives in the cache, not the work tree, so that a fresh
# clone (CI) reuses what an earlier one compiled; cargo's fingerprints
# decide what is stale. The guest tools' static build has its own
# directory (other flags). One make check or bench per cache at a time:
# two clones building at once would share the final binaries' paths.
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$VSLICE_CACHE/cargo/host}
VSLICE_GUEST_TARGET=$VSLICE_CACHE/cargo/guest
export CARGO_TARGET_DIR VSLICE_GUEST_TARGET
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

root_ready() { [ -e "$(root_dir)/.complete" ]; }

# require_root: the complete build root exists (built by scripts/buildroot.sh
# as a stage: debootstrap's and apt's output go to its log, not the console).
require_root() {
	root_ready || stage_progress "build root" buildroot_progress "$VSLICE_TOP/scripts/buildroot.sh"
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

# busy_hold WHAT: marks this process (and its children) as a VM run or a
# kernel build of ours until it exits: a shared lock on
# $VSLICE_CACHE/busy.lock on fd 8. make bench takes it exclusively, so it
# refuses to start beside one of these and they wait for it; its own runs
# (VSLICE_BUSY_HELD set) skip it.
busy_hold() {
	[ -z "${VSLICE_BUSY_HELD:-}" ] || return 0
	mkdir -p "$VSLICE_CACHE"
	exec 8>>"$VSLICE_CACHE/busy.lock"
	if ! flock -s -n 8; then
		log "$1 waits: make bench is measuring"
		flock -s 8 || die "cannot lock $VSLICE_CACHE/busy.lock"
	fi
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

# stage_log NAME: the log file of stage NAME.
stage_log() { printf '%s/%s.log' "${VSLICE_LOGDIR:-$VSLICE_WORK/logs}" "$(logname "$1")"; }

# stage NAME CMD...: print a stage line, run CMD with its output in a log
# file, print the elapsed time; on failure show the log's tail and its path.
stage() {
	local name=$1
	shift
	stage_progress "$name" '' "$@"
}

# stage_progress NAME FN CMD...: stage, showing progress while CMD runs:
# FN LOGFILE prints a short status read from the stage's log (empty FN:
# only the elapsed time). See progress_start.
stage_progress() {
	local name=$1 fn=$2 logf start rc=0 mon
	shift 2
	logf=$(stage_log "$name")
	mkdir -p "$(dirname "$logf")"
	start=$(date +%s)
	log "$name ..."
	progress_start "$name" "$fn" "$logf"
	mon=$PROGRESS_PID
	"$@" >"$logf" 2>&1 || rc=$?
	progress_stop "$mon"
	if [ "$rc" != 0 ]; then
		printf '[vslice] %s FAILED (exit %s) after %ss; last lines of %s:\n' \
			"$name" "$rc" "$(($(date +%s) - start))" "$logf" >&2
		tail -n 40 "$logf" | sed 's/^/    /' >&2
		return "$rc"
	fi
	log "$name done in $(($(date +%s) - start))s (log: $logf)"
}

# --- progress ------------------------------------------------------------
# Long steps (debootstrap, the kernel build, VM runs) would otherwise be
# silent for minutes. Progress goes to stderr only: stdout carries check's
# result lines and values that callers capture with $(...). On a terminal
# it is one line rewritten every second (from the 3rd second on, so short
# steps stay quiet), erased when the step ends; otherwise (CI logs) a plain
# line every VSLICE_PROGRESS_SECS seconds (default 30; 0: no progress).

# fmt_secs N: "45s", "4m12s", "1h05m00s".
fmt_secs() {
	if [ "$1" -lt 60 ]; then
		printf '%ss\n' "$1"
	elif [ "$1" -lt 3600 ]; then
		printf '%dm%02ds\n' $(($1 / 60)) $(($1 % 60))
	else
		printf '%dh%02dm%02ds\n' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60))
	fi
}

# progress_start NAME FN ARG...: start a monitor that, while this shell
# lives, prints "NAME: <FN ARG... output>, <elapsed>" ("still running"
# when FN is empty or prints nothing). Sets PROGRESS_PID for progress_stop.
# The monitor is detached (a shell's `wait` never waits for it) and holds
# no lock: it ends on progress_stop or within a second of this shell's end.
progress_start() {
	local parent=$BASHPID start
	PROGRESS_PID=''
	[ "${VSLICE_PROGRESS_SECS:-30}" != 0 ] || return 0
	printf -v start '%(%s)T' -1
	PROGRESS_PID=$(
		_progress_loop "$parent" "$start" "$@" </dev/null >/dev/null 9>&- &
		echo $!
	)
}

# progress_stop PID: end the monitor (CMD's status is the caller's) and
# erase its terminal line once the monitor cannot write any more.
progress_stop() {
	local i
	[ -n "${1:-}" ] || return 0
	kill -TERM "$1" 2>/dev/null || true
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		proc_running "$1" || break
		sleep 0.05
	done
	[ ! -t 2 ] || printf '\r\033[K' >&2
}

# proc_running PID: PID exists and is not a zombie (an exited monitor
# waits for init to reap it, which can take a while in a container).
proc_running() {
	local st
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

_progress_loop() { # PARENT START NAME FN ARG...
	local parent=$1 start=$2 name=$3 fn=$4 tty=0 every next cols=80 now el detail head tail room sp=''
	shift 4
	set +e
	trap '[ -z "$sp" ] || kill "$sp" 2>/dev/null; exit 0' TERM
	if [ -t 2 ]; then
		tty=1 every=1 next=3
		cols=$(stty size <&2 2>/dev/null | cut -d' ' -f2)
		[[ $cols =~ ^[0-9]+$ ]] && [ "$cols" -gt 20 ] || cols=80
	else
		every=${VSLICE_PROGRESS_SECS:-30} next=${VSLICE_PROGRESS_SECS:-30}
	fi
	while :; do
		sleep 1 &
		sp=$!
		wait "$sp"
		sp=''
		proc_running "$parent" || exit 0
		printf -v now '%(%s)T' -1
		el=$((now - start))
		[ "$el" -ge "$next" ] || continue
		next=$((el + every))
		detail=''
		[ -z "$fn" ] || detail=$("$fn" "$@" 2>/dev/null)
		detail=${detail:-still running}
		proc_running "$parent" || exit 0
		if [ "$tty" = 1 ]; then
			# One row, or \r cannot rewrite it: shorten the status, keep
			# the name and the elapsed time.
			head="$name: "
			tail=", $(fmt_secs "$el")"
			room=$((cols - 1 - ${#head} - ${#tail}))
			[ "${#detail}" -le "$room" ] || detail="${detail:0:room>3?room-3:0}..."
			printf '\r\033[K%s' "$head$detail$tail" >&2
		else
			printf '[vslice %(%H:%M:%S)T] %s: %s, %s\n' -1 "$name" "$detail" "$(fmt_secs "$el")" >&2
		fi
	done
}

# kbuild_steps LOG: Kbuild's quiet lines in LOG ("  CC      path", "  LD ...",
# "  RUSTC ..."): one per build step.
kbuild_steps() { grep -cE '^  [A-Z][A-Z0-9_]+ +[^ ]' "$1" 2>/dev/null || true; }

# kbuild_progress LOG EXPECTED: "812/1889 steps (43%)"; EXPECTED may be an
# estimate ("~1889") or empty.
kbuild_progress() {
	local n total=${2#\~} pct approx=''
	n=$(kbuild_steps "$1")
	n=${n:-0}
	[ "$total" = "${2:-}" ] || approx='~'
	if [[ $total =~ ^[0-9]+$ ]] && [ "$total" -gt 0 ]; then
		pct=$((n * 100 / total))
		[ "$pct" -le 99 ] || pct=99
		printf '%s/%s steps (%s%s%%)\n' "$n" "$2" "$approx" "$pct"
	else
		printf '%s steps\n' "$n"
	fi
}

# buildroot_progress LOG: the build root's current phase, from
# scripts/buildroot.sh's log (debootstrap's "I:" lines, then apt-get's
# update and installs: packages downloaded, unpacked, then set up; dpkg
# sets a few up while it still unpacks).
buildroot_progress() {
	tr -d '\r' <"$1" 2>/dev/null | awk '
		/^\[vslice [0-9:]+\] installing debootstrap/ { phase = "installing debootstrap on the host" }
		/^\[vslice [0-9:]+\] debootstrap / { phase = "debootstrap" }
		/^I: / { phase = "debootstrap: " substr($0, 4); sub(/( on [a-z]+:\/\/[^ ]*)?(\.\.\.)? *$/, "", phase) }
		/^(Get|Hit|Ign):[0-9]+ / { if (total) got++; else phase = "apt-get update" }
		/^[0-9]+ upgraded, [0-9]+ newly installed, / {
			total = $1 + $3; got = unpacked = set = 0; phase = ""
		}
		/^Unpacking / { unpacked++ }
		/^Setting up / { set++ }
		END {
			if (phase == "" && total) {
				if (set && unpacked >= total) phase = set "/" total " packages set up"
				else if (unpacked) phase = unpacked "/" total " packages unpacked"
				else phase = got "/" total " packages downloaded"
				phase = "apt-get install: " phase
			}
			print phase
		}'
}

# vm_progress OUT [SUITES]: where a VM run is, from vm-run.sh's output OUT
# (its stage lines, then the guest's KTAP): the stage being built, then the
# running suite ("suite vslice_vfio (4/12 suites), 52 passed, 0 failed").
# SUITES is the expected count (vm_expected_suites). Tests are the KTAP
# results one level into a suite, as guest/ktap.sh and KUnit print them.
vm_progress() {
	tr -d '\r' <"$1" 2>/dev/null | awk -v total="${2:-}" '
		/^\[vslice [0-9:]+\] .* \.\.\.$/ { phase = $0; sub(/^\[vslice [0-9:]+\] /, "", phase); sub(/ \.\.\.$/, "", phase) }
		/^\[vslice [0-9:]+\] booting / { phase = "booting the VM" }
		/^VSLICE-GUEST: up/ { phase = "guest up" }
		/^    # Subtest: / { suite = substr($0, 16); n++ }
		/^    ok / { if ($0 ~ /# SKIP/) skip++; else pass++ }
		/^    not ok / { fail++ }
		END {
			if (!n) { print phase; exit }
			of = (total + 0 >= n) ? n "/" total " suites" : n " suites so far"
			printf "suite %s (%s), %d passed, %d failed", suite, of, pass, fail
			if (skip) printf ", %d skipped", skip
			printf "\n"
		}'
}

# vm_expected_suites NAME: the KTAP suites of the last complete VM run
# named NAME (vm-run --name), for vm_progress; empty when there is none.
vm_expected_suites() {
	local d
	for d in $(ls -1dt "$VSLICE_WORK"/results/*-"$1"-*/ 2>/dev/null | head -n 10); do
		[[ $(basename "$d") =~ ^[0-9]{8}-[0-9]{6}-$1-[0-9]+$ ]] || continue
		grep -q '^VSLICE-EXIT: ' "$d/script.out" 2>/dev/null || continue
		grep -c '^    # Subtest: ' "$d/script.out" || true
		return 0
	done
}

# save_reports SCRIPT_OUT DIR: the guest's "VSLICE-REPORT <name> <json>"
# lines (reliability scenarios) as DIR/<name>.json.
save_reports() {
	mkdir -p "$2"
	tr -d '\r' <"$1" | sed -n 's/^VSLICE-REPORT //p' | while read -r name json; do
		printf '%s\n' "$json" >"$2/$name.json"
	done
}
