// SPDX-License-Identifier: GPL-2.0
//! The register-access hot path does not allocate: a counting global
//! allocator (this test binary only) watches valid BAR0, config and VRAM
//! accesses through the vfio-user backend, doorbells included.
//!
//! Only the test's own thread is counted: libtest's main thread books the
//! running test (a map insert, a timeout queue push) while the test already
//! runs, and on a loaded machine those allocations land inside the window.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use vfio_bindings::bindings::vfio::*;
use vfio_user::ServerBackend;
use vslice_hw_sim::device::{Backend, Device, DeviceParams, Shared};
use vslice_hw_sim::faults::Faults;
use vslice_hw_sim::regs::*;

struct Counting;

thread_local! {
    // Const-initialised and without a destructor, so reading it from the
    // allocator never allocates or registers anything.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn register_hot_path_does_not_allocate() {
    let dev = Device::new(DeviceParams::default(), Arc::new(Faults::default())).unwrap();
    let mut b = Backend(Shared::new(dev));
    let mut buf = [0u8; 4];
    let mut vram = [0u8; 64];
    let before = allocs();
    for i in 0..10_000u32 {
        b.region_read(VFIO_PCI_BAR0_REGION_INDEX, REG_ID as u64, &mut buf)
            .unwrap();
        b.region_write(VFIO_PCI_BAR0_REGION_INDEX, REG_SCRATCH as u64, &i.to_le_bytes())
            .unwrap();
        let ctx = ctx_window(i % DEFAULT_CONTEXTS) as u64;
        b.region_read(VFIO_PCI_BAR0_REGION_INDEX, ctx + CTX_STATUS as u64, &mut buf)
            .unwrap();
        b.region_write(VFIO_PCI_BAR0_REGION_INDEX, ctx + CTX_DOORBELL as u64, &buf)
            .unwrap();
        b.region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut buf).unwrap();
        b.region_read(VFIO_PCI_BAR2_REGION_INDEX, u64::from(i) * 64, &mut vram)
            .unwrap();
    }
    assert_eq!(allocs() - before, 0);
}

/// The counter sees this thread's allocations (else the test above would
/// pass vacuously).
#[test]
fn the_counter_sees_allocations() {
    let before = allocs();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert!(allocs() > before, "an allocation of {} bytes was not counted", v.len());
}
