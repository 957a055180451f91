// SPDX-License-Identifier: GPL-2.0
//! The device model behind the vfio-user socket: config space, BAR0
//! registers, BAR2 VRAM (a memfd that QEMU maps into the guest) and the
//! MSI-X eventfds. The vfio-user server calls it from one thread.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use log::{info, warn};
use vfio_bindings::bindings::vfio::*;
use vfio_user::{IrqInfo, ServerBackend, ServerRegion, SparseArea};

use crate::config::{ConfigSpace, CONFIG_SIZE};
use crate::regs;

/// What the device is built with (command-line options).
#[derive(Clone, Debug)]
pub struct DeviceParams {
    /// Number of hardware contexts.
    pub contexts: u32,
    /// VRAM size in bytes (a power of two, BAR sizing needs it).
    pub vram_size: u64,
    /// Number of MSI-X vectors.
    pub vectors: u32,
}

impl Default for DeviceParams {
    fn default() -> Self {
        DeviceParams {
            contexts: regs::DEFAULT_CONTEXTS,
            vram_size: regs::DEFAULT_VRAM_SIZE,
            vectors: regs::DEFAULT_CONTEXTS + 1,
        }
    }
}

impl DeviceParams {
    /// Checks the parameters against what the register map can express.
    pub fn validate(&self) -> Result<(), String> {
        if self.contexts == 0 || self.contexts > regs::MAX_CONTEXTS {
            return Err(format!("contexts must be 1..={}", regs::MAX_CONTEXTS));
        }
        if !self.vram_size.is_power_of_two() || self.vram_size < (1 << 20) {
            return Err("VRAM size must be a power of two of at least 1 MiB".into());
        }
        if self.vectors == 0 || self.vectors > 2048 {
            return Err("vectors must be 1..=2048".into());
        }
        Ok(())
    }
}

/// VRAM: a shared memfd mapping, exported to QEMU for direct guest mmap.
pub struct Vram {
    fd: File,
    ptr: *mut u8,
    size: usize,
}

// SAFETY: the mapping is owned by this struct and only accessed through
// &self/&mut self; the pointer is valid for `size` bytes until Drop.
unsafe impl Send for Vram {}

impl Vram {
    /// Creates and maps a memfd of `size` bytes.
    pub fn new(size: u64) -> std::io::Result<Self> {
        let size = usize::try_from(size).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        // SAFETY: the name is a valid C string; flags are valid.
        let fd = unsafe { libc::memfd_create(c"vslice-vram".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nobody else.
        let fd = unsafe { File::from_raw_fd(fd) };
        fd.set_len(size as u64)?;
        // SAFETY: mapping a fresh memfd of `size` bytes, shared, read/write.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Vram {
            fd,
            ptr: ptr.cast(),
            size,
        })
    }

    /// The whole VRAM as bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr is a live mapping of size bytes (see new()).
        unsafe { std::slice::from_raw_parts(self.ptr, self.size) }
    }

    /// The whole VRAM as mutable bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in bytes(), and &mut self makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.size) }
    }

    /// The memfd, handed to QEMU with the region info.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Vram {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in new(); nothing else uses it.
        unsafe { libc::munmap(self.ptr.cast(), self.size) };
    }
}

/// The simulated device.
pub struct Device {
    params: DeviceParams,
    config: ConfigSpace,
    vram: Vram,
    scratch: u32,
    control: u32,
    irqs: Vec<Option<File>>,
    /// Accesses that were refused (bad offset or size), for tests and logs.
    pub bad_accesses: u64,
}

impl Device {
    /// A device in its reset state.
    pub fn new(params: DeviceParams) -> std::io::Result<Self> {
        params
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let vram = Vram::new(params.vram_size)?;
        Ok(Device {
            config: ConfigSpace::new(params.vectors, params.vram_size),
            irqs: (0..params.vectors).map(|_| None).collect(),
            params,
            vram,
            scratch: 0,
            control: 0,
            bad_accesses: 0,
        })
    }

    /// The vfio-user region table: config, BAR0, BAR2 (mmap-able), BAR4.
    pub fn regions(&self) -> Vec<ServerRegion> {
        (0..VFIO_PCI_NUM_REGIONS)
            .map(|index| {
                let mut info = vfio_region_info {
                    argsz: std::mem::size_of::<vfio_region_info>() as u32,
                    index,
                    ..Default::default()
                };
                let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
                let mut sparse_areas = Vec::new();
                let mut mmap_fd = None;
                match index {
                    VFIO_PCI_CONFIG_REGION_INDEX => (info.size, info.flags) = (CONFIG_SIZE as u64, rw),
                    VFIO_PCI_BAR0_REGION_INDEX => (info.size, info.flags) = (regs::BAR0_SIZE, rw),
                    VFIO_PCI_BAR2_REGION_INDEX => {
                        info.size = self.params.vram_size;
                        info.flags = rw | VFIO_REGION_INFO_FLAG_MMAP;
                        // The crate sends the fd only with a sparse-mmap
                        // capability: one area covering the whole BAR.
                        sparse_areas.push(SparseArea {
                            area: vfio_region_sparse_mmap_area {
                                offset: 0,
                                size: self.params.vram_size,
                            },
                        });
                        mmap_fd = Some(self.vram.raw_fd());
                    }
                    VFIO_PCI_BAR4_REGION_INDEX => (info.size, info.flags) = (regs::BAR4_SIZE, rw),
                    _ => {}
                }
                ServerRegion {
                    region_info: info,
                    sparse_areas,
                    mmap_fd,
                }
            })
            .collect()
    }

    /// The vfio-user IRQ table: MSI-X only (no INTx, no MSI).
    pub fn irq_info(&self) -> Vec<IrqInfo> {
        (0..VFIO_PCI_NUM_IRQS)
            .map(|index| IrqInfo {
                index,
                flags: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                    VFIO_IRQ_INFO_EVENTFD
                } else {
                    0
                },
                count: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                    self.params.vectors
                } else {
                    0
                },
            })
            .collect()
    }

    fn bar0_read32(&self, off: usize) -> Option<u32> {
        let vram = self.params.vram_size;
        Some(match off {
            regs::REG_ID => regs::DEVICE_ID_MAGIC,
            regs::REG_VERSION => regs::DEVICE_VERSION,
            regs::REG_NUM_CONTEXTS => self.params.contexts,
            regs::REG_NUM_VECTORS => self.params.vectors,
            regs::REG_VRAM_SIZE_LO => vram as u32,
            regs::REG_VRAM_SIZE_HI => (vram >> 32) as u32,
            regs::REG_CTX_STRIDE => regs::CTX_STRIDE as u32,
            regs::REG_SCRATCH => self.scratch,
            regs::REG_CONTROL => self.control,
            regs::REG_STATUS => regs::STATUS_READY,
            _ if off < regs::ctx_window(self.params.contexts) => 0,
            _ => return None,
        })
    }

    fn bar0_write32(&mut self, off: usize, v: u32) -> bool {
        match off {
            regs::REG_SCRATCH => self.scratch = v,
            regs::REG_CONTROL => {
                if v & regs::CTRL_RESET != 0 {
                    self.device_reset();
                } else {
                    self.control = v & regs::CTRL_ENABLE;
                }
            }
            _ if off < regs::ctx_window(self.params.contexts) => {}
            _ => return false,
        }
        true
    }

    /// Device reset: registers to their reset values; VRAM is kept (as
    /// on real hardware, memory contents survive a reset).
    pub fn device_reset(&mut self) {
        self.scratch = 0;
        self.control = 0;
    }

    /// Signals MSI-X vector `v` if the guest wired it to an eventfd.
    pub fn raise(&mut self, v: u32) {
        if let Some(Some(fd)) = self.irqs.get_mut(v as usize) {
            if let Err(e) = fd.write_all(&1u64.to_le_bytes()) {
                warn!("MSI-X vector {v}: eventfd write failed: {e}");
            }
        }
    }

    fn refuse(&mut self, what: &str, region: u32, off: u64, len: usize) {
        self.bad_accesses += 1;
        warn!("refused {what} region {region} offset {off:#x} size {len}");
    }
}

fn vram_range(size: u64, off: u64, len: usize) -> Option<std::ops::Range<usize>> {
    let end = off.checked_add(len as u64)?;
    (end <= size).then_some(off as usize..end as usize)
}

impl ServerBackend for Device {
    fn region_read(&mut self, region: u32, off: u64, data: &mut [u8]) -> std::io::Result<()> {
        let ok = match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.read(off, data),
            VFIO_PCI_BAR0_REGION_INDEX => {
                let v = if data.len() == 4 && off.is_multiple_of(4) {
                    usize::try_from(off).ok().and_then(|o| self.bar0_read32(o))
                } else {
                    None
                };
                match v {
                    Some(v) => data.copy_from_slice(&v.to_le_bytes()),
                    None => data.fill(0xff),
                }
                v.is_some()
            }
            VFIO_PCI_BAR2_REGION_INDEX => match vram_range(self.params.vram_size, off, data.len()) {
                Some(r) => {
                    data.copy_from_slice(&self.vram.bytes()[r]);
                    true
                }
                None => {
                    data.fill(0xff);
                    false
                }
            },
            _ => {
                data.fill(0xff);
                false
            }
        };
        if !ok {
            self.refuse("read", region, off, data.len());
        }
        Ok(())
    }

    fn region_write(&mut self, region: u32, off: u64, data: &[u8]) -> std::io::Result<()> {
        let ok = match region {
            VFIO_PCI_CONFIG_REGION_INDEX => self.config.write(off, data),
            VFIO_PCI_BAR0_REGION_INDEX => match (<[u8; 4]>::try_from(data), usize::try_from(off)) {
                (Ok(b), Ok(o)) if o.is_multiple_of(4) => self.bar0_write32(o, u32::from_le_bytes(b)),
                _ => false,
            },
            VFIO_PCI_BAR2_REGION_INDEX => match vram_range(self.params.vram_size, off, data.len()) {
                Some(r) => {
                    self.vram.bytes_mut()[r].copy_from_slice(data);
                    true
                }
                None => false,
            },
            _ => false,
        };
        if !ok {
            self.refuse("write", region, off, data.len());
        }
        Ok(())
    }

    fn dma_map(
        &mut self,
        _flags: vfio_user::DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        info!(
            "dma_map iova {address:#x} size {size:#x} offset {offset:#x} fd {}",
            fd.is_some()
        );
        Ok(())
    }

    fn dma_unmap(&mut self, _flags: vfio_user::DmaUnmapFlags, address: u64, size: u64) -> std::io::Result<()> {
        info!("dma_unmap iova {address:#x} size {size:#x}");
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        info!("device reset (vfio-user DEVICE_RESET)");
        self.device_reset();
        Ok(())
    }

    fn set_irqs(&mut self, index: u32, flags: u32, start: u32, count: u32, fds: Vec<File>) -> std::io::Result<()> {
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let end = start.checked_add(count).filter(|&e| e <= self.params.vectors);
        let Some(end) = end else {
            warn!("set_irqs: vectors {start}+{count} beyond {}", self.params.vectors);
            return Err(std::io::ErrorKind::InvalidInput.into());
        };
        if flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 && flags & VFIO_IRQ_SET_ACTION_TRIGGER != 0 {
            let mut fds = fds.into_iter();
            for v in start..end {
                self.irqs[v as usize] = fds.next();
            }
        } else if flags & VFIO_IRQ_SET_DATA_NONE != 0 && flags & VFIO_IRQ_SET_ACTION_TRIGGER != 0 {
            if count == 0 {
                self.irqs.iter_mut().for_each(|s| *s = None);
            } else {
                (start..end).for_each(|v| self.raise(v));
            }
        }
        info!(
            "set_irqs MSI-X {start}+{count} flags {flags:#x}: {} wired",
            self.irqs.iter().flatten().count()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::new(DeviceParams {
            vram_size: 1 << 20,
            ..Default::default()
        })
        .unwrap()
    }

    fn rd(d: &mut Device, off: u64) -> u32 {
        let mut b = [0u8; 4];
        d.region_read(VFIO_PCI_BAR0_REGION_INDEX, off, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    #[test]
    fn id_registers() {
        let mut d = dev();
        assert_eq!(rd(&mut d, regs::REG_ID as u64), regs::DEVICE_ID_MAGIC);
        assert_eq!(rd(&mut d, regs::REG_VERSION as u64), regs::DEVICE_VERSION);
        assert_eq!(rd(&mut d, regs::REG_NUM_CONTEXTS as u64), regs::DEFAULT_CONTEXTS);
        assert_eq!(rd(&mut d, regs::REG_VRAM_SIZE_LO as u64), 1 << 20);
        assert_eq!(rd(&mut d, regs::REG_VRAM_SIZE_HI as u64), 0);
        assert_eq!(d.bad_accesses, 0);
    }

    #[test]
    fn scratch_and_reset() {
        let mut d = dev();
        d.region_write(
            VFIO_PCI_BAR0_REGION_INDEX,
            regs::REG_SCRATCH as u64,
            &0xdead_beefu32.to_le_bytes(),
        )
        .unwrap();
        assert_eq!(rd(&mut d, regs::REG_SCRATCH as u64), 0xdead_beef);
        d.region_write(
            VFIO_PCI_BAR0_REGION_INDEX,
            regs::REG_CONTROL as u64,
            &regs::CTRL_RESET.to_le_bytes(),
        )
        .unwrap();
        assert_eq!(rd(&mut d, regs::REG_SCRATCH as u64), 0);
        assert_eq!(rd(&mut d, regs::REG_CONTROL as u64), 0);
    }

    #[test]
    fn bad_bar0_accesses_read_all_ones_and_are_counted() {
        let mut d = dev();
        assert_eq!(rd(&mut d, 2), !0);
        assert_eq!(rd(&mut d, regs::BAR0_SIZE), !0);
        assert_eq!(rd(&mut d, u64::MAX - 1), !0);
        let mut b = [0u8; 2];
        d.region_read(VFIO_PCI_BAR0_REGION_INDEX, 0, &mut b).unwrap();
        assert_eq!(b, [0xff, 0xff]);
        let mut big = [0u8; 16];
        d.region_read(VFIO_PCI_BAR0_REGION_INDEX, 0, &mut big).unwrap();
        assert_eq!(big, [0xff; 16]);
        d.region_write(VFIO_PCI_BAR0_REGION_INDEX, 1, &[1, 2, 3, 4]).unwrap();
        assert_eq!(d.bad_accesses, 6);
    }

    #[test]
    fn vram_rw_and_bounds() {
        let mut d = dev();
        d.region_write(VFIO_PCI_BAR2_REGION_INDEX, 4096, b"hello").unwrap();
        let mut b = [0u8; 5];
        d.region_read(VFIO_PCI_BAR2_REGION_INDEX, 4096, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        assert_eq!(&d.vram.bytes()[4096..4101], b"hello");
        d.region_read(VFIO_PCI_BAR2_REGION_INDEX, (1 << 20) - 2, &mut b)
            .unwrap();
        assert_eq!(b, [0xff; 5]);
        assert_eq!(d.bad_accesses, 1);
    }

    #[test]
    fn region_table_exports_vram_fd() {
        let d = dev();
        let r = d.regions();
        let bar2 = &r[VFIO_PCI_BAR2_REGION_INDEX as usize];
        assert!(bar2.mmap_fd.is_some());
        assert_eq!(bar2.sparse_areas.len(), 1);
        assert_eq!(bar2.region_info.size, 1 << 20);
        assert_eq!(r[VFIO_PCI_BAR0_REGION_INDEX as usize].region_info.size, regs::BAR0_SIZE);
        let irqs = d.irq_info();
        assert_eq!(irqs[VFIO_PCI_MSIX_IRQ_INDEX as usize].count, regs::DEFAULT_CONTEXTS + 1);
        assert_eq!(irqs[VFIO_PCI_INTX_IRQ_INDEX as usize].count, 0);
    }

    #[test]
    fn msix_eventfd_is_signalled() {
        let mut d = dev();
        // SAFETY: plain eventfd creation.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(efd >= 0);
        // SAFETY: efd is a fresh fd we own.
        let f = unsafe { File::from_raw_fd(efd) };
        let flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
        d.set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, flags, 3, 1, vec![f.try_clone().unwrap()])
            .unwrap();
        d.raise(3);
        d.raise(4);
        let mut b = [0u8; 8];
        use std::io::Read;
        (&f).read_exact(&mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), 1);
        assert!(d.set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, flags, 17, 1, vec![]).is_err());
    }

    #[test]
    fn params_are_validated() {
        let bad = DeviceParams {
            vram_size: 3 << 20,
            ..Default::default()
        };
        assert!(Device::new(bad).is_err());
        let bad = DeviceParams {
            contexts: 0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
