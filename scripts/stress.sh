#!/usr/bin/env bash
# stress.sh: `make stress`, the long reliability run on the debug kernel
# (lockdep, KASAN, kmemleak). Sizes (environment):
#   VSLICE_STRESS_CYCLES  load cycles (PCI remove/unbind of both parents
#                         under load), default 1000
#   VSLICE_STRESS_SEEDS   fuzz seeds, default 1..20
#   VSLICE_STRESS_STEPS   fuzz steps per seed, default 2000
#   VSLICE_STRESS_SEED    the load scenario's seed, default 1
#   VSLICE_STRESS_RUN_MS  load time per cycle before the removal, default 1500
#   VSLICE_STRESS_MAX_SECONDS  stop the load after this long (default: none;
#                         the report then says how many cycles ran)
# Time (measured, 2 shared cores, TCG): 3.3 s per load cycle (about 55 min
# for 1000), ~27 s per 1000 fuzz steps, ~8 min for the full
# fault-injection sweeps: about 1 h 30 min with the defaults.
# Fault injection runs at every fault point (stride 1). Reports (JSON) go to
# $VSLICE_WORK/results/<stamp>-stress-*/reports/; docs/reliability.md says
# how to read them. Exits non-zero on any failure.
. "$(dirname "$0")/lib.sh"
need_root
require_root
cycles=${VSLICE_STRESS_CYCLES:-1000}
seeds=${VSLICE_STRESS_SEEDS:-$(seq -s, 1 20)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/stress.sh" <<EOS
export VSLICE_CYCLES=$cycles VSLICE_SEED=${VSLICE_STRESS_SEED:-1} VSLICE_RUN_MS=${VSLICE_STRESS_RUN_MS:-1500}
export VSLICE_MAX_SECONDS=${VSLICE_STRESS_MAX_SECONDS:-0}
export VSLICE_FUZZ_SEEDS=$seeds VSLICE_FUZZ_STEPS=${VSLICE_STRESS_STEPS:-2000} VSLICE_FI_STRIDE=1 VSLICE_FI_DMA_JOBS=40
. /guest/stress.sh
EOS
timeout=$((cycles * 15 + 3600))
rc=0
"$VSLICE_TOP/scripts/vm-run.sh" --script "$tmp/stress.sh" --name stress --devices 2 \
	--timeout "$timeout" || rc=$?
dir=$(cat "$VSLICE_WORK/results/last")
save_reports "$dir/script.out" "$dir/reports"
kdir=$("$VSLICE_TOP/scripts/kernel.sh" debug)
python3 "$VSLICE_TOP/scripts/ktap-count.py" "$(readlink -f "$kdir/source-tree")/tools/testing/kunit/kunit.py" \
	"$dir/script.out" | tail -n 1 | {
	read -r _ p f s
	echo "stress: $p passed, $f failed, $s skipped; reports in $dir/reports"
	[ "$f" = 0 ] && [ "$p" -gt 0 ]
} || rc=1
exit "$rc"
