// SPDX-License-Identifier: GPL-2.0
//! Module-wide object counts: every `Instance` and `ParentState` holds a
//! `Token` from its `Count`, so "made - released" is the number alive;
//! the VRAM mapping faults served, the tenant pages pinned for DMA, where
//! a create's and a remove's time goes, the scrubs, and the jobs
//! migration moved.
//! debugfs `vslice/stats` shows them; the reliability suite checks after
//! every cycle that they match what sysfs shows (no leaked references).
//! Lock-free: relaxed atomics, read without a lock (a snapshot).

use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::time::{Instant, Monotonic};

/// Objects of one kind made and released since the module loaded.
pub(crate) struct Count {
    made: Atomic<u64>,
    released: Atomic<u64>,
}

impl Count {
    const fn new() -> Self {
        Count {
            made: Atomic::new(0),
            released: Atomic::new(0),
        }
    }

    /// Counts one object made; the token counts it released when dropped.
    pub(crate) fn token(&'static self) -> Token {
        self.made.add(1, Relaxed);
        Token(self)
    }

    /// (made, released).
    pub(crate) fn get(&self) -> (u64, u64) {
        (self.made.load(Relaxed), self.released.load(Relaxed))
    }
}

/// Held by a counted object for its whole life.
pub(crate) struct Token(&'static Count);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.released.add(1, Relaxed);
    }
}

/// Instances (made: the object existed, even if creation then failed).
pub(crate) static INSTANCES: Count = Count::new();
/// Parent states (one per successful bind, released at the last `Arc`).
pub(crate) static PARENTS: Count = Count::new();
/// VRAM mapping faults served (each maps the window around it): a
/// mapping the driver zapped comes back only through here.
pub(crate) static MMAP_FAULTS: Atomic<u64> = Atomic::new(0);
/// Tenant pages pinned for the device's DMA now, every instance: back to
/// 0 whenever no instance has DMA mapped (tests check it after each).
pub(crate) static PINNED_PAGES: Atomic<u64> = Atomic::new(0);
/// Translation faults answered by mapping the pages (FAULT_RESUME).
pub(crate) static DMA_FAULTS_RESOLVED: Atomic<u64> = Atomic::new(0);
/// Translation faults refused: the job failed (FAULT_ABORT).
pub(crate) static DMA_FAULTS_REFUSED: Atomic<u64> = Atomic::new(0);
/// Creates that succeeded, and where their time went in the driver (ns):
/// all of it (allocations and carving included), and of it the wait for
/// units still being scrubbed. What a create costs beyond this is the
/// mdev and VFIO cores' (the bench sets the two against each other).
pub(crate) static CREATES: Atomic<u64> = Atomic::new(0);
pub(crate) static CREATE_NS: Atomic<u64> = Atomic::new(0);
pub(crate) static CREATE_WAIT_NS: Atomic<u64> = Atomic::new(0);
/// Removes, and their time in the driver (ns).
pub(crate) static REMOVES: Atomic<u64> = Atomic::new(0);
pub(crate) static REMOVE_NS: Atomic<u64> = Atomic::new(0);
/// Instances whose contexts were programmed (at their first open), and
/// the time that took (ns).
pub(crate) static PROGRAMS: Atomic<u64> = Atomic::new(0);
pub(crate) static PROGRAM_NS: Atomic<u64> = Atomic::new(0);
/// Scrubs done (time from the release to zeroed, ns, in the background)
/// and failed.
pub(crate) static SCRUBS: Atomic<u64> = Atomic::new(0);
pub(crate) static SCRUB_NS: Atomic<u64> = Atomic::new(0);
pub(crate) static SCRUB_FAILURES: Atomic<u64> = Atomic::new(0);

/// Bytes of memory the driver itself holds now for its instances: each
/// `Instance` with the boxes it owns, and every coherent page (translation
/// tables; the self-test's buffers while it runs). The kernel's device
/// model (mdev, VFIO device, sysfs) is not in it: the bench sets the two
/// apart.
pub(crate) static DRIVER_BYTES: Atomic<u64> = Atomic::new(0);

/// Nanoseconds since `t0`.
pub(crate) fn ns_since(t0: Instant<Monotonic>) -> u64 {
    t0.elapsed().as_nanos().max(0) as u64
}

/// Jobs a loaded migration state carried (queued or part-done, every
/// context): what the destination goes on with.
pub(crate) static MIG_JOBS_MOVED: Atomic<u64> = Atomic::new(0);
/// Of those, jobs stopped part of the way through on the source and
/// resumed from there (`CTX_MIG_JOB_DONE` > 0).
pub(crate) static MIG_JOBS_RESUMED: Atomic<u64> = Atomic::new(0);
