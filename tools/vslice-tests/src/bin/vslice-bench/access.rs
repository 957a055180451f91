// SPDX-License-Identifier: GPL-2.0
//! P2 (trapped register access through the VFIO region, pread/pwrite on
//! the device fd) and P3 (VRAM slice throughput through mmap).

use std::io;
use std::time::{Duration, Instant};

use vslice::regs::*;
use vslice::vfio::{self, Device, Mmap};

use crate::table::{Goal, Results, Row, Series};

/// P3's peer that sets the goal: what the guest's memory moves at.
const MEMCPY: &str = "memcpy guest RAM -> guest RAM";

/// Nanoseconds per call of `f`, over `k` calls.
fn per_op(k: usize, mut f: impl FnMut() -> io::Result<()>) -> io::Result<f64> {
    let t0 = Instant::now();
    for _ in 0..k {
        f()?;
    }
    Ok(t0.elapsed().as_secs_f64() * 1e9 / k as f64)
}

/// `reps` samples of `per_op(k, f)` after one warm-up batch.
fn sample(reps: usize, k: usize, mut f: impl FnMut() -> io::Result<()>) -> io::Result<Vec<f64>> {
    per_op(k, &mut f)?;
    (0..reps).map(|_| per_op(k, &mut f)).collect()
}

fn rd(d: &Device, off: u64, len: usize) -> io::Result<()> {
    let mut b = [0u8; 4];
    match d.read_at(vfio::BAR0, off, &mut b[..len])? {
        n if n == len => Ok(()),
        n => Err(io::Error::other(format!("short region read: {n} of {len} bytes"))),
    }
}

fn wr(d: &Device, off: u64, v: &[u8]) -> io::Result<()> {
    match d.write_at(vfio::BAR0, off, v)? {
        n if n == v.len() => Ok(()),
        n => Err(io::Error::other(format!(
            "short region write: {n} of {} bytes",
            v.len()
        ))),
    }
}

/// P2: `vs` is an open vslice instance, `mtty` an open mtty instance.
pub fn p2(vs: &Device, mtty: &Device, reps: usize, k: usize, res: &mut Results) -> io::Result<()> {
    println!("P2: region reads and writes, {reps} batches of {k}");
    let scratch = REG_SCRATCH as u64;
    // Context 0's user block: CTX_COMPLETED is read-only and side-effect
    // free; CTX_IRQ_MASK takes a write (all causes masked) harmlessly.
    let completed = (ctx_window(0) + CTX_COMPLETED) as u64;
    let mask = (ctx_window(0) + CTX_IRQ_MASK) as u64;
    let mask_all = (CTX_IRQ_DONE | CTX_IRQ_ERROR).to_le_bytes();
    // mtty: the 16550 scratch register of port 0 (BAR0 offset 7), kept
    // by the driver in memory: its cheapest trapped register.
    const UART_SCR: u64 = 7;
    let v_shadow_rd = sample(reps, k, || rd(vs, scratch, 4))?;
    let v_shadow_wr = sample(reps, k, || wr(vs, scratch, &0x1234_5678u32.to_le_bytes()))?;
    let v_fwd_rd = sample(reps, k, || rd(vs, completed, 4))?;
    let v_fwd_wr = sample(reps, k, || wr(vs, mask, &mask_all))?;
    let m_rd = sample(reps, k, || rd(mtty, UART_SCR, 1))?;
    let m_wr = sample(reps, k, || wr(mtty, UART_SCR, &[0x5a]))?;
    for (what, v, m) in [
        ("read of shadowed REG_SCRATCH (kept in the driver)", v_shadow_rd, &m_rd),
        ("read of forwarded CTX_COMPLETED (device register)", v_fwd_rd, &m_rd),
        ("write of shadowed REG_SCRATCH", v_shadow_wr, &m_wr),
        ("write of forwarded CTX_IRQ_MASK", v_fwd_wr, &m_wr),
    ] {
        res.push(Row::new(
            "P2",
            format!("trapped {what}, vs mtty UART_SCR"),
            "ns",
            vec![Series::new("vslice", v), Series::new("mtty", m.clone())],
        ));
    }
    Ok(())
}

/// MB/s samples of copying `chunk` bytes from `src` to `dst` (offsets
/// walk through `len`), for `budget` but at least `min` samples, after
/// one warm-up pass over all of `len` (faults in lazily backed pages).
///
/// # Safety
///
/// `src` and `dst` are valid for `len` bytes and do not overlap.
pub unsafe fn copy_rate(
    dst: *mut u8,
    src: *const u8,
    len: usize,
    chunk: usize,
    budget: Duration,
    min: usize,
) -> Vec<f64> {
    let mut off = 0;
    while off < len {
        // SAFETY: inside both buffers per the contract.
        unsafe { std::ptr::copy_nonoverlapping(src.add(off), dst.add(off), chunk.min(len - off)) };
        off += chunk;
    }
    let t_all = Instant::now();
    let mut v = Vec::new();
    let mut off = 0;
    while v.len() < min || (t_all.elapsed() < budget && v.len() < 4096) {
        if off + chunk > len {
            off = 0;
        }
        let t0 = Instant::now();
        // SAFETY: off + chunk <= len.
        unsafe { std::ptr::copy_nonoverlapping(src.add(off), dst.add(off), chunk) };
        v.push(chunk as f64 / t0.elapsed().as_secs_f64() / 1e6);
        off += chunk;
    }
    v
}

pub const PAGE: usize = 4096;

/// Where in `buf` a copy window starts: page aligned and an odd number of
/// pages away from `peer` (page aligned), the other end of the copy.
///
/// QEMU TCG's softmmu TLB is direct-mapped by virtual page number, so a
/// source and destination an even (power-of-two) number of pages apart
/// evict each other's entry on every access: a guest-RAM memcpy whose two
/// buffers were 8192 pages apart ran at 13 MB/s, one page further at
/// 340 MB/s. An odd distance never shares a slot. The window lies within
/// the first `len + 2 * PAGE` bytes at `base` for any length `len`.
pub fn window(base: *mut u8, peer: *const u8) -> *mut u8 {
    let start = (PAGE - base as usize % PAGE) % PAGE;
    let at = base as usize + start;
    let off = if (at.abs_diff(peer as usize) / PAGE) % 2 == 1 {
        start
    } else {
        start + PAGE
    };
    base.wrapping_add(off)
}

/// P3: `vram` maps a vslice instance's slice, `mbochs` an mbochs
/// instance's framebuffer; both at least `len` bytes and page aligned.
pub fn p3(vram: &Mmap, mbochs: &Mmap, len: usize, budget: Duration, min: usize, res: &mut Results) -> io::Result<()> {
    let chunk = 256 << 10;
    if vram.len() < len || mbochs.len() < len || len < chunk {
        return Err(io::Error::other(format!(
            "P3 needs {len} bytes (chunks of {chunk}): vslice maps {}, mbochs {}",
            vram.len(),
            mbochs.len()
        )));
    }
    println!("P3: copy {chunk}-byte chunks over {len} bytes, {budget:?} per series");
    // Guest RAM with room for a page-aligned window at either parity.
    // Every pointer into them comes from one base pointer each.
    let mut src = vec![0xa5u8; len + 2 * PAGE];
    let mut dst = vec![0u8; len + 2 * PAGE];
    let (src, dst) = (src.as_mut_ptr(), dst.as_mut_ptr());
    let (vm, mb) = (vram.as_ptr(), mbochs.as_ptr());
    // (destination, source) of each series: vslice, RAM to RAM, mbochs.
    let ram_src = window(src, std::ptr::null());
    let ram = (window(dst, ram_src), ram_src);
    let rows = [
        (
            "write: guest RAM -> mapping",
            [(vm, window(src, vm)), ram, (mb, window(src, mb))],
        ),
        (
            "read: mapping -> guest RAM",
            [(window(dst, vm), vm), ram, (window(dst, mb), mb)],
        ),
    ];
    // SAFETY: every window is `len` bytes inside its buffer (`window`:
    // each buffer has `len + 2 * PAGE`) and each mapping is `len` bytes
    // or more (checked above); no source overlaps its destination.
    let rate = |(d, s): (*mut u8, *mut u8)| unsafe { copy_rate(d, s, len, chunk, budget, min) };
    let rows = rows.map(|(what, [v, r, m])| (what, rate(v), rate(r), rate(m)));
    for (what, v, ram, mb) in rows {
        res.push(
            Row::new(
                "P3",
                format!("VRAM slice throughput, {what}"),
                "MB/s",
                vec![
                    Series::new("vslice VRAM slice (mmap of BAR2)", v),
                    Series::new(MEMCPY, ram),
                    Series::new("mbochs framebuffer (mmap)", mb),
                ],
            )
            .goal(MEMCPY, Goal::AtLeast(0.9)),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{window, PAGE};

    /// Windows are page aligned, inside `len + 2 * PAGE`, and an odd
    /// number of pages from the peer, wherever the buffer and peer lie.
    #[test]
    fn windows_never_share_a_tlb_slot_with_their_peer() {
        let len = 8 * PAGE;
        let mut buf = vec![0u8; len + 4 * PAGE];
        let b0 = buf.as_mut_ptr();
        for skew in [0, 1, 100, PAGE - 1] {
            let base = b0.wrapping_add(skew);
            for peer_pages in [0usize, 1, 2, 3, 8192, 8193] {
                let peer = (0x7f00_0000_0000usize + peer_pages * PAGE) as *const u8;
                let w = window(base, peer);
                let (w, base) = (w as usize, base as usize);
                assert_eq!(w % PAGE, 0);
                assert!(w >= base && w + len <= base + len + 2 * PAGE);
                assert_eq!(
                    (w.abs_diff(peer as usize) / PAGE) % 2,
                    1,
                    "skew {skew}, peer {peer_pages}"
                );
            }
        }
    }
}
