// SPDX-License-Identifier: GPL-2.0
//! Live migration of an instance through VFIO migration v2, as a VMM
//! drives it: the device feature calls (`VFIO_DEVICE_FEATURE_MIGRATION`,
//! `_MIG_DEVICE_STATE`, `_MIG_DATA_SIZE`), the data fd with
//! `VFIO_MIG_GET_PRECOPY_INFO`, and `migrate`, which moves one instance's
//! state into another: pre-copy rounds while the source runs, then stop,
//! the rest, and the destination running.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::{Duration, Instant};

use vfio_bindings::bindings::vfio::*;
use vmm_sys_util::ioctl::{ioctl_with_mut_ptr, ioctl_with_mut_ref};
use vmm_sys_util::ioctl_io_nr;

use crate::vfio::Device;

ioctl_io_nr!(VFIO_DEVICE_FEATURE, VFIO_TYPE.into(), VFIO_BASE + 17);
ioctl_io_nr!(VFIO_MIG_GET_PRECOPY_INFO, VFIO_TYPE.into(), VFIO_BASE + 21);

pub use vfio_bindings::bindings::vfio::{
    VFIO_MIGRATION_P2P as MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY as MIGRATION_PRE_COPY,
    VFIO_MIGRATION_STOP_COPY as MIGRATION_STOP_COPY,
};

/// `enum vfio_device_mig_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    Error = vfio_device_mig_state_VFIO_DEVICE_STATE_ERROR,
    Stop = vfio_device_mig_state_VFIO_DEVICE_STATE_STOP,
    Running = vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING,
    StopCopy = vfio_device_mig_state_VFIO_DEVICE_STATE_STOP_COPY,
    Resuming = vfio_device_mig_state_VFIO_DEVICE_STATE_RESUMING,
    RunningP2p = vfio_device_mig_state_VFIO_DEVICE_STATE_RUNNING_P2P,
    PreCopy = vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY,
    PreCopyP2p = vfio_device_mig_state_VFIO_DEVICE_STATE_PRE_COPY_P2P,
}

impl State {
    /// Every state a user may ask for (all but ERROR).
    pub const ALL: [State; 7] = [
        State::Stop,
        State::Running,
        State::StopCopy,
        State::Resuming,
        State::RunningP2p,
        State::PreCopy,
        State::PreCopyP2p,
    ];

    /// From the uapi's number.
    pub fn from_raw(v: u32) -> Option<State> {
        [State::Error].into_iter().chain(State::ALL).find(|s| *s as u32 == v)
    }
}

/// An ioctl whose argument is `argsz`, `flags` (two u32, the layout of
/// `vfio_device_feature` and `vfio_iommu_type1_dirty_bitmap`) and then
/// `payload`; the payload comes back as the kernel left it.
fn flagged_ioctl(fd: &impl AsRawFd, req: libc::c_ulong, flags: u32, payload: &mut [u8]) -> io::Result<()> {
    const HEAD: usize = 8;
    let mut buf = vec![0u64; (HEAD + payload.len()).div_ceil(8)];
    let argsz = (HEAD + payload.len()) as u32;
    // SAFETY: `buf` holds the header and the payload, 8-byte aligned.
    unsafe {
        let p = buf.as_mut_ptr().cast::<u8>();
        std::ptr::copy_nonoverlapping(argsz.to_ne_bytes().as_ptr(), p, 4);
        std::ptr::copy_nonoverlapping(flags.to_ne_bytes().as_ptr(), p.add(4), 4);
        std::ptr::copy_nonoverlapping(payload.as_ptr(), p.add(HEAD), payload.len());
    }
    // SAFETY: the kernel reads and writes at most `argsz` bytes of `buf`
    // (and, for a dirty bitmap, the bitmap the payload points at, which
    // the caller keeps valid).
    let r = unsafe { ioctl_with_mut_ptr(fd, req, buf.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; the payload is read back from where it was put.
    unsafe {
        std::ptr::copy_nonoverlapping(buf.as_ptr().cast::<u8>().add(HEAD), payload.as_mut_ptr(), payload.len());
    }
    Ok(())
}

/// `VFIO_DEVICE_FEATURE` with `flags` and `payload`.
fn feature(d: &Device, flags: u32, payload: &mut [u8]) -> io::Result<()> {
    flagged_ioctl(d.file(), VFIO_DEVICE_FEATURE(), flags, payload)
}

impl Device {
    /// `VFIO_DEVICE_FEATURE_MIGRATION`: the `MIGRATION_*` flags.
    pub fn migration_flags(&self) -> io::Result<u64> {
        let mut p = [0u8; 8];
        feature(self, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mut p)?;
        Ok(u64::from_le_bytes(p))
    }

    /// The migration state.
    pub fn mig_state(&self) -> io::Result<u32> {
        let mut p = [0u8; 8];
        feature(
            self,
            VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
            &mut p,
        )?;
        Ok(u32::from_le_bytes([p[0], p[1], p[2], p[3]]))
    }

    /// Moves to migration state `s` (a raw number, so that tests can ask
    /// for ones that do not exist); the data fd if the arc opened one.
    pub fn set_mig_state_raw(&self, s: u32) -> io::Result<Option<File>> {
        let mut p = [0u8; 8];
        p[..4].copy_from_slice(&s.to_le_bytes());
        p[4..].copy_from_slice(&(-1i32).to_le_bytes());
        feature(
            self,
            VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
            &mut p,
        )?;
        let fd = RawFd::from_le_bytes([p[4], p[5], p[6], p[7]]);
        // SAFETY: the kernel installed `fd` for us; we own it from here.
        Ok((fd >= 0).then(|| unsafe { File::from_raw_fd(fd) }))
    }

    /// Moves to migration state `s`.
    pub fn set_mig_state(&self, s: State) -> io::Result<Option<File>> {
        self.set_mig_state_raw(s as u32)
            .map_err(|e| crate::context(e, format!("migration state {s:?}")))
    }

    /// `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`: a STOP_COPY stream's bytes.
    pub fn mig_data_size(&self) -> io::Result<u64> {
        let mut p = [0u8; 8];
        feature(
            self,
            VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
            &mut p,
        )?;
        Ok(u64::from_le_bytes(p))
    }
}

/// `VFIO_MIG_GET_PRECOPY_INFO` on a saving data fd: (initial, dirty) bytes.
pub fn precopy_info(f: &File) -> io::Result<(u64, u64)> {
    let mut i = vfio_precopy_info {
        argsz: std::mem::size_of::<vfio_precopy_info>() as u32,
        ..Default::default()
    };
    // SAFETY: `i` is the structure this ioctl reads and writes.
    let r = unsafe { ioctl_with_mut_ref(f, VFIO_MIG_GET_PRECOPY_INFO(), &mut i) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((i.initial_bytes, i.dirty_bytes))
}

/// Copies `src` into `dst` until the end of the stream, or, with
/// `precopy`, until its temporary end (ENOMSG); returns the bytes.
pub fn copy(src: &mut File, dst: &mut File, precopy: bool) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match src.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if precopy && e.raw_os_error() == Some(libc::ENOMSG) => return Ok(n),
            Err(e) => return Err(crate::context(e, "reading the migration stream")),
        };
        dst.write_all(&buf[..k])
            .map_err(|e| crate::context(e, "writing the migration stream"))?;
        n += k as u64;
    }
}

/// How `migrate` goes about it.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Send VRAM while the source runs, until what is left is small.
    pub precopy: bool,
    /// Pre-copy rounds at most.
    pub max_rounds: u32,
    /// Pre-copy ends once the initial data is sent and no more than this
    /// is dirty.
    pub dirty_limit: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            precopy: true,
            max_rounds: 8,
            dirty_limit: 256 << 10,
        }
    }
}

/// What a migration took.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    /// Stream bytes in all.
    pub bytes: u64,
    /// Of which sent while the source ran.
    pub precopy_bytes: u64,
    /// Pre-copy rounds (each read to the stream's temporary end).
    pub rounds: u32,
    /// From stopping the source to the destination running.
    pub downtime: Duration,
    pub total: Duration,
}

/// Moves `src`'s state into `dst` (both open, `dst` a fresh instance of
/// the same geometry), the way a VMM does: `dst` to RESUMING, `src`
/// through PRE_COPY (if asked) to STOP_COPY, the stream across, `dst`
/// RUNNING. `src` is left in STOP.
pub fn migrate(src: &Device, dst: &Device, opt: &Options) -> io::Result<Report> {
    let t0 = Instant::now();
    let mut r = Report::default();
    let mut dfd = dst
        .set_mig_state(State::Resuming)?
        .ok_or_else(|| io::Error::other("RESUMING gave no data fd"))?;
    let (mut sfd, stopped) = if opt.precopy {
        let mut f = src
            .set_mig_state(State::PreCopy)?
            .ok_or_else(|| io::Error::other("PRE_COPY gave no data fd"))?;
        loop {
            r.precopy_bytes += copy(&mut f, &mut dfd, true)?;
            r.rounds += 1;
            let (initial, dirty) = precopy_info(&f).map_err(|e| crate::context(e, "VFIO_MIG_GET_PRECOPY_INFO"))?;
            if (initial == 0 && dirty <= opt.dirty_limit) || r.rounds >= opt.max_rounds {
                break;
            }
        }
        let stopped = Instant::now();
        if src.set_mig_state(State::StopCopy)?.is_some() {
            return Err(io::Error::other("STOP_COPY after PRE_COPY opened a second data fd"));
        }
        (f, stopped)
    } else {
        let stopped = Instant::now();
        let f = src
            .set_mig_state(State::StopCopy)?
            .ok_or_else(|| io::Error::other("STOP_COPY gave no data fd"))?;
        (f, stopped)
    };
    r.bytes = r.precopy_bytes + copy(&mut sfd, &mut dfd, false)?;
    drop(dfd);
    dst.set_mig_state(State::Running)?;
    r.downtime = stopped.elapsed();
    drop(sfd);
    src.set_mig_state(State::Stop)?;
    r.total = t0.elapsed();
    Ok(r)
}

ioctl_io_nr!(VFIO_IOMMU_DIRTY_PAGES, VFIO_TYPE.into(), VFIO_BASE + 17);

/// `VFIO_IOMMU_DIRTY_PAGES` with `flags` and `payload`, on a type1
/// container.
fn dirty_pages(c: &crate::vfio::Container, flags: u32, payload: &mut [u8]) -> io::Result<()> {
    flagged_ioctl(&**c, VFIO_IOMMU_DIRTY_PAGES(), flags, payload)
}

/// Starts (`on`) or stops type1's dirty-page tracking of the container
/// (what QEMU's migration uses for guest memory with a type1 container:
/// for devices that only pin, the pages they pinned).
pub fn type1_dirty_tracking(c: &crate::vfio::Container, on: bool) -> io::Result<()> {
    let flag = if on {
        VFIO_IOMMU_DIRTY_PAGES_FLAG_START
    } else {
        VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP
    };
    dirty_pages(c, flag, &mut [])
}

/// Type1's dirty bitmap of [`iova`, `iova + size`) (a whole mapping), one
/// bit per 4 KiB page; reading it clears it.
pub fn type1_dirty_bitmap(c: &crate::vfio::Container, iova: u64, size: u64) -> io::Result<Vec<u64>> {
    let pages = size / 4096;
    let mut bits = vec![0u64; pages.div_ceil(64) as usize];
    let get = vfio_iommu_type1_dirty_bitmap_get {
        iova,
        size,
        bitmap: vfio_bitmap {
            pgsize: 4096,
            size: (bits.len() * 8) as u64,
            data: bits.as_mut_ptr(),
        },
    };
    let mut p = vec![0u8; std::mem::size_of_val(&get)];
    // SAFETY: `p` holds exactly one `vfio_iommu_type1_dirty_bitmap_get`.
    unsafe { std::ptr::write_unaligned(p.as_mut_ptr().cast(), get) };
    dirty_pages(c, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, &mut p)?;
    Ok(bits)
}

/// A plain-data uapi structure as the payload bytes of a feature call.
fn as_bytes<T: Copy>(v: &T) -> Vec<u8> {
    let mut b = vec![0u8; std::mem::size_of::<T>()];
    // SAFETY: `b` holds exactly one `T`; `T` is a uapi structure of
    // integers.
    unsafe { std::ptr::write_unaligned(b.as_mut_ptr().cast(), *v) };
    b
}

impl Device {
    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_START` over `ranges` (IOVA, length)
    /// at 4 KiB pages: the device logs the guest pages it writes.
    pub fn dma_logging_start(&self, ranges: &[(u64, u64)]) -> io::Result<()> {
        let r: Vec<vfio_device_feature_dma_logging_range> = ranges
            .iter()
            .map(|&(iova, length)| vfio_device_feature_dma_logging_range { iova, length })
            .collect();
        let c = vfio_device_feature_dma_logging_control {
            page_size: 4096,
            num_ranges: r.len() as u32,
            __reserved: 0,
            ranges: r.as_ptr() as u64,
        };
        feature(
            self,
            VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
            &mut as_bytes(&c),
        )
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP`.
    pub fn dma_logging_stop(&self) -> io::Result<()> {
        feature(
            self,
            VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
            &mut [],
        )
    }

    /// `VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT` of [`iova`, `iova + len`):
    /// one bit per 4 KiB page written since the last report.
    pub fn dma_logging_report(&self, iova: u64, len: u64) -> io::Result<Vec<u64>> {
        let mut bits = vec![0u64; (len / 4096).div_ceil(64) as usize];
        let r = vfio_device_feature_dma_logging_report {
            iova,
            length: len,
            page_size: 4096,
            bitmap: bits.as_mut_ptr() as u64,
        };
        feature(
            self,
            VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
            &mut as_bytes(&r),
        )?;
        Ok(bits)
    }
}
