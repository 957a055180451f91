// SPDX-License-Identifier: GPL-2.0
//! vslice client library: parents, types and instances through sysfs;
//! instances opened through VFIO; jobs run on them.
pub mod job;
pub mod migrate;
pub mod sysfs;
pub mod vfio;

pub use vslice_abi::regs;

use std::fmt;
use std::io;

/// An OS error and what it happened to. Kept inside `io::Error` so that
/// messages say where and counters still see the errno (`errno_of`).
#[derive(Debug)]
pub struct Context {
    pub errno: i32,
    pub msg: String,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Context {}

/// `e` with `what` in front of its message, its errno kept.
pub fn context(e: io::Error, what: impl fmt::Display) -> io::Error {
    let msg = format!("{what}: {e}");
    match e.raw_os_error() {
        Some(errno) => io::Error::new(e.kind(), Context { errno, msg }),
        None => io::Error::new(e.kind(), msg),
    }
}

/// The errno behind `e`, also through `context`.
pub fn errno_of(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
        .or_else(|| e.get_ref()?.downcast_ref::<Context>().map(|c| c.errno))
}

#[cfg(test)]
mod tests {
    #[test]
    fn context_keeps_the_errno() {
        let e = super::context(std::io::Error::from_raw_os_error(libc::ENODEV), "/sys/x/create");
        assert_eq!(super::errno_of(&e), Some(libc::ENODEV));
        assert!(e.to_string().starts_with("/sys/x/create: "));
        let d = super::context(std::io::Error::other("data differs"), "round");
        assert_eq!(super::errno_of(&d), None);
    }
}
