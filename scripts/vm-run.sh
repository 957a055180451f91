#!/usr/bin/env bash
# vm-run.sh --script FILE [--files DIR] [--devices N] [--kernel debug|perf]
#           [--name NAME] [--timeout SECONDS] [--no-load] [--host-script FILE]
#           [--iommu]
#
# Boots the test VM (QEMU 11.1, TCG) with N simulated vslice devices
# (hw-sim over vfio-user), loads vslice.ko, copies DIR to /extra, runs FILE
# as root with busybox sh, streams its output and exits with its status.
# Non-zero also on a kernel splat (shown), a timeout, or a VM that died.
# Logs: $VSLICE_WORK/results/<stamp>-<name>/ (path printed at the end).
# --host-script runs FILE on the host while the VM runs, with VSLICE_RUN
# (the results directory; the guest's output grows in $VSLICE_RUN/script.out)
# and VSLICE_CTL0.. (each hw-sim's fault control socket) in its
# environment; scripts/hwsim-ctl.py sends fault commands. A failing host
# script fails the run.
# Environment: VSLICE_VM_MEM (MiB, default 1024), VSLICE_VM_SMP (default 2),
# VSLICE_HWSIM_ARGS (extra hw-sim options for every device), replaced for
# device N by VSLICE_HWSIM_ARGS_N when that is set.
. "$(dirname "$0")/lib.sh"

script='' files='' devices=1 variant=debug name=vm timeout=900 load=1 host_script= iommu=0
while [ $# -gt 0 ]; do
	case "$1" in
	--script) script=$2; shift 2 ;;
	--files) files=$2; shift 2 ;;
	--devices) devices=$2; shift 2 ;;
	--kernel) variant=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--no-load) load=0; shift ;;
	--host-script) host_script=$2; shift 2 ;;
	--iommu) iommu=1; shift ;;
	*) die "vm-run: unknown argument '$1' (see the header of $0)" ;;
	esac
done
[ -n "$script" ] || die "vm-run: --script FILE is required"
[ -f "$script" ] || die "vm-run: script '$script' not found"
[ -z "$files" ] || [ -d "$files" ] || die "vm-run: FILES '$files' is not a directory"
[ -z "$host_script" ] || [ -f "$host_script" ] || die "vm-run: host script '$host_script' not found"
[[ $devices =~ ^[0-9]+$ ]] && [ "$devices" -le 8 ] || die "vm-run: DEVICES must be 0..8"
need_root
require_root
busy_hold "the VM run $name"

run=$VSLICE_WORK/results/$(date +%Y%m%d-%H%M%S)-$name-$$
mkdir -p "$run"
# "last" names this run from the start, so that a caller looking for
# its logs finds them even when a build stage fails.
echo "$run" >"$VSLICE_WORK/results/last"
export VSLICE_LOGDIR=$run
kdir=$("$VSLICE_TOP/scripts/kernel.sh" "$variant")
stage "build vslice modules and initramfs ($variant)" \
	"$VSLICE_TOP/scripts/initramfs.sh" "$variant" "$run/base.cpio.gz"
stage "build hw-sim" cargo build --release --manifest-path "$VSLICE_TOP/Cargo.toml" -p vslice-hw-sim
hwsim=$CARGO_TARGET_DIR/release/vslice-hw-sim
# The client runs in the guest: a static binary, its own target dir so
# that the host build's flags and cache stay apart.
stage "build the client and guest test tools (static)" env RUSTFLAGS='-C target-feature=+crt-static' \
	CARGO_TARGET_DIR="$VSLICE_GUEST_TARGET" cargo build --release \
	--manifest-path "$VSLICE_TOP/Cargo.toml" -p vslice -p vslice-tests --target x86_64-unknown-linux-gnu
guestbin=$VSLICE_GUEST_TARGET/x86_64-unknown-linux-gnu/release

# The per-run archive: script, environment, FILES.
mkdir -p "$run/extra-root/run" "$run/extra-root/extra" "$run/extra-root/usr/bin"
cp "$script" "$run/extra-root/run/script.sh"
cp "$guestbin/vslice" "$guestbin/vslice-test" "$guestbin/vslice-stress" "$guestbin/vslice-bench" "$run/extra-root/usr/bin/"
printf 'VSLICE_LOAD=%s\nVSLICE_DEVICES=%s\nVSLICE_KERNEL=%s\n' "$load" "$devices" "$variant" \
	>"$run/extra-root/run/env"
[ -z "$files" ] || cp -a "$files/." "$run/extra-root/extra/"
in_root "cd '$run/extra-root' && find . | cpio -o -H newc --quiet | gzip -1 >'$run/extra.cpio.gz'"
cat "$run/base.cpio.gz" "$run/extra.cpio.gz" >"$run/initrd.cpio.gz"

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -f "$run"/*.sock "$run"/*.ctl
}
trap cleanup EXIT

qdev=() cmdline=''
if [ "$iommu" = 1 ]; then
	# Before the devices it translates for; caching mode, so that QEMU's
	# VFIO layer sees every mapping the guest makes.
	qdev+=(-device intel-iommu,caching-mode=on)
	cmdline=' intel_iommu=on'
fi
for ((i = 0; i < devices; i++)); do
	sock=$run/hwsim$i.sock
	per=VSLICE_HWSIM_ARGS_$i
	args=${!per-${VSLICE_HWSIM_ARGS:-}}
	# shellcheck disable=SC2086
	"$hwsim" --socket "$sock" --control "$run/hwsim$i.ctl" $args >"$run/hwsim$i.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	[ -S "$sock" ] || { tail "$run/hwsim$i.log" >&2; die "hw-sim $i did not start"; }
	export "VSLICE_CTL$i=$run/hwsim$i.ctl"
	qdev+=(-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$sock\",\"type\":\"unix\"},\"id\":\"vslice$i\"}")
done

mem=${VSLICE_VM_MEM:-1024}
# loglevel=5: WARN() and lockdep reports are KERN_WARNING; at the usual
# quiet level 4 they never reach the console that splat-scan.sh reads.
# la57=off: with 5-level paging, identify_cpu() clears the boot CPU's
# feature bits (LA57 included) with interrupts on, so for a moment
# pgtable_l5_enabled() is false and KASAN's address checks reject every
# direct-map address; a timer interrupt in that window reported
# "wild-memory-access in do_raw_spin_lock" from handle_edge_irq at boot
# (about 1 boot in 20 on a loaded host). 4-level paging has no window.
qemu=(timeout --kill-after=10 "$timeout" qemu-system-x86_64 -accel tcg -cpu max,la57=off
	-smp "${VSLICE_VM_SMP:-2}" -m "${mem}M"
	-object "memory-backend-memfd,id=mem,size=${mem}M,share=on"
	-machine "q35,memory-backend=mem" -display none -vga none -no-reboot
	-monitor none -serial "file:$run/console.log" -serial "file:$run/script.out"
	-kernel "$kdir/arch/x86/boot/bzImage" -initrd "$run/initrd.cpio.gz"
	-append "console=ttyS0 panic=-1 oops=panic hung_task_panic=0 printk.time=1 loglevel=5$cmdline"
	"${qdev[@]}")
printf '%q ' "${qemu[@]}" >"$run/qemu.cmd"
: >"$run/script.out"
log "booting $variant kernel with $devices simulated device(s), script $(basename "$script") (timeout ${timeout}s)"
start=$SECONDS
in_root "$(printf '%q ' "${qemu[@]}") 2>'$run/qemu.err'" &
qpid=$!
hpid=''
if [ -n "$host_script" ]; then
	VSLICE_RUN=$run bash "$host_script" >"$run/host-script.log" 2>&1 &
	hpid=$!
	pids+=("$hpid")
fi
# Stream the script's output while QEMU runs; tail ends when QEMU does.
tail -n +1 -F --pid="$qpid" "$run/script.out" 2>/dev/null | sed -u -e 's/\r$//' -e '/^VSLICE-EXIT: /d' || true
qrc=0
wait "$qpid" || qrc=$?

rc=0
status=$(tr -d '\r' <"$run/script.out" | sed -n 's/^VSLICE-EXIT: \([0-9]*\)$/\1/p' | tail -n1)
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "[vslice] VM timed out after ${timeout}s" >&2
	rc=124
elif [ -z "$status" ]; then
	echo "[vslice] VM ended without an exit status (qemu exit $qrc); last console lines:" >&2
	tail -n 30 "$run/console.log" | sed 's/^/    /' >&2
	tail -n 5 "$run/qemu.err" | sed 's/^/    qemu: /' >&2
	rc=125
else
	rc=$status
fi
if [ -n "$hpid" ]; then
	# The host script gets a few seconds after the VM ended, then it is
	# stopped (and counted as failed).
	for _ in $(seq 50); do kill -0 "$hpid" 2>/dev/null || break; sleep 0.1; done
	kill "$hpid" 2>/dev/null || true
	hrc=0
	wait "$hpid" || hrc=$?
	if [ "$hrc" != 0 ]; then
		echo "[vslice] host script $(basename "$host_script") failed (exit $hrc); last lines of $run/host-script.log:" >&2
		tail -n 20 "$run/host-script.log" | sed 's/^/    /' >&2
		[ "$rc" != 0 ] || rc=127
	fi
fi
if ! "$VSLICE_TOP/scripts/splat-scan.sh" "$run/console.log"; then
	[ "$rc" != 0 ] || rc=126
fi
log "VM run finished in $((SECONDS - start))s, exit $rc; logs in $run"
echo "$run" >"$VSLICE_WORK/results/last"
exit "$rc"
