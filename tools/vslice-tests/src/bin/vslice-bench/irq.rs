// SPDX-License-Identifier: GPL-2.0
//! P6: interrupt latency. A NOP job's descriptor is written untimed; the
//! clock runs from the tail write (a trapped pwrite: the device may start
//! here) through the doorbell write until the context's MSI-X eventfd
//! wakes this thread. The peers are plain eventfd round trips between two
//! threads of the same guest, pinned to one vCPU (a wakeup without an
//! IPI: the floor) and to two (each wakeup kicks the other vCPU, which
//! TCG may have halted).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use vslice::job::{Instance, Job};
use vslice::regs::*;
use vslice::vfio::EventFd;
use vslice::vfio::Wait;

use crate::table::{us, Results, Row, Series};

fn doorbell_to_wakeup(inst: &mut Instance, warm: usize, reps: usize) -> io::Result<Vec<f64>> {
    let nop = Job {
        op: OP_NOP,
        ..Default::default()
    };
    let mut v = Vec::new();
    for i in 0..warm + reps {
        let idx = inst.stage(0, &[nop])?;
        let t0 = Instant::now();
        inst.kick(0)?;
        if !inst.irq(0).wait(5000)? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "P6: no MSI-X within 5 s of the doorbell",
            ));
        }
        let dt = us(t0);
        let d = inst.done(0, idx[0]);
        if d.status != DESC_STATUS_DONE {
            return Err(io::Error::other(format!(
                "P6: NOP job ended with status {:#x}",
                d.status
            )));
        }
        inst.ack(0)?;
        if i >= warm {
            v.push(dt);
        }
    }
    Ok(v)
}

/// Pins the calling thread to CPU `cpu`.
fn pin(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only touch that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(vslice::context(io::Error::last_os_error(), format!("pin to CPU {cpu}")));
        }
    }
    Ok(())
}

/// Unpins the calling thread (every CPU).
fn unpin() -> io::Result<()> {
    // SAFETY: as in `pin`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Round trips with this thread on CPU 0 and the echo thread on `echo_cpu`.
fn eventfd_round_trip(warm: usize, reps: usize, echo_cpu: usize) -> io::Result<Vec<f64>> {
    pin(0)?;
    let (ping, pong) = (
        Arc::new(EventFd::new(libc::EFD_CLOEXEC)?),
        Arc::new(EventFd::new(libc::EFD_CLOEXEC)?),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (ping, pong, stop) = (ping.clone(), pong.clone(), stop.clone());
        thread::spawn(move || -> io::Result<()> {
            pin(echo_cpu)?;
            loop {
                ping.wait(-1)?;
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                pong.write(1)?;
            }
        })
    };
    let mut v = Vec::new();
    let mut run = || -> io::Result<()> {
        for i in 0..warm + reps {
            let t0 = Instant::now();
            ping.write(1)?;
            if !pong.wait(5000)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "P6: eventfd echo thread silent for 5 s",
                ));
            }
            if i >= warm {
                v.push(us(t0));
            }
        }
        Ok(())
    };
    let r = run();
    stop.store(true, Ordering::Relaxed);
    ping.write(1)?;
    echo.join().map_err(|_| io::Error::other("echo thread panicked"))??;
    unpin()?;
    r.map(|()| v)
}

pub fn p6(inst: &mut Instance, warm: usize, reps: usize, res: &mut Results) -> io::Result<()> {
    println!("P6: tail/doorbell -> MSI-X -> eventfd x{reps} (+{warm} warm-up), eventfd round trips x{reps}");
    let dev = doorbell_to_wakeup(inst, warm, reps)?;
    let one = eventfd_round_trip(warm, reps, 0)?;
    let two = eventfd_round_trip(warm, reps, 1)?;
    res.push(Row::new(
        "P6",
        "interrupt latency: tail + doorbell writes -> MSI-X -> eventfd wakeup, vs an eventfd round trip",
        "us",
        vec![
            Series::new("vslice tail/doorbell -> eventfd", dev),
            Series::new("eventfd round trip, two threads on one vCPU", one),
            Series::new("eventfd round trip, two threads on two vCPUs", two),
        ],
    ));
    Ok(())
}
