// SPDX-License-Identifier: GPL-2.0
//! `vslice`: list, create and remove instances; open one through VFIO;
//! run jobs on them. `vslice --help` lists the commands.

use std::process::ExitCode;

use std::time::Instant;

use argh::FromArgs;
use vslice::vfio::Wait;
use vslice::{job, migrate, sysfs, vfio};

/// Instances of vslice devices: list, create, remove, open through VFIO, run jobs.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    List(List),
    Create(Create),
    Remove(Remove),
    Info(Info),
    Hold(Hold),
    Run(Run),
    Migrate(Migrate),
}

/// Parents, their types (with available counts) and instances.
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
struct List {}

/// Creates an instance and prints its UUID.
#[derive(FromArgs)]
#[argh(subcommand, name = "create")]
struct Create {
    /// the parent device (a PCI address)
    #[argh(positional, arg_name = "PARENT")]
    parent: String,
    /// the type, with or without its "vslice-" prefix
    #[argh(positional, arg_name = "TYPE")]
    ty: String,
    /// the instance's UUID (default: a new random one)
    #[argh(positional, arg_name = "UUID")]
    uuid: Option<String>,
}

/// Removes an instance.
#[derive(FromArgs)]
#[argh(subcommand, name = "remove")]
struct Remove {
    #[argh(positional, arg_name = "UUID")]
    uuid: String,
}

/// Opens an instance through VFIO; prints its device, region and IRQ info.
#[derive(FromArgs)]
#[argh(subcommand, name = "info")]
struct Info {
    #[argh(positional, arg_name = "UUID")]
    uuid: String,
}

/// Keeps an instance open until the driver asks for it back through REQ.
#[derive(FromArgs)]
#[argh(subcommand, name = "hold")]
struct Hold {
    #[argh(positional, arg_name = "UUID")]
    uuid: String,
    /// fail if no request came within this time (default 60)
    #[argh(positional, arg_name = "SECONDS", default = "60")]
    seconds: i32,
}

/// Fill, copy and checksum on every context of every instance at once,
/// each result verified.
#[derive(FromArgs)]
#[argh(subcommand, name = "run")]
struct Run {
    /// bytes per job (default 1048576)
    #[argh(option, arg_name = "BYTES", default = "1 << 20")]
    len: u32,
    /// rounds on each context (default 1)
    #[argh(option, arg_name = "N", default = "1")]
    rounds: usize,
    /// host -> VRAM -> host rounds through the instance's IOAS (DMA)
    /// instead of fill, copy and checksum in VRAM
    #[argh(switch)]
    dma: bool,
    /// the instances
    #[argh(positional, arg_name = "UUID")]
    uuids: Vec<String>,
}

/// Moves one instance's state (VRAM, registers, jobs in flight) into
/// another of the same type, on the same parent or another, through VFIO
/// migration v2, and reports bytes, pre-copy rounds and downtime. Opening
/// an instance resets its contexts (VRAM is kept): run by itself this
/// moves a slice's contents; a VMM holding the source moves its jobs too.
#[derive(FromArgs)]
#[argh(subcommand, name = "migrate")]
struct Migrate {
    /// stop the source first (STOP_COPY only, no pre-copy)
    #[argh(switch)]
    no_precopy: bool,
    /// pre-copy rounds at most (default 8)
    #[argh(option, arg_name = "N", default = "8")]
    rounds: u32,
    /// the instance to move
    #[argh(positional, arg_name = "SRC")]
    src: String,
    /// the instance that takes its place
    #[argh(positional, arg_name = "DST")]
    dst: String,
}

fn run(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::List(_) => {
            for p in sysfs::parents() {
                println!("{p}");
                for t in sysfs::types(&p) {
                    println!("  {:16} available {:2}  {}", t.name, t.available, t.description);
                }
            }
            for (u, p, t) in sysfs::instances() {
                println!("instance {u} {p} {t}");
            }
            Ok(())
        }
        Cmd::Create(Create { parent, ty, uuid }) => {
            let uuid = match uuid {
                Some(u) => u,
                None => sysfs::new_uuid().map_err(|e| e.to_string())?,
            };
            sysfs::create(&parent, &ty, &uuid).map_err(|e| e.to_string())?;
            println!("{uuid}");
            Ok(())
        }
        Cmd::Remove(Remove { uuid }) => sysfs::remove(&uuid).map_err(|e| e.to_string()),
        Cmd::Info(Info { uuid }) => {
            let d = vfio::Device::open(&uuid).map_err(|e| e.to_string())?;
            let i = d.info().map_err(|e| format!("VFIO_DEVICE_GET_INFO: {e}"))?;
            println!("flags {:#x} regions {} irqs {}", i.flags, i.num_regions, i.num_irqs);
            for index in 0..i.num_regions {
                let r = d
                    .region_info(index)
                    .map_err(|e| format!("VFIO_DEVICE_GET_REGION_INFO {index}: {e}"))?;
                println!("region {index}: size {:#x} flags {:#x}", r.size, r.flags);
            }
            for index in 0..i.num_irqs {
                let q = d
                    .irq_info(index)
                    .map_err(|e| format!("VFIO_DEVICE_GET_IRQ_INFO {index}: {e}"))?;
                println!("irq {index}: count {} flags {:#x}", q.count, q.flags);
            }
            Ok(())
        }
        Cmd::Hold(Hold { uuid, seconds: secs }) => {
            let d = vfio::Device::open(&uuid).map_err(|e| e.to_string())?;
            let req = vfio::EventFd::new(libc::EFD_CLOEXEC).map_err(|e| e.to_string())?;
            d.arm_request(&req).map_err(|e| format!("arming REQ: {e}"))?;
            println!("holding {uuid}");
            if req.wait(secs * 1000).map_err(|e| e.to_string())? {
                println!("request received: releasing {uuid}");
                drop(d);
                Ok(())
            } else {
                Err(format!("no request within {secs} s"))
            }
        }
        Cmd::Run(Run {
            len,
            rounds,
            dma,
            uuids,
        }) => run_jobs(len, rounds, dma, &uuids),
        Cmd::Migrate(m) => {
            let src = vfio::Device::open(&m.src).map_err(|e| e.to_string())?;
            let dst = vfio::Device::open(&m.dst).map_err(|e| e.to_string())?;
            let opt = migrate::Options {
                precopy: !m.no_precopy,
                max_rounds: m.rounds.max(1),
                ..Default::default()
            };
            let r = migrate::migrate(&src, &dst, &opt).map_err(|e| e.to_string())?;
            println!(
                "migrated {} -> {}: {} bytes ({} in {} pre-copy round(s)), downtime {:.1} ms, total {:.1} ms",
                m.src,
                m.dst,
                r.bytes,
                r.precopy_bytes,
                r.rounds,
                r.downtime.as_secs_f64() * 1e3,
                r.total.as_secs_f64() * 1e3
            );
            Ok(())
        }
    }
}

/// Runs rounds on every context of every instance, one thread each.
fn run_jobs(len: u32, rounds: usize, dma: bool, uuids: &[String]) -> Result<(), String> {
    if uuids.is_empty() {
        return Err("run: no instance given".into());
    }
    let start = Instant::now();
    let results: Vec<Result<String, String>> =
        std::thread::scope(|s| {
            let hs: Vec<_> =
                uuids
                    .iter()
                    .enumerate()
                    .map(|(k, u)| {
                        s.spawn(move || -> Result<String, String> {
                            let mut inst = job::Instance::open(u).map_err(|e| format!("{u}: {e}"))?;
                            let buf = match dma {
                                true => Some(job::dma_buffer(&inst, len).map_err(|e| format!("{u}: {e}"))?),
                                false => None,
                            };
                            let mut irqs = 0;
                            let mut bytes = 0u64;
                            let mut longest = 0u128;
                            for r in 0..rounds {
                                for c in 0..inst.contexts {
                                    let pattern = 0x5100_0000 | (k as u32) << 16 | (r as u32) << 8 | c;
                                    let t0 = Instant::now();
                                    let out = match &buf {
                                        Some(b) => job::dma_round(&mut inst, c, len, pattern, b),
                                        None => job::round(&mut inst, c, len, pattern),
                                    }
                                    .map_err(|e| format!("{u}: {e}"))?;
                                    longest = longest.max(t0.elapsed().as_millis());
                                    irqs += out.irqs;
                                    bytes += u64::from(out.bytes);
                                }
                            }
                            Ok(format!(
                        "{u}: {} contexts, {} MiB VRAM slice: {} {} rounds of {} KiB verified, {} MSI-X interrupts",
                        inst.contexts,
                        inst.slice >> 20,
                        rounds * inst.contexts as usize,
                        if dma { "host->VRAM->host DMA" } else { "fill+copy+checksum" },
                        len >> 10,
                        irqs
                    ) + &format!(" ({} MiB moved, longest round {longest} ms)", bytes >> 20))
                        })
                    })
                    .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
                .collect()
        });
    let mut failed = 0;
    for r in &results {
        match r {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed += 1;
                eprintln!("vslice: {e}");
            }
        }
    }
    println!(
        "{} instance(s) in {:.1} s, {failed} failed",
        results.len(),
        start.elapsed().as_secs_f64()
    );
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} instance(s) failed"))
    }
}

fn main() -> ExitCode {
    match run(vslice_args::parse::<Cli>().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vslice: {e}");
            ExitCode::FAILURE
        }
    }
}
