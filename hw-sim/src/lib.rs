// SPDX-License-Identifier: GPL-2.0
//! vslice-hw-sim: the simulated vslice PCI device (see docs/device.md).
pub mod config;
pub mod device;
pub mod faults;
pub mod mem;

pub use vslice_abi::regs;

#[cfg(test)]
mod tests;
