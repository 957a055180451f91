// SPDX-License-Identifier: GPL-2.0
//! The Rust side of the seam (c-shim/vslice_shim.h): the bindgen output,
//! safe owners for the C objects, and the `vslice_rs_*` functions C calls.

use kernel::{bindings::pci_dev, pci, prelude::*, sync::Arc};

use crate::parent::ParentState;

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

/// The C shim's module-wide state (debugfs root); torn down on drop.
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

/// A parent's C-side state; removed (waiting for debugfs readers) on drop.
pub(crate) struct ShimParent(*mut ffi::vslice_shim_parent);

// SAFETY: the C object is only used through the shim's functions, which
// may be called from any thread.
unsafe impl Send for ShimParent {}
// SAFETY: no method takes &self to mutate the object.
unsafe impl Sync for ShimParent {}

impl ShimParent {
    /// Registers the parent with the shim. `state` must outlive the
    /// returned object: the caller keeps an `Arc` in the same driver data
    /// and drops this object first.
    pub(crate) fn add(pdev: &pci::Device, state: &Arc<ParentState>) -> Result<Self> {
        let mut sp = core::ptr::null_mut();
        let rs = Arc::as_ptr(state).cast::<ffi::vslice_rs_parent>();
        // `pci::Device` is `#[repr(transparent)]` over `struct pci_dev`.
        let raw = core::ptr::from_ref(pdev).cast_mut().cast::<pci_dev>();
        // SAFETY: `raw` is a bound PCI device; `rs` stays valid until
        // `vslice_shim_parent_remove` (see above); `sp` is a valid out pointer.
        kernel::error::to_result(unsafe { ffi::vslice_shim_parent_add(raw, rs, &mut sp) })?;
        Ok(ShimParent(sp))
    }
}

impl ShimParent {
    /// Allocates `nvec` MSI-X vectors with the shim's handler on each;
    /// they are freed by drop.
    pub(crate) fn enable_irqs(&self, nvec: u32) -> Result {
        // SAFETY: `self.0` is a live shim parent (type invariant).
        kernel::error::to_result(unsafe { ffi::vslice_shim_irqs_enable(self.0, nvec) })
    }
}

impl Drop for ShimParent {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from a successful `vslice_shim_parent_add`
        // and is removed exactly once, here.
        unsafe { ffi::vslice_shim_parent_remove(self.0) };
    }
}

/// C asks for the parent's description (debugfs `state` file).
///
/// # Safety
///
/// `rs` must be the pointer given to `vslice_shim_parent_add`, not yet
/// removed; `info` must be valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_parent_info(
    rs: *const ffi::vslice_rs_parent,
    info: *mut ffi::vslice_parent_info,
) {
    // SAFETY: per the function's contract `rs` points to a live
    // `ParentState` (it was made from `Arc::as_ptr`).
    let state = unsafe { &*rs.cast::<ParentState>() };
    let caps = &state.caps;
    let (selftest, selftest_irqs, selftest_checksum) = state.selftest_info();
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
        })
    };
}

/// Hard-IRQ handler of MSI-X vector `vector` (C's handler forwards here).
///
/// # Safety
///
/// `rs` must be the pointer given to `vslice_shim_parent_add`, not yet
/// removed.
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_irq(
    rs: *const ffi::vslice_rs_parent,
    vector: u32,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract `rs` points to a live `ParentState`.
    let state = unsafe { &*rs.cast::<ParentState>() };
    state.irq(vector).into()
}

/// The debugfs `selftest` write (process context).
///
/// # Safety
///
/// As for [`vslice_rs_irq`].
#[no_mangle]
pub(crate) unsafe extern "C" fn vslice_rs_selftest(
    rs: *const ffi::vslice_rs_parent,
) -> kernel::ffi::c_int {
    // SAFETY: per the contract `rs` points to a live `ParentState`.
    let state = unsafe { &*rs.cast::<ParentState>() };
    match state.selftest() {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

// The definition above must match the header's declaration: bindgen's
// extern declaration and ours coerce to one fn-pointer type or fail to build.
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent, *mut ffi::vslice_parent_info); 2] =
    [ffi::vslice_rs_parent_info, vslice_rs_parent_info];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent, u32) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_irq, vslice_rs_irq];
const _: [unsafe extern "C" fn(*const ffi::vslice_rs_parent) -> kernel::ffi::c_int; 2] =
    [ffi::vslice_rs_selftest, vslice_rs_selftest];
