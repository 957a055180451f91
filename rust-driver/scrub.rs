// SPDX-License-Identifier: GPL-2.0
//! Zeroing VRAM in the background: the scrubs queued for released blocks
//! (and, at bind, for the whole device), run by the device's own fill
//! engine on the block's first context, completed by its interrupt. No
//! tenant ever reads another tenant's data: a block's units stay dirty
//! (carve.rs) until its scrub is done, and a create that was given dirty
//! units waits for them (`ParentState::carve`).
//!
//! Locking: the list of scrubs lives under the parent's `carving` mutex
//! with the allocator. Only the shim's scrub work (one work item per
//! parent: never two runs at once) starts, advances or ends a scrub; it
//! reads the list under the lock, touches the hardware without it (a
//! scrubbing context belongs to nobody else: its block is neither
//! allocated nor offered as clean), then records the outcome under the
//! lock and wakes the creates that wait (`scrubbed`). Releases only
//! append. The work runs on the scrub context's interrupt, within
//! `BATCH_MS` of a release (the shim kicks it; releases in that window are
//! scrubbed together), at once at bind, every `WATCHDOG_MS` while a scrub runs
//! (in case an interrupt is lost) and every `RETRY_MS` while one failed: a
//! failed scrub (a device that stopped answering, say) leaves its units
//! bad, withheld from `available_instances`, until a retry succeeds.

use kernel::{
    prelude::*,
    sync::atomic::Relaxed,
    time::{Instant, Monotonic},
};

use crate::carve::{self, Alloc, Lifecycle};
use crate::parent::{Carving, ParentState};
use crate::regs;
use crate::stats;

/// Ring space at the end of a block while it is scrubbed: 64 descriptors
/// of up to `JOB_MAX_LEN` bytes each, 4 GiB a pass; larger blocks take
/// several passes. Zeroed through the BAR at the end.
pub(crate) const SCRUB_RING: u64 = 4096;
/// Longest a scrub may go without a job completing (a job fills at most
/// `JOB_MAX_LEN`; this is for a device that stopped working).
pub(crate) const SCRUB_TIMEOUT_MS: u32 = 10_000;
/// Longest a create waits for its units' scrub: a safety net (a scrub
/// that stops progressing fails after `SCRUB_TIMEOUT_MS`, and so does the
/// create's wait).
const CREATE_WAIT_MAX_MS: i64 = 600_000;
/// How often the scrub work looks at running scrubs without an interrupt.
pub(crate) const WATCHDOG_MS: u32 = 100;
/// How often it retries a failed scrub.
pub(crate) const RETRY_MS: u32 = 1000;
/// A release's scrub starts within this window, with every other release
/// in it (`Scrubs::coalesce`): a create that finds only dirty units waits
/// for it, at most this much longer.
pub(crate) const BATCH_MS: u32 = 20;

#[derive(Clone, Copy)]
enum Phase {
    /// Waiting for the scrub work to start it.
    Queued,
    /// Pass `pass` runs: `jobs` fill jobs queued when `CTX_COMPLETED` was
    /// `done0`; `seen` of them were done at `since`, the last time one
    /// completed (or the pass started).
    Running {
        pass: u32,
        jobs: u32,
        done0: u32,
        seen: u32,
        since: Instant<Monotonic>,
    },
    /// It failed; its units are bad until a retry succeeds.
    Failed,
}

/// One block to zero.
#[derive(Clone, Copy)]
struct Scrub {
    /// First unit (its context runs the jobs) and size, as an allocation.
    block: Alloc,
    /// Whether the block's contexts were an instance's, programmed: their
    /// windows and tables are taken away at the end.
    clear: bool,
    queued: Instant<Monotonic>,
    phase: Phase,
}

/// The scrubs of one parent, under `carving`.
pub(crate) struct Scrubs {
    list: KVec<Scrub>,
    /// Queued scrubs wait while set (debugfs `scrub_hold`: lets a test
    /// create on units that are certainly still dirty).
    pub(crate) held: bool,
}

/// What the work found a scrub to be.
#[derive(Clone, Copy)]
enum Outcome {
    Running(Phase),
    Done,
    Failed(Error),
}

impl Scrubs {
    /// Room for `units` scrubs (blocks never overlap): queueing never
    /// allocates.
    pub(crate) fn new(units: u32) -> Result<Self> {
        Ok(Scrubs {
            list: KVec::with_capacity(units.max(1) as usize, GFP_KERNEL)?,
            held: false,
        })
    }

    /// Queues a scrub of `block`, whose units were just freed (`clear`: an
    /// instance programmed its contexts). The caller kicks the scrub work
    /// (through the shim).
    pub(crate) fn queue(&mut self, block: Alloc, clear: bool) {
        if self.list.iter().any(|s| s.block.set().meets(&block.set())) {
            // Freed units are never being scrubbed: nothing to add.
            return;
        }
        let s = Scrub {
            block,
            clear,
            queued: Instant::now(),
            phase: Phase::Queued,
        };
        if self.list.push(s, GFP_ATOMIC).is_err() {
            pr_warn!("vslice: no room to queue a scrub of unit {}\n", block.unit);
        }
    }

    /// Queued scrubs of adjacent blocks become one (one context zeroes
    /// them, one interrupt ends it): releases close together cost the
    /// device one scrub.
    fn coalesce(&mut self) {
        // By first unit; an insertion sort: the list is nearly in order
        // (releases append) and short.
        for i in 1..self.list.len() {
            let mut j = i;
            while j > 0 && self.list[j - 1].block.unit > self.list[j].block.unit {
                self.list.swap(j - 1, j);
                j -= 1;
            }
        }
        let mut i = 0;
        while let (Some(a), Some(b)) = (self.list.get(i), self.list.get(i + 1)) {
            let queued = matches!(a.phase, Phase::Queued) && matches!(b.phase, Phase::Queued);
            match a.block.merged(&b.block).filter(|_| queued) {
                Some(block) => {
                    let s = Scrub {
                        block,
                        clear: a.clear || b.clear,
                        queued: if a.queued.elapsed().as_nanos() > b.queued.elapsed().as_nanos() {
                            a.queued
                        } else {
                            b.queued
                        },
                        phase: Phase::Queued,
                    };
                    if let Some(x) = self.list.get_mut(i) {
                        *x = s;
                    }
                    let _ = self.list.remove(i + 1);
                }
                None => i += 1,
            }
        }
    }

    /// Scrubs queued or running (not failed).
    pub(crate) fn pending(&self) -> u32 {
        self.list
            .iter()
            .filter(|s| !matches!(s.phase, Phase::Failed))
            .count() as u32
    }
}

impl ParentState {
    /// The shim's scrub work: ends the scrubs whose jobs completed (or
    /// failed), starts the queued ones, retries the failed ones. Returns
    /// the milliseconds after which to run again even without an
    /// interrupt: `WATCHDOG_MS` while a scrub runs, `RETRY_MS` while one
    /// failed, 0 if none is left (or the parent is going).
    pub(crate) fn scrub_work(&self) -> u32 {
        let mut snapshot = KVec::new();
        let (live, held) = {
            let mut c = self.carving.lock();
            if !c.scrubs.held {
                c.scrubs.coalesce();
            }
            for s in c.scrubs.list.iter() {
                if snapshot.push(*s, GFP_KERNEL).is_err() {
                    return WATCHDOG_MS;
                }
            }
            (c.life == Lifecycle::Live, c.scrubs.held)
        };
        let mut outcomes = KVec::new();
        for s in snapshot.iter() {
            let o = match (s.phase, live) {
                // The device is going: its removal resets every context.
                (_, false) => Outcome::Failed(ENODEV),
                (Phase::Queued, true) if held => continue,
                (Phase::Queued, true) => self.scrub_start(s),
                // Retried while the device answers (it may be back).
                (Phase::Failed, true) if self.health().0 != u32::MAX => self.scrub_start(s),
                (Phase::Failed, true) => continue,
                (Phase::Running { .. }, true) => self.scrub_check(s),
            };
            if outcomes.push((s.block.unit, o), GFP_KERNEL).is_err() {
                return WATCHDOG_MS;
            }
        }
        let mut c = self.carving.lock();
        let mut changed = false;
        for (unit, o) in outcomes {
            let Some(i) = c.scrubs.list.iter().position(|s| s.block.unit == unit) else {
                continue;
            };
            let (block, queued) = match c.scrubs.list.get_mut(i) {
                Some(s) => match o {
                    Outcome::Running(p) => {
                        s.phase = p;
                        continue;
                    }
                    Outcome::Failed(_) if live => {
                        s.phase = Phase::Failed;
                        (s.block, None)
                    }
                    _ => (s.block, Some(s.queued)),
                },
                None => continue,
            };
            changed = true;
            if let Outcome::Failed(e) = o {
                if live {
                    c.alloc.scrubbed(&block.set(), false);
                    stats::SCRUB_FAILURES.add(1, Relaxed);
                    if crate::shim::err_ratelimit() {
                        dev_err!(
                            self.pdev(),
                            "scrubbing VRAM units {}..{} failed: {:?}\n",
                            block.unit,
                            block.unit + block.units - 1,
                            e
                        );
                    }
                    continue;
                }
            }
            c.scrubs.list.remove(i).ok();
            if let (Outcome::Done, Some(q)) = (o, queued) {
                c.alloc.scrubbed(&block.set(), true);
                stats::SCRUBS.add(1, Relaxed);
                stats::SCRUB_NS.add(stats::ns_since(q), Relaxed);
            }
        }
        if changed {
            self.scrubbed.notify_all();
        }
        if !live {
            0
        } else if c.scrubs.pending() > 0 {
            WATCHDOG_MS
        } else if !c.scrubs.list.is_empty() {
            RETRY_MS
        } else {
            0
        }
    }

    /// Programs the block's first context for its scrub (its VRAM, no DMA,
    /// its own vector, enabled) and starts the first pass. A context an
    /// instance programmed, or one a failed scrub left, is reset and
    /// reprogrammed whole; any other is reset already, with no DMA (a
    /// device reset, or the end of its last scrub, left it so), and only
    /// gets its slice.
    fn scrub_start(&self, s: &Scrub) -> Outcome {
        let c = s.block.unit;
        let (base, size) = self.slice(&s.block);
        let whole = s.clear || matches!(s.phase, Phase::Failed);
        let vector = match self.ctx_vector(c) {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(e),
        };
        let reset = [
            (regs::CTX_CONTROL, regs::CTX_CTRL_RESET),
            (regs::CTX_XLATE_CTRL, 0),
            (regs::CTX_DMA_SIZE_LO, 0),
            (regs::CTX_DMA_SIZE_HI, 0),
        ];
        let slice = [
            (regs::CTX_VRAM_BASE_LO, base as u32),
            (regs::CTX_VRAM_BASE_HI, (base >> 32) as u32),
            (regs::CTX_VRAM_SIZE_LO, size as u32),
            (regs::CTX_VRAM_SIZE_HI, (size >> 32) as u32),
            (regs::CTX_VECTOR, vector),
            (regs::CTX_CONTROL, regs::CTX_CTRL_ENABLE),
        ];
        let prog = Iterator::chain(reset.iter().filter(|_| whole), slice.iter());
        for &(off, v) in prog {
            if let Err(e) = self.ctx_write(c, off, v) {
                return Outcome::Failed(e);
            }
        }
        self.scrub_pass(s, 0)
    }

    /// Starts pass `pass` of `s` (its context programmed), or ends the
    /// scrub if there is none left.
    fn scrub_pass(&self, s: &Scrub, pass: u32) -> Outcome {
        let c = s.block.unit;
        let (base, size) = self.slice(&s.block);
        let Some(ring) = size.checked_sub(SCRUB_RING) else {
            return Outcome::Failed(EINVAL);
        };
        let slots = SCRUB_RING / regs::DESC_SIZE as u64;
        let max = u64::from(regs::JOB_MAX_LEN);
        let Some((off, len)) = carve::scrub_passes(ring, slots, max).nth(pass as usize) else {
            return self.scrub_finish(s);
        };
        let res = (|| -> Result<Outcome> {
            let jobs = len.div_ceil(max);
            let mut descs = KVec::with_capacity(jobs as usize, GFP_KERNEL)?;
            for k in 0..jobs {
                let n = (len - k * max).min(max) as u32;
                // The last job interrupts: the pass is done.
                let flags = if k + 1 == jobs {
                    regs::DESC_FLAG_IRQ
                } else {
                    0
                };
                descs.push(
                    regs::desc_words(regs::OP_FILL, flags, 0, off + k * max, n, 0),
                    GFP_KERNEL,
                )?;
            }
            self.write_descs(base + ring, &descs)?;
            if pass > 0 {
                // The next pass starts the ring over (a context reset
                // keeps the programming and clears the user block).
                self.ctx_write(c, regs::CTX_CONTROL, regs::CTX_CTRL_RESET)?;
            }
            let since = Instant::now();
            self.start_ring(c, ring, slots as u32, 0, jobs as u32)?;
            // The user block was reset: `CTX_COMPLETED` counts from 0.
            Ok(Outcome::Running(Phase::Running {
                pass,
                jobs: jobs as u32,
                done0: 0,
                seen: 0,
                since,
            }))
        })();
        res.unwrap_or_else(Outcome::Failed)
    }

    /// Looks at a running scrub: still running, next pass, done or failed.
    fn scrub_check(&self, s: &Scrub) -> Outcome {
        let Phase::Running {
            pass,
            jobs,
            done0,
            seen,
            since,
        } = s.phase
        else {
            return Outcome::Running(s.phase);
        };
        let c = s.block.unit;
        let res = (|| -> Result<Option<u32>> {
            let done = self.ctx_read(c, regs::CTX_COMPLETED)?;
            let status = self.ctx_read(c, regs::CTX_STATUS)?;
            if status == u32::MAX {
                // Gone, or the context broke: `health` tells (and
                // remembers for the creates).
                if self.health().0 == u32::MAX {
                    return Err(ENODEV);
                }
                return Err(EIO);
            }
            let now = done.wrapping_sub(done0);
            if now >= jobs {
                return Ok(None);
            }
            if status & regs::CTX_STATUS_HALTED != 0 {
                return Err(EIO);
            }
            // A large scrub takes as long as it takes (a fresh 4 GiB pass
            // first touches all of the device's memory); one that stopped
            // completing jobs has failed.
            if now == seen && since.elapsed().as_millis() > i64::from(SCRUB_TIMEOUT_MS) {
                return Err(ETIMEDOUT);
            }
            Ok(Some(now))
        })();
        match res {
            Ok(None) => self.scrub_pass(s, pass + 1),
            Ok(Some(now)) if now != seen => Outcome::Running(Phase::Running {
                pass,
                jobs,
                done0,
                seen: now,
                since: Instant::now(),
            }),
            Ok(Some(_)) => Outcome::Running(s.phase),
            Err(e) => {
                let _ = self.ctx_write(c, regs::CTX_CONTROL, regs::CTX_CTRL_RESET);
                Outcome::Failed(e)
            }
        }
    }

    /// The fill jobs are done: the context stops (reset: no ring, nothing
    /// queued; only the driver reaches a context no instance owns), the
    /// ring goes (zeroed through the BAR), and an instance's contexts lose
    /// their windows and tables.
    fn scrub_finish(&self, s: &Scrub) -> Outcome {
        let (base, size) = self.slice(&s.block);
        let res = (|| -> Result {
            self.ctx_write(s.block.unit, regs::CTX_CONTROL, regs::CTX_CTRL_RESET)?;
            self.vram_zero(base + size - SCRUB_RING, SCRUB_RING)?;
            if s.clear {
                for c in s.block.contexts() {
                    self.ctx_clear(c)?;
                }
            }
            Ok(())
        })();
        match res {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Allocates resources of type `ty` for a new instance (or a
    /// self-test); if they are still being scrubbed, waits until they are
    /// zeroed, so that a remove followed by a create never fails for want
    /// of space that is only being cleaned.
    pub(crate) fn carve(&self, ty: usize) -> Result<(u32, Alloc)> {
        let mut c = self.carving.lock();
        if !c.life.may_start() {
            return Err(ENODEV);
        }
        let (id, a) = c.alloc.alloc(ty).map_err(|e| match e {
            carve::AllocError::BadType => EINVAL,
            carve::AllocError::NoSpace => ENOSPC,
        })?;
        if !c.alloc.is_dirty(&a) {
            return Ok((id, a));
        }
        let t0 = Instant::<Monotonic>::now();
        let res = loop {
            if !c.alloc.is_dirty(&a) {
                break Ok(());
            }
            if c.alloc.is_bad(&a) {
                break Err(EIO);
            }
            if t0.elapsed().as_millis() > CREATE_WAIT_MAX_MS {
                break Err(ETIMEDOUT);
            }
            let slice = kernel::time::msecs_to_jiffies(WATCHDOG_MS);
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } =
                self.scrubbed.wait_interruptible_timeout(&mut c, slice)
            {
                break Err(EINTR);
            }
        };
        stats::CREATE_WAIT_NS.add(stats::ns_since(t0), Relaxed);
        match res {
            Ok(()) => Ok((id, a)),
            Err(e) => {
                // Nothing ran on it: its units are as dirty as they were.
                c.alloc.free(id, false);
                Err(e)
            }
        }
    }
}

/// Queues the scrub of the whole device at bind: every unit is dirty. (A
/// scrub's block has no type; 0 stands in.)
pub(crate) fn queue_all(c: &mut Carving, contexts: u32) {
    let units = c.alloc.units();
    if units > 0 && contexts > 0 {
        c.scrubs.queue(Alloc::block(0, 0, units, contexts), false);
    }
}
