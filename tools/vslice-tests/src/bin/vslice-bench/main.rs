// SPDX-License-Identifier: GPL-2.0
//! `vslice-bench`: the guest half of `make bench` (docs/benchmarks.md);
//! `vslice-bench --help` lists the options.
//!
//! Measures vslice against the in-tree mdev samples loaded in the same
//! guest (mtty, mdpy, mbochs), prints a table (median, p10, p90, ratio
//! subject / peer) and writes it as JSON. Needs one bound vslice parent
//! with no instances; P4 unbinds and rebinds it, so it runs last.
//! `--smoke` runs every measurement at a token size (make check).
//! Exits 1 if anything failed or a series came out empty.

mod access;
mod dma;
mod irq;
mod lifecycle;
mod migrate;
mod table;

use std::collections::BTreeMap;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use lifecycle::{Target, UNIT};
use table::Results;
use vslice::job::Instance;
use vslice::sysfs;
use vslice::vfio::{self, Device, Mmap};
use vslice_tests::measure::List;

/// vslice against the in-tree mdev samples (mtty, mdpy, mbochs) in the
/// same guest: P1-P8 of docs/benchmarks.md, as a table and JSON.
#[derive(FromArgs)]
struct Cli {
    /// repetitions of each series (default 50, with --smoke 3)
    #[argh(option, arg_name = "N")]
    reps: Option<usize>,
    /// every measurement at a token size (make check)
    #[argh(switch)]
    smoke: bool,
    /// write the results as JSON to FILE
    #[argh(option, arg_name = "FILE")]
    json: Option<String>,
    /// fail unless the parent has N units (default 255, with --smoke 0)
    #[argh(option, arg_name = "N")]
    need_units: Option<u32>,
    /// P4's instance counts (default 8,64,255, with --smoke 2,4)
    #[argh(option, arg_name = "A,B")]
    p4_sizes: Option<List<u32>>,
    /// only these measurements (default: all)
    #[argh(option, arg_name = "P1,P2,..")]
    only: Option<List<String>>,
}

struct Opts {
    reps: usize,
    smoke: bool,
    need_units: u32,
    p4_sizes: Vec<u32>,
    only: Vec<String>,
}

impl Opts {
    fn wants(&self, p: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == p)
    }
}

/// Instances created for a measurement; removed when dropped.
struct Created(Vec<String>);

impl Created {
    fn make(&mut self, t: &Target) -> io::Result<String> {
        let u = sysfs::new_uuid()?;
        sysfs::create_typed(&t.parent, &t.ty, &u)?;
        self.0.push(u.clone());
        Ok(u)
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for u in &self.0 {
            if let Err(e) = sysfs::remove(u) {
                eprintln!("vslice-bench: cleanup: {e}");
            }
        }
    }
}

fn peer(parent: &str, ty: &str) -> io::Result<Target> {
    let types: Vec<String> = std::fs::read_dir(format!("/sys/class/mdev_bus/{parent}/mdev_supported_types"))
        .map_err(|e| vslice::context(e, format!("mdev parent {parent} (is its module loaded?)")))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !types.iter().any(|t| t == ty) {
        return Err(io::Error::other(format!(
            "{parent} has no type {ty} (it has {types:?})"
        )));
    }
    Ok(Target {
        label: ty.into(),
        parent: parent.into(),
        ty: ty.into(),
    })
}

/// Maps all of region `index` at the offset the driver reports (mbochs'
/// offsets are its own, not VFIO-PCI's index << 40).
fn map_region(d: &Device, index: u32) -> io::Result<Mmap> {
    let r = d.region_info(index)?;
    if r.flags & vfio::REGION_MMAP == 0 {
        return Err(io::Error::other(format!(
            "region {index} is not mmap-able (flags {:#x})",
            r.flags
        )));
    }
    Mmap::new(d.fd(), r.offset, r.size as usize, libc::MAP_SHARED)
}

fn run(o: &Opts, res: &mut Results, meta: &mut BTreeMap<String, String>) -> io::Result<()> {
    let bdf = sysfs::pci_devices()
        .into_iter()
        .find(|b| sysfs::is_parent(b))
        .ok_or_else(|| io::Error::other("no bound vslice parent"))?;
    if sysfs::instances().iter().any(|(_, p, _)| *p == bdf) {
        return Err(io::Error::other(format!(
            "{bdf} has instances already: the bench needs it empty"
        )));
    }
    let units = sysfs::available(&bdf, UNIT)?;
    meta.insert("parent".into(), bdf.clone());
    meta.insert("units".into(), units.to_string());
    if units < o.need_units {
        return Err(io::Error::other(format!(
            "{bdf} has {units} units, the bench needs {} (hw-sim --contexts {} --vram-mib 1024)",
            o.need_units, o.need_units
        )));
    }
    let vs = Target {
        label: UNIT.into(),
        parent: bdf.clone(),
        ty: UNIT.into(),
    };
    let mtty = peer("mtty", lifecycle::MTTY)?;
    let mdpy = peer("mdpy", "mdpy-vga")?;
    let mbochs = peer("mbochs", "mbochs-small")?;
    let reps = o.reps;
    let warm = (reps / 10).clamp(2, 10);

    if o.wants("P1") {
        let targets = [vs.clone(), mtty.clone(), mdpy.clone(), mbochs.clone()];
        let (threads, secs) = if o.smoke { (2, 0.3) } else { (4, 2.0) };
        lifecycle::p1(&targets, warm, reps, threads, secs, res)?;
    }
    if o.wants("P2") {
        let mut c = Created(Vec::new());
        let v = Device::open(&c.make(&vs)?)?;
        let m = Device::open(&c.make(&mtty)?)?;
        access::p2(&v, &m, reps, if o.smoke { 10 } else { 200 }, res)?;
    }
    if o.wants("P3") {
        let mut c = Created(Vec::new());
        let eighth = Target {
            ty: "vslice-eighth".into(),
            ..vs.clone()
        };
        let (mb_ty, len, budget) = if o.smoke {
            ("mbochs-small", 1 << 20, Duration::from_millis(200))
        } else {
            ("mbochs-medium", 16 << 20, Duration::from_secs(3))
        };
        let v = Device::open(&c.make(&eighth)?)?;
        let m = Device::open(&c.make(&peer("mbochs", mb_ty)?)?)?;
        let (vm, mm) = (map_region(&v, vfio::BAR2)?, map_region(&m, vfio::BAR0)?);
        access::p3(&vm, &mm, len, budget, 3, res)?;
    }
    if o.wants("P7") {
        // An eighth (32 MiB) holds the 4 MiB jobs whatever the unit size.
        let mut c = Created(Vec::new());
        let eighth = Target {
            ty: "vslice-eighth".into(),
            ..vs.clone()
        };
        let mut inst = Instance::open(&c.make(&eighth)?)?;
        let len = if o.smoke { 256 << 10 } else { 4 << 20 };
        dma::p7(&mut inst, &bdf, len, if o.smoke { 3 } else { 20 }, res)?;
    }
    if o.wants("P8") {
        let mut c = Created(Vec::new());
        let (a, b) = (Device::open(&c.make(&vs)?)?, Device::open(&c.make(&vs)?)?);
        let (x, y) = (Device::open(&c.make(&mtty)?)?, Device::open(&c.make(&mtty)?)?);
        migrate::p8([&a, &b], [&x, &y], if o.smoke { 1 } else { 6 }, res)?;
    }
    if o.wants("P6") {
        let mut c = Created(Vec::new());
        let mut inst = Instance::open(&c.make(&vs)?)?;
        irq::p6(&mut inst, warm, reps * 4, res)?;
    }
    if o.wants("P5") {
        let r = if o.smoke { 1 } else { 3 };
        lifecycle::p5(&vs, &[mtty, mdpy, mbochs], r, res)?;
        let max = res
            .facts
            .get(&format!("p5.max_instances.{UNIT}"))
            .copied()
            .unwrap_or(0.0);
        if max != f64::from(units) {
            res.problems.push(format!(
                "P5: {max} instances fit, but the parent said {units} were available"
            ));
        }
    }
    if o.wants("P4") {
        let sizes: Vec<u32> = o.p4_sizes.iter().map(|&n| n.min(units)).collect();
        lifecycle::p4(&bdf, units, &sizes, if o.smoke { 1 } else { 5 }, res)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli: Cli = vslice_args::parse();
    let smoke = cli.smoke;
    let o = Opts {
        reps: cli.reps.unwrap_or(if smoke { 3 } else { 50 }).max(1),
        smoke,
        need_units: cli.need_units.unwrap_or(if smoke { 0 } else { 255 }),
        p4_sizes: cli
            .p4_sizes
            .map_or(if smoke { vec![2, 4] } else { vec![8, 64, 255] }, |l| l.0),
        only: cli.only.map(|l| l.0).unwrap_or_default(),
    };
    let mut res = Results::default();
    let mut meta = BTreeMap::new();
    meta.insert(
        "kernel".to_string(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
    );
    meta.insert("reps".into(), o.reps.to_string());
    meta.insert("smoke".into(), o.smoke.to_string());
    if let Err(e) = run(&o, &mut res, &mut meta) {
        res.problems.push(format!("aborted: {e}"));
    }
    if !std::fs::read_dir("/sys/bus/mdev/devices").map_or(true, |mut d| d.next().is_none()) {
        res.problems.push("instances left behind after the bench".into());
    }
    print!("{}", res.table());
    for p in &res.problems {
        println!("problem: {p}");
    }
    if let Some(f) = &cli.json {
        if let Err(e) = std::fs::write(f, res.json(&meta) + "\n") {
            println!("problem: cannot write {f}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if res.problems.is_empty() {
        println!("bench: {} rows, passed", res.rows.len());
        ExitCode::SUCCESS
    } else {
        println!("bench: FAILED ({} problem(s))", res.problems.len());
        ExitCode::FAILURE
    }
}
