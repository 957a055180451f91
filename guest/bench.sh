# make bench in the guest: scripts/bench.sh sets VSLICE_BENCH_ARGS.
. /guest/tests/bench.sh
# shellcheck disable=SC2086
bench_run bench $VSLICE_BENCH_ARGS
