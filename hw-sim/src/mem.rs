// SPDX-License-Identifier: GPL-2.0
//! Shared memory the device touches: VRAM (a memfd the device creates and
//! QEMU maps into the guest) and the guest-memory regions QEMU hands over
//! with DMA_MAP (each an fd the device maps). No locking here: the device
//! owns both behind its mutex.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

/// A shared, read/write mapping of (part of) a file.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this struct and only accessed through
// &self/&mut self; the pointer is valid for `len` bytes until Drop.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` at `offset`, shared and read/write.
    pub fn new(fd: RawFd, offset: u64, len: usize) -> std::io::Result<Self> {
        if len == 0 {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let off = libc::off_t::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh shared mapping of a caller-provided fd; the kernel
        // validates fd, offset and length.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                off,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len })
    }

    /// The mapping as bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr is a live mapping of len bytes (see new()).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The mapping as mutable bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in bytes(); &mut self makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: new() refuses that).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in new(); nothing else uses it.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Creates an anonymous memfd of `size` bytes.
pub fn memfd(name: &std::ffi::CStr, size: u64) -> std::io::Result<File> {
    // SAFETY: name is a valid C string; flags are valid.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size)?;
    Ok(file)
}

/// VRAM: a memfd exported to QEMU (BAR2 is mmap-able) and mapped here.
pub struct Vram {
    fd: File,
    map: Mapping,
}

impl Vram {
    /// Creates and maps `size` bytes of VRAM, zeroed.
    pub fn new(size: u64) -> std::io::Result<Self> {
        let len = usize::try_from(size).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let fd = memfd(c"vslice-vram", size)?;
        let map = Mapping::new(fd.as_raw_fd(), 0, len)?;
        Ok(Vram { fd, map })
    }

    /// All of VRAM.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// All of VRAM, mutable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.map.bytes_mut()
    }

    /// The memfd handed to QEMU with the region info.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One DMA_MAP'd range of guest memory.
struct DmaRegion {
    iova: u64,
    map: Mapping,
}

/// The guest memory QEMU shared with the device, by IOVA.
#[derive(Default)]
pub struct DmaSpace {
    regions: Vec<DmaRegion>,
}

impl DmaSpace {
    /// Adds a mapping of `size` bytes of `fd` at `offset` for `iova`.
    pub fn map(&mut self, iova: u64, size: u64, fd: &File, offset: u64) -> std::io::Result<()> {
        let len = usize::try_from(size).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        iova.checked_add(size).ok_or(std::io::ErrorKind::InvalidInput)?;
        let map = Mapping::new(fd.as_raw_fd(), offset, len)?;
        self.regions.push(DmaRegion { iova, map });
        Ok(())
    }

    /// Drops every mapping inside [iova, iova + size).
    pub fn unmap(&mut self, iova: u64, size: u64) -> usize {
        let end = iova.saturating_add(size);
        let before = self.regions.len();
        self.regions
            .retain(|r| !(r.iova >= iova && r.iova.saturating_add(r.map.len() as u64) <= end));
        before - self.regions.len()
    }

    /// Drops all mappings.
    pub fn clear(&mut self) {
        self.regions.clear();
    }

    /// The bytes at [iova, iova + len), if one mapping holds all of them.
    pub fn slice_mut(&mut self, iova: u64, len: usize) -> Option<&mut [u8]> {
        let end = iova.checked_add(len as u64)?;
        let r = self
            .regions
            .iter_mut()
            .find(|r| r.iova <= iova && end <= r.iova + r.map.len() as u64)?;
        let start = (iova - r.iova) as usize;
        Some(&mut r.map.bytes_mut()[start..start + len])
    }

    /// Number of mappings.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vram_is_shared_through_its_fd() {
        let mut v = Vram::new(1 << 20).unwrap();
        v.bytes_mut()[100] = 42;
        let other = Mapping::new(v.raw_fd(), 0, 4096).unwrap();
        assert_eq!(other.bytes()[100], 42);
    }

    #[test]
    fn dma_lookup_and_unmap() {
        let guest = memfd(c"guest", 1 << 16).unwrap();
        let mut d = DmaSpace::default();
        d.map(0x10_0000, 0x8000, &guest, 0x8000).unwrap();
        assert!(d.slice_mut(0x10_0000, 0x8000).is_some());
        assert!(d.slice_mut(0x10_7fff, 2).is_none(), "crosses the end");
        assert!(d.slice_mut(0x0f_ffff, 2).is_none(), "starts before");
        assert!(d.slice_mut(u64::MAX, 2).is_none(), "wraps");
        d.slice_mut(0x10_0000, 4).unwrap().copy_from_slice(b"abcd");
        let check = Mapping::new(guest.as_raw_fd(), 0x8000, 4096).unwrap();
        assert_eq!(&check.bytes()[..4], b"abcd");
        assert_eq!(d.unmap(0x10_0000, 0x4000), 0, "partial unmap keeps the region");
        assert_eq!(d.unmap(0x10_0000, 0x8000), 1);
        assert!(d.is_empty());
    }
}
