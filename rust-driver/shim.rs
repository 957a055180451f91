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
use crate::migrate::{self, Stream};
use crate::parent::{Irq, ParentState, NUM_TYPES};
use crate::regs;
use crate::scrub;
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

/// `len` zeroed bytes of coherent DMA memory mapped for `pdev`: (CPU,
/// bus).
pub(crate) fn coherent_alloc(pdev: &pci::Device, len: u64) -> Result<(*mut u64, u64)> {
    let mut dma = 0;
    // `pci::Device` is `#[repr(transparent)]` over `struct pci_dev`.
    let raw = core::ptr::from_ref(pdev).cast_mut().cast::<pci_dev>();
    // SAFETY: `raw` is a bound PCI device; `dma` is valid for writes.
    let cpu = unsafe { ffi::vslice_shim_coherent_alloc(raw, len, &mut dma) };
    if cpu.is_null() {
        return Err(ENOMEM);
    }
    Ok((cpu.cast(), dma))
}

/// Frees what `coherent_alloc` returned for `pdev` and `len`.
pub(crate) fn coherent_free(pdev: &pci::Device, len: u64, cpu: *mut u64, dma: u64) {
    let raw = core::ptr::from_ref(pdev).cast_mut().cast::<pci_dev>();
    // SAFETY: `cpu` and `dma` came from `coherent_alloc` on `pdev` with
    // `len`; the device is still bound; freed once.
    unsafe { ffi::vslice_shim_coherent_free(raw, len, cpu.cast(), dma) };
}

/// CRC-32C of `buf`, continuing from `crc` (the kernel's implementation).
pub(crate) fn crc32c(crc: u32, buf: &[u8]) -> u32 {
    // SAFETY: `buf` is valid for reads of its length.
    unsafe { ffi::vslice_shim_crc32c(crc, buf.as_ptr(), buf.len() as u64) }
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

    /// Write-protects the instance's VRAM mapping: every page's next CPU
    /// write faults and is logged. No lock of the shim's held but
    /// `state_mutex` or a data file's.
    pub(crate) fn vram_wp(self) {
        // SAFETY: `self.0` is live.
        unsafe { ffi::vslice_shim_vram_wp(self.0) };
    }
}

/// A parent's C side as the owner of its MSI-X vectors, kept by
/// `ParentState` to make a context's vector ready before programming it.
#[derive(Clone, Copy)]
pub(crate) struct ShimVectors(*mut ffi::vslice_shim_parent);

// SAFETY: `vslice_shim_irq_use` may be called from any thread; it takes the
// shim's own lock.
unsafe impl Send for ShimVectors {}
// SAFETY: as for `Send`; the pointer itself never changes.
unsafe impl Sync for ShimVectors {}

impl ShimVectors {
    /// Makes the parent's MSI-X vector `h` ready to be raised: allocated
    /// and its handler requested (once; the shim keeps it until unbind).
    /// Sleeps.
    pub(crate) fn use_vector(self, h: u32) -> Result {
        // SAFETY: the shim parent is freed only by its device's release,
        // after `vslice_shim_parent_remove`, by when nothing that programs a
        // context runs any more (instances removed, self-test excluded by
        // the rwsem and `Gone`, scrub work cancelled); the call refuses
        // with ENODEV once unbind freed the vectors.
        kernel::error::to_result(unsafe { ffi::vslice_shim_irq_use(self.0, h) })
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
        state.attach_vectors(ShimVectors(sp));
        Ok(ShimParent(sp))
    }

    /// Enables MSI-X with `nvec` vectors, each requested with the shim's
    /// handler now or by [`ShimVectors::use_vector`].
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
    let (life, instances, units, used, dirty, bad, pending, free_ctx) = {
        let c = state.carving.lock();
        let taken: u32 = c.alloc.live().map(|(_, a)| a.num_contexts()).sum();
        (
            c.life,
            c.alloc.count() as u32,
            c.alloc.units(),
            c.alloc.units_used(),
            c.alloc.dirty().count(),
            c.alloc.bad().count(),
            c.scrubs.pending(),
            c.alloc.usable_contexts().saturating_sub(taken),
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
            units,
            units_used: used.0,
            units_dirty: dirty,
            units_bad: bad,
            scrubs_pending: pending,
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

/// A fault on the VRAM mapping at slice offset `off`, a write if `write`
/// (C holds the instance's `memory_lock` shared): the physical address to
/// map there, or -EIO while the BARs do not decode; `wp` 1 while CPU
/// writes are logged (the shim maps read-only what is not written).
///
/// # Safety
///
/// `inst` as for [`instance`]; `phys` and `wp` valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mmap_fault(
    inst: *const ffi::vslice_rs_instance,
    off: u64,
    write: u32,
    phys: *mut u64,
    wp: *mut u32,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    match unsafe { instance(inst) }.mmap_fault(off, write != 0) {
        Ok((p, logging)) => {
            // SAFETY: `phys` and `wp` are valid for writes per the contract.
            unsafe {
                phys.write(p);
                wp.write(u32::from(logging));
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// A CPU write to the read-only mapped VRAM page at slice offset `off`.
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mmap_mkwrite(
    inst: *const ffi::vslice_rs_instance,
    off: u64,
) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.log_cpu_write(off, 1);
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

/// Pre-copy: what CPU writes logged moves to the saving stream (the shim
/// holds `memory_lock` exclusive and zapped the mapping).
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_cpu_log_rotate(inst: *const ffi::vslice_rs_instance) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.rotate_cpu_log();
}

fn errno(r: Result) -> kernel::ffi::c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Freezes (`freeze` 1) or thaws (0) every context of the instance.
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_freeze(
    inst: *const ffi::vslice_rs_instance,
    freeze: u32,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    errno(unsafe { instance(inst) }.freeze(freeze != 0))
}

/// Hands a new stream to C: `*out` owns it until `vslice_rs_mig_free`.
///
/// # Safety
///
/// `out` valid for writes.
unsafe fn give_stream(
    s: Result<Stream>,
    out: *mut *mut ffi::vslice_rs_stream,
) -> kernel::ffi::c_int {
    match s.and_then(|s| Ok(KBox::new(s, GFP_KERNEL)?)) {
        Ok(b) => {
            // SAFETY: `out` is valid for writes per the contract.
            unsafe { out.write(KBox::into_raw(b).cast()) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// A saving stream of the instance (`precopy`: logging writes, running).
///
/// # Safety
///
/// `inst` as for [`instance`], and live until the stream is freed (the
/// shim frees it before the device's last close returns); `out` valid for
/// writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_save(
    inst: *const ffi::vslice_rs_instance,
    precopy: u32,
    out: *mut *mut ffi::vslice_rs_stream,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    let s = Stream::save(unsafe { instance(inst) }, precopy != 0);
    // SAFETY: `out` is valid for writes per the contract.
    unsafe { give_stream(s, out) }
}

/// A resuming stream into the instance.
///
/// # Safety
///
/// As for [`vslice_rs_mig_save`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_resume(
    inst: *const ffi::vslice_rs_instance,
    out: *mut *mut ffi::vslice_rs_stream,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    let s = Stream::resume(unsafe { instance(inst) });
    // SAFETY: `out` is valid for writes per the contract.
    unsafe { give_stream(s, out) }
}

/// The stream behind `st`.
///
/// # Safety
///
/// `st` must come from `vslice_rs_mig_save` or `_resume`, not yet freed,
/// and not be used by anyone else during the call (the data file's lock).
unsafe fn stream<'a>(st: *mut ffi::vslice_rs_stream) -> &'a mut Stream {
    // SAFETY: per the contract `st` is a live `Stream` only we use.
    unsafe { &mut *st.cast::<Stream>() }
}

/// PRE_COPY_P2P -> STOP_COPY.
///
/// # Safety
///
/// `st` as for [`stream`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_stop_copy(
    st: *mut ffi::vslice_rs_stream,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    errno(unsafe { stream(st) }.stop_copy())
}

/// Up to `len` stream bytes into `buf`; 0 at the end, -ENOMSG at
/// pre-copy's temporary end.
///
/// # Safety
///
/// `st` as for [`stream`]; `buf` valid for writes of `len` bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_read(
    st: *mut ffi::vslice_rs_stream,
    buf: *mut u8,
    len: u32,
) -> i64 {
    // SAFETY: per the contract `buf` holds `len` bytes that only we touch.
    let b = unsafe { core::slice::from_raw_parts_mut(buf, len as usize) };
    // SAFETY: per the contract.
    match unsafe { stream(st) }.read(b) {
        Ok(n) => n as i64,
        Err(e) => e.to_errno().into(),
    }
}

/// VFIO_MIG_GET_PRECOPY_INFO.
///
/// # Safety
///
/// `st` as for [`stream`]; `initial` and `dirty` valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_precopy_info(
    st: *mut ffi::vslice_rs_stream,
    initial: *mut u64,
    dirty: *mut u64,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    match unsafe { stream(st) }.precopy_info() {
        Ok((i, d)) => {
            // SAFETY: valid for writes per the contract.
            unsafe {
                initial.write(i);
                dirty.write(d);
            }
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// `len` bytes of a resuming stream; the bytes taken or an errno.
///
/// # Safety
///
/// `st` as for [`stream`]; `buf` valid for reads of `len` bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_write(
    st: *mut ffi::vslice_rs_stream,
    buf: *const u8,
    len: u32,
) -> i64 {
    // SAFETY: per the contract.
    let b = unsafe { core::slice::from_raw_parts(buf, len as usize) };
    // SAFETY: per the contract.
    match unsafe { stream(st) }.write(b) {
        Ok(n) => n as i64,
        Err(e) => e.to_errno().into(),
    }
}

/// RESUMING -> STOP: check and load what was written.
///
/// # Safety
///
/// `st` as for [`stream`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_load(
    st: *mut ffi::vslice_rs_stream,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract.
    errno(unsafe { stream(st) }.load())
}

/// Frees a stream.
///
/// # Safety
///
/// `st` as for [`stream`]; not used again.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_free(st: *mut ffi::vslice_rs_stream) {
    // SAFETY: `st` came from `KBox::into_raw` in `give_stream`.
    drop(unsafe { KBox::from_raw(st.cast::<Stream>()) });
}

/// Bytes of a STOP_COPY stream of the instance from now: what the saving
/// stream `st` still has to produce, or (`st` null) a whole stream.
///
/// # Safety
///
/// `inst` as for [`instance`]; `st` null or as for [`stream`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_mig_data_size(
    inst: *const ffi::vslice_rs_instance,
    st: *mut ffi::vslice_rs_stream,
) -> u64 {
    // SAFETY: per the contract.
    let whole = migrate::stop_copy_len(unsafe { instance(inst) });
    if st.is_null() {
        return whole;
    }
    // SAFETY: per the contract.
    unsafe { stream(st) }.stop_copy_left().unwrap_or(whole)
}

/// VFIO DMA logging on (`on` 1) or off.
///
/// # Safety
///
/// `inst` as for [`instance`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_dma_log(inst: *const ffi::vslice_rs_instance, on: u32) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.dma_log(on != 0);
}

/// VFIO DMA logging's report of [`iova`, `iova + len`) into `dirty`.
///
/// # Safety
///
/// `inst` as for [`instance`]; `dirty` the core's `iova_bitmap` for this
/// report.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_dma_log_report(
    inst: *const ffi::vslice_rs_instance,
    iova: u64,
    len: u64,
    dirty: *mut kernel::ffi::c_void,
) {
    // SAFETY: per the contract.
    unsafe { instance(inst) }.dma_log_report(iova, len, |at, n| {
        // SAFETY: `dirty` is the report's bitmap, live during the call.
        unsafe { ffi::vslice_shim_log_dirty(dirty, at, n) }
    });
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

/// The shim's scrub work: advances the scrubs; the milliseconds after
/// which to run again, 0 if none runs.
///
/// # Safety
///
/// `rs` as for [`parent`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_scrub_work(rs: *const ffi::vslice_rs_parent) -> u32 {
    // SAFETY: per the contract.
    unsafe { parent(rs) }.scrub_work()
}

/// 0 unless a scrub is queued on a live parent; then the window (ms)
/// within which the shim runs the scrub work after a release.
///
/// # Safety
///
/// `rs` as for [`parent`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_scrub_wanted(rs: *const ffi::vslice_rs_parent) -> u32 {
    // SAFETY: per the contract.
    let c = unsafe { parent(rs) }.carving.lock();
    if c.life == Lifecycle::Live && c.scrubs.pending() > 0 {
        scrub::BATCH_MS
    } else {
        0
    }
}

/// debugfs `scrub_hold`: queued scrubs wait (`on`) or go (the shim then
/// kicks the scrub work).
///
/// # Safety
///
/// `rs` as for [`parent`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_scrub_hold(rs: *const ffi::vslice_rs_parent, on: u32) {
    // SAFETY: per the contract.
    unsafe { parent(rs) }.carving.lock().scrubs.held = on != 0;
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
            creates: stats::CREATES.load(Relaxed),
            create_ns: stats::CREATE_NS.load(Relaxed),
            create_wait_ns: stats::CREATE_WAIT_NS.load(Relaxed),
            removes: stats::REMOVES.load(Relaxed),
            remove_ns: stats::REMOVE_NS.load(Relaxed),
            programs: stats::PROGRAMS.load(Relaxed),
            program_ns: stats::PROGRAM_NS.load(Relaxed),
            scrubs: stats::SCRUBS.load(Relaxed),
            scrub_ns: stats::SCRUB_NS.load(Relaxed),
            scrub_failures: stats::SCRUB_FAILURES.load(Relaxed),
            driver_bytes: stats::DRIVER_BYTES.load(Relaxed),
            mig_jobs_moved: stats::MIG_JOBS_MOVED.load(Relaxed),
            mig_jobs_resumed: stats::MIG_JOBS_RESUMED.load(Relaxed),
        })
    };
}

// Each definition above must match the header's declaration: bindgen's
// extern declaration and ours coerce to one fn-pointer type or fail to build.
const _: [unsafe extern "C" fn(*mut ffi::vslice_stats); 2] =
    [ffi::vslice_rs_stats, vslice_rs_stats];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent) -> u32; 2] =
    [ffi::vslice_rs_scrub_work, vslice_rs_scrub_work];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent, u32); 2] =
    [ffi::vslice_rs_scrub_hold, vslice_rs_scrub_hold];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent) -> u32; 2] =
    [ffi::vslice_rs_scrub_wanted, vslice_rs_scrub_wanted];
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
    u32,
    *mut u64,
    *mut u32,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_mmap_fault, vslice_rs_mmap_fault];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance, u64); 2] =
    [ffi::vslice_rs_mmap_mkwrite, vslice_rs_mmap_mkwrite];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance) -> u32; 2] =
    [ffi::vslice_rs_instance_decodes, vslice_rs_instance_decodes];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance); 2] =
    [ffi::vslice_rs_instance_revoke, vslice_rs_instance_revoke];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance); 2] =
    [ffi::vslice_rs_instance_fail, vslice_rs_instance_fail];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_instance_reset, vslice_rs_instance_reset];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance); 2] =
    [ffi::vslice_rs_cpu_log_rotate, vslice_rs_cpu_log_rotate];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance, u32) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_mig_freeze, vslice_rs_mig_freeze];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_instance,
    u32,
    *mut *mut ffi::vslice_rs_stream,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_mig_save, vslice_rs_mig_save];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_instance,
    *mut *mut ffi::vslice_rs_stream,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_mig_resume, vslice_rs_mig_resume];
const _: [unsafe extern "C" fn(*mut ffi::vslice_rs_stream) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_mig_stop_copy, vslice_rs_mig_stop_copy];
const _: [unsafe extern "C" fn(*mut ffi::vslice_rs_stream) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_mig_load, vslice_rs_mig_load];
const _: [unsafe extern "C" fn(*mut ffi::vslice_rs_stream, *mut u8, u32) -> i64; 2] =
    [ffi::vslice_rs_mig_read, vslice_rs_mig_read];
const _: [unsafe extern "C" fn(*mut ffi::vslice_rs_stream, *const u8, u32) -> i64; 2] =
    [ffi::vslice_rs_mig_write, vslice_rs_mig_write];
const _: [unsafe extern "C" fn(
    *mut ffi::vslice_rs_stream,
    *mut u64,
    *mut u64,
) -> kernel::ffi::c_int; 2] = [ffi::vslice_rs_mig_precopy_info, vslice_rs_mig_precopy_info];
const _: [unsafe extern "C" fn(*mut ffi::vslice_rs_stream); 2] =
    [ffi::vslice_rs_mig_free, vslice_rs_mig_free];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance, *mut ffi::vslice_rs_stream) -> u64;
    2] = [ffi::vslice_rs_mig_data_size, vslice_rs_mig_data_size];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_instance, u32); 2] =
    [ffi::vslice_rs_dma_log, vslice_rs_dma_log];
const _: [unsafe extern "C" fn(
    *const ffi::vslice_rs_instance,
    u64,
    u64,
    *mut kernel::ffi::c_void,
); 2] = [ffi::vslice_rs_dma_log_report, vslice_rs_dma_log_report];
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
const _: () = assert!(Irq::Scrub as u32 == ffi::vslice_irq_kind_VSLICE_IRQ_SCRUB);
// The seam's limits agree with Rust's.
const _: () = assert!(TYPES.len() <= ffi::VSLICE_MAX_TYPES as usize);
const _: () = assert!(regs::MAX_CONTEXTS as usize <= 256);
const _: () = assert!(regs::MAX_CONTEXTS <= crate::carve::MAX_UNITS);
