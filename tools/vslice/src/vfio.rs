// SPDX-License-Identifier: GPL-2.0
//! An instance opened through VFIO, as rust-vmm's crates open devices:
//! `vfio-ioctls` does the open (the device cdev bound to an iommufd with an
//! IOAS attached, or the legacy group/container path QEMU and older stacks
//! use), `vfio-bindings` gives the uapi structures and constants and
//! `vmm-sys-util` the ioctl wrappers and eventfds. The operations a caller
//! must see fail with their errno (region access, SET_IRQS, reset) are
//! issued here rather than through `VfioDevice`'s methods, which log
//! errors and carry on.

use std::error::Error as _;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iommufd_ioctls::IommuFd;
use vfio_bindings::bindings::vfio::*;
use vfio_ioctls::{VfioContainer, VfioDevice, VfioError, VfioIommufd, VfioOps};
pub use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::ioctl::{ioctl, ioctl_with_mut_ptr, ioctl_with_mut_ref};
use vmm_sys_util::ioctl_io_nr;

ioctl_io_nr!(VFIO_DEVICE_GET_INFO, VFIO_TYPE.into(), VFIO_BASE + 7);
ioctl_io_nr!(VFIO_DEVICE_GET_REGION_INFO, VFIO_TYPE.into(), VFIO_BASE + 8);
ioctl_io_nr!(VFIO_DEVICE_GET_IRQ_INFO, VFIO_TYPE.into(), VFIO_BASE + 9);
ioctl_io_nr!(VFIO_DEVICE_SET_IRQS, VFIO_TYPE.into(), VFIO_BASE + 10);
ioctl_io_nr!(VFIO_DEVICE_RESET, VFIO_TYPE.into(), VFIO_BASE + 11);

pub use vfio_bindings::bindings::vfio::{
    VFIO_DEVICE_FLAGS_PCI as DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET as DEVICE_FLAGS_RESET,
    VFIO_IRQ_INFO_EVENTFD as IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE as IRQ_INFO_MASKABLE,
    VFIO_IRQ_SET_ACTION_MASK as IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER as IRQ_SET_ACTION_TRIGGER,
    VFIO_IRQ_SET_ACTION_UNMASK as IRQ_SET_ACTION_UNMASK, VFIO_IRQ_SET_DATA_BOOL as IRQ_SET_DATA_BOOL,
    VFIO_IRQ_SET_DATA_EVENTFD as IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE as IRQ_SET_DATA_NONE,
    VFIO_PCI_BAR0_REGION_INDEX as BAR0, VFIO_PCI_BAR2_REGION_INDEX as BAR2, VFIO_PCI_BAR4_REGION_INDEX as BAR4,
    VFIO_PCI_CONFIG_REGION_INDEX as CONFIG, VFIO_PCI_INTX_IRQ_INDEX as INTX_IRQ_INDEX,
    VFIO_PCI_MSIX_IRQ_INDEX as MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS as NUM_IRQS, VFIO_PCI_NUM_REGIONS as NUM_REGIONS,
    VFIO_PCI_REQ_IRQ_INDEX as REQ_IRQ_INDEX, VFIO_REGION_INFO_FLAG_MMAP as REGION_MMAP,
    VFIO_REGION_INFO_FLAG_READ as REGION_READ, VFIO_REGION_INFO_FLAG_WRITE as REGION_WRITE,
};

/// `struct vfio_device_info`.
pub type DeviceInfo = vfio_device_info;
/// `struct vfio_region_info` (without capabilities).
pub type RegionInfo = vfio_region_info;
/// `struct vfio_irq_info`.
pub type IrqInfo = vfio_irq_info;

/// File offset of region `index` (vfio-pci encoding).
pub const fn region_offset(index: u32) -> u64 {
    (index as u64) << 40
}

/// The size of a uapi structure, as its `argsz` wants it.
fn argsz<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// An ioctl's return value as a result.
fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waiting on an eventfd with a timeout, which `EventFd` itself lacks.
pub trait Wait {
    /// Waits up to `ms` milliseconds; true if signalled (the signal is
    /// consumed).
    fn wait(&self, ms: i32) -> io::Result<bool>;
}

impl Wait for EventFd {
    fn wait(&self, ms: i32) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        if r == 0 {
            return Ok(false);
        }
        self.read().map(|_| true)
    }
}

/// The errno behind a `vfio-ioctls` error, if one is in its chain.
fn vfio_errno(e: &VfioError) -> Option<i32> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return io.raw_os_error();
        }
        if let Some(sys) = s.downcast_ref::<vmm_sys_util::errno::Error>() {
            return Some(sys.errno());
        }
        src = s.source();
    }
    None
}

/// A `vfio-ioctls` error as an `io::Error` that keeps its errno.
fn from_vfio(e: VfioError, what: impl std::fmt::Display) -> io::Error {
    let errno = vfio_errno(&e);
    let msg = match e.source() {
        Some(s) => format!("{what}: {e}: {s}"),
        None => format!("{what}: {e}"),
    };
    match errno {
        Some(errno) => io::Error::new(
            io::Error::from_raw_os_error(errno).kind(),
            crate::Context { errno, msg },
        ),
        None => io::Error::other(msg),
    }
}

/// How an instance is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenPath {
    /// The device cdev (`/dev/vfio/devices/vfioN`) bound to an iommufd.
    Cdev,
    /// The legacy path: `/dev/vfio/<group>` set to a type1 container.
    Group,
}

/// A VFIO type1 container (`/dev/vfio/vfio`) that several instances'
/// groups may share.
pub type Container = Arc<VfioContainer>;

/// A new, empty type1 container.
pub fn new_container() -> io::Result<Container> {
    Ok(Arc::new(
        VfioContainer::new(None).map_err(|e| from_vfio(e, "/dev/vfio/vfio"))?,
    ))
}

/// An instance opened through VFIO.
pub struct Device {
    /// A duplicate of the device fd, for positioned reads and writes.
    file: File,
    dev: VfioDevice,
    iommu: Arc<dyn VfioOps>,
    /// The iommufd side when opened through the cdev (read-only maps).
    iommufd: Option<Arc<VfioIommufd>>,
}

/// The sysfs directory of mdev `uuid`.
pub fn mdev_dir(uuid: &str) -> PathBuf {
    Path::new("/sys/bus/mdev/devices").join(uuid)
}

/// The VFIO cdev of mdev `uuid` (`/dev/vfio/devices/vfioN`).
pub fn cdev_path(uuid: &str) -> io::Result<PathBuf> {
    let dir = mdev_dir(uuid).join("vfio-dev");
    let name = std::fs::read_dir(&dir)
        .map_err(|e| crate::context(e, format!("{} (no such instance?)", dir.display())))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("vfio"))
        // An instance being removed has its directory but no cdev any
        // more: that is ENOENT, as for a missing directory.
        .ok_or_else(|| {
            crate::context(
                io::Error::from_raw_os_error(libc::ENOENT),
                format!("no VFIO cdev under {}", dir.display()),
            )
        })?;
    Ok(Path::new("/dev/vfio/devices").join(name))
}

impl Device {
    /// Opens instance `uuid` through its cdev: bound to a fresh iommufd
    /// with an IOAS attached (what an emulated-IOMMU device needs).
    pub fn open(uuid: &str) -> io::Result<Device> {
        Device::open_by(uuid, OpenPath::Cdev)
    }

    /// Opens instance `uuid` the way `path` says.
    pub fn open_by(uuid: &str, path: OpenPath) -> io::Result<Device> {
        if path == OpenPath::Group {
            return Device::open_in(uuid, &new_container()?);
        }
        let cdev = cdev_path(uuid)?;
        let file = File::options()
            .read(true)
            .write(true)
            .open(&cdev)
            .map_err(|e| crate::context(e, cdev.display()))?;
        let fd = IommuFd::new().map_err(|e| from_vfio(VfioError::NewVfioIommufd(e), "/dev/iommu"))?;
        let iommufd = Arc::new(VfioIommufd::new(Arc::new(fd), None, None).map_err(|e| from_vfio(e, "IOAS"))?);
        let dev = VfioDevice::new_from_fd(file, iommufd.clone(), true).map_err(|e| from_vfio(e, cdev.display()))?;
        Device::with(dev, iommufd.clone(), Some(iommufd))
    }

    /// Opens instance `uuid` through its group, set to `container` (which
    /// other instances' groups may share).
    pub fn open_in(uuid: &str, container: &Container) -> io::Result<Device> {
        let sysfs = mdev_dir(uuid);
        let dev = VfioDevice::new(&sysfs, container.clone(), false).map_err(|e| from_vfio(e, sysfs.display()))?;
        Device::with(dev, container.clone(), None)
    }

    fn with(dev: VfioDevice, iommu: Arc<dyn VfioOps>, iommufd: Option<Arc<VfioIommufd>>) -> io::Result<Device> {
        // SAFETY: `dev` owns this fd and is alive for the duration of the
        // borrow; the duplicate is an independent descriptor.
        let file = File::from(unsafe { BorrowedFd::borrow_raw(dev.as_raw_fd()) }.try_clone_to_owned()?);
        Ok(Device {
            file,
            dev,
            iommu,
            iommufd,
        })
    }

    /// The device as `vfio-ioctls` holds it (region capabilities, the
    /// IRQ helpers of rust-vmm's VMMs).
    pub fn vfio(&self) -> &VfioDevice {
        &self.dev
    }

    /// The IOMMU side the device is attached to (DMA mappings).
    pub fn iommu(&self) -> &Arc<dyn VfioOps> {
        &self.iommu
    }

    /// Maps `buf` at `iova` for the device's DMA, readable and writable:
    /// `IOMMU_IOAS_MAP` on the cdev path, `VFIO_IOMMU_MAP_DMA` on the
    /// container path. `buf` must stay mapped until `unmap_dma`.
    pub fn map_dma(&self, iova: u64, buf: &Mmap) -> io::Result<()> {
        // SAFETY: `buf` is memory of this process that Rust code reaches
        // only through raw pointers (`Mmap`'s volatile accessors), so the
        // device writing it concurrently breaks no reference.
        unsafe { self.iommu.vfio_dma_map(iova, buf.len(), buf.as_ptr()) }
            .map_err(|e| from_vfio(e, format!("mapping {} bytes at IOVA {iova:#x}", buf.len())))
    }

    /// Maps `buf` at `iova` readable only (the device may read, not
    /// write it): the cdev path's IOAS only.
    pub fn map_dma_read_only(&self, iova: u64, buf: &Mmap) -> io::Result<()> {
        use iommufd_bindings::iommufd::*;
        let fd = self
            .iommufd
            .as_ref()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EOPNOTSUPP))?;
        let map = iommu_ioas_map {
            size: argsz::<iommu_ioas_map>(),
            flags: iommufd_ioas_map_flags_IOMMU_IOAS_MAP_READABLE | iommufd_ioas_map_flags_IOMMU_IOAS_MAP_FIXED_IOVA,
            ioas_id: fd.ioas().id(),
            user_va: buf.as_ptr() as u64,
            length: buf.len() as u64,
            iova,
            ..Default::default()
        };
        fd.iommufd().map_iommu_ioas(&map).map_err(|e| {
            from_vfio(
                VfioError::IommufdIoctlError(e),
                format!("mapping {} bytes read-only at IOVA {iova:#x}", buf.len()),
            )
        })
    }

    /// Unmaps [`iova`, `iova + len`) from the device's DMA; the device
    /// can no longer reach it when this returns.
    pub fn unmap_dma(&self, iova: u64, len: usize) -> io::Result<()> {
        self.iommu
            .vfio_dma_unmap(iova, len)
            .map_err(|e| from_vfio(e, format!("unmapping {len} bytes at IOVA {iova:#x}")))
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn info(&self) -> io::Result<DeviceInfo> {
        let mut i = DeviceInfo {
            argsz: argsz::<DeviceInfo>(),
            ..Default::default()
        };
        // SAFETY: `i` is the structure this ioctl reads and writes.
        check(unsafe { ioctl_with_mut_ref(&self.file, VFIO_DEVICE_GET_INFO(), &mut i) })?;
        Ok(i)
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` for `index`.
    pub fn irq_info(&self, index: u32) -> io::Result<IrqInfo> {
        let mut i = IrqInfo {
            argsz: argsz::<IrqInfo>(),
            index,
            ..Default::default()
        };
        // SAFETY: `i` is the structure this ioctl reads and writes.
        check(unsafe { ioctl_with_mut_ref(&self.file, VFIO_DEVICE_GET_IRQ_INFO(), &mut i) })?;
        Ok(i)
    }

    /// Arms the REQ interrupt: the driver signals `efd` when it needs the
    /// device back (unbind, instance remove).
    pub fn arm_request(&self, efd: &EventFd) -> io::Result<()> {
        self.set_irqs(
            IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER,
            REQ_IRQ_INDEX,
            0,
            &efd.as_raw_fd().to_ne_bytes(),
            1,
        )
    }

    /// The device fd, as a file (for ioctls of other modules).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The device fd.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// `VFIO_DEVICE_SET_IRQS` with `count` entries of `data`.
    pub fn set_irqs(&self, flags: u32, index: u32, start: u32, data: &[u8], count: u32) -> io::Result<()> {
        let head = std::mem::size_of::<vfio_irq_set>();
        let set = vfio_irq_set {
            argsz: (head + data.len()) as u32,
            flags,
            index,
            start,
            count,
            ..Default::default()
        };
        // The header, then the data right after it, as the kernel reads
        // them; u32 words keep the buffer aligned for the header.
        let mut buf = vec![0u32; (head + data.len()).div_ceil(4)];
        // SAFETY: `buf` holds at least `head` bytes, aligned for the
        // header; the data goes right after it, within `buf`.
        unsafe {
            std::ptr::write(buf.as_mut_ptr().cast::<vfio_irq_set>(), set);
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf.as_mut_ptr().cast::<u8>().add(head), data.len());
        }
        // SAFETY: `buf` holds `argsz` bytes the kernel may read.
        check(unsafe { ioctl_with_mut_ptr(&self.file, VFIO_DEVICE_SET_IRQS(), buf.as_mut_ptr()) })
    }

    /// Assigns eventfds to MSI-X vectors `start..` (-1 clears one).
    pub fn set_msix(&self, start: u32, fds: &[RawFd]) -> io::Result<()> {
        let data: Vec<u8> = fds.iter().flat_map(|f| f.to_ne_bytes()).collect();
        self.set_irqs(
            IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER,
            MSIX_IRQ_INDEX,
            start,
            &data,
            fds.len() as u32,
        )
    }

    /// `VFIO_DEVICE_GET_REGION_INFO` for `index`.
    pub fn region_info(&self, index: u32) -> io::Result<RegionInfo> {
        let mut r = RegionInfo {
            argsz: argsz::<RegionInfo>(),
            index,
            ..Default::default()
        };
        // SAFETY: `r` is the structure this ioctl reads and writes.
        check(unsafe { ioctl_with_mut_ref(&self.file, VFIO_DEVICE_GET_REGION_INFO(), &mut r) })?;
        Ok(r)
    }

    /// `VFIO_DEVICE_RESET`.
    pub fn reset(&self) -> io::Result<()> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        check(unsafe { ioctl(&self.file, VFIO_DEVICE_RESET()) })
    }

    /// pread at `off` in region `index`; returns the bytes read.
    pub fn read_at(&self, index: u32, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, region_offset(index) + off)
    }

    /// pwrite at `off` in region `index`; returns the bytes written.
    pub fn write_at(&self, index: u32, off: u64, buf: &[u8]) -> io::Result<usize> {
        FileExt::write_at(&self.file, buf, region_offset(index) + off)
    }

    /// A 32-bit register of the register window (BAR0).
    pub fn reg(&self, off: usize) -> io::Result<u32> {
        let mut b = [0u8; 4];
        let n = self.read_at(BAR0, off as u64, &mut b)?;
        if n != 4 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short register read at {off:#x}"),
            ));
        }
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a 32-bit register of the register window (BAR0).
    pub fn set_reg(&self, off: usize, v: u32) -> io::Result<()> {
        let n = self.write_at(BAR0, off as u64, &v.to_le_bytes())?;
        if n != 4 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("short register write at {off:#x}"),
            ));
        }
        Ok(())
    }

    /// Maps `len` bytes at `off` of region `index` (shared, read-write).
    pub fn mmap(&self, index: u32, off: u64, len: usize) -> io::Result<Mmap> {
        Mmap::new(self.fd(), region_offset(index) + off, len, libc::MAP_SHARED)
    }
}

/// A mapping of part of a region.
pub struct Mmap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain device memory; accesses are volatile.
unsafe impl Send for Mmap {}
// SAFETY: as above; concurrent volatile accesses are the caller's business.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// `len` bytes of fresh, zeroed anonymous memory (a DMA buffer).
    pub fn anonymous(len: usize) -> io::Result<Mmap> {
        Mmap::new(-1, 0, len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS)
    }

    /// mmap(2) of `fd` with `flags`.
    pub fn new(fd: RawFd, off: u64, len: usize, flags: libc::c_int) -> io::Result<Mmap> {
        // SAFETY: a fresh mapping; the kernel checks the arguments.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap { ptr: p.cast(), len })
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mmap refuses length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 32-bit word at `off`.
    pub fn read32(&self, off: usize) -> u32 {
        assert!(
            off.is_multiple_of(4) && off + 4 <= self.len,
            "read32 at {off:#x} outside the mapping"
        );
        // SAFETY: in bounds and aligned (checked above).
        unsafe { std::ptr::read_volatile(self.ptr.add(off).cast::<u32>()) }
    }

    /// Writes the 32-bit word at `off`.
    pub fn write32(&self, off: usize, v: u32) {
        assert!(
            off.is_multiple_of(4) && off + 4 <= self.len,
            "write32 at {off:#x} outside the mapping"
        );
        // SAFETY: in bounds and aligned (checked above).
        unsafe { std::ptr::write_volatile(self.ptr.add(off).cast::<u32>(), v) }
    }

    /// The 64-bit word at `off` (two 32-bit reads, low first).
    pub fn read64(&self, off: usize) -> u64 {
        u64::from(self.read32(off)) | u64::from(self.read32(off + 4)) << 32
    }

    /// Copies `dst.len()` bytes from `off`.
    pub fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= self.len, "read_bytes outside the mapping");
        // SAFETY: in bounds (checked above); the source is device memory
        // that nothing else in this process aliases as a Rust reference.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), dst.as_mut_ptr(), dst.len()) }
    }

    /// Copies `src` to `off`.
    pub fn write_bytes(&self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.len, "write_bytes outside the mapping");
        // SAFETY: as for `read_bytes`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
