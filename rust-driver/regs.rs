// SPDX-License-Identifier: GPL-2.0
//! The device's register map (shared with hw-sim) and the decoding of what
//! the driver reads from it. Pure logic: also compiled into the KUnit
//! module (kunit/vslice_kunit.rs), so it must not touch hardware.

#[allow(dead_code, unreachable_pub)]
mod map {
    include!("../regs/vslice_regs.rs");
}
pub(crate) use map::*;

use kernel::prelude::*;

/// The global capability registers as read from BAR0.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawCaps {
    pub(crate) id: u32,
    pub(crate) version: u32,
    pub(crate) contexts: u32,
    pub(crate) vectors: u32,
    pub(crate) vram_lo: u32,
    pub(crate) vram_hi: u32,
    pub(crate) ctx_stride: u32,
}

/// Validated device capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) id: u32,
    pub(crate) version: u32,
    pub(crate) contexts: u32,
    pub(crate) vectors: u32,
    pub(crate) vram_size: u64,
}

impl Caps {
    /// Checks what the device reports; the reason goes into the probe's
    /// `dev_err!`. All-ones everywhere is a device that is not there.
    pub(crate) fn decode(raw: &RawCaps) -> core::result::Result<Caps, (Error, &'static str)> {
        if raw.id == u32::MAX {
            return Err((ENODEV, "device reads all-ones (not present)"));
        }
        if raw.id != DEVICE_ID_MAGIC {
            return Err((ENODEV, "unexpected ID register"));
        }
        if raw.version >> 16 != DEVICE_VERSION >> 16 {
            return Err((ENOTSUPP, "unsupported register map major version"));
        }
        if raw.contexts == 0 || raw.contexts > MAX_CONTEXTS {
            return Err((EINVAL, "context count out of range"));
        }
        if raw.ctx_stride as usize != CTX_STRIDE {
            return Err((
                EINVAL,
                "context window stride differs from the register map",
            ));
        }
        // One vector per context plus the global one.
        if raw.vectors < raw.contexts + 1 {
            return Err((EINVAL, "fewer MSI-X vectors than contexts + 1"));
        }
        let vram_size = (u64::from(raw.vram_hi) << 32) | u64::from(raw.vram_lo);
        if !vram_size.is_power_of_two() || vram_size < (1 << 20) {
            return Err((EINVAL, "VRAM size is not a power of two >= 1 MiB"));
        }
        Ok(Caps {
            id: raw.id,
            version: raw.version,
            contexts: raw.contexts,
            vectors: raw.vectors,
            vram_size,
        })
    }
}

/// FNV-1a 64 of `len` bytes of the 32-bit little-endian `pattern` repeated,
/// starting at pattern byte 0: what `OP_CHECKSUM` returns over an
/// `OP_FILL` of the same pattern.
pub(crate) fn fnv1a64_of_fill(pattern: u32, len: usize) -> u64 {
    let bytes = pattern.to_le_bytes();
    let mut h = FNV64_OFFSET;
    for i in 0..len {
        h ^= u64::from(bytes[i % 4]);
        h = h.wrapping_mul(FNV64_PRIME);
    }
    h
}

/// A job descriptor as the words the driver writes into VRAM:
/// (offset in the descriptor, value) pairs for every field it sets.
pub(crate) fn desc_words(
    opcode: u32,
    flags: u32,
    src: u64,
    dst: u64,
    len: u32,
    value: u32,
) -> [(usize, u32); 10] {
    [
        (DESC_OPCODE, opcode),
        (DESC_FLAGS, flags),
        (DESC_SRC, src as u32),
        (DESC_SRC + 4, (src >> 32) as u32),
        (DESC_DST, dst as u32),
        (DESC_DST + 4, (dst >> 32) as u32),
        (DESC_LEN, len),
        (DESC_VALUE, value),
        (DESC_STATUS, 0),
        (DESC_RESULT, 0),
    ]
}
