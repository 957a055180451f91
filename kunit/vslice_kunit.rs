// SPDX-License-Identifier: GPL-2.0
//! KUnit tests for the Rust driver's pure logic. The tested files are
//! compiled in from rust-driver/ (not copied), so the tests run exactly
//! the driver's code; loading this module runs the suites.

use kernel::prelude::*;

#[path = "../rust-driver/carve.rs"]
#[allow(dead_code)]
mod carve;

#[path = "../rust-driver/regs.rs"]
#[allow(dead_code)]
mod regs;

#[path = "../rust-driver/vdev.rs"]
#[allow(dead_code)]
mod vdev;

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

#[kunit_tests(vslice_carve)]
mod carve_tests {
    use super::carve::*;

    fn has(s: &Units, u: u32) -> bool {
        s.0[u as usize / 64] & (1 << (u % 64)) != 0
    }

    /// The model: what the live allocations imply, computed from scratch,
    /// unit by unit.
    fn check(a: &Allocator, contexts: u32) {
        let units = device_units(contexts);
        let ctx = contexts.min(MAX_UNITS);
        assert!(units <= MAX_UNITS);
        assert!(units == 0 || (units.is_power_of_two() && units >= ctx && units / 2 < ctx));
        assert_eq!(a.units(), units);
        assert_eq!(a.usable_contexts(), ctx);
        let mut used = [false; MAX_UNITS as usize];
        let mut ctx_count = 0;
        for (_, al) in a.live() {
            assert!(al.units > 0 && al.unit % al.units == 0, "block not aligned");
            assert!(al.unit + al.units <= units);
            assert!(al.unit < ctx, "a block without a context");
            for u in al.unit..al.unit + al.units {
                assert!(!used[u as usize], "VRAM units overlap");
                used[u as usize] = true;
            }
            // Its units' contexts, the ones that exist.
            assert_eq!(al.contexts(), al.unit..(al.unit + al.units).min(ctx));
            assert_eq!(al.units, a.units_for(al.ty));
            assert!(al.num_contexts() >= 1 && al.num_contexts() <= a.contexts_for(al.ty));
            ctx_count += al.num_contexts();
        }
        for u in 0..MAX_UNITS {
            assert_eq!(used[u as usize], has(&a.units_used(), u));
            assert!(
                u < units || !has(&a.dirty(), u),
                "a dirty unit past the end"
            );
            assert!(
                !has(&a.bad(), u) || has(&a.dirty(), u),
                "a bad unit is dirty"
            );
        }
        assert!(ctx_count <= ctx);
        let bad = a.bad();
        let dirty = a.dirty();
        for (t, ty) in TYPES.iter().enumerate() {
            let n = match ty.div {
                0 => units.min(1),
                d => units / d,
            };
            assert_eq!(a.units_for(t), n, "type {}", t);
            let free = |s: u32| (s..s + n).all(|u| !used[u as usize] && !has(&bad, u));
            let clean = |s: u32| (s..s + n).all(|u| !has(&dirty, u));
            let (mut blocks, mut clean_blocks) = (0, 0);
            if n > 0 {
                for s in (0..ctx).step_by(n as usize).filter(|&s| free(s)) {
                    blocks += 1;
                    clean_blocks += u32::from(clean(s));
                }
            }
            assert_eq!(a.available(t), blocks, "type {}", t);
            // Exactness: allocating succeeds iff available > 0, takes
            // exactly one from it, and takes a clean block if there is one.
            let mut b = a.clone();
            match b.alloc(t) {
                Ok((_, got)) => {
                    assert_eq!(b.available(t) + 1, a.available(t));
                    assert!(
                        clean_blocks == 0 || !a.is_dirty(&got),
                        "a dirty block taken"
                    );
                }
                Err(e) => {
                    assert_eq!(e, AllocError::NoSpace);
                    assert_eq!(a.available(t), 0);
                }
            }
        }
    }

    /// Every unit clean, as after the scrub at bind.
    fn clean(contexts: u32) -> Allocator {
        let mut a = Allocator::new(contexts);
        a.scrubbed(&Units::range(0, MAX_UNITS), true);
        a
    }

    fn explore(a: &Allocator, contexts: u32, depth: u32, visited: &mut u32) {
        check(a, contexts);
        *visited += 1;
        if depth == 0 {
            return;
        }
        for t in 0..TYPES.len() {
            let mut b = a.clone();
            if b.alloc(t).is_ok() {
                explore(&b, contexts, depth - 1, visited);
            }
        }
        let mut ids = [0u32; 16];
        for (slot, (id, _)) in ids.iter_mut().zip(a.live()) {
            *slot = id;
        }
        for &id in ids.iter().filter(|&&id| id != 0) {
            // Freed dirty, then (another path) scrubbed at once.
            let mut b = a.clone();
            let freed = b.free(id, true);
            assert!(freed.is_some());
            assert!(b.free(id, true).is_none(), "double free must be refused");
            explore(&b, contexts, depth - 1, visited);
            if let Some(f) = freed {
                b.scrubbed(&f.set(), true);
                explore(&b, contexts, depth - 1, visited);
            }
        }
    }

    #[test]
    fn exhaustive_small_sequences() {
        // Paths explored, as a model of the tree computes them: every
        // sequence of 4 creates and removes on 16 contexts (16 units), 3
        // (4 units, the last without a context) and 1 (1 unit: full and
        // unit take it in turns), of 3 on the largest devices (255: 256
        // units, the last without a context; 192). A different count
        // means the search changed.
        for (contexts, depth, paths) in EXHAUSTIVE_PATHS {
            let mut visited = 0;
            explore(&clean(contexts), contexts, depth, &mut visited);
            assert_eq!((contexts, visited), (contexts, paths));
        }
    }

    const EXHAUSTIVE_PATHS: [(u32, u32, u32); 5] = [
        (16, 4, 1329),
        (3, 4, 518),
        (1, 4, 31),
        (255, 3, 200),
        (192, 3, 195),
    ];

    #[test]
    fn long_random_sequences_match_the_model() {
        for (seed, contexts) in [(1u64, 16u32), (7, 12), (42, 255), (3, 64), (9, 192), (5, 0)] {
            let mut a = Allocator::new(contexts);
            let mut s = seed;
            let mut ids = [0u32; MAX_INSTANCES];
            for _ in 0..3000 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (s >> 33) as usize;
                match r % 5 {
                    0 => {
                        let i = (r / 5) % MAX_INSTANCES;
                        if ids[i] != 0 {
                            assert!(a.free(ids[i], true).is_some());
                            ids[i] = 0;
                        }
                    }
                    // A scrub ends: most succeed, some fail.
                    1 => {
                        let u = (r / 5) as u32 % MAX_UNITS;
                        let n = 1u32 << ((r / 1280) % 4);
                        a.scrubbed(&Units::range(u - u % n, n), r % 7 != 0);
                    }
                    _ => {
                        if let Ok((id, _)) = a.alloc((r / 5) % TYPES.len()) {
                            if let Some(slot) = ids.iter_mut().find(|x| **x == 0) {
                                *slot = id;
                            }
                        }
                    }
                }
                check(&a, contexts);
            }
        }
    }

    fn all_available(a: &Allocator) -> [u32; 5] {
        [0, 1, 2, 3, 4].map(|t| a.available(t))
    }

    #[test]
    fn full_device_and_back() {
        let mut a = clean(16);
        assert_eq!(all_available(&a), [8, 4, 2, 1, 16]);
        let (id, full) = a.alloc(3).unwrap_or_default();
        assert_eq!(full.num_contexts(), 16);
        assert_eq!(all_available(&a), [0, 0, 0, 0, 0]);
        assert_eq!(a.alloc(0), Err(AllocError::NoSpace));
        assert_eq!(a.alloc(9), Err(AllocError::BadType));
        assert!(a.free(id, true).is_some());
        // Dirty units are offered: a create waits for their scrub.
        assert_eq!(all_available(&a), [8, 4, 2, 1, 16]);
        assert!(a.is_dirty(&full));
    }

    /// Index of the `unit` type.
    const UNIT: usize = 4;

    #[test]
    fn the_device_sets_the_scale() {
        assert_eq!(TYPES[UNIT].name, "unit");
        // 64 contexts: 64 one-context units.
        let mut a = clean(64);
        assert_eq!(all_available(&a), [8, 4, 2, 1, 64]);
        for i in 0..64 {
            let (_, u) = a.alloc(UNIT).unwrap_or_default();
            assert_eq!((u.unit, u.contexts()), (i, i..i + 1));
        }
        assert_eq!(a.alloc(UNIT), Err(AllocError::NoSpace));
        assert_eq!(a.count(), 64);
        // 255 contexts (all the register map has): 256 units, an instance
        // per context; the last block of a fraction lacks the 256th.
        let mut a = clean(255);
        assert_eq!(all_available(&a), [8, 4, 2, 1, 255]);
        assert_eq!((a.contexts_for(UNIT), a.contexts_for(3)), (1, 255));
        assert_eq!(a.usable_contexts(), 255);
        for i in 0..255 {
            let (_, u) = a.alloc(UNIT).unwrap_or_default();
            assert_eq!((u.unit, u.contexts()), (i, i..i + 1));
        }
        assert_eq!(a.alloc(UNIT), Err(AllocError::NoSpace));
        assert_eq!(a.count(), 255);
        let mut a = clean(255);
        let eighths: [u32; 8] =
            core::array::from_fn(|_| a.alloc(0).map(|(_, e)| e.num_contexts()).unwrap_or(0));
        assert_eq!(eighths, [32, 32, 32, 32, 32, 32, 32, 31]);
        // 192: blocks start at a context, so 6 eighths, 3 quarters.
        assert_eq!(all_available(&clean(192)), [6, 3, 2, 1, 192]);
        // The self-test's pick: the smallest type of at least n units.
        let a = clean(16);
        assert_eq!(a.smallest_with(1), Some(UNIT));
        assert_eq!(a.smallest_with(2), Some(0));
        assert_eq!(a.smallest_with(3), Some(1));
        assert_eq!(a.smallest_with(17), None);
        assert_eq!(clean(0).smallest_with(1), None);
        // 4 contexts: an eighth is smaller than a unit, so not available;
        // 3: 4 units, the last one VRAM only.
        assert_eq!(all_available(&clean(4)), [0, 4, 2, 1, 4]);
        assert_eq!(all_available(&clean(3)), [0, 3, 2, 1, 3]);
        assert_eq!(all_available(&clean(0)), [0; 5]);
    }

    #[test]
    fn fragmentation_is_counted_exactly() {
        let mut a = clean(16);
        // Eighths in units 0-1 and 4-5 leave no aligned half free on that
        // side.
        let (x, _) = a.alloc(0).unwrap_or_default();
        let (y, _) = a.alloc(0).unwrap_or_default();
        let (z, _) = a.alloc(0).unwrap_or_default();
        assert!(a.free(y, true).is_some());
        assert_eq!(a.units_used(), Units([0b11_0011, 0, 0, 0]));
        assert_eq!([a.available(1), a.available(2), a.available(3)], [2, 1, 0]);
        assert!(a.free(x, true).is_some() && a.free(z, true).is_some());
    }

    #[test]
    fn adjacent_blocks_merge_for_one_scrub() {
        let a = Alloc::block(UNIT, 4, 1, 255);
        let b = Alloc::block(UNIT, 5, 1, 255);
        let m = a.merged(&b).unwrap_or_default();
        assert_eq!((m.unit, m.units, m.contexts()), (4, 2, 4..6));
        assert!(b.merged(&a).is_none());
        assert!(a.merged(&Alloc::block(UNIT, 6, 1, 255)).is_none());
        // The last eighth of a 255-context device has 31 contexts.
        let e6 = Alloc::block(0, 192, 32, 255);
        let e7 = Alloc::block(0, 224, 32, 255);
        assert_eq!(e7.contexts(), 224..255);
        assert_eq!(e6.merged(&e7).map(|m| m.contexts()), Some(192..255));
    }

    #[test]
    fn dirty_units_are_offered_and_bad_ones_withheld() {
        let mut a = Allocator::new(16);
        // Bound: everything dirty, everything offered.
        assert_eq!(all_available(&a), [8, 4, 2, 1, 16]);
        let (id, u) = a.alloc(UNIT).unwrap_or_default();
        assert!(a.is_dirty(&u));
        assert!(a.free(id, false).is_some());
        // Units 0-7 scrubbed: the lowest clean unit is 0 again.
        a.scrubbed(&Units::range(0, 8), true);
        let (id, u) = a.alloc(UNIT).unwrap_or_default();
        assert_eq!(u.unit, 0);
        assert!(a.free(id, true).is_some());
        // Unit 0 dirty again: the next unit is 1, clean.
        let (_, u) = a.alloc(UNIT).unwrap_or_default();
        assert_eq!((u.unit, a.is_dirty(&u)), (1, false));
        // Units 8-15 fail their scrub: withheld, until one succeeds.
        a.scrubbed(&Units::range(8, 8), false);
        assert_eq!(all_available(&a), [3, 1, 0, 0, 7]);
        a.scrubbed(&Units::range(8, 8), true);
        assert_eq!(all_available(&a), [7, 3, 1, 0, 15]);
    }

    #[test]
    fn lifecycle_only_moves_forward() {
        assert!(Lifecycle::Live.may_start());
        assert!(!Lifecycle::Removing.may_start());
        assert!(!Lifecycle::Gone.may_start());
        assert_eq!(
            Lifecycle::Live.step(Lifecycle::Removing),
            Some(Lifecycle::Removing)
        );
        assert_eq!(
            Lifecycle::Removing.step(Lifecycle::Gone),
            Some(Lifecycle::Gone)
        );
        assert_eq!(Lifecycle::Live.step(Lifecycle::Gone), None);
        assert_eq!(Lifecycle::Removing.step(Lifecycle::Live), None);
        assert_eq!(Lifecycle::Gone.step(Lifecycle::Removing), None);
        assert_eq!(Lifecycle::Gone.step(Lifecycle::Live), None);
    }
}

#[kunit_tests(vslice_vdev)]
mod vdev_tests {
    use super::regs::*;
    use super::vdev::*;

    fn cfg32(c: &VConfig, off: usize) -> u32 {
        let mut b = [0u8; 4];
        c.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn set_cfg32(c: &VConfig, off: usize, v: u32) {
        c.write(off, &v.to_le_bytes());
    }

    #[test]
    fn config_identity_and_msix_capability() {
        let c = VConfig::new(4, 64 << 20);
        assert_eq!(cfg32(&c, 0), 0x5c11_1b36);
        assert_eq!(cfg32(&c, 8) >> 8, PCI_CLASS_CODE);
        assert_eq!(cfg32(&c, 0x34) & 0xff, MSIX_CAP as u32);
        // Table size is N - 1; table and PBA in BAR4.
        assert_eq!(cfg32(&c, 0x40), 0x11 | 3 << 16);
        assert_eq!(cfg32(&c, 0x44), BAR_MSIX);
        assert_eq!(cfg32(&c, 0x48), msix_layout(4).0 | BAR_MSIX);
    }

    #[test]
    fn msix_table_and_pba_never_overlap() {
        for n in 1..=MSIX_MAX_VECTORS {
            let (pba, size) = msix_layout(n);
            let table_end = u64::from(n) * 16;
            let pba_end = u64::from(pba) + u64::from(n).div_ceil(64) * 8;
            assert!(u64::from(pba) >= table_end);
            assert_eq!(pba % 8, 0);
            assert!(pba_end <= size);
            assert!(size.is_power_of_two() && size >= 4096);
            assert_eq!(region(REGION_BAR4, n, 1 << 20).0, size);
            // The capability and BAR4's sizing say the same.
            let c = VConfig::new(n, 1 << 20);
            assert_eq!(cfg32(&c, 0x40) >> 16 & 0x7ff, n - 1);
            assert_eq!(cfg32(&c, 0x44), BAR_MSIX);
            assert_eq!(cfg32(&c, 0x48), pba | BAR_MSIX);
            set_cfg32(&c, 0x20, u32::MAX);
            assert_eq!(u64::from(!(cfg32(&c, 0x20) & !0xf)) + 1, size);
        }
        // 192 vectors: the table ends at 0xc00, so the PBA cannot be at 0x800.
        assert_eq!(msix_layout(192), (0xc00, 4096));
        assert_eq!(msix_layout(256), (0x1000, 8192));
    }

    #[test]
    fn config_bar_sizing_and_read_only_fields() {
        let slice = 32u64 << 20;
        let c = VConfig::new(2, slice);
        set_cfg32(&c, 0x10, u32::MAX);
        assert_eq!(cfg32(&c, 0x10), !(bar0_size(2) as u32 - 1));
        set_cfg32(&c, 0x18, u32::MAX);
        assert_eq!(cfg32(&c, 0x18), !(slice as u32 - 1) | 0xc);
        set_cfg32(&c, 0x1c, u32::MAX);
        assert_eq!(cfg32(&c, 0x1c), u32::MAX);
        set_cfg32(&c, 0x14, u32::MAX);
        assert_eq!(cfg32(&c, 0x14), 0);
        set_cfg32(&c, 0, 0);
        assert_eq!(cfg32(&c, 0), 0x5c11_1b36);
        set_cfg32(&c, 4, u32::MAX);
        assert_eq!(cfg32(&c, 4), 0x0010_0406);
        // A byte write touches only its byte.
        c.write(0x3c, &[0x0b]);
        assert_eq!(cfg32(&c, 0x3c), 0x0b);
        // Memory decoding follows the command register, and a reset
        // turns it back on (vfio-pci restores the command register).
        assert!(c.mem_enabled());
        set_cfg32(&c, 4, 0);
        assert!(!c.mem_enabled());
        c.reset();
        assert_eq!(cfg32(&c, 4), 0x0010_0002);
        assert!(c.mem_enabled());
        assert_eq!(cfg32(&c, 0x10), 0);
        // Past the end reads all-ones, writes nothing.
        let mut b = [0u8; 2];
        c.read(CONFIG_SIZE as usize - 1, &mut b);
        assert_eq!(b[1], 0xff);
    }

    #[test]
    fn register_window_forwards_only_own_user_blocks() {
        let (n, slice) = (2, 64u64 << 20);
        assert_eq!(
            decode_bar0(REG_ID as u64, n, slice),
            Reg::Const(DEVICE_ID_MAGIC)
        );
        assert_eq!(
            decode_bar0(REG_NUM_CONTEXTS as u64, n, slice),
            Reg::Const(n)
        );
        assert_eq!(
            decode_bar0(REG_CONTROL as u64, n, slice),
            Reg::Const(CTRL_ENABLE)
        );
        assert_eq!(decode_bar0(REG_SCRATCH as u64, n, slice), Reg::Scratch);
        let w1 = ctx_window(1) as u64;
        assert_eq!(
            decode_bar0(w1 + CTX_VRAM_BASE_LO as u64, n, slice),
            Reg::Const(0)
        );
        assert_eq!(
            decode_bar0(w1 + CTX_VRAM_SIZE_LO as u64, n, slice),
            Reg::Const(slice as u32)
        );
        assert_eq!(decode_bar0(w1 + CTX_VECTOR as u64, n, slice), Reg::Const(1));
        for r in (CTX_STATUS..=CTX_COMPLETED).step_by(4) {
            assert_eq!(
                decode_bar0(w1 + r as u64, n, slice),
                Reg::Forward { ctx: 1, off: r }
            );
        }
        // Not forwarded: misaligned, unnamed, other contexts, past the end.
        for off in [
            1,
            0x800,
            w1 + CTX_STATUS as u64 + 2,
            w1 + CTX_COMPLETED as u64 + 4,
            ctx_window(2) as u64 + CTX_STATUS as u64,
            bar0_size(n),
            u64::MAX - 3,
        ] {
            assert_eq!(decode_bar0(off, n, slice), Reg::Refused);
        }
    }

    #[test]
    fn regions_and_access_pieces() {
        assert_eq!(bar0_size(1), 0x2000);
        assert_eq!(bar0_size(16), 0x20000);
        assert_eq!(
            region(REGION_BAR2, 2, 1 << 25),
            (1 << 25, REGION_READ | REGION_WRITE | REGION_MMAP)
        );
        // Only whole pages map: a smaller or ragged slice is read/write.
        let page = kernel::page::PAGE_SIZE as u64;
        for (slice, maps) in [
            (page, true),
            (page - 1, false),
            (page + 1, false),
            (3 * page, true),
            (0, false),
        ] {
            assert_eq!(slice_mappable(slice), maps);
            let mmap = region(REGION_BAR2, 2, slice).1 & REGION_MMAP;
            assert_eq!(mmap, if maps { REGION_MMAP } else { 0 });
        }
        assert_eq!(region(1, 2, 1 << 25).0, 0);
        assert_eq!(region(8, 2, 1 << 25).0, 0);
        assert_eq!(piece(0, 16), 8);
        assert_eq!(piece(4, 16), 4);
        assert_eq!(piece(2, 16), 2);
        assert_eq!(piece(3, 16), 1);
        assert_eq!(piece(0, 3), 2);
        assert_eq!(piece(0, 1), 1);
    }
}

#[kunit_tests(vslice_scrub)]
mod scrub_tests {
    use super::carve::*;

    #[test]
    fn scrub_passes_cover_any_slice_size() {
        let max = u64::from(super::regs::JOB_MAX_LEN);
        let slots = 64;
        let per = slots * max;
        // 0, 1, one job, one pass and their neighbours, 8 GiB and 16 GiB
        // slices less their scrub ring, and the largest length.
        for len in [
            0,
            1,
            max - 1,
            max,
            max + 1,
            per - 1,
            per,
            per + 1,
            (8 << 30) - 4096,
            (16 << 30) - 4096,
            3 * per + 12345,
            (1 << 40) + 1,
        ] {
            let mut next = 0;
            let mut passes = 0u64;
            for (off, n) in scrub_passes(len, slots, max) {
                // Contiguous, each within one ring.
                assert_eq!(off, next);
                assert!(n > 0 && n <= per);
                assert!(n.div_ceil(max) <= slots);
                next = off + n;
                passes += 1;
            }
            // The passes cover the slice exactly.
            assert_eq!(next, len);
            assert_eq!(passes, len.div_ceil(per));
        }
    }
}
