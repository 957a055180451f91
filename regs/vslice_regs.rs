// SPDX-License-Identifier: GPL-2.0
// The vslice device's register map: the one source of truth.
//
// This file holds constants only (no `use`, no items that need std or the
// kernel crate), so that both the kernel driver (rust-driver/) and the
// simulated device (hw-sim/) `include!` it. docs/device.md describes every
// register with these exact names; `make check` verifies that the two agree.

/// PCI vendor ID of the physical device: Red Hat's (QEMU's) vendor ID with
/// a device ID outside the range QEMU allocates (docs/device.md says why).
pub const PCI_VENDOR_ID: u16 = 0x1b36;
/// PCI device ID of the physical device.
pub const PCI_DEVICE_ID: u16 = 0x5c10;
/// PCI device ID that mdev instances present to their users.
pub const PCI_INSTANCE_DEVICE_ID: u16 = 0x5c11;
/// PCI class code: display controller, 3D controller, prog-if 0.
pub const PCI_CLASS_CODE: u32 = 0x03_02_00;
/// PCI revision of this register map.
pub const PCI_REVISION: u8 = 0x01;

/// BAR0: registers (global block, then one window per context).
pub const BAR0_SIZE: u64 = 1 << 20;
/// BAR2: VRAM, 64-bit prefetchable, size given by `REG_VRAM_SIZE_*`.
pub const BAR_VRAM: u32 = 2;
/// BAR4: MSI-X table and PBA.
pub const BAR_MSIX: u32 = 4;
/// BAR4 size.
pub const BAR4_SIZE: u64 = 1 << 16;
/// MSI-X table offset in BAR4.
pub const MSIX_TABLE_OFFSET: u32 = 0;
/// MSI-X PBA offset in BAR4.
pub const MSIX_PBA_OFFSET: u32 = 0x8000;

/// Value of `REG_ID`: "VSLC" in ASCII, most significant byte first.
pub const DEVICE_ID_MAGIC: u32 = 0x5653_4c43;
/// Value of `REG_VERSION`: major << 16 | minor.
pub const DEVICE_VERSION: u32 = 0x0001_0002;

// Global registers (BAR0 0x0000..0x1000). All 32 bits wide, little endian.
/// RO: `DEVICE_ID_MAGIC`.
pub const REG_ID: usize = 0x000;
/// RO: `DEVICE_VERSION`.
pub const REG_VERSION: usize = 0x004;
/// RO: number of hardware contexts.
pub const REG_NUM_CONTEXTS: usize = 0x008;
/// RO: number of MSI-X vectors (contexts + 1; vector 0 is the global one).
pub const REG_NUM_VECTORS: usize = 0x00c;
/// RO: VRAM size in bytes, low 32 bits.
pub const REG_VRAM_SIZE_LO: usize = 0x010;
/// RO: VRAM size in bytes, high 32 bits.
pub const REG_VRAM_SIZE_HI: usize = 0x014;
/// RO: byte distance between two context windows (`CTX_STRIDE`).
pub const REG_CTX_STRIDE: usize = 0x018;
/// RW: scratch register, no side effects (used for seam and bus tests).
pub const REG_SCRATCH: usize = 0x01c;
/// RW: global control, `CTRL_*` bits.
pub const REG_CONTROL: usize = 0x020;
/// RO: global status, `STATUS_*` bits.
pub const REG_STATUS: usize = 0x024;
/// RW1C: global interrupt status (vector 0), `GIRQ_*` bits.
pub const REG_GLOBAL_IRQ_STATUS: usize = 0x028;
/// RW: global interrupt mask, `GIRQ_*` bits; 1 = masked. Reset: all masked.
pub const REG_GLOBAL_IRQ_MASK: usize = 0x02c;
/// RO: number of refused register/VRAM accesses since reset.
pub const REG_BAD_ACCESS_COUNT: usize = 0x030;
/// RO: BAR0 offset of the last refused access.
pub const REG_BAD_ACCESS_OFFSET: usize = 0x034;
/// RO: `FEATURE_*` bits: the job opcodes this device implements.
pub const REG_FEATURES: usize = 0x038;
/// RO: contexts stopped on a translation fault, one bit each: context n is
/// bit n % 32 of the word at `REG_FAULT_PENDING + 4 * (n / 32)`.
pub const REG_FAULT_PENDING: usize = 0x040;
/// Words of `REG_FAULT_PENDING` (enough for `MAX_CONTEXTS`).
pub const FAULT_PENDING_WORDS: usize = 8;

/// `REG_CONTROL`: device enabled (contexts accept work).
pub const CTRL_ENABLE: u32 = 1 << 0;
/// `REG_CONTROL`: write 1 to reset the whole device; reads back 0.
pub const CTRL_RESET: u32 = 1 << 1;
/// `REG_STATUS`: the device is ready.
pub const STATUS_READY: u32 = 1 << 0;
/// `REG_STATUS`: a fatal error was reported (`GIRQ_FATAL`).
pub const STATUS_FATAL: u32 = 1 << 1;
/// `REG_GLOBAL_IRQ_*`: a device-level error (injected or internal).
pub const GIRQ_FATAL: u32 = 1 << 0;
/// `REG_GLOBAL_IRQ_*`: a refused access was logged (`REG_BAD_ACCESS_*`).
pub const GIRQ_BAD_ACCESS: u32 = 1 << 1;
/// `REG_GLOBAL_IRQ_*`: a context stopped on a translation fault
/// (`REG_FAULT_PENDING`).
pub const GIRQ_XLATE_FAULT: u32 = 1 << 2;
/// `REG_FEATURES`: every opcode below is implemented.
pub const FEATURES_V1: u32 = (1 << OP_NOP)
    | (1 << OP_FILL)
    | (1 << OP_COPY)
    | (1 << OP_CHECKSUM)
    | (1 << OP_DMA_TO_HOST)
    | (1 << OP_DMA_FROM_HOST)
    | (1 << OP_DMA_COPY);
/// Offset of context 0's window in BAR0.
pub const CTX_BASE: usize = 0x1000;
/// Size of one context window.
pub const CTX_STRIDE: usize = 0x1000;
/// Most contexts BAR0 can hold.
pub const MAX_CONTEXTS: u32 = ((BAR0_SIZE as usize - CTX_BASE) / CTX_STRIDE) as u32;
/// Default number of contexts of the simulated device.
pub const DEFAULT_CONTEXTS: u32 = 16;
/// Default VRAM size of the simulated device (256 MiB).
pub const DEFAULT_VRAM_SIZE: u64 = 256 << 20;

/// Offset of context `n`'s window in BAR0.
pub const fn ctx_window(n: u32) -> usize {
    CTX_BASE + n as usize * CTX_STRIDE
}

// Context window, privileged block (0x000..0x100): programmed by the
// driver only; an mdev instance never sees it.
/// RW: VRAM slice base (absolute VRAM offset, 4 KiB aligned), low 32 bits.
pub const CTX_VRAM_BASE_LO: usize = 0x000;
/// RW: VRAM slice base, high 32 bits.
pub const CTX_VRAM_BASE_HI: usize = 0x004;
/// RW: VRAM slice size in bytes (4 KiB multiple; 0 = no VRAM), low 32 bits.
pub const CTX_VRAM_SIZE_LO: usize = 0x008;
/// RW: VRAM slice size, high 32 bits.
pub const CTX_VRAM_SIZE_HI: usize = 0x00c;
/// RW: DMA window base (IOVA), low 32 bits.
pub const CTX_DMA_BASE_LO: usize = 0x010;
/// RW: DMA window base, high 32 bits.
pub const CTX_DMA_BASE_HI: usize = 0x014;
/// RW: DMA window size in bytes (0 = DMA jobs refused), low 32 bits.
pub const CTX_DMA_SIZE_LO: usize = 0x018;
/// RW: DMA window size, high 32 bits.
pub const CTX_DMA_SIZE_HI: usize = 0x01c;
/// RW: scheduling weight 1..=255 (0 reads back as 1). Reset: 1.
pub const CTX_WEIGHT: usize = 0x020;
/// RW: MSI-X vector this context raises. Reset: context number + 1.
pub const CTX_VECTOR: usize = 0x024;
/// RW: `CTX_CTRL_*` bits.
pub const CTX_CONTROL: usize = 0x028;
/// RW: bus address of the context's top-level translation table (4 KiB
/// aligned), low 32 bits.
pub const CTX_XLATE_ROOT_LO: usize = 0x030;
/// RW: high 32 bits of the above.
pub const CTX_XLATE_ROOT_HI: usize = 0x034;
/// RW: `XLATE_*` bits. Reset: 0 (DMA addresses are bus addresses).
pub const CTX_XLATE_CTRL: usize = 0x038;
/// RO: device-virtual address of the first byte that did not translate,
/// low 32 bits.
pub const CTX_FAULT_ADDR_LO: usize = 0x040;
/// RO: high 32 bits of the above.
pub const CTX_FAULT_ADDR_HI: usize = 0x044;
/// RO: bytes the faulting job still needs from `CTX_FAULT_ADDR_*` in the
/// same direction (a hint for resolving a whole transfer at once).
pub const CTX_FAULT_LEN: usize = 0x048;
/// RO: `FAULT_*` bits of the pending fault (0: none).
pub const CTX_FAULT_INFO: usize = 0x04c;
/// WO: `FAULT_RESUME` or `FAULT_ABORT` answers the pending fault; reads 0.
pub const CTX_FAULT_RESPONSE: usize = 0x050;
/// RW: device-virtual start of the range the next invalidation drops,
/// low 32 bits.
pub const CTX_INV_ADDR_LO: usize = 0x058;
/// RW: high 32 bits of the above.
pub const CTX_INV_ADDR_HI: usize = 0x05c;
/// RW: size of the range the next invalidation drops (0: everything), low
/// 32 bits.
pub const CTX_INV_SIZE_LO: usize = 0x060;
/// RW: high 32 bits of the above.
pub const CTX_INV_SIZE_HI: usize = 0x064;
/// WO: any write invalidates the cached translations of the range; reads 0.
pub const CTX_INV_CMD: usize = 0x068;
/// RO: free-running count of completed invalidations.
pub const CTX_INV_COMPLETED: usize = 0x06c;
/// RW: bytes of the job at the ring head already performed (0: none
/// started); written while frozen, the job at the head resumes there.
pub const CTX_MIG_JOB_DONE: usize = 0x070;
/// RW: the checksum job's running hash at that point, low 32 bits.
pub const CTX_MIG_JOB_HASH_LO: usize = 0x074;
/// RW: high 32 bits of the above.
pub const CTX_MIG_JOB_HASH_HI: usize = 0x078;
/// RW: the ring head (`CTX_RING_HEAD`); written while frozen only.
pub const CTX_MIG_HEAD: usize = 0x07c;
/// RW: `CTX_COMPLETED`; written while frozen only.
pub const CTX_MIG_COMPLETED: usize = 0x080;
/// RW: `CTX_ERROR`; written while frozen only (not `ERR_NONE`: halted).
pub const CTX_MIG_ERROR: usize = 0x084;
/// RW: `CTX_ERROR_ADDR_LO`; written while frozen only.
pub const CTX_MIG_ERROR_ADDR_LO: usize = 0x088;
/// RW: `CTX_ERROR_ADDR_HI`; written while frozen only.
pub const CTX_MIG_ERROR_ADDR_HI: usize = 0x08c;
/// RW: `CTX_IRQ_STATUS`; written while frozen only.
pub const CTX_MIG_IRQ_STATUS: usize = 0x090;
/// RW: bus address of the driver's dirty bitmap for this context's slice
/// (one bit per 4 KiB page, little-endian u64 words), low 32 bits.
pub const CTX_DIRTY_ADDR_LO: usize = 0x094;
/// RW: high 32 bits of the above.
pub const CTX_DIRTY_ADDR_HI: usize = 0x098;
/// WO: any write ORs the slice's dirty bits into the bitmap and clears
/// them in the device; reads 0.
pub const CTX_DIRTY_CMD: usize = 0x09c;
/// RO: free-running count of completed dirty-bitmap syncs.
pub const CTX_DIRTY_SYNCED: usize = 0x0a0;
/// Start of the user block: what an instance's register window maps.
pub const CTX_USER_BASE: usize = 0x100;
/// Size of the user block.
pub const CTX_USER_SIZE: usize = 0x100;

/// `CTX_CONTROL`: the context runs jobs (needs `CTRL_ENABLE` too).
pub const CTX_CTRL_ENABLE: u32 = 1 << 0;
/// `CTX_CONTROL`: write 1 to reset the context; reads back 0.
pub const CTX_CTRL_RESET: u32 = 1 << 1;
/// `CTX_CONTROL`: frozen: no chunk runs (the one in progress has ended
/// when the write returns), no interrupt is signalled (causes latch).
pub const CTX_CTRL_FREEZE: u32 = 1 << 2;
/// `CTX_XLATE_CTRL`: DMA addresses are device-virtual, translated through
/// the tables at `CTX_XLATE_ROOT_*`.
pub const XLATE_ENABLE: u32 = 1 << 0;
/// `CTX_FAULT_INFO`: a fault is pending (the context waits for a response).
pub const FAULT_PENDING: u32 = 1 << 0;
/// `CTX_FAULT_INFO`: the access was a device write (else a read).
pub const FAULT_WRITE: u32 = 1 << 1;
/// `CTX_FAULT_INFO`: a present entry lacks the permission (else: no entry).
pub const FAULT_PERM: u32 = 1 << 2;
/// `CTX_FAULT_INFO`: a table page lies outside the memory the device can
/// reach.
pub const FAULT_TABLE: u32 = 1 << 3;
/// `CTX_FAULT_RESPONSE`: translate again and continue the job.
pub const FAULT_RESUME: u32 = 1;
/// `CTX_FAULT_RESPONSE`: fail the job with `ERR_DMA_FAULT`.
pub const FAULT_ABORT: u32 = 2;
/// Translation: page size (bytes) of a leaf entry.
pub const XLATE_PAGE_SIZE: u64 = 4096;
/// Translation: levels of tables (bits 47:39, 38:30, 29:21, 20:12).
pub const XLATE_LEVELS: u32 = 4;
/// Translation: bits of a device-virtual address.
pub const XLATE_VA_BITS: u32 = 48;
/// Translation: entries of one table (a 4 KiB page of u64).
pub const XLATE_TABLE_ENTRIES: u64 = 512;
/// Translation entry: the device may read through it (for a table entry:
/// the next table is present).
pub const PTE_READ: u64 = 1 << 0;
/// Translation entry (leaf): the device may write through it.
pub const PTE_WRITE: u64 = 1 << 1;
/// Translation entry: the bus address of the page or next table.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Translations a context caches (its IOTLB).
pub const XLATE_IOTLB_ENTRIES: u32 = 64;

// Context window, user block (0x100..0x200).
/// RO: `CTX_STATUS_*` bits.
pub const CTX_STATUS: usize = 0x100;
/// RW1C: `CTX_IRQ_*` bits pending for this context.
pub const CTX_IRQ_STATUS: usize = 0x104;
/// RW: `CTX_IRQ_*` bits; 1 = masked (no MSI-X for that cause). Reset: 0.
pub const CTX_IRQ_MASK: usize = 0x108;
/// RW: `ERR_*` code of the first unhandled error; any write clears it and
/// resumes a halted ring after the faulting descriptor.
pub const CTX_ERROR: usize = 0x10c;
/// RO: the slice offset or IOVA that caused `CTX_ERROR`, low 32 bits.
pub const CTX_ERROR_ADDR_LO: usize = 0x110;
/// RO: high 32 bits of the above.
pub const CTX_ERROR_ADDR_HI: usize = 0x114;
/// RW: ring base (slice offset, `DESC_SIZE` aligned), low 32 bits.
pub const CTX_RING_BASE_LO: usize = 0x118;
/// RW: ring base, high 32 bits.
pub const CTX_RING_BASE_HI: usize = 0x11c;
/// RW: number of ring slots, a power of two 1..=`RING_MAX_SLOTS`.
pub const CTX_RING_SIZE: usize = 0x120;
/// RO: free-running index of the next descriptor the device reads.
pub const CTX_RING_HEAD: usize = 0x124;
/// RW: free-running producer index (slot = index % ring size).
pub const CTX_RING_TAIL: usize = 0x128;
/// WO: any write tells the device that the tail moved; reads 0.
pub const CTX_DOORBELL: usize = 0x12c;
/// RO: free-running count of completed descriptors.
pub const CTX_COMPLETED: usize = 0x130;

/// `CTX_STATUS`: enabled (device and context).
pub const CTX_STATUS_ENABLED: u32 = 1 << 0;
/// `CTX_STATUS`: descriptors between head and tail are pending.
pub const CTX_STATUS_BUSY: u32 = 1 << 1;
/// `CTX_STATUS`: halted on an error (see `CTX_ERROR`).
pub const CTX_STATUS_HALTED: u32 = 1 << 2;
/// `CTX_STATUS`: stopped on a translation fault until the driver answers.
pub const CTX_STATUS_FAULTED: u32 = 1 << 3;
/// `CTX_STATUS`: frozen (`CTX_CTRL_FREEZE`).
pub const CTX_STATUS_FROZEN: u32 = 1 << 4;
/// `CTX_IRQ_*`: a descriptor with `DESC_FLAG_IRQ` completed.
pub const CTX_IRQ_DONE: u32 = 1 << 0;
/// `CTX_IRQ_*`: the context halted on an error.
pub const CTX_IRQ_ERROR: u32 = 1 << 1;
/// Largest ring.
pub const RING_MAX_SLOTS: u32 = 4096;

/// Errors (`CTX_ERROR` and a descriptor's status).
pub const ERR_NONE: u32 = 0;
/// An address range outside the context's VRAM slice.
pub const ERR_VRAM_BOUNDS: u32 = 1;
/// An IOVA range outside the context's DMA window or not mapped.
pub const ERR_DMA_BOUNDS: u32 = 2;
/// Unknown opcode or reserved bits set.
pub const ERR_BAD_DESC: u32 = 3;
/// Length 0, over `JOB_MAX_LEN` or not a multiple of 4 where required.
pub const ERR_BAD_LEN: u32 = 4;
/// The ring (base, size) lies outside the slice or is misaligned.
pub const ERR_BAD_RING: u32 = 5;
/// A translation fault the driver did not resolve (`FAULT_ABORT`).
pub const ERR_DMA_FAULT: u32 = 6;

// Job descriptor: `DESC_SIZE` bytes in the context's VRAM slice, little
// endian. The device writes `status` and `result` back when done.
/// Size of a descriptor.
pub const DESC_SIZE: usize = 64;
/// u32: `OP_*`.
pub const DESC_OPCODE: usize = 0x00;
/// u32: `DESC_FLAG_*`.
pub const DESC_FLAGS: usize = 0x04;
/// u64: source (slice offset; IOVA for `OP_DMA_FROM_HOST`).
pub const DESC_SRC: usize = 0x08;
/// u64: destination (slice offset; IOVA for `OP_DMA_TO_HOST`).
pub const DESC_DST: usize = 0x10;
/// u32: length in bytes.
pub const DESC_LEN: usize = 0x18;
/// u32: fill pattern for `OP_FILL`.
pub const DESC_VALUE: usize = 0x1c;
/// u32, written by the device: `DESC_STATUS_DONE` or `DESC_STATUS_ERROR | ERR_*`.
pub const DESC_STATUS: usize = 0x20;
/// u64, written by the device: the `OP_CHECKSUM` result.
pub const DESC_RESULT: usize = 0x28;
/// `DESC_STATUS`: completed successfully.
pub const DESC_STATUS_DONE: u32 = 1;
/// `DESC_STATUS`: failed; the low bits hold the `ERR_*` code.
pub const DESC_STATUS_ERROR: u32 = 1 << 31;
/// `DESC_FLAGS`: raise `CTX_IRQ_DONE` when this descriptor completes.
pub const DESC_FLAG_IRQ: u32 = 1 << 0;
/// Longest job (bytes).
pub const JOB_MAX_LEN: u32 = 64 << 20;

/// Opcode: nothing (a fence: completes in order).
pub const OP_NOP: u32 = 0;
/// Opcode: fill `len` bytes at `dst` with the 32-bit `value` (len % 4 == 0).
pub const OP_FILL: u32 = 1;
/// Opcode: copy `len` bytes from `src` to `dst` (overlap allowed: memmove).
pub const OP_COPY: u32 = 2;
/// Opcode: FNV-1a 64 of `len` bytes at `src` into `result`.
pub const OP_CHECKSUM: u32 = 3;
/// Opcode: copy `len` bytes from VRAM `src` to guest memory at IOVA `dst`.
pub const OP_DMA_TO_HOST: u32 = 4;
/// Opcode: copy `len` bytes from guest memory at IOVA `src` to VRAM `dst`.
pub const OP_DMA_FROM_HOST: u32 = 5;
/// Opcode: copy `len` bytes of guest memory from IOVA `src` to IOVA `dst`.
pub const OP_DMA_COPY: u32 = 6;

/// FNV-1a 64 offset basis (`OP_CHECKSUM`).
pub const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
pub const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Vector of device-level events (`REG_GLOBAL_IRQ_STATUS`).
pub const GLOBAL_VECTOR: u32 = 0;
