# Guest half of the nested-QEMU smoke test (scripts/nested-qemu.sh puts
# QEMU in /extra). One KTAP suite, vslice_nested_qemu. The device has the
# large geometry of VSLICE_NESTED_HWSIM_ARGS (scripts/lib.sh): more than
# 128 contexts and more than 4 GiB of VRAM, so that the whole-device type
# has a slice the scrub takes in several passes and an MSI-X table whose
# PBA QEMU places after it.
. /guest/ktap.sh
P1=$(vslice_devices | head -n1)
Q="/extra/lib/ld-linux-x86-64.so.2 --library-path /extra/lib /extra/bin/qemu-system-x86_64"
TYPES="eighth quarter half full unit"
avail() { cat "/sys/class/mdev_bus/$P1/mdev_supported_types/vslice-$1/available_instances"; }

# For every type on this geometry: available > 0 <=> create succeeds, and
# the capacity comes back after the removal. With the whole device taken,
# every type says 0 and every create is refused.
large_geometry_every_type_creatable() {
	vram=$(state_field "$P1" vram_bytes)
	echo "device: $(state_field "$P1" contexts) contexts, $vram bytes of VRAM"
	[ "$vram" -gt 4294967296 ] || { echo "this run needs a device with more than 4 GiB of VRAM"; return 1; }
	for t in $TYPES; do
		n=$(avail $t)
		[ "$n" -gt 0 ] || { echo "vslice-$t: none available on an empty parent"; return 1; }
		u=$(vslice create "$P1" $t) || { echo "vslice-$t: available $n but create failed"; return 1; }
		[ "$(avail $t)" = $((n - 1)) ] || { echo "vslice-$t: available $(avail $t) after a create, want $((n - 1))"; return 1; }
		vslice remove "$u" || return 1
		[ "$(avail $t)" = "$n" ] || { echo "vslice-$t: available $(avail $t) after the removal, want $n"; return 1; }
	done
	u=$(vslice create "$P1" full) || return 1
	for t in $TYPES; do
		[ "$(avail $t)" = 0 ] || { echo "vslice-$t: available $(avail $t) with the device taken"; vslice remove "$u"; return 1; }
		if out=$(vslice create "$P1" $t 2>&1); then
			echo "vslice-$t: created with the device taken"
			vslice remove "$out"
			vslice remove "$u"
			return 1
		fi
	done
	vslice remove "$u"
}

nested_qemu_sees_the_instance() {
	u=$(vslice create "$P1" full) || return 1
	vecs=$(vslice info "$u" | sed -n 's/^irq 2: count \([0-9]*\).*/\1/p')
	echo "instance: $vecs MSI-X vectors"
	[ "${vecs:-0}" -gt 128 ] || { echo "this run needs an instance with more than 128 vectors"; vslice remove "$u"; return 1; }
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

# qemu_start NAME FD UUID ARGS...: a nested QEMU (TCG) with instance UUID
# as its vfio-pci device through a type1 container (QEMU's legacy path,
# whose dirty-page tracking QEMU's migration needs for a device without
# its own), its monitor on fd FD and its output in /tmp/NAME.mon, its
# debug console (port 0xe9) in /tmp/NAME.con.
qemu_start() {
	name=$1 fd=$2 u=$3
	shift 3
	rm -f "/tmp/$name.in" "/tmp/$name.out" "/tmp/$name.con"
	mkfifo "/tmp/$name.in" "/tmp/$name.out"
	# shellcheck disable=SC2086
	$Q -L /extra/share -machine q35 -accel tcg -m 32 -nodefaults -display none \
		-monitor "pipe:/tmp/$name" \
		-chardev "file,id=con,path=/tmp/$name.con" -device isa-debugcon,iobase=0xe9,chardev=con \
		-device "vfio-pci,sysfsdev=/sys/bus/mdev/devices/$u" "$@" \
		>"/tmp/$name.err" 2>&1 &
	pid=$!
	eval "${name}_pid=$pid"
	# Read-write: opening the FIFO does not wait for QEMU to open it.
	eval "exec $fd<>/tmp/$name.in"
	cat "/tmp/$name.out" >"/tmp/$name.mon" &
	sleep 1
	kill -0 $pid 2>/dev/null || { echo "$name: QEMU exited"; cat "/tmp/$name.err"; return 1; }
}

# mon_wait FD FILE CMD PATTERN: sends CMD every 2 s until FILE matches
# PATTERN (60 tries).
mon_wait() {
	k=0
	while [ $k -lt 60 ]; do
		eval "echo \"\$3\" >&$1"
		sleep 2
		grep -q "$4" "$2" && return 0
		k=$((k + 1))
	done
	return 1
}

# verified FILE: the last count of jobs the guest verified in console FILE.
verified() { sed -n 's/^jobguest: \([0-9]*\) jobs verified$/\1/p' "$1" | tail -n1; }

# con_wait FILE MIN: waits (120 s at most) until the guest of console
# FILE has verified more than MIN jobs; fails at once on "BAD".
con_wait() {
	k=0
	while [ $k -lt 120 ]; do
		grep -q BAD "$1" 2>/dev/null && return 1
		[ "$(verified "$1")" -gt "$2" ] 2>/dev/null && return 0
		sleep 1
		k=$((k + 1))
	done
	return 1
}

# QEMU's own migration moves a running guest (guest/jobguest: it keeps two
# batches of checksum jobs queued on its instance and checks every result
# and the completed count) from a nested QEMU holding an instance of the
# second device to another, started with -incoming, holding one of the
# third. After the switchover the guest goes on on the destination and
# verifies more jobs there; the driver's stats show that the stream carried
# jobs; the data the jobs hash arrives intact (checked after both QEMUs
# quit: VRAM outlives its users).
qemu_migrates_a_guest_with_jobs_running() {
	P2=$(vslice_devices | sed -n 2p)
	P3=$(vslice_devices | sed -n 3p)
	[ -n "$P3" ] || { echo "this test needs three devices"; return 1; }
	a=$(vslice create "$P2" unit) || return 1
	b=$(vslice create "$P3" unit) || { vslice remove "$a"; return 1; }
	# The jobs hash all of the slice but its last MiB, which holds the
	# guest's ring.
	len=$(($(vslice info "$a" | sed -n 's/^region 2: size \(0x[0-9a-f]*\).*/\1/p') - 1048576))
	r=1 src_pid='' dst_pid=''
	moved=$(stats_field mig_jobs_moved) resumed=$(stats_field mig_jobs_resumed)
	if fnv=$(vslice-test vram-pattern "$a" write 77 --len $len); then
		fnv=${fnv##* }
		echo "guest: checksum jobs over $len bytes, FNV-1a $fnv"
		# The stream goes through a FIFO (exec: migration): the guest
		# kernel has no AF_UNIX. Nested TCG moves a few MB/s: the
		# downtime limit is raised so that QEMU switches over at all.
		rm -f /tmp/mig.fifo
		mkfifo /tmp/mig.fifo
		set -- -kernel /extra/share/jobguest.elf -append "len=$len fnv=$fnv"
		if qemu_start dst 5 "$b" "$@" -incoming "exec:cat /tmp/mig.fifo" &&
			qemu_start src 4 "$a" "$@" &&
			con_wait /tmp/src.con 0 &&
			echo 'migrate_set_parameter downtime-limit 20000' >&4 &&
			echo 'migrate -d "exec:cat >/tmp/mig.fifo"' >&4 &&
			mon_wait 4 /tmp/src.mon "info migrate" 'Status:[[:space:]]*\(completed\|failed\)' &&
			grep -q 'Status:[[:space:]]*completed' /tmp/src.mon &&
			last=$(verified /tmp/src.con) &&
			con_wait /tmp/dst.con "$last"; then
			r=0
		fi
		grep 'Status:\|Time (ms)\|Channels' /tmp/src.mon | tail -n 3
		echo "source console:"
		tail -n 3 /tmp/src.con
		echo "destination console:"
		tail -n 3 /tmp/dst.con
		[ $r = 0 ] || tail -n 30 /tmp/src.mon /tmp/dst.mon
		# The destination's monitor does not answer while it is an
		# incoming QEMU (seen with QEMU 11.1 here), so the guest's own
		# progress on the destination console is what shows the load
		# ended.
		{ echo quit >&4; } 2>/dev/null
		{ echo quit >&5; } 2>/dev/null
		exec 4>&- 5>&-
		sleep 2
		[ -z "$dst_pid" ] || kill "$dst_pid" 2>/dev/null
		wait ${src_pid:-} ${dst_pid:-}
		cat /tmp/src.err /tmp/dst.err
		moved=$(($(stats_field mig_jobs_moved) - moved))
		resumed=$(($(stats_field mig_jobs_resumed) - resumed))
		echo "the stream carried $moved queued jobs, $resumed of them part-done"
		[ "$moved" -gt 0 ] || r=1
		[ $r = 0 ] && { vslice-test vram-pattern "$b" check 77 --len $len || r=1; }
	fi
	vslice remove "$a"
	vslice remove "$b"
	return $r
}

ktap_begin vslice_nested_qemu 3
t large_geometry_every_type_creatable large_geometry_every_type_creatable
t nested_qemu_sees_the_instance nested_qemu_sees_the_instance
t qemu_migrates_a_guest_with_jobs_running qemu_migrates_a_guest_with_jobs_running
ktap_end
exit 0
