// SPDX-License-Identifier: GPL-2.0
//! Parent state: what a bound vslice device is, shared (by `Arc`) with the
//! C shim's callbacks, and the hardware access that goes with it — the IRQ
//! handler and the self-test.
//!
//! MMIO goes through `DevresBar`s, so every access is revocable: once the
//! device is unbound, `try_access` fails and nothing touches a stale
//! mapping. A `DevresGuard` holds an RCU read lock, so no code here sleeps
//! while holding one; the self-test re-acquires it per access and sleeps
//! between.

use kernel::{
    io::Io,
    pci,
    prelude::*,
    sync::aref::ARef,
    sync::atomic::{Atomic, Relaxed},
    time::{delay::fsleep, Delta},
};

use crate::regs::{self, Caps};

/// Register BAR.
pub(crate) type RegsBar = pci::DevresBar<{ regs::BAR0_SIZE as usize }>;

/// Bytes of VRAM the self-test uses, at the top of VRAM.
const SELFTEST_SLICE: u64 = 1 << 20;
const SELFTEST_FILL_AT: u64 = 0x1000;
const SELFTEST_LEN: u32 = 64 << 10;
const SELFTEST_PATTERN: u32 = 0x5a5a_a5a5;

/// One bound vslice device.
pub(crate) struct ParentState {
    pdev: ARef<pci::Device>,
    pub(crate) caps: Caps,
    regs: RegsBar,
    vram: pci::DevresBar,
    /// Interrupts handled, per MSI-X vector.
    irqs: KVec<Atomic<u64>>,
    selftest_busy: Atomic<i32>,
    /// 0: never run, 1: passed, 2: failed.
    selftest: Atomic<u32>,
    selftest_irqs: Atomic<u32>,
    selftest_checksum: Atomic<u64>,
}

impl ParentState {
    pub(crate) fn new(
        pdev: ARef<pci::Device>,
        caps: Caps,
        regs: RegsBar,
        vram: pci::DevresBar,
    ) -> Result<Self> {
        let mut irqs = KVec::with_capacity(caps.vectors as usize, GFP_KERNEL)?;
        for _ in 0..caps.vectors {
            irqs.push(Atomic::new(0), GFP_KERNEL)?;
        }
        Ok(ParentState {
            pdev,
            caps,
            regs,
            vram,
            irqs,
            selftest_busy: Atomic::new(0),
            selftest: Atomic::new(0),
            selftest_irqs: Atomic::new(0),
            selftest_checksum: Atomic::new(0),
        })
    }

    fn wr(&self, off: usize, v: u32) -> Result {
        self.regs.try_access().ok_or(ENODEV)?.try_write32(v, off)
    }

    /// Resets the device and enables it, with only the fatal-error cause
    /// of the global vector unmasked.
    pub(crate) fn hw_init(&self) -> Result {
        self.wr(regs::REG_CONTROL, regs::CTRL_RESET)?;
        self.wr(regs::REG_GLOBAL_IRQ_MASK, !regs::GIRQ_FATAL)?;
        self.wr(regs::REG_CONTROL, regs::CTRL_ENABLE)
    }

    /// Stops the device: every context and all interrupts. Best effort: a
    /// device that is gone already is quiet.
    pub(crate) fn hw_quiesce(&self) {
        let _ = self.wr(regs::REG_CONTROL, regs::CTRL_RESET);
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

    /// Hard-IRQ context: acknowledges what vector `vector` reports.
    /// Vector 0 is the global one; context n signals vector n + 1 (the
    /// reset value of `CTX_VECTOR`, which the driver keeps).
    pub(crate) fn irq(&self, vector: u32) -> bool {
        let Some(count) = self.irqs.get(vector as usize) else {
            return false;
        };
        let Some(bar) = self.regs.try_access() else {
            return false;
        };
        let reg = if vector == 0 {
            regs::REG_GLOBAL_IRQ_STATUS
        } else {
            regs::ctx_window(vector - 1) + regs::CTX_IRQ_STATUS
        };
        let Ok(status) = bar.try_read32(reg) else {
            return false;
        };
        // All-ones: the device is gone; zero: not ours (or already acked).
        if status == 0 || status == u32::MAX {
            return false;
        }
        let _ = bar.try_write32(status, reg);
        count.add(1, Relaxed);
        true
    }

    /// Runs a fill and a checksum job on the last context and checks the
    /// result and that the completion interrupt arrived.
    pub(crate) fn selftest(&self) -> Result {
        if self.selftest_busy.cmpxchg(0, 1, Relaxed).is_err() {
            return Err(EBUSY);
        }
        let res = self.run_selftest();
        self.selftest
            .store(if res.is_ok() { 1 } else { 2 }, Relaxed);
        self.selftest_busy.store(0, Relaxed);
        res
    }

    fn run_selftest(&self) -> Result {
        let pdev = &*self.pdev;
        let n = self.caps.contexts - 1;
        let ctx = regs::ctx_window(n);
        let base = self.caps.vram_size - SELFTEST_SLICE;
        let vector = n as usize + 1;
        self.wr(ctx + regs::CTX_CONTROL, regs::CTX_CTRL_RESET)?;
        self.wr(ctx + regs::CTX_VRAM_BASE_LO, base as u32)?;
        self.wr(ctx + regs::CTX_VRAM_BASE_HI, (base >> 32) as u32)?;
        self.wr(ctx + regs::CTX_VRAM_SIZE_LO, SELFTEST_SLICE as u32)?;
        self.wr(ctx + regs::CTX_VRAM_SIZE_HI, 0)?;
        self.wr(ctx + regs::CTX_RING_BASE_LO, 0)?;
        self.wr(ctx + regs::CTX_RING_BASE_HI, 0)?;
        self.wr(ctx + regs::CTX_RING_SIZE, 4)?;
        self.wr(ctx + regs::CTX_IRQ_MASK, 0)?;
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
        for (slot, words) in jobs.iter().enumerate() {
            let vram = self.vram.try_access().ok_or(ENODEV)?;
            for &(off, v) in words {
                vram.try_write32(v, base as usize + slot * regs::DESC_SIZE + off)?;
            }
        }
        let before = self.irqs[vector].load(Relaxed);
        self.wr(ctx + regs::CTX_CONTROL, regs::CTX_CTRL_ENABLE)?;
        self.wr(ctx + regs::CTX_RING_TAIL, jobs.len() as u32)?;
        self.wr(ctx + regs::CTX_DOORBELL, 1)?;
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
            if irqs >= 1 && status != 0 {
                break Ok((irqs, status));
            }
            if waited >= 2000 {
                break Err((irqs, status));
            }
            fsleep(Delta::from_millis(10));
            waited += 10;
        };
        let _ = self.wr(ctx + regs::CTX_CONTROL, regs::CTX_CTRL_RESET);
        let _ = self.wr(ctx + regs::CTX_CONTROL, 0);
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
}
