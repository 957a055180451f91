# The guest half of `make demo`: a short story of what vslice did.
. /guest/ktap.sh
say() { printf '\n== %s\n' "$*"; }

say "Simulated vslice devices on the PCI bus (vendor 0x1b36, device 0x5c10)"
for b in $(vslice_devices); do
	d=/sys/bus/pci/devices/$b
	echo "$b  class $(cat $d/class)  driver: $(basename "$(readlink $d/driver)")"
done

say "What the driver read from each device's BAR0 (probe log)"
dmesg | grep 'vslice device:' | sed 's/^\[[ 0-9.]*\] //'

say "The parent state, as C's debugfs file gets it from Rust"
for b in $(vslice_devices); do
	echo "/sys/kernel/debug/vslice/$b/state:"
	sed 's/^/    /' /sys/kernel/debug/vslice/$b/state
done

say "Unbinding and rebinding the first device"
b=$(vslice_devices | head -n1)
echo "$b" >/sys/bus/pci/drivers/vslice/unbind && echo "unbound $b: driver link gone: $([ -e /sys/bus/pci/devices/$b/driver ] && echo no || echo yes)"
echo "$b" >/sys/bus/pci/drivers/vslice/bind && echo "bound again: $(basename "$(readlink /sys/bus/pci/devices/$b/driver)")"

say "VFIO mediated devices work in this kernel: the in-tree mtty sample"
modprobe mtty
mdevctl types | head -n 8
u=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || echo 6e3a2f10-9b1c-4c3e-8f6d-2a7b5c4d3e21)
echo "$u" >/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create && echo "created mtty instance $u"
echo 1 >/sys/bus/mdev/devices/$u/remove && echo "removed it again"
rmmod mtty

say "Unloading vslice"
rmmod vslice && echo "vslice unloaded; debugfs root gone: $([ -e /sys/kernel/debug/vslice ] && echo no || echo yes)"
