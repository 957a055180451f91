// SPDX-License-Identifier: GPL-2.0
//! DMA through an instance: the tenant maps its memory into the IOAS its
//! device is attached to and puts IOVAs in descriptors; the device reaches
//! exactly what is mapped, with the permission it was mapped with, never
//! after the unmap returned, and the driver's pins go back to zero.

use vslice::job::{self, Done, Instance, Job, DATA_BASE};
use vslice::regs::*;
use vslice::vfio::{self, Device, Mmap, OpenPath};
use vslice_tests::health::DriverStats;

type R = Result<(), String>;

/// Where the tests map their buffers: any IOVA will do; this one is far
/// from guest physical addresses, so a bug that mixed them up shows.
const IOVA: u64 = 0x40_0000_0000;
const PAGE: usize = 4096;
const MIB: usize = 1 << 20;

macro_rules! ensure {
    ($c:expr, $($f:tt)*) => {
        if !$c {
            return Err(format!($($f)*));
        }
    };
}

fn e<T: std::fmt::Display>(what: &'static str) -> impl Fn(T) -> String {
    move |x| format!("{what}: {x}")
}

/// Runs one job on context 0 and waits for it; a failed job's error is
/// cleared so the ring goes on. Returns its status and result, and the
/// error address if it failed.
fn run(inst: &mut Instance, op: u32, src: u64, dst: u64, len: u32) -> Result<(Done, u64), String> {
    let (d, addr) = job::run_one(inst, 0, Job::new(op, src, dst, len), 30_000).map_err(e("run"))?;
    Ok((d, addr.unwrap_or(0)))
}

fn pinned() -> Result<u64, String> {
    DriverStats::read().map(|s| s.pinned_pages).map_err(|x| x.to_string())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn bytes(buf: &Mmap, off: usize, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    buf.read_bytes(off, &mut v);
    v
}

const FAULT: u32 = DESC_STATUS_ERROR | ERR_DMA_FAULT;

/// Host → VRAM, VRAM → host and host → host, verified byte for byte; the
/// pins go with the unmap.
pub fn reach_mapped_memory(u: &str) -> R {
    let mut inst = Instance::open(u).map_err(e("open"))?;
    let buf = Mmap::anonymous(MIB).map_err(e("buffer"))?;
    let data = pattern(MIB, 7);
    buf.write_bytes(0, &data);
    inst.dev.map_dma(IOVA, &buf).map_err(e("map"))?;
    let len = 256 * 1024;
    let (d, _) = run(&mut inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, len as u32)?;
    ensure!(d.status == DESC_STATUS_DONE, "host to VRAM: status {:#x}", d.status);
    let (d, _) = run(&mut inst, OP_CHECKSUM, DATA_BASE, 0, len as u32)?;
    ensure!(
        d.result == vslice_abi::checksum(&data[..len]),
        "VRAM does not hold what the host had"
    );
    let (d, _) = run(&mut inst, OP_DMA_TO_HOST, DATA_BASE, IOVA + 512 * 1024, len as u32)?;
    ensure!(d.status == DESC_STATUS_DONE, "VRAM to host: status {:#x}", d.status);
    ensure!(
        bytes(&buf, 512 * 1024, len) == data[..len],
        "the host did not get VRAM's bytes"
    );
    // Host to host, unaligned at both ends.
    let (src, dst, n) = (100, 800 * 1024 + 3, 64 * 1024 + 5);
    let (d, _) = run(&mut inst, OP_DMA_COPY, IOVA + src, IOVA + dst, n)?;
    ensure!(d.status == DESC_STATUS_DONE, "host to host: status {:#x}", d.status);
    ensure!(
        bytes(&buf, dst as usize, n as usize) == data[src as usize..src as usize + n as usize],
        "host to host copy differs"
    );
    ensure!(
        bytes(&buf, dst as usize - 1, 1)[0] == data[dst as usize - 1],
        "copy wrote before its range"
    );
    let p = pinned()?;
    ensure!(p > 0 && p <= (MIB / PAGE) as u64, "{p} pages pinned while mapped");
    inst.dev.unmap_dma(IOVA, MIB).map_err(e("unmap"))?;
    ensure!(pinned()? == 0, "{} pages still pinned after the unmap", pinned()?);
    Ok(())
}

/// Unmapped IOVAs and a range running off a mapping's end fail the job
/// with a DMA fault at the first byte that is not mapped, and touch
/// nothing; an IOVA past the device's 48 bits is outside the window.
pub fn outside_mappings_touch_nothing(u: &str) -> R {
    let mut inst = Instance::open(u).map_err(e("open"))?;
    let buf = Mmap::anonymous(3 * PAGE).map_err(e("buffer"))?;
    buf.write_bytes(0, &[0xa5; 3 * PAGE]);
    let mapped = Mmap::anonymous(2 * PAGE).map_err(e("buffer"))?;
    mapped.write_bytes(0, &[0xa5; 2 * PAGE]);
    inst.dev.map_dma(IOVA, &mapped).map_err(e("map"))?;
    let (d, addr) = run(&mut inst, OP_DMA_TO_HOST, DATA_BASE, IOVA, 3 * PAGE as u32)?;
    ensure!(
        d.status == FAULT && addr == IOVA + 2 * PAGE as u64,
        "a write past the mapping's end: status {:#x} at {addr:#x}",
        d.status
    );
    ensure!(
        bytes(&mapped, 0, 2 * PAGE).iter().all(|&b| b == 0xa5),
        "a refused job wrote into the mapped pages"
    );
    let far = IOVA + (1 << 32);
    let (d, addr) = run(&mut inst, OP_DMA_FROM_HOST, far, DATA_BASE, 64)?;
    ensure!(
        d.status == FAULT && addr == far,
        "unmapped IOVA: status {:#x} at {addr:#x}",
        d.status
    );
    let (d, _) = run(&mut inst, OP_DMA_COPY, IOVA, 1 << 48, 64)?;
    ensure!(
        d.status == DESC_STATUS_ERROR | ERR_DMA_BOUNDS,
        "IOVA past 48 bits: status {:#x}",
        d.status
    );
    let s = DriverStats::read().map_err(|x| x.to_string())?;
    ensure!(s.dma_faults_refused > 0, "no refused fault counted");
    inst.dev.unmap_dma(IOVA, 2 * PAGE).map_err(e("unmap"))?;
    ensure!(pinned()? == 0, "{} pages pinned after the unmap", pinned()?);
    drop(buf);
    Ok(())
}

/// A read-only mapping: the device reads it, a device write fails.
pub fn read_only_mapping_refuses_writes(u: &str) -> R {
    let mut inst = Instance::open(u).map_err(e("open"))?;
    let buf = Mmap::anonymous(4 * PAGE).map_err(e("buffer"))?;
    let data = pattern(4 * PAGE, 3);
    buf.write_bytes(0, &data);
    inst.dev.map_dma_read_only(IOVA, &buf).map_err(e("map read-only"))?;
    let (d, _) = run(&mut inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, 4 * PAGE as u32)?;
    ensure!(
        d.status == DESC_STATUS_DONE,
        "read of a read-only mapping: status {:#x}",
        d.status
    );
    let (d, addr) = run(
        &mut inst,
        OP_DMA_TO_HOST,
        DATA_BASE + 8 * PAGE as u64,
        IOVA,
        4 * PAGE as u32,
    )?;
    ensure!(
        d.status == FAULT && addr == IOVA,
        "write to a read-only mapping: status {:#x} at {addr:#x}",
        d.status
    );
    ensure!(bytes(&buf, 0, 4 * PAGE) == data, "the device wrote a read-only mapping");
    inst.dev.unmap_dma(IOVA, 4 * PAGE).map_err(e("unmap"))?;
    ensure!(pinned()? == 0, "{} pages pinned after the unmap", pinned()?);
    Ok(())
}

/// Two tenants map different memory at the same IOVA: each device
/// reaches only its own.
pub fn tenants_with_the_same_iovas(a: &str, b: &str) -> R {
    let mut ia = Instance::open(a).map_err(e("open A"))?;
    let mut ib = Instance::open(b).map_err(e("open B"))?;
    let (ba, bb) = (
        Mmap::anonymous(2 * PAGE).map_err(e("buffer"))?,
        Mmap::anonymous(2 * PAGE).map_err(e("buffer"))?,
    );
    ba.write_bytes(0, &[0x11; 2 * PAGE]);
    bb.write_bytes(0, &[0x22; 2 * PAGE]);
    ia.dev.map_dma(IOVA, &ba).map_err(e("map A"))?;
    ib.dev.map_dma(IOVA, &bb).map_err(e("map B"))?;
    for (inst, want) in [(&mut ia, 0x11u8), (&mut ib, 0x22)] {
        let (d, _) = run(inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, PAGE as u32)?;
        ensure!(d.status == DESC_STATUS_DONE, "status {:#x}", d.status);
        let (d, _) = run(inst, OP_CHECKSUM, DATA_BASE, 0, PAGE as u32)?;
        ensure!(
            d.result == vslice_abi::checksum(&[want; PAGE]),
            "a tenant read the other's page"
        );
    }
    // A's device writes its second page; B's memory does not change.
    let (d, _) = run(&mut ia, OP_DMA_COPY, IOVA, IOVA + PAGE as u64, PAGE as u32)?;
    ensure!(d.status == DESC_STATUS_DONE, "status {:#x}", d.status);
    ensure!(
        bytes(&bb, 0, 2 * PAGE).iter().all(|&x| x == 0x22),
        "A's job wrote B's memory"
    );
    drop(ia);
    drop(ib);
    ensure!(pinned()? == 0, "{} pages pinned after both closed", pinned()?);
    Ok(())
}

/// An unmap racing a running job: once the unmap returned the device
/// never writes the memory again (a canary written then stays), and the
/// job either finished before or failed with a DMA fault.
pub fn unmap_racing_a_job(u: &str) -> R {
    let mut inst = Instance::open(u).map_err(e("open"))?;
    let len = 8 * MIB;
    ensure!(inst.slice >= DATA_BASE + len as u64, "slice too small for the race");
    for round in 0..4u64 {
        let buf = Mmap::anonymous(len).map_err(e("buffer"))?;
        inst.dev.map_dma(IOVA, &buf).map_err(e("map"))?;
        let j = Job {
            op: OP_DMA_TO_HOST,
            src: DATA_BASE,
            dst: IOVA,
            len: len as u32,
            value: 0,
        };
        let idx = inst.submit(0, &[j]).map_err(e("submit"))?;
        std::thread::sleep(std::time::Duration::from_millis(round * 20));
        inst.dev.unmap_dma(IOVA, len).map_err(e("unmap"))?;
        buf.write_bytes(0, &vec![0x5c; len]);
        let (d, _) = inst.wait(0, idx[0], 30_000).map_err(e("wait"))?;
        if d.status != DESC_STATUS_DONE {
            ensure!(d.status == FAULT, "round {round}: status {:#x}", d.status);
            inst.dev.set_reg(ctx_window(0) + CTX_ERROR, 0).map_err(e("CTX_ERROR"))?;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        ensure!(
            bytes(&buf, 0, len).iter().all(|&x| x == 0x5c),
            "round {round}: the device wrote after the unmap returned"
        );
        ensure!(
            pinned()? == 0,
            "round {round}: {} pages pinned after the unmap",
            pinned()?
        );
    }
    Ok(())
}

/// Reset and close (also with a job running) release every pin.
pub fn pins_go_on_reset_and_close(u: &str) -> R {
    let mut inst = Instance::open(u).map_err(e("open"))?;
    let buf = Mmap::anonymous(2 * MIB).map_err(e("buffer"))?;
    inst.dev.map_dma(IOVA, &buf).map_err(e("map"))?;
    let (d, _) = run(&mut inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, MIB as u32)?;
    ensure!(d.status == DESC_STATUS_DONE, "status {:#x}", d.status);
    ensure!(pinned()? > 0, "nothing pinned");
    inst.dev.reset().map_err(e("reset"))?;
    ensure!(pinned()? == 0, "{} pages pinned after VFIO_DEVICE_RESET", pinned()?);
    drop(inst);
    let mut inst = Instance::open(u).map_err(e("reopen"))?;
    inst.dev.map_dma(IOVA, &buf).map_err(e("map"))?;
    let j = Job {
        op: OP_DMA_FROM_HOST,
        src: IOVA,
        dst: DATA_BASE,
        len: 2 * MIB as u32,
        value: 0,
    };
    inst.submit(0, &[j]).map_err(e("submit"))?;
    drop(inst);
    ensure!(pinned()? == 0, "{} pages pinned after a close during DMA", pinned()?);
    Ok(())
}

/// The legacy path: the instance's group set to a type1 container, memory
/// mapped with VFIO_IOMMU_MAP_DMA; the same pins, the same unmap.
pub fn through_a_type1_container(u: &str) -> R {
    let mut inst = Instance::open_by(u, OpenPath::Group).map_err(e("group open"))?;
    let buf = Mmap::anonymous(4 * PAGE).map_err(e("buffer"))?;
    let data = pattern(2 * PAGE, 9);
    buf.write_bytes(0, &data);
    inst.dev.map_dma(IOVA, &buf).map_err(e("VFIO_IOMMU_MAP_DMA"))?;
    let (d, _) = run(&mut inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, 2 * PAGE as u32)?;
    ensure!(d.status == DESC_STATUS_DONE, "host to VRAM: status {:#x}", d.status);
    let (d, _) = run(
        &mut inst,
        OP_DMA_TO_HOST,
        DATA_BASE,
        IOVA + 2 * PAGE as u64,
        2 * PAGE as u32,
    )?;
    ensure!(d.status == DESC_STATUS_DONE, "VRAM to host: status {:#x}", d.status);
    ensure!(bytes(&buf, 2 * PAGE, 2 * PAGE) == data, "round trip differs");
    ensure!(pinned()? > 0, "nothing pinned");
    inst.dev.unmap_dma(IOVA, 4 * PAGE).map_err(e("VFIO_IOMMU_UNMAP_DMA"))?;
    ensure!(pinned()? == 0, "{} pages pinned after the unmap", pinned()?);
    Ok(())
}

/// Several tenants in one type1 container: two DMA and unmap at the same
/// time (type1 calls every device's `dma_unmap` for each unmap), while a
/// third instance's device is opened and closed in the same container
/// (type1 registers and unregisters it under the locks those unmaps
/// take). Lockdep watches type1's locks and ours; every round trips and
/// the pins go back to 0.
pub fn type1_shared_container(a: &str, b: &str, c: &str) -> R {
    const ROUNDS: usize = 6;
    let container = vfio::new_container().map_err(e("container"))?;
    let tenant = |u: &str, slot: u64| -> R {
        let dev = Device::open_in(u, &container).map_err(e("group open"))?;
        let mut inst = Instance::with_device(u, dev).map_err(e("instance"))?;
        let iova = IOVA + slot * 64 * MIB as u64;
        let len = 64 * PAGE;
        let buf = Mmap::anonymous(2 * len).map_err(e("buffer"))?;
        for round in 0..ROUNDS {
            let data = pattern(len, round as u8 + 16 * slot as u8);
            buf.write_bytes(0, &data);
            inst.dev.map_dma(iova, &buf).map_err(e("VFIO_IOMMU_MAP_DMA"))?;
            let (d, _) = run(&mut inst, OP_DMA_FROM_HOST, iova, DATA_BASE, len as u32)?;
            ensure!(
                d.status == DESC_STATUS_DONE,
                "{u} round {round}: host to VRAM {:#x}",
                d.status
            );
            let to = iova + len as u64;
            let (d, _) = run(&mut inst, OP_DMA_TO_HOST, DATA_BASE, to, len as u32)?;
            ensure!(
                d.status == DESC_STATUS_DONE,
                "{u} round {round}: VRAM to host {:#x}",
                d.status
            );
            ensure!(bytes(&buf, len, len) == data, "{u} round {round}: round trip differs");
            inst.dev.unmap_dma(iova, 2 * len).map_err(e("VFIO_IOMMU_UNMAP_DMA"))?;
        }
        Ok(())
    };
    let opener = || -> R {
        for _ in 0..3 * ROUNDS {
            drop(Device::open_in(c, &container).map_err(e("third tenant's open"))?);
        }
        Ok(())
    };
    let (ra, rb, rc) = std::thread::scope(|s| {
        let ta = s.spawn(|| tenant(a, 1));
        let tb = s.spawn(|| tenant(b, 2));
        let tc = s.spawn(opener);
        let j = |r: std::thread::Result<R>| r.unwrap_or_else(|_| Err("thread panicked".into()));
        (j(ta.join()), j(tb.join()), j(tc.join()))
    });
    ra.and(rb).and(rc)?;
    ensure!(pinned()? == 0, "{} pages pinned after every unmap", pinned()?);
    Ok(())
}

/// Restores the thread's CAP_IPC_LOCK and the process's RLIMIT_MEMLOCK.
struct Unprivileged(libc::rlimit);

impl Unprivileged {
    /// This thread without CAP_IPC_LOCK (so pins are accounted) and the
    /// process's locked-memory limit at `limit` bytes.
    fn new(limit: usize) -> Result<Unprivileged, String> {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `old` is the structure getrlimit fills.
        if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) } != 0 {
            return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
        }
        let new = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: old.rlim_max,
        };
        // SAFETY: `new` is a valid limit structure.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &new) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
        let guard = Unprivileged(old);
        caps::drop(None, caps::CapSet::Effective, caps::Capability::CAP_IPC_LOCK)
            .map_err(|x| format!("dropping CAP_IPC_LOCK: {x}"))?;
        Ok(guard)
    }
}

impl Drop for Unprivileged {
    fn drop(&mut self) {
        let _ = caps::raise(None, caps::CapSet::Effective, caps::Capability::CAP_IPC_LOCK);
        // SAFETY: the limit getrlimit returned.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &self.0) };
    }
}

/// Pins count against the tenant's locked-memory limit as the VFIO core
/// counts them (iommufd: the user's locked memory, checked against
/// RLIMIT_MEMLOCK unless the mapper has CAP_IPC_LOCK): a job that needs
/// more fails with a DMA fault at the first page over the limit, what was
/// pinned goes with the unmap, and the same job runs once the limit
/// allows it.
pub fn memlock_limit_fails_the_job(u: &str) -> R {
    const LIMIT: usize = 64 * PAGE;
    let mut inst = Instance::open(u).map_err(e("open"))?;
    let buf = Mmap::anonymous(MIB).map_err(e("buffer"))?;
    let (d, addr, held) = {
        let _limited = Unprivileged::new(LIMIT)?;
        inst.dev.map_dma(IOVA, &buf).map_err(e("map"))?;
        let (d, _) = run(&mut inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, (LIMIT / 2) as u32)?;
        ensure!(
            d.status == DESC_STATUS_DONE,
            "a job within the limit: status {:#x}",
            d.status
        );
        let (d, addr) = run(&mut inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, MIB as u32)?;
        let held = pinned()?;
        inst.dev.unmap_dma(IOVA, MIB).map_err(e("unmap"))?;
        (d, addr, held)
    };
    ensure!(d.status == FAULT, "a job over the limit: status {:#x}", d.status);
    // The user's other locked memory (none in the test VM) moves the
    // first page over the limit down, never up.
    let over = IOVA + LIMIT as u64;
    ensure!(
        (IOVA + LIMIT as u64 / 2..=over).contains(&addr),
        "error address {addr:#x}, not the first page over the limit ({over:#x} at most)"
    );
    ensure!(
        held == (addr - IOVA) / PAGE as u64,
        "{held} pages pinned at the failure, {} below the error address",
        (addr - IOVA) / PAGE as u64
    );
    ensure!(pinned()? == 0, "{} pages pinned after the unmap", pinned()?);
    inst.dev.map_dma(IOVA, &buf).map_err(e("map with CAP_IPC_LOCK"))?;
    let (d, _) = run(&mut inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, MIB as u32)?;
    ensure!(
        d.status == DESC_STATUS_DONE,
        "the same job without the limit: {:#x}",
        d.status
    );
    inst.dev.unmap_dma(IOVA, MIB).map_err(e("unmap"))?;
    ensure!(pinned()? == 0, "{} pages pinned after the last unmap", pinned()?);
    println!("    # first page over the limit: IOVA {addr:#x}");
    Ok(())
}

/// DMA descriptors at the boundaries of a mapping, of the device's
/// address space and of the length field, each with the documented result
/// (docs/device.md: "DMA" and the error table).
pub fn descriptor_boundaries(u: &str) -> R {
    let mut inst = Instance::open(u).map_err(e("open"))?;
    let buf = Mmap::anonymous(4 * PAGE).map_err(e("buffer"))?;
    inst.dev.map_dma(IOVA, &buf).map_err(e("map"))?;
    let end = IOVA + 4 * PAGE as u64;
    let top = 1u64 << XLATE_VA_BITS;
    let done = DESC_STATUS_DONE;
    let bounds = DESC_STATUS_ERROR | ERR_DMA_BOUNDS;
    let bad_len = DESC_STATUS_ERROR | ERR_BAD_LEN;
    // (what, opcode, src, dst, len, status, error address if it fails)
    let cases: [(&str, u32, u64, u64, u32, u32, u64); 14] = [
        ("first byte", OP_DMA_FROM_HOST, IOVA, DATA_BASE, 1, done, 0),
        ("last byte", OP_DMA_FROM_HOST, end - 1, DATA_BASE, 1, done, 0),
        (
            "whole mapping",
            OP_DMA_TO_HOST,
            DATA_BASE,
            IOVA,
            4 * PAGE as u32,
            done,
            0,
        ),
        ("byte before", OP_DMA_FROM_HOST, IOVA - 1, DATA_BASE, 1, FAULT, IOVA - 1),
        ("byte after", OP_DMA_TO_HOST, DATA_BASE, end, 1, FAULT, end),
        ("one past the end", OP_DMA_COPY, end - 4, IOVA, 5, FAULT, end),
        (
            "last device address",
            OP_DMA_FROM_HOST,
            top - 1,
            DATA_BASE,
            1,
            FAULT,
            top - 1,
        ),
        (
            "first address past 48 bits",
            OP_DMA_FROM_HOST,
            top,
            DATA_BASE,
            1,
            bounds,
            top,
        ),
        (
            "range crossing 2^48",
            OP_DMA_TO_HOST,
            DATA_BASE,
            top - 2,
            4,
            bounds,
            top - 2,
        ),
        ("u64::MAX", OP_DMA_COPY, u64::MAX, IOVA, 1, bounds, u64::MAX),
        ("length 0", OP_DMA_COPY, IOVA, IOVA + 8, 0, bad_len, 0),
        ("length 1", OP_DMA_COPY, IOVA, IOVA + 8, 1, done, 0),
        (
            "length JOB_MAX_LEN",
            OP_DMA_COPY,
            IOVA,
            IOVA + 8,
            JOB_MAX_LEN,
            FAULT,
            end,
        ),
        (
            "length JOB_MAX_LEN + 1",
            OP_DMA_COPY,
            IOVA,
            IOVA + 8,
            JOB_MAX_LEN + 1,
            bad_len,
            u64::from(JOB_MAX_LEN) + 1,
        ),
    ];
    for (what, op, src, dst, len, want, want_addr) in cases {
        let (d, addr) = run(&mut inst, op, src, dst, len)?;
        ensure!(d.status == want, "{what}: status {:#x}, want {want:#x}", d.status);
        let checks_addr = (want != done && want != bad_len) || (want == bad_len && want_addr != 0);
        if checks_addr {
            ensure!(
                addr == want_addr,
                "{what}: error address {addr:#x}, want {want_addr:#x}"
            );
        }
    }
    inst.dev.unmap_dma(IOVA, 4 * PAGE).map_err(e("unmap"))?;
    ensure!(pinned()? == 0, "{} pages pinned after the unmap", pinned()?);
    Ok(())
}
