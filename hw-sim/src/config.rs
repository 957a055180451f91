// SPDX-License-Identifier: GPL-2.0
//! PCI configuration space of the simulated device.
//!
//! 256 bytes of type-0 header and capabilities (MSI-X at 0x40, PCI Express
//! endpoint at 0x50). Writes go through a per-byte writable mask, so that
//! read-only fields stay what they are, as on real hardware; BAR registers
//! implement the sizing protocol (write all-ones, read back the size mask).

use crate::regs;

/// Size of the config space we expose.
pub const CONFIG_SIZE: usize = 256;
/// Offset of the MSI-X capability.
pub const CAP_MSIX: usize = 0x40;
/// Offset of the PCI Express capability.
pub const CAP_PCIE: usize = 0x50;

const CMD_WRITABLE: u16 = 0x0002 | 0x0004 | 0x0400; // memory, bus master, INTx disable
const BAR_MEM_64: u32 = 0x4;
const BAR_PREFETCH: u32 = 0x8;

/// One device's configuration space.
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SIZE],
    wmask: [u8; CONFIG_SIZE],
    /// BAR sizes by BAR number (0 = not implemented; the upper half of a
    /// 64-bit BAR has the size of the whole BAR).
    bar_size: [u64; 6],
}

impl ConfigSpace {
    /// Config space for a device with `vectors` MSI-X vectors and
    /// `vram_size` bytes of VRAM behind BAR2.
    pub fn new(vectors: u32, vram_size: u64) -> Self {
        let mut c = ConfigSpace {
            bytes: [0; CONFIG_SIZE],
            wmask: [0; CONFIG_SIZE],
            bar_size: [regs::BAR0_SIZE, 0, vram_size, vram_size, regs::BAR4_SIZE, 0],
        };
        c.put16(0x00, regs::PCI_VENDOR_ID);
        c.put16(0x02, regs::PCI_DEVICE_ID);
        c.put16(0x06, 0x0010); // status: capability list
        c.put32(0x08, (regs::PCI_CLASS_CODE << 8) | regs::PCI_REVISION as u32);
        c.put32(0x10, 0);
        c.put32(0x18, BAR_MEM_64 | BAR_PREFETCH);
        c.put32(0x20, 0);
        c.put16(0x2c, regs::PCI_VENDOR_ID);
        c.put16(0x2e, regs::PCI_DEVICE_ID);
        c.bytes[0x34] = CAP_MSIX as u8;
        // MSI-X: table and PBA in BAR4; QEMU emulates the table itself and
        // hands us one eventfd per vector.
        c.bytes[CAP_MSIX] = 0x11;
        c.bytes[CAP_MSIX + 1] = CAP_PCIE as u8;
        c.put16(CAP_MSIX + 2, (vectors.clamp(1, 2048) - 1) as u16);
        c.put32(CAP_MSIX + 4, regs::MSIX_TABLE_OFFSET | regs::BAR_MSIX);
        c.put32(CAP_MSIX + 8, regs::MSIX_PBA_OFFSET | regs::BAR_MSIX);
        // PCI Express capability v2, endpoint, no link to speak of.
        c.bytes[CAP_PCIE] = 0x10;
        c.bytes[CAP_PCIE + 1] = 0;
        c.put16(CAP_PCIE + 2, 0x0002);

        c.wmask[0x04..0x06].copy_from_slice(&CMD_WRITABLE.to_le_bytes());
        c.wmask[0x0c] = 0xff; // cache line size
        c.wmask[0x0d] = 0xff; // latency timer
        c.wmask[0x3c] = 0xff; // interrupt line
        c.wmask[CAP_MSIX + 3] = 0xc0; // MSI-X enable + function mask
        c.wmask[CAP_PCIE + 8..CAP_PCIE + 10].copy_from_slice(&0x7fffu16.to_le_bytes());
        for bar in 0..6 {
            let size = c.bar_size[bar];
            if size == 0 {
                continue;
            }
            let mask: u64 = !(size - 1);
            let lo = if bar % 2 == 1 && c.bar_size[bar - 1] == size {
                // Upper half of a 64-bit BAR.
                (mask >> 32) as u32
            } else {
                (mask as u32) & !0xf
            };
            c.wmask[0x10 + bar * 4..0x14 + bar * 4].copy_from_slice(&lo.to_le_bytes());
        }
        c
    }

    fn put16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Reads `data.len()` bytes at `off`; bytes beyond the space read 0xff
    /// (as a PCI read of an unimplemented register would) and the access
    /// is reported as out of range.
    pub fn read(&self, off: u64, data: &mut [u8]) -> bool {
        let mut ok = true;
        for (i, b) in data.iter_mut().enumerate() {
            match usize::try_from(off).ok().and_then(|o| o.checked_add(i)) {
                Some(o) if o < CONFIG_SIZE => *b = self.bytes[o],
                _ => {
                    *b = 0xff;
                    ok = false;
                }
            }
        }
        ok
    }

    /// Writes `data` at `off` through the writable mask; returns false if
    /// part of the access fell outside the space (that part is dropped).
    pub fn write(&mut self, off: u64, data: &[u8]) -> bool {
        let mut ok = true;
        for (i, &v) in data.iter().enumerate() {
            match usize::try_from(off).ok().and_then(|o| o.checked_add(i)) {
                Some(o) if o < CONFIG_SIZE => {
                    let m = self.wmask[o];
                    self.bytes[o] = (self.bytes[o] & !m) | (v & m);
                }
                _ => ok = false,
            }
        }
        ok
    }

    /// Whether MSI-X is enabled by the guest.
    pub fn msix_enabled(&self) -> bool {
        self.bytes[CAP_MSIX + 3] & 0x80 != 0
    }

    /// The 32-bit register at `off` (for tests and logging).
    pub fn dword(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[off..off + 4]);
        u32::from_le_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_class() {
        let c = ConfigSpace::new(17, 256 << 20);
        assert_eq!(c.dword(0) & 0xffff, regs::PCI_VENDOR_ID as u32);
        assert_eq!(c.dword(0) >> 16, regs::PCI_DEVICE_ID as u32);
        assert_eq!(c.dword(8) >> 8, regs::PCI_CLASS_CODE);
        assert_eq!(c.dword(8) & 0xff, regs::PCI_REVISION as u32);
    }

    #[test]
    fn read_only_fields_ignore_writes() {
        let mut c = ConfigSpace::new(17, 256 << 20);
        assert!(c.write(0, &[0, 0, 0, 0]));
        assert_eq!(c.dword(0) & 0xffff, regs::PCI_VENDOR_ID as u32);
        // Command: only memory/bus-master/INTx-disable stick.
        c.write(4, &[0xff, 0xff]);
        assert_eq!(c.dword(4) & 0xffff, CMD_WRITABLE as u32);
    }

    #[test]
    fn bar_sizing() {
        let mut c = ConfigSpace::new(17, 256 << 20);
        c.write(0x10, &[0xff; 4]);
        assert_eq!(c.dword(0x10), !(regs::BAR0_SIZE as u32 - 1));
        c.write(0x18, &[0xff; 4]);
        c.write(0x1c, &[0xff; 4]);
        let size = ((c.dword(0x1c) as u64) << 32) | (c.dword(0x18) & !0xf) as u64;
        assert_eq!(!size + 1, 256 << 20);
        assert_eq!(c.dword(0x18) & 0xf, BAR_MEM_64 | BAR_PREFETCH);
        // Unimplemented BAR stays zero.
        c.write(0x14, &[0xff; 4]);
        assert_eq!(c.dword(0x14), 0);
    }

    #[test]
    fn msix_capability() {
        let mut c = ConfigSpace::new(17, 1 << 20);
        assert_eq!(c.bytes[0x34] as usize, CAP_MSIX);
        assert_eq!(c.bytes[CAP_MSIX], 0x11);
        assert_eq!((c.dword(CAP_MSIX) >> 16) & 0x7ff, 16);
        assert_eq!(c.dword(CAP_MSIX + 4), regs::BAR_MSIX);
        assert!(!c.msix_enabled());
        c.write(CAP_MSIX as u64 + 3, &[0x80]);
        assert!(c.msix_enabled());
    }

    #[test]
    fn out_of_range_reads_all_ones() {
        let c = ConfigSpace::new(1, 1 << 20);
        let mut b = [0u8; 4];
        assert!(!c.read(254, &mut b));
        assert_eq!(&b[2..], &[0xff, 0xff]);
        assert!(!c.read(u64::MAX, &mut b));
        assert_eq!(b, [0xff; 4]);
    }
}
