# shellcheck shell=sh
# KTAP helpers for guest-side tests (sourced by busybox sh scripts), in the
# layout KUnit itself prints, so that kunit.py parse reads both alike.
# ktap_begin SUITE N: starts a suite of N tests; t NAME CMD...: runs CMD
# and prints "ok"/"not ok" (with CMD's output as diagnostics on failure);
# ktap_end: closes the suite, failing it if the count was not N.
ktap_begin() {
	ktap_suite=$1
	ktap_plan=$2
	ktap_n=0
	ktap_failed=0
	echo "KTAP version 1"
	echo "1..1"
	echo "    KTAP version 1"
	echo "    # Subtest: $1"
	echo "    1..$2"
}
t() {
	name=$1
	shift
	ktap_n=$((ktap_n + 1))
	t0=$(date +%s)
	if out=$("$@" 2>&1); then
		echo "    ok $ktap_n $name"
	else
		echo "    not ok $ktap_n $name"
		ktap_failed=$((ktap_failed + 1))
		echo "$out" | tail -n 20 | sed 's/^/    # /'
	fi
	# Where a suite's time goes (diagnostic only).
	echo "    # $name: $(($(date +%s) - t0)) s"
}
# mark NAME: where the run's time goes (diagnostic only).
mark() { echo "# uptime $(cut -d' ' -f1 /proc/uptime) s: $1"; }
ktap_end() {
	if [ "$ktap_failed" = 0 ] && [ "$ktap_n" = "$ktap_plan" ]; then
		echo "ok 1 $ktap_suite"
	else
		echo "not ok 1 $ktap_suite # $ktap_failed failed, $ktap_n of $ktap_plan ran"
	fi
}
# kunit_results SUITE: the KTAP results of a KUnit suite, as one document.
kunit_results() {
	f=/sys/kernel/debug/kunit/$1/results
	if [ -r "$f" ]; then
		cat "$f"
	else
		echo "KTAP version 1"
		echo "1..1"
		echo "not ok 1 $1 # no results in $f (suite did not run)"
	fi
}
# The vslice PCI devices (vendor:device from the shared register map).
vslice_devices() {
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = 0x1b36 ] && [ "$(cat "$d/device")" = 0x5c10 ] && basename "$d"
	done
}
# state_field BDF FIELD: a field of the parent's debugfs state file.
state_field() { sed -n "s/^$2: //p" "/sys/kernel/debug/vslice/$1/state"; }
# stats_field FIELD: a field of the driver's debugfs stats file.
stats_field() { sed -n "s/^$1: //p" /sys/kernel/debug/vslice/stats; }
# irq_count PATTERN: interrupts taken, over all CPUs, by the vectors whose
# /proc/interrupts line matches PATTERN (grep).
irq_count() { grep "$1" /proc/interrupts | awk '{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }'; }
# pinned_pages: tenant pages the driver holds pinned now.
pinned_pages() { stats_field pinned_pages; }
