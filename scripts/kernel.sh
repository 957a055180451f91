#!/usr/bin/env bash
# Builds kernel VARIANT (debug|perf) from Debian's linux-source-7.3 in the
# build root, into $VSLICE_WORK/kernel/<variant>-<key>, with the fixes in
# config/kernel/patches/*.patch applied (upstream bugs our tests found;
# each patch says why). The key hashes the build root's key, the config
# fragments, the patches and KERNEL_RECIPE, so that
# changing any of them builds a new tree and nothing else does. Bump
# KERNEL_RECIPE when a change to this script changes what gets built. Prints the tree's
# path on stdout. Every option of the fragments is verified in .config.
. "$(dirname "$0")/lib.sh"

variant=${1:-debug}
cfgdir=$VSLICE_TOP/config/kernel
[ -f "$cfgdir/$variant.config" ] || die "unknown kernel variant '$variant' (debug|perf)"

KERNEL_RECIPE=1
# Kbuild steps of a full debug build (its log's "  CC  path" lines),
# measured on this machine kind: the progress line's total until a machine
# has built the variant once (then $VSLICE_WORK/kernel/<variant>.build-steps
# counts). perf has no measured figure: it shows this one as "~" estimate.
KERNEL_BUILD_STEPS=1897

patches() { find "$cfgdir/patches" -name '*.patch' 2>/dev/null | sort; }

kernel_key() {
	# shellcheck disable=SC2046
	echo "$(root_key)-$(hash_files "$cfgdir/base.config" "$cfgdir/$variant.config" $(patches))-r$KERNEL_RECIPE"
}

kdir() { echo "$VSLICE_WORK/kernel/$variant-$(kernel_key | sha256sum | cut -c1-16)"; }

build_kernel() {
	local out src
	out=$(kdir)
	if [ -e "$out/.vslice-built" ]; then
		return 0
	fi
	need_disk "$VSLICE_CACHE" 8
	require_root
	busy_hold "the $variant kernel build"
	# The patched source is shared by the variants: keyed by the patches.
	# shellcheck disable=SC2046
	src=$VSLICE_WORK/kernel/src-$(grep -E '^linux-source-7.3' "$(root_dir)/.manifest" | cut -f2)-p$(hash_files /dev/null $(patches))
	if [ ! -e "$src/.vslice-unpacked" ]; then
		rm -rf "$src"
		mkdir -p "$src"
		stage "unpack linux-source" in_root "tar -C '$src' --strip-components=1 -xaf /usr/src/linux-source-7.3.tar.xz"
		local p
		for p in $(patches); do
			stage "apply $(basename "$p")" in_root "patch -d '$src' -p1 --forward --batch <'$p'"
		done
		touch "$src/.vslice-unpacked"
	fi
	mkdir -p "$out"
	ln -sfn "$src" "$out/source-tree"
	local kmake="make -C '$src' O='$out' ARCH=x86_64 LLVM=1"
	stage "configure $variant kernel" in_root "
		$kmake tinyconfig
		'$src/scripts/kconfig/merge_config.sh' -m -O '$out' '$out/.config' '$cfgdir/base.config' '$cfgdir/$variant.config'
		$kmake olddefconfig
		$kmake rustavailable"
	verify_config "$out/.config" "$cfgdir/base.config" "$cfgdir/$variant.config"
	local t0=$SECONDS steps=$VSLICE_WORK/kernel/$variant.build-steps fresh=0 expected
	# Only a build from an empty tree (kconfig's host tools aside) counts
	# every step; a resumed one must not become the next total.
	[ -n "$(find "$out" -path "$out/scripts" -prune -o -name '*.o' -print -quit)" ] || fresh=1
	expected=$(cat "$steps" 2>/dev/null) || expected=''
	[[ $expected =~ ^[0-9]+$ ]] || expected=$KERNEL_BUILD_STEPS
	[ "$variant" = debug ] || [ -e "$steps" ] || expected="~$expected"
	kernel_progress() { kbuild_progress "$1" "$expected"; }
	stage_progress "build $variant kernel" kernel_progress in_root "$kmake -j$(nproc) all"
	[ "$fresh" = 0 ] || kbuild_steps "$(stage_log "build $variant kernel")" >"$steps"
	stage "install $variant kernel modules" in_root "rm -rf '$out/mods' && $kmake INSTALL_MOD_PATH='$out/mods' modules_install"
	echo "$((SECONDS - t0))" >"$out/.build-seconds"
	touch "$out/.vslice-built"
	log "$variant kernel built in $((SECONDS - t0))s: $out"
}

# verify_config CONFIG FRAGMENT...: every option a fragment sets (or unsets)
# has that value in CONFIG; Kconfig silently drops options with unmet deps.
verify_config() {
	local config=$1 bad=0 line opt val
	shift
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			opt=${line%%=*}
			val=${line#*=}
			grep -qxF "$opt=$val" "$config" || {
				echo "Kconfig dropped $opt=$val (have: $(grep -E "^(# )?$opt[= ]" "$config" || echo nothing))" >&2
				bad=1
			}
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }
			opt=${opt%% *}
			if grep -qE "^$opt=" "$config"; then
				echo "Kconfig kept $opt although a fragment unsets it" >&2
				bad=1
			fi
			;;
		esac
	done < <(cat "$@")
	[ "$bad" = 0 ] || die "kernel config does not have what config/kernel/*.config asks for"
	log "kernel config verified: every fragment option is in $config"
}

if [ "${2:-}" = --print-dir ]; then
	kdir
	exit 0
fi
with_lock build build_kernel
kdir
