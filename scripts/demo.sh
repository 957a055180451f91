#!/usr/bin/env bash
# demo.sh: `make demo`. Builds what it needs, boots the debug kernel with
# two simulated devices and tells what vslice did (guest/demo.sh). The VM
# run fails on any kernel splat.
. "$(dirname "$0")/lib.sh"
need_root
t0=$SECONDS
log "vslice demo: build root, debug kernel, modules and hw-sim are built or reused from $VSLICE_CACHE"
"$VSLICE_TOP/scripts/vm-run.sh" --script "$VSLICE_TOP/guest/demo.sh" --name demo --devices 2 --timeout 600
log "demo finished in $((SECONDS - t0))s, no kernel splat"
