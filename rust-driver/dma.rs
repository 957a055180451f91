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
//! fault work, the VFIO core's `dma_unmap`, and the reset and close paths
//! (after they stopped the contexts, outside the C shim's `memory_lock`).
//! It is held across pinning, which may take the tenant mm's `mmap_lock`
//! and iommufd's locks: nothing that holds one of those takes it, except
//! iommufd's unmap notification, which iommufd issues without its own
//! locks held (as for i915 GVT-g's `cache_lock`). Lock order:
//! `inst_lock` (fault work) → `xlate` → `mmap_lock` → `memory_lock`.
//!
//! Ordering against the device: an entry is written before the context is
//! told to resume (the MMIO write orders it); an entry is cleared, then
//! every context of the instance invalidates the range and confirms, and
//! only then is the page unpinned. A job racing an unmap either used the
//! page before the invalidation completed or faults after it.

use kernel::{prelude::*, sync::atomic::Relaxed};

use crate::parent::ParentState;
use crate::regs;
use crate::shim::ShimInstance;
use crate::stats;

/// Pages one fault answer pins at most (the rest of the transfer faults
/// again): bounds the time the context and the mutex wait.
const FAULT_BATCH: u64 = 64;
/// Leaves an unmap clears before it invalidates and unpins them.
const UNMAP_BATCH: usize = 64;
/// Device-virtual addresses the instance may use: the device's.
pub(crate) const VA_LIMIT: u64 = 1 << regs::XLATE_VA_BITS;
const PAGE: u64 = regs::XLATE_PAGE_SIZE;

/// One 4 KiB table page: CPU and bus addresses.
struct Table {
    cpu: *mut u64,
    dma: u64,
}

/// An instance's translation state.
pub(crate) struct Xlate {
    si: ShimInstance,
    /// The top-level table: allocated with the instance, freed at its
    /// removal, so a context always walks a valid table.
    root: Option<Table>,
    /// Lower-level tables, made on demand, freed when everything is
    /// unpinned.
    tables: KVec<Table>,
    pinned: u64,
}

// SAFETY: the table pages are coherent DMA memory owned by this object
// and only touched under the instance's `xlate` mutex.
unsafe impl Send for Xlate {}

/// A present leaf on its way out: IOVA, bus address, writable.
#[derive(Clone, Copy, Default)]
struct Leaf {
    iova: u64,
    dma: u64,
    write: bool,
}

/// Where a walk stopped.
enum Walk {
    /// The leaf entry's table and index.
    Leaf(usize, u64),
    /// No table at this level: nothing below `span` bytes around it.
    Missing(u64),
}

impl Xlate {
    /// Translation for a new instance: an empty top-level table.
    pub(crate) fn new(si: ShimInstance) -> Result<Xlate> {
        let root = si.table_alloc()?;
        Ok(Xlate {
            si,
            root: Some(Table {
                cpu: root.0,
                dma: root.1,
            }),
            tables: KVec::new(),
            pinned: 0,
        })
    }

    /// Bus address of the top-level table (0 once removed).
    pub(crate) fn root(&self) -> u64 {
        self.root.as_ref().map_or(0, |t| t.dma)
    }

    fn table(&self, i: usize) -> Option<&Table> {
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
                let (cpu, dma) = self.si.table_alloc()?;
                self.tables
                    .push(Table { cpu, dma }, GFP_KERNEL)
                    .inspect_err(|_| {
                        self.si.table_free(cpu, dma);
                    })?;
                self.set(t, idx, dma | regs::PTE_READ);
            }
            t = self
                .find(self.get(t, idx) & regs::PTE_ADDR_MASK)
                .ok_or(EINVAL)?;
        }
        Ok(Walk::Leaf(t, (va >> 12) & (regs::XLATE_TABLE_ENTRIES - 1)))
    }

    /// Answers every translation fault `contexts` wait on.
    pub(crate) fn faults(
        &mut self,
        parent: &ParentState,
        contexts: core::ops::Range<u32>,
        id: u32,
    ) {
        for c in contexts.clone() {
            let word = regs::REG_FAULT_PENDING + 4 * (c as usize / 32);
            match parent.reg_read(word) {
                Ok(w) if w != u32::MAX && w & (1 << (c % 32)) != 0 => {}
                _ => continue,
            }
            let (Ok(lo), Ok(hi), Ok(len), Ok(info)) = (
                parent.ctx_read(c, regs::CTX_FAULT_ADDR_LO),
                parent.ctx_read(c, regs::CTX_FAULT_ADDR_HI),
                parent.ctx_read(c, regs::CTX_FAULT_LEN),
                parent.ctx_read(c, regs::CTX_FAULT_INFO),
            ) else {
                continue;
            };
            if info & regs::FAULT_PENDING == 0 {
                continue;
            }
            let addr = u64::from(lo) | u64::from(hi) << 32;
            let write = info & regs::FAULT_WRITE != 0;
            let answer = match self.resolve(parent, contexts.clone(), addr, len, write) {
                Ok(()) => {
                    stats::DMA_FAULTS_RESOLVED.add(1, Relaxed);
                    regs::FAULT_RESUME
                }
                Err(e) => {
                    // The tenant's job touched what it did not map: the
                    // job fails, the tenant sees the error.
                    stats::DMA_FAULTS_REFUSED.add(1, Relaxed);
                    dev_dbg!(
                        parent.pdev(),
                        "instance {}: context {} DMA fault at {:#x} ({}), refused: {:?}\n",
                        id,
                        c,
                        addr,
                        if write { "write" } else { "read" },
                        e
                    );
                    regs::FAULT_ABORT
                }
            };
            let _ = parent.ctx_write(c, regs::CTX_FAULT_RESPONSE, answer);
        }
    }

    /// Pins and maps the pages from `addr` on that the faulting job needs
    /// (up to `FAULT_BATCH`); an error only if the first cannot be.
    fn resolve(
        &mut self,
        parent: &ParentState,
        contexts: core::ops::Range<u32>,
        addr: u64,
        len: u32,
        write: bool,
    ) -> Result {
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
        for i in 0..pages {
            let va = first + i * PAGE;
            let r = self.map_page(parent, contexts.clone(), va, write, need);
            if i == 0 {
                r?;
            } else if r.is_err() {
                // The job faults there again and gets its own answer.
                break;
            }
        }
        Ok(())
    }

    /// Makes `va` translatable with permission `need`.
    fn map_page(
        &mut self,
        parent: &ParentState,
        contexts: core::ops::Range<u32>,
        va: u64,
        write: bool,
        need: u64,
    ) -> Result {
        let Walk::Leaf(t, idx) = self.walk(va, true)? else {
            return Err(EINVAL);
        };
        let old = self.get(t, idx);
        if old & need != 0 {
            return Ok(());
        }
        let dma = self.si.pin(va, write)?;
        self.set(
            t,
            idx,
            (dma & regs::PTE_ADDR_MASK) | regs::PTE_READ | if write { regs::PTE_WRITE } else { 0 },
        );
        self.pinned += 1;
        stats::PINNED_PAGES.add(1, Relaxed);
        if old & regs::PTE_READ != 0 {
            // Read-only before: the device may cache that; it goes, then
            // the read-only pin.
            invalidate(parent, contexts, va, PAGE);
            self.si.unpin(va, old & regs::PTE_ADDR_MASK, false);
            self.pinned -= 1;
            stats::PINNED_PAGES.fetch_sub(1, Relaxed);
        }
        Ok(())
    }

    /// Drops every translation in [`iova`, `iova + len`): entries cleared,
    /// the contexts' caches invalidated, then the pages unpinned.
    pub(crate) fn unmap(
        &mut self,
        parent: &ParentState,
        contexts: core::ops::Range<u32>,
        iova: u64,
        len: u64,
    ) {
        let end = iova.saturating_add(len).min(VA_LIMIT);
        let mut va = iova & !(PAGE - 1);
        while va < end && self.pinned > 0 {
            let mut batch = [Leaf::default(); UNMAP_BATCH];
            let mut n = 0;
            let start = va;
            while va < end && n < UNMAP_BATCH {
                match self.walk(va, false) {
                    Ok(Walk::Leaf(t, idx)) => {
                        let e = self.get(t, idx);
                        if e & (regs::PTE_READ | regs::PTE_WRITE) != 0 {
                            self.set(t, idx, 0);
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
            if n == 0 {
                continue;
            }
            invalidate(parent, contexts.clone(), start, va - start);
            for l in &batch[..n] {
                self.si.unpin(l.iova, l.dma, l.write);
            }
            self.pinned -= n as u64;
            stats::PINNED_PAGES.fetch_sub(n as u64, Relaxed);
        }
    }

    /// Everything unpinned and the lower tables freed; the top-level table
    /// stays, empty (the contexts keep pointing at it).
    pub(crate) fn clear(&mut self, parent: &ParentState, contexts: core::ops::Range<u32>) {
        self.unmap(parent, contexts.clone(), 0, VA_LIMIT);
        if self.tables.is_empty() {
            return;
        }
        for idx in 0..regs::XLATE_TABLE_ENTRIES {
            self.set(usize::MAX, idx, 0);
        }
        invalidate(parent, contexts, 0, 0);
        for t in self.tables.drain_all() {
            self.si.table_free(t.cpu, t.dma);
        }
    }

    /// Instance removal, after `clear` and with the contexts freed: the
    /// top-level table goes too.
    pub(crate) fn destroy(&mut self) {
        for t in self.tables.drain_all() {
            self.si.table_free(t.cpu, t.dma);
        }
        if let Some(t) = self.root.take() {
            self.si.table_free(t.cpu, t.dma);
        }
    }
}

impl Drop for Xlate {
    fn drop(&mut self) {
        // After `destroy` nothing is left; after a failed create only the
        // empty top-level table.
        for t in self.tables.drain_all() {
            self.si.table_free(t.cpu, t.dma);
        }
        if let Some(t) = self.root.take() {
            self.si.table_free(t.cpu, t.dma);
        }
    }
}

/// Every context of `contexts` drops its cached translations of
/// [`iova`, `iova + len`) (`len` 0: all) and confirms. A device that does
/// not answer any more cannot use them either.
fn invalidate(parent: &ParentState, contexts: core::ops::Range<u32>, iova: u64, len: u64) {
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
        // The read returns after the invalidation completed (the device
        // orders it after the write); a device that answers all-ones is
        // gone.
        let done = (0..16).any(|_| {
            parent
                .ctx_read(c, regs::CTX_INV_COMPLETED)
                .is_ok_and(|n| n != before || n == u32::MAX)
        });
        if !done {
            dev_warn!(
                parent.pdev(),
                "context {} did not confirm an invalidation\n",
                c
            );
        }
    }
}
