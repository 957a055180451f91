// SPDX-License-Identifier: GPL-2.0
//! The hw-sim binary end to end: a real vfio-user client talks to it over
//! its socket while faults are injected through the control socket and the
//! command line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use vfio_bindings::bindings::vfio::*;
use vfio_user::Client;
use vslice_hw_sim::regs::*;

struct Sim {
    child: Child,
    dir: PathBuf,
}

impl Sim {
    fn start(name: &str, extra: &[&str]) -> Sim {
        let dir = std::env::temp_dir().join(format!("vslice-ctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Its log goes to a file: on the test's stderr it would interleave
        // with the harness's "test ... ok" lines, which make check parses.
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vslice-hw-sim"))
            .stderr(log)
            .arg("--socket")
            .arg(dir.join("dev.sock"))
            .arg("--control")
            .arg(dir.join("ctl.sock"))
            .args(["--contexts", "4", "--vram-mib", "4"])
            .args(extra)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(dir.join("dev.sock").exists() && dir.join("ctl.sock").exists()) {
            assert!(Instant::now() < deadline, "hw-sim did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Sim { child, dir }
    }

    fn client(&self) -> Client {
        Client::new(&self.dir.join("dev.sock")).unwrap()
    }

    fn control(&self) -> (BufReader<UnixStream>, UnixStream) {
        let s = UnixStream::connect(self.dir.join("ctl.sock")).unwrap();
        (BufReader::new(s.try_clone().unwrap()), s)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ask(ctl: &mut (BufReader<UnixStream>, UnixStream), cmd: &str) -> String {
    writeln!(ctl.1, "{cmd}").unwrap();
    let mut line = String::new();
    ctl.0.read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

fn read_reg(c: &mut Client, off: usize) -> u32 {
    let mut b = [0u8; 4];
    c.region_read(VFIO_PCI_BAR0_REGION_INDEX, off as u64, &mut b).unwrap();
    u32::from_le_bytes(b)
}

#[test]
fn faults_through_the_control_socket() {
    let sim = Sim::start("faults", &[]);
    let mut c = sim.client();
    let mut ctl = sim.control();
    assert_eq!(read_reg(&mut c, REG_ID), DEVICE_ID_MAGIC);
    assert_eq!(read_reg(&mut c, REG_NUM_CONTEXTS), 4);
    assert!(ask(&mut ctl, "remove").starts_with("ok removed=true"));
    assert_eq!(read_reg(&mut c, REG_ID), u32::MAX);
    assert!(ask(&mut ctl, "restore").starts_with("ok removed=false"));
    assert_eq!(read_reg(&mut c, REG_ID), DEVICE_ID_MAGIC);
    assert!(ask(&mut ctl, "hang 300").starts_with("ok removed=false hang_ms_left="));
    let t = Instant::now();
    assert_eq!(read_reg(&mut c, REG_ID), DEVICE_ID_MAGIC);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "the access waited for the hang"
    );
    assert!(ask(&mut ctl, "error-irq").starts_with("ok"));
    assert_eq!(read_reg(&mut c, REG_STATUS), STATUS_READY | STATUS_FATAL);
    assert_eq!(ask(&mut ctl, "bogus 1"), "error unknown command 'bogus'");
    assert_eq!(ask(&mut ctl, "hang"), "error 'hang' needs a number");
    // The connection survives garbage and keeps answering.
    assert!(ask(&mut ctl, "status").starts_with("ok"));
}

#[test]
fn exit_fault_ends_the_process() {
    let mut sim = Sim::start("exit", &[]);
    let mut c = sim.client();
    assert_eq!(read_reg(&mut c, REG_ID), DEVICE_ID_MAGIC);
    let mut ctl = sim.control();
    writeln!(ctl.1, "exit").unwrap();
    let status = sim.child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let mut b = [0u8; 4];
    assert!(
        c.region_read(VFIO_PCI_BAR0_REGION_INDEX, 0, &mut b).is_err(),
        "device is gone"
    );
}

#[test]
fn fault_from_the_command_line() {
    let sim = Sim::start("cmdline", &["--fault", "slow 1000", "--fault-after", "200:remove"]);
    let mut c = sim.client();
    assert_eq!(read_reg(&mut c, REG_ID), DEVICE_ID_MAGIC);
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_reg(&mut c, REG_ID) != u32::MAX {
        assert!(Instant::now() < deadline, "--fault-after never applied");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_vslice-hw-sim"))
        .args(["--socket", "/nonexistent/x", "--fault", "explode"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_vslice-hw-sim"))
        .args(["--socket", "x", "--vram-mib", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!Path::new("x").exists());
}

/// Malformed and truncated vfio-user messages: hw-sim must not panic.
/// The `vfio_user` crate answers what it can parse with an error and
/// drops a connection it cannot; either way the process ends cleanly.
#[test]
fn malformed_protocol_messages_do_not_panic() {
    let cases: [&[u8]; 4] = [
        b"\xff\xff\xff\xff garbage that is not a vfio-user header",
        // A header whose message_size claims far more than is sent.
        &[1, 0, 2, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0],
        // An unknown command with a plausible size.
        &[1, 0, 0xee, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        // Truncated: half a header.
        &[1, 0, 1, 0, 16, 0],
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let mut sim = Sim::start(&format!("garbage{i}"), &[]);
        let mut s = UnixStream::connect(sim.dir.join("dev.sock")).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        drop(s);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = sim.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "hw-sim hangs after case {i}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_ne!(status.code(), Some(101), "hw-sim panicked on case {i}");
        let log = std::fs::read_to_string(sim.dir.join("stderr.log")).unwrap_or_default();
        assert!(!log.contains("panicked"), "hw-sim panicked on case {i}: {log}");
        assert!(status.code().is_some(), "hw-sim died by a signal on case {i}");
    }
}

/// Log lines name the process (several devices' logs are read side by
/// side); warnings show by default and RUST_LOG overrides the level.
#[test]
fn log_lines_carry_the_pid_and_follow_rust_log() {
    let dir = std::env::temp_dir().join(format!("vslice-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |rust_log: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vslice-hw-sim"));
        c.arg("--socket").arg(dir.join("dev.sock")).args(["--fault", "exit"]);
        c.env_remove("RUST_LOG");
        if let Some(v) = rust_log {
            c.env("RUST_LOG", v);
        }
        let child = c.stderr(std::process::Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        (pid, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (pid, log) = run(None);
    assert!(
        log.contains(&format!("vslice-hw-sim[{pid}]: WARN: fault injected: Exit")),
        "{log}"
    );
    let (_, log) = run(Some("error"));
    assert!(!log.contains("WARN"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
