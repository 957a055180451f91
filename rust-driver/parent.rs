// SPDX-License-Identifier: GPL-2.0
//! Parent state: one bound vslice device, shared by `Arc` with the C shim
//! and with every instance carved out of it, and the hardware access that
//! goes with it (IRQ handler, self-test, context programming).
//!
//! # Lifecycle protocol (the parent driver's half of "vfio/mdev:
//! # Synchronize device create/remove with parent removal")
//!
//! States: Live → Removing → Gone, forward only (`carve::Lifecycle`),
//! stored under `carving`'s mutex with the allocator.
//!
//! Probe (driver.rs): enable, map BARs (Devres), check the capabilities,
//! reset the device, create `ParentState` (Live), add the shim parent
//! (class device; C takes one `Arc` reference), allocate MSI-X vectors,
//! then create debugfs and register the mdev parent LAST: from that moment
//! users and the mdev core may call in.
//!
//! References: the PCI driver data holds one `Arc`; C holds one until its
//! parent device is released, which happens only after every mdev type and
//! child let go of it; every instance holds one for its whole life. The
//! memory goes when the last one drops, never earlier.
//!
//! Child create (mdev probe, under the core's `unreg_sem` shared): C takes
//! the per-parent rwsem shared with trylock (-ENODEV while a removal holds
//! it), then Rust allocates under `carving` and fails with -ENODEV unless
//! Live, -ENOSPC if the type is exhausted (nothing half-created); given
//! units still being scrubbed, it waits for the scrub work (scrub.rs) with
//! the rwsem still shared, so an unbind waits for it too (while the scrub
//! progresses: the scrub work runs on while Live, and fails a scrub that
//! stops).
//! Self-test (debugfs): the same trylock, then `carve` like a create.
//! Child remove (mdev remove, under the core's `unreg_sem` shared for a
//! user's remove, exclusive during unbind step 2): C waits for the
//! instance's users to close (`vfio_unregister_group_dev`, which calls the
//! VFIO `request` op to ask them) holding no lock of ours, then Rust stops
//! the instance's contexts and returns the capacity under `carving`
//! (dirty, queued for its scrub); `available_instances` agrees from that
//! moment. It takes no rwsem.
//!
//! PCI unbind (`vslice_shim_parent_remove`, in this order):
//! 1. rwsem exclusive, held until step 3 ends: waits for in-flight creates
//!    and self-tests, then mark Removing. From here until the parent is
//!    gone every create and self-test is refused at the trylock, by the
//!    driver itself, whatever the mdev core does; `carve` refusing unless
//!    Live is the second line.
//! 2. `mdev_unregister_parent`: the core takes its `unreg_sem` exclusive,
//!    which waits for a user's remove already in flight (including one
//!    that started after step 1: the core refuses only those that start
//!    after this point), then removes every child ("child remove" above).
//!    A create that entered the core before this blocks nothing: it fails
//!    at our trylock.
//! 3. quiesce: device reset (all contexts stop, interrupts masked); Gone;
//!    release the rwsem.
//! 4. free the IRQs (waits for running handlers; a context's vector is
//!    allocated when the context is first programmed, see the shim),
//!    cancel the fatal-error, translation and scrub work they may have
//!    queued (the scrub work starts nothing unless Live, and nothing kicks
//!    it once the parent is not), remove debugfs (waits for readers),
//!    unregister the parent device.
//! 5. Rust drops the driver data; Devres revokes the BARs (waits for
//!    in-flight MMIO readers, which hold only RCU).
//!
//! MMIO goes through `DevresBar`s, so every access after unbind fails
//! cleanly (`try_access`). A `DevresGuard` holds an RCU read lock: nothing
//! here sleeps while holding one.

use kernel::{
    io::{Io, IoBackend, IoBase, MmioBackend},
    new_condvar, new_mutex, pci,
    prelude::*,
    ptr::KnownSize,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, CondVar, Mutex, SetOnce,
    },
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::carve::{self, Alloc, Allocator, Lifecycle, TYPES};
use crate::dma::{Buffer, Tables};
use crate::regs::{self, Caps};
use crate::scrub::{self, Scrubs};
use crate::shim::ShimVectors;
use crate::stats;

/// Register BAR.
pub(crate) type RegsBar = pci::DevresBar<{ regs::BAR0_SIZE as usize }>;

const SELFTEST_FILL_AT: u64 = 0x1000;
const SELFTEST_LEN: u32 = 64 << 10;
const SELFTEST_PATTERN: u32 = 0x5a5a_a5a5;
/// The self-test's DMA pass: bytes moved each way by default, and at
/// most (a debugfs write may ask for more, for the bench).
const SELFTEST_DMA_LEN: u32 = 64 << 10;
const SELFTEST_DMA_MAX: u32 = 16 << 20;
/// Device-virtual address of the self-test's host buffer (any will do;
/// this one is not a bus address of the guest, so a mix-up shows).
const SELFTEST_DMA_VA: u64 = 0x7_0000_0000;

/// What `carving` protects.
pub(crate) struct Carving {
    pub(crate) alloc: Allocator,
    pub(crate) life: Lifecycle,
    pub(crate) scrubs: Scrubs,
}

/// One bound vslice device.
#[pin_data]
pub(crate) struct ParentState {
    pdev: ARef<pci::Device>,
    pub(crate) caps: Caps,
    regs: RegsBar,
    vram: pci::DevresBar,
    #[pin]
    pub(crate) carving: Mutex<Carving>,
    /// Signalled under `carving` when scrubs end (scrub.rs).
    #[pin]
    pub(crate) scrubbed: CondVar,
    /// Interrupts handled, per MSI-X vector.
    irqs: KVec<Atomic<u64>>,
    /// Per context: the id of the instance that owns it, 0 if none. Read
    /// by the IRQ handler, which cannot take `carving`. Set by `program`
    /// while the allocation is carved but its instance not yet visible to
    /// anyone (no lock needed: nobody else owns those contexts), cleared by
    /// `uncarve` under `carving` before the contexts are freed.
    owner: KVec<Atomic<u32>>,
    selftest: Atomic<u32>,
    selftest_irqs: Atomic<u32>,
    selftest_checksum: Atomic<u64>,
    /// The last self-test's DMA pass: bytes each way, nanoseconds host →
    /// VRAM and VRAM → host.
    selftest_dma: [Atomic<u64>; 3],
    /// Device-level errors reported by the global vector.
    fatal_errors: Atomic<u32>,
    /// Non-zero if `REG_ID` read all-ones the last time `health` asked.
    silent: Atomic<u32>,
    /// The shim's side of the vectors, from the shim parent's creation on.
    vectors: SetOnce<ShimVectors>,
    _count: stats::Token,
}

impl ParentState {
    pub(crate) fn new(
        pdev: ARef<pci::Device>,
        caps: Caps,
        regs: RegsBar,
        vram: pci::DevresBar,
    ) -> Result<Arc<Self>> {
        let mut irqs = KVec::with_capacity(caps.vectors as usize, GFP_KERNEL)?;
        for _ in 0..caps.vectors {
            irqs.push(Atomic::new(0), GFP_KERNEL)?;
        }
        let mut owner = KVec::with_capacity(caps.contexts as usize, GFP_KERNEL)?;
        for _ in 0..caps.contexts {
            owner.push(Atomic::new(0), GFP_KERNEL)?;
        }
        let alloc = Allocator::new(caps.contexts);
        let mut carving = Carving {
            scrubs: Scrubs::new(alloc.units())?,
            alloc,
            life: Lifecycle::Live,
        };
        scrub::queue_all(&mut carving, caps.contexts);
        Arc::pin_init(
            try_pin_init!(ParentState {
                pdev,
                caps,
                regs,
                vram,
                carving <- new_mutex!(carving),
                scrubbed <- new_condvar!(),
                irqs,
                owner,
                selftest: Atomic::new(0),
                selftest_irqs: Atomic::new(0),
                selftest_checksum: Atomic::new(0),
                selftest_dma: [Atomic::new(0), Atomic::new(0), Atomic::new(0)],
                fatal_errors: Atomic::new(0),
                silent: Atomic::new(0),
                vectors: SetOnce::new(),
                _count: stats::PARENTS.token(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn pdev(&self) -> &pci::Device {
        &self.pdev
    }

    /// Bytes of one VRAM unit.
    pub(crate) fn unit_bytes(&self) -> u64 {
        match carve::device_units(self.caps.contexts) {
            0 => 0,
            n => self.caps.vram_size / u64::from(n),
        }
    }

    /// Reads global register `off`.
    pub(crate) fn reg_read(&self, off: usize) -> Result<u32> {
        self.regs.try_access().ok_or(ENODEV)?.try_read32(off)
    }

    fn wr(&self, off: usize, v: u32) -> Result {
        self.regs.try_access().ok_or(ENODEV)?.try_write32(v, off)
    }

    /// Writes register `off` of context `ctx`'s window.
    pub(crate) fn ctx_write(&self, ctx: u32, off: usize, v: u32) -> Result {
        self.wr(regs::ctx_window(ctx) + off, v)
    }

    /// Reads register `off` of context `ctx`'s window.
    pub(crate) fn ctx_read(&self, ctx: u32, off: usize) -> Result<u32> {
        self.regs
            .try_access()
            .ok_or(ENODEV)?
            .try_read32(regs::ctx_window(ctx) + off)
    }

    /// An allocation's VRAM slice: absolute offset and size.
    pub(crate) fn slice(&self, a: &Alloc) -> (u64, u64) {
        (
            u64::from(a.unit) * self.unit_bytes(),
            u64::from(a.units) * self.unit_bytes(),
        )
    }

    /// Physical address of VRAM (BAR2), for mmap.
    pub(crate) fn vram_phys(&self) -> Result<u64> {
        self.pdev.resource_start(regs::BAR_VRAM)
    }

    /// Reads or writes `buf` at absolute VRAM offset `at`: up to 8 bytes in
    /// naturally aligned pieces (a user's register-sized access), more as
    /// one block copy. The caller has checked the range against a slice.
    pub(crate) fn vram_rw(&self, at: u64, buf: &mut [u8], write: bool) -> Result {
        let vram = self.vram.try_access().ok_or(ENODEV)?;
        if buf.len() > 8 {
            return vram_copy(&vram, at, buf, write);
        }
        let mut done = 0;
        while done < buf.len() {
            let off = at + done as u64;
            let n = crate::vdev::piece(off, buf.len() - done);
            let b = buf.get_mut(done..done + n).ok_or(EINVAL)?;
            let o = off as usize;
            let mut w = [0u8; 8];
            if write {
                w[..n].copy_from_slice(b);
                match n {
                    8 => vram.try_write64(u64::from_le_bytes(w), o)?,
                    4 => vram.try_write32(u32::from_le_bytes([w[0], w[1], w[2], w[3]]), o)?,
                    2 => vram.try_write16(u16::from_le_bytes([w[0], w[1]]), o)?,
                    _ => vram.try_write8(w[0], o)?,
                }
            } else {
                match n {
                    8 => w = vram.try_read64(o)?.to_le_bytes(),
                    4 => w[..4].copy_from_slice(&vram.try_read32(o)?.to_le_bytes()),
                    2 => w[..2].copy_from_slice(&vram.try_read16(o)?.to_le_bytes()),
                    _ => w[0] = vram.try_read8(o)?,
                }
                b.copy_from_slice(&w[..n]);
            }
            done += n;
        }
        Ok(())
    }

    /// Writes descriptors (from `regs::desc_words`) one after the other at
    /// absolute VRAM offset `at`.
    pub(crate) fn write_descs(&self, at: u64, descs: &[[(usize, u32); 10]]) -> Result {
        let vram = self.vram.try_access().ok_or(ENODEV)?;
        for (slot, words) in descs.iter().enumerate() {
            for &(off, v) in words {
                vram.try_write32(v, at as usize + slot * regs::DESC_SIZE + off)?;
            }
        }
        Ok(())
    }

    /// Points context `c`'s ring at slice offset `ring` (`slots` slots),
    /// sets its interrupt mask, queues `jobs` descriptors and rings.
    pub(crate) fn start_ring(
        &self,
        c: u32,
        ring: u64,
        slots: u32,
        irq_mask: u32,
        jobs: u32,
    ) -> Result {
        for (off, v) in [
            (regs::CTX_IRQ_MASK, irq_mask),
            (regs::CTX_RING_BASE_LO, ring as u32),
            (regs::CTX_RING_BASE_HI, (ring >> 32) as u32),
            (regs::CTX_RING_SIZE, slots),
            (regs::CTX_RING_TAIL, jobs),
            (regs::CTX_DOORBELL, 1),
        ] {
            self.ctx_write(c, off, v)?;
        }
        Ok(())
    }

    /// Writes zeroes to `len` bytes at absolute VRAM offset `at` (8-byte
    /// aligned) through the BAR.
    pub(crate) fn vram_zero(&self, at: u64, len: u64) -> Result {
        let vram = self.vram.try_access().ok_or(ENODEV)?;
        for off in (0..len as usize).step_by(8) {
            vram.try_write64(0, at as usize + off)?;
        }
        Ok(())
    }

    /// Takes context `c`'s slice, DMA window and tables away and leaves it
    /// stopped: a context no instance owns reaches neither VRAM nor memory.
    pub(crate) fn ctx_clear(&self, c: u32) -> Result {
        for (off, v) in [
            (regs::CTX_CONTROL, regs::CTX_CTRL_RESET),
            (regs::CTX_CONTROL, 0),
            (regs::CTX_VRAM_SIZE_LO, 0),
            (regs::CTX_VRAM_SIZE_HI, 0),
            (regs::CTX_DMA_SIZE_LO, 0),
            (regs::CTX_DMA_SIZE_HI, 0),
            (regs::CTX_XLATE_CTRL, 0),
            (regs::CTX_XLATE_ROOT_LO, 0),
            (regs::CTX_XLATE_ROOT_HI, 0),
        ] {
            self.ctx_write(c, off, v)?;
        }
        Ok(())
    }

    /// Called once, by the shim parent's creation.
    pub(crate) fn attach_vectors(&self, v: ShimVectors) {
        self.vectors.populate(v);
    }

    /// Context `c`'s MSI-X vector, made ready to be raised (sleeps).
    pub(crate) fn ctx_vector(&self, c: u32) -> Result<u32> {
        let h = c + 1;
        self.vectors.as_ref().ok_or(ENODEV)?.use_vector(h)?;
        Ok(h)
    }

    /// Programs instance `id`'s contexts: its VRAM slice; with `root`, a
    /// DMA window of every device-virtual address translated through the
    /// instance's tables at that bus address (dma.rs), else no DMA; the
    /// default vector; enabled. From here its interrupts are routed to the
    /// instance. Called at the instance's first open (and by the
    /// self-test, under the per-parent rwsem).
    pub(crate) fn program(&self, id: u32, a: &Alloc, root: Option<u64>) -> Result {
        let (base, size) = self.slice(a);
        let (window, xlate, root) = match root {
            Some(r) => (crate::dma::VA_LIMIT, regs::XLATE_ENABLE, r),
            None => (0, 0, 0),
        };
        for c in a.contexts() {
            let vector = self.ctx_vector(c)?;
            for (off, v) in [
                (regs::CTX_CONTROL, regs::CTX_CTRL_RESET),
                (regs::CTX_VRAM_BASE_LO, base as u32),
                (regs::CTX_VRAM_BASE_HI, (base >> 32) as u32),
                (regs::CTX_VRAM_SIZE_LO, size as u32),
                (regs::CTX_VRAM_SIZE_HI, (size >> 32) as u32),
                (regs::CTX_XLATE_ROOT_LO, root as u32),
                (regs::CTX_XLATE_ROOT_HI, (root >> 32) as u32),
                (regs::CTX_XLATE_CTRL, xlate),
                (regs::CTX_DMA_BASE_LO, 0),
                (regs::CTX_DMA_BASE_HI, 0),
                (regs::CTX_DMA_SIZE_LO, window as u32),
                (regs::CTX_DMA_SIZE_HI, (window >> 32) as u32),
                (regs::CTX_WEIGHT, crate::vdev::CONTEXT_WEIGHT),
                (regs::CTX_VECTOR, vector),
                (regs::CTX_CONTROL, regs::CTX_CTRL_ENABLE),
            ] {
                self.ctx_write(c, off, v)?;
            }
            if let Some(o) = self.owner.get(c as usize) {
                o.store(id, Relaxed);
            }
        }
        Ok(())
    }

    /// Resets the device and enables it, with the fatal-error and
    /// translation-fault causes of the global vector unmasked.
    pub(crate) fn hw_init(&self) -> Result {
        self.wr(regs::REG_CONTROL, regs::CTRL_RESET)?;
        self.wr(
            regs::REG_GLOBAL_IRQ_MASK,
            !(regs::GIRQ_FATAL | regs::GIRQ_XLATE_FAULT),
        )?;
        self.wr(regs::REG_CONTROL, regs::CTRL_ENABLE)
    }

    /// Moves the lifecycle forward; a repeated or backward step is ignored
    /// (and logged), never fatal.
    pub(crate) fn set_life(&self, to: Lifecycle) {
        let mut c = self.carving.lock();
        match c.life.step(to) {
            Some(next) => c.life = next,
            None => dev_warn!(
                self.pdev,
                "ignoring lifecycle step {} -> {}\n",
                c.life.name(),
                to.name()
            ),
        }
    }

    pub(crate) fn life(&self) -> Lifecycle {
        self.carving.lock().life
    }

    /// Unbind step 3: the device stops everything. Best effort: a device
    /// that is gone already is quiet.
    pub(crate) fn quiesce(&self) {
        let _ = self.wr(regs::REG_CONTROL, regs::CTRL_RESET);
        self.set_life(Lifecycle::Gone);
    }

    /// Returns instance `id`'s resources: its contexts stop now if it
    /// `programmed` them (before its translation tables go), and the scrub
    /// work zeroes its VRAM and takes the contexts' windows away (the
    /// caller kicks it through the shim). Idempotent: once freed, a second
    /// call finds nothing and touches no context (which may belong to a
    /// newer instance by then).
    pub(crate) fn uncarve(&self, id: u32, a: &Alloc, programmed: bool) {
        let mut c = self.carving.lock();
        if !c.alloc.live().any(|(i, _)| i == id) {
            return;
        }
        for ctx in a.contexts() {
            if let Some(o) = self.owner.get(ctx as usize) {
                o.store(0, Relaxed);
            }
            if programmed {
                let _ = self.ctx_write(ctx, regs::CTX_CONTROL, regs::CTX_CTRL_RESET);
            }
        }
        if let Some(freed) = c.alloc.free(id, true) {
            c.scrubs.queue(freed, programmed);
        }
    }

    /// `available_instances` of type `ty`: exact, 0 unless Live.
    pub(crate) fn available(&self, ty: usize) -> u32 {
        let c = self.carving.lock();
        if c.life.may_start() {
            c.alloc.available(ty)
        } else {
            0
        }
    }

    /// Total interrupts handled.
    pub(crate) fn irqs_handled(&self) -> u64 {
        self.irqs.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub(crate) fn selftest_info(&self) -> (u32, u32, u64) {
        (
            self.selftest.load(Relaxed),
            self.selftest_irqs.load(Relaxed),
            self.selftest_checksum.load(Relaxed),
        )
    }

    /// The last self-test's DMA pass: (bytes each way, ns host → VRAM,
    /// ns VRAM → host).
    pub(crate) fn selftest_dma_info(&self) -> (u64, u64, u64) {
        let [b, i, o] = &self.selftest_dma;
        (b.load(Relaxed), i.load(Relaxed), o.load(Relaxed))
    }

    /// Hard-IRQ context: decides what vector `vector` is. Vector 0 is the
    /// global one; context n signals vector n + 1 (the driver keeps that
    /// `CTX_VECTOR`). A context owned by an instance is the instance's:
    /// `Irq::Route`, untouched (its user acknowledges it through the
    /// register window); anything else is acknowledged here.
    pub(crate) fn irq(&self, vector: u32) -> Irq {
        let Some(count) = self.irqs.get(vector as usize) else {
            return Irq::None;
        };
        let owned = vector
            .checked_sub(1)
            .and_then(|c| self.owner.get(c as usize))
            .is_some_and(|o| o.load(Relaxed) != 0);
        if owned {
            count.add(1, Relaxed);
            return Irq::Route;
        }
        let kind = self.ack(vector);
        if kind != Irq::None {
            count.add(1, Relaxed);
        }
        kind
    }

    /// Acknowledges what vector `vector` reports: `Irq::Fatal` for the
    /// device's fatal error (the shim then cuts every instance off),
    /// `Irq::Scrub` for a context of no instance's, `Irq::Handled` for
    /// anything else of ours, `Irq::None` if nothing.
    fn ack(&self, vector: u32) -> Irq {
        let Some(bar) = self.regs.try_access() else {
            return Irq::None;
        };
        let reg = if vector == 0 {
            regs::REG_GLOBAL_IRQ_STATUS
        } else {
            regs::ctx_window(vector - 1) + regs::CTX_IRQ_STATUS
        };
        let Ok(status) = bar.try_read32(reg) else {
            return Irq::None;
        };
        // All-ones: the device is gone; zero: not ours (or already acked).
        if status == 0 || status == u32::MAX {
            return Irq::None;
        }
        let _ = bar.try_write32(status, reg);
        if vector == 0 && status & regs::GIRQ_FATAL != 0 {
            // Logged once per parent: an error storm must not flood the log.
            if self.fatal_errors.fetch_add(1, Relaxed) == 0 {
                dev_err!(
                    self.pdev,
                    "device reported a fatal error (global status {:#x})\n",
                    status
                );
            }
            return Irq::Fatal;
        }
        if vector == 0 && status & regs::GIRQ_XLATE_FAULT != 0 {
            return Irq::Xlate;
        }
        // A context no instance owns runs a scrub (or the self-test, which
        // counts its interrupts and leaves the scrub work nothing to do).
        if vector > 0 {
            return Irq::Scrub;
        }
        Irq::Handled
    }

    /// `REG_ID` read now (all-ones if the device does not answer) and the
    /// number of fatal errors reported. Remembers whether it answered.
    pub(crate) fn health(&self) -> (u32, u32) {
        let id = self
            .regs
            .try_access()
            .and_then(|b| b.try_read32(regs::REG_ID).ok())
            .unwrap_or(u32::MAX);
        self.silent.store(u32::from(id == u32::MAX), Relaxed);
        (id, self.fatal_errors.load(Relaxed))
    }

    /// Whether the device answered the last time `health` asked (debugfs
    /// `state`, the self-test, the scrub work ask): a create does not
    /// touch the device, so this is how it refuses one that is gone.
    pub(crate) fn answered(&self) -> bool {
        self.silent.load(Relaxed) == 0
    }

    /// Runs a fill and a checksum job on a context carved like the
    /// smallest instance that holds the test's data (so it competes fairly
    /// with instances) and checks the result and that the completion
    /// interrupt arrived; then moves `dma_len` bytes (0 or 1: the default,
    /// so `echo 1` runs the usual test) from host memory to VRAM and back
    /// through the same address translation instances use, and checks
    /// them. The caller holds the per-parent rwsem shared.
    pub(crate) fn selftest(&self, dma_len: u64) -> Result {
        let dma_len = match dma_len {
            0 | 1 => SELFTEST_DMA_LEN,
            n if n <= u64::from(SELFTEST_DMA_MAX) => {
                n.next_multiple_of(regs::XLATE_PAGE_SIZE) as u32
            }
            _ => {
                dev_dbg!(
                    self.pdev,
                    "self-test: DMA length {} over {}\n",
                    dma_len,
                    SELFTEST_DMA_MAX
                );
                return Err(EINVAL);
            }
        };
        let bytes = SELFTEST_FILL_AT + u64::from(SELFTEST_LEN.max(dma_len));
        let need = bytes.div_ceil(self.unit_bytes().max(1));
        let ty = self
            .carving
            .lock()
            .alloc
            .smallest_with(u32::try_from(need).unwrap_or(u32::MAX));
        let (id, a) = ty
            .ok_or(ENOSPC)
            .and_then(|t| self.carve(t))
            .inspect_err(|e| {
                if crate::shim::err_ratelimit() {
                    dev_err!(
                        self.pdev,
                        "self-test: no free slice of {} bytes: {:?}\n",
                        bytes,
                        e
                    );
                }
            })?;
        let res = self
            .run_selftest(&a)
            .and_then(|()| self.selftest_dma(&a, dma_len));
        self.uncarve(id, &a, true);
        self.selftest
            .store(if res.is_ok() { 1 } else { 2 }, Relaxed);
        res
    }

    fn run_selftest(&self, a: &Alloc) -> Result {
        let pdev = &*self.pdev;
        let n = a.contexts().next().ok_or(EINVAL)?;
        let (base, _) = self.slice(a);
        // Programmed like an instance's context, but owned by no instance
        // (id 0), so its interrupts stay the driver's.
        self.program(0, a, None)?;
        let vector = self.ctx_vector(n)? as usize;
        let jobs = [
            regs::desc_words(
                regs::OP_FILL,
                regs::DESC_FLAG_IRQ,
                0,
                SELFTEST_FILL_AT,
                SELFTEST_LEN,
                SELFTEST_PATTERN,
            ),
            regs::desc_words(
                regs::OP_CHECKSUM,
                regs::DESC_FLAG_IRQ,
                SELFTEST_FILL_AT,
                0,
                SELFTEST_LEN,
                0,
            ),
        ];
        self.write_descs(base, &jobs)?;
        let before = self.irqs[vector].load(Relaxed);
        self.start_ring(n, 0, 4, 0, jobs.len() as u32)?;
        let status_at = base as usize + regs::DESC_SIZE + regs::DESC_STATUS;
        let mut waited = 0;
        let res = loop {
            let irqs = self.irqs[vector].load(Relaxed) - before;
            let status = self
                .vram
                .try_access()
                .ok_or(ENODEV)?
                .try_read32(status_at)?;
            // Two completions may arrive as one interrupt (the eventfd
            // counter coalesces them, as MSI-X hardware may): one is enough.
            // VRAM is mapped straight through, so a device that is gone
            // shows in its registers, not in VRAM.
            if status == u32::MAX || self.health().0 == u32::MAX {
                dev_err!(pdev, "self-test: device does not answer (reads all-ones)\n");
                return Err(ENODEV);
            }
            if irqs >= 1 && status != 0 {
                break Ok((irqs, status));
            }
            if waited >= 2000 || self.life() != Lifecycle::Live {
                break Err((irqs, status));
            }
            fsleep(Delta::from_millis(10));
            waited += 10;
        };
        let (irqs, status) = res.map_err(|(irqs, status)| {
            dev_err!(
                pdev,
                "self-test timed out: {} interrupt(s), checksum status {:#x}\n",
                irqs,
                status
            );
            ETIMEDOUT
        })?;
        self.selftest_irqs.store(irqs as u32, Relaxed);
        let result_at = base as usize + regs::DESC_SIZE + regs::DESC_RESULT;
        let vram = self.vram.try_access().ok_or(ENODEV)?;
        let sum = u64::from(vram.try_read32(result_at)?)
            | (u64::from(vram.try_read32(result_at + 4)?) << 32);
        drop(vram);
        self.selftest_checksum.store(sum, Relaxed);
        let expect = regs::fnv1a64_of_fill(SELFTEST_PATTERN, SELFTEST_LEN as usize);
        if status != regs::DESC_STATUS_DONE || sum != expect {
            dev_err!(
                pdev,
                "self-test failed: status {:#x}, checksum {:#x}, expected {:#x}\n",
                status,
                sum,
                expect
            );
            return Err(EIO);
        }
        dev_info!(
            pdev,
            "self-test passed: fill + checksum on context {}, {} MSI-X interrupt(s)\n",
            n,
            irqs
        );
        Ok(())
    }

    /// The self-test's DMA pass on the context of `a`: `len` bytes of a
    /// pattern in host memory (coherent pages of the parent, entered in a
    /// translation tree as a tenant's pinned pages are) go to VRAM and
    /// come back to other pages; both checked. Records the time each way.
    fn selftest_dma(&self, a: &Alloc, len: u32) -> Result {
        let pdev = &*self.pdev;
        let n = a.contexts().next().ok_or(EINVAL)?;
        let (base, _) = self.slice(a);
        let pages = (u64::from(len) / regs::XLATE_PAGE_SIZE) as usize;
        let buf = Buffer::new(pdev, 2 * pages)?;
        let mut tables = Tables::new(pdev)?;
        for (i, p) in buf.pages().iter().enumerate() {
            // The source read-only, the destination writable.
            let va = SELFTEST_DMA_VA + i as u64 * regs::XLATE_PAGE_SIZE;
            tables.map(va, p.dma, i >= pages)?;
        }
        let word =
            |p: usize, i: usize| (p as u64) << 32 ^ (i as u64).wrapping_mul(0x9e37_79b9) ^ 0x5e1f;
        for p in 0..pages {
            for i in 0..512 {
                buf.set_word(p, i, word(p, i));
            }
        }
        self.program(0, a, Some(tables.root()))?;
        let va = SELFTEST_DMA_VA;
        let job = |op, src, dst| regs::desc_words(op, 0, src, dst, len, 0);
        let to_vram = job(regs::OP_DMA_FROM_HOST, va, SELFTEST_FILL_AT);
        let to_host = job(regs::OP_DMA_TO_HOST, SELFTEST_FILL_AT, va + u64::from(len));
        let moved = self
            .timed_job(n, base, 0, &to_vram)
            .and_then(|t_in| Ok((t_in, self.timed_job(n, base, 1, &to_host)?)));
        // Nothing may reach the pages once they are freed.
        let _ = self.ctx_write(n, regs::CTX_CONTROL, regs::CTX_CTRL_RESET);
        if !crate::dma::invalidate(self, n..n + 1, 0, 0) {
            buf.leak();
            return Err(EIO);
        }
        let (t_in, t_out) = moved?;
        let bad = (0..pages).find(|&p| (0..512).any(|i| buf.word(pages + p, i) != word(p, i)));
        drop(buf);
        drop(tables);
        if let Some(p) = bad {
            dev_err!(pdev, "self-test: DMA round trip differs in page {}\n", p);
            return Err(EIO);
        }
        let [b, i, o] = &self.selftest_dma;
        b.store(u64::from(len), Relaxed);
        i.store(t_in, Relaxed);
        o.store(t_out, Relaxed);
        dev_info!(
            pdev,
            "self-test: {} bytes host -> VRAM in {} ns, VRAM -> host in {} ns, through translation\n",
            len,
            t_in,
            t_out
        );
        Ok(())
    }

    /// Runs job `desc` alone on context `c` as the ring's job `slot` (ring
    /// at slice offset `base`, jobs before `slot` done; completion polled)
    /// and returns how long it took, in nanoseconds, from the tail write
    /// (as a user's job is timed: tail and doorbell, then the wait).
    fn timed_job(&self, c: u32, base: u64, slot: u32, desc: &[(usize, u32); 10]) -> Result<u64> {
        let at = base + u64::from(slot) * regs::DESC_SIZE as u64;
        self.write_descs(at, core::slice::from_ref(desc))?;
        let status_at = at as usize + regs::DESC_STATUS;
        self.start_ring(c, 0, 4, !0, slot)?;
        let t0 = Instant::<Monotonic>::now();
        self.ctx_write(c, regs::CTX_RING_TAIL, slot + 1)?;
        self.ctx_write(c, regs::CTX_DOORBELL, 1)?;
        let status = loop {
            let st = self
                .vram
                .try_access()
                .ok_or(ENODEV)?
                .try_read32(status_at)?;
            if st != 0 {
                break st;
            }
            if t0.elapsed().as_millis() > 10_000 || self.life() != Lifecycle::Live {
                dev_err!(self.pdev, "self-test: DMA job {} timed out\n", slot);
                return Err(ETIMEDOUT);
            }
            fsleep(Delta::from_micros(20));
        };
        let ns = t0.elapsed().as_nanos().max(0) as u64;
        if status != regs::DESC_STATUS_DONE {
            dev_err!(
                self.pdev,
                "self-test: DMA job {} status {:#x}\n",
                slot,
                status
            );
            return Err(EIO);
        }
        Ok(ns)
    }
}

/// What an interrupt was (`vslice_rs_irq`'s return value, see the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Irq {
    /// Not ours.
    None = 0,
    /// Handled by the driver.
    Handled = 1,
    /// An instance's: signal its eventfd.
    Route = 2,
    /// The device's fatal error: the shim cuts every instance off.
    Fatal = 3,
    /// Contexts wait on translation faults: the shim's work answers them.
    Xlate = 4,
    /// A scrub's jobs completed or failed: the shim's scrub work goes on.
    Scrub = 5,
}

/// Number of instance types.
pub(crate) const NUM_TYPES: usize = TYPES.len();

/// Copies `buf` to (`write`) or from VRAM at `at` with the kernel's
/// `memcpy_toio`/`memcpy_fromio` (string moves), not an access per word:
/// a migration stream carries whole slices through here.
fn vram_copy(vram: &pci::Bar<'_>, at: u64, buf: &mut [u8], write: bool) -> Result {
    let view = vram.as_view();
    let base = MmioBackend::as_ptr(view);
    let start = usize::try_from(at).map_err(|_| EINVAL)?;
    start
        .checked_add(buf.len())
        .filter(|&end| end <= KnownSize::size(base))
        .ok_or(EINVAL)?;
    let part =
        core::ptr::slice_from_raw_parts_mut(base.cast::<u8>().wrapping_add(start), buf.len());
    // SAFETY: `part` is `[start, start + buf.len())` of the region `base`
    // spans, checked above: a projection of `view`.
    let part = unsafe { MmioBackend::project_view(view, part) };
    if write {
        part.copy_from_slice(buf);
    } else {
        part.copy_to_slice(buf);
    }
    Ok(())
}
