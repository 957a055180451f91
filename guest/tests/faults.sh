# Guest half of the fault tests: the host half (scripts/tests/host-faults.sh,
# run by vm-run --host-script) waits for each "VSLICE-SYNC <fault>" line and
# injects that fault into hw-sim 0 through its control socket.
# Sourced by check.sh after /guest/ktap.sh and lifecycle.sh.

# The host watches the console for these; inside a test's $(...) stdout is
# captured, so they go to the serial port directly.
sync_host() { echo "VSLICE-SYNC $1" >/dev/ttyS1; }
state_field() { sed -n "s/^$2: //p" "/sys/kernel/debug/vslice/$1/state"; }
# wait_field BDF FIELD VALUE: up to 20 s for the state file to show it.
wait_field() {
	k=0
	while [ "$(state_field "$1" "$2")" != "$3" ]; do
		k=$((k + 1))
		[ $k -lt 100 ] || { echo "$2 is '$(state_field "$1" "$2")', want '$3'"; return 1; }
		sleep 0.2
	done
}

fault_error_interrupt() {
	[ "$(state_field "$P1" fatal_errors)" = 0 ] || return 1
	sync_host error-irq
	wait_field "$P1" fatal_errors 1 || return 1
	dmesg | grep -q "$P1: device reported a fatal error" || { echo "no dev_err"; return 1; }
	# The parent keeps working.
	echo 1 >"/sys/kernel/debug/vslice/$P1/selftest"
}

# Each test sends every sync it owes the host, failed or not, so that the
# host script stays in step with the guest.
removed_checks() {
	wait_field "$P1" live_id 0xffffffff || return 1
	out=$( (echo 1 >"/sys/kernel/debug/vslice/$P1/selftest") 2>&1) && { echo "self-test passed on a removed device"; return 1; }
	echo "$out" | grep -q 'No such device' || { echo "self-test: $out"; return 1; }
	# Instances can still be removed cleanly while the device is gone.
	remove 30
}

fault_surprise_removal() {
	create "$P1" quarter 30 || return 1
	sync_host remove
	r=0
	removed_checks || r=1
	sync_host restore
	[ $r = 0 ] || return 1
	wait_field "$P1" live_id 0x56534c43 || return 1
	echo 1 >"/sys/kernel/debug/vslice/$P1/selftest" && expect_avail "$P1" "8 4 2 1"
}

unbind_removed() {
	wait_field "$P1" live_id 0xffffffff || return 1
	# The driver notices the device is gone: a new instance is refused
	# (its VRAM scrub reads all-ones), nothing is left half-created.
	out=$( (create "$P1" eighth 32) 2>&1) && { echo "create on a removed device succeeded"; return 1; }
	echo "$out" | grep -q 'No such device' || { echo "create: $out"; return 1; }
	[ ! -e "/sys/bus/mdev/devices/$(uuid 32)" ] || return 1
	echo "$P1" >/sys/bus/pci/drivers/vslice/unbind || return 1
	[ "$(instances)" = 0 ]
}

fault_removed_device_unbinds() {
	create "$P1" eighth 31 || return 1
	sync_host remove-again
	r=0
	unbind_removed || r=1
	sync_host restore-again
	[ $r = 0 ] || return 1
	# The device answers again a moment after the host restored it.
	k=0
	while [ $k -lt 50 ]; do
		echo "$P1" >/sys/bus/pci/drivers/vslice/bind 2>/dev/null && break
		sleep 0.2
		k=$((k + 1))
	done
	wait_field "$P1" live_id 0x56534c43 && expect_avail "$P1" "8 4 2 1"
}

run_faults_suite() {
	ktap_begin vslice_faults 3
	t fault_error_interrupt fault_error_interrupt
	t fault_surprise_removal fault_surprise_removal
	t fault_removed_device_unbinds fault_removed_device_unbinds
	ktap_end
}
