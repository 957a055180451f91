// SPDX-License-Identifier: GPL-2.0
//! Running jobs on an open instance: its register window (trapped, through
//! the device fd) programs each context's ring, its VRAM slice is mmap'd
//! for descriptors and data, each context's MSI-X vector wakes the waiter.
//!
//! Slice layout used here: context i's ring (`RING_SLOTS` descriptors) at
//! `i * RING_BYTES`; data from `DATA_BASE` on.

use std::io;

use crate::vfio::{self, Device, EventFd, Mmap, OpenPath, Wait};
use std::os::fd::AsRawFd;
use vslice_abi::regs::*;
use vslice_abi::{checksum, Desc};

/// Ring slots per context.
pub const RING_SLOTS: u32 = 64;
/// Bytes of one context's ring.
pub const RING_BYTES: usize = RING_SLOTS as usize * DESC_SIZE;
/// Where data starts in the slice.
pub const DATA_BASE: u64 = 1 << 20;
/// Where `dma_round` expects its host buffer in the instance's IOAS.
pub const DMA_IOVA: u64 = 1 << 36;

/// One job.
#[derive(Clone, Copy, Debug, Default)]
pub struct Job {
    pub op: u32,
    pub src: u64,
    pub dst: u64,
    pub len: u32,
    pub value: u32,
}

impl Job {
    /// `op` moving `len` bytes from `src` to `dst` (no fill value).
    pub fn new(op: u32, src: u64, dst: u64, len: u32) -> Job {
        Job {
            op,
            src,
            dst,
            len,
            value: 0,
        }
    }
}

/// What a finished job reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    pub status: u32,
    pub result: u64,
}

/// An instance ready to run jobs.
pub struct Instance {
    pub dev: Device,
    pub vram: Mmap,
    pub contexts: u32,
    pub slice: u64,
    irqs: Vec<EventFd>,
    req: EventFd,
    tail: Vec<u32>,
}

fn ctx_reg(ctx: u32, off: usize) -> usize {
    ctx_window(ctx) + off
}

impl Instance {
    /// Opens instance `uuid`, maps its VRAM slice, arms one eventfd per
    /// MSI-X vector and sets up every context's ring.
    pub fn open(uuid: &str) -> io::Result<Instance> {
        Instance::open_by(uuid, OpenPath::Cdev)
    }

    /// `open` through the VFIO interface `path` names.
    pub fn open_by(uuid: &str, path: OpenPath) -> io::Result<Instance> {
        Instance::with_device(uuid, Device::open_by(uuid, path)?)
    }

    /// `open` on a device already opened (instance `uuid`).
    pub fn with_device(uuid: &str, dev: Device) -> io::Result<Instance> {
        let mut inst = Instance::attach(uuid, dev)?;
        for c in 0..inst.contexts {
            inst.setup_ring(c)?;
        }
        Ok(inst)
    }

    /// `with_device` for an instance whose rings come from elsewhere (a
    /// migration into it): interrupts armed and VRAM mapped, the rings
    /// left as they are; `sync_tails` once they are there.
    pub fn resumed(uuid: &str, dev: Device) -> io::Result<Instance> {
        Instance::attach(uuid, dev)
    }

    /// Takes every context's tail from the device.
    pub fn sync_tails(&mut self) -> io::Result<()> {
        for c in 0..self.contexts {
            self.tail[c as usize] = self.dev.reg(ctx_reg(c, CTX_RING_TAIL))?;
        }
        Ok(())
    }

    fn attach(uuid: &str, dev: Device) -> io::Result<Instance> {
        let id = dev.reg(REG_ID)?;
        if id != DEVICE_ID_MAGIC {
            return Err(io::Error::other(format!(
                "{uuid}: ID register {id:#x}, not a vslice instance"
            )));
        }
        let contexts = dev.reg(REG_NUM_CONTEXTS)?;
        let slice = u64::from(dev.reg(REG_VRAM_SIZE_LO)?) | u64::from(dev.reg(REG_VRAM_SIZE_HI)?) << 32;
        let r = dev.region_info(vfio::BAR2)?;
        if r.size != slice || r.flags & vfio::REGION_MMAP == 0 {
            return Err(io::Error::other(format!(
                "{uuid}: VRAM region {} bytes, flags {:#x}",
                r.size, r.flags
            )));
        }
        let vram = dev.mmap(vfio::BAR2, 0, slice as usize)?;
        let irqs = (0..contexts)
            .map(|_| EventFd::new(libc::EFD_CLOEXEC))
            .collect::<io::Result<Vec<_>>>()?;
        let fds: Vec<i32> = irqs.iter().map(AsRawFd::as_raw_fd).collect();
        dev.set_msix(0, &fds)?;
        // The driver asks for the device back (instance removed, parent
        // unbound) through REQ: waits then give up and the caller closes.
        let req = EventFd::new(libc::EFD_CLOEXEC)?;
        dev.arm_request(&req)?;
        Ok(Instance {
            dev,
            vram,
            contexts,
            slice,
            irqs,
            req,
            tail: vec![0; contexts as usize],
        })
    }

    /// (Re)programs context `c`'s ring and unmasks its interrupts.
    pub fn setup_ring(&mut self, c: u32) -> io::Result<()> {
        let d = &self.dev;
        d.set_reg(ctx_reg(c, CTX_RING_BASE_LO), (c as usize * RING_BYTES) as u32)?;
        d.set_reg(ctx_reg(c, CTX_RING_BASE_HI), 0)?;
        d.set_reg(ctx_reg(c, CTX_RING_SIZE), RING_SLOTS)?;
        d.set_reg(ctx_reg(c, CTX_IRQ_MASK), 0)?;
        self.tail[c as usize] = d.reg(ctx_reg(c, CTX_RING_HEAD))?;
        d.set_reg(ctx_reg(c, CTX_RING_TAIL), self.tail[c as usize])?;
        Ok(())
    }

    /// Queues `jobs` on context `c` (the last one raises an interrupt) and
    /// rings the doorbell; returns their ring indices.
    pub fn submit(&mut self, c: u32, jobs: &[Job]) -> io::Result<Vec<u32>> {
        let idx = self.stage(c, jobs)?;
        self.kick(c)?;
        Ok(idx)
    }

    /// Writes `jobs` into context `c`'s ring (VRAM, through the mmap) and
    /// advances the client's tail, but not the device's: nothing runs
    /// until `kick`.
    pub fn stage(&mut self, c: u32, jobs: &[Job]) -> io::Result<Vec<u32>> {
        if jobs.len() > RING_SLOTS as usize {
            return Err(io::Error::other("more jobs than ring slots"));
        }
        let base = c as usize * RING_BYTES;
        let mut idx = Vec::with_capacity(jobs.len());
        for (k, j) in jobs.iter().enumerate() {
            let i = self.tail[c as usize];
            let at = base + (i % RING_SLOTS) as usize * DESC_SIZE;
            let flags = if k + 1 == jobs.len() { DESC_FLAG_IRQ } else { 0 };
            let d = Desc {
                opcode: j.op,
                flags,
                src: j.src,
                dst: j.dst,
                len: j.len,
                value: j.value,
            };
            self.vram.write_bytes(at, &d.encode());
            idx.push(i);
            self.tail[c as usize] = i.wrapping_add(1);
        }
        Ok(idx)
    }

    /// Publishes context `c`'s tail and rings its doorbell: the device may
    /// start at the tail write (head != tail), the doorbell says so.
    pub fn kick(&self, c: u32) -> io::Result<()> {
        self.dev.set_reg(ctx_reg(c, CTX_RING_TAIL), self.tail[c as usize])?;
        self.dev.set_reg(ctx_reg(c, CTX_DOORBELL), 1)
    }

    /// A submitted job's status and result (status 0: not done yet).
    pub fn done(&self, c: u32, index: u32) -> Done {
        let at = c as usize * RING_BYTES + (index % RING_SLOTS) as usize * DESC_SIZE;
        Done {
            status: self.vram.read32(at + DESC_STATUS),
            result: self.vram.read64(at + DESC_RESULT),
        }
    }

    /// Waits (MSI-X eventfd, up to `ms`) until the job at ring index
    /// `index` of context `c` has a status; acknowledges the interrupt.
    /// Returns the number of interrupts seen.
    pub fn wait(&self, c: u32, index: u32, ms: u32) -> io::Result<(Done, u32)> {
        let mut irqs = 0;
        let mut waited = 0;
        loop {
            let d = self.done(c, index);
            if d.status != 0 {
                // The device writes the status, then signals: give the
                // interrupt a moment to arrive if it has not yet.
                if irqs == 0 && self.irqs[c as usize].wait(1000)? {
                    irqs += 1;
                    self.ack(c)?;
                }
                return Ok((d, irqs));
            }
            if waited >= ms {
                let st = self.dev.reg(ctx_reg(c, CTX_STATUS))?;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("context {c}: job {index} not done after {ms} ms (status {st:#x}, {irqs} interrupts)"),
                ));
            }
            if self.req.wait(0)? {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the driver asked for the device back (REQ): abandoning the job and closing",
                ));
            }
            if self.irqs[c as usize].wait(100)? {
                irqs += 1;
                self.ack(c)?;
            } else {
                waited += 100;
                // A device that is gone (surprise removal, dead server)
                // reads all-ones: no job will finish, say so now.
                if self.dev.reg(ctx_reg(c, CTX_STATUS))? == u32::MAX {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        format!("context {c}: the device reads all-ones (removed or dead); job {index} abandoned"),
                    ));
                }
            }
        }
    }

    /// Acknowledges context `c`'s pending interrupt causes (RW1C).
    pub fn ack(&self, c: u32) -> io::Result<()> {
        let s = self.dev.reg(ctx_reg(c, CTX_IRQ_STATUS))?;
        self.dev.set_reg(ctx_reg(c, CTX_IRQ_STATUS), s)
    }

    /// Whether the driver has asked for the device back (REQ signalled).
    pub fn requested(&self) -> io::Result<bool> {
        self.req.wait(0)
    }

    /// The eventfd of MSI-X vector `c`.
    pub fn irq(&self, c: u32) -> &EventFd {
        &self.irqs[c as usize]
    }
}

/// Runs `job` alone on context `c` and waits for it (`ms` at most). A job
/// that failed leaves the context halted: its error is read
/// (`CTX_ERROR_ADDR_*`, returned) and cleared, so the ring goes on.
pub fn run_one(inst: &mut Instance, c: u32, job: Job, ms: u32) -> io::Result<(Done, Option<u64>)> {
    run_one_with(inst, c, job, ms, || Ok(()))
}

/// `run_one` with `between` called after the descriptor is in the ring
/// and before the doorbell; what it returns lives until the job ended.
pub fn run_one_with<G>(
    inst: &mut Instance,
    c: u32,
    job: Job,
    ms: u32,
    between: impl FnOnce() -> io::Result<G>,
) -> io::Result<(Done, Option<u64>)> {
    let idx = inst.stage(c, &[job])?;
    let guard = between()?;
    inst.kick(c)?;
    let (d, _) = inst.wait(c, idx[0], ms)?;
    drop(guard);
    if d.status & DESC_STATUS_ERROR == 0 {
        return Ok((d, None));
    }
    let lo = inst.dev.reg(ctx_reg(c, CTX_ERROR_ADDR_LO))?;
    let hi = inst.dev.reg(ctx_reg(c, CTX_ERROR_ADDR_HI))?;
    inst.dev.set_reg(ctx_reg(c, CTX_ERROR), 0)?;
    Ok((d, Some(u64::from(lo) | u64::from(hi) << 32)))
}

/// Every job at `idx` of context `c` completed successfully.
fn all_done(inst: &Instance, c: u32, idx: &[u32]) -> io::Result<()> {
    for &i in idx {
        let d = inst.done(c, i);
        if d.status != DESC_STATUS_DONE {
            return Err(io::Error::other(format!("context {c}: job {i} status {:#x}", d.status)));
        }
    }
    Ok(())
}

/// Outcome of one fill → copy → checksum round on one context.
#[derive(Debug)]
pub struct Round {
    pub context: u32,
    pub bytes: u32,
    pub checksum: u64,
    pub irqs: u32,
}

/// Fills `len` bytes with `pattern` at a context-private offset, copies
/// them, checksums the copy, and verifies all three through the mmap.
pub fn round(inst: &mut Instance, c: u32, len: u32, pattern: u32) -> io::Result<Round> {
    let area = (inst.slice - DATA_BASE) / u64::from(inst.contexts);
    let a = DATA_BASE + u64::from(c) * area;
    let b = a + area / 2;
    if u64::from(len) > area / 2 {
        return Err(io::Error::other(format!("{len} bytes do not fit context {c}'s area")));
    }
    let jobs = [
        Job {
            op: OP_FILL,
            dst: a,
            len,
            value: pattern,
            ..Default::default()
        },
        Job {
            op: OP_COPY,
            src: a,
            dst: b,
            len,
            ..Default::default()
        },
        Job {
            op: OP_CHECKSUM,
            src: b,
            len,
            ..Default::default()
        },
    ];
    let idx = inst.submit(c, &jobs)?;
    let (last, irqs) = inst.wait(c, idx[2], 20_000)?;
    all_done(inst, c, &idx)?;
    let mut copy = vec![0u8; len as usize];
    inst.vram.read_bytes(b as usize, &mut copy);
    let want: Vec<u8> = pattern
        .to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len as usize)
        .collect();
    if copy != want {
        return Err(io::Error::other(format!(
            "context {c}: copied data differs from the fill pattern"
        )));
    }
    let sum = checksum(&want);
    if last.result != sum {
        return Err(io::Error::other(format!(
            "context {c}: checksum {:#x}, expected {sum:#x}",
            last.result
        )));
    }
    Ok(Round {
        context: c,
        bytes: len,
        checksum: sum,
        irqs,
    })
}

/// Maps a host buffer for `dma_round` on every context of `inst` with
/// jobs of `len` bytes at `DMA_IOVA`; keep it until the instance closes.
pub fn dma_buffer(inst: &Instance, len: u32) -> io::Result<Mmap> {
    let size = (2 * len as usize * inst.contexts as usize).next_multiple_of(4096);
    let buf = Mmap::anonymous(size)?;
    inst.dev.map_dma(DMA_IOVA, &buf)?;
    Ok(buf)
}

/// One host → VRAM → host round on context `c` through the instance's
/// IOAS: `len` bytes of a pattern in the host buffer (`dma_buffer`) go to
/// VRAM, are checksummed there and come back to another part of the
/// buffer; both verified.
pub fn dma_round(inst: &mut Instance, c: u32, len: u32, seed: u32, buf: &Mmap) -> io::Result<Round> {
    let area = (inst.slice - DATA_BASE) / u64::from(inst.contexts);
    let vram = DATA_BASE + u64::from(c) * area;
    let out = 2 * u64::from(len) * u64::from(c);
    let back = out + u64::from(len);
    if u64::from(len) > area || back + u64::from(len) > buf.len() as u64 {
        return Err(io::Error::other(format!("{len} bytes do not fit context {c}'s areas")));
    }
    let data: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ seed as u8)
        .collect();
    buf.write_bytes(out as usize, &data);
    let jobs = [
        Job {
            op: OP_DMA_FROM_HOST,
            src: DMA_IOVA + out,
            dst: vram,
            len,
            ..Default::default()
        },
        Job {
            op: OP_CHECKSUM,
            src: vram,
            len,
            ..Default::default()
        },
        Job {
            op: OP_DMA_TO_HOST,
            src: vram,
            dst: DMA_IOVA + back,
            len,
            ..Default::default()
        },
    ];
    let idx = inst.submit(c, &jobs)?;
    let (_, irqs) = inst.wait(c, idx[2], 30_000)?;
    all_done(inst, c, &idx)?;
    let sum = checksum(&data);
    if inst.done(c, idx[1]).result != sum {
        return Err(io::Error::other(format!(
            "context {c}: VRAM does not hold what the host sent"
        )));
    }
    let mut got = vec![0u8; len as usize];
    buf.read_bytes(back as usize, &mut got);
    if got != data {
        return Err(io::Error::other(format!(
            "context {c}: the host did not get its data back"
        )));
    }
    Ok(Round {
        context: c,
        bytes: len,
        checksum: sum,
        irqs,
    })
}
