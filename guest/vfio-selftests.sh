# shellcheck shell=sh
# The kernel's own VFIO selftests (tools/testing/selftests/vfio, built by
# scripts/vfio-selftests.sh with our driver and the mdev patch) against a
# vslice instance: one KTAP suite, vslice_vfio_selftests, one test per
# kselftest case (FIXTURE.VARIANT.TEST). Cases that cannot apply to an
# mdev are not run and are reported as SKIP with the reason, never as a
# pass (docs/design.md lists them). Sourced after /guest/ktap.sh with $P1
# the parent and VST_SOURCED set; the binaries are in $VST_DIR (default
# /extra). Run as a script (make vfio-selftests) it does the same itself.

VST_DIR=${VST_DIR:-/extra}
VST_TESTS="vfio_iommufd_setup_test vfio_pci_device_test vfio_dma_mapping_test vfio_pci_driver_test vfio_pci_device_init_perf_test"
VST_TYPE1="not applicable to an mdev: VFIO type1 reports no IOVA range for a container holding only mdev devices (drivers/vfio/vfio_iommu_type1.c, vfio_iommu_iova_build_caps) and the library's IOVA allocator needs one"
VST_NOIDS="not applicable to an mdev: it has no vendor/device attributes in sysfs to compare config space with"
VST_1G="cannot apply in this VM: a 1 GiB huge page does not fit its 1 GiB of RAM (the 2 MiB variants run)"

# vst_excluded TEST: "-V variant"/"-T test" options and, one per line,
# "NAME|reason" for each case they leave out.
vst_excluded() {
	case $1 in
	vfio_pci_driver_test)
		for m in vfio_type1_iommu vfio_type1v2_iommu; do
			echo "-V $m"
			for c in init_remove memcpy_success memcpy_from_unmapped_iova memcpy_to_unmapped_iova send_msi mix_and_match memcpy_storm; do
				echo "vfio_pci_driver_test.$m.$c|$VST_TYPE1"
			done
		done
		;;
	vfio_dma_mapping_test)
		for m in vfio_type1_iommu vfio_type1v2_iommu; do
			echo "-V $m"
			for c in unmap_range unmap_all overflow; do
				echo "vfio_dma_map_limit_test.$m.$c|$VST_TYPE1"
			done
			for v in anonymous anonymous_hugetlb_2mb anonymous_hugetlb_1gb; do
				echo "-V ${m}_$v"
				echo "vfio_dma_mapping_test.${m}_$v.dma_map_unmap|$VST_TYPE1"
			done
		done
		for m in iommufd_compat_type1 iommufd_compat_type1v2 iommufd; do
			echo "-V ${m}_anonymous_hugetlb_1gb"
			echo "vfio_dma_mapping_test.${m}_anonymous_hugetlb_1gb.dma_map_unmap|$VST_1G"
		done
		;;
	vfio_pci_device_test)
		echo "-T config_space_read_write"
		echo "vfio_pci_device_test.config_space_read_write|$VST_NOIDS"
		;;
	esac
}

run_vfio_selftests() {
	res=/tmp/vst.results
	: >"$res"
	# vfio_pci_driver_test maps a 1 GiB shared buffer and touches a few
	# MiB of it: more than the VM's RAM under the default heuristic.
	oc=$(cat /proc/sys/vm/overcommit_memory)
	echo 1 >/proc/sys/vm/overcommit_memory
	# The 2 MiB hugetlb variants of vfio_dma_mapping_test map one page.
	hp=$(cat /proc/sys/vm/nr_hugepages)
	echo 2 >/proc/sys/vm/nr_hugepages
	u=$(vslice create "$P1" quarter)
	for t in $VST_TESTS; do
		opts=$(vst_excluded "$t" | grep '^-' | tr '\n' ' ')
		if [ -z "$u" ] || [ ! -x "$VST_DIR/$t" ]; then
			echo "not ok|$t|no instance or no binary" >>"$res"
			continue
		fi
		# shellcheck disable=SC2086
		"$VST_DIR/$t" $opts "$u" >"/tmp/vst.$t" 2>&1
		rc=$?
		# kselftest TAP: "ok N NAME", "ok N NAME # SKIP why", "not ok N NAME".
		sed -n 's/^\(ok\|not ok\) [0-9][0-9]* \([^ ]*\)\(.*\)$/\1|\2|\3/p' "/tmp/vst.$t" >"/tmp/vst.$t.cases"
		if [ ! -s "/tmp/vst.$t.cases" ]; then
			echo "not ok|$t|ran no case (exit $rc): $(tail -n 3 "/tmp/vst.$t" | tr '\n' ' ')" >>"$res"
		fi
		cat "/tmp/vst.$t.cases" >>"$res"
		vst_excluded "$t" | grep -v '^-' | sed 's/^\([^|]*\)|\(.*\)$/skip|\1| # SKIP \2/' >>"$res"
	done
	[ -z "$u" ] || vslice remove "$u"
	echo "$oc" >/proc/sys/vm/overcommit_memory
	echo "$hp" >/proc/sys/vm/nr_hugepages
	pinned=$(pinned_pages)
	echo "ok|pinned_pages_back_to_zero|" >>"$res"
	[ "$pinned" = 0 ] || sed -i "\$s/.*/not ok|pinned_pages_back_to_zero| # $pinned pages pinned/" "$res"
	ktap_begin vslice_vfio_selftests "$(wc -l <"$res")"
	while IFS='|' read -r st name rest; do
		ktap_n=$((ktap_n + 1))
		case $st in
		ok) echo "    ok $ktap_n $name$rest" ;;
		skip) echo "    ok $ktap_n $name$rest" ;;
		*)
			ktap_failed=$((ktap_failed + 1))
			echo "    not ok $ktap_n $name"
			grep -h -B8 -F " $name" /tmp/vst.*_test 2>/dev/null | grep '^#' | tail -n 8 | sed 's/^/    /'
			[ -z "$rest" ] || echo "    # $rest"
			;;
		esac
	done <"$res"
	ktap_end
}

# Run on its own (make vfio-selftests): the first vslice device's instance.
if [ -z "${VST_SOURCED:-}" ]; then
	. /guest/ktap.sh
	P1=$(vslice_devices | head -n1)
	run_vfio_selftests
fi
