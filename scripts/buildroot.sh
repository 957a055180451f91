#!/usr/bin/env bash
# Creates (or finishes) the pinned Debian trixie build root in the cache.
# Idempotent and resumable: every step checks whether it is already done;
# the root is only marked complete (.complete) after the pins are verified.
# The host's apt sources are never touched: trixie lives inside the root only.
# Runs under $VSLICE_CACHE/root.lock so two runs cannot build the same root.
. "$(dirname "$0")/lib.sh"

need_root

mirror() {
	# The Debian mirror the host already uses (deb822 or one-line format).
	if [ -n "${VSLICE_MIRROR:-}" ]; then
		echo "$VSLICE_MIRROR"
		return
	fi
	local m
	m=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '{print $2}' | grep -v security | head -n1 || true)
	[ -n "$m" ] || m=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null |
		awk '{print $2}' | grep -v security | head -n1 || true)
	[ -n "$m" ] || die "no Debian mirror in the host's apt sources; set VSLICE_MIRROR"
	echo "$m"
}

build_root() {
	local root mirror_url
	root=$(root_dir)
	if [ -e "$root/.complete" ]; then
		log "build root $root is ready"
		return 0
	fi
	need_disk "$VSLICE_CACHE" 12
	mirror_url=$(mirror)
	if ! command -v debootstrap >/dev/null; then
		log "installing debootstrap on the host (host apt sources unchanged)"
		apt-get update -qq || die "apt-get update failed on the host: is the Debian archive reachable?"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
			die "cannot install debootstrap on the host"
	fi
	if [ ! -e "$root/.debootstrap-done" ]; then
		# A half-made root from an interrupted run: debootstrap cannot resume
		# reliably, so start that step again (nothing may be mounted in it).
		if [ -d "$root" ]; then
			if findmnt -rno TARGET | grep -q "^$root"; then
				die "something is still mounted under $root; unmount it first"
			fi
			rm -rf --one-file-system "$root"
		fi
		mkdir -p "$root"
		log "debootstrap trixie into $root"
		# Private mount namespace: debootstrap's own proc/sys mounts vanish
		# with it even if it is killed.
		unshare --mount --propagation private -- \
			debootstrap --variant=minbase trixie "$root" "$mirror_url" ||
			die "debootstrap failed (is $mirror_url reachable?)"
		touch "$root/.debootstrap-done"
	fi
	cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror_url trixie main
deb $mirror_url trixie-updates main
deb $mirror_url trixie-backports main
SRC
	printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
		>"$root/etc/apt/apt.conf.d/90vslice"
	local main=() bpo=() pkg suite glob
	while read -r pkg suite glob; do
		case "$pkg" in '' | '#'*) continue ;; esac
		if [ "$suite" = trixie ]; then main+=("$pkg"); else bpo+=("$pkg"); fi
	done <"$VSLICE_TOP/config/pins.conf"
	# Backports packages are installed with -t so that their own
	# dependencies (qemu-system-common, seabios, ...) come from there too.
	in_root "apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${main[*]} &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t trixie-backports ${bpo[*]}" ||
		die "installing the toolchain into the build root failed (archive reachable? see above)"
	# Verify every pin against what was installed.
	local bad=0 have
	while read -r pkg suite glob; do
		case "$pkg" in '' | '#'*) continue ;; esac
		have=$(chroot "$root" dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null || true)
		# shellcheck disable=SC2053
		if [ -z "$have" ] || [[ $have != $glob ]]; then
			echo "pin mismatch: $pkg has '${have:-not installed}', config/pins.conf wants '$glob'" >&2
			bad=1
		fi
	done <"$VSLICE_TOP/config/pins.conf"
	if [ "$bad" != 0 ]; then
		die "build root does not match config/pins.conf"
	fi
	chroot "$root" dpkg-query -W >"$root/.manifest"
	in_root "apt-get clean"
	touch "$root/.complete"
	log "build root ready: $root ($(wc -l <"$root/.manifest") packages, manifest in .manifest)"
}

with_lock root build_root
