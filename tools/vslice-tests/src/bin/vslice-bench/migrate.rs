// SPDX-License-Identifier: GPL-2.0
//! P8: live migration. One instance's state moves into another of the
//! same type (`vslice::migrate`, VFIO migration v2 as a VMM drives it):
//! the downtime (source stopped to destination running) with and without
//! pre-copy, against mtty's migration of a port in the same run and a
//! plain copy of the slice through the two mappings (what moving the
//! VRAM costs at least); and the stream's bytes per MiB of slice.

use std::io;
use std::time::{Duration, Instant};

use vslice::migrate::{self, Options};
use vslice::vfio::{self, Device};

use crate::table::{Results, Row, Series};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `reps` migrations each way between `a` and `b`, with `opt`: the
/// downtimes (ms) and the reports.
fn both_ways(a: &Device, b: &Device, opt: &Options, reps: usize) -> io::Result<(Vec<f64>, Vec<migrate::Report>)> {
    let mut down = Vec::new();
    let mut reports = Vec::new();
    for k in 0..reps {
        let (s, d) = if k % 2 == 0 { (a, b) } else { (b, a) };
        let r = migrate::migrate(s, d, opt)?;
        down.push(ms(r.downtime));
        reports.push(r);
    }
    Ok((down, reports))
}

/// P8 between vslice instances `v` (two of the same type, open) and mtty
/// instances `m`, `reps` migrations of each kind.
pub fn p8(v: [&Device; 2], m: [&Device; 2], reps: usize, res: &mut Results) -> io::Result<()> {
    let slice = v[0].region_info(vfio::BAR2)?.size as usize;
    println!("P8: migration of a {} MiB slice, {reps} samples each", slice >> 20);
    let stop = Options {
        precopy: false,
        ..Default::default()
    };
    let pre = Options::default();
    let (down_stop, rep_stop) = both_ways(v[0], v[1], &stop, reps)?;
    let (down_pre, rep_pre) = both_ways(v[0], v[1], &pre, reps)?;
    let (down_mtty, rep_mtty) = both_ways(m[0], m[1], &stop, reps)?;
    // The floor: the slice read through one mapping, written through the
    // other.
    let (ma, mb) = (v[0].mmap(vfio::BAR2, 0, slice)?, v[1].mmap(vfio::BAR2, 0, slice)?);
    let mut buf = vec![0u8; slice];
    let mut copy = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        ma.read_bytes(0, &mut buf);
        mb.write_bytes(0, &buf);
        copy.push(ms(t0.elapsed()));
    }
    res.push(Row::new(
        "P8",
        format!("stop-copy downtime, {} MiB slice, idle source", slice >> 20),
        "ms",
        vec![
            Series::new("vslice, stop-copy only", down_stop),
            Series::new("vslice, after pre-copy", down_pre),
            Series::new("mtty (one port's state)", down_mtty),
            Series::new("plain copy of the slice (mmap to mmap)", copy),
        ],
    ));
    let per_mib = |r: &[migrate::Report], f: fn(&migrate::Report) -> u64| -> Vec<f64> {
        r.iter()
            .map(|x| f(x) as f64 / (slice as f64 / (1 << 20) as f64))
            .collect()
    };
    res.push(Row::new(
        "P8",
        "stream bytes per MiB of slice",
        "bytes",
        vec![
            Series::new("vslice, stop-copy only", per_mib(&rep_stop, |r| r.bytes)),
            Series::new("vslice, with pre-copy (all rounds)", per_mib(&rep_pre, |r| r.bytes)),
            Series::new(
                "vslice, after pre-copy (stop-copy part)",
                per_mib(&rep_pre, |r| r.bytes - r.precopy_bytes),
            ),
            Series::new("the slice itself", vec![(1 << 20) as f64; reps]),
        ],
    ));
    let rounds = rep_pre.iter().map(|r| f64::from(r.rounds)).sum::<f64>() / reps as f64;
    res.fact("p8.precopy_rounds", rounds);
    res.fact(
        "p8.mtty_stream_bytes",
        rep_mtty.iter().map(|r| r.bytes as f64).sum::<f64>() / reps as f64,
    );
    Ok(())
}
