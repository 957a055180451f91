// SPDX-License-Identifier: GPL-2.0
//! Fault injection: surprise removal, hang, slow mode, error interrupt,
//! process exit, restore. Set from the control socket or the command line
//! (`--fault CMD`, `--fault-after MS:CMD`); read lock-free by the register
//! path and the engine.
//!
//! Control protocol: one command per line on a UNIX socket, one reply line
//! per command ("ok ..." or "error ..."):
//!   remove | restore | hang MS | slow US | error-irq | exit | status

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The active faults.
pub struct Faults {
    epoch: Instant,
    removed: AtomicBool,
    /// Nanoseconds after `epoch` until which the device hangs.
    hang_until: AtomicU64,
    slow_us: AtomicU32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            epoch: Instant::now(),
            removed: AtomicBool::new(false),
            hang_until: AtomicU64::new(0),
            slow_us: AtomicU32::new(0),
        }
    }
}

/// A parsed fault command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Surprise removal: reads all-ones, writes ignored, no interrupts.
    Remove,
    /// Clears remove, hang and slow.
    Restore,
    /// Every access and the engine stall for this long.
    Hang(u64),
    /// Every access takes this many microseconds more.
    Slow(u32),
    /// Raise the device-level error interrupt (GIRQ_FATAL).
    ErrorIrq,
    /// The process exits at once (status 3), as if the device died.
    Exit,
    /// Report the fault state.
    Status,
}

impl Command {
    /// Parses one command line.
    pub fn parse(line: &str) -> Result<Command, String> {
        let mut w = line.split_whitespace();
        let cmd = w.next().unwrap_or("");
        let mut arg = |name: &str| -> Result<u64, String> {
            w.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("'{name}' needs a number"))
        };
        let c = match cmd {
            "remove" => Command::Remove,
            "restore" => Command::Restore,
            "hang" => Command::Hang(arg("hang")?),
            "slow" => Command::Slow(u32::try_from(arg("slow")?).map_err(|_| "slow: too large")?),
            "error-irq" => Command::ErrorIrq,
            "exit" => Command::Exit,
            "status" => Command::Status,
            _ => return Err(format!("unknown command '{cmd}'")),
        };
        if w.next().is_some() {
            return Err("trailing arguments".into());
        }
        Ok(c)
    }
}

impl Faults {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Applies a state command (not ErrorIrq/Exit/Status, which need the
    /// device or the process).
    pub fn apply(&self, c: &Command) {
        match c {
            Command::Remove => self.removed.store(true, Ordering::SeqCst),
            Command::Restore => {
                self.removed.store(false, Ordering::SeqCst);
                self.hang_until.store(0, Ordering::SeqCst);
                self.slow_us.store(0, Ordering::SeqCst);
            }
            Command::Hang(ms) => {
                let until = self.now_ns().saturating_add(ms.saturating_mul(1_000_000));
                self.hang_until.store(until, Ordering::SeqCst);
            }
            Command::Slow(us) => self.slow_us.store(*us, Ordering::SeqCst),
            Command::ErrorIrq | Command::Exit | Command::Status => {}
        }
    }

    /// Whether the device is "removed".
    pub fn removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    /// How long the device still hangs.
    pub fn hang_left(&self) -> Option<Duration> {
        let until = self.hang_until.load(Ordering::Relaxed);
        let now = self.now_ns();
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    /// Whether the engine must not run now.
    pub fn engine_paused(&self) -> bool {
        self.removed() || self.hang_left().is_some()
    }

    /// Sleeps as a register access would under hang and slow mode.
    pub fn delay_access(&self) {
        if let Some(d) = self.hang_left() {
            std::thread::sleep(d);
        }
        let us = self.slow_us.load(Ordering::Relaxed);
        if us > 0 {
            std::thread::sleep(Duration::from_micros(us.into()));
        }
    }

    /// One line describing the state.
    pub fn describe(&self) -> String {
        format!(
            "removed={} hang_ms_left={} slow_us={}",
            self.removed(),
            self.hang_left().map_or(0, |d| d.as_millis()),
            self.slow_us.load(Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_commands() {
        assert_eq!(Command::parse("remove"), Ok(Command::Remove));
        assert_eq!(Command::parse(" hang 250 "), Ok(Command::Hang(250)));
        assert_eq!(Command::parse("slow 10"), Ok(Command::Slow(10)));
        assert!(Command::parse("hang").is_err());
        assert!(Command::parse("hang x").is_err());
        assert!(Command::parse("slow 99999999999").is_err());
        assert!(Command::parse("remove now").is_err());
        assert!(Command::parse("").is_err());
        assert!(Command::parse("\u{0}\u{ff}garbage").is_err());
    }

    #[test]
    fn hang_expires_and_restore_clears() {
        let f = Faults::default();
        f.apply(&Command::Hang(50));
        assert!(f.engine_paused());
        let t = Instant::now();
        f.delay_access();
        assert!(t.elapsed() >= Duration::from_millis(40));
        assert!(!f.engine_paused());
        f.apply(&Command::Remove);
        f.apply(&Command::Slow(5));
        assert!(f.removed());
        f.apply(&Command::Restore);
        assert!(!f.removed() && !f.engine_paused());
        assert_eq!(f.describe(), "removed=false hang_ms_left=0 slow_us=0");
    }
}
