// SPDX-License-Identifier: GPL-2.0
//! What the guest test tools share: the guest kernel's health between steps
//! (splats, kmemleak, the driver's object counts) and measurement helpers.
pub mod health;
pub mod measure;
pub mod raw;
