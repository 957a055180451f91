// SPDX-License-Identifier: GPL-2.0
//! An instance's DMA: the translation tables the device walks for the
//! instance's contexts (docs/device.md, "Address translation"), the tenant
//! pages pinned behind their entries, and the answers to translation
//! faults. The tenant maps its memory into the IOAS its VFIO device is
//! attached to; the device reaches a page only after a fault made the
//! driver pin it (`vfio_pin_pages`) and map it for the parent (DMA API),
//! and loses it when the tenant unmaps it (`dma_unmap`), closes or resets.
//!
//! Locking: `Xlate` lives in the instance's `xlate` mutex, taken by the
//! fault work, the VFIO core's `dma_unmap`, and the reset and close paths.
//! It is never held across pinning or unpinning: those take the IOMMU
//! back end's locks (type1's `iommu->lock`; type1 calls `dma_unmap` under
//! its `device_list_lock`) and the tenant mm's `mmap_lock`. A fault
//! answer marks the state `resolving`, pins with the mutex released, then
//! enters what it pinned; everything else that changes entries (unmap,
//! clear) first waits on the `idle` condition until no answer is in
//! flight, so a page pinned for an answer is in the tables (and found by
//! an unmap) before any unmap looks. The wait in `dma_unmap` holds type1's
//! `device_list_lock` while the answer's pin needs `iommu->lock`: nothing
//! may hold `iommu->lock` while it waits for `device_list_lock`, which
//! Linux 7.3's type1 does and config/kernel/patches/0003 fixes
//! (docs/design.md). `clear` bumps a generation: a fault read before a
//! reset or close is not answered with pins for the user who left.
//! Lock order: `inst_lock` (fault work) → `xlate`; `xlate` is held only
//! around table updates and MMIO, invalidations included (a context's
//! range registers are shared, so two invalidations must not interleave).
//!
//! Ordering against the device: an entry is written before the context is
//! told to resume (the MMIO write orders it); an entry is cleared, then
//! every context of the instance invalidates the range and confirms, and
//! only then is the page unpinned. A job racing an unmap either used the
//! page before the invalidation completed or faults after it.

use kernel::{
    pci,
    prelude::*,
    sync::{aref::ARef, atomic::Relaxed, CondVar, Mutex},
};

use crate::parent::ParentState;
use crate::regs;
use crate::shim::{self, ShimInstance};
use crate::stats;

/// Pages one fault answer pins at most (the rest of the transfer faults
/// again): bounds the time the context and the mutex wait.
const FAULT_BATCH: u64 = 64;
/// Leaves an unmap clears before it invalidates and unpins them.
const UNMAP_BATCH: usize = 64;
/// Reads of `CTX_INV_COMPLETED` an invalidation waits for its count (each
/// a trapped register access: a second or more).
const INV_POLLS: u32 = 20_000;
/// Device-virtual addresses the instance may use: the device's.
pub(crate) const VA_LIMIT: u64 = 1 << regs::XLATE_VA_BITS;
const PAGE: u64 = regs::XLATE_PAGE_SIZE;

/// One 4 KiB page of coherent DMA memory: CPU and bus addresses.
pub(crate) struct Page {
    pub(crate) cpu: *mut u64,
    pub(crate) dma: u64,
}

impl Page {
    /// A zeroed page mapped for `pdev`.
    pub(crate) fn new(pdev: &pci::Device) -> Result<Page> {
        let (cpu, dma) = shim::coherent_alloc(pdev, PAGE)?;
        stats::DRIVER_BYTES.add(PAGE, Relaxed);
        Ok(Page { cpu, dma })
    }

    fn free(self, pdev: &pci::Device) {
        shim::coherent_free(pdev, PAGE, self.cpu, self.dma);
        stats::DRIVER_BYTES.fetch_sub(PAGE, Relaxed);
    }
}

/// Pages of coherent memory of the parent, freed on drop: the
/// self-test's DMA buffers.
pub(crate) struct Buffer {
    pdev: ARef<pci::Device>,
    pages: KVec<Page>,
}

// SAFETY: the pages are coherent DMA memory owned by this object.
unsafe impl Send for Buffer {}

impl Buffer {
    /// `n` zeroed pages for `pdev`.
    pub(crate) fn new(pdev: &pci::Device, n: usize) -> Result<Buffer> {
        let mut b = Buffer {
            pdev: pdev.into(),
            pages: KVec::with_capacity(n, GFP_KERNEL)?,
        };
        for _ in 0..n {
            let p = Page::new(pdev)?;
            // Within the capacity reserved above: cannot fail.
            b.pages.push(p, GFP_KERNEL)?;
        }
        Ok(b)
    }

    pub(crate) fn pages(&self) -> &[Page] {
        &self.pages
    }

    /// Word `i` of page `p`.
    pub(crate) fn word(&self, p: usize, i: usize) -> u64 {
        match self.pages.get(p) {
            // SAFETY: a live page of `PAGE / 8` words, `i` below that
            // (`% 512`); the device may write it, which volatile access
            // tolerates.
            Some(pg) => unsafe { pg.cpu.add(i % 512).read_volatile() },
            None => 0,
        }
    }

    pub(crate) fn set_word(&self, p: usize, i: usize, v: u64) {
        if let Some(pg) = self.pages.get(p) {
            // SAFETY: as in `word`.
            unsafe { pg.cpu.add(i % 512).write_volatile(v) };
        }
    }

    /// Gives the pages up without freeing them: for memory a device that
    /// did not confirm an invalidation may still reach.
    pub(crate) fn leak(mut self) {
        self.pages.clear();
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        for p in self.pages.drain_all() {
            p.free(&self.pdev);
        }
    }
}

/// A translation table tree the device walks (docs/device.md, "Address
/// translation"): the top-level table and the lower-level ones, in
/// coherent memory of the parent. Callers serialise access.
pub(crate) struct Tables {
    pdev: ARef<pci::Device>,
    /// Allocated with the tree (an instance's: before its contexts are
    /// first programmed), freed by `free` or drop, so a context always
    /// walks a valid table.
    root: Option<Page>,
    /// Lower-level tables, made on demand.
    tables: KVec<Page>,
}

// SAFETY: the table pages are coherent DMA memory owned by this object;
// its owner serialises every access (a mutex, or one thread).
unsafe impl Send for Tables {}

/// Where a walk stopped.
enum Walk {
    /// The leaf entry's table and index.
    Leaf(usize, u64),
    /// No table at this level: nothing below `span` bytes around it.
    Missing(u64),
}

impl Tables {
    /// An empty tree for `pdev`'s contexts.
    pub(crate) fn new(pdev: &pci::Device) -> Result<Tables> {
        Ok(Tables {
            pdev: pdev.into(),
            root: Some(Page::new(pdev)?),
            tables: KVec::new(),
        })
    }

    /// A tree without its top-level table yet (`root_alloc` makes it).
    fn unallocated(pdev: &pci::Device) -> Tables {
        Tables {
            pdev: pdev.into(),
            root: None,
            tables: KVec::new(),
        }
    }

    /// Bus address of the top-level table (0 once freed).
    pub(crate) fn root(&self) -> u64 {
        self.root.as_ref().map_or(0, |t| t.dma)
    }

    fn table(&self, i: usize) -> Option<&Page> {
        if i == usize::MAX {
            self.root.as_ref()
        } else {
            self.tables.get(i)
        }
    }

    fn get(&self, t: usize, idx: u64) -> u64 {
        match self.table(t) {
            // SAFETY: a live table page of `XLATE_TABLE_ENTRIES` u64s and
            // `idx` below that; the device reads it concurrently, which
            // volatile access tolerates.
            Some(t) => u64::from_le(unsafe { t.cpu.add(idx as usize).read_volatile() }),
            None => 0,
        }
    }

    fn set(&self, t: usize, idx: u64, v: u64) {
        if let Some(t) = self.table(t) {
            // SAFETY: as in `get`.
            unsafe { t.cpu.add(idx as usize).write_volatile(v.to_le()) };
        }
    }

    /// Index (in `tables`) of the table at bus address `dma`.
    fn find(&self, dma: u64) -> Option<usize> {
        self.tables.iter().position(|t| t.dma == dma)
    }

    /// Walks to `va`'s leaf entry, making the tables on the way if
    /// `make`.
    fn walk(&mut self, va: u64, make: bool) -> Result<Walk> {
        let mut t = usize::MAX;
        for level in 0..regs::XLATE_LEVELS - 1 {
            let shift = 12 + 9 * (regs::XLATE_LEVELS - 1 - level);
            let idx = (va >> shift) & (regs::XLATE_TABLE_ENTRIES - 1);
            let e = self.get(t, idx);
            if e & regs::PTE_READ == 0 {
                if !make {
                    return Ok(Walk::Missing(1 << shift));
                }
                // Reserve first: a page that cannot be kept is not made.
                self.tables.reserve(1, GFP_KERNEL)?;
                let page = Page::new(&self.pdev)?;
                let dma = page.dma;
                self.tables.push(page, GFP_KERNEL)?;
                self.set(t, idx, dma | regs::PTE_READ);
            }
            t = self
                .find(self.get(t, idx) & regs::PTE_ADDR_MASK)
                .ok_or(EINVAL)?;
        }
        Ok(Walk::Leaf(t, (va >> 12) & (regs::XLATE_TABLE_ENTRIES - 1)))
    }

    /// Enters the page at bus address `dma` at device-virtual `va`
    /// (readable; writable if `write`), making tables as needed.
    pub(crate) fn map(&mut self, va: u64, dma: u64, write: bool) -> Result {
        let Walk::Leaf(t, idx) = self.walk(va, true)? else {
            return Err(EINVAL);
        };
        let w = if write { regs::PTE_WRITE } else { 0 };
        self.set(t, idx, (dma & regs::PTE_ADDR_MASK) | regs::PTE_READ | w);
        Ok(())
    }

    /// Frees the lower-level tables.
    fn free_lower(&mut self) {
        for t in self.tables.drain_all() {
            t.free(&self.pdev);
        }
    }

    /// Frees every table, the top-level one too.
    pub(crate) fn free(&mut self) {
        self.free_lower();
        if let Some(t) = self.root.take() {
            t.free(&self.pdev);
        }
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        self.free();
    }
}

/// An instance's translation state.
pub(crate) struct Xlate {
    si: ShimInstance,
    t: Tables,
    pinned: u64,
    /// A fault answer is pinning with the mutex released.
    resolving: bool,
    /// Bumped by every `clear` (reset, close): a fault read before it is
    /// stale and is not answered with pins.
    gen: u64,
    /// DMA logging (`VFIO_DEVICE_FEATURE_DMA_LOGGING_*`) is on: writable
    /// pages that lose their translation are remembered in `gone` until
    /// the next report (the device may have written them).
    logging: bool,
    gone: KVec<u64>,
    /// `gone` could not grow: the next report says the whole range.
    gone_lost: bool,
}

/// A present leaf on its way out: IOVA, bus address, writable.
#[derive(Clone, Copy, Default)]
struct Leaf {
    iova: u64,
    dma: u64,
    write: bool,
}

impl Xlate {
    /// Translation for a new instance of `pdev`; its top-level table
    /// comes with the first programming of its contexts (`root_alloc`),
    /// so an instance never opened holds no table page.
    pub(crate) fn new(si: ShimInstance, pdev: &pci::Device) -> Result<Xlate> {
        Ok(Xlate {
            si,
            t: Tables::unallocated(pdev),
            pinned: 0,
            resolving: false,
            gen: 0,
            logging: false,
            gone: KVec::new(),
            gone_lost: false,
        })
    }

    /// Bus address of the top-level table, made empty if there is none.
    pub(crate) fn root_alloc(&mut self) -> Result<u64> {
        if self.t.root.is_none() {
            self.t.root = Some(Page::new(&self.t.pdev)?);
        }
        Ok(self.t.root())
    }

    /// Instance removal, after `clear` and with the contexts freed: the
    /// top-level table goes too.
    pub(crate) fn destroy(&mut self) {
        if self.pinned != 0 {
            pr_warn!(
                "vslice: {} page(s) still pinned at instance removal\n",
                self.pinned
            );
        }
        self.t.free();
    }
}

/// An instance's translation state and the condition its changes wait
/// on (see the locking rules above).
pub(crate) struct Dma<'a> {
    pub(crate) xlate: &'a Mutex<Xlate>,
    pub(crate) idle: &'a CondVar,
    pub(crate) parent: &'a ParentState,
    pub(crate) contexts: core::ops::Range<u32>,
}

impl Dma<'_> {
    /// Answers every translation fault the contexts wait on.
    pub(crate) fn faults(&self, id: u32) {
        // Faults read after a reset or close started are the new user's;
        // an answer to one read before must not pin for the old.
        let gen = self.xlate.lock().gen;
        // Each pending word covers 32 contexts: read once per pass (a fault
        // that comes after the read raises its own interrupt).
        let mut pending: Option<(usize, Result<u32>)> = None;
        for c in self.contexts.clone() {
            let word = regs::REG_FAULT_PENDING + 4 * (c as usize / 32);
            let w = match pending {
                Some((at, w)) if at == word => w,
                _ => {
                    let w = self.parent.reg_read(word);
                    pending = Some((word, w));
                    w
                }
            };
            match w {
                Ok(w) if w != u32::MAX && w & (1 << (c % 32)) != 0 => {}
                _ => continue,
            }
            let p = self.parent;
            let (Ok(lo), Ok(hi), Ok(len), Ok(info)) = (
                p.ctx_read(c, regs::CTX_FAULT_ADDR_LO),
                p.ctx_read(c, regs::CTX_FAULT_ADDR_HI),
                p.ctx_read(c, regs::CTX_FAULT_LEN),
                p.ctx_read(c, regs::CTX_FAULT_INFO),
            ) else {
                continue;
            };
            if info & regs::FAULT_PENDING == 0 {
                continue;
            }
            let addr = u64::from(lo) | u64::from(hi) << 32;
            let write = info & regs::FAULT_WRITE != 0;
            let answer = match self.resolve(addr, len, write, gen) {
                Ok(()) => {
                    stats::DMA_FAULTS_RESOLVED.add(1, Relaxed);
                    regs::FAULT_RESUME
                }
                Err(e) => {
                    // The tenant's job touched what it did not map, or
                    // more than it may lock: the job fails, the tenant
                    // sees the error. Only the limit is worth a line.
                    stats::DMA_FAULTS_REFUSED.add(1, Relaxed);
                    if e == ENOMEM && crate::shim::err_ratelimit() {
                        dev_notice!(
                            p.pdev(),
                            "instance {}: cannot pin IOVA {:#x} for a DMA job: ENOMEM (over the tenant's locked-memory limit?)\n",
                            id,
                            addr
                        );
                    } else {
                        dev_dbg!(
                            p.pdev(),
                            "instance {}: context {} DMA fault at {:#x} ({}), refused: {:?}\n",
                            id,
                            c,
                            addr,
                            if write { "write" } else { "read" },
                            e
                        );
                    }
                    regs::FAULT_ABORT
                }
            };
            let _ = p.ctx_write(c, regs::CTX_FAULT_RESPONSE, answer);
        }
    }

    /// Pins and enters the pages from `addr` on that the faulting job
    /// needs (up to `FAULT_BATCH`); an error only if the first cannot be.
    fn resolve(&self, addr: u64, len: u32, write: bool, gen: u64) -> Result {
        if addr >= VA_LIMIT {
            return Err(EFAULT);
        }
        let first = addr & !(PAGE - 1);
        let end = addr.saturating_add(u64::from(len).max(1)).min(VA_LIMIT);
        let pages = end
            .div_ceil(PAGE)
            .saturating_sub(first / PAGE)
            .clamp(1, FAULT_BATCH);
        let need = if write {
            regs::PTE_WRITE
        } else {
            regs::PTE_READ
        };
        // Which pages lack the permission (tables made on the way).
        let mut want = [Leaf::default(); FAULT_BATCH as usize];
        let mut n = 0;
        let si = {
            let mut g = self.xlate.lock();
            while g.resolving {
                self.idle.wait(&mut g);
            }
            if g.gen != gen {
                return Err(ECANCELED);
            }
            for i in 0..pages {
                let va = first + i * PAGE;
                let Walk::Leaf(t, idx) = g.t.walk(va, true)? else {
                    return Err(EINVAL);
                };
                let e = g.t.get(t, idx);
                if e & need == 0 {
                    want[n] = Leaf {
                        iova: va,
                        dma: e,
                        write,
                    };
                    n += 1;
                }
            }
            if n == 0 {
                return Ok(());
            }
            g.resolving = true;
            g.si
        };
        // Pin with the mutex released.
        let mut got = [0u64; FAULT_BATCH as usize];
        let mut pinned = 0;
        let mut first_err = None;
        for (k, w) in want[..n].iter().enumerate() {
            match si.pin(w.iova, write) {
                Ok(d) => {
                    got[k] = d;
                    pinned += 1;
                }
                Err(e) => {
                    if w.iova == first {
                        first_err = Some(e);
                    }
                    break;
                }
            }
        }
        // Enter them; read-only entries they replace go after an
        // invalidation.
        let mut old = [Leaf::default(); FAULT_BATCH as usize];
        let mut olds = 0;
        {
            let mut g = self.xlate.lock();
            for k in 0..pinned {
                let va = want[k].iova;
                if let Ok(Walk::Leaf(t, idx)) = g.t.walk(va, false) {
                    g.t.set(
                        t,
                        idx,
                        (got[k] & regs::PTE_ADDR_MASK)
                            | regs::PTE_READ
                            | if write { regs::PTE_WRITE } else { 0 },
                    );
                    g.pinned += 1;
                    stats::PINNED_PAGES.add(1, Relaxed);
                    if want[k].dma & regs::PTE_READ != 0 {
                        old[olds] = Leaf {
                            iova: va,
                            dma: want[k].dma & regs::PTE_ADDR_MASK,
                            write: false,
                        };
                        olds += 1;
                    }
                }
            }
            // The read-only translations the device may cache go before
            // their pins do.
            for l in &mut old[..olds] {
                if invalidate(self.parent, self.contexts.clone(), l.iova, PAGE) {
                    g.pinned -= 1;
                    stats::PINNED_PAGES.fetch_sub(1, Relaxed);
                } else {
                    l.iova = u64::MAX;
                }
            }
            g.resolving = false;
        }
        self.idle.notify_all();
        for l in old[..olds].iter().filter(|l| l.iova != u64::MAX) {
            si.unpin(l.iova, l.dma, l.write);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Drops every translation in [`iova`, `iova + len`): entries cleared
    /// (no fault answer in flight), the contexts' caches invalidated, then
    /// the pages unpinned with the mutex released.
    pub(crate) fn unmap(&self, iova: u64, len: u64) {
        let end = iova.saturating_add(len).min(VA_LIMIT);
        let mut va = iova & !(PAGE - 1);
        while va < end {
            let mut batch = [Leaf::default(); UNMAP_BATCH];
            let mut n = 0;
            let start = va;
            let si = {
                let mut g = self.xlate.lock();
                while g.resolving {
                    self.idle.wait(&mut g);
                }
                if g.pinned == 0 {
                    return;
                }
                while va < end && n < UNMAP_BATCH {
                    match g.t.walk(va, false) {
                        Ok(Walk::Leaf(t, idx)) => {
                            let e = g.t.get(t, idx);
                            if e & (regs::PTE_READ | regs::PTE_WRITE) != 0 {
                                g.t.set(t, idx, 0);
                                if g.logging
                                    && e & regs::PTE_WRITE != 0
                                    && g.gone.push(va, GFP_KERNEL).is_err()
                                {
                                    g.gone_lost = true;
                                }
                                batch[n] = Leaf {
                                    iova: va,
                                    dma: e & regs::PTE_ADDR_MASK,
                                    write: e & regs::PTE_WRITE != 0,
                                };
                                n += 1;
                            }
                            va += PAGE;
                        }
                        Ok(Walk::Missing(span)) => va = (va | (span - 1)).saturating_add(1),
                        Err(_) => va += PAGE,
                    }
                }
                if n > 0 && !invalidate(self.parent, self.contexts.clone(), start, va - start) {
                    // Not confirmed: the pages stay pinned (and counted).
                    continue;
                }
                g.pinned -= n as u64;
                g.si
            };
            for l in &batch[..n] {
                si.unpin(l.iova, l.dma, l.write);
            }
            stats::PINNED_PAGES.fetch_sub(n as u64, Relaxed);
        }
    }

    /// Starts (`on`) or stops DMA logging.
    pub(crate) fn log(&self, on: bool) {
        let mut g = self.xlate.lock();
        g.logging = on;
        g.gone.clear();
        g.gone_lost = false;
    }

    /// DMA logging's report of [`iova`, `iova + len`): calls `dirty` with
    /// every page the device may have written since the last report,
    /// which is every page it can write now (translated writable: pinned
    /// for its writes) and every such page whose translation went since.
    /// The device writes guest memory only through those pages.
    pub(crate) fn log_report(&self, iova: u64, len: u64, mut dirty: impl FnMut(u64, u64)) {
        let end = iova.saturating_add(len).min(VA_LIMIT);
        let mut g = self.xlate.lock();
        while g.resolving {
            self.idle.wait(&mut g);
        }
        if g.gone_lost {
            // Some pages went unrecorded: the whole range, once.
            g.gone_lost = false;
            g.gone.clear();
            dirty(iova, len);
            return;
        }
        let mut va = iova & !(PAGE - 1);
        while va < end {
            match g.t.walk(va, false) {
                Ok(Walk::Leaf(t, idx)) => {
                    if g.t.get(t, idx) & regs::PTE_WRITE != 0 {
                        dirty(va, PAGE);
                    }
                    va += PAGE;
                }
                Ok(Walk::Missing(span)) => va = (va | (span - 1)).saturating_add(1),
                Err(_) => va += PAGE,
            }
        }
        let gone = core::mem::take(&mut g.gone);
        for &p in gone.iter() {
            if p >= iova && p < end {
                dirty(p, PAGE);
            } else if g.gone.push(p, GFP_KERNEL).is_err() {
                g.gone_lost = true;
            }
        }
    }

    /// Everything unpinned and the lower tables freed; the top-level table
    /// stays, empty (the contexts keep pointing at it).
    pub(crate) fn clear(&self) {
        {
            let mut g = self.xlate.lock();
            while g.resolving {
                self.idle.wait(&mut g);
            }
            g.gen += 1;
        }
        self.unmap(0, VA_LIMIT);
        let mut g = self.xlate.lock();
        while g.resolving {
            self.idle.wait(&mut g);
        }
        if g.t.tables.is_empty() || g.pinned != 0 {
            return;
        }
        for idx in 0..regs::XLATE_TABLE_ENTRIES {
            g.t.set(usize::MAX, idx, 0);
        }
        if !invalidate(self.parent, self.contexts.clone(), 0, 0) {
            return;
        }
        g.t.free_lower();
    }
}

/// Every context of `contexts` drops its cached translations of
/// [`iova`, `iova + len`) (`len` 0: all) and confirms. A device that does
/// not answer any more cannot use them either. False if a context did not
/// confirm: the caller must not unpin then (a page leaked on purpose is
/// better than one the device may still write). Called with the `xlate`
/// mutex held (or, for the self-test, on a context nobody else uses): the
/// range registers are shared by every invalidation of a context, so two
/// must not interleave.
pub(crate) fn invalidate(
    parent: &ParentState,
    contexts: core::ops::Range<u32>,
    iova: u64,
    len: u64,
) -> bool {
    let mut confirmed = true;
    for c in contexts {
        let Ok(before) = parent.ctx_read(c, regs::CTX_INV_COMPLETED) else {
            continue;
        };
        let sent = [
            (regs::CTX_INV_ADDR_LO, iova as u32),
            (regs::CTX_INV_ADDR_HI, (iova >> 32) as u32),
            (regs::CTX_INV_SIZE_LO, len as u32),
            (regs::CTX_INV_SIZE_HI, (len >> 32) as u32),
            (regs::CTX_INV_CMD, 1),
        ]
        .iter()
        .all(|&(off, v)| parent.ctx_write(c, off, v).is_ok());
        if !sent {
            continue;
        }
        // Read until the device counted the command; one that answers
        // all-ones (or not at all) is gone and reaches nothing.
        let done = (0..INV_POLLS).any(|_| {
            parent
                .ctx_read(c, regs::CTX_INV_COMPLETED)
                .map_or(true, |n| n != before || n == u32::MAX)
        });
        if !done {
            dev_warn!(
                parent.pdev(),
                "context {} did not confirm an invalidation: its pages stay pinned\n",
                c
            );
            confirmed = false;
        }
    }
    confirmed
}
