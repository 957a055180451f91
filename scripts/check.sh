#!/usr/bin/env bash
# check.sh: everything `make check` runs. Builds what it needs (build root,
# debug kernel, modules, hw-sim), then:
#   lints     checkpatch --strict (C), rustfmt with the kernel's config and
#             CLIPPY=1 (kernel Rust), cargo fmt and clippy (user-space Rust)
#   host      cargo test for the workspace
#   VM        guest/tests/check.sh under the debug kernel, KUnit included;
#             every KTAP document is read by the kernel's kunit.py parse
# Each lint, cargo test and KTAP test counts as one test. The last line is
# "N passed, N failed, N skipped"; the exit status is non-zero on any failure.
. "$(dirname "$0")/lib.sh"
need_root

run=$VSLICE_WORK/results/$(date +%Y%m%d-%H%M%S)-check-$$
mkdir -p "$run"
export VSLICE_LOGDIR=$run
require_root
pass=0 fail=0 skip=0
failed=()
result() { # result ok|fail|skip NAME [why]
	case "$1" in
	ok) pass=$((pass + 1)); echo "ok      $2" ;;
	skip) skip=$((skip + 1)); echo "skip    $2 ($3)" ;;
	*) fail=$((fail + 1)); failed+=("$2"); echo "FAILED  $2${3:+ ($3)}" ;;
	esac
}
# check NAME CMD...: one test from a command's exit status (log kept).
check() {
	local name=$1
	shift
	if stage "$name" "$@" 2>/dev/null; then result ok "$name"; else
		result fail "$name" "log: $VSLICE_LOGDIR/$(logname "$name").log"
	fi
}

kdir=$("$VSLICE_TOP/scripts/kernel.sh" debug)
ksrc=$(readlink -f "$kdir/source-tree")
cd "$VSLICE_TOP"

# --- lints -------------------------------------------------------------
c_files=$(git ls-files 'c-shim/*.c' 'c-shim/*.h' 'kunit/*.c' 'guest/jobguest/*.c')
krust_files=$(git ls-files 'rust-driver/*.rs' 'kunit/*.rs' 'regs/*.rs')
check "lint.checkpatch_strict" in_root "cd '$VSLICE_TOP' && '$ksrc/scripts/checkpatch.pl' --strict --no-tree --show-types --terse -f $(echo $c_files)"
check "lint.rustfmt_kernel_config" in_root "cd '$VSLICE_TOP' && rustfmt --check --config-path '$ksrc/.rustfmt.toml' --edition 2021 $(echo $krust_files)"
clippy_build() {
	local out=$VSLICE_WORK/build/debug/clippy
	rm -rf "$out"
	mkdir -p "$out"
	in_root "make -C '$kdir' M='$VSLICE_TOP' MO='$out' LLVM=1 CLIPPY=1 -j$(nproc) modules" 2>&1 | tee "$run/clippy.out"
	[ "${PIPESTATUS[0]}" = 0 ] || return 1
	! grep -E '^(warning|error)' "$run/clippy.out"
}
check "lint.kernel_clippy_no_warnings" clippy_build
check "lint.regs_doc_agrees" python3 "$VSLICE_TOP/scripts/check-regs-doc.py" regs/vslice_regs.rs docs/device.md
check "lint.cargo_fmt" cargo fmt --all --check
check "lint.cargo_clippy" cargo clippy --workspace --all-targets --release -- -D warnings

# --- host tests ----------------------------------------------------------
while read -r st name rest; do
	if [ "$st" = ok ]; then result ok "harness.$name"; else result fail "harness.${name#ok } $rest"; fi
done < <("$VSLICE_TOP/scripts/tests/run.sh" | sed 's/^not ok /FAIL /')
cargo_tests() {
	# --no-fail-fast: a failing test binary must not hide the ones after it.
	cargo test --workspace --release --no-fail-fast 2>&1 | tee "$run/cargo-test.out"
	[ "${PIPESTATUS[0]}" = 0 ]
}
if stage "cargo test" cargo_tests; then :; fi
while read -r st name; do
	if [ "$st" = ok ]; then result ok "cargo.$name"; elif [ "$st" = ignored ]; then
		result skip "cargo.$name" "marked #[ignore]"
	else result fail "cargo.$name"; fi
done < <(sed -n 's/^test \([^ ]*\) \.\.\. \(ok\|FAILED\|ignored\)$/\2 \1/p' "$run/cargo-test.out")
# Every test the summaries count must have been counted above.
summary=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' \
	"$run/cargo-test.out" | awk '{ n += $1 + $2 + $3 } END { print n + 0 }')
listed=$(grep -cE '^test [^ ]+ \.\.\. (ok|FAILED|ignored)$' "$run/cargo-test.out" || true)
if ! grep -q '^test result: ' "$run/cargo-test.out"; then
	result fail "cargo.test_build" "cargo test did not run; see $run/cargo-test.out"
elif [ "$summary" != "$listed" ]; then
	result fail "cargo.results_parsed" "summaries count $summary tests, $listed were read; see $run/cargo-test.out"
fi

# --- VM tests -------------------------------------------------------------
# count_ktap FILE: one result per test of every KTAP document in FILE, as
# the kernel's kunit.py parse reads them.
count_ktap() {
	local line
	while read -r line; do
		case "$line" in
		"ok "*) result ok "vm.${line#ok }" ;;
		"not ok "*) result fail "vm.${line#not ok }" ;;
		"skip "*) result skip "vm.${line#skip }" "skipped in the guest" ;;
		esac
	done < <(python3 "$VSLICE_TOP/scripts/ktap-count.py" "$ksrc/tools/testing/kunit/kunit.py" "$1")
}
# vm_run_name VM-RUN-ARGS...: the --name they give.
vm_run_name() {
	while [ $# -gt 1 ]; do
		[ "$1" != --name ] || { echo "$2"; return; }
		shift
	done
}
# vm_check TEST OUT VM-RUN-ARGS...: one VM run as test TEST (non-zero
# exit, splat or timeout fails it; vm-run's output in $run/OUT), then its
# KTAP results; $vmdir is the run's results directory. While it runs,
# the progress line shows the suite the guest is in (vm_progress reads
# $run/OUT, which carries the guest's output as it comes).
vm_check() {
	local test=$1 out=$2 rc=0 mon suites
	shift 2
	suites=$(vm_expected_suites "$(vm_run_name "$@")")
	progress_start "$test" vm_progress "$run/$out" "$suites"
	mon=$PROGRESS_PID
	"$VSLICE_TOP/scripts/vm-run.sh" "$@" >"$run/$out" 2>&1 || rc=$?
	progress_stop "$mon"
	vmdir=$(cat "$VSLICE_WORK/results/last")
	if [ "$rc" = 0 ]; then result ok "$test"; else
		result fail "$test" "exit $rc, see $run/$out and $vmdir/console.log"
		tail -n 40 "$run/$out" | sed 's/^/    /'
	fi
	count_ktap "$vmdir/script.out"
}
# About 10 minutes on a quiet host; the timeout leaves room for a busy one.
# The kernel's VFIO selftests ride in the main VM run (no boot of their
# own); a failed build shows as a failed test there and here.
vst=()
if vstdir=$("$VSLICE_TOP/scripts/vfio-selftests.sh" 2>"$run/vfio-selftests-stage.log"); then
	vst=(--files "$vstdir")
else
	result fail "build.vfio_selftests" "see $run/vfio-selftests-stage.log"
fi
vm_check vm.boot_run_no_splat vm.out --script "$VSLICE_TOP/guest/tests/check.sh" --name check-vm \
	--devices 2 --host-script "$VSLICE_TOP/scripts/tests/host-faults.sh" --timeout 1500 "${vst[@]}"
save_reports "$vmdir/script.out" "$run/reports"
main=$vmdir

# make bench's report (table, summary, charts) from the smoke run's JSON,
# given twice as two runs.
bench_report_of_the_smoke_run() {
	local r=$run/reports d=$run/bench-report
	mkdir -p "$d"
	[ -s "$r/bench-smoke.json" ] || { echo "the smoke run left no JSON"; return 1; }
	cargo run -q --release -p vslice-bench-report -- --md "$d/bench.md" --svg "$d/bench.svg" \
		--json "$d/summary.json" "$r/bench-smoke.json" "$r/bench-smoke.json" || return 1
	for p in P1 P2 P3 P4 P5 P6 P7 P8; do
		grep -q "^| $p |" "$d/bench.md" || { echo "no $p row in $d/bench.md"; return 1; }
	done
	grep -q '(runs=2)' "$d/bench.md" || { echo "$d/bench.md does not count two runs"; return 1; }
	grep -q '<svg' "$d/bench.svg" && grep -q 'create latency as the parent fills' "$d/bench.svg" ||
		{ echo "$d/bench.svg lacks a chart"; return 1; }
}
check "bench.report_of_the_smoke_run" bench_report_of_the_smoke_run

# The second device's hw-sim dies: its own VM run with a fresh device.
# The devices sit behind QEMU's intel-iommu here (the main run has none),
# so DMA is tested with and without an IOMMU in front of the parent.
vm_check vm.death_run_no_splat vm-death.out --script "$VSLICE_TOP/guest/device-death.sh" --name check-death \
	--devices 2 --host-script "$VSLICE_TOP/scripts/tests/host-death.sh" --iommu
death=$vmdir

# Nested QEMU using an instance: its own VM run, so that the ~70 MB of
# QEMU and libraries stay out of every other run's initramfs; its first
# device has the large geometry (scripts/lib.sh), the other two the
# default one, for QEMU's migration from one to the other.
if nested=$("$VSLICE_TOP/scripts/nested-qemu.sh" "$VSLICE_WORK/build/nested" 2>"$run/nested-stage.log"); then
	VSLICE_HWSIM_ARGS_0=$VSLICE_NESTED_HWSIM_ARGS vm_check vm.nested_run_no_splat vm-nested.out \
		--script "$VSLICE_TOP/guest/nested-qemu.sh" --files "$nested" --name check-nested --devices 3 --timeout 900
else
	result fail vm.nested_run_no_splat "staging QEMU failed, see $run/nested-stage.log"
fi

echo
echo "logs: $run (VM: $main, device death: $death, nested: $vmdir)"
echo "reliability reports: $run/reports/*.json (docs/reliability.md says how to read them)"
[ "$fail" = 0 ] || printf 'failed: %s\n' "${failed[@]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
