# shellcheck shell=sh
# KTAP helpers for guest-side tests (sourced by busybox sh scripts).
# ktap_begin SUITE: starts a KTAP document for one suite of tests;
# t NAME CMD...: runs CMD, prints "ok"/"not ok" and, on failure, CMD's
# output as diagnostics; ktap_end: prints the plan. kunit.py parse reads it.
ktap_n=0
ktap_failed=0
ktap_begin() {
	echo "KTAP version 1"
	echo "# vslice guest suite: $1"
	ktap_suite=$1
}
t() {
	name=$1
	shift
	ktap_n=$((ktap_n + 1))
	if out=$("$@" 2>&1); then
		echo "ok $ktap_n $name"
	else
		echo "not ok $ktap_n $name"
		ktap_failed=$((ktap_failed + 1))
		echo "$out" | tail -n 20 | sed 's/^/# /'
	fi
}
ktap_end() {
	echo "1..$ktap_n"
	echo "# $ktap_suite: $((ktap_n - ktap_failed)) passed, $ktap_failed failed"
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
