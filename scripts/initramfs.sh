#!/usr/bin/env bash
# initramfs.sh VARIANT OUT: the base initramfs for the test VM: busybox,
# the kernel's modules (mdev, mtty, mdpy, mbochs, ...), vslice.ko and the
# KUnit modules, mdevctl with its libraries, guest/ files as /guest.
# The per-run part (script, FILES, env) is a second cpio that vm-run
# appends (the kernel unpacks concatenated archives in order).
. "$(dirname "$0")/lib.sh"

variant=$1
out=$2
kdir=$("$VSLICE_TOP/scripts/kernel.sh" "$variant")
mods=$("$VSLICE_TOP/scripts/modules.sh" "$variant" | tail -n1)
stagedir=$VSLICE_WORK/build/$variant/initramfs
in_root "
set -e
rm -rf '$stagedir'
mkdir -p '$stagedir'
cd '$stagedir'
mkdir -p bin sbin usr/bin usr/sbin lib lib64 etc proc sys dev tmp run extra vslice/kunit guest \
	etc/mdevctl.d usr/lib/mdevctl/scripts.d/callouts usr/lib/mdevctl/scripts.d/notifiers
cp /bin/busybox bin/busybox
for app in \$(bin/busybox --list); do
	[ -e bin/\$app ] || ln -s busybox bin/\$app
done
cp -a '$kdir/mods/lib/modules' lib/
cp '$mods/vslice.ko' vslice/
cp '$mods'/kunit/*.ko vslice/kunit/
cp /usr/bin/mdevctl usr/bin/
ln -s mdevctl usr/bin/lsmdev
for lib in \$(ldd /usr/bin/mdevctl | grep -o '/[^ ]*'); do
	mkdir -p \"\$(dirname \".\$lib\")\"
	cp -L \"\$lib\" \".\$lib\"
done
cp -a '$VSLICE_TOP'/guest/. guest/
install -m 755 '$VSLICE_TOP/guest/init' init
echo 'root:x:0:0:root:/root:/bin/sh' >etc/passwd
echo 'root:x:0:' >etc/group
find . | cpio -o -H newc --quiet | gzip -1 >'$out'
"
