# Guest half of the reliability suite: /usr/bin/vslice-stress
# runs each scenario and writes its JSON report; each scenario is one KTAP
# test of suite vslice_reliability. Reports are printed as
# "VSLICE-REPORT <name> <json>" lines, which the host saves in the results
# directory. Sourced by check.sh and stress.sh after /guest/ktap.sh and
# lifecycle.sh. Sizes come from the environment (defaults: make check's).

# scenario NAME ARGS...: runs vslice-stress, keeps its report.
scenario() {
	name=$1
	shift
	vslice-stress --report "/tmp/report-$name.json" "$@"
}

load_under_pci_remove() {
	scenario load load --cycles "${VSLICE_CYCLES:-4}" --run-ms "${VSLICE_RUN_MS:-1500}" \
		--seed "${VSLICE_SEED:-1}" --parents 2 --max-seconds "${VSLICE_MAX_SECONDS:-0}"
}

fuzz_seeded() {
	scenario fuzz fuzz --seeds "${VSLICE_FUZZ_SEEDS:-1,2,3}" --iterations "${VSLICE_FUZZ_STEPS:-200}"
}

fault_injection_create_open_dma_probe() {
	scenario faultinj faultinj --stride "${VSLICE_FI_STRIDE:-10}" --dma-jobs "${VSLICE_FI_DMA_JOBS:-4}"
}

# uid 1000 was given instance A (its cdev chowned to it, /dev/iommu open
# to all as distributions ship it) and nothing else.
security_non_root() {
	a=$(vslice create "$P1" eighth) && b=$(vslice create "$P1" eighth) || return 1
	cdev=$(ls "/sys/bus/mdev/devices/$a/vfio-dev")
	chown 1000:1000 "/dev/vfio/devices/$cdev" && chmod 0666 /dev/iommu || return 1
	r=0
	scenario security security --uid 1000 --parent "$P1" --given "$a" --other "$b" || r=1
	chmod 0600 /dev/iommu
	vslice remove "$a" && vslice remove "$b" && [ $r = 0 ]
}

print_reports() {
	for f in /tmp/report-*.json; do
		[ -e "$f" ] || continue
		n=${f#/tmp/report-}
		echo "VSLICE-REPORT ${n%.json} $(cat "$f")"
	done
}

# run_reliability_suite [SUITE]: the four scenarios as one KTAP suite
# (vslice_reliability in make check, vslice_stress in make stress).
run_reliability_suite() {
	ktap_begin "${1:-vslice_reliability}" 4
	t load_two_parents_pci_remove_under_load load_under_pci_remove
	t fuzz_sysfs_ioctl_region_mmap_eventfd fuzz_seeded
	t fault_injection_create_open_dma_probe fault_injection_create_open_dma_probe
	t security_non_root_cannot_create_remove_open security_non_root
	ktap_end
	print_reports
}
