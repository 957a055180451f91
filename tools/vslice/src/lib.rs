// SPDX-License-Identifier: GPL-2.0
//! vslice client library: parents, types and instances through sysfs;
//! instances opened through VFIO; jobs run on them.
pub mod job;
pub mod regs;
pub mod sysfs;
pub mod vfio;
