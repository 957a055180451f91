// SPDX-License-Identifier: GPL-2.0
//! The bad-input scenario: a seeded, bounded random walk over everything a
//! local root user can throw at the driver: sysfs writes (garbage and
//! overlong UUIDs, binary data, every attribute), VFIO ioctls with random
//! argsz/flags/index/start/count and bad pointers, region reads and writes
//! at random offsets and sizes, mmap at random offsets and lengths, and
//! eventfd misuse (closed, foreign and duplicate fds; fds closed while
//! armed). One thread, so a seed replays exactly.
//!
//! Oracles: no kernel splat (checked every 25 steps, so a failure names
//! its step), no region access or mapping past a region's end succeeds,
//! and afterwards the parent is whole: capacity back, no instance alive in
//! the driver, a new instance runs verified jobs on every context.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use vslice::job;
use vslice::regs::*;
use vslice::sysfs;
use vslice::vfio::{self, Device, EventFd, Mmap};
use vslice_abi::Desc;
use vslice_tests::health::{DriverStats, Kmsg};

use crate::report::{Report, Rng};

/// Two pages: the first read-write, the second inaccessible, for
/// structures that run off the end of what the process may touch.
struct Fence {
    p: *mut u8,
}

impl Fence {
    fn new() -> io::Result<Fence> {
        // SAFETY: a fresh anonymous mapping of two pages.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the second page of the mapping made above.
        if unsafe { libc::mprotect(p.cast::<u8>().add(4096).cast(), 4096, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Fence { p: p.cast() })
    }

    /// `n` (<= 4096) bytes ending where the readable page ends.
    fn tail(&self, n: usize) -> *mut u8 {
        // SAFETY: stays within the first page.
        unsafe { self.p.add(4096 - n.min(4096)) }
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.p.cast(), 8192) };
    }
}

struct State {
    parent: String,
    a: Option<Device>,
    a_uuid: String,
    b_uuid: String,
    sizes: Vec<u64>,
    /// The instance's MSI-X vector count.
    vectors: u32,
    efds: Vec<EventFd>,
    maps: Vec<Mmap>,
    /// Buffers mapped for A's DMA, by IOVA (dropped after their unmap).
    dma: Vec<(u64, Mmap)>,
    /// A's context 0 ring tail, as `dma_fuzz` last set it.
    tail: u32,
    fence: Fence,
    log: VecDeque<String>,
}

fn errno(r: &io::Result<impl Sized>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => vslice_tests::health::error_name(e),
    }
}

fn payload(rng: &mut Rng) -> Vec<u8> {
    let uuid = "0b5ae5e1-7c2a-4d2b-9a0e-5f1c2d3e4f50";
    match rng.below(8) {
        0 => Vec::new(),
        1 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        2 => format!("{uuid}{}", "x".repeat(1 + rng.below(5000) as usize)).into_bytes(),
        3 => uuid.replace('-', "").into_bytes(),
        4 => format!("{}\n", &uuid[..rng.below(36) as usize]).into_bytes(),
        5 => vec![0u8; 1 + rng.below(64) as usize],
        6 => format!("{}", rng.next() as i64).into_bytes(),
        _ => b"0\n".to_vec(),
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default()
}

/// A random attribute of the parent's types, an instance or our debugfs.
fn sysfs_target(st: &State, rng: &mut Rng) -> Option<PathBuf> {
    let types = Path::new("/sys/class/mdev_bus")
        .join(&st.parent)
        .join("mdev_supported_types");
    let mut files: Vec<PathBuf> = Vec::new();
    for t in fs::read_dir(&types).into_iter().flatten().flatten() {
        files.extend(files_in(&t.path()));
    }
    // The held instances' "remove" would wait for our own close: skip it.
    for u in [&st.a_uuid, &st.b_uuid] {
        files.extend(
            files_in(&Path::new("/sys/bus/mdev/devices").join(u))
                .into_iter()
                .filter(|p| !p.ends_with("remove")),
        );
    }
    for (u, _, _) in sysfs::instances() {
        if u != st.a_uuid && u != st.b_uuid {
            files.push(Path::new("/sys/bus/mdev/devices").join(u).join("remove"));
        }
    }
    files.extend(files_in(&Path::new("/sys/kernel/debug/vslice").join(&st.parent)));
    files.push("/sys/kernel/debug/vslice/stats".into());
    if files.is_empty() {
        return None;
    }
    Some(rng.pick(&files).clone())
}

const IOCTLS: &[u32] = &[7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 21, 22, 23, 40];

fn ioctl_fuzz(st: &mut State, rng: &mut Rng) -> String {
    let Some(d) = st.a.as_ref() else {
        return "ioctl: no device".into();
    };
    let nr = *rng.pick(IOCTLS);
    let req = (0x3b << 8) | nr as libc::c_ulong;
    let mut words = [0u32; 64];
    for w in words.iter_mut() {
        *w = rng.next() as u32;
    }
    words[0] = match rng.below(5) {
        0 => 0,
        1 => 1 + rng.below(32) as u32,
        2 => 16 + 4 * rng.below(8) as u32,
        3 => u32::MAX - rng.below(8) as u32,
        _ => words[0] % 512,
    };
    if rng.chance(50) {
        words[1] %= 1 << 6;
    }
    if rng.chance(70) {
        words[2] %= 12;
    }
    // Index, start and count (SET_IRQS), or the fields at those words of
    // the other ioctls: boundaries of the largest index and vector count.
    if rng.chance(70) {
        words[2] = rng.edge(vfio::NUM_IRQS.max(vfio::NUM_REGIONS) as u64) as u32;
    }
    if rng.chance(70) {
        words[3] = rng.near(st.vectors as u64) as u32;
        words[4] = match rng.below(3) {
            0 => rng.edge(st.vectors as u64) as u32,
            1 => st.vectors.wrapping_sub(words[3]).wrapping_add(rng.below(2) as u32),
            _ => words[4] % 20,
        };
    }
    // argsz exactly the header plus count entries, or one byte short.
    if rng.chance(30) {
        let size = match words[1] & 7 {
            2 => 1,
            4 => 4,
            _ => 0,
        };
        let need = 20u32.saturating_add(words[4].saturating_mul(size)).min(256);
        words[0] = need - rng.below(2) as u32;
    }
    let ptr: *mut libc::c_void = match rng.below(6) {
        0 => std::ptr::null_mut(),
        1 => 16usize as *mut libc::c_void,
        2 => {
            let n = 4 + 4 * rng.below(8) as usize;
            let p = st.fence.tail(n);
            // SAFETY: `n` bytes at the end of the fence's readable page.
            unsafe { std::ptr::copy_nonoverlapping(words.as_ptr().cast::<u8>(), p, n) };
            p.cast()
        }
        3 => st.fence.tail(0).cast(),
        _ => words.as_mut_ptr().cast(),
    };
    // SAFETY: `ptr` is our buffer, the fence, or memory we do not map.
    let r = unsafe { vslice_tests::raw::ioctl_ptr(d.fd(), req, ptr) };
    format!(
        "ioctl nr {nr} argsz {:#x} flags {:#x} index {}: {}",
        words[0],
        words[1],
        words[2],
        errno(&r)
    )
}

fn region_fuzz(st: &mut State, rng: &mut Rng, r: &mut Report) -> String {
    let Some(d) = st.a.as_ref() else {
        return "region: no device".into();
    };
    let index = if rng.chance(90) {
        rng.below(vfio::NUM_REGIONS as u64 + 1) as u32
    } else {
        rng.next() as u32 % 64
    };
    let size = st.sizes.get(index as usize).copied().unwrap_or(0);
    let off = match rng.below(7) {
        0 => 0,
        6 => rng.edge(size),
        1 => size.saturating_sub(rng.below(16)),
        2 => size + rng.below(4096),
        3 => rng.below(size.max(1)),
        4 => (1 << 40) - 1 - rng.below(8),
        _ => rng.next() % (1 << 40),
    };
    let len = match rng.below(5) {
        0 => 1 << rng.below(4),
        4 => (rng.edge(size.saturating_sub(off)) as usize).clamp(1, 70_000),
        1 => rng.below(64) as usize + 1,
        2 => 4096,
        _ => rng.below(70_000) as usize + 1,
    };
    let write = rng.chance(50);
    let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    let res = if write {
        d.write_at(index, off, &buf)
    } else {
        d.read_at(index, off, &mut buf)
    };
    if let Ok(n) = res {
        if n > 0 && off + n as u64 > size {
            r.fail(format!(
                "region {index}: {} of {n} bytes at {off:#x} succeeded past its end ({size:#x})",
                if write { "write" } else { "read" }
            ));
        }
    }
    format!(
        "{} region {index} off {off:#x} len {len}: {}",
        if write { "write" } else { "read" },
        errno(&res)
    )
}

fn mmap_fuzz(st: &mut State, rng: &mut Rng, r: &mut Report) -> String {
    let Some(d) = st.a.as_ref() else {
        return "mmap: no device".into();
    };
    let index = rng.below(vfio::NUM_REGIONS as u64 + 1) as u32;
    let size = st.sizes.get(index as usize).copied().unwrap_or(0);
    let off = match rng.below(5) {
        0 => 0,
        4 => rng.edge(size) & !4095,
        1 => size.saturating_sub(4096 * rng.below(3)),
        2 => 4096 * rng.below(size / 4096 + 4),
        _ => rng.below(size.max(1) + 8192),
    };
    let len = match rng.below(4) {
        0 => 4096,
        1 => size as usize,
        2 => size as usize + 4096,
        _ => 4096 * (1 + rng.below(64) as usize),
    };
    let flags = if rng.chance(80) {
        libc::MAP_SHARED
    } else {
        libc::MAP_PRIVATE
    };
    let res = Mmap::new(d.fd(), vfio::region_offset(index) + off, len.max(1), flags);
    let what = format!(
        "mmap region {index} off {off:#x} len {len:#x} flags {flags:#x}: {}",
        errno(&res)
    );
    if let Ok(m) = res {
        let legal = index == vfio::BAR2 && off % 4096 == 0 && off + len as u64 <= size && flags == libc::MAP_SHARED;
        if !legal {
            // Not touched: an illegal mapping may fault.
            r.fail(format!(
                "{what}: a private mapping or one outside the VRAM slice ({size:#x} bytes) was allowed"
            ));
            return what;
        }
        // A legal mapping reads while memory decoding is on; with it off
        // (a config write above may have cleared it) the pages are gone
        // and a touch would be SIGBUS, so the region read must fail.
        let mut cmd = [0u8; 2];
        let mem_on = d.read_at(vfio::CONFIG, 4, &mut cmd).is_ok() && cmd[0] & 2 != 0;
        if len > 0 && rng.chance(50) && mem_on {
            let _ = m.read32(0);
            let _ = m.read32(len.saturating_sub(4) & !3);
        } else if !mem_on {
            let mut b = [0u8; 4];
            if d.read_at(vfio::BAR2, off, &mut b).is_ok() {
                r.fail(format!("{what}: VRAM read with memory decoding off"));
            }
        }
        if rng.chance(30) {
            st.maps.push(m);
        }
    }
    what
}

fn eventfd_fuzz(st: &mut State, rng: &mut Rng) -> String {
    let Some(d) = st.a.as_ref() else {
        return "eventfd: no device".into();
    };
    if st.efds.len() < 4 {
        if let Ok(e) = EventFd::new(libc::EFD_CLOEXEC) {
            st.efds.push(e);
        }
    }
    let n = (rng.near(st.vectors as u64) as u32).min(8);
    let start = rng.near(st.vectors as u64) as u32;
    // The number of an eventfd closed at once.
    let closed: RawFd = EventFd::new(libc::EFD_CLOEXEC).map(|e| e.as_raw_fd()).unwrap_or(-1);
    let fds: Vec<RawFd> = (0..n)
        .map(|_| match rng.below(8) {
            0 => -1,
            6 => -2,
            7 => i32::MIN,
            1 => closed,
            2 => d.fd(),
            3 => 0,
            _ => st.efds[rng.below(st.efds.len() as u64) as usize].as_raw_fd(),
        })
        .collect();
    let what = match rng.below(4) {
        0 => format!("set MSI-X {start}+{n} {fds:?}: {}", errno(&d.set_msix(start, &fds))),
        1 => {
            let r = d.set_irqs(
                vfio::IRQ_SET_DATA_NONE | vfio::IRQ_SET_ACTION_TRIGGER,
                vfio::MSIX_IRQ_INDEX,
                start,
                &[],
                n,
            );
            format!("fire MSI-X {start}+{n}: {}", errno(&r))
        }
        2 => {
            // Close an armed eventfd: the driver keeps its own reference.
            if !st.efds.is_empty() {
                let e = st.efds.swap_remove(rng.below(st.efds.len() as u64) as usize);
                drop(e);
            }
            "closed an armed eventfd".into()
        }
        _ => {
            // REQ has one vector: count 0 and count 2 are refused.
            let count = n.min(2);
            let data: Vec<u8> = fds.iter().take(count as usize).flat_map(|f| f.to_ne_bytes()).collect();
            let r = d.set_irqs(
                vfio::IRQ_SET_DATA_EVENTFD | vfio::IRQ_SET_ACTION_TRIGGER,
                vfio::REQ_IRQ_INDEX,
                0,
                &data,
                count,
            );
            format!("set REQ {fds:?} count {count}: {}", errno(&r))
        }
    };
    what
}

fn churn(st: &mut State, rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => {
            let Ok(u) = sysfs::new_uuid() else {
                return "uuid failed".into();
            };
            let ty = *rng.pick(&["eighth", "quarter", "half", "full", "unit"]);
            format!("create {ty}: {}", errno(&sysfs::create(&st.parent, ty, &u)))
        }
        1 => {
            let extra: Vec<String> = sysfs::instances()
                .into_iter()
                .map(|(u, _, _)| u)
                .filter(|u| *u != st.a_uuid && *u != st.b_uuid)
                .collect();
            match extra.first() {
                Some(u) => format!("remove extra: {}", errno(&sysfs::remove(u))),
                None => "no extra instance".into(),
            }
        }
        2 => {
            st.maps.clear();
            st.a = None;
            // The IOAS went with the device: so did its mappings.
            st.dma.clear();
            let r = Device::open(&st.a_uuid);
            let what = format!("reopen A: {}", errno(&r));
            st.a = r.ok();
            what
        }
        _ => format!("open+close B: {}", errno(&Device::open(&st.b_uuid))),
    }
}

/// Where `dma_fuzz` maps: near each other's edges and the device's limit.
const DMA_BASE: u64 = 1 << 32;

/// DMA on A: buffers mapped and unmapped at IOVAs at each other's edges
/// and the device's 48-bit limit, and DMA descriptors on context 0's ring
/// whose addresses and lengths sit at those boundaries (the driver pins
/// on fault; every unmap must find every pin).
fn dma_fuzz(st: &mut State, rng: &mut Rng) -> String {
    let Some(d) = st.a.as_ref() else {
        return "dma: A is closed".into();
    };
    let top = 1u64 << XLATE_VA_BITS;
    let iova = match rng.below(4) {
        0 => DMA_BASE + 4096 * rng.below(8),
        1 => top - 4096 * (1 + rng.below(2)),
        2 => st.dma.first().map_or(DMA_BASE, |(i, m)| i + m.len() as u64),
        _ => rng.edge(top) & !4095,
    };
    match rng.below(3) {
        0 => {
            let Ok(buf) = Mmap::anonymous(4096 * (1 + rng.below(4) as usize)) else {
                return "dma buffer: ENOMEM".into();
            };
            let r = d.map_dma(iova, &buf);
            let what = format!("dma map {} at {iova:#x}: {}", buf.len(), errno(&r));
            if r.is_ok() {
                st.dma.push((iova, buf));
            }
            what
        }
        1 => {
            let (at, len) = match st.dma.len() {
                0 => (iova, 4096 * (1 + rng.below(4) as usize)),
                n => {
                    let k = rng.below(n as u64) as usize;
                    (st.dma[k].0, st.dma[k].1.len())
                }
            };
            let r = d.unmap_dma(at, len);
            let what = format!("dma unmap {len} at {at:#x}: {}", errno(&r));
            if r.is_ok() {
                st.dma
                    .retain(|(i, m)| *i + m.len() as u64 <= at || *i >= at + len as u64);
            }
            what
        }
        _ => {
            // One descriptor on a 16-slot ring at slice offset 0.
            let ops = [OP_DMA_TO_HOST, OP_DMA_FROM_HOST, OP_DMA_COPY];
            let op = *rng.pick(&ops);
            let len = match rng.below(3) {
                0 => rng.edge(u64::from(JOB_MAX_LEN)) as u32,
                1 => 1 + rng.below(3 * 4096) as u32,
                _ => 4096,
            };
            let near = |rng: &mut Rng| iova.wrapping_add(rng.below(3)).wrapping_sub(1);
            let (src, dst) = match op {
                OP_DMA_TO_HOST => (0x2000, near(rng)),
                OP_DMA_FROM_HOST => (near(rng), 0x2000),
                _ => (near(rng), DMA_BASE + rng.below(4) * 4096),
            };
            let desc = Desc {
                opcode: op,
                flags: 0,
                src,
                dst,
                len,
                value: 0,
            };
            let w = ctx_window(0);
            let slot = (st.tail % 16) as u64 * DESC_SIZE as u64;
            st.tail = st.tail.wrapping_add(1);
            let r = d
                .set_reg(w + CTX_ERROR, 0)
                .and_then(|()| d.set_reg(w + CTX_RING_BASE_LO, 0))
                .and_then(|()| d.set_reg(w + CTX_RING_SIZE, 16))
                .and_then(|()| d.write_at(vfio::BAR2, slot, &desc.encode()).map(|_| ()))
                .and_then(|()| d.set_reg(w + CTX_RING_TAIL, st.tail))
                .and_then(|()| d.set_reg(w + CTX_DOORBELL, 1));
            format!("dma job op {op} src {src:#x} dst {dst:#x} len {len:#x}: {}", errno(&r))
        }
    }
}

fn sysfs_fuzz(st: &mut State, rng: &mut Rng) -> String {
    let Some(f) = sysfs_target(st, rng) else {
        return "no sysfs target".into();
    };
    let p = payload(rng);
    let r = sysfs::write_attr(&f, &p);
    format!("write {} bytes to {}: {}", p.len(), f.display(), errno(&r))
}

/// Everything back, and does a new instance still work?
fn health_after(st: &mut State, r: &mut Report, seed: u64) {
    st.maps.clear();
    st.efds.clear();
    st.a = None;
    st.dma.clear();
    for (u, _, _) in sysfs::instances() {
        if let Err(e) = sysfs::remove(&u) {
            r.fail(format!("seed {seed}: removing {u} after the run: {e}"));
        }
    }
    match DriverStats::read() {
        Ok(s) if s.instances_alive() == 0 && s.pinned_pages == 0 => {}
        Ok(s) if s.instances_alive() == 0 => r.fail(format!(
            "seed {seed}: {} page(s) pinned after removing every instance",
            s.pinned_pages
        )),
        Ok(s) => r.fail(format!(
            "seed {seed}: {} instance(s) alive in the driver after removing all",
            s.instances_alive()
        )),
        Err(e) => r.fail(format!("seed {seed}: {e}")),
    }
    if let Err(e) = crate::faultinj::full(&st.parent) {
        r.fail(format!("seed {seed}: capacity not back: {e}"));
    }
    let check = (|| -> io::Result<()> {
        let u = sysfs::new_uuid()?;
        sysfs::create(&st.parent, "quarter", &u)?;
        let res = (|| {
            let mut inst = job::Instance::open(&u)?;
            for c in 0..inst.contexts {
                job::round(&mut inst, c, 65536, 0x5a5a_0000 | c)?;
            }
            Ok(())
        })();
        sysfs::remove(&u)?;
        res
    })();
    if let Err(e) = check {
        r.fail(format!("seed {seed}: a new instance does not work after the run: {e}"));
    }
}

pub fn run_seed(parent: &str, seed: u64, iterations: u64, r: &mut Report, kmsg: &mut Kmsg) {
    let mut rng = Rng::new(seed);
    let setup = (|| -> io::Result<State> {
        let a_uuid = sysfs::new_uuid()?;
        let b_uuid = sysfs::new_uuid()?;
        sysfs::create(parent, "eighth", &a_uuid)?;
        sysfs::create(parent, "quarter", &b_uuid)?;
        let a = Device::open(&a_uuid)?;
        let sizes = (0..vfio::NUM_REGIONS)
            .map(|i| a.region_info(i).map(|x| x.size).unwrap_or(0))
            .collect();
        let vectors = a.irq_info(vfio::MSIX_IRQ_INDEX)?.count;
        Ok(State {
            parent: parent.into(),
            a: Some(a),
            a_uuid,
            b_uuid,
            sizes,
            vectors,
            efds: Vec::new(),
            maps: Vec::new(),
            dma: Vec::new(),
            tail: 0,
            fence: Fence::new()?,
            log: VecDeque::new(),
        })
    })();
    let mut st = match setup {
        Ok(s) => s,
        Err(e) => return r.fail(format!("seed {seed}: setup: {e}")),
    };
    for i in 0..iterations {
        let what = match rng.below(11) {
            0 | 1 => sysfs_fuzz(&mut st, &mut rng),
            2 | 3 => ioctl_fuzz(&mut st, &mut rng),
            4 | 5 => region_fuzz(&mut st, &mut rng, r),
            6 => mmap_fuzz(&mut st, &mut rng, r),
            7 | 8 => eventfd_fuzz(&mut st, &mut rng),
            9 => dma_fuzz(&mut st, &mut rng),
            _ => churn(&mut st, &mut rng),
        };
        let kind = what.split_whitespace().next().unwrap_or("?").to_string();
        r.tally.ok(&kind);
        // Every step's description ends with its outcome: count errnos.
        if let Some(e) = what.rsplit(": ").next().filter(|e| e.starts_with('E')) {
            *r.tally.errors.entry(format!("{kind}:{e}")).or_default() += 1;
        }
        if st.log.len() == 8 {
            st.log.pop_front();
        }
        st.log.push_back(format!("step {i}: {what}"));
        if i % 25 == 24 || i + 1 == iterations {
            let s = kmsg.new_splats();
            if !s.is_empty() {
                r.fail(format!(
                    "seed {seed}: kernel splat by step {i} ({}); last steps:\n{}",
                    s[0],
                    st.log.iter().cloned().collect::<Vec<_>>().join("\n")
                ));
                r.splats.extend(s);
                break;
            }
        }
        if !r.failures.is_empty() {
            r.fail(format!("seed {seed}: stopped at step {i}: {what}"));
            break;
        }
    }
    // Give armed eventfds and closed files a moment to settle.
    thread::sleep(Duration::from_millis(100));
    health_after(&mut st, r, seed);
    r.splats.extend(kmsg.new_splats());
    r.extra.insert(
        "iterations".into(),
        r.extra.get("iterations").copied().unwrap_or(0) + iterations,
    );
}
