// SPDX-License-Identifier: GPL-2.0
//! KUnit tests for the Rust driver's pure logic. The tested files are
//! compiled in from rust-driver/ (not copied), so the tests run exactly
//! the driver's code; loading this module runs the suites.

use kernel::prelude::*;

#[path = "../rust-driver/regs.rs"]
#[allow(dead_code)]
mod regs;

module! {
    type: VsliceKunit,
    name: "vslice_kunit",
    authors: ["vslice developers"],
    description: "KUnit tests for the vslice Rust driver",
    license: "GPL v2",
}

struct VsliceKunit;

impl kernel::Module for VsliceKunit {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(VsliceKunit)
    }
}

#[kunit_tests(vslice_caps)]
mod tests {
    use super::regs::*;
    use kernel::prelude::*;

    fn good() -> RawCaps {
        RawCaps {
            id: DEVICE_ID_MAGIC,
            version: DEVICE_VERSION,
            contexts: DEFAULT_CONTEXTS,
            vectors: DEFAULT_CONTEXTS + 1,
            vram_lo: 0,
            vram_hi: 1,
            ctx_stride: CTX_STRIDE as u32,
        }
    }

    fn reject(raw: RawCaps) -> Option<Error> {
        Caps::decode(&raw).err().map(|(e, _)| e)
    }

    #[test]
    fn decodes_a_good_device() {
        let caps = Caps::decode(&good());
        assert!(caps.is_ok());
        if let Ok(c) = caps {
            assert_eq!(c.vram_size, 1u64 << 32);
            assert_eq!(c.contexts, DEFAULT_CONTEXTS);
        }
    }

    #[test]
    fn all_ones_is_an_absent_device() {
        let raw = RawCaps {
            id: u32::MAX,
            version: u32::MAX,
            contexts: u32::MAX,
            vectors: u32::MAX,
            vram_lo: u32::MAX,
            vram_hi: u32::MAX,
            ctx_stride: u32::MAX,
        };
        assert_eq!(reject(raw), Some(ENODEV));
    }

    #[test]
    fn rejects_bad_registers() {
        assert_eq!(
            reject(RawCaps {
                id: 0x1234,
                ..good()
            }),
            Some(ENODEV)
        );
        assert_eq!(
            reject(RawCaps {
                version: 0x0002_0000,
                ..good()
            }),
            Some(ENOTSUPP)
        );
        // A newer minor version is compatible.
        assert!(reject(RawCaps {
            version: DEVICE_VERSION + 1,
            ..good()
        })
        .is_none());
        assert_eq!(
            reject(RawCaps {
                contexts: 0,
                ..good()
            }),
            Some(EINVAL)
        );
        assert_eq!(
            reject(RawCaps {
                contexts: MAX_CONTEXTS + 1,
                vectors: 4096,
                ..good()
            }),
            Some(EINVAL)
        );
        assert_eq!(
            reject(RawCaps {
                vectors: DEFAULT_CONTEXTS,
                ..good()
            }),
            Some(EINVAL)
        );
        assert_eq!(
            reject(RawCaps {
                ctx_stride: 0x800,
                ..good()
            }),
            Some(EINVAL)
        );
        assert_eq!(
            reject(RawCaps {
                vram_lo: 3 << 20,
                vram_hi: 0,
                ..good()
            }),
            Some(EINVAL)
        );
        assert_eq!(
            reject(RawCaps {
                vram_lo: 1 << 19,
                vram_hi: 0,
                ..good()
            }),
            Some(EINVAL)
        );
    }

    #[test]
    fn checksum_of_fill_matches_fnv1a64() {
        // FNV-1a 64 reference values: "" and "a".
        assert_eq!(fnv1a64_of_fill(0, 0), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64_of_fill(0x6161_6161, 1), 0xaf63_dc4c_8601_ec8c);
        // The pattern is little endian: byte 0 first.
        assert_ne!(
            fnv1a64_of_fill(0x6162_6364, 4),
            fnv1a64_of_fill(0x6463_6261, 4)
        );
    }

    #[test]
    fn descriptor_words_cover_the_layout() {
        let w = desc_words(OP_COPY, DESC_FLAG_IRQ, 0x1_0000_0002, 0x3_0000_0004, 64, 7);
        let get = |off: usize| w.iter().find(|(o, _)| *o == off).map(|(_, v)| *v);
        assert_eq!(get(DESC_OPCODE), Some(OP_COPY));
        assert_eq!(get(DESC_SRC), Some(2));
        assert_eq!(get(DESC_SRC + 4), Some(1));
        assert_eq!(get(DESC_DST + 4), Some(3));
        assert_eq!(get(DESC_LEN), Some(64));
        assert_eq!(get(DESC_STATUS), Some(0));
        // Every word lies inside one descriptor and is 4-byte aligned.
        assert!(w.iter().all(|(o, _)| o % 4 == 0 && o + 4 <= DESC_SIZE));
    }
}
