#!/usr/bin/env bash
# bench.sh: `make bench` (docs/benchmarks.md). Boots the perf kernel (no
# debug options) with one simulated device configured for the most
# instances (hw-sim --contexts 64: 64 units), loads the mdev samples
# (mtty, mdpy, mbochs) in the same guest and runs vslice-bench: P1-P8,
# each against its peer. Prints the table; the JSON goes to
# $VSLICE_WORK/results/<stamp>-bench-*/reports/bench.json and the
# markdown table for docs/benchmarks.md to .../reports/bench.md.
# Environment: VSLICE_BENCH_ARGS (extra vslice-bench options, e.g.
# "--reps 20" or "--only P2,P6"). Time: about 1 min 30 s once the perf
# kernel is built (measured; README). Exits non-zero if the bench failed.
. "$(dirname "$0")/lib.sh"
need_root
require_root
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'export VSLICE_BENCH_ARGS=%q\n. /guest/bench.sh\n' "${VSLICE_BENCH_ARGS:-}" >"$tmp/bench.sh"
rc=0
VSLICE_HWSIM_ARGS="--contexts 64 ${VSLICE_HWSIM_ARGS:-}" "$VSLICE_TOP/scripts/vm-run.sh" --script "$tmp/bench.sh" \
	--name bench --devices 1 --kernel perf --timeout 3600 || rc=$?
dir=$(cat "$VSLICE_WORK/results/last")
save_reports "$dir/script.out" "$dir/reports"
if [ -s "$dir/reports/bench.json" ]; then
	python3 "$VSLICE_TOP/scripts/bench-md.py" "$dir/reports/bench.json" >"$dir/reports/bench.md" || rc=1
	echo "bench: JSON $dir/reports/bench.json, markdown $dir/reports/bench.md"
else
	echo "bench: no report (see $dir)" >&2
	rc=1
fi
exit "$rc"
