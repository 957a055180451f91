#!/usr/bin/env bash
# nested-qemu.sh: `make nested-qemu`, the smoke test of QEMU as an instance's
# user. Boots the test VM with QEMU (from the build root, with its
# libraries and SeaBIOS) in /extra; the guest (guest/nested-qemu.sh)
# creates an instance and starts a nested QEMU (TCG) with
# `-device vfio-pci,sysfsdev=/sys/bus/mdev/devices/<uuid>` over iommufd,
# and checks through the nested QEMU's monitor that its firmware found the
# instance on its PCI bus and assigned its BARs; then QEMU migrates a
# guest (guest/jobguest, built here) that keeps jobs running on its
# instance. Prints KTAP; `make check` runs it too (see README for the
# measured cost).
. "$(dirname "$0")/lib.sh"
need_root
require_root
out=${1:-$VSLICE_WORK/build/nested}
in_root "
set -e
rm -rf '$out'
mkdir -p '$out/bin' '$out/lib' '$out/share'
cp -L /usr/bin/qemu-system-x86_64 '$out/bin/'
for lib in \$(ldd /usr/bin/qemu-system-x86_64 | grep -o '/[^ ]*'); do cp -L \"\$lib\" '$out/lib/'; done
cp -L /usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin \
	/usr/share/qemu/multiboot_dma.bin '$out/share/'
" >&2
python3 "$VSLICE_TOP/scripts/gen-regs-header.py" "$VSLICE_TOP/regs/vslice_regs.rs" "$out/vslice_regs.h"
in_root "clang --target=i386-unknown-none-elf -march=i686 -O2 -Wall -Wextra -Werror \
	-ffreestanding -fno-pic -fno-stack-protector -mno-sse -mno-mmx -nostdlib -static \
	-fuse-ld=lld -Wl,-T,'$VSLICE_TOP/guest/jobguest/jobguest.ld' -Wl,--build-id=none \
	-I '$out' '$VSLICE_TOP/guest/jobguest/jobguest.c' -o '$out/share/jobguest.elf'" >&2
echo "$out"
