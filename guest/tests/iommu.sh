# The parent behind an IOMMU (QEMU's intel-iommu; the run of make check
# that boots with vm-run --iommu): its DMA API mappings are translated by
# the IOMMU as well as by the device's own tables. Sourced after
# /guest/ktap.sh and lifecycle.sh ($P1).

# The IOMMU is on and the parent sits in a translated DMA domain, so a
# bus address the driver hands the device is an IOVA, not a physical
# address.
iommu_translates_the_parent() {
	[ -e /sys/class/iommu/dmar0 ] || { echo "no DMAR unit"; return 1; }
	t=$(cat "/sys/bus/pci/devices/$P1/iommu_group/type") || return 1
	[ "$t" = DMA ] || [ "$t" = DMA-FQ ] || { echo "domain type $t"; return 1; }
}

# The self-test's DMA pass: coherent pages mapped through the IOMMU,
# entered in the device's tables.
iommu_selftest_dma_round_trip() {
	echo 1048576 >"/sys/kernel/debug/vslice/$P1/selftest" || return 1
	[ "$(state_field "$P1" selftest)" = passed ] || return 1
	[ "$(state_field "$P1" selftest_dma_bytes)" = 1048576 ]
}

# An instance's DMA: tenant pages pinned, mapped for the parent through
# the IOMMU, unmapped again; nothing stays pinned.
iommu_instance_dma_round_trips() {
	u=$(vslice create "$P1" quarter) || return 1
	r=0
	vslice run --dma --rounds 8 "$u" || r=1
	vslice remove "$u" || r=1
	pinned=$(pinned_pages)
	[ "$pinned" = 0 ] || { echo "$pinned pages still pinned"; return 1; }
	return $r
}

run_iommu_suite() {
	ktap_begin vslice_iommu 3
	t iommu_translates_the_parent iommu_translates_the_parent
	t iommu_selftest_dma_round_trip iommu_selftest_dma_round_trip
	t iommu_instance_dma_round_trips iommu_instance_dma_round_trips
	ktap_end
}
