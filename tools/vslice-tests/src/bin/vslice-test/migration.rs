// SPDX-License-Identifier: GPL-2.0
//! `vslice-test migration PARENT1 PARENT2`: live migration of instances
//! (VFIO migration v2) as one KTAP document, suite `vslice_migration`:
//! every arc of the FSM and every state number, what a stream carries
//! (VRAM, registers, jobs in flight, DMA), pre-copy with pages written
//! by jobs, by the CPU through the mapping and through the region, and
//! streams that are corrupted, truncated, of another version or geometry.
//! Creates its own instances and removes them at the end; pins and
//! instances back to zero is checked by the shell after it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Instant;

use vslice::job::{self, Instance, Job, DATA_BASE};
use vslice::migrate::{self, Options, State};
use vslice::regs::*;
use vslice::vfio::{self, Device, Mmap};
use vslice_abi::checksum;
use vslice_tests::health::DriverStats;

type R = Result<(), String>;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;
/// Where DMA tests map their host buffer.
const IOVA: u64 = 0x50_0000_0000;

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

fn errno<T>(r: io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| vslice::errno_of(&e))
}

fn expect_errno<T>(what: &str, r: io::Result<T>, want: i32) -> R {
    match errno(r) {
        Some(x) if x == want => Ok(()),
        Some(x) => Err(format!("{what}: errno {x}, want {want}")),
        None => Err(format!("{what}: succeeded, want errno {want}")),
    }
}

fn ctx(c: u32, off: usize) -> usize {
    ctx_window(c) + off
}

fn state(d: &Device) -> Result<State, String> {
    let s = d.mig_state().map_err(e("MIG_DEVICE_STATE get"))?;
    State::from_raw(s).ok_or_else(|| format!("unknown state {s}"))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

fn bytes(m: &Mmap, off: usize, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    m.read_bytes(off, &mut v);
    v
}

/// The feature, the states, and every arc between two states a user may
/// ask for: which succeed, which open a data fd, where the device is
/// after; state numbers 0, 8 and U32_MAX are refused; ERROR is left only
/// by a reset.
pub fn every_arc(u: &str) -> R {
    use State::*;
    let d = Device::open(u).map_err(|x| x.to_string())?;
    let flags = d.migration_flags().map_err(e("MIGRATION feature"))?;
    ensure!(
        flags == u64::from(migrate::MIGRATION_STOP_COPY | migrate::MIGRATION_P2P | migrate::MIGRATION_PRE_COPY),
        "migration flags {flags:#x}"
    );
    ensure!(state(&d)? == Running, "a fresh open is not RUNNING");
    let size = d.mig_data_size().map_err(e("MIG_DATA_SIZE"))?;
    let slice = d.region_info(vfio::BAR2).map_err(e("region info"))?.size;
    ensure!(
        size > slice && size < slice + 64 * 1024,
        "data size {size} for a {slice}-byte slice"
    );
    let saving = |s: State| matches!(s, PreCopy | PreCopyP2p | StopCopy);
    let mut arcs = 0;
    for from in State::ALL {
        for to in State::ALL {
            d.reset().map_err(e("reset"))?;
            ensure!(state(&d)? == Running, "reset did not go back to RUNNING");
            let f1 = d.set_mig_state(from).map_err(|x| format!("RUNNING -> {from:?}: {x}"))?;
            ensure!(
                f1.is_some() == (from == Resuming || saving(from)),
                "RUNNING -> {from:?}: data fd {}",
                f1.is_some()
            );
            let r = d.set_mig_state(to);
            let what = format!("{from:?} -> {to:?}");
            if from == StopCopy && matches!(to, PreCopy | PreCopyP2p) {
                expect_errno(&what, r, libc::EINVAL)?;
                ensure!(state(&d)? == StopCopy, "{what}: left STOP_COPY");
            } else if from == Resuming && to != Resuming {
                // Leaving RESUMING loads the stream: there is none.
                expect_errno(&what, r, libc::ENODATA)?;
                ensure!(state(&d)? == Error, "{what}: not ERROR after a refused stream");
                expect_errno("ERROR -> RUNNING", d.set_mig_state(Running), libc::EINVAL)?;
            } else {
                let f2 = r.map_err(|x| format!("{what}: {x}"))?;
                ensure!(state(&d)? == to, "{what}: state {:?}", state(&d)?);
                // A new session starts only from outside the saving group.
                let opens = to == Resuming && from != Resuming || saving(to) && !saving(from);
                ensure!(f2.is_some() == opens, "{what}: data fd {}", f2.is_some());
            }
            arcs += 1;
        }
    }
    d.reset().map_err(e("reset"))?;
    for bad in [0, 8, 9, u32::MAX] {
        expect_errno(&format!("state {bad}"), d.set_mig_state_raw(bad), libc::EINVAL)?;
        ensure!(state(&d)? == Running, "state {bad} moved the device");
    }
    println!("    # every_arc: {arcs} arcs between the 7 states, 4 bad state numbers");
    Ok(())
}

/// The saving fd's ioctl and the files' directions: PRECOPY_INFO only
/// in pre-copy, initial bytes going down as they are read, no read of a
/// resuming fd,
/// no write of a saving one; a reset ends a session (-ENODEV after).
pub fn data_fd_rules(u: &str) -> R {
    let d = Device::open(u).map_err(|x| x.to_string())?;
    let mut f = data_fd(&d, State::PreCopy)?;
    let (initial, dirty) = migrate::precopy_info(&f).map_err(e("PRECOPY_INFO"))?;
    let slice = d.region_info(vfio::BAR2).map_err(e("region info"))?.size;
    ensure!(
        initial >= slice && dirty == 0,
        "fresh pre-copy: initial {initial}, dirty {dirty}"
    );
    ensure!(f.write(&[0u8; 8]).is_err(), "the saving fd took a write");
    let mut b = [0u8; 32];
    f.read_exact(&mut b).map_err(e("stream header"))?;
    ensure!(&b[..8] == b"VSLICEMS", "stream starts {:02x?}", &b[..8]);
    ensure!(u32::from_le_bytes([b[8], b[9], b[10], b[11]]) == 1, "stream version");
    let (i2, _) = migrate::precopy_info(&f).map_err(e("PRECOPY_INFO"))?;
    ensure!(
        i2 < initial,
        "initial bytes did not go down after a read: {initial} -> {i2}"
    );
    d.set_mig_state(State::PreCopyP2p).map_err(e("PRE_COPY_P2P"))?;
    migrate::precopy_info(&f).map_err(e("PRECOPY_INFO in PRE_COPY_P2P"))?;
    d.set_mig_state(State::StopCopy).map_err(e("STOP_COPY"))?;
    expect_errno("PRECOPY_INFO in STOP_COPY", migrate::precopy_info(&f), libc::EINVAL)?;
    d.reset().map_err(e("reset"))?;
    expect_errno("read after reset", f.read(&mut b), libc::ENODEV)?;
    let mut r = data_fd(&d, State::Resuming)?;
    ensure!(r.read(&mut b).is_err(), "the resuming fd gave bytes");
    drop(r);
    d.reset().map_err(e("reset"))?;
    Ok(())
}

/// Moves `d` to `to`, an arc that opens a data fd, and returns that fd.
fn data_fd(d: &Device, to: State) -> Result<File, String> {
    d.set_mig_state(to)
        .map_err(|x| format!("{to:?}: {x}"))?
        .ok_or_else(|| format!("{to:?} gave no data fd"))
}

/// A whole stream of `d` (STOP_COPY from RUNNING), in memory.
fn capture(d: &Device) -> Result<Vec<u8>, String> {
    let mut f = data_fd(d, State::StopCopy)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v).map_err(e("reading the stream"))?;
    d.set_mig_state(State::Stop).map_err(e("STOP"))?;
    Ok(v)
}

/// Feeds `stream` to `d` and leaves RESUMING: the errno of the first
/// step that failed, None if it loaded.
fn feed(d: &Device, stream: &[u8]) -> Result<Option<i32>, String> {
    d.reset().map_err(e("reset"))?;
    let mut f = data_fd(d, State::Resuming)?;
    for piece in stream.chunks(100_000) {
        if let Err(x) = f.write_all(piece) {
            return Ok(vslice::errno_of(&x));
        }
    }
    drop(f);
    Ok(errno(d.set_mig_state(State::Stop)))
}

/// What a stream carries arrives on another slot of the same parent and on
/// another parent: VRAM byte for byte, the scratch register, every
/// context's ring registers, completed count, interrupt mask and halt;
/// the destination then runs new jobs. A stream of another geometry,
/// version or magic, a corrupted byte anywhere, a truncated stream and
/// trailing bytes are refused with their errno and leave ERROR, which a
/// reset leaves, and the good stream still loads after.
pub fn stream_carries_state_and_refuses_bad_ones(p1: &str, a: &str, b: &str, other: &str) -> R {
    let mut src = Instance::open(a).map_err(e("open src"))?;
    let data = pattern(3 * MIB + 123, 7);
    src.vram.write_bytes(DATA_BASE as usize, &data);
    src.dev.set_reg(REG_SCRATCH, 0x5c7a_7c11).map_err(e("scratch"))?;
    // A job done on context 0, a halted ring on the last context.
    let (d0, _) =
        job::run_one(&mut src, 0, Job::new(OP_CHECKSUM, DATA_BASE, 0, MIB as u32), 30_000).map_err(e("job"))?;
    ensure!(d0.result == checksum(&data[..MIB]), "source checksum");
    let last = src.contexts - 1;
    src.dev.set_reg(ctx(0, CTX_IRQ_MASK), CTX_IRQ_DONE).map_err(e("mask"))?;
    src.stage(last, &[Job::new(0x77, 0, 0, 4)]).map_err(e("stage"))?;
    src.kick(last).map_err(e("kick"))?;
    let mut halted = false;
    for _ in 0..200 {
        halted = src.dev.reg(ctx(last, CTX_STATUS)).map_err(e("status"))? & CTX_STATUS_HALTED != 0;
        if halted {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    ensure!(halted, "a bad descriptor did not halt the ring");
    let regs = [
        CTX_RING_BASE_LO,
        CTX_RING_SIZE,
        CTX_RING_HEAD,
        CTX_RING_TAIL,
        CTX_COMPLETED,
        CTX_IRQ_MASK,
        CTX_ERROR,
        CTX_STATUS,
    ];
    let read_all = |d: &Device| -> Result<Vec<u32>, String> {
        let mut v = Vec::new();
        for c in 0..src.contexts {
            for r in regs {
                v.push(d.reg(ctx(c, r)).map_err(e("register"))? & !CTX_STATUS_FROZEN);
            }
        }
        Ok(v)
    };
    src.dev.set_mig_state(State::Stop).map_err(e("STOP"))?;
    let before = read_all(&src.dev)?;
    src.dev.set_mig_state(State::Running).map_err(e("RUNNING"))?;
    let stream = capture(&src.dev)?;
    for (name, u) in [("same parent", b), ("other parent", other)] {
        let d = Device::open(u).map_err(|x| x.to_string())?;
        ensure!(feed(&d, &stream)?.is_none(), "{name}: the good stream was refused");
        d.set_mig_state(State::Running).map_err(e("RUNNING"))?;
        ensure!(read_all(&d)? == before, "{name}: registers differ after the move");
        ensure!(
            d.reg(REG_SCRATCH).map_err(e("scratch"))? == 0x5c7a_7c11,
            "{name}: scratch"
        );
        let mut inst = Instance::resumed(u, d).map_err(e("resumed"))?;
        inst.sync_tails().map_err(e("tails"))?;
        // The halted ring goes on once its error is cleared.
        inst.dev.set_reg(ctx(last, CTX_ERROR), 0).map_err(e("clear error"))?;
        ensure!(
            bytes(&inst.vram, DATA_BASE as usize, data.len()) == data,
            "{name}: VRAM differs"
        );
        let (d1, _) = job::run_one(
            &mut inst,
            0,
            Job::new(OP_CHECKSUM, DATA_BASE, 0, 2 * MIB as u32),
            30_000,
        )
        .map_err(e("job on the destination"))?;
        ensure!(
            d1.result == checksum(&data[..2 * MIB]),
            "{name}: checksum after the move"
        );
    }
    // Refused streams, each then a reset, on the other parent's instance.
    let d = Device::open(other).map_err(|x| x.to_string())?;
    let hdr = 32;
    let mut cases: Vec<(&str, Vec<u8>, i32)> = Vec::new();
    let mut s = stream.clone();
    s[0] ^= 1;
    cases.push(("magic", s, libc::EINVAL));
    let mut s = stream.clone();
    s[8] = 2;
    cases.push(("version 2", s, libc::EPROTONOSUPPORT));
    let mut s = stream.clone();
    s[16..24].copy_from_slice(&(1u64 << 20).to_le_bytes());
    cases.push(("another slice size", s, libc::EINVAL));
    for at in [hdr + 20, stream.len() / 2, stream.len() - 100] {
        let mut s = stream.clone();
        s[at] ^= 0x40;
        cases.push(("one byte flipped", s, 0));
    }
    cases.push(("truncated by 1", stream[..stream.len() - 1].to_vec(), libc::ENODATA));
    cases.push(("header only", stream[..hdr].to_vec(), libc::ENODATA));
    cases.push(("empty", Vec::new(), libc::ENODATA));
    let mut s = stream.clone();
    s.push(0);
    cases.push(("a byte after the end", s, libc::EINVAL));
    for (name, s, want) in &cases {
        let got = feed(&d, s)?.ok_or_else(|| format!("{name}: loaded"))?;
        // A flipped byte is a checksum error, or, in a length or offset, a
        // malformed section: both refused.
        ensure!(
            got == *want || *want == 0 && (got == libc::EBADMSG || got == libc::EINVAL),
            "{name}: errno {got}, want {want}"
        );
        let st = state(&d)?;
        ensure!(
            st == State::Error || st == State::Resuming,
            "{name}: state {st:?} after a refused stream"
        );
        d.reset().map_err(e("reset after a refused stream"))?;
        ensure!(state(&d)? == State::Running, "{name}: reset did not recover");
    }
    // A stream of another geometry (a bigger instance of the same parent).
    let mut created = crate::Created(Vec::new());
    let big = created.make(p1, "eighth")?;
    let db = Device::open(&big).map_err(|x| x.to_string())?;
    ensure!(
        feed(&db, &stream)? == Some(libc::EINVAL),
        "a stream into another type loaded"
    );
    drop(db);
    ensure!(feed(&d, &stream)?.is_none(), "the good stream after the bad ones");
    println!(
        "    # stream: {} bytes; {} refused streams",
        stream.len(),
        cases.len() + 1
    );
    Ok(())
}

/// Jobs queued and one in flight when the source stops go on from where
/// they were on the destination (another parent): every result right,
/// the completed count exact, none lost, none run again; the driver's
/// stats count the jobs the stream carried. The steps are `migrate()`'s,
/// with the destination put in RESUMING before the jobs start, so that
/// the source stops within a few register accesses of its second
/// completion (hw-sim hashes a full ring in well under a second).
pub fn jobs_in_flight_resume_on_the_destination(a: &str, other: &str) -> R {
    let mut src = Instance::open(a).map_err(e("open src"))?;
    let len = 8 * MIB;
    let data = pattern(len, 3);
    src.vram.write_bytes(DATA_BASE as usize, &data);
    let dd = Device::open(other).map_err(|x| x.to_string())?;
    let mut dst = Instance::resumed(other, dd).map_err(e("resumed"))?;
    // A full ring: the more queued, the surer the stop lands in the queue.
    let n = job::RING_SLOTS as usize;
    let jobs = vec![Job::new(OP_CHECKSUM, DATA_BASE, 0, len as u32); n];
    let before = DriverStats::read().map_err(e("stats"))?;
    let t0 = Instant::now();
    let mut dfd = data_fd(&dst.dev, State::Resuming)?;
    let resuming = t0.elapsed();
    let idx = src.submit(0, &jobs).map_err(e("submit"))?;
    // Stop the source part of the way through its queue.
    for _ in 0..10_000 {
        if src.dev.reg(ctx(0, CTX_COMPLETED)).map_err(e("src completed"))? >= 2 {
            break;
        }
    }
    let stopped = Instant::now();
    let mut sfd = data_fd(&src.dev, State::StopCopy)?;
    let stop = stopped.elapsed();
    let bytes = migrate::copy(&mut sfd, &mut dfd, false).map_err(e("copy"))?;
    drop(dfd);
    dst.dev.set_mig_state(State::Running).map_err(e("RUNNING"))?;
    let downtime = stopped.elapsed();
    drop(sfd);
    src.dev.set_mig_state(State::Stop).map_err(e("STOP"))?;
    let after = DriverStats::read().map_err(e("stats"))?;
    let done_src = src.dev.reg(ctx(0, CTX_COMPLETED)).map_err(e("src completed"))?;
    ensure!(
        done_src > 0 && (done_src as usize) < n,
        "{done_src} of {n} jobs finished before the source stopped: the move did not split the queue \
         (RESUMING took {:.1} ms, the stop {:.1} ms)",
        resuming.as_secs_f64() * 1e3,
        stop.as_secs_f64() * 1e3
    );
    let moved = after.mig_jobs_moved - before.mig_jobs_moved;
    let resumed = after.mig_jobs_resumed - before.mig_jobs_resumed;
    ensure!(
        moved == u64::from(n as u32 - done_src) && resumed <= 1,
        "stats: {moved} jobs moved ({resumed} part-done), the stream held {}",
        n as u32 - done_src
    );
    dst.sync_tails().map_err(e("tails"))?;
    let want = checksum(&data);
    let (last, _) = dst.wait(0, idx[n - 1], 60_000).map_err(e("last job"))?;
    ensure!(last.status == DESC_STATUS_DONE, "last job status {:#x}", last.status);
    for (k, &i) in idx.iter().enumerate() {
        let d = dst.done(0, i);
        ensure!(
            d.status == DESC_STATUS_DONE && d.result == want,
            "job {k}: status {:#x} result {:#x}",
            d.status,
            d.result
        );
    }
    let done_dst = dst.dev.reg(ctx(0, CTX_COMPLETED)).map_err(e("dst completed"))?;
    ensure!(done_dst as usize == n, "destination completed {done_dst}, want {n}");
    // The source never ran another chunk after STOP.
    let again = src.dev.reg(ctx(0, CTX_COMPLETED)).map_err(e("src completed"))?;
    ensure!(
        again == done_src,
        "the stopped source completed {done_src} then {again}"
    );
    println!(
        "    # {done_src} of {n} jobs done on the source ({resumed} moved part-done); {bytes} bytes, downtime {:.1} ms",
        downtime.as_secs_f64() * 1e3
    );
    Ok(())
}

/// DMA jobs in flight move too: the destination's translation is built
/// from the same IOVAs (its tenant mapped the same memory there), the
/// data arrives complete, and every pin goes when the devices close.
pub fn dma_jobs_resume_with_translations_rebuilt(a: &str, other: &str) -> R {
    let mut src = Instance::open(a).map_err(e("open src"))?;
    let len = 2 * MIB;
    let n = 6usize;
    let buf = Mmap::anonymous(n * len).map_err(e("buffer"))?;
    let data = pattern(n * len, 11);
    buf.write_bytes(0, &data);
    src.dev.map_dma(IOVA, &buf).map_err(e("map src"))?;
    let dd = Device::open(other).map_err(|x| x.to_string())?;
    dd.map_dma(IOVA, &buf).map_err(e("map dst"))?;
    let mut dst = Instance::resumed(other, dd).map_err(e("resumed"))?;
    let jobs: Vec<Job> = (0..n)
        .map(|k| {
            Job::new(
                OP_DMA_FROM_HOST,
                IOVA + (k * len) as u64,
                DATA_BASE + (k * len) as u64,
                len as u32,
            )
        })
        .collect();
    let idx = src.submit(0, &jobs).map_err(e("submit"))?;
    let opt = Options {
        precopy: false,
        ..Default::default()
    };
    migrate::migrate(&src.dev, &dst.dev, &opt).map_err(e("migrate"))?;
    let done_src = src.dev.reg(ctx(0, CTX_COMPLETED)).map_err(e("src completed"))?;
    dst.sync_tails().map_err(e("tails"))?;
    let (last, _) = dst.wait(0, idx[n - 1], 60_000).map_err(e("last job"))?;
    ensure!(
        last.status == DESC_STATUS_DONE,
        "last DMA job status {:#x}",
        last.status
    );
    ensure!(
        bytes(&dst.vram, DATA_BASE as usize, n * len) == data,
        "VRAM on the destination differs from the host buffer"
    );
    drop(src);
    drop(dst);
    let pinned = DriverStats::read().map_err(e("stats"))?.pinned_pages;
    ensure!(pinned == 0, "{pinned} pages pinned after both closed");
    println!("    # {done_src} of {n} DMA jobs done on the source, the rest after the move");
    Ok(())
}

/// `dst` RESUMING and `src` in PRE_COPY: their data fds (saving, resuming).
fn precopy_session(src: &Device, dst: &Device) -> Result<(File, File), String> {
    let d = data_fd(dst, State::Resuming)?;
    let s = data_fd(src, State::PreCopy)?;
    Ok((s, d))
}

/// Pre-copy sends the slice while the instance runs, then again what was
/// written after: by a job (the device's dirty log), by the CPU through
/// the mapping (write-protected) and through the region (pwrite); the
/// destination ends up with all of it; PRECOPY_INFO counts it.
pub fn precopy_resends_what_is_written(a: &str, other: &str) -> R {
    let mut src = Instance::open(a).map_err(e("open src"))?;
    let base = pattern(4 * MIB, 5);
    src.vram.write_bytes(DATA_BASE as usize, &base);
    let dd = Device::open(other).map_err(|x| x.to_string())?;
    let (mut sfd, mut dfd) = precopy_session(&src.dev, &dd)?;
    let first = migrate::copy(&mut sfd, &mut dfd, true).map_err(e("first round"))?;
    let (initial, dirty) = migrate::precopy_info(&sfd).map_err(e("PRECOPY_INFO"))?;
    ensure!(
        initial == 0 && dirty == 0,
        "after the first round: initial {initial}, dirty {dirty}"
    );
    // Written after: page 3 of the data by the CPU (mapping), page 9 by
    // pwrite, pages 20..24 by a fill job.
    let cpu_at = DATA_BASE as usize + 3 * PAGE;
    src.vram.write32(cpu_at + 8, 0xc0ff_ee01);
    let pw_at = DATA_BASE + 9 * PAGE as u64;
    src.dev
        .write_at(vfio::BAR2, pw_at + 16, &0xbeef_0002u32.to_le_bytes())
        .map_err(e("pwrite"))?;
    let fill_at = DATA_BASE + 20 * PAGE as u64;
    let mut fill = Job::new(OP_FILL, 0, fill_at, 4 * PAGE as u32);
    fill.value = 0xf111_f111;
    job::run_one(&mut src, 0, fill, 30_000).map_err(e("fill"))?;
    let (_, dirty) = migrate::precopy_info(&sfd).map_err(e("PRECOPY_INFO"))?;
    // The fill's descriptor write-back dirties a ring page too.
    ensure!(
        dirty >= 6 * PAGE as u64,
        "dirty {dirty} bytes after 6 pages were written"
    );
    let second = migrate::copy(&mut sfd, &mut dfd, true).map_err(e("second round"))?;
    ensure!(
        second >= 6 * PAGE as u64 && second < first / 4,
        "second round {second} bytes (first {first})"
    );
    src.dev.set_mig_state(State::PreCopyP2p).map_err(e("PRE_COPY_P2P"))?;
    src.dev.set_mig_state(State::StopCopy).map_err(e("STOP_COPY"))?;
    let last = migrate::copy(&mut sfd, &mut dfd, false).map_err(e("stop-copy"))?;
    drop(dfd);
    dd.set_mig_state(State::Running).map_err(e("dst RUNNING"))?;
    let mut want = base.clone();
    want[3 * PAGE + 8..3 * PAGE + 12].copy_from_slice(&0xc0ff_ee01u32.to_le_bytes());
    want[9 * PAGE + 16..9 * PAGE + 20].copy_from_slice(&0xbeef_0002u32.to_le_bytes());
    for b in want[20 * PAGE..24 * PAGE].chunks_mut(4) {
        b.copy_from_slice(&0xf111_f111u32.to_le_bytes());
    }
    let m = dd
        .mmap(vfio::BAR2, 0, DATA_BASE as usize + 4 * MIB)
        .map_err(e("mmap dst"))?;
    let got = bytes(&m, DATA_BASE as usize, 4 * MIB);
    if let Some(p) = (0..4 * MIB / PAGE).find(|&p| got[p * PAGE..(p + 1) * PAGE] != want[p * PAGE..(p + 1) * PAGE]) {
        return Err(format!("destination page {p} of the data differs"));
    }
    println!("    # pre-copy: {first} bytes, then {second}; stop-copy {last} bytes");
    Ok(())
}

/// `vslice migrate` (the client) from one parent to the other and back,
/// with and without pre-copy: the slice's contents arrive.
pub fn client_migrate(a: &str, other: &str) -> R {
    let d = Device::open(a).map_err(|x| x.to_string())?;
    let m = d.mmap(vfio::BAR2, 0, 2 * MIB).map_err(e("mmap"))?;
    let data = pattern(MIB, 9);
    m.write_bytes(MIB, &data);
    drop(m);
    drop(d);
    for (from, to, extra) in [(a, other, None), (other, a, Some("--no-precopy"))] {
        let mut cmd = std::process::Command::new("vslice");
        cmd.arg("migrate");
        if let Some(x) = extra {
            cmd.arg(x);
        }
        let out = cmd.arg(from).arg(to).output().map_err(e("vslice migrate"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "vslice migrate {from} {to}: {text}");
        ensure!(text.contains("downtime"), "no report: {text}");
        println!("    # {}", text.trim());
        let d = Device::open(to).map_err(|x| x.to_string())?;
        let m = d.mmap(vfio::BAR2, 0, 2 * MIB).map_err(e("mmap"))?;
        ensure!(bytes(&m, MIB, MIB) == data, "{to}: VRAM differs after vslice migrate");
    }
    Ok(())
}

/// Guest memory the device writes by DMA, for a VMM migrating the guest:
/// with a type1 container (QEMU's path for a device without DMA logging
/// of its own), type1's dirty-page tracking reports exactly the pages a
/// job wrote (the driver pins each page it writes; type1 counts pinned
/// pages dirty) and none the device never touched.
pub fn type1_reports_dma_written_pages_dirty(u: &str) -> R {
    let c = vfio::new_container().map_err(e("container"))?;
    let dev = Device::open_in(u, &c).map_err(e("open in the container"))?;
    let mut inst = Instance::with_device(u, dev).map_err(e("instance"))?;
    let pages = 64;
    let buf = Mmap::anonymous(pages * PAGE).map_err(e("buffer"))?;
    inst.dev.map_dma(IOVA, &buf).map_err(e("map"))?;
    migrate::type1_dirty_tracking(&c, true).map_err(e("VFIO_IOMMU_DIRTY_PAGES start"))?;
    let before = migrate::type1_dirty_bitmap(&c, IOVA, (pages * PAGE) as u64).map_err(e("bitmap"))?;
    ensure!(before.iter().all(|&w| w == 0), "dirty before any DMA: {before:x?}");
    let (d, _) = job::run_one(
        &mut inst,
        0,
        Job::new(OP_DMA_TO_HOST, DATA_BASE, IOVA + 8 * PAGE as u64, 16 * PAGE as u32),
        30_000,
    )
    .map_err(e("DMA job"))?;
    ensure!(d.status == DESC_STATUS_DONE, "DMA job status {:#x}", d.status);
    let bits = migrate::type1_dirty_bitmap(&c, IOVA, (pages * PAGE) as u64).map_err(e("bitmap"))?;
    let want = 0xffffu64 << 8;
    ensure!(
        bits.first() == Some(&want),
        "dirty bitmap {bits:x?}, want pages 8..24 ({want:#x})"
    );
    migrate::type1_dirty_tracking(&c, false).map_err(e("VFIO_IOMMU_DIRTY_PAGES stop"))?;
    inst.dev.unmap_dma(IOVA, pages * PAGE).map_err(e("unmap"))?;
    Ok(())
}

/// The source's parent is unbound in the middle of a pre-copy: the
/// unbind waits, the driver asks the user for the device back (REQ), the
/// user finishes the migration (the destination has the slice) and
/// closes, the unbind completes; the parent then binds again.
pub fn parent_unbind_during_migration(p2: &str, src_u: &str, dst_u: &str) -> R {
    let src = Instance::open(src_u).map_err(e("open src"))?;
    let data = pattern(2 * MIB, 21);
    src.vram.write_bytes(DATA_BASE as usize, &data);
    let dst = Device::open(dst_u).map_err(|x| x.to_string())?;
    let (mut sfd, mut dfd) = precopy_session(&src.dev, &dst)?;
    let unbind = std::path::Path::new("/sys/bus/pci/drivers/vslice/unbind");
    let bdf = p2.to_string();
    let t0 = Instant::now();
    let remover = std::thread::spawn(move || vslice::sysfs::write_attr(unbind, &bdf).map(|()| t0.elapsed()));
    let mut asked = false;
    for _ in 0..300 {
        if src.requested().map_err(e("REQ"))? {
            asked = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ensure!(asked, "no REQ within 6 s of the unbind");
    ensure!(!remover.is_finished(), "the unbind did not wait for the user");
    migrate::copy(&mut sfd, &mut dfd, true).map_err(e("pre-copy during the unbind"))?;
    src.dev
        .set_mig_state(State::StopCopy)
        .map_err(e("STOP_COPY during the unbind"))?;
    migrate::copy(&mut sfd, &mut dfd, false).map_err(e("stop-copy during the unbind"))?;
    drop(dfd);
    dst.set_mig_state(State::Running).map_err(e("destination RUNNING"))?;
    drop(sfd);
    drop(src);
    let took = remover
        .join()
        .map_err(|_| "remover panicked".to_string())?
        .map_err(e("unbind"))?;
    let m = dst
        .mmap(vfio::BAR2, 0, DATA_BASE as usize + 2 * MIB)
        .map_err(e("mmap dst"))?;
    ensure!(
        bytes(&m, DATA_BASE as usize, 2 * MIB) == data,
        "the destination's VRAM differs"
    );
    drop(m);
    drop(dst);
    let bind = std::path::Path::new("/sys/bus/pci/drivers/vslice/bind");
    vslice::sysfs::write_attr(bind, p2).map_err(e("bind again"))?;
    println!(
        "    # unbind completed {} ms after it started, once the migration had",
        took.as_millis()
    );
    Ok(())
}

/// Runs one job of `pages` pages on context 0; it must succeed.
fn run_job(inst: &mut Instance, op: u32, src: u64, dst: u64, pages: usize) -> R {
    let (d, _) = job::run_one(inst, 0, Job::new(op, src, dst, (pages * PAGE) as u32), 30_000).map_err(e("job"))?;
    ensure!(d.status == DESC_STATUS_DONE, "job status {:#x}", d.status);
    Ok(())
}

/// The device's own DMA logging (`VFIO_DEVICE_FEATURE_DMA_LOGGING_*`,
/// what QEMU needs to migrate a guest whose device writes its memory):
/// a job that writes pages 8..24 of a buffer makes exactly those dirty, a
/// job that only reads makes nothing dirty, a report clears what it
/// reported except pages still writable by the device, and a page unmapped
/// after the device wrote it is still reported once.
pub fn dma_logging_reports_written_pages(u: &str) -> R {
    let mut inst = Instance::open(u).map_err(e("open"))?;
    let pages = 64;
    let len = (pages * PAGE) as u64;
    let buf = Mmap::anonymous(pages * PAGE).map_err(e("buffer"))?;
    inst.dev.map_dma(IOVA, &buf).map_err(e("map"))?;
    inst.dev
        .dma_logging_start(&[(IOVA, len)])
        .map_err(e("DMA_LOGGING_START"))?;
    let first = |b: &[u64]| b.first().copied().unwrap_or(0);
    let b0 = inst.dev.dma_logging_report(IOVA, len).map_err(e("report"))?;
    ensure!(first(&b0) == 0, "dirty before any DMA: {b0:x?}");
    // Reads pages 40..48 (host -> VRAM): nothing the device wrote.
    run_job(&mut inst, OP_DMA_FROM_HOST, IOVA + 40 * PAGE as u64, DATA_BASE, 8)?;
    let b1 = inst.dev.dma_logging_report(IOVA, len).map_err(e("report"))?;
    ensure!(first(&b1) == 0, "a read-only job dirtied {b1:x?}");
    // Writes pages 8..24 (VRAM -> host).
    run_job(&mut inst, OP_DMA_TO_HOST, DATA_BASE, IOVA + 8 * PAGE as u64, 16)?;
    let want = 0xffffu64 << 8;
    let b2 = inst.dev.dma_logging_report(IOVA, len).map_err(e("report"))?;
    ensure!(first(&b2) == want, "after the write: {b2:x?}, want {want:#x}");
    // Unmapped after the write: reported once more, then gone.
    inst.dev.unmap_dma(IOVA, pages * PAGE).map_err(e("unmap"))?;
    let b3 = inst.dev.dma_logging_report(IOVA, len).map_err(e("report"))?;
    ensure!(first(&b3) == want, "after the unmap: {b3:x?}, want {want:#x}");
    let b4 = inst.dev.dma_logging_report(IOVA, len).map_err(e("report"))?;
    ensure!(first(&b4) == 0, "reported twice after the unmap: {b4:x?}");
    inst.dev.dma_logging_stop().map_err(e("DMA_LOGGING_STOP"))?;
    Ok(())
}

/// `vram-pattern`: writes (`what` "write") or checks ("check") a pattern
/// of `seed` over the first `len` bytes of `u`'s slice (all of it by
/// default), through its mapping; returns their FNV-1a 64.
pub fn vram_pattern(u: &str, what: &str, seed: u8, len: Option<usize>) -> Result<u64, String> {
    let d = Device::open(u).map_err(|x| x.to_string())?;
    let slice = d.region_info(vfio::BAR2).map_err(e("region info"))?.size as usize;
    let len = len.unwrap_or(slice);
    ensure!(len > 0 && len <= slice, "length {len}: the slice has {slice} bytes");
    let m = d.mmap(vfio::BAR2, 0, slice).map_err(e("mmap"))?;
    let want = pattern(len, seed);
    match what {
        "write" => m.write_bytes(0, &want),
        "check" => {
            let got = bytes(&m, 0, len);
            if let Some(p) = (0..len.div_ceil(PAGE)).find(|&p| {
                let r = p * PAGE..((p + 1) * PAGE).min(len);
                got[r.clone()] != want[r]
            }) {
                return Err(format!("page {p} of {} differs", len.div_ceil(PAGE)));
            }
        }
        _ => return Err(format!("'{what}': write or check")),
    }
    Ok(checksum(&want))
}

/// The suite: instances of the smallest type (the stream is mostly its
/// VRAM, and the debug kernel moves it at a few MiB/s under TCG) on both
/// parents.
pub fn run(p1: &str, p2: &str) -> Vec<(String, R)> {
    let mut results: Vec<(String, R)> = Vec::new();
    let mut created = crate::Created(Vec::new());
    let setup = (|| -> Result<[String; 3], String> {
        Ok([
            created.make(p1, "unit")?,
            created.make(p1, "unit")?,
            created.make(p2, "unit")?,
        ])
    })();
    let mut t = |name: &str, f: &mut dyn FnMut() -> R| results.push((name.to_string(), f()));
    match setup {
        Err(x) => t("create_test_instances", &mut || Err(x.clone())),
        Ok([a, b, other]) => {
            t("every_arc_of_the_fsm", &mut || every_arc(&a));
            t("data_fd_rules", &mut || data_fd_rules(&a));
            t("stream_carries_state_and_refuses_bad_ones", &mut || {
                stream_carries_state_and_refuses_bad_ones(p1, &a, &b, &other)
            });
            t("jobs_in_flight_resume_on_the_destination", &mut || {
                jobs_in_flight_resume_on_the_destination(&a, &other)
            });
            t("dma_jobs_resume_with_translations_rebuilt", &mut || {
                dma_jobs_resume_with_translations_rebuilt(&a, &other)
            });
            t("precopy_resends_what_is_written", &mut || {
                precopy_resends_what_is_written(&a, &other)
            });
            t("type1_reports_dma_written_pages_dirty", &mut || {
                type1_reports_dma_written_pages_dirty(&b)
            });
            t("dma_logging_reports_written_pages", &mut || {
                dma_logging_reports_written_pages(&a)
            });
            t("client_migrate", &mut || client_migrate(&a, &other));
            // Last: the second parent's instance goes with the unbind.
            t("parent_unbind_during_migration", &mut || {
                parent_unbind_during_migration(p2, &other, &b)
            });
        }
    }
    drop(created);
    // Every session, stream and log freed, every pin returned.
    let leaks = (|| -> R {
        let pinned = DriverStats::read().map_err(e("stats"))?.pinned_pages;
        ensure!(pinned == 0, "{pinned} pages still pinned");
        let leaks = vslice_tests::health::kmemleak_scan().map_err(e("kmemleak"))?;
        ensure!(leaks.is_empty(), "kmemleak: {}", leaks.join("\n"));
        Ok(())
    })();
    results.push(("no_pins_and_no_leaks_after_the_suite".to_string(), leaks));
    results
}
