// SPDX-License-Identifier: GPL-2.0
//! The Rust side of the seam (c-shim/vslice_shim.h): the bindgen output,
//! safe owners for the C objects, and the `vslice_rs_*` functions C calls.
//! Every `vslice_rs_*` function is a thin adapter: pointer in, a call on
//! `ParentState` or `Instance`, errno out.

use kernel::{
    bindings::pci_dev,
    pci,
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

use crate::carve::{Lifecycle, TYPES};
use crate::instance::Instance;
use crate::parent::{Irq, ParentState, NUM_TYPES};
use crate::regs;
use crate::stats;
use crate::vdev;

#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    missing_docs,
    unreachable_pub,
    improper_ctypes,
    clippy::all
)]
mod ffi {
    use kernel::bindings::pci_dev;
    include!(concat!(
        env!("VSLICE_GEN_DIR"),
        "/c-shim/vslice_shim_bindings.rs"
    ));
}

/// The C shim's module-wide state (class, mdev driver, debugfs root).
pub(crate) struct Shim(());

impl Shim {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: called once from module init; no other shim call can run
        // before this returns.
        kernel::error::to_result(unsafe { ffi::vslice_shim_init() })?;
        Ok(Shim(()))
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        // SAFETY: `vslice_shim_init` succeeded (we exist) and the PCI
        // driver, the only user of the shim, was unregistered before (the
        // module struct declares it first, so it drops first).
        unsafe { ffi::vslice_shim_exit() };
    }
}

/// A zeroed 4 KiB page of coherent DMA memory mapped for `pdev`: (CPU,
/// bus).
pub(crate) fn page_alloc(pdev: &pci::Device) -> Result<(*mut u64, u64)> {
    let mut dma = 0;
    // `pci::Device` is `#[repr(transparent)]` over `struct pci_dev`.
    let raw = core::ptr::from_ref(pdev).cast_mut().cast::<pci_dev>();
    // SAFETY: `raw` is a bound PCI device; `dma` is valid for writes.
    let cpu = unsafe { ffi::vslice_shim_page_alloc(raw, &mut dma) };
    if cpu.is_null() {
        return Err(ENOMEM);
    }
    Ok((cpu.cast(), dma))
}

/// Frees what `page_alloc` returned for `pdev`.
pub(crate) fn page_free(pdev: &pci::Device, cpu: *mut u64, dma: u64) {
    let raw = core::ptr::from_ref(pdev).cast_mut().cast::<pci_dev>();
    // SAFETY: `cpu` and `dma` came from `page_alloc` on `pdev`, which is
    // still bound, and are freed once.
    unsafe { ffi::vslice_shim_page_free(raw, cpu.cast(), dma) };
}

/// An instance's C side (its VFIO device), for the DMA plumbing it owns:
/// pins. Valid from before the Rust instance
/// is created until after it is released.
#[derive(Clone, Copy)]
pub(crate) struct ShimInstance(*mut ffi::vslice_shim_instance);

impl ShimInstance {
    /// Pins the tenant's page at `iova` and maps it for the parent: its
    /// bus address.
    pub(crate) fn pin(self, iova: u64, write: bool) -> Result<u64> {
        let mut dma = 0;
        // SAFETY: `self.0` is live; `dma` is valid for writes.
        kernel::error::to_result(unsafe {
            ffi::vslice_shim_pin(self.0, iova, u32::from(write), &mut dma)
        })?;
        Ok(dma)
    }

    /// Undoes `pin` of the page at `iova`, mapped at `dma`.
    pub(crate) fn unpin(self, iova: u64, dma: u64, write: bool) {
        // SAFETY: `self.0` is live; the page was pinned by `pin` with
        // these arguments and is unpinned once.
        unsafe { ffi::vslice_shim_unpin(self.0, iova, dma, u32::from(write)) };
    }
}

/// A parent's C side. Dropping it runs the removal protocol (parent.rs).
pub(crate) struct ShimParent(*mut ffi::vslice_shim_parent);

// SAFETY: the C object is only used through the shim's functions, which
// may be called from any thread.
unsafe impl Send for ShimParent {}
// SAFETY: no method takes &self to mutate the object outside the shim's
// own locking.
unsafe impl Sync for ShimParent {}

impl ShimParent {
    /// Creates the parent's C side; it keeps a reference to `state` until
    /// its parent device is released.
    pub(crate) fn add(pdev: &pci::Device, state: &Arc<ParentState>) -> Result<Self> {
        let mut sp = core::ptr::null_mut();
        let rs = Arc::into_raw(state.clone()).cast::<ffi::vslice_rs_parent>();
        // `pci::Device` is `#[repr(transparent)]` over `struct pci_dev`.
        let raw = core::ptr::from_ref(pdev).cast_mut().cast::<pci_dev>();
        // SAFETY: `raw` is a bound PCI device; `rs` is an owned reference
        // that C releases through `vslice_rs_parent_put` (also on failure);
        // `sp` is a valid out pointer.
        kernel::error::to_result(unsafe { ffi::vslice_shim_parent_add(raw, rs, &mut sp) })?;
        Ok(ShimParent(sp))
    }

    /// Allocates `nvec` MSI-X vectors with the shim's handler on each.
    pub(crate) fn enable_irqs(&self, nvec: u32) -> Result {
        // SAFETY: `self.0` is a live shim parent (type invariant).
        kernel::error::to_result(unsafe { ffi::vslice_shim_irqs_enable(self.0, nvec) })
    }

    /// Registers the mdev parent: the last step of probe.
    pub(crate) fn register(&self) -> Result {
        // SAFETY: `self.0` is a live shim parent (type invariant).
        kernel::error::to_result(unsafe { ffi::vslice_shim_parent_register(self.0) })
    }
}

impl Drop for ShimParent {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from a successful `vslice_shim_parent_add`
        // and is removed exactly once, here.
        unsafe { ffi::vslice_shim_parent_remove(self.0) };
    }
}

/// # Safety
///
/// `rs` must be a pointer C got from `ShimParent::add` and still holds.
unsafe fn parent<'a>(rs: *const ffi::vslice_rs_parent) -> &'a ParentState {
    // SAFETY: per the contract it points to a live `ParentState` (made by
    // `Arc::into_raw`, whose reference C still holds).
    unsafe { &*rs.cast::<ParentState>() }
}

/// Copies `s` into a fixed C string buffer, truncating, NUL-terminated.
fn copy_str(dst: &mut [kernel::ffi::c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, &b) in dst.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = b as kernel::ffi::c_char;
    }
    if let Some(end) = dst.get_mut(n) {
        *end = 0;
    }
}

/// C asks for the parent's description (debugfs `state` file).
///
/// # Safety
///
/// `rs` as for [`parent`]; `info` must be valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_parent_info(
    rs: *const ffi::vslice_rs_parent,
    info: *mut ffi::vslice_parent_info,
) {
    // SAFETY: per the contract.
    let state = unsafe { parent(rs) };
    let caps = &state.caps;
    let (selftest, selftest_irqs, selftest_checksum) = state.selftest_info();
    let (selftest_dma_bytes, selftest_dma_in_ns, selftest_dma_out_ns) = state.selftest_dma_info();
    let (live_id, fatal_errors) = state.health();
    let (life, instances, units_used, free_ctx) = {
        let c = state.carving.lock();
        let used: u32 = c.alloc.live().map(|(_, a)| a.num_contexts()).sum();
        (
            c.life,
            c.alloc.count() as u32,
            c.alloc.units_used(),
            c.alloc.usable_contexts().saturating_sub(used),
        )
    };
    let st = match life {
        Lifecycle::Live => ffi::vslice_parent_state_VSLICE_PARENT_LIVE,
        Lifecycle::Removing => ffi::vslice_parent_state_VSLICE_PARENT_REMOVING,
        Lifecycle::Gone => ffi::vslice_parent_state_VSLICE_PARENT_GONE,
    };
    // SAFETY: `info` is valid for writes per the contract.
    unsafe {
        info.write(ffi::vslice_parent_info {
            id: caps.id,
            version: caps.version,
            contexts: caps.contexts,
            vectors: caps.vectors,
            vram_size: caps.vram_size,
            irqs_handled: state.irqs_handled(),
            selftest,
            selftest_irqs,
            selftest_checksum,
            selftest_dma_bytes,
            selftest_dma_in_ns,
            selftest_dma_out_ns,
            state: st,
            instances,
            units_used,
            free_contexts: free_ctx,
            unit_bytes: state.unit_bytes(),
            live_id,
            fatal_errors,
        })
    };
}

/// The `index`-th live instance, for debugfs; -ENOENT past the last.
///
/// # Safety
///
/// As for [`vslice_rs_parent_info`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_info(
    rs: *const ffi::vslice_rs_parent,
    index: u32,
    info: *mut ffi::vslice_instance_info,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    let state = unsafe { parent(rs) };
    let c = state.carving.lock();
    let Some((id, a)) = c.alloc.live().nth(index as usize) else {
        return ENOENT.to_errno();
    };
    let (vram_base, vram_size) = state.slice(&a);
    // SAFETY: `info` is valid for writes per the contract.
    unsafe {
        info.write(ffi::vslice_instance_info {
            id,
            type_: a.ty as u32,
            vram_base,
            vram_size,
            first_context: a.contexts().start,
            contexts: a.num_contexts(),
        })
    };
    0
}

/// Type `index`'s name and resources; -ENOENT past the last type.
///
/// # Safety
///
/// As for [`vslice_rs_parent_info`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_type_info(
    rs: *const ffi::vslice_rs_parent,
    index: u32,
    info: *mut ffi::vslice_type_info,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    let state = unsafe { parent(rs) };
    let Some(t) = TYPES.get(index as usize) else {
        return ENOENT.to_errno();
    };
    let (units, contexts) = {
        let c = state.carving.lock();
        (
            c.alloc.units_for(index as usize),
            c.alloc.contexts_for(index as usize),
        )
    };
    let mut out = ffi::vslice_type_info {
        vram_bytes: u64::from(units) * state.unit_bytes(),
        contexts,
        vectors: contexts,
        ..Default::default()
    };
    copy_str(&mut out.name, t.name);
    copy_str(&mut out.pretty, t.pretty);
    // SAFETY: `info` is valid for writes per the contract.
    unsafe { info.write(out) };
    0
}

/// `available_instances` of type `ty`.
///
/// # Safety
///
/// `rs` as for [`parent`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_available(
    rs: *const ffi::vslice_rs_parent,
    ty: u32,
) -> u32 {
    // SAFETY: per the contract.
    unsafe { parent(rs) }.available(ty as usize)
}

/// Child create: carves an instance; on success `*out` owns it until
/// `vslice_rs_instance_release`.
///
/// # Safety
///
/// `rs` as for [`parent`]; `si` the instance's C side, live until the
/// instance is released; `out` valid for writes. Called with the
/// per-parent rwsem held shared.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_create(
    rs: *const ffi::vslice_rs_parent,
    ty: u32,
    si: *mut ffi::vslice_shim_instance,
    out: *mut *mut ffi::vslice_rs_instance,
) -> kernel::ffi::c_int {
    if ty as usize >= NUM_TYPES {
        return EINVAL.to_errno();
    }
    // SAFETY: `rs` came from `Arc::into_raw` and C still holds that
    // reference, so borrowing it as an `Arc` (without consuming it) is
    // sound; `ManuallyDrop` keeps C's count untouched.
    let arc = core::mem::ManuallyDrop::new(unsafe { Arc::from_raw(rs.cast::<ParentState>()) });
    // INVARIANT: C keeps `si` alive until after the instance's release.
    match Instance::create(&arc, ty as usize, ShimInstance(si)) {
        Ok(inst) => {
            // SAFETY: `out` is valid for writes per the contract.
            unsafe { out.write(KBox::into_raw(inst).cast()) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Child remove: the instance has no users any more; capacity returns.
///
/// # Safety
///
/// `inst` must come from `vslice_rs_instance_create`, not yet released.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_remove(inst: *mut ffi::vslice_rs_instance) {
    // SAFETY: per the contract `inst` is a live `Instance`.
    unsafe { &*inst.cast::<Instance>() }.remove();
}

/// MSI-X vectors the instance exposes (one per context it owns), and in
/// `first` the device's vector behind the instance's vector 0: the rest
/// follow it.
///
/// # Safety
///
/// `inst` as for [`instance`]; `first` valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_vectors(
    inst: *const ffi::vslice_rs_instance,
    first: *mut u32,
) -> u32 {
    // SAFETY: per the contract.
    let (f, n) = unsafe { instance(inst) }.vectors();
    // SAFETY: `first` is valid for writes per the contract.
    unsafe { first.write(f) };
    n
}

/// Size and flags of region `index`; -EINVAL past the last region.
///
/// # Safety
///
/// `inst` as for [`instance`]; `info` valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_region_info(
    inst: *const ffi::vslice_rs_instance,
    index: u32,
    info: *mut ffi::vslice_region_info,
) -> kernel::ffi::c_int {
    if index >= vdev::NUM_REGIONS {
        return EINVAL.to_errno();
    }
    // SAFETY: per the contract.
    let (size, flags) = unsafe { instance(inst) }.region(index);
    // SAFETY: `info` is valid for writes per the contract.
    unsafe { info.write(ffi::vslice_region_info { size, flags }) };
    0
}

/// One piece of a region read or write: `len` bytes at `off` in region
/// `index`, to or from the kernel buffer `buf`. Returns the bytes done.
///
/// # Safety
///
/// `inst` as for [`instance`]; `buf` valid for reads and writes of `len`
/// bytes and not otherwise accessed during the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_region_rw(
    inst: *const ffi::vslice_rs_instance,
    index: u32,
    off: u64,
    buf: *mut u8,
    len: u32,
    write: u32,
) -> i64 {
    // SAFETY: per the contract `buf` holds `len` bytes that only we touch.
    let b = unsafe { core::slice::from_raw_parts_mut(buf, len as usize) };
    // SAFETY: per the contract.
    match unsafe { instance(inst) }.rw(index, off, b, write != 0) {
        Ok(n) => n as i64,
        Err(e) => e.to_errno().into(),
    }
}

/// mmap of `len` bytes at `off` in region `index`: 0 if that range may be
/// mapped (inside the VRAM slice, whole pages), -EINVAL otherwise.
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mmap_check(
    inst: *const ffi::vslice_rs_instance,
    index: u32,
    off: u64,
    len: u64,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    match unsafe { instance(inst) }.mmap_check(index, off, len) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// A fault on the VRAM mapping at slice offset `off` (C holds the
/// instance's `memory_lock` shared): the physical address to map there,
/// or -EIO while the BARs do not decode.
///
/// # Safety
///
/// `inst` as for [`instance`]; `phys` valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mmap_fault(
    inst: *const ffi::vslice_rs_instance,
    off: u64,
    phys: *mut u64,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    match unsafe { instance(inst) }.mmap_fault(off) {
        Ok(p) => {
            // SAFETY: `phys` is valid for writes per the contract.
            unsafe { phys.write(p) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// 1 if the instance's BARs decode, 0 if not (C zaps the mapping then).
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_decodes(
    inst: *const ffi::vslice_rs_instance,
) -> u32 {
    // SAFETY: per the contract.
    u32::from(unsafe { instance(inst) }.decodes())
}

/// The instance is being taken from a user who ignored REQ.
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_revoke(inst: *const ffi::vslice_rs_instance) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.revoke();
}

/// The device reported a fatal error (process context, from the shim's
/// work item): the instance stops answering until it is reset.
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_fail(inst: *const ffi::vslice_rs_instance) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.fail();
}

/// `VFIO_DEVICE_RESET`: the instance's function reset.
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_reset(
    inst: *const ffi::vslice_rs_instance,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    match unsafe { instance(inst) }.reset() {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The translation faults the instance's contexts wait on (the parent's
/// fault work, process context).
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_faults(inst: *const ffi::vslice_rs_instance) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.faults();
}

/// The VFIO core's `dma_unmap`: the tenant unmapped [`iova`, `iova + len`).
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_dma_unmap(
    inst: *const ffi::vslice_rs_instance,
    iova: u64,
    len: u64,
) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.dma_unmap(iova, len);
}

/// After a reset or the last close: every translation and pin goes.
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_unpin_all(inst: *const ffi::vslice_rs_instance) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.unpin_all();
}

/// Whether an error a user can repeat at will may be logged now: the
/// module's rate limit (the kernel's default interval and burst).
pub(crate) fn err_ratelimit() -> bool {
    // SAFETY: no arguments; C's ratelimit state is static.
    unsafe { ffi::vslice_shim_err_ratelimit() != 0 }
}

/// Borrows a live instance.
///
/// # Safety
///
/// `inst` must come from `vslice_rs_instance_create` and not be released
/// before the returned borrow ends.
unsafe fn instance<'a>(inst: *const ffi::vslice_rs_instance) -> &'a Instance {
    // SAFETY: per the contract `inst` is a live `Instance`.
    unsafe { &*inst.cast::<Instance>() }
}

/// The VFIO device's last reference: frees the instance.
///
/// # Safety
///
/// `inst` must come from `vslice_rs_instance_create`; it is invalid after.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_instance_release(inst: *mut ffi::vslice_rs_instance) {
    // SAFETY: per the contract `inst` came from `KBox::into_raw` and is
    // released exactly once.
    drop(unsafe { KBox::from_raw(inst.cast::<Instance>()) });
}

/// Unbind step 1, with the rwsem held exclusive: Live → Removing.
///
/// # Safety
///
/// `rs` as for [`parent`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_parent_removing(rs: *const ffi::vslice_rs_parent) {
    // SAFETY: per the contract.
    unsafe { parent(rs) }.set_life(Lifecycle::Removing);
}

/// Unbind step 3: stop the hardware; Removing → Gone.
///
/// # Safety
///
/// `rs` as for [`parent`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_parent_quiesce(rs: *const ffi::vslice_rs_parent) {
    // SAFETY: per the contract.
    unsafe { parent(rs) }.quiesce();
}

/// C drops its reference to the parent state (its parent device's release).
///
/// # Safety
///
/// `rs` as for [`parent`]; C must not use it afterwards.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_parent_put(rs: *const ffi::vslice_rs_parent) {
    // SAFETY: the reference `ShimParent::add` gave to C via `Arc::into_raw`.
    drop(unsafe { Arc::from_raw(rs.cast::<ParentState>()) });
}

/// Hard-IRQ handler of MSI-X vector `vector` (C's handler forwards here).
///
/// # Safety
///
/// `rs` as for [`parent`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_irq(
    rs: *const ffi::vslice_rs_parent,
    vector: u32,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    unsafe { parent(rs) }.irq(vector) as kernel::ffi::c_int
}

/// The debugfs `selftest` write (process context, rwsem held shared):
/// `dma_len` bytes for its DMA pass (0 or 1: the default).
///
/// # Safety
///
/// `rs` as for [`parent`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_selftest(
    rs: *const ffi::vslice_rs_parent,
    dma_len: u64,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    match unsafe { parent(rs) }.selftest(dma_len) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Module-wide object counts for debugfs `vslice/stats`.
///
/// # Safety
///
/// `out` must be valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_stats(out: *mut ffi::vslice_stats) {
    let (instances_made, instances_released) = stats::INSTANCES.get();
    let (parents_made, parents_released) = stats::PARENTS.get();
    // SAFETY: `out` is valid for writes per the contract.
    unsafe {
        out.write(ffi::vslice_stats {
            instances_made,
            instances_released,
            parents_made,
            parents_released,
            mmap_faults: stats::MMAP_FAULTS.load(Relaxed),
            pinned_pages: stats::PINNED_PAGES.load(Relaxed),
            dma_faults_resolved: stats::DMA_FAULTS_RESOLVED.load(Relaxed),
            dma_faults_refused: stats::DMA_FAULTS_REFUSED.load(Relaxed),
        })
    };
}

// Each definition above must match the header's declaration: bindgen's
// extern declaration and ours coerce to one fn-pointer type or fail to build.
const _: [unsafe extern "C" fn(*mut ffi::vslice_stats); 2] =
    [ffi::vslice_rs_stats, vslice_rs_stats];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent, *mut ffi::vslice_parent_info); 2] =
    [ffi::vslice_rs_parent_info, vslice_rs_parent_info];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_parent,
    u32,
    *mut ffi::vslice_instance_info,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_instance_info, vslice_rs_instance_info];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_parent,
    u32,
    *mut ffi::vslice_type_info,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_type_info, vslice_rs_type_info];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent, u32) -> u32; 2] =
    [ffi::vslice_rs_available, vslice_rs_available];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_parent,
    u32,
    *mut ffi::vslice_shim_instance,
    *mut *mut ffi::vslice_rs_instance,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_instance_create, vslice_rs_instance_create];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance); 2] =
    [ffi::vslice_rs_instance_faults, vslice_rs_instance_faults];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance); 2] = [
    ffi::vslice_rs_instance_unpin_all,
    vslice_rs_instance_unpin_all,
];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance, u64, u64); 2] = [
    ffi::vslice_rs_instance_dma_unmap,
    vslice_rs_instance_dma_unmap,
];
const _: [unsafe extern "C" fn(*mut ffi::vslice_rs_instance); 2] =
    [ffi::vslice_rs_instance_remove, vslice_rs_instance_remove];
const _: [unsafe extern "C" fn(*mut ffi::vslice_rs_instance); 2] =
    [ffi::vslice_rs_instance_release, vslice_rs_instance_release];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent); 2] =
    [ffi::vslice_rs_parent_removing, vslice_rs_parent_removing];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent); 2] =
    [ffi::vslice_rs_parent_quiesce, vslice_rs_parent_quiesce];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent); 2] =
    [ffi::vslice_rs_parent_put, vslice_rs_parent_put];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent, u32) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_irq, vslice_rs_irq];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent, u64) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_selftest, vslice_rs_selftest];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance, *mut u32) -> u32; 2] =
    [ffi::vslice_rs_instance_vectors, vslice_rs_instance_vectors];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_instance,
    u32,
    *mut ffi::vslice_region_info,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_region_info, vslice_rs_region_info];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_instance,
    u32,
    u64,
    *mut u8,
    u32,
    u32,
) -> i64; 2] = [ffi::vslice_rs_region_rw, vslice_rs_region_rw];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_instance,
    u32,
    u64,
    u64,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_mmap_check, vslice_rs_mmap_check];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_instance,
    u64,
    *mut u64,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_mmap_fault, vslice_rs_mmap_fault];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance) -> u32; 2] =
    [ffi::vslice_rs_instance_decodes, vslice_rs_instance_decodes];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance); 2] =
    [ffi::vslice_rs_instance_revoke, vslice_rs_instance_revoke];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance); 2] =
    [ffi::vslice_rs_instance_fail, vslice_rs_instance_fail];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_instance_reset, vslice_rs_instance_reset];
// The region flags are the uapi's (the C shim asserts the uapi side).
const _: () = assert!(vdev::REGION_READ == ffi::VSLICE_REGION_READ);
const _: () = assert!(vdev::REGION_WRITE == ffi::VSLICE_REGION_WRITE);
const _: () = assert!(vdev::REGION_MMAP == ffi::VSLICE_REGION_MMAP);
const _: () = assert!(vdev::NUM_REGIONS == ffi::VSLICE_NUM_REGIONS);
// What vslice_rs_irq() returns is the header's enum vslice_irq_kind.
const _: () = assert!(Irq::None as u32 == ffi::vslice_irq_kind_VSLICE_IRQ_NONE);
const _: () = assert!(Irq::Handled as u32 == ffi::vslice_irq_kind_VSLICE_IRQ_HANDLED);
const _: () = assert!(Irq::Route as u32 == ffi::vslice_irq_kind_VSLICE_IRQ_ROUTE);
const _: () = assert!(Irq::Fatal as u32 == ffi::vslice_irq_kind_VSLICE_IRQ_FATAL);
const _: () = assert!(Irq::Xlate as u32 == ffi::vslice_irq_kind_VSLICE_IRQ_XLATE);
// The seam's limits agree with Rust's.
const _: () = assert!(TYPES.len() <= ffi::VSLICE_MAX_TYPES as usize);
const _: () = assert!(regs::MAX_CONTEXTS as usize <= 256);
