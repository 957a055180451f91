# The device-death run of make check (its own VM: the second device's
# hw-sim is killed for good; both devices behind QEMU's intel-iommu).
# Host half: scripts/tests/host-death.sh. The IOMMU suite runs first,
# while both devices live.
. /guest/ktap.sh
. /guest/tests/lifecycle.sh
. /guest/tests/iommu.sh
run_iommu_suite
. /guest/tests/faults.sh
run_device_death_suite
