// SPDX-License-Identifier: GPL-2.0
// The vslice device's register map: the one source of truth.
//
// This file holds constants only (no `use`, no items that need std or the
// kernel crate), so that both the kernel driver (rust-driver/) and the
// simulated device (hw-sim/) `include!` it. docs/device.md describes every
// register with these exact names; `make check` verifies that the two agree.

/// PCI vendor ID of the physical device: Red Hat's (QEMU's) vendor ID with
/// a device ID outside the range QEMU allocates (docs/device.md says why).
pub const PCI_VENDOR_ID: u16 = 0x1b36;
/// PCI device ID of the physical device.
pub const PCI_DEVICE_ID: u16 = 0x5c10;
/// PCI device ID that mdev instances present to their users.
pub const PCI_INSTANCE_DEVICE_ID: u16 = 0x5c11;
/// PCI class code: display controller, 3D controller, prog-if 0.
pub const PCI_CLASS_CODE: u32 = 0x03_02_00;
/// PCI revision of this register map.
pub const PCI_REVISION: u8 = 0x01;

/// BAR0: registers (global block, then one window per context).
pub const BAR0_SIZE: u64 = 1 << 20;
/// BAR2: VRAM, 64-bit prefetchable, size given by `REG_VRAM_SIZE_*`.
pub const BAR_VRAM: u32 = 2;
/// BAR4: MSI-X table and PBA.
pub const BAR_MSIX: u32 = 4;
/// BAR4 size.
pub const BAR4_SIZE: u64 = 1 << 16;
/// MSI-X table offset in BAR4.
pub const MSIX_TABLE_OFFSET: u32 = 0;
/// MSI-X PBA offset in BAR4.
pub const MSIX_PBA_OFFSET: u32 = 0x8000;

/// Value of `REG_ID`: "VSLC" in ASCII, most significant byte first.
pub const DEVICE_ID_MAGIC: u32 = 0x5653_4c43;
/// Value of `REG_VERSION`: major << 16 | minor.
pub const DEVICE_VERSION: u32 = 0x0001_0000;

// Global registers (BAR0 0x0000..0x1000). All 32 bits wide, little endian.
/// RO: `DEVICE_ID_MAGIC`.
pub const REG_ID: usize = 0x000;
/// RO: `DEVICE_VERSION`.
pub const REG_VERSION: usize = 0x004;
/// RO: number of hardware contexts.
pub const REG_NUM_CONTEXTS: usize = 0x008;
/// RO: number of MSI-X vectors (contexts + 1; vector 0 is the global one).
pub const REG_NUM_VECTORS: usize = 0x00c;
/// RO: VRAM size in bytes, low 32 bits.
pub const REG_VRAM_SIZE_LO: usize = 0x010;
/// RO: VRAM size in bytes, high 32 bits.
pub const REG_VRAM_SIZE_HI: usize = 0x014;
/// RO: byte distance between two context windows (`CTX_STRIDE`).
pub const REG_CTX_STRIDE: usize = 0x018;
/// RW: scratch register, no side effects (used for seam and bus tests).
pub const REG_SCRATCH: usize = 0x01c;
/// RW: global control, `CTRL_*` bits.
pub const REG_CONTROL: usize = 0x020;
/// RO: global status, `STATUS_*` bits.
pub const REG_STATUS: usize = 0x024;

/// `REG_CONTROL`: device enabled (contexts accept work).
pub const CTRL_ENABLE: u32 = 1 << 0;
/// `REG_CONTROL`: write 1 to reset the whole device; reads back 0.
pub const CTRL_RESET: u32 = 1 << 1;
/// `REG_STATUS`: the device is ready.
pub const STATUS_READY: u32 = 1 << 0;

/// Offset of context 0's window in BAR0.
pub const CTX_BASE: usize = 0x1000;
/// Size of one context window.
pub const CTX_STRIDE: usize = 0x1000;
/// Most contexts BAR0 can hold.
pub const MAX_CONTEXTS: u32 = ((BAR0_SIZE as usize - CTX_BASE) / CTX_STRIDE) as u32;
/// Default number of contexts of the simulated device.
pub const DEFAULT_CONTEXTS: u32 = 16;
/// Default VRAM size of the simulated device (256 MiB).
pub const DEFAULT_VRAM_SIZE: u64 = 256 << 20;

/// Offset of context `n`'s window in BAR0.
pub const fn ctx_window(n: u32) -> usize {
    CTX_BASE + n as usize * CTX_STRIDE
}
