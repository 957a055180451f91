// SPDX-License-Identifier: GPL-2.0
//! Tests that drive the device model directly (no QEMU): registers, every
//! job type, bounds enforcement, scheduling, resets, interrupts, faults and
//! bad input.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;

use vfio_bindings::bindings::vfio::*;
use vfio_user::ServerBackend;

use crate::device::*;
use crate::faults::{Command, Faults};
use crate::mem::{memfd, Mapping};
use crate::regs::*;
use vslice_abi::{fnv1a64, Desc};

const MIB: u64 = 1 << 20;
const RING: u64 = 0; // ring at the start of each slice
const SLOTS: u32 = 16;

struct Rig {
    b: Backend,
}

fn eventfd() -> File {
    // SAFETY: plain eventfd creation; the fd is owned by the File.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0);
    // SAFETY: fd is fresh and ours.
    unsafe { File::from_raw_fd(fd) }
}

fn count(efd: &File) -> u64 {
    let mut b = [0u8; 8];
    match (&*efd).read(&mut b) {
        Ok(8) => u64::from_le_bytes(b),
        _ => 0,
    }
}

impl Rig {
    fn new() -> Rig {
        Rig::with(DeviceParams {
            contexts: 4,
            vram_size: 16 * MIB,
            vectors: 5,
        })
    }

    fn with(p: DeviceParams) -> Rig {
        let d = Device::new(p, Arc::new(Faults::default())).unwrap();
        Rig {
            b: Backend(Shared::new(d)),
        }
    }

    fn faults(&self) -> Arc<Faults> {
        self.b.0.faults.clone()
    }

    fn rd(&mut self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        self.b
            .region_read(VFIO_PCI_BAR0_REGION_INDEX, off as u64, &mut b)
            .unwrap();
        u32::from_le_bytes(b)
    }

    fn wr(&mut self, off: usize, v: u32) {
        self.b
            .region_write(VFIO_PCI_BAR0_REGION_INDEX, off as u64, &v.to_le_bytes())
            .unwrap();
    }

    fn crd(&mut self, n: u32, r: usize) -> u32 {
        self.rd(ctx_window(n) + r)
    }

    fn cwr(&mut self, n: u32, r: usize, v: u32) {
        self.wr(ctx_window(n) + r, v)
    }

    fn wr64(&mut self, n: u32, lo_reg: usize, v: u64) {
        self.cwr(n, lo_reg, v as u32);
        self.cwr(n, lo_reg + 4, (v >> 32) as u32);
    }

    /// Context n gets VRAM [base, base + size) and a ring at slice offset 0.
    fn setup(&mut self, n: u32, base: u64, size: u64) {
        self.wr(REG_CONTROL, CTRL_ENABLE);
        self.wr64(n, CTX_VRAM_BASE_LO, base);
        self.wr64(n, CTX_VRAM_SIZE_LO, size);
        self.wr64(n, CTX_RING_BASE_LO, RING);
        self.cwr(n, CTX_RING_SIZE, SLOTS);
        self.cwr(n, CTX_CONTROL, CTX_CTRL_ENABLE);
    }

    fn vram(&self) -> std::sync::MutexGuard<'_, Device> {
        self.b.0.lock()
    }

    fn slice_base(&mut self, n: u32) -> usize {
        (u64::from(self.crd(n, CTX_VRAM_BASE_LO)) | (u64::from(self.crd(n, CTX_VRAM_BASE_HI)) << 32)) as usize
    }

    /// Writes the descriptor into the next slot and rings the doorbell.
    fn submit(&mut self, n: u32, d: Desc) -> usize {
        let tail = self.crd(n, CTX_RING_TAIL);
        let slot = (RING as usize) + (tail % SLOTS) as usize * DESC_SIZE;
        let at = self.slice_base(n) + slot;
        self.vram().vram_mut()[at..at + DESC_SIZE].copy_from_slice(&d.encode());
        self.cwr(n, CTX_RING_TAIL, tail.wrapping_add(1));
        self.cwr(n, CTX_DOORBELL, 1);
        at
    }

    fn run(&mut self) -> usize {
        let mut steps = 0;
        while self.vram().step() {
            steps += 1;
            assert!(steps < 100_000, "engine does not finish");
        }
        steps
    }

    fn status(&self, at: usize) -> (u32, u64) {
        let mut d = self.vram();
        let v = d.vram_mut();
        let s = u32::from_le_bytes(v[at + DESC_STATUS..at + DESC_STATUS + 4].try_into().unwrap());
        let r = u64::from_le_bytes(v[at + DESC_RESULT..at + DESC_RESULT + 8].try_into().unwrap());
        (s, r)
    }

    fn set_irq(&mut self, v: u32, fd: &File) {
        let flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
        self.b
            .set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, flags, v, 1, vec![fd.try_clone().unwrap()])
            .unwrap();
    }
}

fn fill(dst: u64, len: u32, value: u32) -> Desc {
    Desc {
        opcode: OP_FILL,
        flags: DESC_FLAG_IRQ,
        dst,
        len,
        value,
        ..Default::default()
    }
}

fn op(opcode: u32, src: u64, dst: u64, len: u32) -> Desc {
    Desc {
        opcode,
        flags: DESC_FLAG_IRQ,
        src,
        dst,
        len,
        ..Default::default()
    }
}

#[test]
fn global_registers_and_reset_values() {
    let mut r = Rig::new();
    assert_eq!(r.rd(REG_ID), DEVICE_ID_MAGIC);
    assert_eq!(r.rd(REG_VERSION), DEVICE_VERSION);
    assert_eq!(r.rd(REG_NUM_CONTEXTS), 4);
    assert_eq!(r.rd(REG_NUM_VECTORS), 5);
    assert_eq!(r.rd(REG_VRAM_SIZE_LO), 16 * MIB as u32);
    assert_eq!(r.rd(REG_CTX_STRIDE), CTX_STRIDE as u32);
    assert_eq!(r.rd(REG_STATUS), STATUS_READY);
    assert_eq!(r.rd(REG_GLOBAL_IRQ_MASK), !0);
    assert_eq!(r.rd(REG_FEATURES), FEATURES_V1);
    for n in 0..4 {
        assert_eq!(r.crd(n, CTX_WEIGHT), 1);
        assert_eq!(r.crd(n, CTX_VECTOR), n + 1);
        assert_eq!(r.crd(n, CTX_STATUS), 0);
    }
    // Read-only registers ignore writes and are not "bad".
    r.wr(REG_ID, 0);
    assert_eq!(r.rd(REG_ID), DEVICE_ID_MAGIC);
    assert_eq!(r.rd(REG_BAD_ACCESS_COUNT), 0);
    r.wr(REG_SCRATCH, 0x1234_5678);
    r.cwr(2, CTX_WEIGHT, 7);
    r.wr(REG_CONTROL, CTRL_RESET);
    assert_eq!(r.rd(REG_SCRATCH), 0);
    assert_eq!(r.crd(2, CTX_WEIGHT), 1);
}

#[test]
fn fill_copy_checksum() {
    let mut r = Rig::new();
    r.setup(1, 4 * MIB, MIB);
    let base = 4 * MIB as usize;
    let a = r.submit(1, fill(0x1000, 0x2000, 0xa5a5_5a5a));
    let b = r.submit(1, op(OP_COPY, 0x1000, 0x8000, 0x2000));
    let c = r.submit(1, op(OP_CHECKSUM, 0x8000, 0, 0x2000));
    r.run();
    for at in [a, b, c] {
        assert_eq!(r.status(at).0, DESC_STATUS_DONE);
    }
    let expect: Vec<u8> = [0x5a, 0x5a, 0xa5, 0xa5].iter().copied().cycle().take(0x2000).collect();
    {
        let mut d = r.vram();
        let v = d.vram_mut();
        assert_eq!(&v[base + 0x1000..base + 0x3000], &expect[..]);
        assert_eq!(&v[base + 0x8000..base + 0xa000], &expect[..]);
    }
    assert_eq!(r.status(c).1, fnv1a64(FNV64_OFFSET, &expect));
    assert_eq!(r.crd(1, CTX_COMPLETED), 3);
    assert_eq!(r.crd(1, CTX_RING_HEAD), 3);
    assert_eq!(r.crd(1, CTX_STATUS), CTX_STATUS_ENABLED);
    assert_eq!(r.crd(1, CTX_IRQ_STATUS), CTX_IRQ_DONE);
}

#[test]
fn fill_of_one_repeated_byte_covers_exactly_its_range() {
    let mut r = Rig::new();
    r.setup(1, 4 * MIB, MIB);
    // Past the ring, which sits at the start of the slice.
    let at = 4 * MIB as usize + 0x10000;
    let len = (CHUNK + 0x1000) as usize;
    r.vram().vram_mut()[at - 0x1000..at + len + 0x1000].fill(0x77);
    let a = r.submit(1, fill(0x10000, len as u32, 0));
    let b = r.submit(1, fill(0x10000, 0x1000, 0x3c3c_3c3c));
    r.run();
    assert_eq!(r.status(a).0, DESC_STATUS_DONE);
    assert_eq!(r.status(b).0, DESC_STATUS_DONE);
    let mut d = r.vram();
    let v = d.vram_mut();
    assert_eq!(v[at - 1], 0x77);
    assert!(v[at..at + 0x1000].iter().all(|&x| x == 0x3c));
    assert!(v[at + 0x1000..at + len].iter().all(|&x| x == 0));
    assert_eq!(v[at + len], 0x77);
}

#[test]
fn overlapping_copy_is_memmove_across_chunks() {
    let mut r = Rig::new();
    r.setup(0, 0, 4 * MIB);
    let len = (CHUNK * 3 + 100) as usize;
    let src: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    r.vram().vram_mut()[0x10000..0x10000 + len].copy_from_slice(&src);
    r.submit(0, op(OP_COPY, 0x10000, 0x10000 + 4096, len as u32));
    r.run();
    assert_eq!(&r.vram().vram_mut()[0x11000..0x11000 + len], &src[..]);
    // And backwards overlap.
    r.vram().vram_mut()[0x20000..0x20000 + len].copy_from_slice(&src);
    r.submit(0, op(OP_COPY, 0x20000, 0x20000 - 4096, len as u32));
    r.run();
    assert_eq!(&r.vram().vram_mut()[0x1f000..0x1f000 + len], &src[..]);
}

#[test]
fn vram_bounds_are_enforced_and_nothing_is_performed() {
    let mut r = Rig::new();
    r.setup(0, 0, MIB);
    r.setup(1, MIB, MIB);
    let efd = eventfd();
    r.set_irq(1, &efd);
    // Context 0 tries to fill context 1's slice: one byte past its own.
    let at = r.submit(0, fill(MIB - 4, 8, 0xffff_ffff));
    r.run();
    assert_eq!(r.status(at).0, DESC_STATUS_ERROR | ERR_VRAM_BOUNDS);
    assert_eq!(r.crd(0, CTX_ERROR), ERR_VRAM_BOUNDS);
    assert_eq!(r.crd(0, CTX_ERROR_ADDR_LO), (MIB - 4) as u32);
    assert_eq!(r.crd(0, CTX_STATUS) & CTX_STATUS_HALTED, CTX_STATUS_HALTED);
    assert_eq!(r.crd(0, CTX_IRQ_STATUS), CTX_IRQ_ERROR);
    assert_eq!(count(&efd), 1, "error interrupt on the context's vector");
    assert!(r.vram().vram_mut()[MIB as usize - 4..MIB as usize + 4]
        .iter()
        .all(|&b| b == 0));
    // Huge offsets that would wrap.
    r.cwr(0, CTX_ERROR, 0);
    for d in [
        fill(u64::MAX - 3, 8, 1),
        op(OP_COPY, 0, u64::MAX - 100, 4096),
        op(OP_CHECKSUM, MIB, 0, 4),
        op(OP_COPY, MIB - 1, 0, 2),
    ] {
        let at = r.submit(0, d);
        r.run();
        assert_eq!(r.status(at).0, DESC_STATUS_ERROR | ERR_VRAM_BOUNDS, "{d:?}");
        r.cwr(0, CTX_ERROR, 0);
    }
    assert!(r.vram().vram_mut()[MIB as usize..2 * MIB as usize]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn halted_context_resumes_after_error_clear() {
    let mut r = Rig::new();
    r.setup(0, 0, MIB);
    r.submit(0, fill(MIB, 4, 1));
    let ok = r.submit(0, fill(0x1000, 4, 7));
    r.run();
    assert_eq!(r.status(ok).0, 0, "halted: the next job waits");
    assert_eq!(
        r.crd(0, CTX_STATUS),
        CTX_STATUS_ENABLED | CTX_STATUS_BUSY | CTX_STATUS_HALTED
    );
    r.cwr(0, CTX_ERROR, 0);
    r.run();
    assert_eq!(r.status(ok).0, DESC_STATUS_DONE);
    assert_eq!(r.crd(0, CTX_COMPLETED), 1);
}

#[test]
fn bad_descriptors_and_rings() {
    let mut r = Rig::new();
    r.setup(0, 0, MIB);
    let cases = [
        (
            Desc {
                opcode: 99,
                ..fill(0, 4, 0)
            },
            ERR_BAD_DESC,
        ),
        (
            Desc {
                flags: 0x80,
                ..fill(0, 4, 0)
            },
            ERR_BAD_DESC,
        ),
        (fill(0, 3, 0), ERR_BAD_LEN),
        (fill(0, 0, 0), ERR_BAD_LEN),
        (op(OP_COPY, 0, 0x1000, JOB_MAX_LEN + 1), ERR_BAD_LEN),
    ];
    for (d, err) in cases {
        let at = r.submit(0, d);
        r.run();
        assert_eq!(r.status(at).0, DESC_STATUS_ERROR | err, "{d:?}");
        r.cwr(0, CTX_ERROR, 0);
    }
    // NOP completes.
    let at = r.submit(0, op(OP_NOP, 0, 0, 0));
    r.run();
    assert_eq!(r.status(at).0, DESC_STATUS_DONE);
    // Rings outside the slice, misaligned or of a bad size.
    for (base, size) in [(MIB - 64, 2u32), (32, 4), (0, 3), (0, 8192), (0, 0)] {
        r.cwr(0, CTX_CONTROL, CTX_CTRL_RESET);
        r.cwr(0, CTX_CONTROL, CTX_CTRL_ENABLE);
        r.wr64(0, CTX_RING_BASE_LO, base);
        r.cwr(0, CTX_RING_SIZE, size);
        r.cwr(0, CTX_RING_TAIL, 1);
        r.run();
        assert_eq!(r.crd(0, CTX_ERROR), ERR_BAD_RING, "ring {base:#x}/{size}");
    }
}

#[test]
fn misprogrammed_slice_gives_no_vram() {
    let mut r = Rig::new();
    // Past the end of VRAM, and unaligned: both mean "no slice".
    for (base, size) in [(15 * MIB, 2 * MIB), (100, MIB)] {
        r.setup(0, base, size);
        r.cwr(0, CTX_RING_TAIL, 1);
        r.run();
        assert_eq!(r.crd(0, CTX_ERROR), ERR_BAD_RING);
        r.cwr(0, CTX_CONTROL, CTX_CTRL_RESET);
    }
}

fn dma_rig() -> (Rig, File) {
    let mut r = Rig::new();
    let guest = memfd(c"guest-ram", 4 * MIB).unwrap();
    r.b.dma_map(
        vfio_user::DmaMapFlags::READ_WRITE,
        MIB,
        0x4000_0000,
        2 * MIB,
        Some(guest.try_clone().unwrap()),
    )
    .unwrap();
    r.setup(0, 0, MIB);
    (r, guest)
}

#[test]
fn dma_both_ways_inside_the_window() {
    let (mut r, guest) = dma_rig();
    r.wr64(0, CTX_DMA_BASE_LO, 0x4000_0000);
    r.wr64(0, CTX_DMA_SIZE_LO, MIB);
    r.submit(0, fill(0x2000, 4096, 0x0102_0304));
    let a = r.submit(0, op(OP_DMA_TO_HOST, 0x2000, 0x4000_1000, 4096));
    r.run();
    assert_eq!(r.status(a).0, DESC_STATUS_DONE);
    let view = Mapping::new(guest.as_raw_fd(), MIB, 2 * MIB as usize).unwrap();
    assert_eq!(&view.bytes()[0x1000..0x1004], &[4, 3, 2, 1]);
    drop(view);
    let mut w = Mapping::new(guest.as_raw_fd(), MIB, 2 * MIB as usize).unwrap();
    w.bytes_mut()[0x5000..0x5004].copy_from_slice(b"vsl!");
    let b = r.submit(0, op(OP_DMA_FROM_HOST, 0x4000_5000, 0x9000, 4));
    r.run();
    assert_eq!(r.status(b).0, DESC_STATUS_DONE);
    assert_eq!(&r.vram().vram_mut()[0x9000..0x9004], b"vsl!");
}

#[test]
fn dma_outside_window_or_unmapped_is_refused() {
    let (mut r, guest) = dma_rig();
    // No window programmed: every DMA is refused.
    let a = r.submit(0, op(OP_DMA_TO_HOST, 0, 0x4000_0000, 16));
    r.run();
    assert_eq!(r.status(a).0, DESC_STATUS_ERROR | ERR_DMA_BOUNDS);
    r.cwr(0, CTX_ERROR, 0);
    r.wr64(0, CTX_DMA_BASE_LO, 0x4000_0000);
    r.wr64(0, CTX_DMA_SIZE_LO, 4 * MIB);
    // Inside the window but past what QEMU mapped (2 MiB).
    let b = r.submit(0, op(OP_DMA_TO_HOST, 0, 0x4000_0000 + 2 * MIB - 8, 16));
    r.run();
    assert_eq!(r.status(b).0, DESC_STATUS_ERROR | ERR_DMA_BOUNDS);
    r.cwr(0, CTX_ERROR, 0);
    // Below the window; wrapping.
    for iova in [0x3fff_fff0, u64::MAX - 4] {
        let c = r.submit(0, op(OP_DMA_FROM_HOST, iova, 0, 16));
        r.run();
        assert_eq!(r.status(c).0, DESC_STATUS_ERROR | ERR_DMA_BOUNDS);
        r.cwr(0, CTX_ERROR, 0);
    }
    // After unmap nothing reaches guest memory.
    r.b.dma_unmap(vfio_user::DmaUnmapFlags::empty(), 0x4000_0000, 2 * MIB)
        .unwrap();
    let d = r.submit(0, op(OP_DMA_TO_HOST, 0, 0x4000_0000, 16));
    r.run();
    assert_eq!(r.status(d).0, DESC_STATUS_ERROR | ERR_DMA_BOUNDS);
    let view = Mapping::new(guest.as_raw_fd(), 0, 4 * MIB as usize).unwrap();
    assert!(view.bytes().iter().all(|&b| b == 0));
}

#[test]
fn scheduling_is_fair_by_weight() {
    let mut r = Rig::new();
    for n in 0..3 {
        r.setup(n, u64::from(n) * 4 * MIB, 4 * MIB);
    }
    r.cwr(0, CTX_WEIGHT, 1);
    r.cwr(1, CTX_WEIGHT, 3);
    r.cwr(2, CTX_WEIGHT, 1);
    // Keep all three backlogged with equal jobs; measure the bytes each
    // got while all were busy.
    for _ in 0..SLOTS - 1 {
        for n in 0..3 {
            r.submit(n, fill(0x10000, CHUNK as u32, n));
        }
    }
    let mut steps = 0;
    while steps < 24 {
        assert!(r.vram().step());
        steps += 1;
    }
    let d = r.vram();
    let bytes: Vec<u64> = (0..3).map(|n| d.context(n).unwrap().bytes_done).collect();
    drop(d);
    // Weights 1:3:1 over 24 equal chunks: 4.8, 14.4, 4.8 chunks.
    let chunks: Vec<f64> = bytes.iter().map(|&b| b as f64 / CHUNK as f64).collect();
    assert!((chunks[1] / chunks[0] - 3.0).abs() < 0.7, "{chunks:?}");
    assert!((chunks[0] - chunks[2]).abs() <= 1.0, "{chunks:?}");
    // A context that was idle does not get a burst for its idle time.
    r.run();
    r.setup(3, 12 * MIB, 4 * MIB);
    for _ in 0..4 {
        r.submit(0, fill(0x10000, CHUNK as u32, 0));
        r.submit(3, fill(0x10000, CHUNK as u32, 0));
    }
    let before: Vec<u64> = (0..4).map(|n| r.vram().context(n).unwrap().bytes_done).collect();
    for _ in 0..4 {
        r.vram().step();
    }
    let d = r.vram();
    let got0 = d.context(0).unwrap().bytes_done - before[0];
    let got3 = d.context(3).unwrap().bytes_done - before[3];
    assert_eq!((got0, got3), (2 * CHUNK, 2 * CHUNK));
}

#[test]
fn context_reset_stops_in_flight_work() {
    let mut r = Rig::new();
    r.setup(0, 0, 8 * MIB);
    let big = 4 * CHUNK as u32;
    let at = r.submit(0, fill(MIB, big, 0x1111_1111));
    assert!(r.vram().step());
    assert_eq!(r.crd(0, CTX_STATUS) & CTX_STATUS_BUSY, CTX_STATUS_BUSY);
    r.cwr(0, CTX_CONTROL, CTX_CTRL_RESET);
    assert_eq!(r.crd(0, CTX_STATUS), CTX_STATUS_ENABLED, "privileged enable survives");
    assert_eq!(r.crd(0, CTX_RING_TAIL), 0);
    assert!(!r.vram().step(), "nothing left to run");
    assert_eq!(r.status(at).0, 0, "the job never completed");
    let m = MIB as usize;
    let written = r.vram().vram_mut()[m..m + big as usize]
        .iter()
        .filter(|&&b| b != 0)
        .count();
    assert_eq!(written as u64, CHUNK, "exactly one chunk ran before the reset");
    assert_eq!(r.crd(0, CTX_VRAM_SIZE_LO), 8 * MIB as u32, "slice programming kept");
}

#[test]
fn device_reset_stops_everything() {
    let mut r = Rig::new();
    r.setup(0, 0, 8 * MIB);
    r.setup(1, 8 * MIB, 8 * MIB);
    r.submit(0, fill(0, 4 * CHUNK as u32, 1));
    r.submit(1, fill(0, 4 * CHUNK as u32, 1));
    r.vram().step();
    r.wr(REG_CONTROL, CTRL_RESET);
    assert!(!r.vram().has_work());
    assert_eq!(r.rd(REG_CONTROL), 0);
    for n in 0..2 {
        assert_eq!(r.crd(n, CTX_VRAM_SIZE_LO), 0);
        assert_eq!(r.crd(n, CTX_STATUS), 0);
    }
    // The vfio-user reset message does the same.
    r.setup(0, 0, MIB);
    r.b.reset().unwrap();
    assert_eq!(r.crd(0, CTX_CONTROL), 0);
}

#[test]
fn interrupts_follow_mask_and_vector() {
    let mut r = Rig::new();
    r.setup(2, 0, MIB);
    let (e3, e4) = (eventfd(), eventfd());
    r.set_irq(3, &e3);
    r.set_irq(4, &e4);
    r.submit(2, fill(0x1000, 4, 0));
    r.run();
    assert_eq!((count(&e3), count(&e4)), (1, 0));
    // A job without DESC_FLAG_IRQ raises nothing.
    r.submit(
        2,
        Desc {
            flags: 0,
            ..fill(0x1000, 4, 0)
        },
    );
    r.run();
    assert_eq!(count(&e3), 0);
    // Masked: status set, no signal.
    r.cwr(2, CTX_IRQ_MASK, CTX_IRQ_DONE);
    r.cwr(2, CTX_IRQ_STATUS, !0);
    r.submit(2, fill(0x1000, 4, 0));
    r.run();
    assert_eq!(count(&e3), 0);
    assert_eq!(r.crd(2, CTX_IRQ_STATUS), CTX_IRQ_DONE);
    // Re-routed to vector 4.
    r.cwr(2, CTX_IRQ_MASK, 0);
    r.cwr(2, CTX_VECTOR, 4);
    r.submit(2, fill(0x1000, 4, 0));
    r.run();
    assert_eq!((count(&e3), count(&e4)), (0, 1));
    // A vector beyond the table is ignored, not a crash.
    r.cwr(2, CTX_VECTOR, 999);
    r.submit(2, fill(0x1000, 4, 0));
    r.run();
    // Disabling all eventfds.
    let none = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
    r.b.set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, none, 0, 0, vec![]).unwrap();
    r.cwr(2, CTX_VECTOR, 3);
    r.submit(2, fill(0x1000, 4, 0));
    r.run();
    assert_eq!(count(&e3), 0);
}

/// QEMU's vfio-user client sends fds of -1 (a vector released, as when
/// the guest masks it) as a run of vectors with no fd: they are
/// de-assigned, the others stay.
#[test]
fn set_irqs_without_fds_deassigns() {
    let mut r = Rig::new();
    r.setup(2, 0, MIB);
    let (e3, e4) = (eventfd(), eventfd());
    r.set_irq(3, &e3);
    r.set_irq(4, &e4);
    let trig = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    r.b.set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, trig, 3, 1, vec![]).unwrap();
    for v in [3, 4] {
        r.cwr(2, CTX_VECTOR, v);
        r.submit(2, fill(0x1000, 4, 0));
        r.run();
    }
    assert_eq!((count(&e3), count(&e4)), (0, 1));
}

#[test]
fn set_irqs_rejects_bad_requests() {
    let mut r = Rig::new();
    let trig = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    assert!(r
        .b
        .set_irqs(VFIO_PCI_INTX_IRQ_INDEX, trig, 0, 1, vec![eventfd()])
        .is_err());
    assert!(r
        .b
        .set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, trig, 4, 2, vec![eventfd(), eventfd()])
        .is_err());
    assert!(r
        .b
        .set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, trig, u32::MAX, 2, vec![])
        .is_err());
    assert!(r
        .b
        .set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, trig, 0, 2, vec![eventfd()])
        .is_err());
}

#[test]
fn fault_surprise_removal_and_restore() {
    let mut r = Rig::new();
    r.setup(0, 0, MIB);
    let e = eventfd();
    r.set_irq(1, &e);
    let f = r.faults();
    f.apply(&Command::Remove);
    assert_eq!(r.rd(REG_ID), !0);
    assert_eq!(r.crd(0, CTX_STATUS), !0);
    let mut cfg = [0u8; 4];
    r.b.region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut cfg).unwrap();
    assert_eq!(cfg, [0xff; 4]);
    r.wr(REG_SCRATCH, 5);
    r.cwr(0, CTX_RING_TAIL, 1); // ignored
    assert!(!r.vram().step(), "engine stopped");
    f.apply(&Command::Restore);
    assert_eq!(r.rd(REG_SCRATCH), 0, "writes while removed were dropped");
    assert_eq!(r.crd(0, CTX_RING_TAIL), 0);
    // Removed during a job: no completion, no interrupt.
    r.submit(0, fill(0, 4, 0));
    f.apply(&Command::Remove);
    r.run();
    assert_eq!(count(&e), 0);
    f.apply(&Command::Restore);
    r.run();
    assert_eq!(count(&e), 1);
}

#[test]
fn fault_hang_delays_accesses_and_stalls_engine() {
    let mut r = Rig::new();
    r.setup(0, 0, MIB);
    r.submit(0, fill(0, 4, 0));
    r.faults().apply(&Command::Hang(60));
    assert!(!r.vram().step());
    let t = std::time::Instant::now();
    assert_eq!(r.rd(REG_ID), DEVICE_ID_MAGIC);
    assert!(t.elapsed() >= std::time::Duration::from_millis(50));
    r.run();
    assert_eq!(r.crd(0, CTX_COMPLETED), 1);
    r.faults().apply(&Command::Slow(2000));
    let t = std::time::Instant::now();
    r.rd(REG_ID);
    assert!(t.elapsed() >= std::time::Duration::from_micros(2000));
}

#[test]
fn fault_error_interrupt_on_global_vector() {
    let mut r = Rig::new();
    let e = eventfd();
    r.set_irq(GLOBAL_VECTOR, &e);
    r.b.0.lock().inject_error();
    assert_eq!(count(&e), 0, "masked after reset");
    assert_eq!(r.rd(REG_STATUS), STATUS_READY | STATUS_FATAL);
    r.wr(REG_GLOBAL_IRQ_STATUS, !0);
    r.wr(REG_GLOBAL_IRQ_MASK, !GIRQ_FATAL);
    r.b.0.lock().inject_error();
    assert_eq!(count(&e), 1);
    assert_eq!(r.rd(REG_GLOBAL_IRQ_STATUS), GIRQ_FATAL);
    r.wr(REG_GLOBAL_IRQ_STATUS, GIRQ_FATAL);
    assert_eq!(r.rd(REG_STATUS), STATUS_READY);
}

#[test]
fn bad_register_accesses_are_answered_and_logged() {
    let mut r = Rig::new();
    let mut b2 = [0u8; 2];
    r.b.region_read(VFIO_PCI_BAR0_REGION_INDEX, 0, &mut b2).unwrap();
    assert_eq!(b2, [0xff; 2], "wrong size");
    assert_eq!(r.rd(2), !0, "unaligned");
    assert_eq!(r.rd(0x3c), !0, "unnamed global offset");
    assert_eq!(r.rd(ctx_window(0) + 0x200), !0, "beyond the named window");
    assert_eq!(r.rd(ctx_window(4)), !0, "context that does not exist");
    assert_eq!(r.rd(BAR0_SIZE as usize), !0);
    let mut big = [0u8; 16];
    r.b.region_read(VFIO_PCI_BAR0_REGION_INDEX, u64::MAX - 4, &mut big)
        .unwrap();
    assert_eq!(big, [0xff; 16]);
    r.b.region_write(VFIO_PCI_BAR0_REGION_INDEX, 1, &[1, 2, 3, 4]).unwrap();
    r.b.region_write(VFIO_PCI_BAR0_REGION_INDEX, 0x3c, &[]).unwrap();
    r.b.region_read(VFIO_PCI_BAR2_REGION_INDEX, 16 * MIB - 2, &mut [0u8; 4])
        .unwrap();
    r.b.region_read(VFIO_PCI_NUM_REGIONS + 3, 0, &mut [0u8; 4]).unwrap();
    assert_eq!(r.rd(REG_BAD_ACCESS_COUNT), 11);
    assert_eq!(r.rd(REG_GLOBAL_IRQ_STATUS), GIRQ_BAD_ACCESS);
    assert_eq!(r.rd(REG_BAD_ACCESS_OFFSET), 0x3c);
}

#[test]
fn doorbell_storm_and_random_input_never_crash() {
    let mut r = Rig::new();
    r.setup(0, 0, MIB);
    for _ in 0..10_000 {
        r.cwr(0, CTX_DOORBELL, 1);
    }
    // A deterministic xorshift fuzz over registers and ring contents.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in 0..20_000 {
        let v = next();
        let off = (v % (ctx_window(5) as u64)) as usize & !3;
        match i % 5 {
            0 => r.wr(off, next() as u32),
            1 => {
                r.rd(off);
            }
            2 => {
                let n = (next() % 4) as u32;
                let at = (r.slice_base(n) + (next() % MIB) as usize) % (16 * MIB as usize);
                let bytes = next().to_le_bytes();
                let mut d = r.vram();
                let vr = d.vram_mut();
                let end = (at + 8).min(vr.len());
                vr[at..end].copy_from_slice(&bytes[..end - at]);
            }
            3 => r.cwr((next() % 4) as u32, CTX_RING_TAIL, next() as u32),
            _ => {
                for _ in 0..8 {
                    r.vram().step();
                }
            }
        }
    }
}

#[test]
fn config_and_bar_regions_agree() {
    let r = Rig::new();
    let d = r.b.0.lock();
    let regions = d.regions();
    let bar2 = &regions[VFIO_PCI_BAR2_REGION_INDEX as usize];
    assert!(bar2.mmap_fd.is_some());
    assert_eq!(bar2.sparse_areas.len(), 1);
    assert_eq!(bar2.region_info.size, 16 * MIB);
    assert_eq!(regions[VFIO_PCI_BAR0_REGION_INDEX as usize].region_info.size, BAR0_SIZE);
    assert_eq!(regions[VFIO_PCI_BAR4_REGION_INDEX as usize].region_info.size, BAR4_SIZE);
    let irqs = d.irq_info();
    assert_eq!(irqs[VFIO_PCI_MSIX_IRQ_INDEX as usize].count, 5);
    assert_eq!(irqs[VFIO_PCI_INTX_IRQ_INDEX as usize].count, 0);
}

#[test]
fn params_are_validated() {
    for p in [
        DeviceParams {
            vram_size: 3 * MIB,
            ..Default::default()
        },
        DeviceParams {
            contexts: 0,
            ..Default::default()
        },
        DeviceParams {
            contexts: MAX_CONTEXTS + 1,
            vectors: 2048,
            ..Default::default()
        },
        DeviceParams {
            vectors: 4,
            ..Default::default()
        },
    ] {
        assert!(Device::new(p, Arc::new(Faults::default())).is_err());
    }
}

#[test]
fn engine_thread_runs_jobs_and_signals() {
    let mut r = Rig::new();
    r.setup(0, 0, MIB);
    let e = eventfd();
    r.set_irq(1, &e);
    let shared = r.b.0.clone();
    let t = std::thread::spawn(move || shared.run_engine());
    let at = r.submit(0, fill(0x1000, 64 << 10, 3));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.status(at).0 == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(r.status(at).0, DESC_STATUS_DONE);
    r.b.0.stop();
    t.join().unwrap();
    assert_eq!(count(&e), 1);
}

// ---- address translation ------------------------------------------------

/// Guest bus address QEMU maps (`dma_rig`: 2 MiB of the guest file from
/// offset 1 MiB).
const BUS: u64 = 0x4000_0000;
/// Device-virtual base of the translated DMA window.
const VA: u64 = 0x7_0000_0000;

/// Translation tables the test writes into guest memory like a driver:
/// tables from `BUS + 1 MiB` up, data pages below.
struct Tables {
    mem: Mapping,
    next: u64,
    root: u64,
}

impl Tables {
    fn new(guest: &File) -> Tables {
        let mem = Mapping::new(guest.as_raw_fd(), MIB, 2 * MIB as usize).unwrap();
        let mut t = Tables {
            mem,
            next: BUS + MIB,
            root: 0,
        };
        t.root = t.alloc();
        t
    }

    fn alloc(&mut self) -> u64 {
        let a = self.next;
        self.next += XLATE_PAGE_SIZE;
        a
    }

    fn get(&self, bus: u64) -> u64 {
        let o = (bus - BUS) as usize;
        u64::from_le_bytes(self.mem.bytes()[o..o + 8].try_into().unwrap())
    }

    fn set(&mut self, bus: u64, v: u64) {
        let o = (bus - BUS) as usize;
        self.mem.bytes_mut()[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// The leaf entry's bus address for `va`, tables made on the way.
    fn leaf(&mut self, va: u64) -> u64 {
        let mut table = self.root;
        for level in 0..XLATE_LEVELS - 1 {
            let shift = 12 + 9 * (XLATE_LEVELS - 1 - level);
            let at = table + ((va >> shift) & (XLATE_TABLE_ENTRIES - 1)) * 8;
            if self.get(at) & PTE_READ == 0 {
                let t = self.alloc();
                self.set(at, t | PTE_READ);
            }
            table = self.get(at) & PTE_ADDR_MASK;
        }
        table + ((va >> 12) & (XLATE_TABLE_ENTRIES - 1)) * 8
    }

    fn map(&mut self, va: u64, pa: u64, perm: u64) {
        let at = self.leaf(va);
        self.set(at, pa | perm);
    }

    /// Guest memory at bus address `bus`.
    fn bytes(&mut self, bus: u64, len: usize) -> &mut [u8] {
        let o = (bus - BUS) as usize;
        &mut self.mem.bytes_mut()[o..o + len]
    }
}

/// Context 0 translating through fresh tables, its window at `VA`.
fn xlate_rig() -> (Rig, Tables, File) {
    let (mut r, guest) = dma_rig();
    let t = Tables::new(&guest);
    r.wr64(0, CTX_DMA_BASE_LO, VA);
    r.wr64(0, CTX_DMA_SIZE_LO, 16 * MIB);
    r.wr64(0, CTX_XLATE_ROOT_LO, t.root);
    r.cwr(0, CTX_XLATE_CTRL, XLATE_ENABLE);
    (r, t, guest)
}

fn fault_addr(r: &mut Rig, n: u32) -> u64 {
    u64::from(r.crd(n, CTX_FAULT_ADDR_LO)) | u64::from(r.crd(n, CTX_FAULT_ADDR_HI)) << 32
}

#[test]
fn translated_dma_reaches_scattered_pages() {
    let (mut r, mut t, _g) = xlate_rig();
    let pages = [BUS + 0x3000, BUS + 0x1000, BUS + 0x7000];
    for (i, &pa) in pages.iter().enumerate() {
        t.map(VA + i as u64 * 0x1000, pa, PTE_READ | PTE_WRITE);
    }
    r.submit(0, fill(0x2000, 0x3000, 0x0302_0100));
    let a = r.submit(0, op(OP_DMA_TO_HOST, 0x2000, VA, 0x3000));
    r.run();
    assert_eq!(r.status(a).0, DESC_STATUS_DONE);
    for pa in pages {
        assert_eq!(&t.bytes(pa, 4)[..], &[0, 1, 2, 3], "page {pa:#x}");
    }
    assert!(
        t.bytes(BUS + 0x2000, 0x1000).iter().all(|&b| b == 0),
        "an unmapped page was written"
    );
    // Back into VRAM, and guest to guest through a second mapping.
    t.bytes(BUS + 0x1000, 4).copy_from_slice(b"xlat");
    let b = r.submit(0, op(OP_DMA_FROM_HOST, VA, 0x8000, 0x3000));
    t.map(VA + 0x10_0000, BUS + 0x9000, PTE_READ | PTE_WRITE);
    let c = r.submit(0, op(OP_DMA_COPY, VA + 0x1000, VA + 0x10_0000, 0x1000));
    r.run();
    assert_eq!(r.status(b).0, DESC_STATUS_DONE);
    assert_eq!(r.status(c).0, DESC_STATUS_DONE);
    assert_eq!(&r.vram().vram_mut()[0x9000..0x9004], b"xlat");
    assert_eq!(&t.bytes(BUS + 0x9000, 4)[..], b"xlat");
    assert_eq!(r.crd(0, CTX_FAULT_INFO), 0);
}

#[test]
fn fault_goes_to_the_driver_and_resume_completes_the_job() {
    let (mut r, mut t, _g) = xlate_rig();
    let (global, own) = (eventfd(), eventfd());
    r.set_irq(GLOBAL_VECTOR, &global);
    r.set_irq(1, &own);
    r.wr(REG_GLOBAL_IRQ_MASK, !GIRQ_XLATE_FAULT);
    t.map(VA, BUS + 0x4000, PTE_READ);
    t.bytes(BUS + 0x4000, 4).copy_from_slice(b"one!");
    t.bytes(BUS + 0x5000, 4).copy_from_slice(b"two!");
    let a = r.submit(0, op(OP_DMA_FROM_HOST, VA, 0x8000, 0x2000));
    r.run();
    // Nothing moved: the whole job translates before any of it runs.
    assert_eq!(r.crd(0, CTX_STATUS) & CTX_STATUS_FAULTED, CTX_STATUS_FAULTED);
    assert_eq!(r.status(a).0, 0);
    assert_eq!(&r.vram().vram_mut()[0x8000..0x8004], &[0; 4]);
    assert_eq!(fault_addr(&mut r, 0), VA + 0x1000);
    assert_eq!(r.crd(0, CTX_FAULT_LEN), 0x1000);
    assert_eq!(r.crd(0, CTX_FAULT_INFO), FAULT_PENDING);
    assert_eq!(r.rd(REG_FAULT_PENDING), 1);
    assert_eq!(r.rd(REG_GLOBAL_IRQ_STATUS) & GIRQ_XLATE_FAULT, GIRQ_XLATE_FAULT);
    assert_eq!(count(&global), 1);
    assert_eq!(count(&own), 0, "the context's own vector belongs to its user");
    // The driver maps the page and resumes.
    t.map(VA + 0x1000, BUS + 0x5000, PTE_READ);
    r.cwr(0, CTX_FAULT_RESPONSE, FAULT_RESUME);
    r.run();
    assert_eq!(r.status(a).0, DESC_STATUS_DONE);
    assert_eq!(&r.vram().vram_mut()[0x8000..0x8004], b"one!");
    assert_eq!(&r.vram().vram_mut()[0x9000..0x9004], b"two!");
    assert_eq!(r.rd(REG_FAULT_PENDING), 0);
    assert_eq!(r.crd(0, CTX_STATUS) & CTX_STATUS_FAULTED, 0);
    assert_eq!(count(&own), 1);
    // An answer without a pending fault changes nothing.
    r.cwr(0, CTX_FAULT_RESPONSE, FAULT_ABORT);
    assert_eq!(r.crd(0, CTX_ERROR), ERR_NONE);
}

#[test]
fn aborted_fault_fails_the_job_and_touches_nothing() {
    let (mut r, mut t, _g) = xlate_rig();
    let own = eventfd();
    r.set_irq(1, &own);
    t.map(VA, BUS + 0x4000, PTE_READ | PTE_WRITE);
    t.map(VA + 0x1000, BUS + 0x5000, PTE_READ);
    r.submit(0, fill(0x2000, 0x2000, 0x5a5a_5a5a));
    let a = r.submit(0, op(OP_DMA_TO_HOST, 0x2000, VA, 0x2000));
    r.run();
    assert_eq!(r.crd(0, CTX_FAULT_INFO), FAULT_PENDING | FAULT_WRITE | FAULT_PERM);
    assert_eq!(fault_addr(&mut r, 0), VA + 0x1000);
    assert!(
        t.bytes(BUS + 0x4000, 0x2000).iter().all(|&b| b == 0),
        "a refused job wrote"
    );
    count(&own); // the fill's completion
    r.cwr(0, CTX_FAULT_RESPONSE, FAULT_ABORT);
    assert_eq!(r.status(a).0, DESC_STATUS_ERROR | ERR_DMA_FAULT);
    assert_eq!(r.crd(0, CTX_ERROR), ERR_DMA_FAULT);
    assert_eq!(r.crd(0, CTX_ERROR_ADDR_LO), (VA + 0x1000) as u32);
    assert_eq!(r.crd(0, CTX_ERROR_ADDR_HI), ((VA + 0x1000) >> 32) as u32);
    assert_eq!(
        r.crd(0, CTX_STATUS) & (CTX_STATUS_HALTED | CTX_STATUS_FAULTED),
        CTX_STATUS_HALTED
    );
    assert_eq!(r.crd(0, CTX_IRQ_STATUS) & CTX_IRQ_ERROR, CTX_IRQ_ERROR);
    assert_eq!(count(&own), 1, "the job's error reaches the context's user");
    assert!(t.bytes(BUS + 0x4000, 0x2000).iter().all(|&b| b == 0));
}

#[test]
fn cached_translations_stay_until_invalidated() {
    let (mut r, mut t, _g) = xlate_rig();
    t.map(VA, BUS + 0x4000, PTE_READ | PTE_WRITE);
    let job = |r: &mut Rig| {
        let a = r.submit(0, op(OP_DMA_FROM_HOST, VA, 0x8000, 16));
        r.run();
        r.status(a).0
    };
    assert_eq!(job(&mut r), DESC_STATUS_DONE);
    // The entry is gone but the device still has it cached, as the
    // document says: the driver must invalidate.
    let leaf = t.leaf(VA);
    t.set(leaf, 0);
    assert_eq!(job(&mut r), DESC_STATUS_DONE);
    // Another range: still cached.
    r.wr64(0, CTX_INV_ADDR_LO, VA + 0x1000);
    r.wr64(0, CTX_INV_SIZE_LO, 0x1000);
    r.cwr(0, CTX_INV_CMD, 1);
    assert_eq!(r.crd(0, CTX_INV_COMPLETED), 1);
    assert_eq!(job(&mut r), DESC_STATUS_DONE);
    r.wr64(0, CTX_INV_ADDR_LO, VA);
    r.cwr(0, CTX_INV_CMD, 1);
    assert_eq!(r.crd(0, CTX_INV_COMPLETED), 2);
    assert_eq!(job(&mut r), 0);
    assert_eq!(r.crd(0, CTX_FAULT_INFO), FAULT_PENDING);
    // Size 0 drops everything.
    r.cwr(0, CTX_FAULT_RESPONSE, FAULT_ABORT);
    r.cwr(0, CTX_ERROR, 0);
    t.map(VA, BUS + 0x4000, PTE_READ);
    assert_eq!(job(&mut r), DESC_STATUS_DONE);
    t.set(leaf, 0);
    r.wr64(0, CTX_INV_SIZE_LO, 0);
    r.wr64(0, CTX_INV_ADDR_LO, VA + 0x10_0000);
    r.cwr(0, CTX_INV_CMD, 1);
    assert_eq!(job(&mut r), 0);
}

#[test]
fn invalidation_mid_job_stops_it_at_that_byte() {
    let (mut r, mut t, _g) = xlate_rig();
    let len = 2 * CHUNK;
    for p in 0..len / 0x1000 {
        t.map(VA + p * 0x1000, BUS + p * 0x1000, PTE_READ | PTE_WRITE);
    }
    t.bytes(BUS + CHUNK, 4).copy_from_slice(b"half");
    let a = r.submit(0, op(OP_DMA_FROM_HOST, VA, 0x8_0000, len as u32));
    assert!(r.vram().step(), "first chunk");
    // The driver unmaps the second half and invalidates it.
    for p in CHUNK / 0x1000..len / 0x1000 {
        let leaf = t.leaf(VA + p * 0x1000);
        t.set(leaf, 0);
    }
    r.wr64(0, CTX_INV_ADDR_LO, VA + CHUNK);
    r.wr64(0, CTX_INV_SIZE_LO, CHUNK);
    r.cwr(0, CTX_INV_CMD, 1);
    r.run();
    assert_eq!(fault_addr(&mut r, 0), VA + CHUNK);
    assert_eq!(u64::from(r.crd(0, CTX_FAULT_LEN)), CHUNK);
    assert_eq!(&r.vram().vram_mut()[0x8_0000 + CHUNK as usize..][..4], &[0; 4]);
    // Mapped again (the user re-mapped the IOVA): resume finishes it.
    for p in CHUNK / 0x1000..len / 0x1000 {
        t.map(VA + p * 0x1000, BUS + p * 0x1000, PTE_READ);
    }
    r.cwr(0, CTX_FAULT_RESPONSE, FAULT_RESUME);
    r.run();
    assert_eq!(r.status(a).0, DESC_STATUS_DONE);
    assert_eq!(&r.vram().vram_mut()[0x8_0000 + CHUNK as usize..][..4], b"half");
}

#[test]
fn unreachable_tables_and_addresses_beyond_48_bits_fault() {
    let (mut r, mut t, _g) = xlate_rig();
    // A table outside what QEMU mapped.
    r.wr64(0, CTX_XLATE_ROOT_LO, 0x10_0000_0000);
    r.submit(0, op(OP_DMA_FROM_HOST, VA, 0, 16));
    r.run();
    assert_eq!(r.crd(0, CTX_FAULT_INFO), FAULT_PENDING | FAULT_TABLE);
    r.cwr(0, CTX_CONTROL, CTX_CTRL_RESET);
    // Past 48 bits (inside a window that reaches there).
    r.wr64(0, CTX_XLATE_ROOT_LO, t.root);
    r.wr64(0, CTX_DMA_BASE_LO, 1 << 48);
    t.map(0, BUS, PTE_READ | PTE_WRITE);
    r.setup(0, 0, MIB);
    r.submit(0, op(OP_DMA_FROM_HOST, 1 << 48, 0, 16));
    r.run();
    assert_eq!(r.crd(0, CTX_FAULT_INFO), FAULT_PENDING);
    assert_eq!(fault_addr(&mut r, 0), 1 << 48);
}

#[test]
fn resets_drop_faults_and_device_reset_turns_translation_off() {
    let (mut r, _t, _g) = xlate_rig();
    r.submit(0, op(OP_DMA_FROM_HOST, VA, 0, 16));
    r.run();
    assert_eq!(r.rd(REG_FAULT_PENDING), 1);
    r.cwr(0, CTX_CONTROL, CTX_CTRL_RESET);
    assert_eq!(r.rd(REG_FAULT_PENDING), 0);
    assert_eq!(r.crd(0, CTX_FAULT_INFO), 0);
    assert_eq!(r.crd(0, CTX_XLATE_CTRL), XLATE_ENABLE, "privileged programming stays");
    r.setup(0, 0, MIB);
    r.submit(0, op(OP_DMA_FROM_HOST, VA, 0, 16));
    r.run();
    assert_eq!(r.rd(REG_FAULT_PENDING), 1);
    r.wr(REG_CONTROL, CTRL_RESET);
    assert_eq!(r.rd(REG_FAULT_PENDING), 0);
    assert_eq!(r.crd(0, CTX_XLATE_CTRL), 0);
    assert_eq!(r.crd(0, CTX_XLATE_ROOT_LO), 0);
}

#[test]
fn fault_pending_bits_name_the_context() {
    let mut r = Rig::with(DeviceParams {
        contexts: 40,
        vram_size: 16 * MIB,
        vectors: 41,
    });
    let guest = memfd(c"guest-ram", 4 * MIB).unwrap();
    r.b.dma_map(
        vfio_user::DmaMapFlags::READ_WRITE,
        MIB,
        BUS,
        2 * MIB,
        Some(guest.try_clone().unwrap()),
    )
    .unwrap();
    let t = Tables::new(&guest);
    for n in [1, 33] {
        r.setup(n, u64::from(n) * 0x10_0000 % (16 * MIB), 0x10_0000);
        r.wr64(n, CTX_DMA_BASE_LO, VA);
        r.wr64(n, CTX_DMA_SIZE_LO, MIB);
        r.wr64(n, CTX_XLATE_ROOT_LO, t.root);
        r.cwr(n, CTX_XLATE_CTRL, XLATE_ENABLE);
        r.submit(n, op(OP_DMA_FROM_HOST, VA, 0x1000, 16));
    }
    r.run();
    assert_eq!(r.rd(REG_FAULT_PENDING), 1 << 1);
    assert_eq!(r.rd(REG_FAULT_PENDING + 4), 1 << 1);
    for w in 2..FAULT_PENDING_WORDS {
        assert_eq!(r.rd(REG_FAULT_PENDING + 4 * w), 0);
    }
    // Past the words: not a register.
    let bad = r.rd(REG_BAD_ACCESS_COUNT);
    r.rd(REG_FAULT_PENDING + 4 * FAULT_PENDING_WORDS);
    assert_eq!(r.rd(REG_BAD_ACCESS_COUNT), bad + 1);
}

#[test]
fn dma_copy_without_translation_uses_bus_addresses_inside_the_window() {
    let (mut r, guest) = dma_rig();
    r.wr64(0, CTX_DMA_BASE_LO, BUS);
    r.wr64(0, CTX_DMA_SIZE_LO, MIB);
    let mut w = Mapping::new(guest.as_raw_fd(), MIB, MIB as usize).unwrap();
    w.bytes_mut()[0x1000..0x1004].copy_from_slice(b"copy");
    let a = r.submit(0, op(OP_DMA_COPY, BUS + 0x1000, BUS + 0x6_0000, 0x1_0000));
    // The destination runs past the window: refused before anything moves.
    let b = r.submit(0, op(OP_DMA_COPY, BUS, BUS + MIB - 8, 16));
    r.run();
    assert_eq!(r.status(a).0, DESC_STATUS_DONE);
    assert_eq!(&w.bytes()[0x6_0000..0x6_0004], b"copy");
    assert_eq!(r.status(b).0, DESC_STATUS_ERROR | ERR_DMA_BOUNDS);
    assert_eq!(&w.bytes()[MIB as usize - 8..], &[0; 8]);
}

// ---- migration support (docs/device.md, "Freezing and moving a context")

/// Context `n`'s slice contents.
fn slice_bytes(r: &mut Rig, n: u32, len: usize) -> Vec<u8> {
    let base = r.slice_base(n);
    r.vram().vram_mut()[base..base + len].to_vec()
}

#[test]
fn a_frozen_context_stops_at_a_chunk_boundary_and_resumes_there_on_another_device() {
    let len = 4 * CHUNK as u32;
    let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut src = Rig::new();
    src.setup(0, 0, 4 * MIB);
    let base = src.slice_base(0);
    src.vram().vram_mut()[base + MIB as usize..base + MIB as usize + len as usize].copy_from_slice(&data);
    let efd = eventfd();
    src.set_irq(1, &efd);
    src.submit(0, op(OP_CHECKSUM, MIB, 0, len));
    assert!(src.vram().step(), "the first chunk runs");
    src.cwr(0, CTX_CONTROL, CTX_CTRL_ENABLE | CTX_CTRL_FREEZE);
    assert_ne!(src.crd(0, CTX_STATUS) & CTX_STATUS_FROZEN, 0);
    assert!(!src.vram().step(), "a frozen context runs nothing");
    assert_eq!(src.crd(0, CTX_MIG_JOB_DONE), CHUNK as u32);
    let hash = u64::from(src.crd(0, CTX_MIG_JOB_HASH_LO)) | u64::from(src.crd(0, CTX_MIG_JOB_HASH_HI)) << 32;
    assert_eq!(hash, fnv1a64(FNV64_OFFSET, &data[..CHUNK as usize]));
    let head = src.crd(0, CTX_MIG_HEAD);
    let tail = src.crd(0, CTX_RING_TAIL);
    let completed = src.crd(0, CTX_MIG_COMPLETED);
    let image = slice_bytes(&mut src, 0, 4 * MIB as usize);

    // The destination: another device, another context, another slice.
    let mut dst = Rig::new();
    dst.setup(2, 8 * MIB, 4 * MIB);
    dst.cwr(2, CTX_CONTROL, CTX_CTRL_ENABLE | CTX_CTRL_FREEZE);
    let dbase = dst.slice_base(2);
    dst.vram().vram_mut()[dbase..dbase + image.len()].copy_from_slice(&image);
    let defd = eventfd();
    dst.set_irq(3, &defd);
    dst.cwr(2, CTX_RING_TAIL, tail);
    for (reg, v) in [
        (CTX_MIG_HEAD, head),
        (CTX_MIG_COMPLETED, completed),
        (CTX_MIG_JOB_DONE, CHUNK as u32),
        (CTX_MIG_JOB_HASH_LO, hash as u32),
        (CTX_MIG_JOB_HASH_HI, (hash >> 32) as u32),
    ] {
        dst.cwr(2, reg, v);
    }
    assert!(!dst.vram().step(), "nothing runs before the thaw");
    dst.cwr(2, CTX_CONTROL, CTX_CTRL_ENABLE);
    dst.run();
    let at = dbase + RING as usize;
    let (status, result) = dst.status(at);
    assert_eq!(status, DESC_STATUS_DONE);
    assert_eq!(
        result,
        fnv1a64(FNV64_OFFSET, &data),
        "the job went on from the chunk boundary"
    );
    assert_eq!(dst.crd(2, CTX_COMPLETED), completed + 1);
    assert_eq!(dst.crd(2, CTX_RING_HEAD), head + 1);
    assert_eq!(count(&defd), 1);
    // The destination did only the rest of the job.
    assert_eq!(dst.vram().context(2).unwrap().bytes_done, 3 * CHUNK);

    // Thawed in place, the source finishes the same job the same way.
    assert_eq!(count(&efd), 0, "no interrupt while frozen");
    src.cwr(0, CTX_CONTROL, CTX_CTRL_ENABLE);
    src.run();
    assert_eq!(
        src.status(base + RING as usize),
        (DESC_STATUS_DONE, fnv1a64(FNV64_OFFSET, &data))
    );
    assert_eq!(count(&efd), 1);
}

#[test]
fn a_frozen_context_latches_interrupts_and_takes_migration_state_only_while_frozen() {
    let mut r = Rig::new();
    r.setup(1, 0, MIB);
    let efd = eventfd();
    r.set_irq(2, &efd);
    // Not frozen: migration state is refused and unchanged.
    let bad = r.rd(REG_BAD_ACCESS_COUNT);
    r.cwr(1, CTX_MIG_HEAD, 7);
    r.cwr(1, CTX_MIG_ERROR, ERR_BAD_DESC);
    assert_eq!(r.rd(REG_BAD_ACCESS_COUNT), bad + 2);
    assert_eq!(r.crd(1, CTX_RING_HEAD), 0);
    assert_eq!(r.crd(1, CTX_ERROR), ERR_NONE);
    // Frozen: it is taken; a completion latched while frozen signals at
    // the thaw, once.
    r.cwr(1, CTX_CONTROL, CTX_CTRL_ENABLE | CTX_CTRL_FREEZE);
    r.cwr(1, CTX_RING_TAIL, 5);
    for (reg, v) in [
        (CTX_MIG_HEAD, 5),
        (CTX_MIG_COMPLETED, 4),
        (CTX_MIG_ERROR, ERR_BAD_DESC),
        (CTX_MIG_ERROR_ADDR_LO, 0x1234),
        (CTX_MIG_ERROR_ADDR_HI, 0x5),
        (CTX_MIG_IRQ_STATUS, CTX_IRQ_ERROR | 0x80),
    ] {
        r.cwr(1, reg, v);
    }
    assert_eq!(r.rd(REG_BAD_ACCESS_COUNT), bad + 2);
    assert_eq!(r.crd(1, CTX_RING_HEAD), 5);
    assert_eq!(r.crd(1, CTX_COMPLETED), 4);
    assert_eq!(r.crd(1, CTX_ERROR), ERR_BAD_DESC);
    assert_eq!((r.crd(1, CTX_ERROR_ADDR_LO), r.crd(1, CTX_ERROR_ADDR_HI)), (0x1234, 5));
    assert_eq!(r.crd(1, CTX_IRQ_STATUS), CTX_IRQ_ERROR);
    let st = r.crd(1, CTX_STATUS);
    assert_eq!(
        st & (CTX_STATUS_HALTED | CTX_STATUS_FROZEN),
        CTX_STATUS_HALTED | CTX_STATUS_FROZEN
    );
    assert_eq!(count(&efd), 0);
    r.cwr(1, CTX_CONTROL, CTX_CTRL_ENABLE);
    assert_eq!(count(&efd), 1, "the latched cause signals at the thaw");
    assert_eq!(r.crd(1, CTX_STATUS) & CTX_STATUS_FROZEN, 0);
    // The restored error halts the ring until cleared, as any error does.
    r.submit(1, fill(MIB / 2, 4096, 1));
    assert!(!r.vram().step());
    r.cwr(1, CTX_ERROR, 0);
    r.run();
    assert_eq!(r.crd(1, CTX_COMPLETED), 5);
    // A context reset drops a resume point with the rest of the user block.
    r.cwr(1, CTX_CONTROL, CTX_CTRL_ENABLE | CTX_CTRL_FREEZE);
    r.cwr(1, CTX_MIG_JOB_DONE, 4096);
    assert_eq!(r.crd(1, CTX_MIG_JOB_DONE), 4096);
    r.cwr(1, CTX_CONTROL, CTX_CTRL_RESET);
    assert_eq!(r.crd(1, CTX_MIG_JOB_DONE), 0);
    assert_ne!(r.crd(1, CTX_STATUS) & CTX_STATUS_FROZEN, 0, "privileged control stays");
}

#[test]
fn device_writes_to_vram_are_logged_per_slice_and_synced_into_the_drivers_bitmap() {
    let (mut r, guest) = dma_rig();
    // Context 1 on the next slice: its pages are reported to it only.
    r.setup(1, MIB, MIB);
    r.wr64(0, CTX_DMA_BASE_LO, 0x4000_0000);
    r.wr64(0, CTX_DMA_SIZE_LO, MIB);
    // Bitmaps (4 words for a 1 MiB slice) at the end of the guest memory.
    let at = |ctx: usize| (MIB - 4096) as usize + 64 * ctx;
    let words = |ctx: usize| -> Vec<u64> {
        let view = Mapping::new(guest.as_raw_fd(), MIB, 2 * MIB as usize).unwrap();
        let b = &view.bytes()[at(ctx)..at(ctx) + 32];
        b.chunks(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())).collect()
    };
    let clear = |ctx: usize| {
        let mut w = Mapping::new(guest.as_raw_fd(), MIB, 2 * MIB as usize).unwrap();
        w.bytes_mut()[at(ctx)..at(ctx) + 32].fill(0);
    };
    for ctx in [0, 1] {
        r.wr64(ctx as u32, CTX_DIRTY_ADDR_LO, 0x4000_0000 + at(ctx) as u64);
    }
    // Nothing written yet: the sync reports nothing and is counted.
    r.cwr(0, CTX_DIRTY_CMD, 1);
    assert_eq!(r.crd(0, CTX_DIRTY_SYNCED), 1);
    assert_eq!(words(0), [0; 4]);
    // A fill over pages 8 and 9, a copy to page 100, a DMA from the host
    // to page 200 (and every descriptor's write-back in page 0 of the
    // ring), a BAR2 write to page 255; context 1 fills its own page 3.
    r.submit(0, fill(8 * 4096 + 100, 4096, 7));
    r.submit(0, op(OP_COPY, 8 * 4096, 100 * 4096, 64));
    r.submit(0, op(OP_DMA_FROM_HOST, 0x4000_0000, 200 * 4096, 16));
    r.submit(1, fill(3 * 4096, 4096, 1));
    r.run();
    r.b.region_write(VFIO_PCI_BAR2_REGION_INDEX, 255 * 4096 + 8, &[1, 2, 3, 4])
        .unwrap();
    r.cwr(0, CTX_DIRTY_CMD, 1);
    assert_eq!(r.crd(0, CTX_DIRTY_SYNCED), 2);
    assert_eq!(
        words(0),
        [
            1 | 1 << 8 | 1 << 9,
            1 << (100 - 64),
            0,
            1 << (200 - 192) | 1 << (255 - 192)
        ]
    );
    // Reported bits are cleared in the device: a second sync adds none.
    clear(0);
    r.cwr(0, CTX_DIRTY_CMD, 1);
    assert_eq!(words(0), [0; 4]);
    // Context 1 gets its own slice's pages (ring page 0, page 3).
    r.cwr(1, CTX_DIRTY_CMD, 1);
    assert_eq!(words(1), [1 | 1 << 3, 0, 0, 0]);
    // A bitmap the device cannot reach: refused, nothing cleared.
    r.submit(1, fill(5 * 4096, 4, 1));
    r.run();
    r.wr64(1, CTX_DIRTY_ADDR_LO, 0x9000_0000);
    let bad = r.rd(REG_BAD_ACCESS_COUNT);
    r.cwr(1, CTX_DIRTY_CMD, 1);
    assert_eq!((r.rd(REG_BAD_ACCESS_COUNT), r.crd(1, CTX_DIRTY_SYNCED)), (bad + 1, 1));
    clear(1);
    r.wr64(1, CTX_DIRTY_ADDR_LO, 0x4000_0000 + at(1) as u64);
    r.cwr(1, CTX_DIRTY_CMD, 1);
    assert_eq!(words(1), [1 | 1 << 5, 0, 0, 0]);
}
