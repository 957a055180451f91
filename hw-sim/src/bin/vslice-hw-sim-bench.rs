// SPDX-License-Identifier: GPL-2.0
//! `vslice-hw-sim-bench [--json]`: performance of the simulated device
//! itself, without QEMU: register accesses served over the vfio-user socket
//! (a real vfio-user client in this process, the server in a thread) and
//! job-engine throughput with 1 and 16 busy contexts. A benchmark, not a
//! test: the numbers go into docs/device.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use argh::FromArgs;
use serde::Serialize;
use vfio_bindings::bindings::vfio::*;
use vfio_user::{Client, Server};
use vslice_abi::Desc;
use vslice_hw_sim::device::{Backend, Device, DeviceParams, Shared, CHUNK};
use vslice_hw_sim::faults::Faults;
use vslice_hw_sim::regs::*;

fn socket_accesses(write: bool) -> f64 {
    let dir = std::env::temp_dir().join(format!("vslice-bench-{}-{write}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let dev = Device::new(DeviceParams::default(), Arc::new(Faults::default())).expect("device");
    let server = Server::new(&dir, true, dev.irq_info(), dev.regions()).expect("listen");
    let shared = Shared::new(dev);
    let s2 = shared.clone();
    let t = std::thread::spawn(move || server.run(&mut Backend(s2)));
    let mut c = Client::new(&dir).expect("connect");
    let mut buf = [0u8; 4];
    let run = |c: &mut Client, n: u32, buf: &mut [u8; 4]| {
        for i in 0..n {
            if write {
                c.region_write(VFIO_PCI_BAR0_REGION_INDEX, REG_SCRATCH as u64, &i.to_le_bytes())
                    .expect("write");
            } else {
                c.region_read(VFIO_PCI_BAR0_REGION_INDEX, REG_ID as u64, buf)
                    .expect("read");
            }
        }
    };
    run(&mut c, 2000, &mut buf); // warm-up
    let n = 50_000;
    let t0 = Instant::now();
    run(&mut c, n, &mut buf);
    let rate = f64::from(n) / t0.elapsed().as_secs_f64();
    drop(c);
    let _ = t.join();
    let _ = std::fs::remove_file(&dir);
    rate
}

/// (jobs/s, GiB/s) for `busy` contexts each running fills of `len` bytes.
fn engine(busy: u32, len: u32) -> (f64, f64) {
    let p = DeviceParams {
        vram_size: 256 << 20,
        ..Default::default()
    };
    let mut d = Device::new(p, Arc::new(Faults::default())).expect("device");
    let slice = (256u64 << 20) / 16;
    let w = |d: &mut Device, n: u32, r: usize, v: u32| {
        d.bar0_write32(ctx_window(n) + r, v);
    };
    d.bar0_write32(REG_CONTROL, CTRL_ENABLE);
    for n in 0..busy {
        w(&mut d, n, CTX_VRAM_BASE_LO, (u64::from(n) * slice) as u32);
        w(&mut d, n, CTX_VRAM_SIZE_LO, slice as u32);
        w(&mut d, n, CTX_RING_SIZE, 64);
        w(&mut d, n, CTX_CONTROL, CTX_CTRL_ENABLE);
    }
    let rounds = 16u32;
    let mut jobs = 0u64;
    let t0 = Instant::now();
    for round in 0..rounds {
        for n in 0..busy {
            for k in 0..8u32 {
                let tail = round * 8 + k;
                let at = (u64::from(n) * slice) as usize + (tail % 64) as usize * DESC_SIZE;
                let desc = Desc {
                    opcode: OP_FILL,
                    dst: 0x10000,
                    len,
                    value: tail,
                    ..Default::default()
                };
                d.vram_mut()[at..at + DESC_SIZE].copy_from_slice(&desc.encode());
                w(&mut d, n, CTX_RING_TAIL, tail + 1);
                jobs += 1;
            }
        }
        while d.step() {}
    }
    let secs = t0.elapsed().as_secs_f64();
    (
        jobs as f64 / secs,
        jobs as f64 * f64::from(len) / secs / f64::from(1u32 << 30),
    )
}

/// Performance of the simulated device alone: register accesses over the
/// vfio-user socket and job-engine throughput.
#[derive(FromArgs)]
struct Cli {
    /// one line of JSON instead of the table
    #[argh(switch)]
    json: bool,
}

/// The `--json` line: rates in whole operations per second, throughput
/// to 0.01 GiB/s.
#[derive(Serialize)]
struct Json {
    socket_reads_per_s: u64,
    socket_writes_per_s: u64,
    fill_64k_1ctx_jobs_per_s: u64,
    fill_64k_16ctx_jobs_per_s: u64,
    fill_1m_1ctx_gib_per_s: f64,
    fill_1m_16ctx_gib_per_s: f64,
}

fn main() {
    let json = vslice_args::parse::<Cli>().json;
    let reads = socket_accesses(false);
    let writes = socket_accesses(true);
    let small = 64 << 10;
    let big = 4 * CHUNK as u32;
    let e1 = engine(1, small);
    let e16 = engine(16, small);
    let b1 = engine(1, big);
    let b16 = engine(16, big);
    std::thread::sleep(Duration::from_millis(1));
    if json {
        let gib = |x: f64| (x * 100.0).round() / 100.0;
        let j = Json {
            socket_reads_per_s: reads.round() as u64,
            socket_writes_per_s: writes.round() as u64,
            fill_64k_1ctx_jobs_per_s: e1.0.round() as u64,
            fill_64k_16ctx_jobs_per_s: e16.0.round() as u64,
            fill_1m_1ctx_gib_per_s: gib(b1.1),
            fill_1m_16ctx_gib_per_s: gib(b16.1),
        };
        println!("{}", serde_json::to_string(&j).expect("plain numbers always serialize"));
    } else {
        println!("register reads over the vfio-user socket:  {reads:>10.0} /s");
        println!("register writes over the vfio-user socket: {writes:>10.0} /s");
        println!("64 KiB fills, 1 context:   {:>8.0} jobs/s  {:>6.2} GiB/s", e1.0, e1.1);
        println!("64 KiB fills, 16 contexts: {:>8.0} jobs/s  {:>6.2} GiB/s", e16.0, e16.1);
        println!("1 MiB fills, 1 context:    {:>8.0} jobs/s  {:>6.2} GiB/s", b1.0, b1.1);
        println!("1 MiB fills, 16 contexts:  {:>8.0} jobs/s  {:>6.2} GiB/s", b16.0, b16.1);
    }
}
