# The long reliability run (make stress; scripts/stress.sh sets the sizes
# through the environment): the same scenarios as make check, longer, and
# fault injection at every fault point. One KTAP suite, vslice_stress.
. /guest/ktap.sh
. /guest/tests/lifecycle.sh
. /guest/tests/reliability.sh
ktap_begin vslice_stress 4
t load_two_parents_pci_remove_under_load load_under_pci_remove
t fuzz_sysfs_ioctl_region_mmap_eventfd fuzz_seeded
t fault_injection_create_open_probe fault_injection_create_open_probe
t security_non_root_cannot_create_remove_open security_non_root
ktap_end
print_reports
