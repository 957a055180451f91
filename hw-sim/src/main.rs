// SPDX-License-Identifier: GPL-2.0
//! `vslice-hw-sim --socket PATH [options]`: serves one simulated vslice
//! device over vfio-user until QEMU disconnects (`--help` lists the
//! options). Threads: the vfio-user server (this thread), the job engine,
//! and the fault control socket. Logs go to stderr through env_logger:
//! warnings and errors unless `--verbose` or `RUST_LOG` says otherwise.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use argh::FromArgs;
use vfio_user::Server;
use vslice_hw_sim::device::{Backend, Device, DeviceParams, Shared};
use vslice_hw_sim::faults::{Command, Faults};
use vslice_hw_sim::regs::{DEFAULT_CONTEXTS, DEFAULT_VRAM_SIZE};

/// The simulated vslice PCI device, served over vfio-user to QEMU's
/// vfio-user-pci. Fault commands (--fault, --fault-after, the control
/// socket): remove | restore | hang MS | slow US | error-irq | exit | status.
#[derive(FromArgs)]
struct Cli {
    /// the vfio-user socket to listen on
    #[argh(option, arg_name = "PATH")]
    socket: PathBuf,
    /// a socket taking one fault command per line (docs/device.md)
    #[argh(option, arg_name = "PATH")]
    control: Option<PathBuf>,
    /// hardware contexts (default 16)
    #[argh(option, arg_name = "N", default = "DEFAULT_CONTEXTS")]
    contexts: u32,
    /// VRAM in MiB, a power of two (default 256)
    #[argh(option, arg_name = "N", default = "DEFAULT_VRAM_SIZE >> 20")]
    vram_mib: u64,
    /// MSI-X vectors (default contexts + 1)
    #[argh(option, arg_name = "N")]
    vectors: Option<u32>,
    /// a fault command carried out at start (repeatable)
    #[argh(option, arg_name = "CMD", from_str_fn(Command::parse))]
    fault: Vec<Command>,
    /// a fault command carried out MS ms after start (repeatable)
    #[argh(option, arg_name = "MS:CMD", from_str_fn(delayed_fault))]
    fault_after: Vec<(u64, Command)>,
    /// log at info level too (RUST_LOG, if set, decides instead)
    #[argh(switch)]
    verbose: bool,
}

fn delayed_fault(v: &str) -> Result<(u64, Command), String> {
    let (ms, cmd) = v.split_once(':').ok_or("--fault-after takes MS:CMD")?;
    let ms = ms.parse().map_err(|_| format!("'{ms}' is not a number of ms"))?;
    Ok((ms, Command::parse(cmd)?))
}

impl Cli {
    fn params(&self) -> Result<DeviceParams, String> {
        let p = DeviceParams {
            contexts: self.contexts,
            vram_size: self.vram_mib.checked_mul(1 << 20).ok_or("--vram-mib is too large")?,
            vectors: self.vectors.unwrap_or(self.contexts.saturating_add(1)),
        };
        p.validate()?;
        Ok(p)
    }
}

/// `vslice-hw-sim[PID]: LEVEL: message`: the pid tells apart the devices
/// of one VM run.
fn init_log(verbose: bool) {
    let level = if verbose {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    };
    let pid = std::process::id();
    env_logger::Builder::new()
        .filter_level(level)
        .parse_default_env()
        .format(move |buf, r| writeln!(buf, "vslice-hw-sim[{pid}]: {}: {}", r.level(), r.args()))
        .init();
}

/// Carries out one fault command; the reply line for the control socket.
fn execute(shared: &Shared, c: &Command) -> String {
    if *c != Command::Status {
        log::warn!("fault injected: {c:?}");
    }
    match c {
        Command::Exit => {
            log::warn!("exiting on fault command");
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
    let opts: Cli = vslice_args::parse();
    init_log(opts.verbose);
    let params = match opts.params() {
        Ok(p) => p,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(vslice_args::USAGE_ERROR);
        }
    };
    let faults = Arc::new(Faults::default());
    let dev = match Device::new(params.clone(), faults) {
        Ok(d) => d,
        Err(e) => {
            log::error!("cannot create the device: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A stale socket from a killed run would make bind fail.
    let _ = std::fs::remove_file(&opts.socket);
    let server = match Server::new(&opts.socket, true, dev.irq_info(), dev.regions()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot listen on {}: {e}", opts.socket.display());
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
                log::error!("cannot listen on control socket {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let faults = opts.fault.into_iter().map(|c| (0, c)).chain(opts.fault_after);
    for (ms, c) in faults {
        let s = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            execute(&s, &c);
        });
    }
    // The run's first and last lines are printed whatever the log level.
    let p = &params;
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
            log::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
