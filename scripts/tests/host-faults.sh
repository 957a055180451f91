#!/usr/bin/env bash
# Host half of guest/tests/faults.sh, run by vm-run --host-script: waits for
# each "VSLICE-SYNC <step>" line in the guest's output and injects the
# fault into hw-sim 0. Stops (failing) if the VM ends first.
set -u
ctl=$(dirname "$0")/../hwsim-ctl.py
out=$VSLICE_RUN/script.out
wait_for() {
	for _ in $(seq 1200); do
		tr -d '\r' <"$out" | grep -qx "VSLICE-SYNC $1" && return 0
		grep -q 'VSLICE-EXIT:' "$out" && { echo "VM ended before '$1'"; exit 1; }
		sleep 0.25
	done
	echo "timed out waiting for '$1'"
	exit 1
}
step() { # step SYNC-NAME FAULT-COMMAND...
	wait_for "$1"
	shift
	python3 "$ctl" "$VSLICE_CTL0" "$@" || exit 1
}
step error-irq error-irq
step remove remove
step restore restore
step remove-again remove
step restore-again restore
step remove-jobs remove
step restore-jobs restore
step hang hang 2000
wait_for exit
# hw-sim exits before it can reply: the guest checks that the device died.
python3 "$ctl" "$VSLICE_CTL1" exit || true
echo "all faults injected"
