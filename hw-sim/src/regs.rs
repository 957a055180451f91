// SPDX-License-Identifier: GPL-2.0
//! The shared register map (regs/vslice_regs.rs), also used by the driver.
#![allow(dead_code)]
include!("../../regs/vslice_regs.rs");
