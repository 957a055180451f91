#!/usr/bin/env bash
# splat-scan.sh CONSOLE_LOG: exits 1 and shows each report if the kernel
# console has a splat: BUG, WARNING, Oops, panic, KASAN, kmemleak, lockdep,
# hung task, soft lockup, RCU stall, debugobjects, list corruption.
# The out-of-tree taint message ("loading out-of-tree module taints
# kernel") is not a splat.
set -u
log=$1
pat='BUG:|WARNING:|Oops|Kernel panic|KASAN|UBSAN|unreferenced object|suspected memory leak|possible (recursive|circular) locking|inconsistent lock state|lockdep|blocked for more than|soft lockup|rcu_.*stall|ODEBUG|list_(add|del) corruption|general protection fault|refcount_t:|Call Trace:'
hits=$(tr -d '\r' <"$log" | grep -nE "$pat" | grep -v 'taints kernel' || true)
[ -z "$hits" ] && exit 0
echo "[vslice] kernel splat in $log:" >&2
first=$(echo "$hits" | head -n1 | cut -d: -f1)
tr -d '\r' <"$log" | sed -n "$((first > 5 ? first - 5 : 1)),$((first + 40))p" | sed 's/^/    /' >&2
echo "[vslice] $(echo "$hits" | wc -l) matching line(s) in all" >&2
exit 1
