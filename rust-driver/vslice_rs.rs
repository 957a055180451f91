// SPDX-License-Identifier: GPL-2.0
//! vslice: carves a GPU/NIC-like PCI device into VFIO mediated devices.
//!
//! This is the Rust crate of the composite module `vslice.ko`; the C half
//! lives in c-shim/ and is reached only through `shim`.

use kernel::{pci, prelude::*};

mod carve;
mod dma;
mod driver;
mod instance;
mod migrate;
mod parent;
mod regs;
mod scrub;
mod shim;
mod stats;
mod vdev;

#[pin_data]
struct VsliceModule {
    // Declared first so that it drops first: every device is unbound
    // before the shim's module-wide state goes away.
    #[pin]
    _pci: kernel::driver::Registration<pci::Adapter<driver::VsliceDriver>>,
    _shim: shim::Shim,
}

impl kernel::InPlaceModule for VsliceModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _shim: shim::Shim::new().inspect_err(|e| pr_err!("vslice: shim init failed: {:?}\n", e))?,
            _pci <- kernel::driver::Registration::new(c"vslice", module),
        })
    }
}

module! {
    type: VsliceModule,
    name: "vslice",
    authors: ["vslice developers"],
    description: "Mediated (mdev) slices of a GPU/NIC-like PCI device",
    license: "GPL v2",
}
