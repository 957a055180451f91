// SPDX-License-Identifier: GPL-2.0
//! `vslice-hw-sim --socket PATH [options]`: serves one simulated vslice
//! device over vfio-user until QEMU disconnects. Threads: the vfio-user
//! server (this thread), the job engine, and the fault control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use vfio_user::Server;
use vslice_hw_sim::device::{Backend, Device, DeviceParams, Shared};
use vslice_hw_sim::faults::{Command, Faults};

const USAGE: &str = "usage: vslice-hw-sim --socket PATH [--contexts N] [--vram-mib N] [--vectors N]
                     [--control PATH] [--fault CMD] [--fault-after MS:CMD] [--verbose]
  fault commands: remove | restore | hang MS | slow US | error-irq | exit | status";

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

struct Options {
    socket: PathBuf,
    control: Option<PathBuf>,
    params: DeviceParams,
    faults: Vec<(u64, Command)>,
    verbose: bool,
}

fn parse() -> Result<Options, String> {
    let mut socket = None;
    let mut control = None;
    let mut p = DeviceParams::default();
    let mut vectors = None;
    let mut faults = Vec::new();
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name} needs a number"));
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(val("--socket")?)),
            "--control" => control = Some(PathBuf::from(val("--control")?)),
            "--contexts" => p.contexts = num("--contexts", val("--contexts")?)? as u32,
            "--vram-mib" => p.vram_size = num("--vram-mib", val("--vram-mib")?)? << 20,
            "--vectors" => vectors = Some(num("--vectors", val("--vectors")?)? as u32),
            "--fault" => faults.push((0, Command::parse(&val("--fault")?)?)),
            "--fault-after" => {
                let v = val("--fault-after")?;
                let (ms, cmd) = v.split_once(':').ok_or("--fault-after takes MS:CMD")?;
                faults.push((num("--fault-after", ms.into())?, Command::parse(cmd)?));
            }
            "--verbose" => verbose = true,
            "--help" | "-h" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument '{a}'\n{USAGE}")),
        }
    }
    p.vectors = vectors.unwrap_or(p.contexts + 1);
    p.validate()?;
    Ok(Options {
        socket: socket.ok_or(USAGE)?,
        control,
        params: p,
        faults,
        verbose,
    })
}

/// Carries out one fault command; the reply line for the control socket.
fn execute(shared: &Shared, c: &Command) -> String {
    if *c != Command::Status {
        log::warn!("fault injected: {c:?}");
    }
    match c {
        Command::Exit => {
            eprintln!("vslice-hw-sim: exiting on fault command");
            std::process::exit(3);
        }
        Command::ErrorIrq => shared.lock().inject_error(),
        Command::Status => {}
        _ => shared.faults.apply(c),
    }
    shared.kick();
    format!("ok {}", shared.faults.describe())
}

fn serve_control(shared: Arc<Shared>, stream: UnixStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else {
            return;
        };
        let reply = match Command::parse(&line) {
            Ok(c) => execute(&shared, &c),
            Err(e) => format!("error {e}"),
        };
        if writeln!(out, "{reply}").is_err() {
            return;
        }
    }
}

fn main() -> ExitCode {
    let opts = match parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let level = if opts.verbose {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger(level)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
    let faults = Arc::new(Faults::default());
    let dev = match Device::new(opts.params.clone(), faults) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("vslice-hw-sim: cannot create the device: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A stale socket from a killed run would make bind fail.
    let _ = std::fs::remove_file(&opts.socket);
    let server = match Server::new(&opts.socket, true, dev.irq_info(), dev.regions()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vslice-hw-sim: cannot listen on {}: {e}", opts.socket.display());
            return ExitCode::FAILURE;
        }
    };
    let shared = Shared::new(dev);
    let engine = {
        let s = shared.clone();
        std::thread::spawn(move || s.run_engine())
    };
    if let Some(path) = &opts.control {
        let _ = std::fs::remove_file(path);
        match UnixListener::bind(path) {
            Ok(l) => {
                let s = shared.clone();
                std::thread::spawn(move || {
                    for stream in l.incoming().flatten() {
                        let s = s.clone();
                        std::thread::spawn(move || serve_control(s, stream));
                    }
                });
            }
            Err(e) => {
                eprintln!("vslice-hw-sim: cannot listen on control socket {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    for (ms, c) in opts.faults {
        let s = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            execute(&s, &c);
        });
    }
    let p = &opts.params;
    eprintln!(
        "vslice-hw-sim: listening on {} ({} contexts, {} MiB VRAM, {} vectors)",
        opts.socket.display(),
        p.contexts,
        p.vram_size >> 20,
        p.vectors
    );
    let result = server.run(&mut Backend(shared.clone()));
    shared.stop();
    let _ = engine.join();
    if let Some(path) = &opts.control {
        let _ = std::fs::remove_file(path);
    }
    let (stats, bad) = {
        let d = shared.lock();
        (d.stats, d.bad_accesses())
    };
    match result {
        Ok(()) => {
            eprintln!(
                "vslice-hw-sim: client disconnected; {} accesses, {} refused, {} interrupts",
                stats.accesses, bad, stats.irqs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vslice-hw-sim: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
