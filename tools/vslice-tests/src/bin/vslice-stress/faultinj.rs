// SPDX-License-Identifier: GPL-2.0
//! Kernel fault injection on the create, open and probe paths: for n = 1,
//! 2, ... the n-th allocation (slab or page, failslab/fail_page_alloc via
//! `/proc/thread-self/fail-nth`) made by this thread during the operation
//! fails, until an operation completes without reaching its n-th one. So
//! every allocation on the path fails once, in order, reproducibly
//! (`--stride S`: every S-th one, for the short run in `make check`).
//!
//! After each failed operation: a clean errno, nothing half-made (no
//! instance in sysfs or alive in the driver, capacity whole, a failed
//! probe leaves the device unbound and no parent alive), and at most a
//! few error lines in the log. At the end: kmemleak finds nothing and
//! the paths work again.
//!
//! DMA translation faults are answered by a kworker, which fail-nth (per
//! task) cannot reach: there, allocations fail at a probability, only
//! those made with the driver's code on the stack (the stack-trace
//! filter's require-start/require-end set to the module's text), while an
//! instance runs DMA jobs. Every job completes or fails with a DMA fault
//! error, pins go back to zero at each unmap, and the path works again.

use std::cell::RefCell;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use argh::FromArgs;
use vslice::job::{self, Job};
use vslice::regs::*;
use vslice::sysfs;
use vslice::vfio::Mmap;
use vslice_tests::health::{self, DriverStats, Kmsg};

use crate::report::{Report, CLEAN_UNDER_FAULTS};

const ATTRS: &[(&str, &str)] = &[
    // GFP_KERNEL allocations (the ones that matter) are skipped unless...
    ("failslab/ignore-gfp-wait", "N"),
    ("fail_page_alloc/ignore-gfp-wait", "N"),
    ("fail_page_alloc/ignore-gfp-highmem", "N"),
    ("fail_page_alloc/min-order", "0"),
    // One line per injected fault, no stack dump (that would read as a splat).
    ("failslab/verbose", "1"),
    ("fail_page_alloc/verbose", "1"),
];

/// Fault-injection attributes (debugfs) set by this run; the values they
/// had come back on `restore` or drop, last set first.
struct Saved(Vec<(PathBuf, String)>);

impl Saved {
    fn new() -> Saved {
        Saved(Vec::new())
    }

    /// Sets `/sys/kernel/debug/<attr>` to `v`, remembering its value.
    fn set(&mut self, attr: &str, v: &str) -> io::Result<()> {
        let p = Path::new("/sys/kernel/debug").join(attr);
        let old = fs::read_to_string(&p).map_err(|e| vslice::context(e, p.display()))?;
        self.0.push((p.clone(), old.trim().to_string()));
        sysfs::write_attr(&p, v)
    }

    /// Puts every attribute back; the first error, after trying all.
    fn restore(mut self) -> io::Result<()> {
        self.undo()
    }

    fn undo(&mut self) -> io::Result<()> {
        let mut res = Ok(());
        while let Some((p, v)) = self.0.pop() {
            if let Err(e) = sysfs::write_attr(&p, &v) {
                res = res.and(Err(e));
            }
        }
        res
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        let _ = self.undo();
    }
}

fn set_attrs() -> io::Result<Saved> {
    let mut saved = Saved::new();
    for (f, v) in ATTRS {
        saved.set(f, v)?;
    }
    Ok(saved)
}

/// This thread's fail-nth.
struct FailNth(fs::File);

impl FailNth {
    fn open() -> io::Result<FailNth> {
        let p = "/proc/thread-self/fail-nth";
        Ok(FailNth(
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map_err(|e| vslice::context(e, p))?,
        ))
    }

    fn arm(&self, n: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.0.write_at(n.to_string().as_bytes(), 0).map(|_| ())
    }

    /// Disarms; whether the armed fault fired.
    fn disarm(&self) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; 32];
        let n = self.0.read_at(&mut b, 0)?;
        let left: u64 = String::from_utf8_lossy(&b[..n]).trim().parse().unwrap_or(0);
        self.0.write_at(b"0", 0)?;
        Ok(left == 0)
    }
}

/// What one step left behind that it should not have.
type Check<'a> = &'a dyn Fn() -> Result<(), String>;

/// Kernel fault injection (fail-nth) on the create, open and probe paths:
/// every failed allocation must fail cleanly.
#[derive(Clone, Copy, FromArgs)]
#[argh(subcommand, name = "faultinj")]
pub struct How {
    /// stop a sweep after N fault points (default 3000)
    #[argh(option, arg_name = "N", default = "3000")]
    pub max_n: u64,
    /// do not stop a sweep at its first failure (to see them all)
    #[argh(switch)]
    pub keep_going: bool,
    /// inject at fault points 1, 1 + S, 1 + 2S, ... (default 1)
    #[argh(option, arg_name = "S", default = "1")]
    pub stride: u64,
    /// DMA jobs per failure probability (default 12)
    #[argh(option, arg_name = "N", default = "12")]
    pub dma_jobs: u32,
}

/// Sweeps `op` (Ok: it succeeded, undo it) with the n-th fault for n = 1..;
/// returns the number of fault points found.
fn sweep(
    name: &str,
    how: How,
    r: &mut Report,
    kmsg: &mut Kmsg,
    op: &mut dyn FnMut() -> io::Result<()>,
    undo: &mut dyn FnMut() -> io::Result<()>,
    check: Check<'_>,
) -> u64 {
    let How {
        max_n,
        keep_going,
        stride,
        ..
    } = how;
    let fnth = match FailNth::open() {
        Ok(f) => f,
        Err(e) => {
            r.fail(format!("{name}: {e}"));
            return 0;
        }
    };
    let mut max_err_lines = 0;
    for n in (1..=max_n).step_by(stride.max(1) as usize) {
        if let Err(e) = fnth.arm(n) {
            r.fail(format!("{name}: arming fail-nth {n}: {e}"));
            return n;
        }
        let res = op();
        let fired = match fnth.disarm() {
            Ok(f) => f,
            Err(e) => {
                r.fail(format!("{name}: fail-nth: {e}"));
                return n;
            }
        };
        match &res {
            Ok(()) => {
                r.tally.ok(&format!("{name}_ok"));
                if let Err(e) = undo() {
                    r.fail(format!("{name}: fault {n}: undoing a successful {name}: {e}"));
                }
            }
            Err(e) => {
                let errno = r.tally.err(name, e);
                if errno == "DATA" {
                    r.fail(format!("{name}: fault {n}: {e}"));
                }
            }
        }
        if let Err(e) = check() {
            r.fail(format!(
                "{name}: fault {n} ({}): {e}",
                if res.is_ok() { "succeeded" } else { "failed" }
            ));
        }
        let recs = kmsg.new_records();
        let errs = recs
            .iter()
            .filter(|x| x.level <= 3 && x.text.contains("vslice"))
            .count();
        max_err_lines = max_err_lines.max(errs);
        let splats: Vec<String> = recs
            .into_iter()
            .map(|x| x.text)
            .filter(|t| health::is_splat(t))
            .collect();
        if !splats.is_empty() {
            r.fail(format!("{name}: fault {n}: kernel splat: {}", splats[0]));
            r.splats.extend(splats);
        }
        if !r.failures.is_empty() && !keep_going {
            return n;
        }
        if !fired {
            // The operation made fewer than n allocations: all covered,
            // provided it worked and the sweep reached a fault at all.
            if let Err(e) = &res {
                r.fail(format!("{name}: failed with no fault injected (n = {n}): {e}"));
            }
            if n == 1 {
                r.fail(format!("{name}: the operation reached no fault point"));
            }
            r.extra.insert(format!("{name}_fault_points"), n - 1);
            r.extra
                .insert(format!("{name}_faults_injected"), (n - 1).div_ceil(stride.max(1)));
            r.extra
                .insert(format!("{name}_max_error_lines_per_fault"), max_err_lines as u64);
            if max_err_lines > 4 {
                r.fail(format!(
                    "{name}: one failure logged {max_err_lines} error lines (log storm)"
                ));
            }
            return n - 1;
        }
    }
    r.fail(format!(
        "{name}: still failing after {max_n} fault points (raise --max-n)"
    ));
    max_n
}

/// The address range of module `name`'s code: from its `.text` section
/// to just past its last code symbol.
fn module_text(name: &str) -> io::Result<(u64, u64)> {
    let hex = |t: &str| u64::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok();
    let sec = format!("/sys/module/{name}/sections/.text");
    let start = hex(&fs::read_to_string(&sec).map_err(|e| vslice::context(e, &sec))?)
        .ok_or_else(|| io::Error::other(format!("{sec}: not an address")))?;
    let tag = format!("[{name}]");
    let last = fs::read_to_string("/proc/kallsyms")?
        .lines()
        .filter(|l| l.ends_with(&tag))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let a = hex(f.next()?)?;
            matches!(f.next()?, "t" | "T").then_some(a)
        })
        .max()
        .ok_or_else(|| io::Error::other(format!("no code symbols of {name} in /proc/kallsyms")))?;
    if last < start {
        return Err(io::Error::other(format!("{name}: code symbols before .text")));
    }
    // The last function's size is not listed; 64 KiB past its start is
    // well inside the module's own mappings.
    Ok((start, last + 0x1_0000))
}

/// failslab and fail_page_alloc failing `percent` of the allocations made
/// under the driver's code, in any task, until the guard drops.
fn arm_under_driver(text: (u64, u64), percent: u32) -> io::Result<Saved> {
    let mut saved = Saved::new();
    for cap in ["failslab", "fail_page_alloc"] {
        for (attr, v) in [
            ("require-start", format!("{:#x}", text.0)),
            ("require-end", format!("{:#x}", text.1)),
            ("stacktrace-depth", "32".into()),
            ("task-filter", "N".into()),
            ("interval", "1".into()),
            ("times", "-1".into()),
            ("space", "0".into()),
            ("verbose", "0".into()),
            // Last: restored first, so nothing fails while the filter is
            // undone.
            ("probability", percent.to_string()),
        ] {
            saved.set(&format!("{cap}/{attr}"), &v)?;
        }
    }
    Ok(saved)
}

/// Host → VRAM → host through the instance's IOAS with allocations under
/// the driver failing at `percent`, fresh pins for every job (unmap and
/// map again): each job completes (data verified) or fails with a DMA
/// fault; pins back to 0 after each unmap. Returns (jobs done, jobs
/// failed).
fn dma_jobs(inst: &mut job::Instance, text: (u64, u64), percent: u32, jobs: u32, r: &mut Report) -> (u64, u64) {
    const IOVA: u64 = job::DMA_IOVA;
    const LEN: usize = 256 << 10;
    let mut tally = (0, 0);
    let buf = match Mmap::anonymous(2 * LEN) {
        Ok(b) => b,
        Err(e) => {
            r.fail(format!("dma: buffer: {e}"));
            return tally;
        }
    };
    let mut rng = crate::report::Rng::new(u64::from(percent));
    for n in 0..jobs {
        let len = 4096 * (1 + rng.below(LEN as u64 / 4096)) as u32;
        let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ (n as u8) ^ 0x5a).collect();
        buf.write_bytes(0, &data);
        if let Err(e) = inst.dev.map_dma(IOVA, &buf) {
            r.fail(format!("dma at {percent}%: map: {e}"));
            return tally;
        }
        // Armed from the doorbell to the completion only: the descriptor
        // is in the ring (its page mapped) before, and no allocation of
        // this thread's may fail (a VRAM mapping fault that cannot get
        // memory is retried by the kernel for ever).
        let step = |inst: &mut job::Instance, op, src, dst| {
            job::run_one_with(inst, 0, Job::new(op, src, dst, len), 30_000, || {
                arm_under_driver(text, percent)
            })
        };
        let there = step(inst, OP_DMA_FROM_HOST, IOVA, job::DATA_BASE);
        let back = match &there {
            Ok((d, _)) if d.status == DESC_STATUS_DONE => {
                Some(step(inst, OP_DMA_TO_HOST, job::DATA_BASE, IOVA + LEN as u64))
            }
            _ => None,
        };
        let fault = DESC_STATUS_ERROR | ERR_DMA_FAULT;
        let mut check = |what: &str, res: &io::Result<(job::Done, Option<u64>)>| match res {
            Ok((d, _)) if d.status == DESC_STATUS_DONE => true,
            Ok((d, _)) if d.status == fault => {
                tally.1 += 1;
                false
            }
            Ok((d, a)) => {
                r.fail(format!("dma at {percent}%: {what}: status {:#x} at {a:?}", d.status));
                false
            }
            Err(e) => {
                r.fail(format!("dma at {percent}%: {what}: {e}"));
                false
            }
        };
        if check("host to VRAM", &there) && back.as_ref().is_some_and(|b| check("VRAM to host", b)) {
            let mut got = vec![0u8; len as usize];
            buf.read_bytes(LEN, &mut got);
            if got != data {
                r.fail(format!("dma at {percent}%: job {n}: the round trip differs"));
            }
            tally.0 += 1;
        }
        if let Err(e) = inst.dev.unmap_dma(IOVA, 2 * LEN) {
            r.fail(format!("dma at {percent}%: unmap: {e}"));
            return tally;
        }
        match DriverStats::read() {
            Ok(s) if s.pinned_pages == 0 => {}
            Ok(s) => r.fail(format!(
                "dma at {percent}%: {} pages pinned after the unmap",
                s.pinned_pages
            )),
            Err(e) => r.fail(format!("dma: stats: {e}")),
        }
        if !r.failures.is_empty() {
            break;
        }
    }
    tally
}

/// Fault injection on the DMA fault path (see the top of the file).
fn dma(p: &str, jobs: u32, r: &mut Report, kmsg: &mut Kmsg) {
    let text = match module_text("vslice") {
        Ok(t) => t,
        Err(e) => return r.fail(format!("dma: the driver's code: {e}")),
    };
    let u = match sysfs::new_uuid().and_then(|u| sysfs::create(p, "quarter", &u).map(|()| u)) {
        Ok(u) => u,
        Err(e) => return r.fail(format!("dma: cannot create the instance: {e}")),
    };
    match job::Instance::open(&u) {
        Ok(mut inst) => {
            // A fresh instance has no tables yet: at 100% its first job
            // must fail, or the injection never reached the fault path.
            for percent in [100, 30, 10] {
                let (done, failed) = dma_jobs(&mut inst, text, percent, jobs, r);
                r.extra.insert(format!("dma_{percent}pc_jobs_done"), done);
                r.extra.insert(format!("dma_{percent}pc_jobs_dma_fault"), failed);
                if percent == 100 && r.failures.is_empty() && done != 0 {
                    r.fail(format!("dma at 100%: {done} job(s) completed: the injection missed"));
                }
                let splats = kmsg.new_splats();
                if !splats.is_empty() {
                    r.fail(format!("dma at {percent}%: kernel splat: {}", splats[0]));
                    r.splats.extend(splats);
                }
                if !r.failures.is_empty() {
                    break;
                }
            }
            // Nothing armed: the path works again.
            let after = job::dma_buffer(&inst, 65536).and_then(|b| job::dma_round(&mut inst, 0, 65536, 3, &b));
            if let Err(e) = after {
                r.fail(format!("dma: DMA does not work after the injection: {e}"));
            }
        }
        Err(e) => r.fail(format!("dma: open: {e}")),
    }
    if let Err(e) = sysfs::remove(&u) {
        r.fail(format!("dma: removing the instance: {e}"));
    }
    match DriverStats::read() {
        Ok(s) if s.pinned_pages == 0 => {}
        Ok(s) => r.fail(format!("dma: {} pages pinned at the end", s.pinned_pages)),
        Err(e) => r.fail(format!("dma: stats: {e}")),
    }
}

fn no_instances() -> Result<(), String> {
    let n = sysfs::instances().len();
    let s = DriverStats::read().map_err(|e| e.to_string())?;
    if n != 0 || s.instances_alive() != 0 {
        return Err(format!(
            "{n} instance(s) in sysfs, {} alive in the driver",
            s.instances_alive()
        ));
    }
    Ok(())
}

/// Every type of `p` back to its whole capacity (a default device: 16
/// contexts, 16 units).
pub fn full(p: &str) -> Result<(), String> {
    let t = sysfs::types(p);
    let avail: Vec<u32> = ["eighth", "quarter", "half", "full", "unit"]
        .iter()
        .map(|n| {
            t.iter()
                .find(|x| x.name == format!("vslice-{n}"))
                .map_or(0, |x| x.available)
        })
        .collect();
    if avail != [8, 4, 2, 1, 16] {
        return Err(format!("{p}: available_instances {avail:?}, want [8, 4, 2, 1, 16]"));
    }
    Ok(())
}

/// `how.keep_going`: do not stop a sweep at its first failure (to see
/// them all); `how.stride`: inject at fault points 1, 1 + stride, ...
pub fn run(how: How, r: &mut Report, kmsg: &mut Kmsg) {
    let parents: Vec<String> = sysfs::pci_devices()
        .into_iter()
        .filter(|b| sysfs::is_parent(b))
        .collect();
    let Some(p) = parents.first().cloned() else {
        return r.fail("no bound vslice parent".into());
    };
    r.tally.also_clean = CLEAN_UNDER_FAULTS;
    let attrs = match set_attrs() {
        Ok(a) => a,
        Err(e) => return r.fail(format!("fault injection not available: {e}")),
    };
    // Create.
    let mut uuid = String::new();
    sweep(
        "create",
        how,
        r,
        kmsg,
        &mut || {
            uuid = sysfs::new_uuid()?;
            sysfs::create(&p, "eighth", &uuid)
        },
        &mut || {
            let u = sysfs::instances().into_iter().next().map(|x| x.0).unwrap_or_default();
            sysfs::remove(&u)
        },
        &|| {
            no_instances()?;
            full(&p)
        },
    );
    // Open (device, iommufd, MSI-X and REQ eventfds, mmap, ring setup).
    let held = sysfs::new_uuid().and_then(|u| sysfs::create(&p, "quarter", &u).map(|()| u));
    match held {
        Ok(u) => {
            let inst: RefCell<Option<job::Instance>> = RefCell::new(None);
            sweep(
                "open",
                how,
                r,
                kmsg,
                &mut || {
                    *inst.borrow_mut() = Some(job::Instance::open(&u)?);
                    Ok(())
                },
                &mut || {
                    let mut i = inst.take().ok_or_else(|| io::Error::other("no instance"))?;
                    job::round(&mut i, 0, 4096, 0x0f0f_0f0f).map(|_| ())
                },
                &|| {
                    let s = DriverStats::read().map_err(|e| e.to_string())?;
                    if s.instances_alive() != 1 {
                        return Err(format!("{} instances alive, want 1", s.instances_alive()));
                    }
                    Ok(())
                },
            );
            drop(inst.take());
            // The instance still works after every failed open.
            let after = job::Instance::open(&u).and_then(|mut i| job::round(&mut i, 1, 65536, 0x1234_5678).map(|_| ()));
            if let Err(e) = after {
                r.fail(format!("open: the instance does not work after the sweep: {e}"));
            }
            if let Err(e) = sysfs::remove(&u) {
                r.fail(format!("open: removing the instance: {e}"));
            }
        }
        Err(e) => r.fail(format!("open: cannot create the instance: {e}")),
    }
    // The DMA fault path, in the kworker.
    dma(&p, how.dma_jobs, r, kmsg);
    // Probe (bind): on the last parent, unbound for the sweep.
    let q = parents.last().cloned().unwrap_or_default();
    let others = parents.len() as u64 - 1;
    if let Err(e) = sysfs::unbind(&q) {
        r.fail(format!("probe: unbinding {q}: {e}"));
    } else {
        let no_link = std::cell::Cell::new(0u64);
        sweep(
            "probe",
            how,
            r,
            kmsg,
            &mut || sysfs::bind(&q),
            &mut || {
                // The mdev core only warns when it cannot make the
                // /sys/class/mdev_bus link ("Failed to create
                // compatibility class link") and registers the parent
                // anyway: counted, the parent checked where it lives.
                let whole = if Path::new("/sys/class/mdev_bus").join(&q).exists() {
                    full(&q)
                } else {
                    no_link.set(no_link.get() + 1);
                    Ok(())
                };
                sysfs::unbind(&q)?;
                whole.map_err(io::Error::other)
            },
            &|| {
                let s = DriverStats::read().map_err(|e| e.to_string())?;
                if sysfs::is_bound(&q) || Path::new("/sys/kernel/debug/vslice").join(&q).exists() {
                    return Err(format!("{q} left half-bound"));
                }
                if s.parents_alive() != others {
                    return Err(format!("{} parents alive, want {others}", s.parents_alive()));
                }
                Ok(())
            },
        );
        r.extra.insert("probe_ok_without_mdev_bus_link".into(), no_link.get());
        if let Err(e) = sysfs::bind(&q) {
            r.fail(format!("probe: binding {q} after the sweep: {e}"));
        } else if let Err(e) = sysfs::selftest(&q) {
            r.fail(format!("probe: self-test of {q} after the sweep: {e}"));
        }
    }
    if let Err(e) = attrs.restore() {
        r.fail(format!("restoring fault injection settings: {e}"));
    }
    std::thread::sleep(std::time::Duration::from_secs(6));
    r.leak_scan();
    r.splats.extend(kmsg.new_splats());
}
