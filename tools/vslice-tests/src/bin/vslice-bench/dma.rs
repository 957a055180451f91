// SPDX-License-Identifier: GPL-2.0
//! P7: DMA. An instance's jobs move `len` bytes host → VRAM and VRAM →
//! host through its IOAS (pages already pinned), against the parent's own
//! DMA of the same length through the same address translation (its
//! self-test's pass: kernel pages entered directly, no VFIO, no faults)
//! and a guest memcpy of the same length; and what one translation fault
//! costs: a job over freshly mapped memory, whose faults pin and enter 64
//! pages each, against the same job once everything is pinned.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use vslice::job::{self, Instance, Job, DATA_BASE};
use vslice::regs::*;
use vslice::sysfs;
use vslice::vfio::Mmap;
use vslice_tests::health::{DriverStats, Fields};

use crate::access::{copy_rate, window, PAGE};
use crate::table::{Results, Row, Series};

/// Where the host buffer is mapped in the instance's IOAS.
const IOVA: u64 = job::DMA_IOVA;
/// Pages one fault answer maps (rust-driver/dma.rs, `FAULT_BATCH`).
const FAULT_PAGES: usize = 64;

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Runs one `len`-byte job of `op` on context 0 and times it from the
/// submission to the completion interrupt.
fn timed(inst: &mut Instance, op: u32, src: u64, dst: u64, len: usize) -> io::Result<Duration> {
    let t0 = Instant::now();
    let (d, at) = job::run_one(inst, 0, Job::new(op, src, dst, len as u32), 60_000)?;
    let took = t0.elapsed();
    if d.status != DESC_STATUS_DONE {
        return Err(io::Error::other(format!(
            "DMA job {op:#x}: status {:#x} at {at:?}",
            d.status
        )));
    }
    Ok(took)
}

/// The parent's self-test DMA pass of `len` bytes: (ns in, ns out).
fn parent_dma(bdf: &str, len: usize) -> io::Result<(u64, u64)> {
    let p = Path::new("/sys/kernel/debug/vslice").join(bdf).join("selftest");
    sysfs::write_attr(&p, len.to_string())?;
    let st = Fields::parent_state(bdf)?;
    if st.get("selftest_dma_bytes")? != len as u64 {
        return Err(io::Error::other("the self-test moved another length"));
    }
    Ok((st.get("selftest_dma_in_ns")?, st.get("selftest_dma_out_ns")?))
}

fn faults_resolved() -> io::Result<u64> {
    DriverStats::read().map(|s| s.dma_faults_resolved)
}

/// P7 on `inst` (an instance of parent `bdf` whose slice holds
/// `DATA_BASE + len`): `reps` samples of each.
pub fn p7(inst: &mut Instance, bdf: &str, len: usize, reps: usize, res: &mut Results) -> io::Result<()> {
    if DATA_BASE + len as u64 > inst.slice || !len.is_multiple_of(FAULT_PAGES * PAGE) {
        return Err(io::Error::other(format!(
            "P7: {len} bytes do not fit the slice or are not whole fault batches"
        )));
    }
    println!("P7: DMA of {len} bytes each way, {reps} samples");
    let buf = Mmap::anonymous(2 * len + 2 * PAGE)?;
    buf.write_bytes(0, &vec![0xa5u8; 2 * len]);
    let back = IOVA + len as u64;
    // Faults: every job over memory mapped again (the unmap dropped the
    // pins), against the same job once pinned.
    let mut cold = Vec::new();
    let mut faults = 0;
    for _ in 0..reps {
        inst.dev.map_dma(IOVA, &buf)?;
        let f0 = faults_resolved()?;
        cold.push(timed(inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, len)?);
        faults += faults_resolved()? - f0;
        inst.dev.unmap_dma(IOVA, buf.len())?;
    }
    inst.dev.map_dma(IOVA, &buf)?;
    timed(inst, OP_DMA_TO_HOST, DATA_BASE, back, len)?;
    let mut warm_in = Vec::new();
    let mut warm_out = Vec::new();
    for _ in 0..reps {
        warm_in.push(timed(inst, OP_DMA_FROM_HOST, IOVA, DATA_BASE, len)?);
        warm_out.push(timed(inst, OP_DMA_TO_HOST, DATA_BASE, back, len)?);
    }
    inst.dev.unmap_dma(IOVA, buf.len())?;
    let mut par_in = Vec::new();
    let mut par_out = Vec::new();
    for _ in 0..reps {
        let (i, o) = parent_dma(bdf, len)?;
        par_in.push(len as f64 / i.max(1) as f64 * 1e3);
        par_out.push(len as f64 / o.max(1) as f64 * 1e3);
    }
    // Guest RAM to guest RAM, the windows an odd number of pages apart
    // (access.rs: TCG's TLB).
    let mut src = vec![0x5au8; len + 2 * PAGE];
    let mut dst = vec![0u8; len + 2 * PAGE];
    let s = window(src.as_mut_ptr(), std::ptr::null());
    let d = window(dst.as_mut_ptr(), s);
    // SAFETY: both windows are `len` bytes inside their vectors (`window`)
    // and the vectors do not overlap.
    let memcpy = unsafe { copy_rate(d, s, len, len, Duration::ZERO, reps) };
    let rate = |v: &[Duration]| v.iter().map(|&t| mbps(len, t)).collect::<Vec<_>>();
    for (what, inst_v, par_v) in [
        ("host -> VRAM", rate(&warm_in), par_in),
        ("VRAM -> host", rate(&warm_out), par_out),
    ] {
        res.push(Row::new(
            "P7",
            format!("DMA {what}, {} KiB jobs, pages pinned", len >> 10),
            "MB/s",
            vec![
                Series::new("vslice instance (IOAS)", inst_v),
                Series::new("parent's own DMA (self-test)", par_v),
                Series::new("memcpy guest RAM -> guest RAM", memcpy.clone()),
            ],
        ));
    }
    // One fault answer: the cold job's extra time over the warm median,
    // per answer; against moving those pages when pinned.
    let per_job = (faults as f64 / reps as f64).max(1.0);
    let warm = Series::new("", warm_in.iter().map(|t| t.as_secs_f64() * 1e6).collect()).median();
    let per_fault: Vec<f64> = cold.iter().map(|t| (t.as_secs_f64() * 1e6 - warm) / per_job).collect();
    let batch = warm * (FAULT_PAGES * PAGE) as f64 / len as f64;
    res.push(Row::new(
        "P7",
        format!("one translation fault answer ({FAULT_PAGES} pages pinned and entered)"),
        "us",
        vec![
            Series::new("fault answer", per_fault),
            Series::new(
                format!("moving those {} KiB when pinned", (FAULT_PAGES * PAGE) >> 10),
                vec![batch; reps],
            ),
        ],
    ));
    res.fact("p7.faults_per_job", per_job);
    Ok(())
}
