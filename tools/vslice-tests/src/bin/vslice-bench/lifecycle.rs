// SPDX-License-Identifier: GPL-2.0
//! P1 (create + remove through sysfs), P4 (unbind with many instances) and
//! P5 (scale: most instances, creation time as the parent fills, kernel
//! memory per instance). Every sysfs error here is a bench failure except
//! the ones a storm racing an unbind must see (`STORM_CLEAN`).

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use vslice::sysfs;
use vslice_tests::health::{error_name, DriverStats};

use crate::table::{ms, us, Goal, Results, Row, Series};

/// An mdev type to measure: vslice's or a peer's.
#[derive(Clone)]
pub struct Target {
    pub label: String,
    pub parent: String,
    pub ty: String,
}

/// The vslice type used for P1, P4 and P5: one unit, the smallest slice.
pub const UNIT: &str = "vslice-unit";
/// The peer the goals are set against (docs/benchmarks.md).
pub const MTTY: &str = "mtty-1";

/// Creates one instance of `t`; its UUID and the time taken (us).
fn create(t: &Target) -> io::Result<(String, f64)> {
    let u = sysfs::new_uuid()?;
    let t0 = Instant::now();
    sysfs::create_typed(&t.parent, &t.ty, &u)?;
    Ok((u, us(t0)))
}

fn remove(u: &str) -> io::Result<f64> {
    let t0 = Instant::now();
    sysfs::remove(u)?;
    Ok(us(t0))
}

/// Creates `n` instances of `t`.
fn fill(t: &Target, n: u32) -> io::Result<Vec<String>> {
    (0..n).map(|_| create(t).map(|(u, _)| u)).collect()
}

fn remove_all(uuids: &[String]) -> io::Result<()> {
    uuids.iter().try_for_each(|u| sysfs::remove(u))
}

/// P1: latency of create, remove and the pair, then the rate of pairs
/// with `threads` parallel creators (each on its own UUIDs).
pub fn p1(
    targets: &[Target],
    warm: usize,
    reps: usize,
    threads: usize,
    secs: f64,
    res: &mut Results,
) -> io::Result<()> {
    let (mut c, mut r, mut pair, mut rate) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in targets {
        println!(
            "P1: {} create/remove x{reps} (+{warm} warm-up), {threads} creators x {secs} s",
            t.label
        );
        let (mut cv, mut rv, mut pv) = (Vec::new(), Vec::new(), Vec::new());
        let mut before = None;
        for i in 0..warm + reps {
            if i == warm && t.label == UNIT {
                before = Some(DriverStats::read()?);
            }
            let (u, ct) = create(t)?;
            let rt = remove(&u)?;
            if i >= warm {
                cv.push(ct);
                rv.push(rt);
                pv.push(ct + rt);
            }
        }
        if let Some(b) = before {
            phases(&b, &DriverStats::read()?, &cv, &rv, res);
        }
        let mut rates = Vec::new();
        for _ in 0..reps.div_ceil(10).max(2) {
            rates.push(parallel_rate(t, threads, secs)?);
        }
        c.push(Series::new(&t.label, cv));
        r.push(Series::new(&t.label, rv));
        pair.push(Series::new(&t.label, pv));
        rate.push(Series::new(&t.label, rates));
    }
    res.push(Row::new("P1", "create + remove latency (sysfs)", "us", pair).goal(MTTY, Goal::AtMost(1.5)));
    res.push(Row::new("P1", "create latency", "us", c));
    res.push(Row::new("P1", "remove latency", "us", r));
    res.push(
        Row::new(
            "P1",
            format!("create + remove rate, {threads} parallel creators"),
            "pairs/s",
            rate,
        )
        .goal(MTTY, Goal::AtLeast(0.7)),
    );
    Ok(())
}

/// Where a vslice create's and remove's time goes, per operation (us),
/// from the driver's counters over the measured pairs (`cv`, `rv`: their
/// latencies): the driver's own part (of a create: the wait for units
/// still being scrubbed apart), what the sysfs write costs beyond the
/// driver (the mdev and VFIO cores), and the background scrub of each
/// released unit (release to zeroed, off both paths).
fn phases(b: &DriverStats, a: &DriverStats, cv: &[f64], rv: &[f64], res: &mut Results) {
    let k = a.creates - b.creates;
    let kr = a.removes - b.removes;
    if k != cv.len() as u64 || kr != rv.len() as u64 || cv.is_empty() {
        res.problems.push(format!(
            "P1: the driver counted {k} creates and {kr} removes, the bench made {}",
            cv.len()
        ));
        return;
    }
    let per = |x: u64, y: u64, n: u64| (x - y) as f64 / n.max(1) as f64 / 1e3;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let create = per(a.create_ns, b.create_ns, k);
    let wait = per(a.create_wait_ns, b.create_wait_ns, k);
    let remove = per(a.remove_ns, b.remove_ns, kr);
    res.fact("p1.create_us.driver", create - wait);
    res.fact("p1.create_us.driver_scrub_wait", wait);
    res.fact("p1.create_us.outside_driver", mean(cv) - create);
    res.fact("p1.remove_us.driver", remove);
    res.fact("p1.remove_us.outside_driver", mean(rv) - remove);
    res.fact(
        "p1.scrub_us.background",
        per(a.scrub_ns, b.scrub_ns, a.scrubs - b.scrubs),
    );
}

fn parallel_rate(t: &Target, threads: usize, secs: f64) -> io::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let t = t.clone();
            thread::spawn(move || -> io::Result<u64> {
                let mut n = 0;
                while Instant::now() < deadline {
                    let (u, _) = create(&t)?;
                    sysfs::remove(&u)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| io::Error::other("creator thread panicked"))??;
    }
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}

/// Errors a create/remove storm may see while the parent is unbound
/// under it.
const STORM_CLEAN: &[&str] = &["ENOSPC", "ENODEV", "ENOENT", "EBUSY", "EAGAIN", "ENXIO"];

/// Two threads creating and removing units on `parent` until stopped;
/// returns (pairs done, errors outside `STORM_CLEAN`).
fn storm(parent: &str, stop: Arc<AtomicBool>) -> Vec<thread::JoinHandle<(u64, Vec<String>)>> {
    (0..2)
        .map(|_| {
            let t = Target {
                label: String::new(),
                parent: parent.to_string(),
                ty: UNIT.to_string(),
            };
            let stop = stop.clone();
            thread::spawn(move || {
                let (mut n, mut bad) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let r = create(&t).and_then(|(u, _)| sysfs::remove(&u));
                    match r {
                        Ok(()) => n += 1,
                        Err(e) if STORM_CLEAN.contains(&error_name(&e).as_str()) => {
                            thread::sleep(Duration::from_millis(1))
                        }
                        Err(e) => bad.push(e.to_string()),
                    }
                }
                (n, bad)
            })
        })
        .collect()
}

/// Binds `bdf` again and waits until it is a parent with `units` free.
fn bind_back(bdf: &str, units: u32) -> io::Result<()> {
    sysfs::bind(bdf)?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if sysfs::is_parent(bdf) && sysfs::available(bdf, UNIT).ok() == Some(units) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(io::Error::other(format!(
        "{bdf}: not back as a parent with {units} free units after bind"
    )))
}

/// P4: unbinding `bdf` with `n` instances, idle and under a storm, against
/// removing the same `n` one by one. `units`: the parent's capacity.
pub fn p4(bdf: &str, units: u32, sizes: &[u32], reps: usize, res: &mut Results) -> io::Result<()> {
    let t = Target {
        label: "vslice".into(),
        parent: bdf.into(),
        ty: UNIT.into(),
    };
    for &n in sizes {
        println!("P4: {n} instances on {bdf}: one-by-one removal, unbind idle, unbind under a storm, x{reps}");
        let (mut one, mut idle, mut busy, mut empty) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut storm_pairs = 0;
        for _ in 0..reps {
            // The fixed cost: an unbind with nothing to remove.
            let t0 = Instant::now();
            sysfs::unbind(bdf)?;
            empty.push(ms(t0));
            bind_back(bdf, units)?;

            let uu = fill(&t, n)?;
            let t0 = Instant::now();
            remove_all(&uu)?;
            one.push(ms(t0));

            fill(&t, n)?;
            let t0 = Instant::now();
            sysfs::unbind(bdf)?;
            idle.push(ms(t0));
            bind_back(bdf, units)?;

            fill(&t, n)?;
            let stop = Arc::new(AtomicBool::new(false));
            let h = storm(bdf, stop.clone());
            thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            let r = sysfs::unbind(bdf);
            busy.push(ms(t0));
            stop.store(true, Ordering::Relaxed);
            for h in h {
                let (k, bad) = h.join().map_err(|_| io::Error::other("storm thread panicked"))?;
                storm_pairs += k;
                if let Some(b) = bad.first() {
                    res.problems
                        .push(format!("P4 storm: {} unexpected error(s), first: {b}", bad.len()));
                }
            }
            r?;
            bind_back(bdf, units)?;
            if sysfs::instances().iter().any(|(_, p, _)| p == bdf) {
                res.problems
                    .push(format!("P4: instances of {bdf} left after unbind and bind"));
            }
        }
        res.fact(format!("p4.storm_pairs_completed.n{n}"), storm_pairs as f64);
        let x = f64::from(n);
        let med = |v: &[f64]| vslice_tests::measure::percentile(v, 50.0);
        res.point("p4.unbind_idle", "instances", "ms", x, med(&idle));
        res.point("p4.unbind_storm", "instances", "ms", x, med(&busy));
        res.point("p4.remove_one_by_one", "instances", "ms", x, med(&one));
        res.push(Row::new(
            "P4",
            format!("unbind with {n} instances, idle, vs removing them one by one"),
            "ms",
            vec![
                Series::new("unbind (idle)", idle),
                Series::new("remove one by one", one.clone()),
                Series::new("unbind with no instance", empty.clone()),
            ],
        ));
        res.push(Row::new(
            "P4",
            format!("unbind with {n} instances under a create/remove storm, vs one by one"),
            "ms",
            vec![
                Series::new("unbind (storm)", busy),
                Series::new("remove one by one", one),
                Series::new("unbind with no instance", empty),
            ],
        ));
    }
    Ok(())
}

/// Kernel memory in KiB that instances can take: objects in use in every
/// slab cache (active objects x object size, /proc/slabinfo: objects, not
/// pages, since slab pages freed by earlier runs are reused), plus
/// vmalloc, per-cpu, stacks and page tables (/proc/meminfo). Every cache
/// is shrunk first: SLUB counts free objects cached per CPU as active.
/// Large kmallocs (over 8 KiB) come from the page allocator and are not
/// seen.
fn kmem_kib() -> io::Result<BTreeMap<String, f64>> {
    let caches = std::fs::read_dir("/sys/kernel/slab").map_err(|e| vslice::context(e, "/sys/kernel/slab"))?;
    for c in caches.flatten() {
        // Aliases (symlinks) share a cache; a refused write is harmless.
        let _ = vslice::sysfs::write_attr(&c.path().join("shrink"), "1");
    }
    let bad = |what: &str, l: &str| io::Error::other(format!("{what}: cannot parse '{l}'"));
    let slab = std::fs::read_to_string("/proc/slabinfo").map_err(|e| vslice::context(e, "/proc/slabinfo"))?;
    let mut kib = BTreeMap::new();
    for l in slab.lines().skip(2) {
        let w: Vec<&str> = l.split_whitespace().collect();
        let (Some(active), Some(size)) = (w.get(1), w.get(3)) else {
            return Err(bad("slabinfo", l));
        };
        let n = |v: &str| v.parse::<f64>().map_err(|_| bad("slabinfo", l));
        *kib.entry(w[0].to_string()).or_default() += n(active)? * n(size)? / 1024.0;
    }
    let s = std::fs::read_to_string("/proc/meminfo")?;
    let want = ["VmallocUsed:", "Percpu:", "KernelStack:", "PageTables:"];
    let mut seen = 0;
    for l in s.lines() {
        let mut w = l.split_whitespace();
        if let (Some(k), Some(v)) = (w.next(), w.next()) {
            if want.contains(&k) {
                kib.insert(
                    k.trim_end_matches(':').to_string(),
                    v.parse::<f64>().map_err(|_| bad("meminfo", l))?,
                );
                seen += 1;
            }
        }
    }
    if seen != want.len() {
        return Err(io::Error::other("meminfo lacks a kernel memory field"));
    }
    Ok(kib)
}

/// Fills `t` until it refuses (ENOSPC, EUSERS) or `cap`; returns the
/// create times and the KiB of kernel memory per instance, by source (slab
/// cache or meminfo field). The instances are removed again.
fn fill_up(t: &Target, cap: u32) -> io::Result<(Vec<f64>, BTreeMap<String, f64>, f64)> {
    thread::sleep(Duration::from_millis(200));
    let before = kmem_kib()?;
    let own0 = DriverStats::read()?.driver_bytes;
    let (mut uu, mut lat) = (Vec::new(), Vec::new());
    let end = loop {
        if uu.len() as u32 >= cap {
            break Ok(());
        }
        match create(t) {
            Ok((u, l)) => {
                uu.push(u);
                lat.push(l);
            }
            // ENOSPC: the driver's own accounting; EUSERS: the mdev
            // core's max_instances (mdpy).
            Err(e) if ["ENOSPC", "EUSERS"].contains(&error_name(&e).as_str()) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    thread::sleep(Duration::from_millis(200));
    let after = kmem_kib();
    let own = DriverStats::read()?.driver_bytes;
    remove_all(&uu)?;
    end?;
    let n = uu.len().max(1) as f64;
    let own = own.saturating_sub(own0) as f64 / n / 1024.0;
    let per = after?
        .into_iter()
        .map(|(k, v)| {
            let d = (v - before.get(&k).copied().unwrap_or(0.0)) / n;
            (k, d)
        })
        .filter(|(_, d)| *d != 0.0)
        .collect();
    Ok((lat, per, own))
}

/// P5: how many instances one parent takes, whether creating stays flat
/// as it fills, and kernel memory per instance (vslice and the peers).
pub fn p5(vslice: &Target, peers: &[Target], reps: usize, res: &mut Results) -> io::Result<()> {
    let mut by_index: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut mem = Vec::new();
    let mut by_source = BTreeMap::new();
    let mut max = 0;
    println!("P5: fill {} until it refuses, x{reps}", vslice.parent);
    let mut own = Vec::new();
    for _ in 0..reps {
        let (lat, per, o) = fill_up(vslice, u32::MAX)?;
        max = lat.len();
        mem.push(per.values().sum());
        own.push(o);
        by_source = per;
        for (i, l) in lat.into_iter().enumerate() {
            by_index.entry(i).or_default().push(l);
        }
    }
    // Where an instance's memory goes (the last fill): the largest sources.
    let mut top: Vec<(String, f64)> = by_source.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (k, v) in top.iter().take(8) {
        res.fact(
            format!("p5.{}_kib_per_instance.{k}", vslice.label),
            (v * 100.0).round() / 100.0,
        );
    }
    // The driver's own share (its allocations, as it counts them) and the
    // rest: the kernel's device model (mdev, VFIO device, sysfs).
    let own = vslice_tests::measure::percentile(&own, 50.0);
    let total = vslice_tests::measure::percentile(&mem, 50.0);
    res.fact(format!("p5.{}_kib_per_instance_share.driver", vslice.label), own);
    res.fact(
        format!("p5.{}_kib_per_instance_share.device_model", vslice.label),
        total - own,
    );
    res.fact(format!("p5.max_instances.{}", vslice.label), max as f64);
    if max == 0 {
        return Err(io::Error::other(format!(
            "P5: {} took no instance at all",
            vslice.parent
        )));
    }
    for (i, v) in &by_index {
        res.point(
            "p5.create_latency",
            "instances",
            "us",
            (i + 1) as f64,
            vslice_tests::measure::percentile(v, 50.0),
        );
    }
    let k = (max / 8).max(1);
    let pool =
        |r: std::ops::Range<usize>| -> Vec<f64> { r.filter_map(|i| by_index.get(&i)).flatten().copied().collect() };
    for b in (0..max).step_by(k) {
        let v = pool(b..(b + k).min(max));
        res.fact(
            format!("p5.create_us.instances_{:02}_to_{:02}", b + 1, (b + k).min(max)),
            vslice_tests::measure::percentile(&v, 50.0),
        );
    }
    res.push(
        Row::new(
            "P5",
            format!("create latency as the parent fills: the last {k} of {max} vs the first {k}"),
            "us",
            vec![
                Series::new(
                    format!("{} #{}..{}", vslice.label, max - k + 1, max),
                    pool(max - k..max),
                ),
                Series::new(format!("{} #1..{k}", vslice.label), pool(0..k)),
            ],
        )
        .goal(&format!("{} #1..{k}", vslice.label), Goal::AtMost(1.2)),
    );
    let mut series = vec![Series::new(&vslice.label, mem)];
    for p in peers {
        println!("P5: fill {} until it refuses, x{reps}", p.label);
        let mut v = Vec::new();
        let mut n = 0;
        for _ in 0..reps {
            let (lat, per, _) = fill_up(p, 64)?;
            n = lat.len();
            v.push(per.values().sum());
        }
        res.fact(format!("p5.max_instances.{}", p.label), n as f64);
        series.push(Series::new(&p.label, v));
    }
    res.push(Row::new("P5", "kernel memory per instance", "KiB", series).goal(MTTY, Goal::AtMost(1.0)));
    Ok(())
}
