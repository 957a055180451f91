// SPDX-License-Identifier: GPL-2.0
//! `vslice-test conformance PARENT`: the guest-side tests of instances as
//! VFIO devices printed as one KTAP document (suite `vslice_vfio`) that
//! `make check` counts test by test. Creates its own instances on PARENT
//! (a bound vslice device's BDF) and removes them at the end.
//!
//! `vslice-test fatal-cutoff UUID`: the instance side of the fault suite's
//! fatal-error test (guest/tests/faults.sh): holds UUID open and mapped,
//! prints `ready`, waits until a fatal device error cuts it off, then
//! checks that a reset brings it back; exit status 0 if all of it held.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use argh::FromArgs;
use vslice::job::{self, Job, DATA_BASE};
use vslice::regs::*;
use vslice::sysfs;
use vslice::vfio::Wait;
use vslice::vfio::{self, Device, EventFd, Mmap, OpenPath};
use vslice_abi::instance_bar0_size;
use vslice_tests::health::DriverStats;

mod dma;
mod irq_table;
mod migration;

/// Tests of vslice instances as VFIO devices, run in the guest.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Conformance(Conformance),
    FatalCutoff(FatalCutoff),
    Migration(Migration),
    VramPattern(VramPattern),
}

/// Writes a pattern over UUID's VRAM slice (or its first LEN bytes), or
/// checks that it is there (guest/nested-qemu.sh: what QEMU's migration
/// must carry), and prints the FNV-1a 64 of those bytes as OP_CHECKSUM
/// computes it; exit status 0 if the check holds.
#[derive(FromArgs)]
#[argh(subcommand, name = "vram-pattern")]
struct VramPattern {
    #[argh(positional, arg_name = "UUID")]
    uuid: String,
    /// write or check
    #[argh(positional, arg_name = "write|check")]
    what: String,
    /// selects the pattern
    #[argh(positional, arg_name = "SEED")]
    seed: u8,
    /// bytes from the start of the slice (default: all of it)
    #[argh(option)]
    len: Option<usize>,
}

/// Live migration between instances of PARENT1 and PARENT2, as one KTAP
/// document (suite `vslice_migration`).
#[derive(FromArgs)]
#[argh(subcommand, name = "migration")]
struct Migration {
    /// a bound vslice device (a PCI address)
    #[argh(positional, arg_name = "PARENT1")]
    p1: String,
    /// another one
    #[argh(positional, arg_name = "PARENT2")]
    p2: String,
}

/// Every test on new instances of PARENT, as one KTAP document.
#[derive(FromArgs)]
#[argh(subcommand, name = "conformance")]
struct Conformance {
    /// a bound vslice device (a PCI address)
    #[argh(positional, arg_name = "PARENT")]
    parent: String,
}

/// Holds UUID until a fatal device error cuts it off, then resets it
/// (guest/tests/faults.sh); exit status 0 if it came back.
#[derive(FromArgs)]
#[argh(subcommand, name = "fatal-cutoff")]
struct FatalCutoff {
    #[argh(positional, arg_name = "UUID")]
    uuid: String,
}

type R = Result<(), String>;

macro_rules! ensure {
    ($c:expr, $($f:tt)*) => {
        if !$c {
            return Err(format!($($f)*));
        }
    };
}

fn errno(r: io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| vslice::errno_of(&e))
}

fn expect_errno(what: &str, r: io::Result<impl Sized>, want: i32) -> R {
    match errno(r) {
        Some(e) if e == want => Ok(()),
        Some(e) => Err(format!("{what}: errno {e}, want {want}")),
        None => Err(format!("{what}: succeeded, want errno {want}")),
    }
}

fn e(what: &str) -> impl FnOnce(io::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// Instances created for the tests, removed on drop.
struct Created(Vec<String>);

impl Created {
    fn make(&mut self, parent: &str, ty: &str) -> Result<String, String> {
        let u = sysfs::new_uuid().map_err(|x| x.to_string())?;
        sysfs::create(parent, ty, &u).map_err(|x| x.to_string())?;
        self.0.push(u.clone());
        Ok(u)
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = sysfs::remove(u);
        }
    }
}

fn cfg32(d: &Device, off: u64) -> Result<u32, String> {
    let mut b = [0u8; 4];
    d.read_at(vfio::CONFIG, off, &mut b).map_err(e("config read"))?;
    Ok(u32::from_le_bytes(b))
}

fn set_cfg32(d: &Device, off: u64, v: u32) -> R {
    d.write_at(vfio::CONFIG, off, &v.to_le_bytes())
        .map_err(e("config write"))?;
    Ok(())
}

fn raw_ioctl(d: &Device, req: libc::c_ulong, buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: `buf` is ours; the tests keep argsz within it.
    unsafe { vslice_tests::raw::ioctl_ptr(d.fd(), req, buf.as_mut_ptr().cast()) }
}

/// An ioctl with a pointer the kernel must refuse (null or unmapped).
fn bad_ptr_ioctl(d: &Device, req: libc::c_ulong, p: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: `p` points to nothing this process uses as Rust memory.
    unsafe { vslice_tests::raw::ioctl_ptr(d.fd(), req, p) }
}

fn hdr(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

// ---- ioctls ---------------------------------------------------------------

fn device_and_irq_info(d: &Device, n: u32) -> R {
    let i = d.info().map_err(e("GET_INFO"))?;
    ensure!(
        i.flags & (vfio::DEVICE_FLAGS_PCI | vfio::DEVICE_FLAGS_RESET) == 3,
        "flags {:#x}",
        i.flags
    );
    ensure!(
        i.num_regions == vfio::NUM_REGIONS && i.num_irqs == vfio::NUM_IRQS,
        "{i:?}"
    );
    let m = d.irq_info(vfio::MSIX_IRQ_INDEX).map_err(e("IRQ_INFO msix"))?;
    ensure!(m.count == n, "MSI-X count {} != contexts {n}", m.count);
    ensure!(
        m.flags & (vfio::IRQ_INFO_EVENTFD | vfio::IRQ_INFO_MASKABLE) == 3,
        "MSI-X flags {:#x}",
        m.flags
    );
    let q = d.irq_info(vfio::REQ_IRQ_INDEX).map_err(e("IRQ_INFO req"))?;
    ensure!(q.count == 1 && q.flags & vfio::IRQ_INFO_EVENTFD != 0, "REQ {q:?}");
    for idx in [vfio::INTX_IRQ_INDEX, 1, 3] {
        let x = d.irq_info(idx).map_err(e("IRQ_INFO"))?;
        ensure!(x.count == 0, "index {idx} count {}", x.count);
    }
    Ok(())
}

fn bad_argsz_index_and_pointers(d: &Device) -> R {
    // argsz below the fixed part: EINVAL, for every info ioctl.
    for (req, name) in [
        (vfio::VFIO_DEVICE_GET_INFO(), "GET_INFO"),
        (vfio::VFIO_DEVICE_GET_REGION_INFO(), "GET_REGION_INFO"),
        (vfio::VFIO_DEVICE_GET_IRQ_INFO(), "GET_IRQ_INFO"),
        (vfio::VFIO_DEVICE_SET_IRQS(), "SET_IRQS"),
    ] {
        let mut b = hdr(&[4, 0, 0, 0, 0, 0, 0, 0]);
        expect_errno(&format!("{name} argsz 4"), raw_ioctl(d, req, &mut b), libc::EINVAL)?;
        expect_errno(
            &format!("{name} NULL"),
            bad_ptr_ioctl(d, req, std::ptr::null_mut()),
            libc::EFAULT,
        )?;
        expect_errno(
            &format!("{name} bad pointer"),
            bad_ptr_ioctl(d, req, 8 as *mut _),
            libc::EFAULT,
        )?;
    }
    // Index out of range.
    let mut b = hdr(&[32, 0, vfio::NUM_REGIONS, 0, 0, 0, 0, 0]);
    expect_errno(
        "REGION_INFO index 9",
        raw_ioctl(d, vfio::VFIO_DEVICE_GET_REGION_INFO(), &mut b),
        libc::EINVAL,
    )?;
    let mut b = hdr(&[32, 0, u32::MAX, 0, 0, 0, 0, 0]);
    expect_errno(
        "REGION_INFO index ~0",
        raw_ioctl(d, vfio::VFIO_DEVICE_GET_REGION_INFO(), &mut b),
        libc::EINVAL,
    )?;
    let mut b = hdr(&[16, 0, vfio::NUM_IRQS, 0]);
    expect_errno(
        "IRQ_INFO index 5",
        raw_ioctl(d, vfio::VFIO_DEVICE_GET_IRQ_INFO(), &mut b),
        libc::EINVAL,
    )?;
    // SET_IRQS whose argsz does not cover its data.
    let mut b = hdr(&[
        20,
        vfio::IRQ_SET_DATA_EVENTFD | vfio::IRQ_SET_ACTION_TRIGGER,
        vfio::MSIX_IRQ_INDEX,
        0,
        1,
    ]);
    expect_errno(
        "SET_IRQS argsz without data",
        raw_ioctl(d, vfio::VFIO_DEVICE_SET_IRQS(), &mut b),
        libc::EINVAL,
    )?;
    // SET_IRQS whose data lies past the end of the caller's memory: the
    // header is the last 20 bytes of a page whose next page is unmapped.
    let m = Mmap::new(-1, 0, 8192, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS).map_err(e("mmap"))?;
    // SAFETY: the second page of our own anonymous mapping.
    if unsafe { libc::munmap(m.as_ptr().add(4096).cast(), 4096) } != 0 {
        return Err("munmap".into());
    }
    let h = hdr(&[
        24,
        vfio::IRQ_SET_DATA_EVENTFD | vfio::IRQ_SET_ACTION_TRIGGER,
        vfio::MSIX_IRQ_INDEX,
        0,
        1,
    ]);
    m.write_bytes(4096 - 20, &h);
    // SAFETY: pointer into the first (still mapped) page.
    let p = unsafe { m.as_ptr().add(4096 - 20) };
    expect_errno(
        "SET_IRQS data unmapped",
        bad_ptr_ioctl(d, vfio::VFIO_DEVICE_SET_IRQS(), p.cast()),
        libc::EFAULT,
    )?;
    std::mem::forget(m); // half of it is unmapped already
    expect_errno(
        "unknown ioctl",
        bad_ptr_ioctl(d, vfio::VFIO_DEVICE_RESET() + 50, std::ptr::null_mut()),
        libc::ENOTTY,
    )?;
    Ok(())
}

fn set_irqs_combinations(d: &Device, n: u32) -> R {
    use vfio::*;
    let efd = EventFd::new(libc::EFD_CLOEXEC).map_err(e("eventfd"))?;
    let fd = efd.as_raw_fd().to_ne_bytes();
    let trig = IRQ_SET_ACTION_TRIGGER;
    // Two data types, two actions, no data type.
    expect_errno(
        "two data types",
        d.set_irqs(IRQ_SET_DATA_NONE | IRQ_SET_DATA_BOOL | trig, MSIX_IRQ_INDEX, 0, &[], 1),
        libc::EINVAL,
    )?;
    expect_errno(
        "two actions",
        d.set_irqs(
            IRQ_SET_DATA_NONE | trig | IRQ_SET_ACTION_MASK,
            MSIX_IRQ_INDEX,
            0,
            &[],
            1,
        ),
        libc::EINVAL,
    )?;
    expect_errno(
        "no action",
        d.set_irqs(IRQ_SET_DATA_NONE, MSIX_IRQ_INDEX, 0, &[], 1),
        libc::EINVAL,
    )?;
    expect_errno(
        "unknown flag",
        d.set_irqs(IRQ_SET_DATA_NONE | trig | 1 << 10, MSIX_IRQ_INDEX, 0, &[], 1),
        libc::EINVAL,
    )?;
    // Count and start beyond the vectors.
    expect_errno(
        "count beyond",
        d.set_irqs(IRQ_SET_DATA_NONE | trig, MSIX_IRQ_INDEX, 0, &[], n + 1),
        libc::EINVAL,
    )?;
    expect_errno(
        "start beyond",
        d.set_irqs(IRQ_SET_DATA_NONE | trig, MSIX_IRQ_INDEX, n, &[], 1),
        libc::EINVAL,
    )?;
    expect_errno(
        "start + count wraps",
        d.set_irqs(IRQ_SET_DATA_NONE | trig, MSIX_IRQ_INDEX, u32::MAX, &[], 2),
        libc::EINVAL,
    )?;
    // Indices with no interrupts.
    for idx in [INTX_IRQ_INDEX, 1, 3] {
        expect_errno(
            &format!("index {idx}"),
            d.set_irqs(IRQ_SET_DATA_EVENTFD | trig, idx, 0, &fd, 1),
            libc::EINVAL,
        )?;
    }
    expect_errno(
        "index 5",
        d.set_irqs(IRQ_SET_DATA_NONE | trig, 5, 0, &[], 1),
        libc::EINVAL,
    )?;
    // MSI-X: mask/unmask with eventfd data is meaningless.
    expect_errno(
        "MSI-X mask+eventfd",
        d.set_irqs(IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_MASK, MSIX_IRQ_INDEX, 0, &fd, 1),
        libc::EINVAL,
    )?;
    expect_errno(
        "MSI-X unmask+eventfd",
        d.set_irqs(IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_UNMASK, MSIX_IRQ_INDEX, 0, &fd, 1),
        libc::EINVAL,
    )?;
    // REQ: only TRIGGER (vfio-pci says ENOTTY for the others).
    expect_errno(
        "REQ mask",
        d.set_irqs(IRQ_SET_DATA_NONE | IRQ_SET_ACTION_MASK, REQ_IRQ_INDEX, 0, &[], 1),
        libc::ENOTTY,
    )?;
    // Bad fds: not open, not an eventfd; nothing is assigned then.
    expect_errno(
        "fd 9999",
        d.set_irqs(
            IRQ_SET_DATA_EVENTFD | trig,
            MSIX_IRQ_INDEX,
            0,
            &9999i32.to_ne_bytes(),
            1,
        ),
        libc::EBADF,
    )?;
    let null = std::fs::File::open("/dev/null").map_err(e("/dev/null"))?;
    expect_errno(
        "fd of /dev/null",
        d.set_irqs(
            IRQ_SET_DATA_EVENTFD | trig,
            MSIX_IRQ_INDEX,
            0,
            &null.as_raw_fd().to_ne_bytes(),
            1,
        ),
        libc::EINVAL,
    )?;
    // What works: every accepted combination.
    d.set_irqs(IRQ_SET_DATA_EVENTFD | trig, MSIX_IRQ_INDEX, 0, &fd, 1)
        .map_err(e("assign"))?;
    d.set_irqs(IRQ_SET_DATA_NONE | trig, MSIX_IRQ_INDEX, 0, &[], 1)
        .map_err(e("fire"))?;
    ensure!(
        efd.wait(1000).map_err(|x| x.to_string())?,
        "DATA_NONE trigger did not signal"
    );
    d.set_irqs(IRQ_SET_DATA_BOOL | trig, MSIX_IRQ_INDEX, 0, &[0], 1)
        .map_err(e("bool 0"))?;
    ensure!(!efd.wait(200).map_err(|x| x.to_string())?, "BOOL false signalled");
    d.set_irqs(IRQ_SET_DATA_BOOL | trig, MSIX_IRQ_INDEX, 0, &[1], 1)
        .map_err(e("bool 1"))?;
    ensure!(efd.wait(1000).map_err(|x| x.to_string())?, "BOOL true did not signal");
    d.set_irqs(IRQ_SET_DATA_NONE | IRQ_SET_ACTION_MASK, MSIX_IRQ_INDEX, 0, &[], 1)
        .map_err(e("mask"))?;
    d.set_irqs(IRQ_SET_DATA_NONE | trig, MSIX_IRQ_INDEX, 0, &[], 1)
        .map_err(e("fire masked"))?;
    ensure!(!efd.wait(200).map_err(|x| x.to_string())?, "masked vector signalled");
    d.set_irqs(IRQ_SET_DATA_BOOL | IRQ_SET_ACTION_UNMASK, MSIX_IRQ_INDEX, 0, &[1], 1)
        .map_err(e("unmask"))?;
    ensure!(
        efd.wait(1000).map_err(|x| x.to_string())?,
        "pending interrupt not delivered on unmask"
    );
    d.set_irqs(
        IRQ_SET_DATA_EVENTFD | trig,
        MSIX_IRQ_INDEX,
        0,
        &(-1i32).to_ne_bytes(),
        1,
    )
    .map_err(e("clear"))?;
    d.set_irqs(IRQ_SET_DATA_NONE | trig, MSIX_IRQ_INDEX, 0, &[], 1)
        .map_err(e("fire cleared"))?;
    ensure!(!efd.wait(200).map_err(|x| x.to_string())?, "cleared vector signalled");
    // Assign all, then disable all with count 0.
    let fds: Vec<i32> = (0..n).map(|_| efd.as_raw_fd()).collect();
    d.set_msix(0, &fds).map_err(e("assign all"))?;
    d.set_irqs(IRQ_SET_DATA_NONE | trig, MSIX_IRQ_INDEX, 0, &[], 0)
        .map_err(e("disable all"))?;
    d.set_irqs(IRQ_SET_DATA_NONE | trig, MSIX_IRQ_INDEX, 0, &[], n)
        .map_err(e("fire all"))?;
    ensure!(!efd.wait(200).map_err(|x| x.to_string())?, "disabled vectors signalled");
    // REQ: arm, fire, disarm.
    d.set_irqs(IRQ_SET_DATA_EVENTFD | trig, REQ_IRQ_INDEX, 0, &fd, 1)
        .map_err(e("REQ arm"))?;
    d.set_irqs(IRQ_SET_DATA_NONE | trig, REQ_IRQ_INDEX, 0, &[], 1)
        .map_err(e("REQ fire"))?;
    ensure!(efd.wait(1000).map_err(|x| x.to_string())?, "REQ trigger did not signal");
    d.set_irqs(IRQ_SET_DATA_EVENTFD | trig, REQ_IRQ_INDEX, 0, &(-1i32).to_ne_bytes(), 1)
        .map_err(e("REQ disarm"))?;
    Ok(())
}

fn region_info(d: &Device, n: u32, slice: u64) -> R {
    for idx in 0..vfio::NUM_REGIONS {
        let r = d.region_info(idx).map_err(e("REGION_INFO"))?;
        ensure!(
            r.offset == vfio::region_offset(idx),
            "region {idx} offset {:#x}",
            r.offset
        );
        let rw = vfio::REGION_READ | vfio::REGION_WRITE;
        let want = match idx {
            vfio::BAR0 => (instance_bar0_size(n), rw),
            vfio::BAR2 => (slice, rw | vfio::REGION_MMAP),
            vfio::BAR4 => (4096, rw),
            vfio::CONFIG => (256, rw),
            _ => (0, 0),
        };
        ensure!(
            (r.size, r.flags) == want,
            "region {idx}: size {:#x} flags {:#x}, want {want:x?}",
            r.size,
            r.flags
        );
    }
    Ok(())
}

// ---- config space ---------------------------------------------------------

fn config_space(d: &Device, n: u32, slice: u64) -> R {
    ensure!(cfg32(d, 0)? == 0x5c11_1b36, "IDs {:#x}", cfg32(d, 0)?);
    ensure!(cfg32(d, 8)? >> 8 == PCI_CLASS_CODE, "class {:#x}", cfg32(d, 8)? >> 8);
    ensure!(cfg32(d, 4)? >> 16 & 0x10 != 0, "no capability list bit");
    ensure!(cfg32(d, 0x34)? & 0xff == 0x40, "capability pointer");
    let cap = cfg32(d, 0x40)?;
    ensure!(
        cap & 0xff == 0x11 && (cap >> 8) & 0xff == 0,
        "MSI-X capability {cap:#x}"
    );
    ensure!(
        (cap >> 16) & 0x7ff == n - 1,
        "MSI-X table size {} for {n} vectors",
        (cap >> 16) & 0x7ff
    );
    // Table at BAR4 offset 0, the PBA right after it (16 bytes a vector).
    ensure!(
        cfg32(d, 0x44)? == 4 && cfg32(d, 0x48)? == (16 * n) | 4,
        "MSI-X table {:#x} / PBA {:#x} (BIR 4)",
        cfg32(d, 0x44)?,
        cfg32(d, 0x48)?
    );
    // BAR sizing: all-ones reads back the size mask and the type bits.
    for (off, size, flags) in [
        (0x10u64, instance_bar0_size(n), 0u32),
        (0x18, slice, 0xc),
        (0x20, 4096, 0),
    ] {
        set_cfg32(d, off, u32::MAX)?;
        let got = cfg32(d, off)?;
        let want = (!(size - 1) as u32 & !0xf) | flags;
        ensure!(got == want, "BAR at {off:#x}: sized {got:#x}, want {want:#x}");
        set_cfg32(d, off, 0xfebf_0000)?;
        ensure!(
            cfg32(d, off)? & !0xf == 0xfebf_0000 & !(size as u32 - 1),
            "BAR at {off:#x} address"
        );
    }
    for off in [0x14u64, 0x24, 0x30] {
        set_cfg32(d, off, u32::MAX)?;
        ensure!(cfg32(d, off)? == 0, "unimplemented BAR/ROM at {off:#x} is writable");
    }
    // Read-only fields ignore writes; command takes only its RW bits.
    set_cfg32(d, 0, 0)?;
    ensure!(cfg32(d, 0)? == 0x5c11_1b36, "vendor/device ID changed by a write");
    set_cfg32(d, 4, 0xffff_ffff)?;
    ensure!(cfg32(d, 4)? == 0x0010_0406, "command/status {:#x}", cfg32(d, 4)?);
    d.write_at(vfio::CONFIG, 0x42, &[0xff, 0xff]).map_err(e("msix ctl"))?;
    ensure!(
        cfg32(d, 0x40)? >> 16 == 0xc000 | (n - 1),
        "MSI-X control {:#x}",
        cfg32(d, 0x40)? >> 16
    );
    // Reset restores it all.
    d.reset().map_err(e("reset"))?;
    // Memory decoding comes back on with the reset, as on vfio-pci.
    ensure!(
        cfg32(d, 4)? == 0x0010_0002 && cfg32(d, 0x10)? == 0,
        "reset did not restore config space"
    );
    Ok(())
}

fn config_access_sizes(d: &Device) -> R {
    let mut b = [0u8; 8];
    for len in [1usize, 2, 4, 8] {
        let got = d.read_at(vfio::CONFIG, 0, &mut b[..len]).map_err(e("read"))?;
        ensure!(
            got == len && b[..len] == [0x36, 0x1b, 0x11, 0x5c, 2, 0, 0x10, 0][..len],
            "{len}-byte read at 0: {b:x?}"
        );
    }
    let got = d.read_at(vfio::CONFIG, 1, &mut b[..2]).map_err(e("read at 1"))?;
    ensure!(got == 2 && b[..2] == [0x1b, 0x11], "misaligned read {b:x?}");
    let got = d.read_at(vfio::CONFIG, 254, &mut b[..4]).map_err(e("read at 254"))?;
    ensure!(got == 2, "read across the end returned {got}, want 2");
    expect_errno("read at 256", d.read_at(vfio::CONFIG, 256, &mut b[..4]), libc::EINVAL)?;
    expect_errno("write at 256", d.write_at(vfio::CONFIG, 256, &b[..4]), libc::EINVAL)?;
    Ok(())
}

// ---- register window ------------------------------------------------------

fn register_window(d: &Device, other: &Device, n: u32, slice: u64) -> R {
    let r = |off| d.reg(off).map_err(|x| x.to_string());
    ensure!(
        r(REG_ID)? == DEVICE_ID_MAGIC && r(REG_VERSION)? == DEVICE_VERSION,
        "ID/version"
    );
    ensure!(
        r(REG_NUM_CONTEXTS)? == n && r(REG_NUM_VECTORS)? == n,
        "contexts/vectors"
    );
    ensure!(
        u64::from(r(REG_VRAM_SIZE_LO)?) | u64::from(r(REG_VRAM_SIZE_HI)?) << 32 == slice,
        "VRAM size"
    );
    ensure!(
        r(REG_FEATURES)? == FEATURES_V1,
        "an instance offers every opcode, DMA included"
    );
    for c in 0..n {
        let w = ctx_window(c);
        ensure!(
            r(w + CTX_VRAM_BASE_LO)? == 0 && r(w + CTX_VRAM_BASE_HI)? == 0,
            "context {c} slice base not 0"
        );
        ensure!(
            u64::from(r(w + CTX_VRAM_SIZE_LO)?) == slice & 0xffff_ffff,
            "context {c} slice size"
        );
        ensure!(r(w + CTX_VECTOR)? == c, "context {c} vector");
    }
    // The scratch register is the instance's own.
    d.set_reg(REG_SCRATCH, 0x1234_5678).map_err(|x| x.to_string())?;
    other.set_reg(REG_SCRATCH, 0x9abc_def0).map_err(|x| x.to_string())?;
    ensure!(r(REG_SCRATCH)? == 0x1234_5678, "scratch shared between instances");
    Ok(())
}

fn register_access_sizes(d: &Device, n: u32) -> R {
    let bad = || d.reg(REG_BAD_ACCESS_COUNT).map_err(|x| x.to_string());
    let size = instance_bar0_size(n);
    let before = bad()?;
    let mut b = [0u8; 8];
    // 1 and 2 bytes, and 4 misaligned: refused (all-ones, counted).
    for (off, len) in [(0u64, 1usize), (0, 2), (2, 2), (1, 1), (2, 4)] {
        let got = d.read_at(vfio::BAR0, off, &mut b[..len]).map_err(e("read"))?;
        ensure!(
            got == len && b[..len].iter().all(|&x| x == 0xff),
            "{len} bytes at {off}: {:x?}",
            &b[..len]
        );
    }
    let after = bad()?;
    ensure!(
        after >= before + 5,
        "refused accesses not counted ({before} -> {after})"
    );
    ensure!(
        d.reg(REG_BAD_ACCESS_OFFSET).map_err(|x| x.to_string())? == 4,
        "last refused offset"
    );
    // 8 bytes at an aligned offset: two registers.
    let got = d.read_at(vfio::BAR0, 0, &mut b).map_err(e("read 8"))?;
    ensure!(
        got == 8 && b[..4] == DEVICE_ID_MAGIC.to_le_bytes() && b[4..] == DEVICE_VERSION.to_le_bytes(),
        "8-byte read {b:x?}"
    );
    // Unnamed offsets, and at and past the end.
    ensure!(
        d.reg(0x800).map_err(|x| x.to_string())? == u32::MAX,
        "unnamed global offset reads"
    );
    ensure!(
        d.reg(ctx_window(0) + 0x200).map_err(|x| x.to_string())? == u32::MAX,
        "unnamed context offset reads"
    );
    let got = d.read_at(vfio::BAR0, size - 4, &mut b).map_err(e("read at the end"))?;
    ensure!(got == 4, "read across the end returned {got}");
    expect_errno("read at size", d.read_at(vfio::BAR0, size, &mut b[..4]), libc::EINVAL)?;
    expect_errno("write at size", d.write_at(vfio::BAR0, size, &b[..4]), libc::EINVAL)?;
    expect_errno("read past region 9", d.read_at(9, 0, &mut b[..4]), libc::EINVAL)?;
    expect_errno("read of BAR1", d.read_at(1, 0, &mut b[..4]), libc::EINVAL)?;
    // BAR4 (MSI-X table, QEMU's to emulate) reads zeros.
    let got = d.read_at(vfio::BAR4, 0, &mut b).map_err(e("BAR4"))?;
    ensure!(got == 8 && b == [0; 8], "BAR4 reads {b:x?}");
    Ok(())
}

fn vram_access_and_mmap(d: &Device, slice: u64) -> R {
    let m = d.mmap(vfio::BAR2, 0, slice as usize).map_err(e("mmap whole slice"))?;
    let base = DATA_BASE + 0x1000;
    for (k, len) in [1usize, 2, 3, 4, 5, 8, 13, 4096, 5000].into_iter().enumerate() {
        for misalign in [0u64, 1, 3, 6] {
            let at = base + (k as u64) * 0x4000 + misalign;
            let data: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(7) ^ k as u8 ^ misalign as u8)
                .collect();
            let w = d.write_at(vfio::BAR2, at, &data).map_err(e("VRAM write"))?;
            ensure!(w == len, "wrote {w} of {len}");
            let mut back = vec![0u8; len];
            d.read_at(vfio::BAR2, at, &mut back).map_err(e("VRAM read"))?;
            ensure!(back == data, "{len} bytes at +{misalign}: read back differs");
            let mut via_map = vec![0u8; len];
            m.read_bytes(at as usize, &mut via_map);
            ensure!(via_map == data, "{len} bytes at +{misalign}: mmap view differs");
        }
    }
    let mut b = [0u8; 8];
    let got = d.read_at(vfio::BAR2, slice - 3, &mut b).map_err(e("read at end"))?;
    ensure!(got == 3, "read across the slice end returned {got}");
    expect_errno("read at slice end", d.read_at(vfio::BAR2, slice, &mut b), libc::EINVAL)?;
    expect_errno("write at slice end", d.write_at(vfio::BAR2, slice, &b), libc::EINVAL)?;
    Ok(())
}

fn mmap_bounds(d: &Device, slice: u64) -> R {
    let pg = 4096u64;
    let m = |idx, off, len| d.mmap(idx, off, len).map(|_| ());
    m(vfio::BAR2, slice - pg, pg as usize).map_err(e("last page"))?;
    expect_errno(
        "length past the slice",
        m(vfio::BAR2, 0, (slice + pg) as usize),
        libc::EINVAL,
    )?;
    expect_errno(
        "offset at the slice end",
        m(vfio::BAR2, slice, pg as usize),
        libc::EINVAL,
    )?;
    expect_errno(
        "last page + 1",
        m(vfio::BAR2, slice - pg, 2 * pg as usize),
        libc::EINVAL,
    )?;
    expect_errno("offset far beyond", m(vfio::BAR2, 1 << 39, pg as usize), libc::EINVAL)?;
    for idx in [vfio::BAR0, 1, vfio::BAR4, vfio::CONFIG, 8, 9, 0xffff] {
        expect_errno(&format!("region {idx}"), m(idx, 0, pg as usize), libc::EINVAL)?;
    }
    expect_errno(
        "MAP_PRIVATE",
        Mmap::new(d.fd(), vfio::region_offset(vfio::BAR2), pg as usize, libc::MAP_PRIVATE),
        libc::EINVAL,
    )?;
    Ok(())
}

// ---- jobs, interrupts, reset ------------------------------------------------

fn jobs_every_context(u: &str) -> R {
    let mut inst = job::Instance::open(u).map_err(|x| x.to_string())?;
    for c in 0..inst.contexts {
        let r = job::round(&mut inst, c, 256 << 10, 0xa000_0000 | c).map_err(|x| x.to_string())?;
        ensure!(r.irqs >= 1, "context {c}: no MSI-X interrupt");
    }
    Ok(())
}

/// The legacy interface QEMU and older stacks use (group set to a type1
/// container) reaches the same device: info, registers, the VRAM mapping,
/// interrupts and jobs; and the group is free again after close.
fn legacy_group_container_path(u: &str) -> R {
    for round in 0..2u32 {
        let mut inst = job::Instance::open_by(u, OpenPath::Group).map_err(|x| format!("group open: {x}"))?;
        let i = inst.dev.info().map_err(e("GET_INFO"))?;
        ensure!(
            i.flags & (vfio::DEVICE_FLAGS_PCI | vfio::DEVICE_FLAGS_RESET)
                == vfio::DEVICE_FLAGS_PCI | vfio::DEVICE_FLAGS_RESET
                && i.num_regions == vfio::NUM_REGIONS
                && i.num_irqs == vfio::NUM_IRQS,
            "group path: device info {i:?}"
        );
        for c in 0..inst.contexts {
            let r = job::round(&mut inst, c, 64 << 10, 0x6700_0000 | round << 8 | c).map_err(|x| x.to_string())?;
            ensure!(r.irqs >= 1, "group path, context {c}: no MSI-X interrupt");
        }
    }
    Ok(())
}

fn jobs_all_instances_at_once(uuids: &[String]) -> R {
    let errs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = uuids
            .iter()
            .enumerate()
            .map(|(k, u)| {
                s.spawn(move || -> R {
                    let mut inst = job::Instance::open(u).map_err(|x| format!("{u}: {x}"))?;
                    for round in 0..2u32 {
                        for c in 0..inst.contexts {
                            let pat = 0xc000_0000 | (k as u32) << 16 | round << 8 | c;
                            job::round(&mut inst, c, 512 << 10, pat).map_err(|x| format!("{u}: {x}"))?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())).err())
            .collect()
    });
    ensure!(errs.is_empty(), "{}", errs.join("; "));
    Ok(())
}

/// `n` fills of `len` bytes at `DATA_BASE`: work that runs long enough to
/// be interrupted.
fn long_fills(n: u32, len: u32) -> Vec<Job> {
    (0..n)
        .map(|i| Job {
            op: OP_FILL,
            dst: DATA_BASE,
            len,
            value: i,
            ..Default::default()
        })
        .collect()
}

/// The last close stops the instance's contexts: jobs a user queued and
/// left behind never complete (their descriptors' status stays 0, seen
/// through the next open's mapping, which keeps VRAM as it is).
fn close_stops_queued_jobs(u: &str) -> R {
    let mut inst = job::Instance::open(u).map_err(|x| x.to_string())?;
    let len = JOB_MAX_LEN;
    ensure!(inst.slice >= DATA_BASE + len as u64, "slice too small");
    let jobs = long_fills(48, len);
    let idx = inst.submit(0, &jobs).map_err(|x| x.to_string())?;
    let last = idx[idx.len() - 1];
    drop(inst);
    // Long enough for all 48 fills to finish if the engine kept going.
    std::thread::sleep(Duration::from_secs(3));
    let d = Device::open(u).map_err(e("reopen"))?;
    let slice = d.region_info(vfio::BAR2).map_err(e("region info"))?.size;
    let m = d.mmap(vfio::BAR2, 0, slice as usize).map_err(e("mmap"))?;
    let at = (last % job::RING_SLOTS) as usize * DESC_SIZE + DESC_STATUS;
    ensure!(
        m.read32(at) == 0,
        "the last queued job completed (status {:#x}) after the user closed the instance",
        m.read32(at)
    );
    Ok(())
}

fn reset_mid_job(u: &str) -> R {
    let mut inst = job::Instance::open(u).map_err(|x| x.to_string())?;
    let len = JOB_MAX_LEN;
    ensure!(inst.slice >= DATA_BASE + len as u64, "slice too small");
    // 60 fills of 64 MiB: seconds of engine work, so that the reset
    // lands while most of it is still queued even on a slow guest.
    let jobs = long_fills(60, len);
    let idx = inst.submit(0, &jobs).map_err(|x| x.to_string())?;
    inst.dev.reset().map_err(e("VFIO_DEVICE_RESET"))?;
    let r = |off| inst.dev.reg(ctx_window(0) + off).map_err(|x| x.to_string());
    let t0 = Instant::now();
    while r(CTX_STATUS)? & CTX_STATUS_BUSY != 0 {
        ensure!(
            t0.elapsed() < Duration::from_secs(5),
            "context still busy 5 s after reset"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    ensure!(r(CTX_RING_HEAD)? == 0 && r(CTX_RING_SIZE)? == 0, "user block not reset");
    // Nothing completes after the reset, and the queue's tail never ran.
    let statuses = |inst: &job::Instance| idx.iter().map(|&i| inst.done(0, i).status).collect::<Vec<_>>();
    let at_reset = statuses(&inst);
    std::thread::sleep(Duration::from_millis(300));
    let later = statuses(&inst);
    let ran = later.iter().filter(|&&st| st != 0).count();
    ensure!(later == at_reset, "jobs completed after the reset");
    ensure!(
        later.last() == Some(&0),
        "the last job completed despite the reset ({ran} of {} ran)",
        idx.len()
    );
    // Reset took the MSI-X routes down (a function reset disables MSI-X).
    while inst.irq(0).wait(0).map_err(|x| x.to_string())? {}
    inst.dev
        .set_irqs(
            vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
            vfio::MSIX_IRQ_INDEX,
            0,
            &[],
            1,
        )
        .map_err(e("fire"))?;
    ensure!(
        !inst.irq(0).wait(200).map_err(|x| x.to_string())?,
        "MSI-X route survived the reset"
    );
    // The instance works again once set up anew.
    drop(inst);
    let mut inst = job::Instance::open(u).map_err(|x| x.to_string())?;
    job::round(&mut inst, 0, 64 << 10, 0x0bad_cafe).map_err(|x| format!("after reset: {x}"))?;
    Ok(())
}

fn close_tears_down_routes(u: &str) -> R {
    let inst = job::Instance::open(u).map_err(|x| x.to_string())?;
    let stale = EventFd::new(libc::EFD_CLOEXEC).map_err(|x| x.to_string())?;
    inst.dev.set_msix(0, &[stale.as_raw_fd()]).map_err(e("assign"))?;
    drop(inst);
    let mut inst = job::Instance::open(u).map_err(|x| x.to_string())?;
    job::round(&mut inst, 0, 4096, 0x1111_2222).map_err(|x| x.to_string())?;
    ensure!(
        !stale.wait(100).map_err(|x| x.to_string())?,
        "an eventfd of a closed user was signalled"
    );
    Ok(())
}

// ---- isolation ------------------------------------------------------------

fn isolation(a_uuid: &str, b_uuid: &str) -> R {
    let mut a = job::Instance::open(a_uuid).map_err(|x| x.to_string())?;
    let mut b = job::Instance::open(b_uuid).map_err(|x| x.to_string())?;
    // A's secret, written through its mmap.
    let secret: Vec<u8> = (0..65536u32).map(|i| (i * 31 + 7) as u8).collect();
    let at = DATA_BASE as usize;
    a.vram.write_bytes(at, &secret);
    let check_a = |a: &job::Instance, why: &str| -> R {
        let mut now = vec![0u8; secret.len()];
        a.vram.read_bytes(at, &mut now);
        ensure!(now == secret, "A's VRAM changed after: {why}");
        Ok(())
    };
    // B sees its own slice at 0, not A's.
    let mut mine = vec![0u8; secret.len()];
    b.vram.read_bytes(at, &mut mine);
    ensure!(mine != secret, "B reads A's data at the same slice offset");
    // Region offsets beyond B's slice (where A's slice might lie).
    let mut buf = [0u8; 64];
    for off in [b.slice, b.slice + DATA_BASE, 1 << 32, (1 << 40) - 64, u64::MAX >> 24] {
        ensure!(
            b.dev.read_at(vfio::BAR2, off, &mut buf).is_err(),
            "B read VRAM at {off:#x}"
        );
        ensure!(
            b.dev.write_at(vfio::BAR2, off, &buf).is_err(),
            "B wrote VRAM at {off:#x}"
        );
    }
    // Offsets whose high bits select another region: no wrap into BAR2.
    ensure!(b.dev.read_at(vfio::BAR2 + 1, 0, &mut buf).is_err(), "BAR3 readable");
    // mmap beyond the slice.
    for (off, len) in [(b.slice, 4096usize), (0, b.slice as usize * 2), (b.slice - 4096, 8192)] {
        ensure!(
            b.dev.mmap(vfio::BAR2, off, len).is_err(),
            "B mapped {len} bytes at {off:#x}"
        );
    }
    // Jobs that point outside B's slice: refused by the device.
    let outside = [
        Job {
            op: OP_FILL,
            dst: b.slice,
            len: 4096,
            value: 0xdead_beef,
            ..Default::default()
        },
        Job {
            op: OP_FILL,
            dst: b.slice - 4,
            len: 8,
            value: 0xdead_beef,
            ..Default::default()
        },
        Job {
            op: OP_COPY,
            src: b.slice + DATA_BASE,
            dst: DATA_BASE,
            len: 4096,
            ..Default::default()
        },
        Job {
            op: OP_COPY,
            src: DATA_BASE,
            dst: u64::MAX - 100,
            len: 4096,
            ..Default::default()
        },
        Job {
            op: OP_CHECKSUM,
            src: 1 << 40,
            len: 64,
            ..Default::default()
        },
        Job {
            op: OP_DMA_TO_HOST,
            src: DATA_BASE,
            dst: 0,
            len: 4096,
            ..Default::default()
        },
        Job {
            op: OP_DMA_FROM_HOST,
            src: 0,
            dst: DATA_BASE,
            len: 4096,
            ..Default::default()
        },
        Job {
            op: OP_DMA_COPY,
            src: 0,
            dst: 1 << 20,
            len: 4096,
            ..Default::default()
        },
    ];
    for j in outside {
        let idx = b.submit(0, &[j]).map_err(|x| x.to_string())?;
        let (d, _) = b.wait(0, idx[0], 10_000).map_err(|x| x.to_string())?;
        ensure!(
            d.status & DESC_STATUS_ERROR != 0,
            "job {j:?} was not refused (status {:#x})",
            d.status
        );
        let err = b.dev.reg(ctx_window(0) + CTX_ERROR).map_err(|x| x.to_string())?;
        ensure!(
            err == ERR_VRAM_BOUNDS || err == ERR_DMA_BOUNDS || err == ERR_DMA_FAULT,
            "job {j:?}: error {err}, want a bounds error or a DMA fault (nothing mapped)"
        );
        b.dev.set_reg(ctx_window(0) + CTX_ERROR, 0).map_err(|x| x.to_string())?;
    }
    // B's writes to privileged and global registers change nothing.
    let w = ctx_window(0);
    for (off, v) in [
        (w + CTX_VRAM_BASE_LO, 0u32),
        (w + CTX_VRAM_SIZE_LO, u32::MAX),
        (w + CTX_VRAM_SIZE_HI, 0xff),
        (w + CTX_DMA_SIZE_LO, u32::MAX),
        (w + CTX_VECTOR, 0),
        (w + CTX_CONTROL, CTX_CTRL_RESET),
        (REG_CONTROL, CTRL_RESET),
        (REG_GLOBAL_IRQ_MASK, 0),
    ] {
        b.dev.set_reg(off, v).map_err(|x| x.to_string())?;
    }
    ensure!(
        b.dev.reg(w + CTX_VRAM_SIZE_LO).map_err(|x| x.to_string())? == b.slice as u32,
        "B resized its slice"
    );
    // Contexts beyond B's: refused, nothing forwarded.
    for c in [b.contexts, b.contexts + 1, 255] {
        let off = ctx_window(c) + CTX_RING_TAIL;
        let _ = b.dev.set_reg(off, 7);
        let v = b.dev.reg(off).unwrap_or(u32::MAX);
        ensure!(v == u32::MAX, "B reached context {c} ({v:#x})");
    }
    check_a(&a, "B's accesses")?;
    // After all that, both still work, and A's data is intact.
    job::round(&mut b, 0, 64 << 10, 0x7777_0000).map_err(|x| format!("B afterwards: {x}"))?;
    let last_ctx = a.contexts - 1;
    job::round(&mut a, last_ctx, 64 << 10, 0x8888_0000).map_err(|x| format!("A afterwards: {x}"))?;
    check_a(&a, "jobs on both")?;
    Ok(())
}

/// A new instance on the units another one used reads zeros: the driver
/// scrubs VRAM between tenants.
fn new_tenant_sees_zeroed_vram(parent: &str, old: &str, created: &mut Created) -> R {
    let secret = 0x5ec2_e7ed_u32.to_le_bytes().repeat(1024);
    {
        let d = Device::open(old).map_err(|x| x.to_string())?;
        let slice = d.region_info(vfio::BAR2).map_err(e("region"))?.size as usize;
        let m = d.mmap(vfio::BAR2, 0, slice).map_err(e("mmap"))?;
        for at in [0, slice / 2, slice - secret.len()] {
            m.write_bytes(at, &secret);
        }
    }
    sysfs::remove(old).map_err(|x| x.to_string())?;
    // The only free block is the one just given back.
    let u = created.make(parent, "eighth")?;
    let d = Device::open(&u).map_err(|x| x.to_string())?;
    let slice = d.region_info(vfio::BAR2).map_err(e("region"))?.size as usize;
    let m = d.mmap(vfio::BAR2, 0, slice).map_err(e("mmap"))?;
    for at in [0, slice / 2, slice - secret.len(), slice - 4096] {
        let mut b = vec![0u8; secret.len().min(slice - at)];
        m.read_bytes(at, &mut b);
        ensure!(b.iter().all(|&x| x == 0), "new instance reads non-zero VRAM at {at:#x}");
    }
    Ok(())
}

// ---- revocable mapping ------------------------------------------------------

/// The driver's count of VRAM mapping faults served (debugfs).
fn mmap_faults() -> Result<u64, String> {
    DriverStats::read().map(|s| s.mmap_faults).map_err(|x| x.to_string())
}

/// Whether reading `off` of `m` kills a forked child with SIGBUS (the
/// mapping is gone) instead of returning a value.
fn touch_sigbus(m: &Mmap, off: usize) -> Result<bool, String> {
    // SAFETY: the child only reads the mapping and exits; it takes no
    // lock another thread of this process could hold.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        let _ = m.read32(off);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    // SAFETY: waits for our own child; `st` is ours.
    if unsafe { libc::waitpid(pid, &mut st, 0) } != pid {
        return Err(format!("waitpid: {}", io::Error::last_os_error()));
    }
    Ok(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGBUS)
}

/// The VRAM mapping is the driver's to take away. Pages come in on fault;
/// VFIO_DEVICE_RESET zaps them (the next touch faults them back, VRAM
/// kept); clearing memory decoding in the command register zaps them and
/// every BAR access fails (mapping: SIGBUS, read/write: EIO) until it is
/// set again.
fn mapping_is_revocable(u: &str) -> R {
    let d = Device::open(u).map_err(|x| x.to_string())?;
    let m = d.mmap(vfio::BAR2, 0, 4 << 20).map_err(e("mmap"))?;
    let (at, far) = (0x100, (2 << 20) + 0x40);
    m.write32(at, 0x1234_5678);
    let f0 = mmap_faults()?;
    ensure!(m.read32(at) == 0x1234_5678, "VRAM through the mapping");
    ensure!(mmap_faults()? == f0, "a page already mapped faulted again");
    m.write32(far, 0x9abc_def0);
    ensure!(
        mmap_faults()? == f0 + 1,
        "the next 2 MiB window came in without a fault"
    );

    d.reset().map_err(e("VFIO_DEVICE_RESET"))?;
    ensure!(m.read32(at) == 0x1234_5678, "VRAM changed across a reset");
    ensure!(mmap_faults()? > f0 + 1, "the mapping survived a reset (no new fault)");

    let cmd = cfg32(&d, 4)? & 0xffff;
    ensure!(cmd & 2 != 0, "memory decoding off after reset: {cmd:#x}");
    set_cfg32(&d, 4, cmd & !2)?;
    ensure!(
        touch_sigbus(&m, at)?,
        "the mapping still reads with memory decoding off"
    );
    expect_errno("BAR0 read, memory off", d.reg(REG_ID), libc::EIO)?;
    let mut b = [0u8; 4];
    expect_errno("BAR2 read, memory off", d.read_at(vfio::BAR2, 0, &mut b), libc::EIO)?;
    expect_errno("BAR2 write, memory off", d.write_at(vfio::BAR2, 0, &b), libc::EIO)?;
    set_cfg32(&d, 4, cmd)?;
    ensure!(
        !touch_sigbus(&m, at)?,
        "memory decoding back on, the mapping still faults"
    );
    ensure!(m.read32(far) == 0x9abc_def0, "VRAM after memory decoding came back");
    ensure!(d.reg(REG_ID).map_err(e("BAR0"))? == DEVICE_ID_MAGIC, "REG_ID");
    Ok(())
}

/// Polls `REG_ID` until the instance stops answering (EIO): how long that
/// took, or `None` if it still answered after 30 s.
fn wait_cut_off(d: &Device) -> Result<Option<Duration>, String> {
    let t0 = Instant::now();
    loop {
        match errno(d.reg(REG_ID)) {
            Some(libc::EIO) => return Ok(Some(t0.elapsed())),
            Some(x) => return Err(format!("BAR0 read: errno {x}")),
            None if t0.elapsed() > Duration::from_secs(30) => return Ok(None),
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A user who keeps the device open after REQ loses it 10 s later (at
/// the VFIO core's next request): BAR accesses fail with EIO and the
/// mapping is gone; the removal completes when it closes.
fn ignored_request_revokes(u: &str) -> R {
    let d = Device::open(u).map_err(|x| x.to_string())?;
    let req = EventFd::new(libc::EFD_CLOEXEC).map_err(|x| x.to_string())?;
    d.arm_request(&req).map_err(e("arm REQ"))?;
    let m = d.mmap(vfio::BAR2, 0, 4096).map_err(e("mmap"))?;
    m.write32(0, 1);
    let uu = u.to_string();
    let remover = std::thread::spawn(move || sysfs::remove(&uu));
    ensure!(req.wait(10_000).map_err(|x| x.to_string())?, "no REQ within 10 s");
    let gone = wait_cut_off(&d);
    let sigbus = matches!(gone, Ok(Some(_))) && touch_sigbus(&m, 0)?;
    drop(m);
    drop(d);
    let removed = remover.join().map_err(|_| "remover panicked".to_string())?;
    let took = gone?.ok_or("BAR0 still answered 30 s after REQ")?;
    ensure!(sigbus, "the mapping still read after the device was revoked");
    removed.map_err(|x| format!("remove: {x}"))?;
    println!("    # revoked {} ms after REQ", took.as_millis());
    Ok(())
}

/// A fatal device error cuts the instance off (BAR reads EIO, the mapping
/// SIGBUS) until VFIO_DEVICE_RESET, which brings it back with VRAM kept.
fn fatal_cutoff(u: &str) -> R {
    let d = Device::open(u).map_err(|x| x.to_string())?;
    let m = d.mmap(vfio::BAR2, 0, 4096).map_err(e("mmap"))?;
    m.write32(0x40, 0xfa7a_1e44);
    println!("ready");
    let took = wait_cut_off(&d)?.ok_or("still answering 30 s after ready")?;
    println!("cut off after {} ms", took.as_millis());
    ensure!(touch_sigbus(&m, 0x40)?, "the mapping still reads after the fatal error");
    d.reset().map_err(e("VFIO_DEVICE_RESET"))?;
    ensure!(
        d.reg(REG_ID).map_err(e("BAR0 after reset"))? == DEVICE_ID_MAGIC,
        "REG_ID after reset"
    );
    ensure!(m.read32(0x40) == 0xfa7a_1e44, "VRAM changed across the cut-off");
    println!("recovered by reset");
    Ok(())
}

fn main() {
    let parent = match vslice_args::parse::<Cli>().cmd {
        Cmd::Conformance(c) => c.parent,
        Cmd::FatalCutoff(c) => {
            let r = fatal_cutoff(&c.uuid);
            if let Err(why) = &r {
                println!("fatal-cutoff: {why}");
            }
            std::process::exit(i32::from(r.is_err()));
        }
        Cmd::Migration(m) => {
            print_ktap("vslice_migration", &migration::run(&m.p1, &m.p2));
            return;
        }
        Cmd::VramPattern(v) => {
            let r = migration::vram_pattern(&v.uuid, &v.what, v.seed, v.len);
            match &r {
                Ok(fnv) => println!("vram-pattern {} {}: ok, fnv1a64 {fnv:#018x}", v.what, v.uuid),
                Err(why) => println!("vram-pattern {} {}: {why}", v.what, v.uuid),
            }
            std::process::exit(i32::from(r.is_err()));
        }
    };
    let mut results: Vec<(String, R)> = Vec::new();
    let mut created = Created(Vec::new());
    let setup = (|| -> Result<[String; 4], String> {
        Ok([
            created.make(&parent, "half")?,
            created.make(&parent, "quarter")?,
            created.make(&parent, "eighth")?,
            created.make(&parent, "eighth")?,
        ])
    })();
    let mut t = |name: &str, f: &mut dyn FnMut() -> R| {
        let r = f();
        results.push((name.to_string(), r));
    };
    match setup {
        Err(x) => t("create_test_instances", &mut || Err(x.clone())),
        Ok(us) => {
            let open = |u: &str| Device::open(u).map_err(|x| x.to_string());
            let (d, other) = match (open(&us[1]), open(&us[2])) {
                (Ok(d), Ok(o)) => (d, o),
                (a, b) => {
                    let why = format!("{:?} {:?}", a.err(), b.err());
                    t("open_instances", &mut || Err(why.clone()));
                    print_ktap("vslice_vfio", &results);
                    std::process::exit(0);
                }
            };
            let n = d.irq_info(vfio::MSIX_IRQ_INDEX).map(|i| i.count).unwrap_or(0);
            let slice = d.region_info(vfio::BAR2).map(|r| r.size).unwrap_or(0);
            t("device_and_irq_info", &mut || device_and_irq_info(&d, n));
            t("bad_argsz_index_and_pointers", &mut || bad_argsz_index_and_pointers(&d));
            t("set_irqs_every_combination", &mut || set_irqs_combinations(&d, n));
            t("set_irqs_conformance_table", &mut || {
                let calls = irq_table::run(&d, n)?;
                println!("    # set_irqs_conformance_table: {calls} calls, each as docs/device.md says");
                Ok(())
            });
            t("region_info", &mut || region_info(&d, n, slice));
            t("config_space_virtual_and_ignores_bad_writes", &mut || {
                config_space(&d, n, slice)
            });
            t("config_access_sizes_and_bounds", &mut || config_access_sizes(&d));
            t("register_window_emulated_and_forwarded", &mut || {
                register_window(&d, &other, n, slice)
            });
            t("register_access_sizes_and_bounds", &mut || register_access_sizes(&d, n));
            t("vram_region_access_every_size", &mut || vram_access_and_mmap(&d, slice));
            t("vram_mmap_bounds", &mut || mmap_bounds(&d, slice));
            drop(d);
            drop(other);
            t("jobs_on_every_context_with_msix", &mut || jobs_every_context(&us[0]));
            t("jobs_on_all_instances_at_once", &mut || jobs_all_instances_at_once(&us));
            t("legacy_group_container_path", &mut || {
                legacy_group_container_path(&us[2])
            });
            t("reset_in_the_middle_of_a_job", &mut || reset_mid_job(&us[0]));
            t("last_close_stops_queued_jobs", &mut || close_stops_queued_jobs(&us[0]));
            t("close_tears_down_interrupt_routes", &mut || {
                close_tears_down_routes(&us[2])
            });
            t("isolation_between_instances", &mut || isolation(&us[2], &us[3]));
            t("dma_jobs_reach_mapped_memory", &mut || dma::reach_mapped_memory(&us[1]));
            t("dma_outside_mappings_touches_nothing", &mut || {
                dma::outside_mappings_touch_nothing(&us[1])
            });
            t("dma_read_only_mapping_refuses_writes", &mut || {
                dma::read_only_mapping_refuses_writes(&us[1])
            });
            t("dma_tenants_with_the_same_iovas", &mut || {
                dma::tenants_with_the_same_iovas(&us[2], &us[3])
            });
            t("dma_unmap_racing_a_job", &mut || dma::unmap_racing_a_job(&us[1]));
            t("dma_pins_go_on_reset_and_close", &mut || {
                dma::pins_go_on_reset_and_close(&us[1])
            });
            t("dma_descriptor_boundaries", &mut || dma::descriptor_boundaries(&us[1]));
            t("dma_through_a_type1_container", &mut || {
                dma::through_a_type1_container(&us[1])
            });
            t("dma_type1_shared_container", &mut || {
                dma::type1_shared_container(&us[1], &us[2], &us[3])
            });
            t("dma_memlock_limit_fails_the_job", &mut || {
                dma::memlock_limit_fails_the_job(&us[1])
            });
            t("new_tenant_sees_zeroed_vram", &mut || {
                new_tenant_sees_zeroed_vram(&parent, &us[3], &mut created)
            });
            t("mapping_zapped_on_reset_and_memory_disable", &mut || {
                mapping_is_revocable(&us[0])
            });
            t("ignored_request_revokes_the_device", &mut || {
                ignored_request_revokes(&us[1])
            });
        }
    }
    drop(created);
    print_ktap("vslice_vfio", &results);
}

fn print_ktap(suite: &str, results: &[(String, R)]) {
    println!(
        "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: {suite}\n    1..{}",
        results.len()
    );
    let mut failed = 0;
    for (i, (name, r)) in results.iter().enumerate() {
        match r {
            Ok(()) => println!("    ok {} {name}", i + 1),
            Err(why) => {
                failed += 1;
                println!("    not ok {} {name}", i + 1);
                for l in why.lines() {
                    println!("    # {l}");
                }
            }
        }
    }
    if failed == 0 {
        println!("ok 1 {suite}");
    } else {
        println!("not ok 1 {suite} # {failed} failed");
    }
}
