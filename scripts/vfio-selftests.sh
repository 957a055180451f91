#!/usr/bin/env bash
# vfio-selftests.sh [OUT]: builds the kernel's own VFIO selftests
# (tools/testing/selftests/vfio of the cached Linux source) static for the
# test VM, with config/kernel/selftests-patches/*.patch applied to a copy
# (an mdev taken by its UUID; the vslice driver registered) and
# tools/vfio-selftests/vslice.c as their vslice driver, its register
# header generated from regs/vslice_regs.rs. The patches go to a copy, not
# to the kernel tree: they change no kernel, so the kernel's key stays.
# Prints the directory holding only the binaries and
# guest/vfio-selftests.sh (the FILES of a VM run, /extra in the guest). Rebuilt only when an input changes. Every step
# says "|| return 1": under stage's "||", errexit does not apply.
. "$(dirname "$0")/lib.sh"
need_root
require_root
kdir=$("$VSLICE_TOP/scripts/kernel.sh" debug)
ksrc=$(readlink -f "$kdir/source-tree")
st=$VSLICE_TOP/config/kernel/selftests-patches
# shellcheck disable=SC2046
key=$(hash_files "$0" "$VSLICE_TOP/tools/vfio-selftests/vslice.c" \
	"$VSLICE_TOP/tools/vfio-selftests/compat/uuid/uuid.h" "$VSLICE_TOP/regs/vslice_regs.rs" \
	"$VSLICE_TOP/scripts/gen-regs-header.py" "$VSLICE_TOP/guest/vfio-selftests.sh" \
	$(find "$st" -name '*.patch' | sort))-$(basename "$ksrc")
out=${1:-$VSLICE_WORK/build/vfio-selftests}
TESTS="vfio_iommufd_setup_test vfio_pci_device_test vfio_dma_mapping_test vfio_pci_driver_test vfio_pci_device_init_perf_test"

build() {
	[ "$(cat "$out/.key" 2>/dev/null)" = "$key" ] && return 0
	rm -rf "$out"
	mkdir -p "$out/src/tools/testing/selftests" "$out/src/tools/arch" "$out/files"
	local src=$out/src/tools/testing/selftests/vfio p t
	# -L: the driver headers and tools/include link into the kernel tree.
	cp -rL "$ksrc/tools/testing/selftests/vfio" "$ksrc"/tools/testing/selftests/kselftest*.h \
		"$out/src/tools/testing/selftests/"
	cp -rL "$ksrc/tools/include" "$out/src/tools/"
	cp -rL "$ksrc/tools/arch/x86" "$out/src/tools/arch/"
	for p in "$st"/*.patch; do
		patch -d "$out/src" -p1 --forward --batch --quiet <"$p" || return 1
	done
	mkdir -p "$src/lib/drivers/vslice"
	cp "$VSLICE_TOP/tools/vfio-selftests/vslice.c" "$src/lib/drivers/vslice/"
	python3 "$VSLICE_TOP/scripts/gen-regs-header.py" "$VSLICE_TOP/regs/vslice_regs.rs" \
		"$src/lib/drivers/vslice/vslice_regs.h"
	local lib
	lib=$(sed -n 's/^LIBVFIO_C [:+]= //p' "$src/lib/libvfio.mk" | sed "s|^|$src/lib/|" | tr '\n' ' ')
	in_root "cd '$src' && for t in $TESTS; do
		gcc -static -O2 -pthread -Wall -Werror -D_GNU_SOURCE \
			-I lib/include -I '$out/src/tools/include' -I '$out/src/tools/testing/selftests' \
			-I '$VSLICE_TOP/tools/vfio-selftests/compat' -I lib/drivers/vslice \
			\$t.c $lib -o '$out/files/'\$t
	done" || return 1
	cp "$VSLICE_TOP/guest/vfio-selftests.sh" "$out/files/" || return 1
	echo "$key" >"$out/.key"
}
with_lock build stage "build the kernel's VFIO selftests (static)" build >&2
echo "$out/files"
