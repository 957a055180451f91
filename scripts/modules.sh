#!/usr/bin/env bash
# Builds vslice.ko and the KUnit modules against kernel VARIANT (default
# debug) into $VSLICE_WORK/build/<variant>/modules (the source tree stays
# clean). Extra arguments go to make (e.g. CLIPPY=1, W=1). The build's
# output goes to stderr; stdout gets only the output directory.
. "$(dirname "$0")/lib.sh"

variant=${1:-debug}
shift || true
kdir=$("$VSLICE_TOP/scripts/kernel.sh" "$variant")
out=$VSLICE_WORK/build/$variant/modules
mkdir -p "$out"
in_root "make -C '$kdir' M='$VSLICE_TOP' MO='$out' LLVM=1 -j$(nproc) $* modules" >&2
echo "$out"
