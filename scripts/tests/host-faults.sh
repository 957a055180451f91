#!/usr/bin/env bash
# Host half of guest/tests/faults.sh's vslice_faults suite, run by vm-run
# --host-script: injects each fault into hw-sim 0 when the guest asks.
. "$(dirname "$0")/host-sync.sh"
step error-irq error-irq
step remove remove
step restore restore
step remove-again remove
step restore-again restore
step remove-jobs remove
step restore-jobs restore
step hang hang 2000
echo "all faults injected"
