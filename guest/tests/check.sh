# The guest half of `make check` (busybox sh, run by scripts/check.sh via
# vm-run). Every check is a KTAP test; KUnit suites add their own documents.
. /guest/ktap.sh

bound_to_vslice() {
	devs=$(vslice_devices)
	[ -n "$devs" ] || { echo "no 1b36:5c10 device on the PCI bus"; return 1; }
	for b in $devs; do
		drv=$(basename "$(readlink "/sys/bus/pci/devices/$b/driver")")
		[ "$drv" = vslice ] || { echo "$b is bound to '$drv', not vslice"; return 1; }
	done
}

# Rust -> C (parent registered with the shim, debugfs dir created) and
# C -> Rust (the state file's content comes from vslice_rs_parent_info).
seam_state_file() {
	for b in $(vslice_devices); do
		f=/sys/kernel/debug/vslice/$b/state
		cat "$f" || return 1
		grep -qx 'id: 0x56534c43' "$f" || return 1
		grep -qx 'contexts: 16' "$f" || return 1
		grep -qx 'vram_bytes: 268435456' "$f" || return 1
	done
}

probe_logged_id() {
	dmesg | grep -q 'vslice device: ID register 0x56534c43'
}

unbind_rebind() {
	for b in $(vslice_devices); do
		echo "$b" >/sys/bus/pci/drivers/vslice/unbind || return 1
		[ ! -e "/sys/kernel/debug/vslice/$b" ] || { echo "debugfs dir left after unbind"; return 1; }
		[ ! -e "/sys/bus/pci/devices/$b/driver" ] || return 1
		echo "$b" >/sys/bus/pci/drivers/vslice/bind || return 1
		grep -q 'id: 0x56534c43' "/sys/kernel/debug/vslice/$b/state" || return 1
	done
}

mtty_create_remove() {
	modprobe mtty || return 1
	types=/sys/class/mdev_bus/mtty/mdev_supported_types
	uuid=83b8f4f2-509f-382f-3c1e-e6bfe0fa1001
	before=$(cat $types/mtty-1/available_instances)
	echo "$uuid" >$types/mtty-1/create || return 1
	[ -e /sys/bus/mdev/devices/$uuid ] || { echo "instance not in /sys/bus/mdev/devices"; return 1; }
	[ "$(cat $types/mtty-1/available_instances)" -lt "$before" ] || return 1
	echo 1 >/sys/bus/mdev/devices/$uuid/remove || return 1
	[ ! -e /sys/bus/mdev/devices/$uuid ] || return 1
	[ "$(cat $types/mtty-1/available_instances)" = "$before" ] || return 1
	rmmod mtty
}

mdevctl_sees_mtty() {
	modprobe mtty || return 1
	out=$(mdevctl types 2>&1)
	echo "$out"
	echo "$out" | grep -q mtty-1 || return 1
	rmmod mtty
}

# The driver programs a context, runs a fill and a checksum job on the
# simulated device and receives both MSI-X interrupts.
selftest_job_and_msix() {
	for b in $(vslice_devices); do
		d=/sys/kernel/debug/vslice/$b
		echo 1 >$d/selftest || { dmesg | tail -n 5; return 1; }
		cat $d/state
		grep -qx 'selftest: passed' $d/state || return 1
		n=$(sed -n 's/^selftest_irqs: //p' $d/state)
		[ "${n:-0}" -ge 1 ] || { echo "no completion interrupt"; return 1; }
	done
	# The vectors are real MSI-X interrupts of the guest kernel.
	grep vslice /proc/interrupts | head -n 20
	total=$(irq_count vslice)
	[ "$total" -ge 1 ] || { echo "no vslice interrupt counted in /proc/interrupts"; return 1; }
	# Each vector is named after its device and role.
	for b in $(vslice_devices); do
		grep -q "vslice\[$b\]:global\$" /proc/interrupts || { echo "no global vector named for $b"; return 1; }
		grep -q "vslice\[$b\]:ctx0\$" /proc/interrupts || { echo "no ctx0 vector named for $b"; return 1; }
	done
}

rmmod_vslice() {
	rmmod vslice || return 1
	[ ! -e /sys/kernel/debug/vslice ] || { echo "debugfs root left after rmmod"; return 1; }
	insmod /vslice/vslice.ko || return 1
	bound_to_vslice
}

# The VM's CPU has no 5-level paging (scripts/vm-run.sh says why).
cpu_without_la57() {
	! grep -qw la57 /proc/cpuinfo || { echo "la57 in /proc/cpuinfo"; return 1; }
}

ktap_begin vslice_vm 9
t cpu_has_no_five_level_paging cpu_without_la57
t vslice_bound_to_simulated_device bound_to_vslice
t probe_read_and_logged_id_register probe_logged_id
t seam_debugfs_state_from_rust seam_state_file
t selftest_job_and_msix_interrupt selftest_job_and_msix
t unbind_and_rebind unbind_rebind
t rmmod_and_reload_vslice rmmod_vslice
t mtty_instance_create_remove mtty_create_remove
t mdevctl_lists_mtty_types mdevctl_sees_mtty
ktap_end

mark lifecycle
. /guest/tests/lifecycle.sh
run_lifecycle_suite
mark faults
. /guest/tests/faults.sh
run_faults_suite
mark vfio
. /guest/tests/vfio.sh
run_vfio_suite
mark vfio_selftests
# The kernel's own VFIO selftests with our driver (scripts/vfio-selftests.sh
# built them into /extra).
if [ -r /extra/vfio-selftests.sh ]; then
	VST_SOURCED=1
	. /extra/vfio-selftests.sh
	run_vfio_selftests
else
	ktap_begin vslice_vfio_selftests 1
	t vfio_selftests_built sh -c 'echo "no /extra/vfio-selftests.sh: the build failed"; false'
	ktap_end
fi
mark reliability
. /guest/tests/reliability.sh
run_reliability_suite
mark bench_smoke
. /guest/tests/bench.sh
run_bench_smoke_suite

mark kunit
insmod /vslice/kunit/vslice_shim_kunit.ko
insmod /vslice/kunit/vslice_kunit.ko
kunit_results vslice_shim
kunit_results vslice_caps
kunit_results vslice_carve
kunit_results vslice_vdev
kunit_results vslice_scrub
rmmod vslice_kunit vslice_shim_kunit
mark end
exit 0
