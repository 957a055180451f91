// SPDX-License-Identifier: GPL-2.0
//! Parents, types and instances as sysfs shows them.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MDEV_BUS: &str = "/sys/class/mdev_bus";
const MDEV_DEVICES: &str = "/sys/bus/mdev/devices";

fn read(p: &Path) -> String {
    fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A type of a parent.
#[derive(Debug)]
pub struct TypeInfo {
    pub name: String,
    pub available: u32,
    pub description: String,
}

/// vslice parents (mdev parents whose types are vslice-*).
pub fn parents() -> Vec<String> {
    names(Path::new(MDEV_BUS))
        .into_iter()
        .filter(|p| names(&types_dir(p)).iter().any(|t| t.starts_with("vslice-")))
        .collect()
}

fn types_dir(parent: &str) -> PathBuf {
    Path::new(MDEV_BUS).join(parent).join("mdev_supported_types")
}

/// The types of `parent`.
pub fn types(parent: &str) -> Vec<TypeInfo> {
    names(&types_dir(parent))
        .into_iter()
        .map(|t| {
            let d = types_dir(parent).join(&t);
            TypeInfo {
                available: read(&d.join("available_instances")).parse().unwrap_or(0),
                description: read(&d.join("description")),
                name: t,
            }
        })
        .collect()
}

/// Instances: (uuid, parent, type).
pub fn instances() -> Vec<(String, String, String)> {
    names(Path::new(MDEV_DEVICES))
        .into_iter()
        .filter_map(|u| {
            let d = Path::new(MDEV_DEVICES).join(&u);
            let ty = fs::read_link(d.join("mdev_type")).ok()?;
            let ty = ty.file_name()?.to_string_lossy().into_owned();
            if !ty.starts_with("vslice-") {
                return None;
            }
            let parent = fs::canonicalize(&d)
                .ok()?
                .parent()?
                .file_name()?
                .to_string_lossy()
                .into_owned();
            Some((u, parent, ty))
        })
        .collect()
}

/// A random (version 4) UUID, as mdev's `create` takes it. The random
/// bytes are fetched here rather than by `Uuid::new_v4`, which panics when
/// getrandom(2) fails (fault injection makes it fail with ENOMEM): a
/// failure is an error for the caller to count.
pub fn new_uuid() -> io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| match e.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::other(e.to_string()),
    })?;
    Ok(uuid::Builder::from_random_bytes(b).into_uuid().hyphenated().to_string())
}

/// Creates an instance of `ty` (e.g. `vslice-eighth` or `eighth`) on `parent`.
pub fn create(parent: &str, ty: &str, uuid: &str) -> io::Result<()> {
    let ty = if ty.starts_with("vslice-") {
        ty.to_string()
    } else {
        format!("vslice-{ty}")
    };
    create_typed(parent, &ty, uuid)
}

/// Creates an instance of type directory `ty` (any mdev parent's, e.g.
/// `mtty-1`) on `parent`.
pub fn create_typed(parent: &str, ty: &str, uuid: &str) -> io::Result<()> {
    write_attr(&types_dir(parent).join(ty).join("create"), uuid)
}

/// `available_instances` of type directory `ty` on `parent`.
pub fn available(parent: &str, ty: &str) -> io::Result<u32> {
    let f = types_dir(parent).join(ty).join("available_instances");
    let s = fs::read_to_string(&f).map_err(|e| crate::context(e, f.display()))?;
    s.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("{}: not a number: {s:?}", f.display())))
}

/// Removes instance `uuid`.
pub fn remove(uuid: &str) -> io::Result<()> {
    write_attr(&Path::new(MDEV_DEVICES).join(uuid).join("remove"), "1")
}

const PCI_DEVICES: &str = "/sys/bus/pci/devices";
const VSLICE_DRIVER: &str = "/sys/bus/pci/drivers/vslice";

/// Writes `val` to the kernel attribute (sysfs or debugfs) `path` in one
/// write(2). Every attribute write of the client goes through here.
///
/// The file is opened without O_CREAT (unlike `fs::write` or a shell's
/// `>`): when an attribute has just been removed but its directory is
/// still there (an instance's `remove`, a type's `create` while the parent
/// goes), O_CREAT makes the VFS try to create the file, and kernfs, which
/// has no `create`, answers EACCES. Without it the answer is ENOENT.
pub fn write_attr(path: &Path, val: impl AsRef<[u8]>) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(val.as_ref()))
        .map_err(|e| crate::context(e, path.display()))
}

/// Runs the driver's self-test on parent `bdf` (a job on the device and
/// its MSI-X interrupt; debugfs, root only).
pub fn selftest(bdf: &str) -> io::Result<()> {
    write_attr(&Path::new("/sys/kernel/debug/vslice").join(bdf).join("selftest"), "1")
}

/// vslice PCI devices on the bus (bound or not), by vendor:device.
pub fn pci_devices() -> Vec<String> {
    let want = (
        format!("{:#06x}", crate::regs::PCI_VENDOR_ID),
        format!("{:#06x}", crate::regs::PCI_DEVICE_ID),
    );
    names(Path::new(PCI_DEVICES))
        .into_iter()
        .filter(|b| {
            let d = Path::new(PCI_DEVICES).join(b);
            (read(&d.join("vendor")), read(&d.join("device"))) == want
        })
        .collect()
}

/// Whether `bdf` is bound to vslice.
pub fn is_bound(bdf: &str) -> bool {
    fs::read_link(Path::new(PCI_DEVICES).join(bdf).join("driver"))
        .is_ok_and(|d| d.file_name().is_some_and(|n| n == "vslice"))
}

/// Whether `bdf` is bound to vslice and listed as an mdev parent.
pub fn is_parent(bdf: &str) -> bool {
    Path::new(MDEV_BUS).join(bdf).exists() && is_bound(bdf)
}

/// `echo 1 > /sys/bus/pci/devices/BDF/remove`.
pub fn pci_remove(bdf: &str) -> io::Result<()> {
    write_attr(&Path::new(PCI_DEVICES).join(bdf).join("remove"), "1")
}

/// `echo 1 > /sys/bus/pci/rescan`.
pub fn pci_rescan() -> io::Result<()> {
    write_attr(Path::new("/sys/bus/pci/rescan"), "1")
}

/// Unbinds `bdf` from vslice.
pub fn unbind(bdf: &str) -> io::Result<()> {
    write_attr(&Path::new(VSLICE_DRIVER).join("unbind"), bdf)
}

/// Binds `bdf` to vslice.
pub fn bind(bdf: &str) -> io::Result<()> {
    write_attr(&Path::new(VSLICE_DRIVER).join("bind"), bdf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = super::new_uuid().unwrap();
        let b = super::new_uuid().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    /// An attribute that is gone is ENOENT and is never created (with
    /// O_CREAT, kernfs would answer EACCES during a removal).
    #[test]
    fn write_attr_never_creates() {
        let dir = std::env::temp_dir().join(format!("vslice-attr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gone = dir.join("remove");
        let e = super::write_attr(&gone, "1").unwrap_err();
        assert_eq!(crate::errno_of(&e), Some(libc::ENOENT), "{e}");
        assert!(!gone.exists(), "write_attr created {}", gone.display());
        // An existing attribute gets the value in one write, not appended
        // to or truncated by us (sysfs ignores O_TRUNC; a file would not).
        let here = dir.join("bind");
        std::fs::write(&here, "").unwrap();
        super::write_attr(&here, "0000:00:05.0").unwrap();
        assert_eq!(std::fs::read_to_string(&here).unwrap(), "0000:00:05.0");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
