// SPDX-License-Identifier: GPL-2.0
//! `vslice-hw-sim --socket PATH [options]`: serves one simulated vslice
//! device over vfio-user until QEMU disconnects.

use std::path::PathBuf;
use std::process::ExitCode;

use vfio_user::Server;
use vslice_hw_sim::device::{Device, DeviceParams};

const USAGE: &str = "usage: vslice-hw-sim --socket PATH [--contexts N] [--vram-mib N] [--vectors N] [--verbose]";

struct Logger(log::LevelFilter);

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.0
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("vslice-hw-sim[{}]: {}: {}", std::process::id(), r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

fn parse() -> Result<(PathBuf, DeviceParams, bool), String> {
    let mut socket = None;
    let mut p = DeviceParams::default();
    let mut vectors = None;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match a.as_str() {
            "--socket" => socket = args.next().map(PathBuf::from),
            "--contexts" => p.contexts = num("--contexts")? as u32,
            "--vram-mib" => p.vram_size = num("--vram-mib")? << 20,
            "--vectors" => vectors = Some(num("--vectors")? as u32),
            "--verbose" => verbose = true,
            "--help" | "-h" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument '{a}'\n{USAGE}")),
        }
    }
    p.vectors = vectors.unwrap_or(p.contexts + 1);
    p.validate()?;
    Ok((socket.ok_or(USAGE)?, p, verbose))
}

fn main() -> ExitCode {
    let (socket, params, verbose) = match parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let level = if verbose {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger(level)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
    let mut dev = match Device::new(params.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("vslice-hw-sim: cannot create the device: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A stale socket from a killed run would make bind fail.
    let _ = std::fs::remove_file(&socket);
    let server = match Server::new(&socket, true, dev.irq_info(), dev.regions()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vslice-hw-sim: cannot listen on {}: {e}", socket.display());
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "vslice-hw-sim: listening on {} ({} contexts, {} MiB VRAM, {} vectors)",
        socket.display(),
        params.contexts,
        params.vram_size >> 20,
        params.vectors
    );
    match server.run(&mut dev) {
        Ok(()) => {
            eprintln!(
                "vslice-hw-sim: client disconnected, {} refused accesses",
                dev.bad_accesses
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vslice-hw-sim: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
