// SPDX-License-Identifier: GPL-2.0
//! `vslice`: list, create and remove instances; open one through VFIO.
//!
//!   vslice list
//!   vslice create PARENT TYPE [UUID]      (prints the UUID)
//!   vslice remove UUID
//!   vslice info UUID                      (opens it; device and IRQ info)
//!   vslice hold UUID [SECONDS]            (keeps it open until the driver
//!                                          asks for it back through REQ)
//!   vslice run [--len BYTES] [--rounds N] UUID...
//!                                         (fill, copy, checksum on every
//!                                          context of every instance at
//!                                          once; verifies each result)

use std::process::ExitCode;

use std::time::Instant;

use vslice::vfio::Wait;
use vslice::{job, sysfs, vfio};

fn run(args: &[String]) -> Result<(), String> {
    let arg = |i: usize, what: &str| args.get(i).cloned().ok_or(format!("missing {what}"));
    match args.first().map(String::as_str) {
        Some("list") => {
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
        Some("create") => {
            let uuid = match args.get(3) {
                Some(u) => u.clone(),
                None => sysfs::new_uuid().map_err(|e| e.to_string())?,
            };
            sysfs::create(&arg(1, "PARENT")?, &arg(2, "TYPE")?, &uuid).map_err(|e| e.to_string())?;
            println!("{uuid}");
            Ok(())
        }
        Some("remove") => sysfs::remove(&arg(1, "UUID")?).map_err(|e| e.to_string()),
        Some("info") => {
            let d = vfio::Device::open(&arg(1, "UUID")?).map_err(|e| e.to_string())?;
            let i = d.info().map_err(|e| format!("VFIO_DEVICE_GET_INFO: {e}"))?;
            println!("flags {:#x} regions {} irqs {}", i.flags, i.num_regions, i.num_irqs);
            for index in 0..i.num_irqs {
                let q = d.irq_info(index).map_err(|e| format!("VFIO_DEVICE_GET_IRQ_INFO {index}: {e}"))?;
                println!("irq {index}: count {} flags {:#x}", q.count, q.flags);
            }
            Ok(())
        }
        Some("hold") => {
            let uuid = arg(1, "UUID")?;
            let secs: i32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
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
        Some("run") => run_jobs(&args[1..]),
        _ => Err(
            "usage: vslice list | create PARENT TYPE [UUID] | remove UUID | info UUID | hold UUID [SECONDS] | run [--len BYTES] [--rounds N] UUID..."
                .into(),
        ),
    }
}

/// Runs rounds on every context of every instance, one thread each.
fn run_jobs(args: &[String]) -> Result<(), String> {
    let mut len: u32 = 1 << 20;
    let mut rounds = 1;
    let mut uuids = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--len" => len = it.next().and_then(|v| v.parse().ok()).ok_or("--len BYTES")?,
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).ok_or("--rounds N")?,
            u => uuids.push(u.to_string()),
        }
    }
    if uuids.is_empty() {
        return Err("run: no instance given".into());
    }
    let start = Instant::now();
    let results: Vec<Result<String, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = uuids
            .iter()
            .enumerate()
            .map(|(k, u)| {
                s.spawn(move || -> Result<String, String> {
                    let mut inst = job::Instance::open(u).map_err(|e| format!("{u}: {e}"))?;
                    let mut irqs = 0;
                    let mut bytes = 0u64;
                    let mut longest = 0u128;
                    for r in 0..rounds {
                        for c in 0..inst.contexts {
                            let pattern = 0x5100_0000 | (k as u32) << 16 | (r as u32) << 8 | c;
                            let t0 = Instant::now();
                            let out = job::round(&mut inst, c, len, pattern).map_err(|e| format!("{u}: {e}"))?;
                            longest = longest.max(t0.elapsed().as_millis());
                            irqs += out.irqs;
                            bytes += u64::from(out.bytes);
                        }
                    }
                    Ok(format!(
                        "{u}: {} contexts, {} MiB VRAM slice: {} fill+copy+checksum rounds of {} KiB verified, {} MSI-X interrupts",
                        inst.contexts,
                        inst.slice >> 20,
                        rounds * inst.contexts as usize,
                        len >> 10,
                        irqs
                    ) + &format!(" ({} MiB filled, longest round {longest} ms)", bytes >> 20))
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vslice: {e}");
            ExitCode::FAILURE
        }
    }
}
