// SPDX-License-Identifier: GPL-2.0
//! The shared register map (regs/vslice_regs.rs), as the driver and hw-sim
//! use it; an instance's register window follows the same map.
#![allow(dead_code)]
include!("../../../regs/vslice_regs.rs");
