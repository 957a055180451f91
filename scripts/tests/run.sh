#!/usr/bin/env bash
# Host-side tests of the harness itself (no VM): splat-scan.sh must pass a
# clean console log (the out-of-tree taint line included) and fail every
# kind of splat. Prints "ok NAME" / "not ok NAME" lines.
cd "$(dirname "$0")" || exit 1
scan=../splat-scan.sh
expect() { # expect RC LOG
	local rc=0
	"$scan" "$2" >/dev/null 2>&1 || rc=$?
	if [ "$rc" = "$1" ]; then echo "ok splat_scan.${2%.log}"; else echo "not ok splat_scan.${2%.log} (exit $rc, want $1)"; fi
}
expect 0 clean.log
for f in warning kmemleak lockdep kasan hung; do expect 1 $f.log; done
