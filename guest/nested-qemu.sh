# Guest half of the nested-QEMU smoke test (scripts/nested-qemu.sh puts
# QEMU in /extra). One KTAP suite, vslice_nested_qemu.
. /guest/ktap.sh
P1=$(vslice_devices | head -n1)
Q="/extra/lib/ld-linux-x86-64.so.2 --library-path /extra/lib /extra/bin/qemu-system-x86_64"

nested_qemu_sees_the_instance() {
	u=$(vslice create "$P1" quarter) || return 1
	rm -f /tmp/mon.in /tmp/mon.out
	mkfifo /tmp/mon.in /tmp/mon.out
	# shellcheck disable=SC2086
	$Q -L /extra/share -machine q35 -accel tcg -m 64 -nodefaults -display none \
		-monitor pipe:/tmp/mon \
		-object iommufd,id=iommufd0 \
		-device vfio-pci,sysfsdev=/sys/bus/mdev/devices/$u,iommufd=iommufd0 \
		>/tmp/nested.err 2>&1 &
	qp=$!
	exec 3>/tmp/mon.in
	cat /tmp/mon.out >/tmp/mon.log &
	ok=0
	k=0
	while [ $k -lt 60 ] && kill -0 $qp 2>/dev/null; do
		echo "info pci" >&3
		sleep 2
		# The nested guest's firmware (SeaBIOS) found device 1b36:5c11
		# and assigned its VRAM BAR (unassigned shows as all-ones).
		bar2=$(grep -A12 'PCI device 1b36:5c11' /tmp/mon.log | grep 'BAR2: 64 bit prefetchable memory at' | tail -n1)
		if [ -n "$bar2" ] && ! echo "$bar2" | grep -q 'at 0xffffffffffffffff'; then
			ok=1
			break
		fi
		k=$((k + 1))
	done
	echo quit >&3
	exec 3>&-
	wait $qp
	grep -A14 'PCI device 1b36:5c11' /tmp/mon.log | tail -n 15
	cat /tmp/nested.err
	vslice remove "$u" || return 1
	[ $ok = 1 ]
}

ktap_begin vslice_nested_qemu 1
t nested_qemu_sees_the_instance nested_qemu_sees_the_instance
ktap_end
exit 0
