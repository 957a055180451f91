// SPDX-License-Identifier: GPL-2.0
//! Permissions: a non-root user cannot create or remove instances, touch
//! the PCI device, read our debugfs, or open an instance it was not
//! given; it can open and use the one it was given (its cdev chowned to
//! it, as a management stack does for a VM's QEMU).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use vslice::job;
use vslice::sysfs;
use vslice::vfio;

use crate::report::Report;

fn drop_to(uid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls on this process's credentials.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(uid, uid, uid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn denied(r: &mut Report, what: &str, res: io::Result<impl Sized>) {
    match res.map_err(|e| vslice::errno_of(&e)) {
        Err(Some(libc::EACCES | libc::EPERM)) => r.tally.ok("denied"),
        Err(e) => r.fail(format!("{what}: errno {e:?}, want EACCES or EPERM")),
        Ok(_) => r.fail(format!("{what}: allowed for a non-root user")),
    }
}

pub fn run(uid: u32, parent: &str, given: &str, other: &str, r: &mut Report) {
    // As root: instance device nodes are root's, 0600, unless given.
    for (u, owner) in [(other, 0), (given, uid)] {
        match vfio::cdev_path(u).and_then(fs::metadata) {
            Ok(m) if m.uid() == owner && m.mode() & 0o077 == 0 => {}
            Ok(m) => r.fail(format!(
                "{u}: cdev owner {} mode {:o}, want owner {owner} mode 0600",
                m.uid(),
                m.mode() & 0o777
            )),
            Err(e) => r.fail(format!("{u}: {e}")),
        }
    }
    // debugfs itself is 0700, which would hide a file's own mode: check it.
    for (f, deny) in [("stats", 0o022), ("selftest", 0o077)] {
        let p = if f == "stats" {
            Path::new("/sys/kernel/debug/vslice").join(f)
        } else {
            Path::new("/sys/kernel/debug/vslice").join(parent).join(f)
        };
        match fs::metadata(&p) {
            Ok(m) if m.mode() & deny == 0 => r.tally.ok("debugfs_mode"),
            Ok(m) => r.fail(format!("{}: mode {:o} lets others in", p.display(), m.mode() & 0o777)),
            Err(e) => r.fail(format!("{}: {e}", p.display())),
        }
    }
    if let Err(e) = drop_to(uid) {
        return r.fail(format!("cannot become uid {uid}: {e}"));
    }
    let u = sysfs::new_uuid().unwrap_or_default();
    denied(r, "create", sysfs::create(parent, "eighth", &u));
    denied(r, "remove the given instance", sysfs::remove(given));
    denied(r, "remove another instance", sysfs::remove(other));
    denied(r, "open another instance", vfio::Device::open(other));
    denied(r, "PCI remove", sysfs::pci_remove(parent));
    denied(r, "PCI rescan", sysfs::pci_rescan());
    denied(r, "driver unbind", sysfs::unbind(parent));
    denied(r, "read debugfs", fs::read_to_string("/sys/kernel/debug/vslice/stats"));
    denied(r, "self-test", sysfs::selftest(parent));
    // What it was given works.
    match job::Instance::open(given).and_then(|mut i| job::round(&mut i, 0, 65536, 0x600d_600d)) {
        Ok(_) => r.tally.ok("given_instance_used"),
        Err(e) => r.fail(format!("the user cannot use the instance it was given: {e}")),
    }
}
