// SPDX-License-Identifier: GPL-2.0
//! What an instance looks like to its user: the virtual PCI function behind
//! its VFIO device (vfio-pci region layout, config space, the register
//! window's decoding). Pure logic, no hardware and no locks: config space
//! is an array of atomics updated with compare-and-exchange, so concurrent
//! accesses from several threads of one user need no lock. Compiled into
//! the KUnit module too (kunit/vslice_kunit.rs). docs/device.md ("The
//! instance's view") is the user-facing description of this file.

use kernel::sync::atomic::{Atomic, Relaxed};

use crate::regs;

/// vfio-pci region indices (`VFIO_PCI_*_REGION_INDEX`, uapi).
pub(crate) const REGION_BAR0: u32 = 0;
/// The VRAM slice.
pub(crate) const REGION_BAR2: u32 = 2;
/// The MSI-X table and PBA.
pub(crate) const REGION_BAR4: u32 = 4;
/// PCI config space.
pub(crate) const REGION_CONFIG: u32 = 7;
/// `VFIO_PCI_NUM_REGIONS`: BAR0..5, ROM, config, VGA.
pub(crate) const NUM_REGIONS: u32 = 9;

/// Region flags (`VFIO_REGION_INFO_FLAG_*`, uapi; the C shim asserts them).
pub(crate) const REGION_READ: u32 = 1;
/// Writable.
pub(crate) const REGION_WRITE: u32 = 2;
/// mmap-able.
pub(crate) const REGION_MMAP: u32 = 4;

/// Config space size (conventional PCI).
pub(crate) const CONFIG_SIZE: u64 = 256;
/// Most vectors an MSI-X capability describes (an 11-bit table size).
pub(crate) const MSIX_MAX_VECTORS: u32 = 2048;
/// Bytes of one MSI-X table entry.
const MSIX_ENTRY_SIZE: u64 = 16;
/// Offset of the MSI-X capability, the only one.
pub(crate) const MSIX_CAP: usize = 0x40;

const CFG_DWORDS: usize = CONFIG_SIZE as usize / 4;
const PCI_STATUS_CAP_LIST: u32 = 0x10;
const PCI_CAP_ID_MSIX: u32 = 0x11;
/// Memory space decoding: BAR accesses and the VRAM mapping work only
/// while it is set.
pub(crate) const PCI_COMMAND_MEMORY: u32 = 0x0002;
const PCI_COMMAND_RW: u32 = PCI_COMMAND_MEMORY | 0x0004 | 0x0400; // + master, INTx disable
const BAR_MEM64_PREF: u32 = 0x4 | 0x8;
const MSIX_CTRL_RW: u32 = 0xc000; // enable, function mask

/// Size of an instance's register window (BAR0) with `n` contexts: the
/// global block and one window per context, as on the device, rounded up
/// to a power of two as a BAR must be.
pub(crate) const fn bar0_size(n: u32) -> u64 {
    ((regs::CTX_BASE + n as usize * regs::CTX_STRIDE) as u64).next_power_of_two()
}

/// BAR4 for `n` MSI-X vectors: the table at 0, the PBA right after it
/// (16 × n keeps it QWORD-aligned), the BAR the next power of two that
/// holds both and at least a page, so that neither ever overlaps the
/// other (QEMU's `msix_init()` refuses a device where they do). Returns
/// (PBA offset, BAR size).
pub(crate) fn msix_layout(n: u32) -> (u32, u64) {
    let n = u64::from(n.clamp(1, MSIX_MAX_VECTORS));
    let pba = n * MSIX_ENTRY_SIZE;
    let pba_size = n.div_ceil(64) * 8;
    // At most 32 KiB + 256 bytes: a u32 offset always.
    (pba as u32, (pba + pba_size).next_power_of_two().max(4096))
}

/// Whether a VRAM slice of `slice` bytes can be mapped: whole pages only,
/// or a mapping would reach past the slice.
pub(crate) fn slice_mappable(slice: u64) -> bool {
    let page = kernel::page::PAGE_SIZE as u64;
    slice >= page && slice % page == 0
}

/// Size and flags of region `index` for an instance with `n` contexts and
/// a VRAM slice of `slice` bytes; size 0 for regions it does not have.
pub(crate) fn region(index: u32, n: u32, slice: u64) -> (u64, u32) {
    let rw = REGION_READ | REGION_WRITE;
    match index {
        REGION_BAR0 => (bar0_size(n), rw),
        REGION_BAR2 if slice_mappable(slice) => (slice, rw | REGION_MMAP),
        REGION_BAR2 => (slice, rw),
        REGION_BAR4 => (msix_layout(n).1, rw),
        REGION_CONFIG => (CONFIG_SIZE, rw),
        _ => (0, 0),
    }
}

/// Reset value of config dword `i` (byte offset `4 * i`).
fn cfg_init(i: usize, vectors: u32) -> u32 {
    match i * 4 {
        0x00 => u32::from(regs::PCI_VENDOR_ID) | u32::from(regs::PCI_INSTANCE_DEVICE_ID) << 16,
        // Memory decoding on, as a vfio-pci device is after open (the
        // core enables it) and after VFIO_DEVICE_RESET (which restores
        // the command register around the function reset).
        0x04 => PCI_STATUS_CAP_LIST << 16 | PCI_COMMAND_MEMORY,
        0x08 => u32::from(regs::PCI_REVISION) | regs::PCI_CLASS_CODE << 8,
        0x18 => BAR_MEM64_PREF,
        0x2c => u32::from(regs::PCI_VENDOR_ID) | u32::from(regs::PCI_INSTANCE_DEVICE_ID) << 16,
        0x34 => MSIX_CAP as u32,
        0x40 => PCI_CAP_ID_MSIX | (vectors.clamp(1, MSIX_MAX_VECTORS) - 1) << 16,
        0x44 => regs::BAR_MSIX,
        0x48 => msix_layout(vectors).0 | regs::BAR_MSIX,
        _ => 0,
    }
}

/// Bits of config dword `i` a write may change. Everything else is
/// read-only and writes to it are dropped, as on hardware; BAR sizing
/// follows from the masks (all-ones reads back as the size mask).
fn cfg_wmask(i: usize, bar0: u64, bar2: u64, bar4: u64) -> u32 {
    let bar_mask = |size: u64| !(size.max(16) - 1) as u32 & !0xf;
    match i * 4 {
        0x04 => PCI_COMMAND_RW,
        0x0c => 0xffff, // cache line size, latency timer
        0x10 => bar_mask(bar0),
        0x18 => bar_mask(bar2),
        0x1c => !((bar2.max(1) - 1) >> 32) as u32,
        0x20 => bar_mask(bar4),
        0x3c => 0xff, // interrupt line
        0x40 => MSIX_CTRL_RW << 16,
        _ => 0,
    }
}

/// An instance's virtual config space.
pub(crate) struct VConfig {
    dw: [Atomic<u32>; CFG_DWORDS],
    vectors: u32,
    bar0: u64,
    bar2: u64,
    bar4: u64,
}

impl VConfig {
    /// Config space of an instance with `vectors` MSI-X vectors (one per
    /// context) and a `bar2`-byte VRAM slice.
    pub(crate) fn new(vectors: u32, bar2: u64) -> Self {
        let c = VConfig {
            dw: [const { Atomic::new(0) }; CFG_DWORDS],
            vectors,
            bar0: bar0_size(vectors),
            bar2,
            bar4: msix_layout(vectors).1,
        };
        c.reset();
        c
    }

    /// Back to the reset values (function reset).
    pub(crate) fn reset(&self) {
        for (i, d) in self.dw.iter().enumerate() {
            d.store(cfg_init(i, self.vectors), Relaxed);
        }
    }

    /// Whether the command register enables memory space decoding.
    pub(crate) fn mem_enabled(&self) -> bool {
        self.dw[1].load(Relaxed) & PCI_COMMAND_MEMORY != 0
    }

    /// Reads `buf.len()` bytes at `off`; the caller clamps to `CONFIG_SIZE`.
    pub(crate) fn read(&self, off: usize, buf: &mut [u8]) {
        for (k, b) in buf.iter_mut().enumerate() {
            let at = off + k;
            *b = self
                .dw
                .get(at / 4)
                .map_or(0xff, |d| (d.load(Relaxed) >> (8 * (at % 4))) as u8);
        }
    }

    /// Writes `data` at `off`, byte by byte through the write masks.
    pub(crate) fn write(&self, off: usize, data: &[u8]) {
        for (k, &v) in data.iter().enumerate() {
            let at = off + k;
            let Some(d) = self.dw.get(at / 4) else {
                return;
            };
            let shift = 8 * (at % 4);
            let mask = cfg_wmask(at / 4, self.bar0, self.bar2, self.bar4) & (0xff << shift);
            if mask == 0 {
                continue;
            }
            let mut old = d.load(Relaxed);
            loop {
                let new = (old & !mask) | ((u32::from(v) << shift) & mask);
                match d.cmpxchg(old, new, Relaxed) {
                    Ok(_) => break,
                    Err(cur) => old = cur,
                }
            }
        }
    }
}

/// What one aligned 32-bit access to the register window (BAR0) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reg {
    /// Emulated read-only value; writes are ignored (as the device does).
    Const(u32),
    /// The instance's own scratch register.
    Scratch,
    /// The instance's refused-access count.
    BadCount,
    /// The instance's last refused offset.
    BadOffset,
    /// Forwarded to the user block of the instance's context `ctx`
    /// (0-based within the instance) at `off` in the hardware window.
    Forward { ctx: u32, off: usize },
    /// Refused: reads all-ones, writes dropped, counted, as the device does
    /// for accesses its map does not name. Nothing reaches the hardware.
    Refused,
}

/// Decodes an aligned 32-bit access at `off` in the register window of an
/// instance with `n` contexts and a `slice`-byte VRAM slice. The global
/// block and each context's privileged block are emulated (the instance
/// sees its slice at VRAM offset 0 and its contexts as 0..n); only the
/// user block of the instance's own contexts reaches the device.
pub(crate) fn decode_bar0(off: u64, n: u32, slice: u64) -> Reg {
    if off % 4 != 0 || off >= bar0_size(n) {
        return Reg::Refused;
    }
    let off = off as usize;
    if off < regs::CTX_BASE {
        return match off {
            regs::REG_ID => Reg::Const(regs::DEVICE_ID_MAGIC),
            regs::REG_VERSION => Reg::Const(regs::DEVICE_VERSION),
            regs::REG_NUM_CONTEXTS | regs::REG_NUM_VECTORS => Reg::Const(n),
            regs::REG_VRAM_SIZE_LO => Reg::Const(slice as u32),
            regs::REG_VRAM_SIZE_HI => Reg::Const((slice >> 32) as u32),
            regs::REG_CTX_STRIDE => Reg::Const(regs::CTX_STRIDE as u32),
            regs::REG_SCRATCH => Reg::Scratch,
            regs::REG_CONTROL => Reg::Const(regs::CTRL_ENABLE),
            regs::REG_STATUS => Reg::Const(regs::STATUS_READY),
            regs::REG_GLOBAL_IRQ_STATUS => Reg::Const(0),
            regs::REG_GLOBAL_IRQ_MASK => Reg::Const(u32::MAX),
            regs::REG_BAD_ACCESS_COUNT => Reg::BadCount,
            regs::REG_BAD_ACCESS_OFFSET => Reg::BadOffset,
            regs::REG_FEATURES => Reg::Const(INSTANCE_FEATURES),
            _ => Reg::Refused,
        };
    }
    let ctx = ((off - regs::CTX_BASE) / regs::CTX_STRIDE) as u32;
    let r = (off - regs::CTX_BASE) % regs::CTX_STRIDE;
    if ctx >= n {
        return Reg::Refused;
    }
    match r {
        regs::CTX_VRAM_BASE_LO | regs::CTX_VRAM_BASE_HI => Reg::Const(0),
        regs::CTX_VRAM_SIZE_LO => Reg::Const(slice as u32),
        regs::CTX_VRAM_SIZE_HI => Reg::Const((slice >> 32) as u32),
        regs::CTX_DMA_BASE_LO..=regs::CTX_DMA_SIZE_HI => Reg::Const(0),
        regs::CTX_WEIGHT => Reg::Const(CONTEXT_WEIGHT),
        regs::CTX_VECTOR => Reg::Const(ctx),
        regs::CTX_CONTROL => Reg::Const(regs::CTX_CTRL_ENABLE),
        regs::CTX_STATUS..=regs::CTX_COMPLETED => Reg::Forward { ctx, off: r },
        _ => Reg::Refused,
    }
}

/// Opcodes an instance may use: all of them. Its DMA addresses are IOVAs
/// of the IOAS its VFIO device is attached to, translated by the device
/// through tables the driver keeps (dma.rs).
pub(crate) const INSTANCE_FEATURES: u32 = regs::FEATURES_V1;
/// Scheduling weight of every instance context.
pub(crate) const CONTEXT_WEIGHT: u32 = 1;

/// Splits an access of `len` bytes at `off` into the first naturally
/// aligned piece (8, 4, 2 or 1 bytes), as vfio-pci does.
pub(crate) fn piece(off: u64, len: usize) -> usize {
    if len >= 8 && off & 7 == 0 {
        8
    } else if len >= 4 && off & 3 == 0 {
        4
    } else if len >= 2 && off & 1 == 0 {
        2
    } else {
        1
    }
}
