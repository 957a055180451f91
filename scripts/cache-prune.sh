#!/usr/bin/env bash
# cache-prune.sh: deletes cached build roots and kernel trees whose key no
# longer matches this checkout (old pins, config fragments or kernel
# patches), unpacked sources no kept tree uses, all but the newest 20
# results directories, and cargo's output once it is over 8 GiB. Never
# touches the current ones.
. "$(dirname "$0")/lib.sh"
need_root
keep_root=$(root_dir)
keep_k=()
for v in debug perf; do keep_k+=("$("$VSLICE_TOP/scripts/kernel.sh" "$v" --print-dir)"); done
prune() {
	local d
	for d in "$VSLICE_CACHE"/root/*; do
		[ -d "$d" ] && [ "$d" != "$keep_root" ] || continue
		if findmnt -rno TARGET | grep -q "^$d"; then
			log "skipping $d: something is mounted in it"
			continue
		fi
		log "removing old build root $d"
		rm -rf --one-file-system "$d"
	done
	for d in "$VSLICE_WORK"/kernel/debug-* "$VSLICE_WORK"/kernel/perf-*; do
		[ -e "$d" ] || continue
		case " ${keep_k[*]} " in *" $d "*) continue ;; esac
		log "removing old kernel tree $d"
		rm -rf "$d"
	done
	# Unpacked sources no kept tree uses (old versions or patch sets).
	local keep_src=" "
	for d in "${keep_k[@]}"; do
		[ -L "$d/source-tree" ] && keep_src+="$(readlink -f "$d/source-tree") "
	done
	for d in "$VSLICE_WORK"/kernel/src-*; do
		[ -d "$d" ] || continue
		case "$keep_src" in *" $d "*) continue ;; esac
		log "removing old kernel source $d"
		rm -rf "$d"
	done
	ls -1dt "$VSLICE_WORK"/results/*/ 2>/dev/null | tail -n +21 | xargs -r rm -rf
	# Cargo's output grows by the workspace's own crates for every clone
	# path it was built from: dropped whole past 8 GiB (rebuilt on use).
	if [ -d "$VSLICE_CACHE/cargo" ] &&
		[ "$(du -s --block-size=1G "$VSLICE_CACHE/cargo" | cut -f1)" -gt 8 ]; then
		log "removing cargo's output in $VSLICE_CACHE/cargo (over 8 GiB)"
		rm -rf "$VSLICE_CACHE/cargo"
	fi
}
with_lock build prune
