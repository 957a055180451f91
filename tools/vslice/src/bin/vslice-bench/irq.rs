// SPDX-License-Identifier: GPL-2.0
//! P6: interrupt latency. A NOP job is queued untimed; the clock runs from
//! the doorbell write (a trapped pwrite) until the context's MSI-X eventfd
//! wakes this thread. The peer is a plain eventfd round trip between two
//! threads of the same guest: the floor of any wakeup.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use vslice::job::{Instance, Job};
use vslice::regs::*;
use vslice::vfio::EventFd;

use crate::table::{Results, Row, Series};

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

fn doorbell_to_wakeup(inst: &mut Instance, warm: usize, reps: usize) -> io::Result<Vec<f64>> {
    let nop = Job {
        op: OP_NOP,
        ..Default::default()
    };
    let mut v = Vec::new();
    for i in 0..warm + reps {
        let idx = inst.queue(0, &[nop])?;
        let t0 = Instant::now();
        inst.ring(0)?;
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

fn eventfd_round_trip(warm: usize, reps: usize) -> io::Result<Vec<f64>> {
    let (ping, pong) = (Arc::new(EventFd::new()?), Arc::new(EventFd::new()?));
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (ping, pong, stop) = (ping.clone(), pong.clone(), stop.clone());
        thread::spawn(move || -> io::Result<()> {
            loop {
                ping.wait(-1)?;
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                pong.signal()?;
            }
        })
    };
    let mut v = Vec::new();
    let mut run = || -> io::Result<()> {
        for i in 0..warm + reps {
            let t0 = Instant::now();
            ping.signal()?;
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
    ping.signal()?;
    echo.join().map_err(|_| io::Error::other("echo thread panicked"))??;
    r.map(|()| v)
}

pub fn p6(inst: &mut Instance, warm: usize, reps: usize, res: &mut Results) -> io::Result<()> {
    println!("P6: doorbell -> MSI-X -> eventfd x{reps} (+{warm} warm-up), eventfd round trip x{reps}");
    let dev = doorbell_to_wakeup(inst, warm, reps)?;
    let efd = eventfd_round_trip(warm, reps)?;
    res.push(Row::new(
        "P6",
        "interrupt latency: doorbell write -> MSI-X -> eventfd wakeup, vs an eventfd round trip",
        "us",
        vec![
            Series::new("vslice doorbell -> eventfd", dev),
            Series::new("eventfd round trip (two threads)", efd),
        ],
    ));
    Ok(())
}
