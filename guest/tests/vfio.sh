# Guest tests of instances as VFIO devices. Sourced by check.sh
# after /guest/ktap.sh and lifecycle.sh. /usr/bin/vslice-test prints its
# own KTAP documents (suites vslice_vfio and vslice_migration); this file
# adds vslice_request: the REQ contract with the client and the CLI's
# errors.

# Unbind (or instance remove) while the client holds the device open: the
# client gets REQ, closes, and the operation completes. Without REQ the
# VFIO core would wait for ever; 30 s is far above the ~1 s it takes.
held_then() { # held_then WHAT CMD...: hold a new 1/8 instance, run CMD
	what=$1
	shift
	u=$(vslice create "$P1" eighth) || return 1
	vslice hold "$u" 120 >/tmp/hold.out 2>&1 &
	hp=$!
	k=0
	while ! grep -q '^holding' /tmp/hold.out && [ $k -lt 50 ]; do sleep 0.1; k=$((k + 1)); done
	grep -q '^holding' /tmp/hold.out || { cat /tmp/hold.out; kill $hp; return 1; }
	t0=$(uptime_s)
	"$@" "$u" || { kill $hp; return 1; }
	t1=$(uptime_s)
	wait $hp || { echo "client: $(cat /tmp/hold.out)"; return 1; }
	grep -q '^request received' /tmp/hold.out || { cat /tmp/hold.out; return 1; }
	took=$(echo "$t0 $t1" | awk '{ printf "%d", $2 - $1 }')
	echo "$what completed $took s after it started"
	[ "$took" -lt 30 ] || return 1
	[ ! -e "/sys/bus/mdev/devices/$u" ] || { echo "instance $u still there"; return 1; }
}
do_unbind() { echo "$P1" >/sys/bus/pci/drivers/vslice/unbind; }
do_remove() { echo 1 >"/sys/bus/mdev/devices/$1/remove"; }

request_on_unbind() {
	held_then unbind do_unbind || return 1
	echo "$P1" >/sys/bus/pci/drivers/vslice/bind || return 1
	expect_avail "$P1" "8 4 2 1 16"
}

request_on_instance_remove() {
	held_then remove do_remove || return 1
	expect_avail "$P1" "8 4 2 1 16"
}

client_errors_are_clear() {
	out=$(vslice info 00000000-0000-4000-8000-00000000dead 2>&1) && return 1
	echo "$out" | grep -q 'no such instance' || { echo "$out"; return 1; }
	out=$(vslice create "$P1" nonesuch 2>&1) && return 1
	echo "$out" | grep -q 'No such file' || { echo "$out"; return 1; }
	u=$(vslice create "$P1" full) || return 1
	out=$(vslice create "$P1" eighth 2>&1)
	rc=$?
	vslice remove "$u" || return 1
	[ $rc != 0 ] && echo "$out" | grep -q 'No space left' || { echo "$out"; return 1; }
	# A device held open is busy for a second opener.
	u=$(vslice create "$P1" eighth) || return 1
	vslice hold "$u" 30 >/tmp/hold2.out 2>&1 &
	hp=$!
	sleep 1
	out=$(vslice info "$u" 2>&1)
	rc=$?
	vslice remove "$u"
	wait $hp
	echo "second open: rc $rc: $out"
	[ $rc = 0 ] || echo "$out" | grep -qi 'busy\|bind' || return 1
}

client_run_verifies_jobs() {
	a=$(vslice create "$P1" quarter) && b=$(vslice create "$P1" eighth) || return 1
	vslice run --len 262144 "$a" "$b"
	rc=$?
	vslice remove "$a"
	vslice remove "$b"
	return $rc
}

# host -> VRAM -> host through each instance's IOAS, every context of two
# instances at once; every pin is released when the client closes.
client_run_dma_round_trips() {
	a=$(vslice create "$P1" quarter) && b=$(vslice create "$P1" eighth) || return 1
	vslice run --dma --rounds 2 --len 262144 "$a" "$b"
	rc=$?
	vslice remove "$a"
	vslice remove "$b"
	pinned=$(pinned_pages)
	[ "$pinned" = 0 ] || { echo "$pinned pages still pinned"; return 1; }
	return $rc
}

run_vfio_suite() {
	/usr/bin/vslice-test conformance "$P1"
	/usr/bin/vslice-test migration "$P1" "$P2"
	ktap_begin vslice_request 5
	t request_on_unbind_client_closes request_on_unbind
	t request_on_instance_remove request_on_instance_remove
	t client_errors_are_clear client_errors_are_clear
	t client_run_verifies_jobs client_run_verifies_jobs
	t client_run_dma_round_trips client_run_dma_round_trips
	ktap_end
}
