# Sourced by the host halves of guest fault tests (run by vm-run
# --host-script): wait_for SYNC waits for the guest's "VSLICE-SYNC <SYNC>"
# line, step SYNC COMMAND... then injects COMMAND into hw-sim 0. Both stop
# the script (failing) if the VM ends first. No timeout of their own: how
# long the guest takes to get there depends on the host's load (a busy
# host once made a 300 s cap fire); vm-run's VM timeout bounds the wait.
set -u
ctl=$(dirname "${BASH_SOURCE[0]}")/../hwsim-ctl.py
out=$VSLICE_RUN/script.out
wait_for() {
	while :; do
		tr -d '\r' <"$out" | grep -qx "VSLICE-SYNC $1" && return 0
		grep -q 'VSLICE-EXIT:' "$out" && { echo "VM ended before '$1'"; exit 1; }
		sleep 0.25
	done
}
step() { # step SYNC-NAME FAULT-COMMAND...
	wait_for "$1"
	shift
	python3 "$ctl" "$VSLICE_CTL0" "$@" || exit 1
}
