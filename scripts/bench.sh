#!/usr/bin/env bash
# bench.sh: `make bench [RUNS=N]` (docs/benchmarks.md). Boots the perf
# kernel (no debug options) N times (VSLICE_BENCH_RUNS, default 3), each
# with one simulated device configured for the most instances (hw-sim
# --contexts 255 --vram-mib 1024: every context the register map has, 255
# `unit` instances of 4 MiB), loads the mdev samples (mtty, mdpy, mbochs) in
# the same guest and runs vslice-bench: P1-P8, each against its peer.
# Then vslice-bench-report (tools/bench-report) puts the runs together:
# every value and ratio as the median across runs with its range, each
# ratio against its goal, and the charts. Refuses to start while a VM run
# or kernel build of ours holds the busy lock (they wait for it), and
# records for each run the host's load average before it and the CPU that
# other work took during it.
# Output: the table on the console; each run's JSON in
# $VSLICE_WORK/results/<stamp>-bench-*/reports/bench.json; the whole in
# $VSLICE_WORK/results/<stamp>-bench-runs/ (bench.md, bench.svg,
# summary.json). Environment: VSLICE_BENCH_ARGS (extra vslice-bench
# options, e.g. "--reps 20" or "--only P2,P6"). Time: about 2 min per run
# once the perf kernel is built (README). Exits non-zero if a run failed.
. "$(dirname "$0")/lib.sh"
need_root
require_root
runs=${VSLICE_BENCH_RUNS:-3}
[[ $runs =~ ^[1-9][0-9]?$ ]] || die "bench: RUNS must be 1..99, not '$runs'"
mkdir -p "$VSLICE_CACHE"
exec 8>>"$VSLICE_CACHE/busy.lock"
flock -x -n 8 || die "bench: a VM run or kernel build of ours is running (it holds $VSLICE_CACHE/busy.lock; fuser -v shows it): a benchmark beside it measures the two together"
export VSLICE_BUSY_HELD=1
stage "build the report tool" cargo build --release --manifest-path "$VSLICE_TOP/Cargo.toml" -p vslice-bench-report
report=$CARGO_TARGET_DIR/release/vslice-bench-report
# The perf kernel before the first run, so that no run includes its build.
"$VSLICE_TOP/scripts/kernel.sh" perf >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'export VSLICE_BENCH_ARGS=%q\n. /guest/bench.sh\n' "${VSLICE_BENCH_ARGS:-}" >"$tmp/bench.sh"
hz=$(getconf CLK_TCK)
# Busy CPU time of the whole host, and of this shell's finished children,
# in clock ticks.
host_busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
ours() { awk '{print $16 + $17}' /proc/$$/stat; }
ncpu=$(nproc)
rc=0 jsons=()
for k in $(seq "$runs"); do
	log "bench: run $k of $runs"
	load=$(cut -d' ' -f1 /proc/loadavg)
	b0=$(host_busy) o0=$(ours) t0=$(date +%s%N)
	VSLICE_HWSIM_ARGS="--contexts 255 --vram-mib 1024 ${VSLICE_HWSIM_ARGS:-}" "$VSLICE_TOP/scripts/vm-run.sh" --script "$tmp/bench.sh" \
		--name bench --devices 1 --kernel perf --timeout 3600 || rc=$?
	b1=$(host_busy) o1=$(ours) t1=$(date +%s%N)
	dir=$(cat "$VSLICE_WORK/results/last")
	save_reports "$dir/script.out" "$dir/reports"
	others=$(awk -v b="$((b1 - b0))" -v o="$((o1 - o0))" -v hz="$hz" -v ns="$((t1 - t0))" \
		'BEGIN { x = (b - o) / hz / (ns / 1e9); printf "%.2f", x < 0 ? 0 : x }')
	echo "load average $load before, other work took $others of $ncpu CPUs during the run" >"$dir/reports/HOST-LOAD"
	if [ -s "$dir/reports/bench.json" ]; then
		jsons+=("$dir/reports/bench.json")
		log "bench: run $k: $dir/reports/bench.json (host: $(cat "$dir/reports/HOST-LOAD"))"
	else
		echo "bench: run $k left no report (see $dir)" >&2
		rc=1
	fi
done
[ "${#jsons[@]}" -gt 0 ] || exit 1
out=$VSLICE_WORK/results/$(date +%Y%m%d-%H%M%S)-bench-runs
mkdir -p "$out"
"$report" --md "$out/bench.md" --svg "$out/bench.svg" --json "$out/summary.json" "${jsons[@]}" || rc=1
cat "$out/bench.md"
echo "bench: $runs run(s); table $out/bench.md, charts $out/bench.svg, summary $out/summary.json"
exit "$rc"
