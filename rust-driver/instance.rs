// SPDX-License-Identifier: GPL-2.0
//! An mdev instance's Rust state: its carved resources, a counted reference
//! to its parent for its whole life (see the protocol in parent.rs), and
//! what its VFIO device does: region reads and writes, which VRAM pages a
//! mapping fault may bring in, reset, MSI-X vector routing. Created by the
//! mdev probe, resources returned by the mdev remove, memory freed by the
//! VFIO device's release.
//!
//! Locking: the `xlate` mutex for DMA translation (dma.rs says what
//! it orders); the `cpu_log` spinlock for the pre-copy write log
//! (migrate.rs), taken by VRAM mapping faults and BAR2 writes; nothing
//! else of its own. Config space and the emulated registers are
//! atomics (vdev.rs); hardware access goes through the parent's `Devres`
//! BARs (RCU); the parent's carving mutex is taken by create and remove
//! (through `carve` and `uncarve`), never by region accesses, mapping
//! faults or the IRQ path.
//! Region accesses run while the user holds the device open, so the
//! instance and its parent are alive; after a surprise removal the BARs
//! read all-ones and accesses fail cleanly. Whether the BARs decode
//! (`decodes`) goes false only under the C shim's per-instance
//! `memory_lock` held exclusive, and mapping faults ask under it shared,
//! so that a zap after the change leaves no page a later fault could have
//! mapped too early. The reset on open and last close turns decoding on
//! without it: no mapping exists then.

use kernel::{
    new_condvar, new_mutex, new_spinlock,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, CondVar, Mutex, SpinLock,
    },
    time::{Instant, Monotonic},
};

use crate::carve::Alloc;
use crate::dma::{Dma, Xlate};
use crate::migrate::{saved, PageLog, SavedRegs, CTX_SAVED};
use crate::parent::ParentState;
use crate::regs;
use crate::shim::{self, ShimInstance};
use crate::stats;
use crate::vdev::{self, Reg, VConfig};

/// One instance.
pub(crate) struct Instance {
    pub(crate) parent: Arc<ParentState>,
    pub(crate) id: u32,
    pub(crate) alloc: Alloc,
    /// VRAM slice: absolute offset and size in the device's VRAM.
    slice_base: u64,
    slice_size: u64,
    contexts: u32,
    cfg: VConfig,
    scratch: Atomic<u32>,
    bad_count: Atomic<u32>,
    bad_offset: Atomic<u32>,
    /// Non-zero once the instance is being taken from a user who kept it
    /// open after REQ: from then on its BARs neither answer nor map.
    revoked: Atomic<u32>,
    /// Non-zero after a fatal device error until the next reset: the
    /// user must reset the function before it answers again.
    failed: Atomic<u32>,
    /// Non-zero once the contexts are programmed (the first open).
    programmed: Atomic<u32>,
    /// Non-zero once `remove` gave the resources back (ids are reused,
    /// so the drop must not look them up again).
    removed: Atomic<u32>,
    /// The device's translation for the instance's DMA (dma.rs).
    xlate: Pin<KBox<Mutex<Xlate>>>,
    /// Signalled when a fault answer in flight is done (dma.rs).
    xlate_idle: Pin<KBox<CondVar>>,
    /// The VRAM pages CPU writes reached while a pre-copy logs them.
    cpu_log: Pin<KBox<SpinLock<Option<Arc<PageLog>>>>>,
    si: ShimInstance,
    _count: stats::Token,
}

fn le32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_le_bytes(w)
}

fn put_le32(b: &mut [u8], v: u32) {
    for (d, s) in b.iter_mut().zip(v.to_le_bytes()) {
        *d = s;
    }
}

impl Instance {
    /// Memory an instance holds in its own allocations.
    const BYTES: u64 = (size_of::<Instance>()
        + size_of::<Mutex<Xlate>>()
        + size_of::<CondVar>()
        + size_of::<SpinLock<Option<Arc<PageLog>>>>()) as u64;

    /// Carves an instance of type `ty` out of `parent` (waiting, if its
    /// units are still being scrubbed, until they are zeroed). Called with
    /// the per-parent rwsem held shared.
    pub(crate) fn create(
        parent: &Arc<ParentState>,
        ty: usize,
        si: ShimInstance,
    ) -> Result<KBox<Instance>> {
        let t0 = Instant::<Monotonic>::now();
        // Allocate the memory first: on -ENOMEM nothing was carved.
        let b = KBox::new_uninit(GFP_KERNEL).inspect_err(|_| {
            dev_err!(parent.pdev(), "out of memory for a new instance\n");
        })?;
        let xlate = Xlate::new(si, parent.pdev()).inspect_err(|_| {
            dev_err!(parent.pdev(), "out of memory for a translation table\n");
        })?;
        let xlate = KBox::pin_init(new_mutex!(xlate), GFP_KERNEL)?;
        let xlate_idle = KBox::pin_init(new_condvar!(), GFP_KERNEL)?;
        let cpu_log = KBox::pin_init(new_spinlock!(None), GFP_KERNEL)?;
        // A device seen not answering gets no new instance (the create
        // path does not touch it).
        if !parent.answered() {
            dev_dbg!(parent.pdev(), "no instance: the device does not answer\n");
            return Err(ENODEV);
        }
        // A full parent and one being removed are expected refusals.
        let (id, alloc) = parent.carve(ty).inspect_err(|e| {
            if *e == ENOSPC || *e == ENODEV || *e == EINTR {
                dev_dbg!(parent.pdev(), "no type {} instance: {:?}\n", ty, e);
            } else if shim::err_ratelimit() {
                dev_err!(
                    parent.pdev(),
                    "cannot create a type {} instance: {:?}\n",
                    ty,
                    e
                );
            }
        })?;
        let (slice_base, slice_size) = parent.slice(&alloc);
        let contexts = alloc.num_contexts();
        let inst = b.write(Instance {
            parent: parent.clone(),
            id,
            alloc,
            slice_base,
            slice_size,
            contexts,
            cfg: VConfig::new(contexts, slice_size),
            scratch: Atomic::new(0),
            bad_count: Atomic::new(0),
            bad_offset: Atomic::new(0),
            revoked: Atomic::new(0),
            failed: Atomic::new(0),
            programmed: Atomic::new(0),
            removed: Atomic::new(0),
            xlate,
            xlate_idle,
            cpu_log,
            si,
            _count: stats::INSTANCES.token(),
        });
        stats::DRIVER_BYTES.add(Instance::BYTES, Relaxed);
        // The contexts are programmed at the first open; the VRAM was
        // zeroed when its last tenant left (scrub.rs).
        stats::CREATE_NS.add(stats::ns_since(t0), Relaxed);
        stats::CREATES.add(1, Relaxed);
        dev_dbg!(
            parent.pdev(),
            "instance {} created: type {}, VRAM units {}..{}, {} contexts\n",
            id,
            ty,
            alloc.unit,
            alloc.unit + alloc.units - 1,
            contexts
        );
        Ok(inst)
    }

    /// Gives the resources back (the instance has no users any more, and
    /// its last close unpinned what they had mapped); its VRAM is scrubbed
    /// in the background.
    pub(crate) fn remove(&self) {
        let t0 = Instant::<Monotonic>::now();
        self.dma().clear();
        self.parent.uncarve(self.id, &self.alloc, self.programmed());
        self.removed.store(1, Relaxed);
        self.xlate.lock().destroy();
        stats::REMOVE_NS.add(stats::ns_since(t0), Relaxed);
        stats::REMOVES.add(1, Relaxed);
    }

    fn programmed(&self) -> bool {
        self.programmed.load(Relaxed) != 0
    }

    /// Programs the contexts the first time the instance is opened: its
    /// VRAM slice, its DMA window through its translation tables, its
    /// vectors (from here on its interrupts are routed to it).
    fn program(&self) -> Result {
        if self.programmed() {
            return Ok(());
        }
        let t0 = Instant::<Monotonic>::now();
        let root = self.xlate.lock().root_alloc()?;
        self.parent
            .program(self.id, &self.alloc, Some(root))
            .inspect_err(|e| {
                if *e != ENODEV && shim::err_ratelimit() {
                    dev_err!(
                        self.parent.pdev(),
                        "cannot program instance {}'s contexts: {:?}\n",
                        self.id,
                        e
                    );
                }
            })?;
        self.programmed.store(1, Relaxed);
        stats::PROGRAM_NS.add(stats::ns_since(t0), Relaxed);
        stats::PROGRAMS.add(1, Relaxed);
        Ok(())
    }

    fn dma(&self) -> Dma<'_> {
        Dma {
            xlate: &self.xlate,
            idle: &self.xlate_idle,
            parent: &self.parent,
            contexts: self.alloc.contexts(),
        }
    }

    /// Answers the translation faults the instance's contexts wait on.
    pub(crate) fn faults(&self) {
        self.dma().faults(self.id);
    }

    /// The tenant unmapped [`iova`, `iova + len`) from its IOAS: the device
    /// loses it before this returns.
    pub(crate) fn dma_unmap(&self, iova: u64, len: u64) {
        self.dma().unmap(iova, len);
    }

    /// Starts (`on`) or stops logging the guest pages the device writes
    /// (VFIO DMA logging).
    pub(crate) fn dma_log(&self, on: bool) {
        self.dma().log(on);
    }

    /// DMA logging's report of [`iova`, `iova + len`), page ranges to
    /// `dirty` (dma.rs says which).
    pub(crate) fn dma_log_report(&self, iova: u64, len: u64, dirty: impl FnMut(u64, u64)) {
        self.dma().log_report(iova, len, dirty);
    }

    /// Drops every translation and pin (after a reset or the last close
    /// stopped the contexts).
    pub(crate) fn unpin_all(&self) {
        self.dma().clear();
    }

    /// MSI-X vectors the instance exposes, one per context, and the
    /// device's vector behind its first: context c signals vector c + 1
    /// and the instance's contexts are contiguous, so vector i is the
    /// device's `first + i`. Returns (first, count).
    pub(crate) fn vectors(&self) -> (u32, u32) {
        (self.alloc.contexts().start + 1, self.contexts)
    }

    /// Size and `vdev::REGION_*` flags of region `index`.
    pub(crate) fn region(&self, index: u32) -> (u64, u32) {
        vdev::region(index, self.contexts, self.slice_size)
    }

    /// Function reset: every context's user block and queued work (the
    /// device's per-context reset), config space, emulated registers.
    /// The VRAM slice keeps its contents, as on the device. The first one
    /// (the first open) programs the contexts.
    pub(crate) fn reset(&self) -> Result {
        self.program()?;
        self.cfg.reset();
        self.failed.store(0, Relaxed);
        self.scratch.store(0, Relaxed);
        self.bad_count.store(0, Relaxed);
        self.bad_offset.store(0, Relaxed);
        for c in self.alloc.contexts() {
            self.parent
                .ctx_write(c, regs::CTX_CONTROL, regs::CTX_CTRL_RESET)
                .inspect_err(|e| {
                    // ENODEV: the parent is going away; its removal resets
                    // the device.
                    if *e == ENODEV {
                        dev_dbg!(self.parent.pdev(), "instance {}: device gone\n", self.id);
                    } else if shim::err_ratelimit() {
                        dev_err!(
                            self.parent.pdev(),
                            "instance {}: context {} reset failed: {:?}\n",
                            self.id,
                            c,
                            e
                        );
                    }
                })?;
            // A migration may have frozen it; the freeze survives a
            // context reset, a function reset starts the user running.
            self.parent
                .ctx_write(c, regs::CTX_CONTROL, regs::CTX_CTRL_ENABLE)?;
        }
        Ok(())
    }

    /// Whether the BARs answer: memory decoding on, not revoked, no fatal
    /// device error since the last reset. The C shim zaps the VRAM
    /// mapping whenever a change makes this false.
    pub(crate) fn decodes(&self) -> bool {
        self.cfg.mem_enabled() && self.revoked.load(Relaxed) == 0 && self.failed.load(Relaxed) == 0
    }

    /// The device reported a fatal error: BAR accesses fail and the
    /// mapping faults until the user resets the function.
    pub(crate) fn fail(&self) {
        self.failed.store(1, Relaxed);
    }

    /// The instance is being taken from its user: BAR accesses fail and
    /// the VRAM mapping faults (SIGBUS) from now on, for good.
    pub(crate) fn revoke(&self) {
        self.revoked.store(1, Relaxed);
    }

    /// mmap of `len` bytes at `off` in region `index`: only the VRAM
    /// slice maps, whole pages of it, and never a byte beyond it. Nothing
    /// is mapped yet; pages come in on fault.
    pub(crate) fn mmap_check(&self, index: u32, off: u64, len: u64) -> Result {
        let end = off.checked_add(len).ok_or(EINVAL)?;
        let (size, flags) = self.region(index);
        if flags & vdev::REGION_MMAP == 0 || len == 0 || end > size {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// A fault on the VRAM mapping at slice offset `off` (a write if
    /// `write`): the physical address to map there, or `EIO` (the user gets
    /// SIGBUS) while the BARs do not decode; and whether CPU writes are
    /// being logged (then only a written page may be mapped writable, and
    /// it is logged here).
    pub(crate) fn mmap_fault(&self, off: u64, write: bool) -> Result<(u64, bool)> {
        if !self.decodes() {
            return Err(EIO);
        }
        if off >= self.slice_size {
            return Err(EINVAL);
        }
        let phys = self.parent.vram_phys()? + self.slice_base + off;
        stats::MMAP_FAULTS.add(1, Relaxed);
        let logging = match self.cpu_log.lock().as_ref() {
            Some(log) => {
                if write {
                    log.mark(off, 1);
                }
                true
            }
            None => false,
        };
        Ok((phys, logging))
    }

    /// A CPU write reached `len` bytes at slice offset `off` (or will): the
    /// pages are logged while a pre-copy runs.
    pub(crate) fn log_cpu_write(&self, off: u64, len: u64) {
        if let Some(log) = self.cpu_log.lock().as_ref() {
            log.mark(off, len);
        }
    }

    /// Starts (`Some`) or stops (`None`) logging CPU writes into `log`.
    pub(crate) fn set_cpu_log(&self, log: Option<Arc<PageLog>>) {
        *self.cpu_log.lock() = log;
    }

    /// What CPU writes logged so far moves to the saving side (the shim
    /// holds `memory_lock` exclusive and zapped the mapping).
    pub(crate) fn rotate_cpu_log(&self) {
        if let Some(log) = self.cpu_log.lock().as_ref() {
            log.rotate();
        }
    }

    /// Reads (`write` false) or writes up to `buf.len()` bytes at `off` in
    /// region `index`; returns the bytes done (short at the region's end).
    pub(crate) fn rw(&self, index: u32, off: u64, buf: &mut [u8], write: bool) -> Result<usize> {
        let (size, _) = self.region(index);
        if off >= size {
            return Err(EINVAL);
        }
        let len = buf.len().min((size - off) as usize);
        let buf = buf.get_mut(..len).ok_or(EINVAL)?;
        // BARs do not answer while memory decoding is off (vfio-pci: EIO).
        if index != vdev::REGION_CONFIG && !self.decodes() {
            return Err(EIO);
        }
        match index {
            vdev::REGION_CONFIG => {
                if write {
                    self.cfg.write(off as usize, buf);
                } else {
                    self.cfg.read(off as usize, buf);
                }
            }
            vdev::REGION_BAR0 => self.bar0_rw(off, buf, write)?,
            vdev::REGION_BAR2 => {
                if write {
                    self.log_cpu_write(off, buf.len() as u64);
                }
                self.parent.vram_rw(self.slice_base + off, buf, write)?
            }
            // The MSI-X table is the user's (QEMU emulates it); the
            // instance's interrupts are configured with SET_IRQS.
            vdev::REGION_BAR4 => {
                if !write {
                    buf.fill(0);
                }
            }
            _ => return Err(EINVAL),
        }
        Ok(len)
    }

    /// The instance's C side (its VFIO device).
    pub(crate) fn si(&self) -> ShimInstance {
        self.si
    }

    /// Bytes of the VRAM slice.
    pub(crate) fn slice_size(&self) -> u64 {
        self.slice_size
    }

    /// Number of contexts.
    pub(crate) fn contexts(&self) -> u32 {
        self.contexts
    }

    /// Reads (`write` false) or writes `buf` at slice offset `off`, which
    /// the caller checked against the slice.
    pub(crate) fn vram(&self, off: u64, buf: &mut [u8], write: bool) -> Result {
        self.parent.vram_rw(self.slice_base + off, buf, write)
    }

    /// Freezes (`on`) or thaws every context: a frozen context runs no
    /// chunk, starts no DMA and signals no interrupt (docs/device.md,
    /// "Freezing and moving a context"); the chunk in flight has ended when
    /// this returns.
    pub(crate) fn freeze(&self, on: bool) -> Result {
        let v = regs::CTX_CTRL_ENABLE | if on { regs::CTX_CTRL_FREEZE } else { 0 };
        for c in self.alloc.contexts() {
            self.parent.ctx_write(c, regs::CTX_CONTROL, v)?;
        }
        Ok(())
    }

    /// The device state a stream carries (the contexts frozen): config
    /// space, the emulated registers, and every context's user-visible
    /// registers and job position.
    pub(crate) fn save_state(&self, out: &mut SavedRegs) -> Result {
        self.cfg.read(0, &mut out.config);
        out.regs = [
            self.scratch.load(Relaxed),
            self.bad_count.load(Relaxed),
            self.bad_offset.load(Relaxed),
            0,
        ];
        out.contexts.clear();
        for c in self.alloc.contexts() {
            let status = self.parent.ctx_read(c, regs::CTX_STATUS)?;
            if status == u32::MAX {
                return Err(ENODEV);
            }
            if status & regs::CTX_STATUS_FROZEN == 0 {
                return Err(EINVAL);
            }
            let mut r = [0u32; CTX_SAVED.len()];
            for (v, &off) in r.iter_mut().zip(CTX_SAVED.iter()) {
                *v = self.parent.ctx_read(c, off)?;
            }
            out.contexts.push(r, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Puts a saved state into the frozen instance: config space through
    /// its write masks (read-only fields keep this instance's values),
    /// the emulated registers, and each context reset and then given its
    /// registers, so that its job resumes where the source stopped it.
    /// Counts the jobs it carried in `stats`.
    pub(crate) fn load_state(&self, s: &SavedRegs) -> Result {
        if s.contexts.len() != self.contexts as usize {
            return Err(EINVAL);
        }
        self.cfg.reset();
        self.cfg.write(0, &s.config);
        self.scratch.store(s.regs[0], Relaxed);
        self.bad_count.store(s.regs[1], Relaxed);
        self.bad_offset.store(s.regs[2], Relaxed);
        for (c, r) in self.alloc.contexts().zip(s.contexts.iter()) {
            let status = self.parent.ctx_read(c, regs::CTX_STATUS)?;
            if status == u32::MAX {
                return Err(ENODEV);
            }
            if status & regs::CTX_STATUS_FROZEN == 0 {
                return Err(EINVAL);
            }
            self.parent
                .ctx_write(c, regs::CTX_CONTROL, regs::CTX_CTRL_RESET)?;
            for (&v, &off) in r.iter().zip(CTX_SAVED.iter()) {
                self.parent.ctx_write(c, off, v)?;
            }
        }
        for r in s.contexts.iter() {
            let queued = saved(r, regs::CTX_RING_TAIL).wrapping_sub(saved(r, regs::CTX_MIG_HEAD));
            stats::MIG_JOBS_MOVED.add(u64::from(queued), Relaxed);
            if queued > 0 && saved(r, regs::CTX_MIG_JOB_DONE) > 0 {
                stats::MIG_JOBS_RESUMED.add(1, Relaxed);
            }
        }
        Ok(())
    }

    fn bar0_rw(&self, off: u64, buf: &mut [u8], write: bool) -> Result {
        let mut done = 0;
        while done < buf.len() {
            let at = off + done as u64;
            let n = vdev::piece(at, buf.len() - done);
            let chunk = buf.get_mut(done..done + n).ok_or(EINVAL)?;
            if n < 4 {
                // The device takes aligned 32-bit words only.
                self.refuse(at);
                if !write {
                    chunk.fill(0xff);
                }
            } else {
                for (k, word) in chunk.chunks_mut(4).enumerate() {
                    self.reg(at + 4 * k as u64, word, write)?;
                }
            }
            done += n;
        }
        Ok(())
    }

    fn refuse(&self, at: u64) {
        self.bad_count.fetch_add(1, Relaxed);
        self.bad_offset.store(at as u32, Relaxed);
    }

    fn reg(&self, at: u64, word: &mut [u8], write: bool) -> Result {
        let val = match vdev::decode_bar0(at, self.contexts, self.slice_size) {
            Reg::Const(v) => v,
            Reg::Scratch => {
                if write {
                    self.scratch.store(le32(word), Relaxed);
                }
                self.scratch.load(Relaxed)
            }
            Reg::BadCount => self.bad_count.load(Relaxed),
            Reg::BadOffset => self.bad_offset.load(Relaxed),
            Reg::Forward { ctx, off } => {
                let c = self.alloc.contexts().nth(ctx as usize).ok_or(EINVAL)?;
                if write {
                    // A device that is gone drops writes; so do we.
                    let _ = self.parent.ctx_write(c, off, le32(word));
                    return Ok(());
                }
                self.parent.ctx_read(c, off).unwrap_or(u32::MAX)
            }
            Reg::Refused => {
                self.refuse(at);
                u32::MAX
            }
        };
        if !write {
            put_le32(word, val);
        }
        Ok(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        stats::DRIVER_BYTES.fetch_sub(Instance::BYTES, Relaxed);
        // After a failed probe this returns what `create` carved.
        if self.removed.load(Relaxed) == 0 {
            self.parent.uncarve(self.id, &self.alloc, self.programmed());
        }
    }
}
