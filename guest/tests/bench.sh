# The benchmark in the guest (vslice-bench; docs/benchmarks.md), shared by
# make bench (guest/bench.sh) and its smoke run in make check.
# bench_run NAME ARGS...: loads the mdev peers (mtty, mdpy, mbochs), runs
# vslice-bench ARGS, prints its JSON as "VSLICE-REPORT NAME <json>" (the
# host saves it), unloads the peers; fails if the bench did.
bench_run() {
	name=$1
	shift
	modprobe mtty && modprobe mdpy && modprobe mbochs || { echo "cannot load the mdev samples"; return 1; }
	r=0
	vslice-bench --json "/tmp/$name.json" "$@" || r=1
	[ -s "/tmp/$name.json" ] && echo "VSLICE-REPORT $name $(cat "/tmp/$name.json")"
	rmmod mbochs mdpy mtty || r=1
	return $r
}

# The smoke run: every measurement at a token size, so that make bench
# cannot rot; the bench itself fails on an empty series or a leftover.
bench_smoke() {
	bench_run bench-smoke --smoke || return 1
	for p in P1 P2 P3 P4 P5 P6 P7 P8; do
		grep -Eq "\"id\": ?\"$p\"" /tmp/bench-smoke.json || { echo "no $p row in the smoke report"; return 1; }
	done
}

# The smoke run's JSON goes to the host (VSLICE-REPORT), which runs the
# report tool on it.
run_bench_smoke_suite() {
	ktap_begin vslice_bench_smoke 1
	t bench_smoke_every_measurement bench_smoke
	ktap_end
	[ -s /tmp/bench-smoke.json ] && echo "VSLICE-REPORT bench-smoke $(cat /tmp/bench-smoke.json)"
}
