# vslice top-level entry points. Everything runs as root on the host and
# builds what it needs into the cache ($(VSLICE_CACHE), default
# ~/.cache/vslice); see README.md.
#
#   make demo                      boot the VM with the simulated device, show vslice working
#   make check                     build everything, run every test, "N passed, N failed"
#   make stress                    the long reliability run (>= 1000 cycles; docs/reliability.md)
#   make bench [RUNS=n]            vslice vs mtty/mdpy/mbochs on the perf kernel, n VM runs (default 3; docs/benchmarks.md)
#   make vm-run SCRIPT=f [FILES=dir] [DEVICES=n] [KERNEL=debug|perf]
#   make modules [KERNEL=...]      build vslice.ko and the KUnit modules (also: make)
#   make kernel [KERNEL=...]       build the kernel variant
#   make buildroot                 create the pinned trixie build root
#   make nested-qemu               a nested QEMU uses an instance (>128 vectors, >4 GiB device) as its vfio-pci device; QEMU migrates one
#   make vfio-selftests            the kernel's VFIO selftests (our driver, an mdev) against an instance
#   make cache-prune               delete cached trees whose key no longer matches

SHELL := /bin/bash
KERNEL ?= debug
DEVICES ?= 1
RUNS ?= 3
SCRIPTS := $(CURDIR)/scripts

.PHONY: all modules kernel buildroot check stress bench demo vm-run nested-qemu vfio-selftests cache-prune clean

all: modules

modules:
	@$(SCRIPTS)/modules.sh $(KERNEL)

kernel:
	@$(SCRIPTS)/kernel.sh $(KERNEL)

buildroot:
	@. $(SCRIPTS)/lib.sh && need_root && \
		if root_ready; then log "build root $$(root_dir) is ready"; else require_root; fi

check:
	@$(SCRIPTS)/check.sh

stress:
	@$(SCRIPTS)/stress.sh

bench:
	@VSLICE_BENCH_RUNS=$(RUNS) $(SCRIPTS)/bench.sh

demo:
	@$(SCRIPTS)/demo.sh

vm-run:
	@test -n "$(SCRIPT)" || { echo "usage: make vm-run SCRIPT=path/to/script.sh [FILES=dir] [DEVICES=n] [KERNEL=debug|perf] [IOMMU=1]" >&2; exit 2; }
	@$(SCRIPTS)/vm-run.sh --script "$(SCRIPT)" $(if $(FILES),--files "$(FILES)") \
		--devices $(DEVICES) --kernel $(KERNEL) --name vm-run $(if $(IOMMU),--iommu)

nested-qemu:
	@. $(SCRIPTS)/lib.sh && VSLICE_HWSIM_ARGS_0=$$VSLICE_NESTED_HWSIM_ARGS \
		$(SCRIPTS)/vm-run.sh --script $(CURDIR)/guest/nested-qemu.sh --files "$$($(SCRIPTS)/nested-qemu.sh)" \
		--devices 3 --name nested-qemu --timeout 900

vfio-selftests:
	@$(SCRIPTS)/vm-run.sh --script $(CURDIR)/guest/vfio-selftests.sh --files "$$($(SCRIPTS)/vfio-selftests.sh)" \
		--devices 1 --name vfio-selftests

cache-prune:
	@$(SCRIPTS)/cache-prune.sh

clean:
	cargo clean
