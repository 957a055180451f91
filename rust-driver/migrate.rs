// SPDX-License-Identifier: GPL-2.0
//! An instance's live migration (VFIO migration v2): the stream that
//! carries it, produced by a saving instance and checked and loaded by a
//! resuming one, and the logging of the VRAM pages written while a
//! pre-copy runs. The C shim walks the FSM (`vfio_mig_get_next_state`)
//! and owns the data files; the work of every arc is a call here.
//! docs/migration.md is the reference for the stream and what it carries.
//!
//! The stream, little endian throughout:
//! - a header of `HDR_LEN` bytes: `MAGIC`, `VERSION` (u32), the header's
//!   length (u32), the slice's bytes (u64), contexts (u32), flags (u32, 0);
//! - sections, each an id (u32), a reserved u32 (0), the payload's length
//!   (u64) and the payload: `SEC_VRAM` (a slice offset, u64, then the bytes
//!   there; any number, later ones win), `SEC_STATE` (`SavedRegs`, exactly
//!   once), `SEC_END` (CRC-32C of every byte before its payload, u32, and
//!   a u32 0; last: nothing may follow).
//!
//! Saving sends the whole slice, then, in pre-copy, what was written
//! since: by the device's jobs (its dirty log, synced into `DevLog`) and
//! by the CPU (the shim write-protects the mapping; `PageLog`). The
//! state goes last, read from the frozen contexts. Nothing host-physical
//! is in the stream: the destination's DMA translation is built from the
//! IOVAs the resumed jobs touch, by faults, as for any job.
//!
//! Locking: a stream is used under its data file's lock (the shim's);
//! `PageLog` is shared with the fault path through the instance's
//! `cpu_log` spinlock and atomics; `rotate` runs under the shim's
//! `memory_lock` held exclusive.

use kernel::{
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

use crate::instance::Instance;
use crate::parent::ParentState;
use crate::regs;
use crate::shim;

/// First bytes of every stream.
pub(crate) const MAGIC: [u8; 8] = *b"VSLICEMS";
/// The one version this driver writes and reads.
pub(crate) const VERSION: u32 = 1;
const HDR_LEN: usize = 32;
const SEC_HDR_LEN: usize = 16;
const SEC_VRAM: u32 = 1;
const SEC_STATE: u32 = 2;
const SEC_END: u32 = 3;
const END_LEN: u64 = 8;
const PAGE: u64 = 4096;
/// Pages one VRAM section carries at most.
const CHUNK_PAGES: u64 = 256;

/// A context's registers a stream carries, in the order a destination
/// writes them after resetting the context (docs/device.md: the user
/// block's writable registers, then the `CTX_MIG_*` ones).
pub(crate) const CTX_SAVED: [usize; 14] = [
    regs::CTX_IRQ_MASK,
    regs::CTX_RING_BASE_LO,
    regs::CTX_RING_BASE_HI,
    regs::CTX_RING_SIZE,
    regs::CTX_RING_TAIL,
    regs::CTX_MIG_HEAD,
    regs::CTX_MIG_COMPLETED,
    regs::CTX_MIG_ERROR,
    regs::CTX_MIG_ERROR_ADDR_LO,
    regs::CTX_MIG_ERROR_ADDR_HI,
    regs::CTX_MIG_IRQ_STATUS,
    regs::CTX_MIG_JOB_HASH_LO,
    regs::CTX_MIG_JOB_HASH_HI,
    regs::CTX_MIG_JOB_DONE,
];

/// The value a context's saved registers hold for `reg` (0 for a register
/// `CTX_SAVED` does not name).
pub(crate) fn saved(r: &[u32; CTX_SAVED.len()], reg: usize) -> u32 {
    CTX_SAVED
        .iter()
        .position(|&o| o == reg)
        .and_then(|i| r.get(i))
        .copied()
        .unwrap_or(0)
}

/// The `SEC_STATE` payload: config space (256 bytes), the emulated
/// registers (scratch, refused-access count and offset, a reserved 0),
/// then `CTX_SAVED` of each context in order.
pub(crate) struct SavedRegs {
    pub(crate) config: [u8; 256],
    pub(crate) regs: [u32; 4],
    pub(crate) contexts: KVec<[u32; CTX_SAVED.len()]>,
}

impl SavedRegs {
    fn new() -> Self {
        SavedRegs {
            config: [0; 256],
            regs: [0; 4],
            contexts: KVec::new(),
        }
    }

    /// Payload bytes for `contexts` contexts.
    const fn len(contexts: u32) -> u64 {
        256 + 16 + contexts as u64 * CTX_SAVED.len() as u64 * 4
    }

    fn encode(&self, out: &mut KVec<u8>) -> Result {
        out.extend_from_slice(&self.config, GFP_KERNEL)?;
        for v in self.regs {
            out.extend_from_slice(&v.to_le_bytes(), GFP_KERNEL)?;
        }
        for c in self.contexts.iter() {
            for v in c {
                out.extend_from_slice(&v.to_le_bytes(), GFP_KERNEL)?;
            }
        }
        Ok(())
    }

    /// From a payload of exactly `len(contexts)` bytes.
    fn decode(b: &[u8], contexts: u32) -> Result<SavedRegs> {
        if b.len() as u64 != Self::len(contexts) {
            return Err(EINVAL);
        }
        let word = |i: usize| -> u32 {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[i..i + 4]);
            u32::from_le_bytes(w)
        };
        let mut s = SavedRegs::new();
        s.config.copy_from_slice(&b[..256]);
        for (k, r) in s.regs.iter_mut().enumerate() {
            *r = word(256 + 4 * k);
        }
        let mut at = 272;
        for _ in 0..contexts {
            let mut r = [0u32; CTX_SAVED.len()];
            for v in r.iter_mut() {
                *v = word(at);
                at += 4;
            }
            s.contexts.push(r, GFP_KERNEL)?;
        }
        Ok(s)
    }
}

/// The stream's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) version: u32,
    pub(crate) slice: u64,
    pub(crate) contexts: u32,
}

/// Why a header is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Magic,
    Version(u32),
    Malformed,
    Geometry(u64, u32),
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(HDR_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.slice.to_le_bytes());
        b[24..28].copy_from_slice(&self.contexts.to_le_bytes());
        b
    }

    /// Parses `b` and checks it against an instance with a `slice`-byte
    /// slice and `contexts` contexts.
    pub(crate) fn check(
        b: &[u8; HDR_LEN],
        slice: u64,
        contexts: u32,
    ) -> core::result::Result<Header, HeaderError> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut s = [0u8; 8];
        s.copy_from_slice(&b[16..24]);
        if b[..8] != MAGIC {
            return Err(HeaderError::Magic);
        }
        let h = Header {
            version: u32_at(8),
            slice: u64::from_le_bytes(s),
            contexts: u32_at(24),
        };
        if h.version != VERSION {
            return Err(HeaderError::Version(h.version));
        }
        if u32_at(12) as usize != HDR_LEN || u32_at(28) != 0 {
            return Err(HeaderError::Malformed);
        }
        if h.slice != slice || h.contexts != contexts {
            return Err(HeaderError::Geometry(h.slice, h.contexts));
        }
        Ok(h)
    }
}

fn sec_hdr(id: u32, len: u64) -> [u8; SEC_HDR_LEN] {
    let mut b = [0u8; SEC_HDR_LEN];
    b[..4].copy_from_slice(&id.to_le_bytes());
    b[8..].copy_from_slice(&len.to_le_bytes());
    b
}

/// Bitmap words for `pages` pages.
fn words(pages: u64) -> usize {
    pages.div_ceil(64) as usize
}

/// The VRAM pages CPU writes reached: `live` is marked by the fault path,
/// `taken` is what the last write-protect moved out of it for the saving
/// stream to collect.
pub(crate) struct PageLog {
    live: KVec<Atomic<u64>>,
    taken: KVec<Atomic<u64>>,
}

impl PageLog {
    fn new(pages: u64) -> Result<Arc<PageLog>> {
        let n = words(pages);
        let mut live = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut taken = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            live.push(Atomic::new(0), GFP_KERNEL)?;
            taken.push(Atomic::new(0), GFP_KERNEL)?;
        }
        Ok(Arc::new(PageLog { live, taken }, GFP_KERNEL)?)
    }

    fn or(w: &Atomic<u64>, bits: u64) {
        let mut old = w.load(Relaxed);
        while old & bits != bits {
            match w.cmpxchg(old, old | bits, Relaxed) {
                Ok(_) => break,
                Err(cur) => old = cur,
            }
        }
    }

    /// Logs the pages of [`off`, `off + len`) (slice offsets).
    pub(crate) fn mark(&self, off: u64, len: u64) {
        let first = off / PAGE;
        let last = off.saturating_add(len.max(1) - 1) / PAGE;
        for p in first..=last {
            match self.live.get((p / 64) as usize) {
                Some(w) => Self::or(w, 1 << (p % 64)),
                None => break,
            }
        }
    }

    /// Moves what was logged to `taken` (under `memory_lock` exclusive).
    pub(crate) fn rotate(&self) {
        for (l, t) in self.live.iter().zip(self.taken.iter()) {
            let v = l.xchg(0, Relaxed);
            if v != 0 {
                Self::or(t, v);
            }
        }
    }

    /// ORs what `rotate` moved into `todo` and forgets it.
    fn take_into(&self, todo: &mut [u64]) {
        for (t, d) in self.taken.iter().zip(todo.iter_mut()) {
            *d |= t.xchg(0, Relaxed);
        }
    }
}

/// The device's dirty log of the slice (docs/device.md, "Dirty pages"),
/// synced into a bitmap in coherent memory through the first context.
struct DevLog {
    parent: Arc<ParentState>,
    cpu: *mut u64,
    dma: u64,
    words: usize,
    ctx: u32,
}

impl DevLog {
    fn new(inst: &Instance) -> Result<DevLog> {
        let words = words(inst.slice_size() / PAGE);
        let (cpu, dma) = shim::coherent_alloc(inst.parent.pdev(), (words * 8) as u64)?;
        let log = DevLog {
            parent: inst.parent.clone(),
            cpu,
            dma,
            words,
            ctx: inst.alloc.contexts().start,
        };
        let p = &inst.parent;
        p.ctx_write(log.ctx, regs::CTX_DIRTY_ADDR_LO, dma as u32)?;
        p.ctx_write(log.ctx, regs::CTX_DIRTY_ADDR_HI, (dma >> 32) as u32)?;
        Ok(log)
    }

    /// Syncs the device's log into the bitmap and ORs it into `todo`.
    fn sync(&self, todo: &mut [u64]) -> Result {
        let p = &self.parent;
        let before = p.ctx_read(self.ctx, regs::CTX_DIRTY_SYNCED)?;
        p.ctx_write(self.ctx, regs::CTX_DIRTY_CMD, 1)?;
        let after = p.ctx_read(self.ctx, regs::CTX_DIRTY_SYNCED)?;
        if after == before || after == u32::MAX {
            return Err(EIO);
        }
        for (i, d) in todo.iter_mut().enumerate().take(self.words) {
            // SAFETY: `cpu` holds `words` u64s of coherent memory; the
            // device writes it only during the sync above, which completed.
            let w = unsafe { self.cpu.add(i) };
            // SAFETY: as above.
            *d |= u64::from_le(unsafe { w.read_volatile() });
            // SAFETY: as above.
            unsafe { w.write_volatile(0) };
        }
        Ok(())
    }
}

impl Drop for DevLog {
    fn drop(&mut self) {
        // Only a sync writes the bitmap; no address of freed memory stays.
        let _ = self.parent.ctx_write(self.ctx, regs::CTX_DIRTY_ADDR_LO, 0);
        let _ = self.parent.ctx_write(self.ctx, regs::CTX_DIRTY_ADDR_HI, 0);
        shim::coherent_free(
            self.parent.pdev(),
            (self.words * 8) as u64,
            self.cpu,
            self.dma,
        );
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SaveStage {
    /// Sending VRAM pages.
    Pages,
    /// The state and the end section's header are queued.
    Tail,
    /// The end section's checksum is queued.
    End,
    Done,
}

/// A saving stream.
pub(crate) struct Save {
    inst: *const Instance,
    /// STOP_COPY: the contexts are frozen and the stream has an end.
    stopped: bool,
    stage: SaveStage,
    /// Pages still to send.
    todo: KVec<u64>,
    /// Pages of the first pass over the slice not sent yet.
    first_left: u64,
    cpu: Option<Arc<PageLog>>,
    dev: Option<DevLog>,
    /// Bytes made but not read yet: `out[out_at..]`.
    out: KVec<u8>,
    out_at: usize,
    /// The VRAM section being read: slice offset and bytes left.
    vram_at: u64,
    vram_left: u64,
    crc: u32,
}

/// The instance a stream belongs to, borrowed apart from the stream.
fn inst_of<'a>(p: *const Instance) -> &'a Instance {
    // SAFETY: a stream's instance pointer is set from a live instance, and
    // the shim disables the data file (freeing the stream) before the
    // device's last close, so the instance outlives every use.
    unsafe { &*p }
}

impl Save {
    fn inst(&self) -> &Instance {
        inst_of(self.inst)
    }

    fn new(inst: &Instance, precopy: bool) -> Result<Save> {
        let pages = inst.slice_size().div_ceil(PAGE);
        let mut todo = KVec::with_capacity(words(pages), GFP_KERNEL)?;
        for i in 0..words(pages) as u64 {
            let left = pages - i * 64;
            todo.push(
                if left >= 64 {
                    u64::MAX
                } else {
                    (1u64 << left) - 1
                },
                GFP_KERNEL,
            )?;
        }
        let mut out = KVec::new();
        let h = Header {
            version: VERSION,
            slice: inst.slice_size(),
            contexts: inst.contexts(),
        };
        out.extend_from_slice(&h.encode(), GFP_KERNEL)?;
        let mut s = Save {
            inst,
            stopped: !precopy,
            stage: SaveStage::Pages,
            todo,
            first_left: pages,
            cpu: None,
            dev: None,
            out,
            out_at: 0,
            vram_at: 0,
            vram_left: 0,
            crc: !0,
        };
        if precopy {
            let dev = DevLog::new(inst)?;
            // What the device wrote before is in the first pass anyway.
            dev.sync(&mut s.todo)?;
            s.dev = Some(dev);
            let log = PageLog::new(pages)?;
            inst.set_cpu_log(Some(log.clone()));
            s.cpu = Some(log);
        }
        Ok(s)
    }

    /// Collects what was written since the last time into `todo`.
    fn collect(&mut self) -> Result {
        let inst = inst_of(self.inst);
        if let Some(cpu) = &self.cpu {
            inst.si().vram_wp();
            cpu.take_into(&mut self.todo);
        }
        if let Some(dev) = &self.dev {
            dev.sync(&mut self.todo)?;
        }
        Ok(())
    }

    fn pending(&self) -> u64 {
        self.todo.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Queues the next run of pages to send; false if none is left.
    fn next_chunk(&mut self) -> Result<bool> {
        let Some((w, bits)) = self.todo.iter().enumerate().find(|(_, &b)| b != 0) else {
            return Ok(false);
        };
        let first = w as u64 * 64 + u64::from(bits.trailing_zeros());
        let mut n = 0;
        while n < CHUNK_PAGES {
            let p = first + n;
            match self.todo.get_mut((p / 64) as usize) {
                Some(word) if *word & (1 << (p % 64)) != 0 => *word &= !(1 << (p % 64)),
                _ => break,
            }
            n += 1;
        }
        let at = first * PAGE;
        let len = (n * PAGE).min(self.inst().slice_size() - at);
        self.first_left = self.first_left.saturating_sub(n);
        self.out.clear();
        self.out_at = 0;
        self.out
            .extend_from_slice(&sec_hdr(SEC_VRAM, 8 + len), GFP_KERNEL)?;
        self.out.extend_from_slice(&at.to_le_bytes(), GFP_KERNEL)?;
        self.vram_at = at;
        self.vram_left = len;
        Ok(true)
    }

    /// Queues the state section and the end section's header.
    fn tail(&mut self) -> Result {
        let inst = inst_of(self.inst);
        let mut st = SavedRegs::new();
        inst.save_state(&mut st)?;
        let len = SavedRegs::len(inst.contexts());
        self.out.clear();
        self.out_at = 0;
        self.out
            .extend_from_slice(&sec_hdr(SEC_STATE, len), GFP_KERNEL)?;
        st.encode(&mut self.out)?;
        self.out
            .extend_from_slice(&sec_hdr(SEC_END, END_LEN), GFP_KERNEL)?;
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.out_at < self.out.len() {
                let k = (self.out.len() - self.out_at).min(buf.len() - n);
                let src = &self.out[self.out_at..self.out_at + k];
                buf[n..n + k].copy_from_slice(src);
                self.crc = shim::crc32c(self.crc, src);
                self.out_at += k;
                n += k;
                continue;
            }
            if self.vram_left > 0 {
                let k = self.vram_left.min((buf.len() - n) as u64) as usize;
                let dst = &mut buf[n..n + k];
                self.inst().vram(self.vram_at, dst, false)?;
                self.crc = shim::crc32c(self.crc, dst);
                self.vram_at += k as u64;
                self.vram_left -= k as u64;
                n += k;
                continue;
            }
            match self.stage {
                SaveStage::Pages => {
                    if self.next_chunk()? {
                        continue;
                    }
                    // Caught up: anything written since?
                    self.collect()?;
                    if self.pending() > 0 {
                        continue;
                    }
                    if !self.stopped {
                        break;
                    }
                    self.tail()?;
                    self.stage = SaveStage::Tail;
                }
                SaveStage::Tail => {
                    // Every byte before the checksum went through `crc`.
                    let crc = !self.crc;
                    self.out.clear();
                    self.out_at = 0;
                    self.out.extend_from_slice(&crc.to_le_bytes(), GFP_KERNEL)?;
                    self.out.extend_from_slice(&[0; 4], GFP_KERNEL)?;
                    self.stage = SaveStage::End;
                }
                SaveStage::End | SaveStage::Done => {
                    self.stage = SaveStage::Done;
                    break;
                }
            }
        }
        if n == 0 && !self.stopped {
            // Pre-copy's temporary end of stream.
            return Err(ENOMSG);
        }
        Ok(n)
    }

    /// Bytes a switch to STOP_COPY now would still produce: the pages
    /// still to send (each counted with a section header, an upper bound
    /// for scattered pages), what was made and not read, the state, the
    /// end.
    fn stop_copy_left(&self) -> u64 {
        let unread = (self.out.len() - self.out_at) as u64 + self.vram_left;
        let inst = self.inst();
        match self.stage {
            SaveStage::Pages => {
                self.pending() * (PAGE + SEC_HDR_LEN as u64 + 8)
                    + unread
                    + SEC_HDR_LEN as u64
                    + SavedRegs::len(inst.contexts())
                    + SEC_HDR_LEN as u64
                    + END_LEN
            }
            SaveStage::Tail => unread + END_LEN,
            SaveStage::End | SaveStage::Done => unread,
        }
    }

    /// VFIO_MIG_GET_PRECOPY_INFO: (initial bytes, dirty bytes).
    fn precopy_info(&mut self) -> Result<(u64, u64)> {
        if self.stopped {
            return Err(EINVAL);
        }
        self.collect()?;
        let unread = (self.out.len() - self.out_at) as u64 + self.vram_left;
        let initial = self.first_left * PAGE;
        let dirty = (self.pending() * PAGE).saturating_sub(initial);
        if self.first_left > 0 {
            Ok((initial + unread, dirty))
        } else {
            Ok((0, dirty + unread))
        }
    }
}

impl Drop for Save {
    fn drop(&mut self) {
        if self.cpu.is_some() {
            self.inst().set_cpu_log(None);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LoadStage {
    Header,
    SecHdr,
    VramOff,
    Vram,
    State,
    End,
    Done,
}

/// A resuming stream.
pub(crate) struct Resume {
    inst: *const Instance,
    stage: LoadStage,
    /// Fixed-size pieces (header, section header, offset, checksum)
    /// gather here.
    acc: [u8; HDR_LEN],
    acc_n: usize,
    sec_left: u64,
    vram_at: u64,
    state: KVec<u8>,
    saved: Option<SavedRegs>,
    /// CRC-32C of the bytes so far (and, at `End`, of those before it).
    crc: u32,
    bytes: u64,
    err: Option<Error>,
}

impl Resume {
    fn inst(&self) -> &Instance {
        inst_of(self.inst)
    }

    /// Refuses the stream: one line in the log, the same errno from here on.
    fn refuse(&mut self, e: Error, why: kernel::fmt::Arguments<'_>) -> Error {
        if self.err.is_none() && shim::err_ratelimit() {
            let inst = self.inst();
            dev_err!(
                inst.parent.pdev(),
                "instance {}: migration stream refused at byte {}: {}\n",
                inst.id,
                self.bytes,
                why
            );
        }
        self.err = Some(e);
        e
    }

    /// Gathers `need` bytes from `b[*i..]` into `acc`; true once complete.
    fn gather(&mut self, b: &[u8], i: &mut usize, need: usize) -> bool {
        let k = (need - self.acc_n).min(b.len() - *i);
        self.acc[self.acc_n..self.acc_n + k].copy_from_slice(&b[*i..*i + k]);
        if self.stage != LoadStage::End {
            self.crc = shim::crc32c(self.crc, &b[*i..*i + k]);
        }
        self.acc_n += k;
        *i += k;
        self.bytes += k as u64;
        if self.acc_n == need {
            self.acc_n = 0;
            true
        } else {
            false
        }
    }

    fn u64_at(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.acc[i..i + 8]);
        u64::from_le_bytes(w)
    }

    fn u32_at(&self, i: usize) -> u32 {
        u32::from_le_bytes([
            self.acc[i],
            self.acc[i + 1],
            self.acc[i + 2],
            self.acc[i + 3],
        ])
    }

    fn write(&mut self, b: &[u8]) -> Result<usize> {
        if let Some(e) = self.err {
            return Err(e);
        }
        let slice = self.inst().slice_size();
        let contexts = self.inst().contexts();
        let mut i = 0;
        while i < b.len() {
            match self.stage {
                LoadStage::Header => {
                    if !self.gather(b, &mut i, HDR_LEN) {
                        continue;
                    }
                    match Header::check(&self.acc, slice, contexts) {
                        Ok(_) => self.stage = LoadStage::SecHdr,
                        Err(HeaderError::Magic) => {
                            return Err(self.refuse(EINVAL, fmt!("not a vslice migration stream")))
                        }
                        Err(HeaderError::Version(v)) => {
                            return Err(self.refuse(
                                EPROTONOSUPPORT,
                                fmt!("stream version {}, this driver reads {}", v, VERSION),
                            ))
                        }
                        Err(HeaderError::Malformed) => {
                            return Err(self.refuse(EINVAL, fmt!("malformed header")))
                        }
                        Err(HeaderError::Geometry(s, c)) => {
                            return Err(self.refuse(
                                EINVAL,
                                fmt!(
                                    "stream of an instance with {} bytes of VRAM and {} contexts, this one has {} and {}",
                                    s,
                                    c,
                                    slice,
                                    contexts
                                ),
                            ))
                        }
                    }
                }
                LoadStage::SecHdr => {
                    if !self.gather(b, &mut i, SEC_HDR_LEN) {
                        continue;
                    }
                    let (id, rsvd, len) = (self.u32_at(0), self.u32_at(4), self.u64_at(8));
                    self.sec_left = len;
                    self.stage = match id {
                        _ if rsvd != 0 => {
                            return Err(
                                self.refuse(EINVAL, fmt!("section {} has flags {:#x}", id, rsvd))
                            )
                        }
                        SEC_VRAM if len >= 8 && len - 8 <= slice => LoadStage::VramOff,
                        SEC_STATE if self.saved.is_none() && len == SavedRegs::len(contexts) => {
                            self.state.clear();
                            LoadStage::State
                        }
                        SEC_END if len == END_LEN && self.saved.is_some() => LoadStage::End,
                        SEC_VRAM | SEC_STATE | SEC_END => {
                            return Err(self.refuse(
                                EINVAL,
                                fmt!(
                                    "section {} of {} bytes out of place or of the wrong size",
                                    id,
                                    len
                                ),
                            ))
                        }
                        _ => return Err(self.refuse(EINVAL, fmt!("unknown section {}", id))),
                    };
                }
                LoadStage::VramOff => {
                    if !self.gather(b, &mut i, 8) {
                        continue;
                    }
                    let off = self.u64_at(0);
                    self.sec_left -= 8;
                    let len = self.sec_left;
                    if off > slice || len > slice - off {
                        return Err(self.refuse(
                            EINVAL,
                            fmt!("VRAM section {:#x}+{:#x} outside the slice", off, len),
                        ));
                    }
                    self.vram_at = off;
                    self.stage = if self.sec_left == 0 {
                        LoadStage::SecHdr
                    } else {
                        LoadStage::Vram
                    };
                }
                LoadStage::Vram => {
                    let k = self.sec_left.min((b.len() - i) as u64) as usize;
                    let mut chunk = [0u8; 256];
                    let mut done = 0;
                    // `vram` writes from a mutable buffer: copy in pieces.
                    while done < k {
                        let m = (k - done).min(chunk.len());
                        chunk[..m].copy_from_slice(&b[i + done..i + done + m]);
                        self.inst()
                            .vram(self.vram_at + done as u64, &mut chunk[..m], true)?;
                        done += m;
                    }
                    self.crc = shim::crc32c(self.crc, &b[i..i + k]);
                    self.vram_at += k as u64;
                    self.sec_left -= k as u64;
                    self.bytes += k as u64;
                    i += k;
                    if self.sec_left == 0 {
                        self.stage = LoadStage::SecHdr;
                    }
                }
                LoadStage::State => {
                    let k = self.sec_left.min((b.len() - i) as u64) as usize;
                    self.state.extend_from_slice(&b[i..i + k], GFP_KERNEL)?;
                    self.crc = shim::crc32c(self.crc, &b[i..i + k]);
                    self.sec_left -= k as u64;
                    self.bytes += k as u64;
                    i += k;
                    if self.sec_left == 0 {
                        let s = SavedRegs::decode(&self.state, contexts)?;
                        self.saved = Some(s);
                        self.stage = LoadStage::SecHdr;
                    }
                }
                LoadStage::End => {
                    // The section header went through `crc`; the payload
                    // does not.
                    if !self.gather(b, &mut i, END_LEN as usize) {
                        continue;
                    }
                    let (want, rsvd, have) = (self.u32_at(0), self.u32_at(4), !self.crc);
                    if want != have || rsvd != 0 {
                        return Err(self.refuse(
                            EBADMSG,
                            fmt!(
                                "checksum {:#010x}, the stream's bytes give {:#010x}",
                                want,
                                have
                            ),
                        ));
                    }
                    self.stage = LoadStage::Done;
                }
                LoadStage::Done => {
                    return Err(self.refuse(EINVAL, fmt!("bytes after the end section")));
                }
            }
        }
        Ok(b.len())
    }

    /// Leaving RESUMING: a complete, checked stream goes into the device.
    fn load(&mut self) -> Result {
        if let Some(e) = self.err {
            return Err(e);
        }
        if self.stage != LoadStage::Done {
            let n = self.bytes;
            return Err(self.refuse(
                ENODATA,
                fmt!("the stream ends after {} bytes, before its end section", n),
            ));
        }
        let Some(s) = self.saved.take() else {
            return Err(EINVAL);
        };
        let inst = self.inst();
        inst.load_state(&s).inspect_err(|e| {
            if shim::err_ratelimit() {
                dev_err!(
                    inst.parent.pdev(),
                    "instance {}: cannot load the migrated state: {:?}\n",
                    inst.id,
                    e
                );
            }
        })
    }
}

/// One data file's stream.
pub(crate) enum Stream {
    Save(Save),
    Resume(Resume),
}

impl Stream {
    /// A saving stream of `inst`; with `precopy` the slice is sent while
    /// the instance runs and what is written meanwhile is logged.
    pub(crate) fn save(inst: &Instance, precopy: bool) -> Result<Stream> {
        Ok(Stream::Save(Save::new(inst, precopy)?))
    }

    /// A resuming stream into `inst` (its contexts frozen).
    pub(crate) fn resume(inst: &Instance) -> Result<Stream> {
        Ok(Stream::Resume(Resume {
            inst,
            stage: LoadStage::Header,
            acc: [0; HDR_LEN],
            acc_n: 0,
            sec_left: 0,
            vram_at: 0,
            state: KVec::new(),
            saved: None,
            crc: !0,
            bytes: 0,
            err: None,
        }))
    }

    /// PRE_COPY_P2P → STOP_COPY: the contexts are frozen, the stream gets
    /// an end.
    pub(crate) fn stop_copy(&mut self) -> Result {
        match self {
            Stream::Save(s) => {
                s.stopped = true;
                Ok(())
            }
            Stream::Resume(_) => Err(EINVAL),
        }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self {
            Stream::Save(s) => s.read(buf),
            Stream::Resume(_) => Err(EINVAL),
        }
    }

    pub(crate) fn precopy_info(&mut self) -> Result<(u64, u64)> {
        match self {
            Stream::Save(s) => s.precopy_info(),
            Stream::Resume(_) => Err(EINVAL),
        }
    }

    pub(crate) fn write(&mut self, buf: &[u8]) -> Result<usize> {
        match self {
            Stream::Resume(r) => r.write(buf),
            Stream::Save(_) => Err(EINVAL),
        }
    }

    pub(crate) fn load(&mut self) -> Result {
        match self {
            Stream::Resume(r) => r.load(),
            Stream::Save(_) => Err(EINVAL),
        }
    }

    /// A saving stream's STOP_COPY bytes from now (`stop_copy_len` for
    /// one that has sent nothing).
    pub(crate) fn stop_copy_left(&self) -> Option<u64> {
        match self {
            Stream::Save(s) => Some(s.stop_copy_left()),
            Stream::Resume(_) => None,
        }
    }
}

/// Bytes a STOP_COPY stream of `inst` takes: header, the slice in
/// sections, the state, the end.
pub(crate) fn stop_copy_len(inst: &Instance) -> u64 {
    let pages = inst.slice_size().div_ceil(PAGE);
    let chunks = pages.div_ceil(CHUNK_PAGES);
    HDR_LEN as u64
        + chunks * (SEC_HDR_LEN as u64 + 8)
        + inst.slice_size()
        + SEC_HDR_LEN as u64
        + SavedRegs::len(inst.contexts())
        + SEC_HDR_LEN as u64
        + END_LEN
}
