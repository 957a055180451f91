#!/usr/bin/env bash
# Host half of guest/device-death.sh: kills hw-sim 1 (the second device)
# when the guest asks. hw-sim exits before it can reply: the guest checks
# that the device died.
. "$(dirname "$0")/host-sync.sh"
wait_for exit
python3 "$ctl" "$VSLICE_CTL1" exit || true
echo "hw-sim 1 killed"
