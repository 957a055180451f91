# The guest half of `make demo`: a short story of what vslice does.
. /guest/ktap.sh
. /guest/tests/lifecycle.sh
say() { printf '\n== %s\n' "$*"; }
show_avail() { echo "   available (eighth quarter half full unit): $(avail_all "$1")"; }

say "Simulated vslice devices on the PCI bus, bound to the Rust driver"
for b in $(vslice_devices); do
	echo "$b  class $(cat /sys/bus/pci/devices/$b/class)  driver: $(basename "$(readlink /sys/bus/pci/devices/$b/driver)")"
done
dmesg | grep 'vslice device:' | sed 's/^\[[ 0-9.]*\] /   /'

say "Each device is an mdev parent with five types (mdevctl types)"
mdevctl types | awk -v p="$P1" '/^[^ ]/ { on = ($1 == p) } on'

say "Carving $P1: instances of several types"
show_avail "$P1"
for spec in "quarter 1" "eighth 2" "eighth 3" "half 4"; do
	set -- $spec
	create "$P1" "$1" "$2" && echo "created $(uuid "$2") as vslice-$1"
	show_avail "$P1"
done
echo "one more half does not fit: $( (create "$P1" half 5) 2>&1 | sed 's/.*error: //')"
mdevctl list

say "The parent's debugfs view: lifecycle, VRAM map, contexts, instances"
grep -E '^(state|instances|vram_units_used|free_contexts|instance)' /sys/kernel/debug/vslice/$P1/state

say "A job on the hardware: fill + checksum, completion by MSI-X"
echo 1 >/sys/kernel/debug/vslice/$P2/selftest && grep -E '^selftest' /sys/kernel/debug/vslice/$P2/state

say "Real work on $P2's instances at once: the vslice client opens each through VFIO"
echo "   (register window trapped, VRAM slice mmap'd, one MSI-X eventfd per context)"
jobs_on=""
for t in half quarter eighth eighth; do
	u=$(vslice create "$P2" $t) && jobs_on="$jobs_on $u" && echo "created $u as vslice-$t"
done
vslice run --len 1048576 --rounds 2 $jobs_on

say "DMA: each instance's jobs reach the client's memory by IOVA (its IOAS), host -> VRAM -> host"
vslice run --dma --len 1048576 $jobs_on
grep -E '^(pinned_pages|dma_faults)' /sys/kernel/debug/vslice/stats
for u in $jobs_on; do vslice remove "$u"; done

say "A user holding an instance when its parent goes: REQ, the client lets go"
u=$(vslice create "$P2" eighth)
vslice hold "$u" 60 &
sleep 1
start=$(cut -d' ' -f1 /proc/uptime)
echo "$P2" >/sys/bus/pci/drivers/vslice/unbind
end=$(cut -d' ' -f1 /proc/uptime)
wait
echo "unbind of $P2 with an open instance took $(echo "$start $end" | awk '{ printf "%.2f", $2 - $1 }') s"
echo "$P2" >/sys/bus/pci/drivers/vslice/bind

say "Removing the PCI device ($P1) while 3 loops create and remove instances"
for w in 0 1 2; do
	(i=0; while [ $i -lt 25 ]; do create "$P1" eighth $((64 + w)) 2>/dev/null; remove $((64 + w)) 2>/dev/null; i=$((i + 1)); done) &
done
sleep 1
start=$(cut -d' ' -f1 /proc/uptime)
echo 1 >/sys/bus/pci/devices/$P1/remove
end=$(cut -d' ' -f1 /proc/uptime)
wait
echo "unbind took $(echo "$start $end" | awk '{ printf "%.2f", $2 - $1 }') s; instances left on $P1: $(ls /sys/bus/mdev/devices | grep -c . )"
echo "parents now: $(ls /sys/class/mdev_bus | tr '\n' ' ')"
echo 1 >/sys/bus/pci/rescan
k=0
while [ ! -e /sys/class/mdev_bus/$P1 ] && [ $k -lt 50 ]; do sleep 0.2; k=$((k + 1)); done
echo "rescanned: $P1 is back, bound to $(basename "$(readlink /sys/bus/pci/devices/$P1/driver)")"
show_avail "$P1"

say "Leak check (kmemleak scan)"
echo scan >/sys/kernel/debug/kmemleak
echo scan >/sys/kernel/debug/kmemleak
leaks=$(grep -c 'unreferenced object' /sys/kernel/debug/kmemleak)
echo "kmemleak: $leaks unreferenced object(s)"

say "Unloading vslice"
rmmod vslice && echo "vslice unloaded; parents left: $(ls /sys/class/mdev_bus 2>/dev/null | grep -c .)"
