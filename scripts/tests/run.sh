#!/usr/bin/env bash
# Host-side tests of the harness itself (no VM): splat-scan.sh must pass a
# clean console log (the out-of-tree taint line included) and fail every
# kind of splat; the progress lines of long steps (scripts/lib.sh) must
# read real logs right. Prints "ok NAME" / "not ok NAME" lines.
cd "$(dirname "$0")" || exit 1
scan=../splat-scan.sh
expect() { # expect RC LOG
	local rc=0
	"$scan" "$2" >/dev/null 2>&1 || rc=$?
	if [ "$rc" = "$1" ]; then echo "ok splat_scan.${2%.log}"; else echo "not ok splat_scan.${2%.log} (exit $rc, want $1)"; fi
}
expect 0 clean.log
for f in warning kmemleak lockdep kasan hung; do expect 1 $f.log; done

# Progress lines (scripts/lib.sh): each parser on a log cut where a step
# would be read mid-way, and the monitor itself.
check_eq() { # check_eq NAME WANT GOT
	if [ "$2" = "$3" ]; then echo "ok $1"; else echo "not ok $1 (got '$3', want '$2')"; fi
}
want_line() { # want_line NAME REGEX FILE
	if grep -qE "$2" "$3"; then echo "ok $1"; else echo "not ok $1 (no line like '$2' in: $(tr '\n' '|' <"$3"))"; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(
	. ../lib.sh
	set +e
	# at() CUT FN ARG...: FN on the first CUT lines of its log.
	at() { head -n "$1" "$3" >"$tmp/cut"; "$2" "$tmp/cut" "${@:4}"; }
	check_eq progress.kbuild_steps_counted 18 "$(kbuild_steps progress-kbuild.log)"
	check_eq progress.kbuild_mid_build "11/36 steps (30%)" "$(at 23 kbuild_progress progress-kbuild.log 36)"
	check_eq progress.kbuild_estimate "18/~20 steps (~90%)" "$(kbuild_progress progress-kbuild.log '~20')"
	check_eq progress.buildroot_debootstrap "debootstrap: Checking component main" "$(at 7 buildroot_progress progress-buildroot.log)"
	check_eq progress.buildroot_apt_update "apt-get update" "$(at 12 buildroot_progress progress-buildroot.log)"
	check_eq progress.buildroot_apt_unpack "apt-get install: 2/3 packages unpacked" "$(at 30 buildroot_progress progress-buildroot.log)"
	check_eq progress.buildroot_apt_setup "apt-get install: 3/3 packages set up" "$(at 36 buildroot_progress progress-buildroot.log)"
	check_eq progress.buildroot_second_install "apt-get install: 1/2 packages downloaded" "$(buildroot_progress progress-buildroot.log)"
	check_eq progress.vm_building "build hw-sim" "$(at 4 vm_progress progress-vm.out 3)"
	check_eq progress.vm_booting "booting the VM" "$(at 6 vm_progress progress-vm.out 3)"
	check_eq progress.vm_first_suite "suite vslice_vm (1/3 suites), 2 passed, 1 failed" "$(at 16 vm_progress progress-vm.out 3)"
	check_eq progress.vm_nested_and_skip "suite vslice_faults (3/3 suites), 4 passed, 1 failed, 1 skipped" "$(at 35 vm_progress progress-vm.out 3)"
	check_eq progress.vm_no_total "suite vslice_faults (3 suites so far), 5 passed, 1 failed, 1 skipped" "$(vm_progress progress-vm.out '')"
	# The expected suite count comes from the last complete run of the name.
	VSLICE_WORK=$tmp/work
	mkdir -p "$VSLICE_WORK/results/20261201-100000-check-vm-11" "$VSLICE_WORK/results/20261201-110000-check-vm-12" \
		"$VSLICE_WORK/results/20261201-120000-check-vm-13" "$VSLICE_WORK/results/20261201-130000-check-vm-x-14"
	{ grep -v '^\[' progress-vm.out; echo 'VSLICE-EXIT: 0'; } >"$VSLICE_WORK/results/20261201-110000-check-vm-12/script.out"
	head -n 20 progress-vm.out >"$VSLICE_WORK/results/20261201-120000-check-vm-13/script.out"
	cp "$VSLICE_WORK/results/20261201-110000-check-vm-12/script.out" "$VSLICE_WORK/results/20261201-130000-check-vm-x-14/"
	touch -d '2026-12-01 10:00' "$VSLICE_WORK/results/20261201-100000-check-vm-11"
	touch -d '2026-12-01 11:00' "$VSLICE_WORK/results/20261201-110000-check-vm-12"
	touch -d '2026-12-01 12:00' "$VSLICE_WORK/results/20261201-120000-check-vm-13"
	check_eq progress.vm_expected_suites 3 "$(vm_expected_suites check-vm)"
	# The monitor: status lines on stderr only (stdout carries results),
	# CMD's exit status kept, nothing left running.
	export VSLICE_LOGDIR=$tmp/logs VSLICE_PROGRESS_SECS=1
	fake_progress() { echo "$(wc -l <"$1") lines"; }
	rc=0
	stage_progress "fake step" fake_progress bash -c 'echo one; sleep 2.5; exit 3' >"$tmp/out" 2>"$tmp/err" || rc=$?
	check_eq progress.monitor_keeps_exit_status 3 "$rc"
	check_eq progress.monitor_never_writes_stdout "" "$(cat "$tmp/out")"
	want_line progress.monitor_reports_on_stderr '^\[vslice [0-9:]+\] fake step: 1 lines, [12]s$' "$tmp/err"
	if proc_running "$PROGRESS_PID"; then echo "not ok progress.monitor_ends_with_step"; else echo "ok progress.monitor_ends_with_step"; fi
	stage "quiet step" sleep 2.5 2>"$tmp/err"
	want_line progress.heartbeat_without_status '^\[vslice [0-9:]+\] quiet step: still running, [12]s$' "$tmp/err"
)
