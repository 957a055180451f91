// SPDX-License-Identifier: GPL-2.0
//! The device's programming interface as user space sees it, one copy for
//! the simulator (hw-sim), the client and the test tools: the register map
//! (regs/vslice_regs.rs, which the kernel driver includes too), the job
//! descriptor's encoding, the checksum `OP_CHECKSUM` computes and the size
//! of an instance's register window.

/// The shared register map (regs/vslice_regs.rs; docs/device.md).
#[allow(dead_code)]
pub mod regs {
    include!("../../../regs/vslice_regs.rs");
}

use regs::*;

/// A job descriptor as it sits in a ring (`DESC_SIZE` bytes, little
/// endian). Status and result are written back by the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// `OP_*`.
    pub opcode: u32,
    /// `DESC_FLAG_*`.
    pub flags: u32,
    /// Source offset.
    pub src: u64,
    /// Destination offset.
    pub dst: u64,
    /// Length in bytes.
    pub len: u32,
    /// Fill pattern.
    pub value: u32,
}

impl Desc {
    /// The descriptor's bytes as the device reads them; status and result
    /// are zero.
    pub fn encode(&self) -> [u8; DESC_SIZE] {
        let mut b = [0u8; DESC_SIZE];
        b[DESC_OPCODE..DESC_OPCODE + 4].copy_from_slice(&self.opcode.to_le_bytes());
        b[DESC_FLAGS..DESC_FLAGS + 4].copy_from_slice(&self.flags.to_le_bytes());
        b[DESC_SRC..DESC_SRC + 8].copy_from_slice(&self.src.to_le_bytes());
        b[DESC_DST..DESC_DST + 8].copy_from_slice(&self.dst.to_le_bytes());
        b[DESC_LEN..DESC_LEN + 4].copy_from_slice(&self.len.to_le_bytes());
        b[DESC_VALUE..DESC_VALUE + 4].copy_from_slice(&self.value.to_le_bytes());
        b
    }

    /// The descriptor at the start of `b`.
    ///
    /// # Panics
    ///
    /// If `b` is shorter than `DESC_SIZE`.
    pub fn decode(b: &[u8]) -> Desc {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        Desc {
            opcode: u32_at(DESC_OPCODE),
            flags: u32_at(DESC_FLAGS),
            src: u64_at(DESC_SRC),
            dst: u64_at(DESC_DST),
            len: u32_at(DESC_LEN),
            value: u32_at(DESC_VALUE),
        }
    }
}

/// FNV-1a 64 continued over `data`: start with `FNV64_OFFSET`, feed the
/// result back in for the next piece (the device hashes in chunks).
pub fn fnv1a64(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV64_PRIME);
    }
    h
}

/// FNV-1a 64 of `data` in one piece (what `OP_CHECKSUM` reports).
pub fn checksum(data: &[u8]) -> u64 {
    fnv1a64(FNV64_OFFSET, data)
}

/// Size of the register window (BAR0) of an instance with `contexts`
/// contexts: the global block and one window per context, rounded up to a
/// power of two as a BAR must be.
pub fn instance_bar0_size(contexts: u32) -> u64 {
    ((CTX_BASE + contexts as usize * CTX_STRIDE) as u64).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        assert_eq!(checksum(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(checksum(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(checksum(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(checksum(b"foo"), b"bar"), checksum(b"foobar"));
    }

    #[test]
    fn descriptor_round_trips_at_the_documented_offsets() {
        let d = Desc {
            opcode: OP_COPY,
            flags: DESC_FLAG_IRQ,
            src: 0x1122_3344_5566_7788,
            dst: 0x99aa_bbcc_ddee_ff00,
            len: 0xdead_beef,
            value: 0x0102_0304,
        };
        let b = d.encode();
        assert_eq!(Desc::decode(&b), d);
        assert_eq!(b[DESC_SRC], 0x88);
        assert_eq!(b[DESC_SRC + 7], 0x11);
        assert_eq!(b[DESC_STATUS..DESC_STATUS + 4], [0; 4]);
    }

    #[test]
    fn instance_bar0_is_a_power_of_two_covering_every_window() {
        for n in [1, 2, 3, 64, MAX_CONTEXTS] {
            let s = instance_bar0_size(n);
            assert!(s.is_power_of_two());
            assert!(s >= (CTX_BASE + n as usize * CTX_STRIDE) as u64);
            assert!(s / 2 < (CTX_BASE + n as usize * CTX_STRIDE) as u64);
        }
    }
}
