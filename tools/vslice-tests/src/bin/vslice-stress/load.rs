// SPDX-License-Identifier: GPL-2.0
//! The load scenario: on every parent at once, creator threads create and
//! remove instances of mixed types and user threads open instances, run
//! verified jobs (DMA through the instance's IOAS among them, with the
//! buffer unmapped and mapped again between rounds) and register
//! accesses, while the main thread removes the
//! parents (`echo 1 > .../remove`, every fourth cycle a driver unbind),
//! then rescans or rebinds them. After every cycle: no splat, no instance
//! left in sysfs or alive in the driver, every parent back with all its
//! capacity, no tenant page left pinned, no unbind slower than its bound,
//! only clean errors.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use argh::FromArgs;
use vslice::job::{self, DATA_BASE};
use vslice::regs::*;
use vslice::sysfs;
use vslice_tests::health::{DriverStats, Kmsg};

use crate::report::{Report, Rng, Tally, CLEAN};

/// Every parent removed and brought back, cycle after cycle, under
/// create/remove/job load.
#[derive(FromArgs)]
#[argh(subcommand, name = "load")]
pub struct Opts {
    /// parent removal cycles (default 20)
    #[argh(option, arg_name = "N", default = "20")]
    pub cycles: u64,
    /// load before each removal, in ms (default 1500)
    #[argh(option, arg_name = "MS", default = "1500")]
    pub run_ms: u64,
    /// creator threads per parent (default 2)
    #[argh(option, arg_name = "N", default = "2")]
    pub creators: u32,
    /// user threads per parent (default 2)
    #[argh(option, arg_name = "N", default = "2")]
    pub users: u32,
    /// seed of the workers' choices (default 1)
    #[argh(option, arg_name = "S", default = "1")]
    pub seed: u64,
    /// slowest acceptable unbind, in ms (default 30000)
    #[argh(option, arg_name = "MS", default = "30_000")]
    pub unbind_bound_ms: u64,
    /// kmemleak scan every N cycles (default 10)
    #[argh(option, arg_name = "N", default = "10")]
    pub leak_every: u64,
    /// bound vslice parents the scenario needs (default 2)
    #[argh(option, arg_name = "N", default = "2")]
    pub parents: usize,
    /// start no cycle after this many seconds (default 0: no limit)
    #[argh(option, arg_name = "S", default = "0")]
    pub max_seconds: u64,
}

const TYPES: &[&str] = &["eighth", "quarter", "half", "full", "unit"];

/// Pause after a failed create: while the parents are away, workers
/// retrying at full speed only slow the removal down (2 vCPUs under TCG).
const ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// What the main thread tells the workers.
#[derive(Default)]
struct Flags {
    /// Stop after the current operation.
    stop: AtomicBool,
    /// The parents' removal has started: from now on errors are expected.
    removing: AtomicBool,
    /// Successful creates and verified job rounds this cycle (progress).
    creates: AtomicU64,
    rounds: AtomicU64,
}

/// Longest a cycle's load may take to make progress (one create, one
/// verified round) before its removal starts anyway and the cycle fails:
/// a stall, not slowness (a busy host slows TCG guests several times).
const PROGRESS_BOUND: Duration = Duration::from_secs(60);

/// Counts a failed `op`. Before the removal starts nothing may fail but a
/// create on a full parent: "clean" errors then are errors all the same.
fn failed(t: &mut Tally, op: &str, e: &io::Error, f: &Flags) -> String {
    let name = t.err(op, e);
    let expected = f.removing.load(Ordering::SeqCst) || (op == "create" && name == "ENOSPC");
    if !expected && CLEAN.contains(&name.as_str()) {
        t.unclean(format!("{op}: {e} ({name}) before any removal started"));
    }
    name
}

/// Creates and removes instances of random types until `stop`; returns
/// the instances it still had (which the parent's removal must take).
fn creator(parent: String, seed: u64, f: Arc<Flags>) -> (Tally, Vec<String>) {
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    let mut mine: Vec<String> = Vec::new();
    while !f.stop.load(Ordering::Relaxed) {
        if mine.is_empty() || (mine.len() < 3 && rng.chance(55)) {
            let u = match sysfs::new_uuid() {
                Ok(u) => u,
                Err(e) => {
                    failed(&mut t, "uuid", &e, &f);
                    continue;
                }
            };
            let ty = *rng.pick::<&str>(TYPES);
            match sysfs::create(&parent, ty, &u) {
                Ok(()) => {
                    t.ok("create");
                    f.creates.fetch_add(1, Ordering::Relaxed);
                    mine.push(u);
                }
                Err(e) => {
                    failed(&mut t, "create", &e, &f);
                    thread::sleep(ERROR_BACKOFF);
                }
            }
        } else {
            let u = mine.swap_remove(rng.below(mine.len() as u64) as usize);
            match sysfs::remove(&u) {
                Ok(()) => t.ok("remove"),
                Err(e) => {
                    failed(&mut t, "remove", &e, &f);
                }
            }
        }
    }
    (t, mine)
}

/// A new tenant's VRAM must read zero: samples the data area.
fn stale_vram(inst: &job::Instance) -> Option<u64> {
    let step = (inst.slice - DATA_BASE) / 8;
    let mut buf = vec![0u8; 4096];
    for k in 0..8 {
        let at = DATA_BASE + k * step;
        inst.vram.read_bytes(at as usize, &mut buf);
        if buf.iter().any(|&b| b != 0) {
            return Some(at);
        }
    }
    None
}

/// Bytes of one DMA round.
const DMA_LEN: u32 = 64 << 10;

/// One tenant: open, check, jobs (VRAM only, or DMA) and register
/// accesses until `stop`, REQ or an error.
fn tenant(u: &str, rng: &mut Rng, t: &mut Tally, f: &Flags) -> io::Result<()> {
    let mut inst = job::Instance::open(u)?;
    t.ok("open");
    if let Some(at) = stale_vram(&inst) {
        t.unclean(format!("{u}: a new tenant reads non-zero VRAM at {at:#x}"));
    }
    let buf = job::dma_buffer(&inst, DMA_LEN)?;
    t.ok("dma_map");
    let rounds = 1 + rng.below(6);
    for _ in 0..rounds {
        if f.stop.load(Ordering::Relaxed) && rng.chance(50) {
            break;
        }
        if inst.requested()? {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "REQ"));
        }
        let c = rng.below(u64::from(inst.contexts)) as u32;
        if rng.chance(40) {
            job::dma_round(&mut inst, c, DMA_LEN, rng.next() as u32, &buf)?;
            t.ok("dma_round");
        } else {
            let len = 4096 << rng.below(5);
            job::round(&mut inst, c, len as u32, rng.next() as u32)?;
            t.ok("round");
        }
        if rng.chance(20) {
            // Map/unmap churn: the device must lose the pages and find
            // them again.
            inst.dev.unmap_dma(job::DMA_IOVA, buf.len())?;
            inst.dev.map_dma(job::DMA_IOVA, &buf)?;
            t.ok("dma_remap");
        }
        f.rounds.fetch_add(1, Ordering::Relaxed);
        // Shadowed, forwarded and refused registers.
        let v = rng.next() as u32;
        inst.dev.set_reg(REG_SCRATCH, v)?;
        let back = inst.dev.reg(REG_SCRATCH)?;
        if back != v {
            t.unclean(format!("{u}: scratch wrote {v:#x}, read {back:#x}"));
        }
        inst.dev.reg(ctx_window(c) + CTX_COMPLETED)?;
        inst.dev.set_reg(REG_CONTROL, 0)?;
        t.ok("registers");
    }
    Ok(())
}

/// Creates an instance, uses it, removes it, until `stop`.
fn user(parent: String, seed: u64, f: Arc<Flags>) -> (Tally, Vec<String>) {
    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    let mut left = Vec::new();
    while !f.stop.load(Ordering::Relaxed) {
        let u = match sysfs::new_uuid() {
            Ok(u) => u,
            Err(e) => {
                failed(&mut t, "uuid", &e, &f);
                continue;
            }
        };
        let ty = *rng.pick::<&str>(&TYPES[..2]);
        if let Err(e) = sysfs::create(&parent, ty, &u) {
            failed(&mut t, "create", &e, &f);
            thread::sleep(ERROR_BACKOFF);
            continue;
        }
        t.ok("create");
        f.creates.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = tenant(&u, &mut rng, &mut t, &f) {
            failed(&mut t, "use", &e, &f);
        }
        match sysfs::remove(&u) {
            Ok(()) => t.ok("remove"),
            Err(e) => {
                if failed(&mut t, "remove", &e, &f) != "ENOENT" {
                    left.push(u);
                }
            }
        }
    }
    (t, left)
}

/// Vslice instances sysfs shows.
fn present() -> usize {
    sysfs::instances().len()
}

/// Every type's available_instances, per parent.
fn capacity(p: &str) -> BTreeMap<String, u32> {
    sysfs::types(p).into_iter().map(|t| (t.name, t.available)).collect()
}

fn wait_until(ms: u64, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() > Duration::from_millis(ms) {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn run(o: &Opts, r: &mut Report) {
    let mut kmsg = match Kmsg::open() {
        Ok(k) => k,
        Err(e) => return r.fail(format!("{e}")),
    };
    let parents: Vec<String> = sysfs::pci_devices()
        .into_iter()
        .filter(|b| sysfs::is_parent(b))
        .collect();
    if parents.len() < o.parents {
        return r.fail(format!(
            "{} bound vslice parent(s), the scenario needs {}",
            parents.len(),
            o.parents
        ));
    }
    let full: BTreeMap<String, BTreeMap<String, u32>> = parents.iter().map(|p| (p.clone(), capacity(p))).collect();
    if present() != 0 {
        return r.fail(format!("{} instance(s) exist before the first cycle", present()));
    }
    let mut seeds = Rng::new(o.seed);
    let mut made = 0u64;
    let mut created = 0u64;
    let t_start = Instant::now();
    for cycle in 0..o.cycles {
        if o.max_seconds > 0 && t_start.elapsed().as_secs() >= o.max_seconds {
            println!("load: time limit of {} s reached after {cycle} cycles", o.max_seconds);
            r.extra.insert("stopped_by_time_limit".into(), 1);
            break;
        }
        let before = match DriverStats::read() {
            Ok(s) => s,
            Err(e) => return r.fail(format!("{e}")),
        };
        let flags = Arc::new(Flags::default());
        let mut workers = Vec::new();
        for p in &parents {
            for _ in 0..o.creators {
                let (p, s, st) = (p.clone(), seeds.next(), flags.clone());
                workers.push(thread::spawn(move || creator(p, s, st)));
            }
            for _ in 0..o.users {
                let (p, s, st) = (p.clone(), seeds.next(), flags.clone());
                workers.push(thread::spawn(move || user(p, s, st)));
            }
        }
        thread::sleep(Duration::from_millis(o.run_ms / 2 + seeds.below(o.run_ms.max(1))));
        // Load until this cycle made progress, so that a slow (shared,
        // TCG) machine stretches cycles instead of failing them.
        let progressed = || flags.creates.load(Ordering::Relaxed) > 0 && flags.rounds.load(Ordering::Relaxed) > 0;
        if !progressed() {
            *r.extra.entry("cycles_stretched_for_progress".into()).or_default() += 1;
            wait_until(PROGRESS_BOUND.as_millis() as u64, progressed);
        }
        // Every fourth cycle unbinds the driver instead of removing the
        // PCI device: both paths run the same parent removal.
        let pci_remove = cycle % 4 != 3;
        flags.removing.store(true, Ordering::SeqCst);
        let removers: Vec<_> = parents
            .iter()
            .map(|p| {
                let p = p.clone();
                thread::spawn(move || {
                    let t0 = Instant::now();
                    let res = if pci_remove {
                        sysfs::pci_remove(&p)
                    } else {
                        sysfs::unbind(&p)
                    };
                    (p, res, t0.elapsed().as_secs_f64() * 1000.0)
                })
            })
            .collect();
        let mut fails = Vec::new();
        for h in removers {
            match h.join() {
                Ok((p, res, ms)) => {
                    r.unbind_ms.push(ms);
                    if let Err(e) = res {
                        fails.push(format!("cycle {cycle}: removing {p}: {e}"));
                    }
                    if ms > o.unbind_bound_ms as f64 {
                        fails.push(format!(
                            "cycle {cycle}: removing {p} took {ms:.0} ms (bound {} ms)",
                            o.unbind_bound_ms
                        ));
                    }
                }
                Err(_) => fails.push(format!("cycle {cycle}: a remover thread panicked")),
            }
        }
        flags.stop.store(true, Ordering::Relaxed);
        let rounds_before = r.tally.ops.get("round").copied().unwrap_or(0);
        let created_before = created;
        let mut left = Vec::new();
        for h in workers {
            match h.join() {
                Ok((t, l)) => {
                    created += t.ops.get("create").copied().unwrap_or(0)
                        - t.errors
                            .iter()
                            .filter(|(k, _)| k.starts_with("create:"))
                            .map(|(_, v)| v)
                            .sum::<u64>();
                    r.tally.merge(t);
                    left.extend(l);
                }
                Err(_) => fails.push(format!("cycle {cycle}: a worker thread panicked")),
            }
        }
        // Every cycle must have done real work before the removal.
        if r.tally.ops.get("round").copied().unwrap_or(0) == rounds_before {
            fails.push(format!("cycle {cycle}: no verified job round ran"));
        }
        if created == created_before {
            fails.push(format!("cycle {cycle}: no instance was created"));
        }
        // The parents are gone: so are all their instances.
        for p in &parents {
            if sysfs::is_parent(p) {
                fails.push(format!("cycle {cycle}: {p} is still a parent after its removal"));
            }
        }
        if present() != 0 {
            fails.push(format!(
                "cycle {cycle}: {} instance(s) left after the parents' removal",
                present()
            ));
        }
        if let Some(u) = left
            .iter()
            .find(|u| std::path::Path::new("/sys/bus/mdev/devices").join(u).exists())
        {
            fails.push(format!("cycle {cycle}: instance {u} outlived its parent"));
        }
        let mut now = None;
        let gone = wait_until(2000, || match DriverStats::read() {
            Ok(s) => {
                now = Some(s);
                s.instances_alive() == 0 && s.parents_alive() == 0 && s.pinned_pages == 0
            }
            Err(_) => false,
        });
        match now {
            Some(n) if !gone => fails.push(format!(
                "cycle {cycle}: the driver still has {} instance(s), {} parent(s) and {} pinned page(s) after removal",
                n.instances_alive(),
                n.parents_alive(),
                n.pinned_pages
            )),
            Some(n) => made += n.instances_made.saturating_sub(before.instances_made),
            None => fails.push(format!("cycle {cycle}: debugfs vslice/stats unreadable")),
        }
        // Bring the parents back.
        let t_back = Instant::now();
        let back = if pci_remove {
            sysfs::pci_rescan()
        } else {
            parents.iter().try_for_each(|p| sysfs::bind(p))
        };
        if let Err(e) = back {
            fails.push(format!(
                "cycle {cycle}: {} failed: {e}",
                if pci_remove { "rescan" } else { "bind" }
            ));
        }
        let restored = wait_until(20_000, || {
            parents.iter().all(|p| sysfs::is_parent(p) && capacity(p) == full[p])
        });
        let back_ms = t_back.elapsed().as_millis() as u64;
        let e = r.extra.entry("max_rebind_ms".into()).or_default();
        *e = (*e).max(back_ms);
        if !restored {
            let caps: Vec<String> = parents.iter().map(|p| format!("{p}: {:?}", capacity(p))).collect();
            fails.push(format!(
                "cycle {cycle}: parents not back with full capacity: {}",
                caps.join("; ")
            ));
        }
        match DriverStats::read() {
            Ok(s) if s.parents_alive() == parents.len() as u64 && s.instances_alive() == 0 => {}
            Ok(s) => fails.push(format!("cycle {cycle}: after rebind the driver counts {s:?}")),
            Err(e) => fails.push(format!("cycle {cycle}: {e}")),
        }
        let splats = kmsg.new_splats();
        if !splats.is_empty() {
            fails.push(format!("cycle {cycle}: kernel splat: {}", splats[0]));
            r.splats.extend(splats);
        }
        if o.leak_every > 0 && (cycle + 1) % o.leak_every == 0 {
            r.leak_scan();
        }
        r.cycles = cycle + 1;
        let ms = r.unbind_ms[r.unbind_ms.len() - parents.len()..]
            .iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>();
        println!(
            "cycle {}/{} {}: unbind {} ms, back in {} ms; {} ops so far, {} unclean",
            cycle + 1,
            o.cycles,
            if pci_remove { "pci-remove+rescan" } else { "unbind+bind" },
            ms.join("/"),
            back_ms,
            r.tally.ops.values().sum::<u64>(),
            r.tally.unclean_count
        );
        let stop_now = !fails.is_empty() || r.tally.unclean_count > 0 || !r.leaks.is_empty();
        for f in fails {
            r.fail(f);
        }
        if stop_now {
            break;
        }
    }
    // Leaks show only once an object is older than kmemleak's 5 s.
    thread::sleep(Duration::from_secs(6));
    r.leak_scan();
    r.splats.extend(kmsg.new_splats());
    // Every create a client saw succeed made one driver instance (more
    // only if a creation failed after the driver made its object).
    if made < created {
        r.fail(format!(
            "clients saw {created} creates succeed, the driver made {made} instances"
        ));
    }
    r.extra.insert("instances_created".into(), created);
    r.extra.insert("driver_instances_made".into(), made);
    r.extra.insert("parents".into(), parents.len() as u64);
}
