// SPDX-License-Identifier: GPL-2.0
//! The vslice PCI driver: binds the device, maps its BARs, reads and checks
//! the capability registers, resets and enables it, and registers the
//! parent with the C shim (debugfs, MSI-X vectors) as the last step.
//!
//! Teardown is the removal protocol written at the top of parent.rs; it
//! runs when the driver data drops.

use kernel::{
    device::Core,
    dma::{self, DmaMask},
    io::Io,
    pci,
    prelude::*,
    sync::Arc,
};

use crate::parent::ParentState;
use crate::regs::{self, Caps, RawCaps};
use crate::shim::ShimParent;

type Bar0<'bound> = pci::Bar<'bound, { regs::BAR0_SIZE as usize }>;

/// Per-device driver data. Dropping `_shim` runs the removal protocol
/// (parent.rs), quiescing the hardware on the way; `_state` drops last.
pub(crate) struct Parent {
    _shim: ShimParent,
    _state: Arc<ParentState>,
}

pub(crate) struct VsliceDriver;

// The Rust PCI abstraction only takes vendors from its own table; the
// register map's vendor must be that one (checked at build time).
const _: () = assert!(pci::Vendor::REDHAT.as_raw() == regs::PCI_VENDOR_ID);

kernel::pci_device_table!(
    PCI_TABLE,
    <VsliceDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::REDHAT, regs::PCI_DEVICE_ID as u32),
        ()
    )]
);

fn read_caps(bar: &Bar0<'_>) -> RawCaps {
    RawCaps {
        id: bar.read32(regs::REG_ID),
        version: bar.read32(regs::REG_VERSION),
        contexts: bar.read32(regs::REG_NUM_CONTEXTS),
        vectors: bar.read32(regs::REG_NUM_VECTORS),
        vram_lo: bar.read32(regs::REG_VRAM_SIZE_LO),
        vram_hi: bar.read32(regs::REG_VRAM_SIZE_HI),
        ctx_stride: bar.read32(regs::REG_CTX_STRIDE),
    }
}

impl pci::Driver for VsliceDriver {
    type IdInfo = ();
    type Data<'bound> = Parent;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pdev.enable_device_mem()
            .inspect_err(|e| dev_err!(pdev, "cannot enable the device: {:?}\n", e))?;
        pdev.set_master();
        // The device addresses 64 bits (translation tables and the pages
        // behind them come from anywhere in memory).
        // SAFETY: probe, before any DMA allocation or mapping of the device.
        unsafe { dma::Device::dma_set_mask_and_coherent(pdev, DmaMask::new::<64>()) }
            .inspect_err(|e| dev_err!(pdev, "cannot set a 64-bit DMA mask: {:?}\n", e))?;
        let bar = pdev
            .iomap_region_sized::<{ regs::BAR0_SIZE as usize }>(0, c"vslice")
            .inspect_err(|e| dev_err!(pdev, "cannot map BAR0: {:?}\n", e))?;
        let caps = Caps::decode(&read_caps(&bar)).map_err(|(e, why)| {
            dev_err!(pdev, "rejecting device: {}\n", why);
            e
        })?;
        dev_info!(
            pdev,
            "vslice device: ID register 0x{:08x}, v{}.{}, {} contexts, {} MiB VRAM, {} vectors\n",
            caps.id,
            caps.version >> 16,
            caps.version & 0xffff,
            caps.contexts,
            caps.vram_size >> 20,
            caps.vectors
        );
        let regs = bar
            .into_devres()
            .inspect_err(|e| dev_err!(pdev, "cannot keep BAR0 mapped: {:?}\n", e))?;
        let vram = pdev
            .iomap_region(regs::BAR_VRAM, c"vslice-vram")
            .and_then(|b| b.into_devres())
            .inspect_err(|e| dev_err!(pdev, "cannot map VRAM (BAR2): {:?}\n", e))?;
        let state = ParentState::new(pdev.into(), caps, regs, vram)
            .inspect_err(|_| dev_err!(pdev, "out of memory for the parent state\n"))?;
        state
            .hw_init()
            .inspect_err(|e| dev_err!(pdev, "device does not take its reset: {:?}\n", e))?;
        // From here on C can call into `state`.
        let shim = ShimParent::add(pdev, &state)
            .inspect_err(|e| dev_err!(pdev, "shim parent registration failed: {:?}\n", e))?;
        shim.enable_irqs(caps.vectors).inspect_err(|e| {
            dev_err!(
                pdev,
                "cannot set up {} MSI-X vectors: {:?}\n",
                caps.vectors,
                e
            )
        })?;
        // Last: from here on the mdev core can create instances.
        shim.register()
            .inspect_err(|e| dev_err!(pdev, "cannot register as mdev parent: {:?}\n", e))?;
        Ok(Parent {
            _shim: shim,
            _state: state,
        })
    }
}
