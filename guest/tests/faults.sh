# Guest half of the fault tests: the host half (scripts/tests/host-faults.sh,
# run by vm-run --host-script) waits for each "VSLICE-SYNC <fault>" line and
# injects that fault into hw-sim 0 through its control socket.
# Sourced by check.sh after /guest/ktap.sh and lifecycle.sh.

# The host watches the console for these; inside a test's $(...) stdout is
# captured, so they go to the serial port directly.
sync_host() { echo "VSLICE-SYNC $1" >/dev/ttyS1; }
# wait_field BDF FIELD VALUE: up to 20 s for the state file to show it.
wait_field() {
	k=0
	while [ "$(state_field "$1" "$2")" != "$3" ]; do
		k=$((k + 1))
		[ $k -lt 100 ] || { echo "$2 is '$(state_field "$1" "$2")', want '$3'"; return 1; }
		sleep 0.2
	done
}

# A fatal device error: one clear line, the parent keeps working, and an
# instance in use is cut off (EIO, SIGBUS) until its user resets it
# (vslice-test fatal-cutoff says how it went).
fault_error_interrupt() {
	[ "$(state_field "$P1" fatal_errors)" = 0 ] || return 1
	create "$P1" eighth 33 || return 1
	vslice-test fatal-cutoff "$(uuid 33)" >/tmp/fatal.out 2>&1 &
	fp=$!
	k=0
	while ! grep -q '^ready' /tmp/fatal.out && [ $k -lt 100 ]; do sleep 0.1; k=$((k + 1)); done
	sync_host error-irq
	r=0
	wait_field "$P1" fatal_errors 1 || r=1
	wait $fp || r=1
	cat /tmp/fatal.out
	remove 33 || r=1
	[ $r = 0 ] || return 1
	grep -q '^recovered by reset' /tmp/fatal.out || return 1
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
	echo 1 >"/sys/kernel/debug/vslice/$P1/selftest" && expect_avail "$P1" "8 4 2 1 16"
}

unbind_removed() {
	wait_field "$P1" live_id 0xffffffff || return 1
	# The driver notices the device is gone: a new instance is refused
	# (its registers read all-ones), nothing is left half-created.
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
	wait_field "$P1" live_id 0x56534c43 && expect_avail "$P1" "8 4 2 1 16"
}

# client_stopped PID OUT: the background client ends within 20 s, with a
# clean error (the device reads all-ones), never a data mismatch.
client_stopped() {
	k=0
	while kill -0 "$1" 2>/dev/null && [ $k -lt 100 ]; do sleep 0.2; k=$((k + 1)); done
	if kill -0 "$1" 2>/dev/null; then
		kill "$1"
		echo "client still running 20 s after the fault"
		return 1
	fi
	wait "$1" && { echo "client succeeded on a dead device: $(cat "$2")"; return 1; }
	cat "$2"
	grep -q 'reads all-ones' "$2" || return 1
	! grep -q 'differs\|checksum\|panicked' "$2"
}

removed_during_jobs() {
	wait_field "$P1" live_id 0xffffffff || return 1
	client_stopped "$2" /tmp/run-removed.out || return 1
	# The instance goes cleanly while the device is still gone.
	remove 33 && [ ! -e "/sys/bus/mdev/devices/$1" ]
}

# Surprise removal while every context of an instance runs jobs.
fault_surprise_removal_during_jobs() {
	create "$P1" quarter 33 || return 1
	vslice run --rounds 100000 --len 65536 "$(uuid 33)" >/tmp/run-removed.out 2>&1 &
	rp=$!
	sleep 1
	sync_host remove-jobs
	r=0
	removed_during_jobs "$(uuid 33)" $rp || r=1
	sync_host restore-jobs
	[ $r = 0 ] || { kill $rp 2>/dev/null; wait $rp; remove 33 2>/dev/null; return 1; }
	wait_field "$P1" live_id 0x56534c43 || return 1
	expect_avail "$P1" "8 4 2 1 16" || return 1
	# A new tenant works on the restored device.
	u=$(vslice create "$P1" eighth) && vslice run --len 65536 "$u" && vslice remove "$u"
}

# A device hang (2 s, below QEMU's 5 s message timeout) in the middle of
# jobs: everything stalls, then resumes; every result still verifies.
fault_hang_during_jobs() {
	u=$(vslice create "$P1" eighth) || return 1
	vslice run --rounds 400 --len 65536 "$u" >/tmp/run-hang.out 2>&1 &
	rp=$!
	sleep 0.5
	sync_host hang
	r=0
	wait $rp || r=1
	cat /tmp/run-hang.out
	vslice remove "$u" || return 1
	[ $r = 0 ] || return 1
	# The hang stalled one round (not just the run as a whole).
	ms=$(sed -n 's/.*longest round \([0-9]*\) ms.*/\1/p' /tmp/run-hang.out)
	[ "${ms:-0}" -ge 1500 ] || { echo "longest round ${ms:-?} ms: the 2 s hang did not hit a round"; return 1; }
	expect_avail "$P1" "8 4 2 1 16"
}

run_faults_suite() {
	ktap_begin vslice_faults 5
	t fault_error_interrupt fault_error_interrupt
	t fault_surprise_removal fault_surprise_removal
	t fault_removed_device_unbinds fault_removed_device_unbinds
	t fault_surprise_removal_during_jobs fault_surprise_removal_during_jobs
	t fault_hang_during_jobs fault_hang_during_jobs
	ktap_end
}

# The device's process dies (hw-sim exits: QEMU's accesses to it fail for
# good) while a client holds an instance of P2 open. Its own VM run
# (guest/device-death.sh): P2 does not come back. The guest keeps its
# hands off P2 while the server goes: QEMU 11.1.3 aborts (error_setv
# assertion) when the socket closes under a request in flight, so the
# death cannot be tested in the middle of jobs (the driver side of that,
# a device vanishing under jobs, is fault_surprise_removal_during_jobs).
# The parent stays bound; unbinding a device that reads all-ones is
# fault_removed_device_unbinds.
fault_hwsim_exit_with_open_instance() {
	[ -n "$P2" ] || { echo "needs two devices"; return 1; }
	u=$(vslice create "$P2" quarter) || return 1
	before=$(sed -n 's/^instances_released: //p' /sys/kernel/debug/vslice/stats)
	vslice hold "$u" 120 >/tmp/hold-exit.out 2>&1 &
	hp=$!
	k=0
	while ! grep -q '^holding' /tmp/hold-exit.out && [ $k -lt 50 ]; do sleep 0.1; k=$((k + 1)); done
	sync_host exit
	# The host kills the server within a second; touch nothing until then.
	sleep 3
	wait_field "$P2" live_id 0xffffffff || { kill $hp; return 1; }
	# The dead device's instance goes: REQ to the holder, which closes.
	echo 1 >"/sys/bus/mdev/devices/$u/remove" || { kill $hp; return 1; }
	wait $hp || { echo "holder: $(cat /tmp/hold-exit.out)"; return 1; }
	grep -q '^request received' /tmp/hold-exit.out || { cat /tmp/hold-exit.out; return 1; }
	[ ! -e "/sys/bus/mdev/devices/$u" ] || { echo "instance still there"; return 1; }
	rel=$(sed -n 's/^instances_released: //p' /sys/kernel/debug/vslice/stats)
	[ "$rel" = "$((before + 1))" ] || { cat /sys/kernel/debug/vslice/stats; return 1; }
	# A new instance on the dead device is refused cleanly.
	out=$( (vslice create "$P2" eighth) 2>&1) && { echo "create on a dead device succeeded"; return 1; }
	echo "$out" | grep -q 'No such device' || { echo "create: $out"; return 1; }
	# The other parent is unaffected.
	echo 1 >"/sys/kernel/debug/vslice/$P1/selftest"
}

run_device_death_suite() {
	ktap_begin vslice_device_death 1
	t fault_hwsim_exit_with_open_instance fault_hwsim_exit_with_open_instance
	ktap_end
}
