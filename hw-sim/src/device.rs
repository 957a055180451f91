// SPDX-License-Identifier: GPL-2.0
//! The simulated vslice device (docs/device.md is its programming model):
//! config space, BAR0 registers (global block + one window per context),
//! BAR2 VRAM, MSI-X eventfds, the job engine and its scheduler, address
//! translation, and what migration needs: freezing a context, restoring
//! its state elsewhere, and the log of VRAM pages the device wrote.
//!
//! Locking: `Device` has no locks of its own. `Shared` puts it behind one
//! mutex that the vfio-user thread (register accesses), the engine thread
//! (`step`) and the control thread (fault commands) take; the engine drops
//! it between chunks of `CHUNK` bytes, so a reset or a register access
//! never waits for a whole job. `Faults` is lock-free and read outside the
//! mutex, so that a hang can be lifted while an access sleeps.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use log::{info, warn};
use vfio_bindings::bindings::vfio::*;
use vfio_user::{IrqInfo, ServerBackend, ServerRegion, SparseArea};

use crate::config::{ConfigSpace, CONFIG_SIZE};
use crate::faults::Faults;
use crate::mem::{DmaSpace, Vram};
use vslice_abi::regs::*;
use vslice_abi::{fnv1a64, Desc};

/// Bytes the engine processes before it lets others take the lock.
pub const CHUNK: u64 = 256 << 10;
const PAGE: u64 = 4096;

/// What the device is built with (command-line options).
#[derive(Clone, Debug)]
pub struct DeviceParams {
    /// Number of hardware contexts.
    pub contexts: u32,
    /// VRAM size in bytes (a power of two, BAR sizing needs it).
    pub vram_size: u64,
    /// Number of MSI-X vectors.
    pub vectors: u32,
}

impl Default for DeviceParams {
    fn default() -> Self {
        DeviceParams {
            contexts: DEFAULT_CONTEXTS,
            vram_size: DEFAULT_VRAM_SIZE,
            vectors: DEFAULT_CONTEXTS + 1,
        }
    }
}

impl DeviceParams {
    /// Checks the parameters against what the register map can express.
    pub fn validate(&self) -> Result<(), String> {
        if self.contexts == 0 || self.contexts > MAX_CONTEXTS {
            return Err(format!("contexts must be 1..={MAX_CONTEXTS}"));
        }
        if !self.vram_size.is_power_of_two() || self.vram_size < (1 << 20) {
            return Err("VRAM size must be a power of two of at least 1 MiB".into());
        }
        if self.vectors < self.contexts + 1 || self.vectors > 2048 {
            return Err("vectors must be contexts + 1 ..= 2048".into());
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    desc: Desc,
    /// Slice offset of the descriptor (for the status write-back).
    slot: u64,
    done: u64,
    hash: u64,
    /// Bytes of the job's device-virtual ranges (source first, then
    /// destination) known to translate; data moves only once all do.
    probed: u64,
}

/// A translation fault waiting for the driver's answer.
#[derive(Clone, Copy, Debug)]
struct Fault {
    addr: u64,
    len: u32,
    info: u32,
}

/// One cached translation: device-virtual page, bus page, `PTE_*` bits.
#[derive(Clone, Copy, Debug)]
struct Tlb {
    va: u64,
    pa: u64,
    perm: u64,
}

/// Why a DMA piece could not be done.
enum Stop {
    /// No translation (`CTX_FAULT_INFO` bits).
    Fault { addr: u64, info: u32 },
    /// Translated (or untranslated) to memory QEMU has not mapped.
    Bounds(u64),
}

/// One hardware context.
#[derive(Clone, Debug)]
pub struct Context {
    vram_base: u64,
    vram_size: u64,
    dma_base: u64,
    dma_size: u64,
    weight: u32,
    vector: u32,
    control: u32,
    irq_status: u32,
    irq_mask: u32,
    error: u32,
    error_addr: u64,
    ring_base: u64,
    ring_size: u32,
    head: u32,
    tail: u32,
    completed: u32,
    halted: bool,
    inflight: Option<InFlight>,
    xlate_root: u64,
    xlate_ctrl: u32,
    fault: Option<Fault>,
    iotlb: Vec<Tlb>,
    inv_addr: u64,
    inv_size: u64,
    inv_completed: u32,
    /// Where the job at the head resumes (bytes done, running hash), set
    /// through `CTX_MIG_JOB_*` while frozen and taken by the next start.
    resume: Option<(u64, u64)>,
    dirty_addr: u64,
    dirty_synced: u32,
    vtime: u64,
    /// Bytes of job work done since the device was created (scheduling tests).
    pub bytes_done: u64,
    /// Descriptors completed or failed since the device was created.
    pub jobs_done: u64,
}

impl Context {
    fn new(n: u32) -> Self {
        Context {
            vram_base: 0,
            vram_size: 0,
            dma_base: 0,
            dma_size: 0,
            weight: 1,
            vector: n + 1,
            control: 0,
            irq_status: 0,
            irq_mask: 0,
            error: ERR_NONE,
            error_addr: 0,
            ring_base: 0,
            ring_size: 0,
            head: 0,
            tail: 0,
            completed: 0,
            halted: false,
            inflight: None,
            xlate_root: 0,
            xlate_ctrl: 0,
            fault: None,
            iotlb: Vec::with_capacity(XLATE_IOTLB_ENTRIES as usize),
            inv_addr: 0,
            inv_size: 0,
            inv_completed: 0,
            resume: None,
            dirty_addr: 0,
            dirty_synced: 0,
            vtime: 0,
            bytes_done: 0,
            jobs_done: 0,
        }
    }

    /// Per-context reset: the user block; privileged programming stays.
    fn reset_user(&mut self) {
        self.irq_status = 0;
        self.irq_mask = 0;
        self.error = ERR_NONE;
        self.error_addr = 0;
        self.ring_base = 0;
        self.ring_size = 0;
        self.head = 0;
        self.tail = 0;
        self.completed = 0;
        self.halted = false;
        self.inflight = None;
        self.fault = None;
        self.resume = None;
        self.iotlb.clear();
    }

    fn frozen(&self) -> bool {
        self.control & CTX_CTRL_FREEZE != 0
    }

    /// Progress of the job at the head: in flight, or where it resumes.
    fn job_progress(&self) -> (u64, u64) {
        match (&self.inflight, self.resume) {
            (Some(j), _) => (j.done, j.hash),
            (None, Some(r)) => r,
            (None, None) => (0, FNV64_OFFSET),
        }
    }

    /// Drops the cached translations of pages in [addr, addr + size)
    /// (size 0: all).
    fn invalidate(&mut self, addr: u64, size: u64) {
        if size == 0 {
            self.iotlb.clear();
            return;
        }
        let end = addr.saturating_add(size);
        self.iotlb
            .retain(|t| t.va.saturating_add(XLATE_PAGE_SIZE) <= addr || t.va >= end);
    }

    fn xlate_on(&self) -> bool {
        self.xlate_ctrl & XLATE_ENABLE != 0
    }

    /// The slice as (absolute base, size); empty if misprogrammed.
    fn slice(&self, vram_total: u64) -> (u64, u64) {
        let ok = self.vram_base.is_multiple_of(PAGE)
            && self.vram_size.is_multiple_of(PAGE)
            && self
                .vram_base
                .checked_add(self.vram_size)
                .is_some_and(|e| e <= vram_total);
        if ok {
            (self.vram_base, self.vram_size)
        } else {
            (0, 0)
        }
    }
}

fn lo(v: u64) -> u32 {
    v as u32
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

fn set_lo(r: &mut u64, v: u32) {
    *r = (*r & !0xffff_ffff) | u64::from(v);
}

fn set_hi(r: &mut u64, v: u32) {
    *r = (*r & 0xffff_ffff) | (u64::from(v) << 32);
}

/// Bytes from `a` to the end of its translation page.
fn page_left(a: u64) -> u64 {
    XLATE_PAGE_SIZE - (a % XLATE_PAGE_SIZE)
}

/// Bytes of device-virtual ranges DMA job `d` touches: source (if in
/// guest memory), then destination (if in guest memory).
fn dma_span(d: &Desc) -> u64 {
    let len = u64::from(d.len);
    if d.opcode == OP_DMA_COPY {
        2 * len
    } else {
        len
    }
}

/// What job `d` still needs from `addr` on, in the range `addr` is in.
fn dma_left(d: &Desc, addr: u64) -> u32 {
    let len = u64::from(d.len);
    let in_src = d.opcode != OP_DMA_TO_HOST && addr >= d.src && addr - d.src < len;
    let start = if in_src { d.src } else { d.dst };
    (len - (addr - start).min(len)) as u32
}

/// Whether [off, off + len) lies in [0, size).
fn in_bounds(off: u64, len: u64, size: u64) -> bool {
    off.checked_add(len).is_some_and(|e| e <= size)
}

/// Counters the benchmarks read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Register accesses served (BAR0 and config).
    pub accesses: u64,
    /// MSI-X signals sent.
    pub irqs: u64,
    /// Translation faults reported to the driver.
    pub xlate_faults: u64,
    /// Table walks (translations not found in a context's IOTLB).
    pub walks: u64,
}

/// The simulated device.
pub struct Device {
    params: DeviceParams,
    config: ConfigSpace,
    vram: Vram,
    dma: DmaSpace,
    scratch: u32,
    control: u32,
    girq_status: u32,
    girq_mask: u32,
    bad_count: u32,
    bad_offset: u32,
    ctxs: Vec<Context>,
    /// Bounce buffer of `OP_DMA_COPY` (guest memory to guest memory).
    bounce: Vec<u8>,
    /// One bit per VRAM page the device wrote since its last sync.
    dirty: Vec<u64>,
    irqs: Vec<Option<File>>,
    faults: Arc<Faults>,
    /// Counters.
    pub stats: Stats,
}

impl Device {
    /// A device in its reset state.
    pub fn new(params: DeviceParams, faults: Arc<Faults>) -> std::io::Result<Self> {
        params
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        Ok(Device {
            config: ConfigSpace::new(params.vectors, params.vram_size),
            vram: Vram::new(params.vram_size)?,
            dma: DmaSpace::default(),
            irqs: (0..params.vectors).map(|_| None).collect(),
            ctxs: (0..params.contexts).map(Context::new).collect(),
            bounce: vec![0; CHUNK as usize],
            dirty: vec![0; (params.vram_size / PAGE).div_ceil(64) as usize],
            params,
            scratch: 0,
            control: 0,
            girq_status: 0,
            girq_mask: !0,
            bad_count: 0,
            bad_offset: 0,
            faults,
            stats: Stats::default(),
        })
    }

    /// The parameters the device was built with.
    pub fn params(&self) -> &DeviceParams {
        &self.params
    }

    /// A context's state (tests and the engine's callers).
    pub fn context(&self, n: usize) -> Option<&Context> {
        self.ctxs.get(n)
    }

    /// VRAM (tests).
    pub fn vram_mut(&mut self) -> &mut [u8] {
        self.vram.bytes_mut()
    }

    /// Refused accesses since reset.
    pub fn bad_accesses(&self) -> u32 {
        self.bad_count
    }

    /// The vfio-user region table: config, BAR0, BAR2 (mmap-able), BAR4.
    pub fn regions(&self) -> Vec<ServerRegion> {
        (0..VFIO_PCI_NUM_REGIONS)
            .map(|index| {
                let mut info = vfio_region_info {
                    argsz: std::mem::size_of::<vfio_region_info>() as u32,
                    index,
                    ..Default::default()
                };
                let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
                let mut sparse_areas = Vec::new();
                let mut mmap_fd = None;
                match index {
                    VFIO_PCI_CONFIG_REGION_INDEX => (info.size, info.flags) = (CONFIG_SIZE as u64, rw),
                    VFIO_PCI_BAR0_REGION_INDEX => (info.size, info.flags) = (BAR0_SIZE, rw),
                    VFIO_PCI_BAR2_REGION_INDEX => {
                        info.size = self.params.vram_size;
                        info.flags = rw | VFIO_REGION_INFO_FLAG_MMAP;
                        // The crate sends the fd only with a sparse-mmap
                        // capability: one area covering the whole BAR.
                        sparse_areas.push(SparseArea {
                            area: vfio_region_sparse_mmap_area {
                                offset: 0,
                                size: self.params.vram_size,
                            },
                        });
                        mmap_fd = Some(self.vram.raw_fd());
                    }
                    VFIO_PCI_BAR4_REGION_INDEX => (info.size, info.flags) = (BAR4_SIZE, rw),
                    _ => {}
                }
                ServerRegion {
                    region_info: info,
                    sparse_areas,
                    mmap_fd,
                }
            })
            .collect()
    }

    /// The vfio-user IRQ table: MSI-X only (no INTx, no MSI).
    pub fn irq_info(&self) -> Vec<IrqInfo> {
        (0..VFIO_PCI_NUM_IRQS)
            .map(|index| IrqInfo {
                index,
                flags: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                    VFIO_IRQ_INFO_EVENTFD
                } else {
                    0
                },
                count: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                    self.params.vectors
                } else {
                    0
                },
            })
            .collect()
    }

    // ---- registers -------------------------------------------------

    fn global_read(&self, off: usize) -> Option<u32> {
        let vram = self.params.vram_size;
        Some(match off {
            REG_ID => DEVICE_ID_MAGIC,
            REG_VERSION => DEVICE_VERSION,
            REG_NUM_CONTEXTS => self.params.contexts,
            REG_NUM_VECTORS => self.params.vectors,
            REG_VRAM_SIZE_LO => lo(vram),
            REG_VRAM_SIZE_HI => hi(vram),
            REG_CTX_STRIDE => CTX_STRIDE as u32,
            REG_SCRATCH => self.scratch,
            REG_CONTROL => self.control,
            REG_STATUS => {
                STATUS_READY
                    | if self.girq_status & GIRQ_FATAL != 0 {
                        STATUS_FATAL
                    } else {
                        0
                    }
            }
            REG_GLOBAL_IRQ_STATUS => self.girq_status,
            REG_GLOBAL_IRQ_MASK => self.girq_mask,
            REG_BAD_ACCESS_COUNT => self.bad_count,
            REG_BAD_ACCESS_OFFSET => self.bad_offset,
            REG_FEATURES => FEATURES_V1,
            o if (REG_FAULT_PENDING..REG_FAULT_PENDING + 4 * FAULT_PENDING_WORDS).contains(&o)
                && o.is_multiple_of(4) =>
            {
                let w = (o - REG_FAULT_PENDING) / 4;
                (0..32)
                    .filter(|b| self.ctxs.get(w * 32 + b).is_some_and(|c| c.fault.is_some()))
                    .fold(0, |m, b| m | 1 << b)
            }
            _ => return None,
        })
    }

    fn global_write(&mut self, off: usize, v: u32) -> bool {
        match off {
            REG_SCRATCH => self.scratch = v,
            REG_CONTROL => {
                if v & CTRL_RESET != 0 {
                    self.device_reset();
                } else {
                    self.control = v & CTRL_ENABLE;
                }
            }
            REG_GLOBAL_IRQ_STATUS => self.girq_status &= !v,
            REG_GLOBAL_IRQ_MASK => self.girq_mask = v,
            // Read-only registers ignore writes, as hardware does.
            _ => return self.global_read(off).is_some(),
        }
        true
    }

    fn ctx_read(&self, n: usize, r: usize) -> Option<u32> {
        let c = &self.ctxs[n];
        Some(match r {
            CTX_VRAM_BASE_LO => lo(c.vram_base),
            CTX_VRAM_BASE_HI => hi(c.vram_base),
            CTX_VRAM_SIZE_LO => lo(c.vram_size),
            CTX_VRAM_SIZE_HI => hi(c.vram_size),
            CTX_DMA_BASE_LO => lo(c.dma_base),
            CTX_DMA_BASE_HI => hi(c.dma_base),
            CTX_DMA_SIZE_LO => lo(c.dma_size),
            CTX_DMA_SIZE_HI => hi(c.dma_size),
            CTX_WEIGHT => c.weight.max(1),
            CTX_VECTOR => c.vector,
            CTX_CONTROL => c.control,
            CTX_XLATE_ROOT_LO => lo(c.xlate_root),
            CTX_XLATE_ROOT_HI => hi(c.xlate_root),
            CTX_XLATE_CTRL => c.xlate_ctrl,
            CTX_FAULT_ADDR_LO => lo(c.fault.map_or(0, |f| f.addr)),
            CTX_FAULT_ADDR_HI => hi(c.fault.map_or(0, |f| f.addr)),
            CTX_FAULT_LEN => c.fault.map_or(0, |f| f.len),
            CTX_FAULT_INFO => c.fault.map_or(0, |f| f.info),
            CTX_FAULT_RESPONSE | CTX_INV_CMD => 0,
            CTX_INV_ADDR_LO => lo(c.inv_addr),
            CTX_INV_ADDR_HI => hi(c.inv_addr),
            CTX_INV_SIZE_LO => lo(c.inv_size),
            CTX_INV_SIZE_HI => hi(c.inv_size),
            CTX_INV_COMPLETED => c.inv_completed,
            CTX_MIG_JOB_DONE => c.job_progress().0 as u32,
            CTX_MIG_JOB_HASH_LO => lo(c.job_progress().1),
            CTX_MIG_JOB_HASH_HI => hi(c.job_progress().1),
            CTX_MIG_HEAD => c.head,
            CTX_MIG_COMPLETED => c.completed,
            CTX_MIG_ERROR => c.error,
            CTX_MIG_ERROR_ADDR_LO => lo(c.error_addr),
            CTX_MIG_ERROR_ADDR_HI => hi(c.error_addr),
            CTX_MIG_IRQ_STATUS => c.irq_status,
            CTX_DIRTY_ADDR_LO => lo(c.dirty_addr),
            CTX_DIRTY_ADDR_HI => hi(c.dirty_addr),
            CTX_DIRTY_CMD => 0,
            CTX_DIRTY_SYNCED => c.dirty_synced,
            CTX_STATUS => {
                let mut s = 0;
                if self.ctx_enabled(n) {
                    s |= CTX_STATUS_ENABLED;
                }
                if c.inflight.is_some() || c.head != c.tail {
                    s |= CTX_STATUS_BUSY;
                }
                if c.halted {
                    s |= CTX_STATUS_HALTED;
                }
                if c.fault.is_some() {
                    s |= CTX_STATUS_FAULTED;
                }
                if c.frozen() {
                    s |= CTX_STATUS_FROZEN;
                }
                s
            }
            CTX_IRQ_STATUS => c.irq_status,
            CTX_IRQ_MASK => c.irq_mask,
            CTX_ERROR => c.error,
            CTX_ERROR_ADDR_LO => lo(c.error_addr),
            CTX_ERROR_ADDR_HI => hi(c.error_addr),
            CTX_RING_BASE_LO => lo(c.ring_base),
            CTX_RING_BASE_HI => hi(c.ring_base),
            CTX_RING_SIZE => c.ring_size,
            CTX_RING_HEAD => c.head,
            CTX_RING_TAIL => c.tail,
            CTX_DOORBELL => 0,
            CTX_COMPLETED => c.completed,
            _ => return None,
        })
    }

    fn ctx_write(&mut self, n: usize, r: usize, v: u32) -> bool {
        let c = &mut self.ctxs[n];
        match r {
            CTX_VRAM_BASE_LO => set_lo(&mut c.vram_base, v),
            CTX_VRAM_BASE_HI => set_hi(&mut c.vram_base, v),
            CTX_VRAM_SIZE_LO => set_lo(&mut c.vram_size, v),
            CTX_VRAM_SIZE_HI => set_hi(&mut c.vram_size, v),
            CTX_DMA_BASE_LO => set_lo(&mut c.dma_base, v),
            CTX_DMA_BASE_HI => set_hi(&mut c.dma_base, v),
            CTX_DMA_SIZE_LO => set_lo(&mut c.dma_size, v),
            CTX_DMA_SIZE_HI => set_hi(&mut c.dma_size, v),
            CTX_WEIGHT => c.weight = v.clamp(1, 255),
            CTX_VECTOR => c.vector = v,
            CTX_CONTROL => {
                if v & CTX_CTRL_RESET != 0 {
                    c.reset_user();
                } else {
                    let thawed = c.frozen() && v & CTX_CTRL_FREEZE == 0;
                    c.control = v & (CTX_CTRL_ENABLE | CTX_CTRL_FREEZE);
                    // Causes latched while frozen signal now.
                    if thawed && c.irq_status & !c.irq_mask != 0 {
                        let vec = c.vector;
                        self.signal(vec);
                    }
                    return true;
                }
            }
            // Migration state: only a frozen context takes it (the engine
            // does not run it, so nothing races the values).
            CTX_MIG_JOB_DONE..=CTX_MIG_IRQ_STATUS if !c.frozen() => return false,
            CTX_MIG_JOB_DONE => {
                let (_, h) = c.job_progress();
                c.resume = Some((u64::from(v), h));
            }
            CTX_MIG_JOB_HASH_LO | CTX_MIG_JOB_HASH_HI => {
                let (d, mut h) = c.job_progress();
                if r == CTX_MIG_JOB_HASH_LO {
                    set_lo(&mut h, v);
                } else {
                    set_hi(&mut h, v);
                }
                c.resume = Some((d, h));
            }
            CTX_MIG_HEAD => c.head = v,
            CTX_MIG_COMPLETED => c.completed = v,
            CTX_MIG_ERROR => {
                c.error = v;
                c.halted = v != ERR_NONE;
            }
            CTX_MIG_ERROR_ADDR_LO => set_lo(&mut c.error_addr, v),
            CTX_MIG_ERROR_ADDR_HI => set_hi(&mut c.error_addr, v),
            CTX_MIG_IRQ_STATUS => c.irq_status = v & (CTX_IRQ_DONE | CTX_IRQ_ERROR),
            CTX_DIRTY_ADDR_LO => set_lo(&mut c.dirty_addr, v),
            CTX_DIRTY_ADDR_HI => set_hi(&mut c.dirty_addr, v),
            CTX_DIRTY_CMD => return self.dirty_sync(n),
            // New tables or translation switched: nothing cached stays.
            CTX_XLATE_ROOT_LO => {
                set_lo(&mut c.xlate_root, v);
                c.iotlb.clear();
            }
            CTX_XLATE_ROOT_HI => {
                set_hi(&mut c.xlate_root, v);
                c.iotlb.clear();
            }
            CTX_XLATE_CTRL => {
                c.xlate_ctrl = v & XLATE_ENABLE;
                c.iotlb.clear();
            }
            CTX_FAULT_RESPONSE => return self.fault_response(n, v),
            CTX_INV_ADDR_LO => set_lo(&mut c.inv_addr, v),
            CTX_INV_ADDR_HI => set_hi(&mut c.inv_addr, v),
            CTX_INV_SIZE_LO => set_lo(&mut c.inv_size, v),
            CTX_INV_SIZE_HI => set_hi(&mut c.inv_size, v),
            // The engine runs chunks under the same lock as this write and
            // translates again at every page: once the write is done no
            // chunk uses a dropped translation.
            CTX_INV_CMD => {
                let (a, z) = (c.inv_addr, c.inv_size);
                c.invalidate(a, z);
                c.inv_completed = c.inv_completed.wrapping_add(1);
            }
            CTX_IRQ_STATUS => c.irq_status &= !v,
            CTX_IRQ_MASK => c.irq_mask = v & (CTX_IRQ_DONE | CTX_IRQ_ERROR),
            CTX_ERROR => {
                c.error = ERR_NONE;
                c.halted = false;
            }
            CTX_RING_BASE_LO => set_lo(&mut c.ring_base, v),
            CTX_RING_BASE_HI => set_hi(&mut c.ring_base, v),
            CTX_RING_SIZE => c.ring_size = v,
            CTX_RING_TAIL => c.tail = v,
            CTX_DOORBELL => {}
            _ => return self.ctx_read(n, r).is_some(),
        }
        true
    }

    /// The driver's answer to context `n`'s pending fault.
    fn fault_response(&mut self, n: usize, v: u32) -> bool {
        let Some(f) = self.ctxs[n].fault else {
            return true;
        };
        match v {
            FAULT_RESUME => self.ctxs[n].fault = None,
            FAULT_ABORT => {
                self.ctxs[n].fault = None;
                let slot = self.ctxs[n].inflight.map(|j| j.slot);
                self.fail(n, slot, ERR_DMA_FAULT, f.addr);
            }
            _ => {}
        }
        true
    }

    fn bar0_decode(&self, off: usize) -> Option<(Option<usize>, usize)> {
        if off < CTX_BASE {
            return Some((None, off));
        }
        let n = (off - CTX_BASE) / CTX_STRIDE;
        (n < self.ctxs.len()).then_some((Some(n), (off - CTX_BASE) % CTX_STRIDE))
    }

    /// A 32-bit BAR0 read; None for an offset the map does not name.
    pub fn bar0_read32(&self, off: usize) -> Option<u32> {
        match self.bar0_decode(off)? {
            (None, r) => self.global_read(r),
            (Some(n), r) => self.ctx_read(n, r),
        }
    }

    /// A 32-bit BAR0 write; false for an offset the map does not name.
    pub fn bar0_write32(&mut self, off: usize, v: u32) -> bool {
        match self.bar0_decode(off) {
            Some((None, r)) => self.global_write(r, v),
            Some((Some(n), r)) => self.ctx_write(n, r, v),
            None => false,
        }
    }

    fn refuse(&mut self, what: &str, region: u32, off: u64, len: usize) {
        self.bad_count = self.bad_count.wrapping_add(1);
        if region == VFIO_PCI_BAR0_REGION_INDEX {
            self.bad_offset = off.min(u64::from(u32::MAX)) as u32;
        }
        self.girq_status |= GIRQ_BAD_ACCESS;
        self.raise_global();
        warn!("refused {what}: region {region} offset {off:#x} size {len}");
    }

    /// Device reset: every register to its reset value and all work
    /// dropped. VRAM contents and the DMA mappings (QEMU's) are kept.
    pub fn device_reset(&mut self) {
        self.scratch = 0;
        self.control = 0;
        self.girq_status = 0;
        self.girq_mask = !0;
        self.bad_count = 0;
        self.bad_offset = 0;
        for (n, c) in self.ctxs.iter_mut().enumerate() {
            let (bytes, jobs) = (c.bytes_done, c.jobs_done);
            *c = Context::new(n as u32);
            c.bytes_done = bytes;
            c.jobs_done = jobs;
        }
        info!("device reset");
    }

    /// Fault: raise the device-level error interrupt.
    pub fn inject_error(&mut self) {
        self.girq_status |= GIRQ_FATAL;
        self.raise_global();
    }

    /// Device writes to VRAM [abs, abs + len) make those pages dirty.
    fn mark_dirty(&mut self, abs: u64, len: u64) {
        if len == 0 {
            return;
        }
        for p in abs / PAGE..=(abs + len - 1) / PAGE {
            if let Some(w) = self.dirty.get_mut((p / 64) as usize) {
                *w |= 1 << (p % 64);
            }
        }
    }

    /// `CTX_DIRTY_CMD`: the dirty bits of context `n`'s slice ORed into the
    /// driver's bitmap (bit i: page i of the slice) and cleared here. A
    /// bitmap outside the memory QEMU mapped: refused, nothing cleared.
    fn dirty_sync(&mut self, n: usize) -> bool {
        let (base, size) = self.ctxs[n].slice(self.params.vram_size);
        let (first, pages) = (base / PAGE, size / PAGE);
        let words = pages.div_ceil(64) as usize;
        let at = self.ctxs[n].dirty_addr;
        if words > 0 {
            let Some(buf) = self.dma.slice_mut(at, words * 8) else {
                return false;
            };
            for i in 0..pages {
                let p = first + i;
                let (w, b) = ((p / 64) as usize, p % 64);
                if self.dirty[w] & (1 << b) != 0 {
                    self.dirty[w] &= !(1 << b);
                    buf[(i / 8) as usize] |= 1 << (i % 8);
                }
            }
        }
        let c = &mut self.ctxs[n];
        c.dirty_synced = c.dirty_synced.wrapping_add(1);
        true
    }

    // ---- interrupts --------------------------------------------------

    fn signal(&mut self, v: u32) {
        if self.faults.removed() {
            return;
        }
        if let Some(Some(fd)) = self.irqs.get_mut(v as usize) {
            self.stats.irqs += 1;
            if let Err(e) = fd.write_all(&1u64.to_le_bytes()) {
                warn!("MSI-X vector {v}: eventfd write failed: {e}");
            }
        }
    }

    fn raise_global(&mut self) {
        if self.girq_status & !self.girq_mask != 0 {
            self.signal(GLOBAL_VECTOR);
        }
    }

    fn raise_ctx(&mut self, n: usize, cause: u32) {
        let c = &mut self.ctxs[n];
        c.irq_status |= cause;
        if cause & !c.irq_mask != 0 && !c.frozen() {
            let v = c.vector;
            self.signal(v);
        }
    }

    // ---- engine --------------------------------------------------------

    fn ctx_enabled(&self, n: usize) -> bool {
        self.control & CTRL_ENABLE != 0 && self.ctxs[n].control & CTX_CTRL_ENABLE != 0
    }

    fn runnable(&self, n: usize) -> bool {
        let c = &self.ctxs[n];
        self.ctx_enabled(n)
            && !c.frozen()
            && !c.halted
            && c.fault.is_none()
            && (c.inflight.is_some() || c.head != c.tail)
    }

    /// Whether any context has work the engine could do now.
    pub fn has_work(&self) -> bool {
        (0..self.ctxs.len()).any(|n| self.runnable(n))
    }

    /// Runs one chunk of one context's work, chosen by weighted fair
    /// queueing (the runnable context with the least virtual time, which
    /// grows by bytes / weight). Returns false if nothing was runnable.
    pub fn step(&mut self) -> bool {
        if self.faults.engine_paused() {
            return false;
        }
        let pick = (0..self.ctxs.len())
            .filter(|&n| self.runnable(n))
            .min_by_key(|&n| (self.ctxs[n].vtime, n));
        let Some(n) = pick else {
            return false;
        };
        let cost = match self.ctxs[n].inflight {
            Some(_) => self.run_chunk(n),
            None => self.start_job(n),
        };
        let c = &mut self.ctxs[n];
        c.vtime = c
            .vtime
            .saturating_add((cost + DESC_SIZE as u64) * 256 / u64::from(c.weight.max(1)));
        // A context that was idle does not bank credit: it starts from the
        // least virtual time among the busy ones.
        let floor = (0..self.ctxs.len())
            .filter(|&m| self.runnable(m))
            .map(|m| self.ctxs[m].vtime)
            .min();
        if let Some(floor) = floor {
            for m in 0..self.ctxs.len() {
                if !self.runnable(m) && self.ctxs[m].vtime < floor {
                    self.ctxs[m].vtime = floor;
                }
            }
        }
        true
    }

    /// Fails the job at the head: status write-back, CTX_ERROR, halt, IRQ.
    fn fail(&mut self, n: usize, slot: Option<u64>, err: u32, addr: u64) {
        let total = self.params.vram_size;
        let (base, size) = self.ctxs[n].slice(total);
        if let Some(slot) = slot.filter(|&s| in_bounds(s, DESC_SIZE as u64, size)) {
            let at = (base + slot) as usize + DESC_STATUS;
            self.vram.bytes_mut()[at..at + 4].copy_from_slice(&(DESC_STATUS_ERROR | err).to_le_bytes());
            self.mark_dirty(at as u64, 4);
        }
        let c = &mut self.ctxs[n];
        c.inflight = None;
        c.head = c.head.wrapping_add(1);
        c.jobs_done += 1;
        c.error = err;
        c.error_addr = addr;
        c.halted = true;
        info!("context {n}: job failed with error {err} at {addr:#x}");
        self.raise_ctx(n, CTX_IRQ_ERROR);
    }

    fn start_job(&mut self, n: usize) -> u64 {
        let total = self.params.vram_size;
        let c = &self.ctxs[n];
        let (base, size) = c.slice(total);
        let ring_bytes = u64::from(c.ring_size) * DESC_SIZE as u64;
        let ring_ok = c.ring_size.is_power_of_two()
            && c.ring_size <= RING_MAX_SLOTS
            && c.ring_base.is_multiple_of(DESC_SIZE as u64)
            && in_bounds(c.ring_base, ring_bytes, size);
        if !ring_ok {
            let addr = c.ring_base;
            self.fail(n, None, ERR_BAD_RING, addr);
            return 0;
        }
        let slot = c.ring_base + u64::from(c.head % c.ring_size) * DESC_SIZE as u64;
        let at = (base + slot) as usize;
        let desc = Desc::decode(&self.vram.bytes()[at..at + DESC_SIZE]);
        if let Err((err, addr)) = self.validate(n, &desc) {
            self.fail(n, Some(slot), err, addr);
            return 0;
        }
        // A job migrated in the middle goes on where it stopped (a resume
        // point past its end: from the start).
        let (done, hash) = match self.ctxs[n].resume.take() {
            Some((d, h)) if d < u64::from(desc.len) => (d, h),
            _ => (0, FNV64_OFFSET),
        };
        self.ctxs[n].inflight = Some(InFlight {
            desc,
            slot,
            done,
            hash,
            probed: 0,
        });
        self.run_chunk(n)
    }

    /// Checks a descriptor completely before any of it is performed.
    fn validate(&self, n: usize, d: &Desc) -> Result<(), (u32, u64)> {
        let c = &self.ctxs[n];
        let (_, size) = c.slice(self.params.vram_size);
        let len = u64::from(d.len);
        if d.flags & !DESC_FLAG_IRQ != 0 || d.opcode > OP_DMA_COPY {
            return Err((ERR_BAD_DESC, 0));
        }
        if d.opcode == OP_NOP {
            return Ok(());
        }
        if d.len == 0 || d.len > JOB_MAX_LEN || (d.opcode == OP_FILL && !d.len.is_multiple_of(4)) {
            return Err((ERR_BAD_LEN, len));
        }
        let vram_ok = |a: u64| {
            if in_bounds(a, len, size) {
                Ok(())
            } else {
                Err((ERR_VRAM_BOUNDS, a))
            }
        };
        let dma_ok = |a: u64| {
            let inside = a >= c.dma_base && in_bounds(a - c.dma_base, len, c.dma_size);
            if inside {
                Ok(())
            } else {
                Err((ERR_DMA_BOUNDS, a))
            }
        };
        match d.opcode {
            OP_FILL => vram_ok(d.dst),
            OP_COPY => vram_ok(d.src).and(vram_ok(d.dst)),
            OP_CHECKSUM => vram_ok(d.src),
            OP_DMA_TO_HOST => vram_ok(d.src).and(dma_ok(d.dst)),
            OP_DMA_FROM_HOST => dma_ok(d.src).and(vram_ok(d.dst)),
            _ => dma_ok(d.src).and(dma_ok(d.dst)),
        }
    }

    /// Performs the next chunk of the in-flight job; returns bytes done.
    fn run_chunk(&mut self, n: usize) -> u64 {
        let total = self.params.vram_size;
        let (base, _) = self.ctxs[n].slice(total);
        let Some(mut job) = self.ctxs[n].inflight else {
            return 0;
        };
        let d = job.desc;
        let len = u64::from(d.len);
        let step = if d.opcode == OP_NOP {
            0
        } else {
            (len - job.done).min(CHUNK)
        };
        // Forward-overlapping copies go from the end, like memmove.
        let backwards = d.opcode == OP_COPY && d.src < d.dst && d.src + len > d.dst;
        let rel = if backwards { len - job.done - step } else { job.done };
        let (s, t, k) = (
            (base + d.src + rel) as usize,
            (base + d.dst + rel) as usize,
            step as usize,
        );
        if d.opcode >= OP_DMA_TO_HOST && self.ctxs[n].xlate_on() && job.probed < dma_span(&d) {
            // The whole job translates before any of it moves: a job that
            // cannot complete touches nothing.
            if let Err((addr, info)) = self.probe(n, &mut job) {
                self.ctxs[n].inflight = Some(job);
                let left = dma_left(&d, addr);
                self.raise_fault(n, addr, left, info);
                return 0;
            }
        }
        match d.opcode {
            OP_FILL => {
                let pat = d.value.to_le_bytes();
                let dst = &mut self.vram.bytes_mut()[t..t + k];
                if pat.iter().all(|&b| b == pat[0]) {
                    // One byte repeated (the driver's scrub fills zeros):
                    // memset speed, which multi-GiB slices need.
                    dst.fill(pat[0]);
                } else {
                    for (i, b) in dst.iter_mut().enumerate() {
                        *b = pat[(rel as usize + i) % 4];
                    }
                }
                self.mark_dirty(t as u64, step);
            }
            OP_COPY => {
                self.vram.bytes_mut().copy_within(s..s + k, t);
                self.mark_dirty(t as u64, step);
            }
            OP_CHECKSUM => job.hash = fnv1a64(job.hash, &self.vram.bytes()[s..s + k]),
            OP_DMA_TO_HOST | OP_DMA_FROM_HOST | OP_DMA_COPY => {
                let (done, stop) = self.dma_move(n, &d, base, rel, step);
                match stop {
                    None => {}
                    // Unmapped by QEMU (or never mapped): what was copied
                    // stays copied; the job fails here.
                    Some(Stop::Bounds(addr)) => {
                        self.fail(n, Some(job.slot), ERR_DMA_BOUNDS, addr);
                        return done;
                    }
                    // A translation went away while the job ran: it waits
                    // at that byte for the driver.
                    Some(Stop::Fault { addr, info }) => {
                        job.done += done;
                        self.ctxs[n].inflight = Some(job);
                        let left = dma_left(&d, addr);
                        self.raise_fault(n, addr, left, info);
                        return done;
                    }
                }
            }
            _ => {}
        }
        job.done += step;
        let c = &mut self.ctxs[n];
        c.bytes_done += step;
        if job.done < len {
            c.inflight = Some(job);
            return step;
        }
        // Completed: status and result back into the descriptor.
        let at = (base + job.slot) as usize;
        let hash = if d.opcode == OP_CHECKSUM { job.hash } else { 0 };
        let vram = self.vram.bytes_mut();
        vram[at + DESC_RESULT..at + DESC_RESULT + 8].copy_from_slice(&hash.to_le_bytes());
        vram[at + DESC_STATUS..at + DESC_STATUS + 4].copy_from_slice(&DESC_STATUS_DONE.to_le_bytes());
        self.mark_dirty(at as u64, DESC_SIZE as u64);
        let c = &mut self.ctxs[n];
        c.inflight = None;
        c.head = c.head.wrapping_add(1);
        c.completed = c.completed.wrapping_add(1);
        c.jobs_done += 1;
        if d.flags & DESC_FLAG_IRQ != 0 {
            self.raise_ctx(n, CTX_IRQ_DONE);
        }
        step
    }

    /// Translates `va` for context `n` and a read or write access: the bus
    /// address, or the `FAULT_*` bits of why not. Without translation the
    /// address is the bus address. Leaves found by a walk are cached when
    /// `cache` says so.
    fn xlate(&mut self, n: usize, va: u64, write: bool, cache: bool) -> Result<u64, u32> {
        let c = &self.ctxs[n];
        if !c.xlate_on() {
            return Ok(va);
        }
        let need = if write { PTE_WRITE } else { PTE_READ };
        let fault = if write {
            FAULT_PENDING | FAULT_WRITE
        } else {
            FAULT_PENDING
        };
        let page = va & !(XLATE_PAGE_SIZE - 1);
        if let Some(t) = c.iotlb.iter().find(|t| t.va == page && t.perm & need != 0) {
            return Ok(t.pa | (va - page));
        }
        if va >> XLATE_VA_BITS != 0 {
            return Err(fault);
        }
        self.stats.walks += 1;
        let mut table = c.xlate_root & PTE_ADDR_MASK;
        for level in 0..XLATE_LEVELS {
            let shift = 12 + 9 * (XLATE_LEVELS - 1 - level);
            let idx = (va >> shift) & (XLATE_TABLE_ENTRIES - 1);
            let Some(b) = self.dma.slice_mut(table + idx * 8, 8) else {
                return Err(fault | FAULT_TABLE);
            };
            let mut e = [0u8; 8];
            e.copy_from_slice(b);
            let e = u64::from_le_bytes(e);
            if level + 1 < XLATE_LEVELS {
                if e & PTE_READ == 0 {
                    return Err(fault);
                }
                table = e & PTE_ADDR_MASK;
                continue;
            }
            if e & (PTE_READ | PTE_WRITE) == 0 {
                return Err(fault);
            }
            if e & need == 0 {
                return Err(fault | FAULT_PERM);
            }
            let pa = e & PTE_ADDR_MASK;
            let c = &mut self.ctxs[n];
            if cache {
                if c.iotlb.len() == XLATE_IOTLB_ENTRIES as usize {
                    c.iotlb.remove(0);
                }
                c.iotlb.push(Tlb {
                    va: page,
                    pa,
                    perm: e & (PTE_READ | PTE_WRITE),
                });
            }
            return Ok(pa | (va - page));
        }
        Err(fault)
    }

    /// Checks that the rest of `job`'s device-virtual ranges translate,
    /// page by page, from `job.probed` on; stops at the first that does
    /// not: (address, `FAULT_*`).
    fn probe(&mut self, n: usize, job: &mut InFlight) -> Result<(), (u64, u32)> {
        let d = job.desc;
        let len = u64::from(d.len);
        while job.probed < dma_span(&d) {
            let reads = d.opcode != OP_DMA_TO_HOST;
            let (va, write, end) = if reads && job.probed < len {
                (d.src + job.probed, false, len)
            } else {
                let at = job.probed - if reads && d.opcode == OP_DMA_COPY { len } else { 0 };
                (d.dst + at, true, dma_span(&d))
            };
            self.xlate(n, va, write, false).map_err(|info| (va, info))?;
            job.probed = (job.probed + page_left(va)).min(end);
        }
        Ok(())
    }

    /// Moves `k` bytes of DMA job `d` from job offset `rel` on, page by
    /// page when translating: bytes moved, and why it stopped early.
    fn dma_move(&mut self, n: usize, d: &Desc, base: u64, rel: u64, k: u64) -> (u64, Option<Stop>) {
        let xlate = self.ctxs[n].xlate_on();
        let mut pos = 0;
        while pos < k {
            let (sv, dv) = (d.src + rel + pos, d.dst + rel + pos);
            let mut piece = k - pos;
            if xlate {
                if d.opcode != OP_DMA_TO_HOST {
                    piece = piece.min(page_left(sv));
                }
                if d.opcode != OP_DMA_FROM_HOST {
                    piece = piece.min(page_left(dv));
                }
            }
            let p = piece as usize;
            let src = match d.opcode {
                OP_DMA_TO_HOST => None,
                _ => match self.xlate(n, sv, false, true) {
                    Ok(b) => Some(b),
                    Err(info) => return (pos, Some(Stop::Fault { addr: sv, info })),
                },
            };
            let dst = match d.opcode {
                OP_DMA_FROM_HOST => None,
                _ => match self.xlate(n, dv, true, true) {
                    Ok(b) => Some(b),
                    Err(info) => return (pos, Some(Stop::Fault { addr: dv, info })),
                },
            };
            let ok = match (src, dst) {
                (None, Some(db)) => self.dma.slice_mut(db, p).map(|h| {
                    let v = (base + sv) as usize;
                    h.copy_from_slice(&self.vram.bytes()[v..v + p]);
                }),
                (Some(sb), None) => self.dma.slice_mut(sb, p).map(|h| {
                    let v = (base + dv) as usize;
                    self.vram.bytes_mut()[v..v + p].copy_from_slice(h);
                }),
                (Some(sb), Some(db)) => match self.dma.slice_mut(sb, p) {
                    Some(h) => {
                        self.bounce[..p].copy_from_slice(h);
                        self.dma.slice_mut(db, p).map(|h| h.copy_from_slice(&self.bounce[..p]))
                    }
                    None => return (pos, Some(Stop::Bounds(sv))),
                },
                (None, None) => Some(()),
            };
            if ok.is_none() {
                let addr = if d.opcode == OP_DMA_FROM_HOST { sv } else { dv };
                return (pos, Some(Stop::Bounds(addr)));
            }
            if d.opcode == OP_DMA_FROM_HOST {
                self.mark_dirty(base + dv, piece);
            }
            pos += piece;
        }
        (pos, None)
    }

    /// Context `n` waits at `addr` for the driver (`GIRQ_XLATE_FAULT`).
    fn raise_fault(&mut self, n: usize, addr: u64, len: u32, info: u32) {
        self.ctxs[n].fault = Some(Fault { addr, len, info });
        self.stats.xlate_faults += 1;
        self.girq_status |= GIRQ_XLATE_FAULT;
        self.raise_global();
        info!("context {n}: translation fault at {addr:#x} (info {info:#x})");
    }

    // ---- vfio-user callbacks (called with the device lock held) --------

    fn region_read(&mut self, region: u32, off: u64, data: &mut [u8]) {
        self.stats.accesses += 1;
        let ok = match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.read(off, data),
            VFIO_PCI_BAR0_REGION_INDEX => {
                let v = match (data.len(), usize::try_from(off)) {
                    (4, Ok(o)) if o.is_multiple_of(4) => self.bar0_read32(o),
                    _ => None,
                };
                match v {
                    Some(v) => data.copy_from_slice(&v.to_le_bytes()),
                    None => data.fill(0xff),
                }
                v.is_some()
            }
            VFIO_PCI_BAR2_REGION_INDEX if in_bounds(off, data.len() as u64, self.params.vram_size) => {
                let o = off as usize;
                data.copy_from_slice(&self.vram.bytes()[o..o + data.len()]);
                true
            }
            _ => {
                data.fill(0xff);
                false
            }
        };
        if !ok {
            self.refuse("read", region, off, data.len());
        }
    }

    fn region_write(&mut self, region: u32, off: u64, data: &[u8]) {
        self.stats.accesses += 1;
        let ok = match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.write(off, data),
            VFIO_PCI_BAR0_REGION_INDEX => match (<[u8; 4]>::try_from(data), usize::try_from(off)) {
                (Ok(b), Ok(o)) if o.is_multiple_of(4) => self.bar0_write32(o, u32::from_le_bytes(b)),
                _ => false,
            },
            VFIO_PCI_BAR2_REGION_INDEX if in_bounds(off, data.len() as u64, self.params.vram_size) => {
                let o = off as usize;
                self.vram.bytes_mut()[o..o + data.len()].copy_from_slice(data);
                self.mark_dirty(off, data.len() as u64);
                true
            }
            _ => false,
        };
        if !ok {
            self.refuse("write", region, off, data.len());
        }
    }

    fn set_irqs(&mut self, index: u32, flags: u32, start: u32, count: u32, fds: Vec<File>) -> std::io::Result<()> {
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            warn!("set_irqs: index {index} has no interrupts");
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let Some(end) = start.checked_add(count).filter(|&e| e <= self.params.vectors) else {
            warn!("set_irqs: vectors {start}+{count} beyond {}", self.params.vectors);
            return Err(std::io::ErrorKind::InvalidInput.into());
        };
        let trigger = flags & VFIO_IRQ_SET_ACTION_TRIGGER != 0;
        if trigger && flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 {
            // An fd of -1 cannot travel over the socket: a client (QEMU)
            // sends a run of them as the vectors with no fd at all, which
            // de-assigns them, as -1 does in VFIO's SET_IRQS.
            if fds.is_empty() {
                (start..end).for_each(|v| self.irqs[v as usize] = None);
            } else if fds.len() != count as usize {
                warn!("set_irqs: {count} vectors but {} fds", fds.len());
                return Err(std::io::ErrorKind::InvalidInput.into());
            } else {
                for (v, fd) in (start..end).zip(fds) {
                    self.irqs[v as usize] = Some(fd);
                }
            }
        } else if trigger && flags & VFIO_IRQ_SET_DATA_NONE != 0 {
            if count == 0 {
                self.irqs.iter_mut().for_each(|s| *s = None);
            } else {
                (start..end).for_each(|v| self.signal(v));
            }
        }
        info!(
            "set_irqs MSI-X {start}+{count} flags {flags:#x}: {} wired",
            self.irqs.iter().flatten().count()
        );
        Ok(())
    }
}

/// The device as the threads share it.
pub struct Shared {
    dev: Mutex<Device>,
    work: Condvar,
    /// Fault state, read without the device lock.
    pub faults: Arc<Faults>,
    stop: AtomicBool,
    /// Accessors waiting for the device lock: the engine lets them in at
    /// its next chunk boundary (a mutex alone would let the engine take
    /// it back at once and starve register accesses for a whole queue,
    /// which hardware answers while it works).
    waiting: AtomicUsize,
}

impl Shared {
    /// Wraps a device.
    pub fn new(dev: Device) -> Arc<Shared> {
        let faults = dev.faults.clone();
        Arc::new(Shared {
            dev: Mutex::new(dev),
            work: Condvar::new(),
            faults,
            stop: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
        })
    }

    /// The device, locked for an access (a poisoned lock is taken over:
    /// the device state is plain data and stays consistent between
    /// register accesses).
    pub fn lock(&self) -> MutexGuard<'_, Device> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let g = self.lock_engine();
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        g
    }

    fn lock_engine(&self) -> MutexGuard<'_, Device> {
        self.dev.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the engine (work may have arrived).
    pub fn kick(&self) {
        self.work.notify_one();
    }

    /// The engine loop; returns when `stop` is called.
    pub fn run_engine(&self) {
        let mut dev = self.lock_engine();
        while !self.stop.load(Ordering::Relaxed) {
            if self.faults.engine_paused() || !dev.has_work() {
                dev = self
                    .work
                    .wait_timeout(dev, Duration::from_millis(20))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            dev.step();
            // Let register accesses and resets in between chunks: every
            // accessor already waiting goes first (bounded, so that a
            // stream of accesses cannot stop the engine). With nobody
            // waiting the engine keeps the lock and the CPU: a yield per
            // chunk on a busy host costs a scheduler slice each, which
            // made a 256 MiB fill take most of a second.
            if self.waiting.load(Ordering::Acquire) == 0 {
                continue;
            }
            drop(dev);
            std::thread::yield_now();
            for _ in 0..1000 {
                if self.waiting.load(Ordering::Acquire) == 0 {
                    break;
                }
                std::thread::yield_now();
            }
            dev = self.lock_engine();
        }
    }

    /// Stops the engine loop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.kick();
    }
}

/// The vfio-user backend: every callback goes through the fault state,
/// then the device lock.
pub struct Backend(pub Arc<Shared>);

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, off: u64, data: &mut [u8]) -> std::io::Result<()> {
        self.0.faults.delay_access();
        if self.0.faults.removed() {
            data.fill(0xff);
            return Ok(());
        }
        self.0.lock().region_read(region, off, data);
        Ok(())
    }

    fn region_write(&mut self, region: u32, off: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.faults.delay_access();
        if self.0.faults.removed() {
            return Ok(());
        }
        self.0.lock().region_write(region, off, data);
        self.0.kick();
        Ok(())
    }

    fn dma_map(
        &mut self,
        _flags: vfio_user::DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        info!(
            "dma_map iova {address:#x} size {size:#x} offset {offset:#x} fd {}",
            fd.is_some()
        );
        match fd {
            Some(fd) => self.0.lock().dma.map(address, size, &fd, offset).inspect_err(|e| {
                warn!("dma_map iova {address:#x} size {size:#x}: cannot map: {e}");
            }),
            // Without an fd the memory can only be reached over the socket,
            // which the crate does not offer: DMA there fails cleanly.
            None => Ok(()),
        }
    }

    fn dma_unmap(&mut self, _flags: vfio_user::DmaUnmapFlags, address: u64, size: u64) -> std::io::Result<()> {
        let n = self.0.lock().dma.unmap(address, size);
        info!("dma_unmap iova {address:#x} size {size:#x}: {n} mapping(s) dropped");
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        info!("vfio-user DEVICE_RESET");
        self.0.lock().device_reset();
        Ok(())
    }

    fn set_irqs(&mut self, index: u32, flags: u32, start: u32, count: u32, fds: Vec<File>) -> std::io::Result<()> {
        self.0.lock().set_irqs(index, flags, start, count, fds)
    }
}
