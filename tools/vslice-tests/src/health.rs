// SPDX-License-Identifier: GPL-2.0
//! The guest kernel's health, as the reliability suite checks it between
//! steps: new kernel log records that are splats, kmemleak reports, the
//! driver's object counts (debugfs `vslice/stats`), errno names.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What scripts/splat-scan.sh looks for on the console, record by record.
const SPLATS: &[&str] = &[
    "BUG:",
    "WARNING:",
    "Oops",
    "Kernel panic",
    "KASAN",
    "UBSAN",
    "unreferenced object",
    "suspected memory leak",
    "possible recursive locking",
    "possible circular locking",
    "inconsistent lock state",
    "lockdep",
    "blocked for more than",
    "soft lockup",
    "rcu_sched detected stall",
    "rcu_preempt detected stall",
    "ODEBUG",
    "list_add corruption",
    "list_del corruption",
    "general protection fault",
    "refcount_t:",
    "Call Trace:",
    "memory leak detector disabled",
];

/// Whether a kernel log line is (the start of) a splat.
pub fn is_splat(line: &str) -> bool {
    !line.contains("taints kernel") && SPLATS.iter().any(|p| line.contains(p))
}

/// Reads the kernel log from the moment it was made on.
pub struct Kmsg(File);

/// One kernel log record: priority (0 emerg .. 7 debug) and text.
#[derive(Clone, Debug)]
pub struct Record {
    pub level: u8,
    pub text: String,
}

impl Kmsg {
    /// Starts at the end of the log: only later records are read.
    pub fn open() -> io::Result<Kmsg> {
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .map_err(|e| vslice::context(e, "/dev/kmsg"))?;
        f.seek(SeekFrom::End(0))?;
        Ok(Kmsg(f))
    }

    /// Every record logged since the last call.
    pub fn new_records(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    // "prio,seq,usec,flags;text\n"
                    let (head, text) = rec.split_once(';').unwrap_or(("", &rec));
                    let prio: u32 = head.split(',').next().and_then(|p| p.parse().ok()).unwrap_or(6);
                    out.push(Record {
                        level: (prio & 7) as u8,
                        text: text.lines().next().unwrap_or("").to_string(),
                    });
                }
                // EPIPE: records were overwritten before we read them;
                // the next read continues with the oldest one left.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }

    /// The splat lines logged since the last call.
    pub fn new_splats(&mut self) -> Vec<String> {
        self.new_records()
            .into_iter()
            .filter(|r| is_splat(&r.text))
            .map(|r| r.text)
            .collect()
    }
}

const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";

/// Asks kmemleak for a scan; returns the reports (the first lines of each
/// "unreferenced object" block) and clears them, so that the next call
/// only shows new ones. An error if kmemleak is absent or disabled: a
/// leak check that cannot run must not pass.
pub fn kmemleak_scan() -> io::Result<Vec<String>> {
    vslice::sysfs::write_attr(Path::new(KMEMLEAK), "scan")?;
    let text = fs::read_to_string(KMEMLEAK).map_err(|e| vslice::context(e, KMEMLEAK))?;
    let _ = vslice::sysfs::write_attr(Path::new(KMEMLEAK), "clear");
    let mut leaks = Vec::new();
    let mut cur: Option<String> = None;
    for l in text.lines() {
        if l.starts_with("unreferenced object") {
            if let Some(c) = cur.take() {
                leaks.push(c);
            }
            cur = Some(l.to_string());
        } else if let Some(c) = cur.as_mut() {
            // Keep the top of the backtrace: where it was allocated.
            if c.lines().count() < 12 {
                c.push('\n');
                c.push_str(l);
            }
        }
    }
    leaks.extend(cur);
    Ok(leaks)
}

/// The driver's object counts (debugfs `vslice/stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub instances_made: u64,
    pub instances_released: u64,
    pub parents_made: u64,
    pub parents_released: u64,
    /// VRAM mapping faults the driver served.
    pub mmap_faults: u64,
    /// Tenant pages pinned for the device's DMA now.
    pub pinned_pages: u64,
    /// Translation faults answered by mapping, and refused.
    pub dma_faults_resolved: u64,
    pub dma_faults_refused: u64,
    /// Creates that succeeded; ns they spent in the driver, and of it
    /// waiting for units being scrubbed.
    pub creates: u64,
    pub create_ns: u64,
    pub create_wait_ns: u64,
    /// Removes; ns they spent in the driver.
    pub removes: u64,
    pub remove_ns: u64,
    /// Instances programmed at their first open; ns doing it.
    pub programs: u64,
    pub program_ns: u64,
    /// Background scrubs done (ns from release to zeroed), and failed.
    pub scrubs: u64,
    pub scrub_ns: u64,
    pub scrub_failures: u64,
    /// Bytes the driver holds for its instances now (its own share).
    pub driver_bytes: u64,
    /// Jobs loaded migration states carried, and those resumed part-done.
    pub mig_jobs_moved: u64,
    pub mig_jobs_resumed: u64,
}

/// The numeric "name: value" lines of a debugfs file of the driver.
pub struct Fields {
    path: String,
    map: BTreeMap<String, u64>,
}

impl Fields {
    pub fn read(path: &str) -> io::Result<Fields> {
        let text = fs::read_to_string(path).map_err(|e| vslice::context(e, path))?;
        let map = text
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
            .collect();
        Ok(Fields {
            path: path.to_string(),
            map,
        })
    }

    /// Parent `bdf`'s state file.
    pub fn parent_state(bdf: &str) -> io::Result<Fields> {
        Fields::read(&format!("/sys/kernel/debug/vslice/{bdf}/state"))
    }

    pub fn get(&self, k: &str) -> io::Result<u64> {
        self.map
            .get(k)
            .copied()
            .ok_or_else(|| io::Error::other(format!("{}: no {k}", self.path)))
    }
}

impl DriverStats {
    pub fn read() -> io::Result<DriverStats> {
        let f = Fields::read("/sys/kernel/debug/vslice/stats")?;
        let get = |k: &str| f.get(k);
        Ok(DriverStats {
            instances_made: get("instances_made")?,
            instances_released: get("instances_released")?,
            parents_made: get("parents_made")?,
            parents_released: get("parents_released")?,
            mmap_faults: get("mmap_faults")?,
            pinned_pages: get("pinned_pages")?,
            dma_faults_resolved: get("dma_faults_resolved")?,
            dma_faults_refused: get("dma_faults_refused")?,
            creates: get("creates")?,
            create_ns: get("create_ns")?,
            create_wait_ns: get("create_wait_ns")?,
            removes: get("removes")?,
            remove_ns: get("remove_ns")?,
            programs: get("programs")?,
            program_ns: get("program_ns")?,
            scrubs: get("scrubs")?,
            scrub_ns: get("scrub_ns")?,
            scrub_failures: get("scrub_failures")?,
            driver_bytes: get("driver_bytes")?,
            mig_jobs_moved: get("mig_jobs_moved")?,
            mig_jobs_resumed: get("mig_jobs_resumed")?,
        })
    }

    /// Instances alive in the driver.
    pub fn instances_alive(&self) -> u64 {
        self.instances_made - self.instances_released
    }

    /// Parent states alive in the driver.
    pub fn parents_alive(&self) -> u64 {
        self.parents_made - self.parents_released
    }
}

/// The symbolic name of errno `e` ("E123" for one not listed).
pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENOTTY => "ENOTTY",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENOTCONN => "ENOTCONN",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EUSERS => "EUSERS",
        _ => return format!("E{e}"),
    };
    n.to_string()
}

/// How an error is counted: its errno's name, or its kind for the
/// client's own errors (job timeouts, a device reading all-ones, REQ,
/// data that does not verify: "DATA").
pub fn error_name(e: &io::Error) -> String {
    match vslice::errno_of(e) {
        Some(n) => errno_name(n),
        None => match e.kind() {
            io::ErrorKind::TimedOut => "ETIMEDOUT".into(),
            io::ErrorKind::NotConnected => "ENOTCONN".into(),
            io::ErrorKind::ConnectionAborted => "ECONNABORTED".into(),
            _ => "DATA".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splat_lines_are_recognised() {
        assert!(is_splat("BUG: KASAN: slab-use-after-free in vslice_rs_irq+0x1c/0x80"));
        assert!(is_splat("WARNING: CPU: 0 PID: 1 at drivers/vfio/vfio_main.c:1 x"));
        assert!(is_splat("INFO: task sh:77 blocked for more than 30 seconds."));
        assert!(!is_splat("vslice: loading out-of-tree module taints kernel."));
        assert!(!is_splat("vslice 0000:00:03.0: instance 1 created"));
    }

    #[test]
    fn errors_are_named() {
        assert_eq!(errno_name(libc::ENODEV), "ENODEV");
        assert_eq!(errno_name(4095), "E4095");
        assert_eq!(error_name(&io::Error::from_raw_os_error(libc::ENOSPC)), "ENOSPC");
        assert_eq!(error_name(&io::Error::other("checksum differs")), "DATA");
        assert_eq!(error_name(&io::Error::new(io::ErrorKind::TimedOut, "x")), "ETIMEDOUT");
    }
}
