// SPDX-License-Identifier: GPL-2.0
//! Raw VFIO/iommufd uapi used by the client (the subset we need), and an
//! open instance: the device fd bound to an iommufd (VFIO cdev interface).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const fn io(nr: u32) -> libc::c_ulong {
    // _IO(';', nr): VFIO_TYPE and IOMMUFD_TYPE are both ';'.
    ((b';' as u32) << 8 | nr) as libc::c_ulong
}
const VFIO_BASE: u32 = 100;
/// `VFIO_DEVICE_GET_INFO`.
pub const VFIO_DEVICE_GET_INFO: libc::c_ulong = io(VFIO_BASE + 7);
/// `VFIO_DEVICE_GET_REGION_INFO`.
pub const VFIO_DEVICE_GET_REGION_INFO: libc::c_ulong = io(VFIO_BASE + 8);
/// `VFIO_DEVICE_GET_IRQ_INFO`.
pub const VFIO_DEVICE_GET_IRQ_INFO: libc::c_ulong = io(VFIO_BASE + 9);
/// `VFIO_DEVICE_SET_IRQS`.
pub const VFIO_DEVICE_SET_IRQS: libc::c_ulong = io(VFIO_BASE + 10);
/// `VFIO_DEVICE_RESET`.
pub const VFIO_DEVICE_RESET: libc::c_ulong = io(VFIO_BASE + 11);
const VFIO_DEVICE_BIND_IOMMUFD: libc::c_ulong = io(VFIO_BASE + 18);
const VFIO_DEVICE_ATTACH_IOMMUFD_PT: libc::c_ulong = io(VFIO_BASE + 19);
const IOMMU_IOAS_ALLOC: libc::c_ulong = io(0x81);

/// `VFIO_PCI_INTX_IRQ_INDEX`.
pub const INTX_IRQ_INDEX: u32 = 0;
/// `VFIO_PCI_MSIX_IRQ_INDEX`.
pub const MSIX_IRQ_INDEX: u32 = 2;
/// `VFIO_PCI_REQ_IRQ_INDEX`.
pub const REQ_IRQ_INDEX: u32 = 4;
/// `VFIO_PCI_NUM_IRQS`.
pub const NUM_IRQS: u32 = 5;
/// `VFIO_IRQ_SET_DATA_NONE`.
pub const IRQ_SET_DATA_NONE: u32 = 1 << 0;
/// `VFIO_IRQ_SET_DATA_BOOL`.
pub const IRQ_SET_DATA_BOOL: u32 = 1 << 1;
/// `VFIO_IRQ_SET_DATA_EVENTFD`.
pub const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
/// `VFIO_IRQ_SET_ACTION_MASK`.
pub const IRQ_SET_ACTION_MASK: u32 = 1 << 3;
/// `VFIO_IRQ_SET_ACTION_UNMASK`.
pub const IRQ_SET_ACTION_UNMASK: u32 = 1 << 4;
/// `VFIO_IRQ_SET_ACTION_TRIGGER`.
pub const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
/// `VFIO_IRQ_INFO_EVENTFD`.
pub const IRQ_INFO_EVENTFD: u32 = 1 << 0;
/// `VFIO_IRQ_INFO_MASKABLE`.
pub const IRQ_INFO_MASKABLE: u32 = 1 << 1;
/// `VFIO_DEVICE_FLAGS_RESET`.
pub const DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// Region indices (`VFIO_PCI_*_REGION_INDEX`).
pub const BAR0: u32 = 0;
/// VRAM slice.
pub const BAR2: u32 = 2;
/// MSI-X table.
pub const BAR4: u32 = 4;
/// Config space.
pub const CONFIG: u32 = 7;
/// `VFIO_PCI_NUM_REGIONS`.
pub const NUM_REGIONS: u32 = 9;
/// `VFIO_REGION_INFO_FLAG_READ`.
pub const REGION_READ: u32 = 1;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub const REGION_WRITE: u32 = 2;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const REGION_MMAP: u32 = 4;

/// File offset of region `index` (vfio-pci encoding).
pub const fn region_offset(index: u32) -> u64 {
    (index as u64) << 40
}

/// `struct vfio_region_info` (without capabilities).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RegionInfo {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub cap_offset: u32,
    pub size: u64,
    pub offset: u64,
}

/// `struct vfio_device_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceInfo {
    pub argsz: u32,
    pub flags: u32,
    pub num_regions: u32,
    pub num_irqs: u32,
}

/// `struct vfio_irq_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IrqInfo {
    pub argsz: u32,
    pub flags: u32,
    pub index: u32,
    pub count: u32,
}

#[repr(C)]
struct BindIommufd {
    argsz: u32,
    flags: u32,
    iommufd: i32,
    out_devid: u32,
}

#[repr(C)]
struct AttachPt {
    argsz: u32,
    flags: u32,
    pt_id: u32,
    pasid: u32,
}

#[repr(C)]
struct IoasAlloc {
    size: u32,
    flags: u32,
    out_ioas_id: u32,
}

/// A raw ioctl with a pointer argument (for tests of bad arguments too).
///
/// # Safety
///
/// Whatever `arg` points to that the kernel may write for `req` must be
/// memory this process owns and does not otherwise borrow; a pointer to
/// unmapped memory (or null) is fine, the kernel answers EFAULT.
pub unsafe fn ioctl_ptr(fd: RawFd, req: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: per the contract.
    let r = unsafe { libc::ioctl(fd, req, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ioctl<T>(fd: RawFd, req: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is a live, correctly sized repr(C) struct for `req`.
    let r = unsafe { libc::ioctl(fd, req, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An eventfd.
pub struct EventFd(File);

impl EventFd {
    /// A new non-blocking-free eventfd (reads block until signalled).
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: plain eventfd creation.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and ours.
        Ok(EventFd(unsafe { File::from_raw_fd(fd) }))
    }

    /// Waits up to `ms` milliseconds; true if signalled (and consumes it).
    pub fn wait(&self, ms: i32) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
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
        let mut b = [0u8; 8];
        // SAFETY: reading 8 bytes into a local buffer.
        let n = unsafe { libc::read(self.0.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
        Ok(n == 8)
    }

    /// Signals it (adds 1 to its counter).
    pub fn signal(&self) -> io::Result<()> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes from a local buffer.
        let n = unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), 8) };
        if n == 8 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The fd.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// An instance opened through its VFIO cdev.
pub struct Device {
    dev: File,
    _iommufd: File,
}

/// The VFIO cdev of mdev `uuid` (`/dev/vfio/devices/vfioN`).
pub fn cdev_path(uuid: &str) -> io::Result<PathBuf> {
    let dir = Path::new("/sys/bus/mdev/devices").join(uuid).join("vfio-dev");
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
    /// Opens instance `uuid`: device cdev, bound to a fresh iommufd with
    /// an IOAS attached (what the emulated-IOMMU device needs).
    pub fn open(uuid: &str) -> io::Result<Device> {
        let path = cdev_path(uuid)?;
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| crate::context(e, path.display()))?;
        let iommufd = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/iommu")
            .map_err(|e| crate::context(e, "/dev/iommu"))?;
        let mut bind = BindIommufd {
            argsz: std::mem::size_of::<BindIommufd>() as u32,
            flags: 0,
            iommufd: iommufd.as_raw_fd(),
            out_devid: 0,
        };
        ioctl(dev.as_raw_fd(), VFIO_DEVICE_BIND_IOMMUFD, &mut bind)
            .map_err(|e| crate::context(e, "VFIO_DEVICE_BIND_IOMMUFD"))?;
        let mut ioas = IoasAlloc {
            size: std::mem::size_of::<IoasAlloc>() as u32,
            flags: 0,
            out_ioas_id: 0,
        };
        ioctl(iommufd.as_raw_fd(), IOMMU_IOAS_ALLOC, &mut ioas).map_err(|e| crate::context(e, "IOMMU_IOAS_ALLOC"))?;
        let mut at = AttachPt {
            argsz: std::mem::size_of::<AttachPt>() as u32,
            flags: 0,
            pt_id: ioas.out_ioas_id,
            pasid: 0,
        };
        ioctl(dev.as_raw_fd(), VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut at)
            .map_err(|e| crate::context(e, "VFIO_DEVICE_ATTACH_IOMMUFD_PT"))?;
        Ok(Device { dev, _iommufd: iommufd })
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn info(&self) -> io::Result<DeviceInfo> {
        let mut i = DeviceInfo {
            argsz: std::mem::size_of::<DeviceInfo>() as u32,
            ..Default::default()
        };
        ioctl(self.dev.as_raw_fd(), VFIO_DEVICE_GET_INFO, &mut i)?;
        Ok(i)
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO` for `index`.
    pub fn irq_info(&self, index: u32) -> io::Result<IrqInfo> {
        let mut i = IrqInfo {
            argsz: std::mem::size_of::<IrqInfo>() as u32,
            index,
            ..Default::default()
        };
        ioctl(self.dev.as_raw_fd(), VFIO_DEVICE_GET_IRQ_INFO, &mut i)?;
        Ok(i)
    }

    /// Arms the REQ interrupt: the driver signals `efd` when it needs the
    /// device back (unbind, instance remove).
    pub fn arm_request(&self, efd: &EventFd) -> io::Result<()> {
        self.set_irqs(
            IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER,
            REQ_IRQ_INDEX,
            0,
            &efd.raw().to_ne_bytes(),
            1,
        )
    }

    /// The device fd.
    pub fn fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }

    /// `VFIO_DEVICE_SET_IRQS` with `count` entries of `data`.
    pub fn set_irqs(&self, flags: u32, index: u32, start: u32, data: &[u8], count: u32) -> io::Result<()> {
        let mut buf = vec![0u8; 20 + data.len()];
        let argsz = buf.len() as u32;
        for (i, v) in [argsz, flags, index, start, count].into_iter().enumerate() {
            buf[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        buf[20..].copy_from_slice(data);
        // SAFETY: `buf` is ours, argsz bytes long.
        unsafe { ioctl_ptr(self.fd(), VFIO_DEVICE_SET_IRQS, buf.as_mut_ptr().cast()) }
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
            argsz: std::mem::size_of::<RegionInfo>() as u32,
            index,
            ..Default::default()
        };
        ioctl(self.fd(), VFIO_DEVICE_GET_REGION_INFO, &mut r)?;
        Ok(r)
    }

    /// `VFIO_DEVICE_RESET`.
    pub fn reset(&self) -> io::Result<()> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        unsafe { ioctl_ptr(self.fd(), VFIO_DEVICE_RESET, std::ptr::null_mut()) }
    }

    /// pread at `off` in region `index`; returns the bytes read.
    pub fn read_at(&self, index: u32, off: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(&self.dev, buf, region_offset(index) + off)
    }

    /// pwrite at `off` in region `index`; returns the bytes written.
    pub fn write_at(&self, index: u32, off: u64, buf: &[u8]) -> io::Result<usize> {
        FileExt::write_at(&self.dev, buf, region_offset(index) + off)
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
