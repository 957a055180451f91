// SPDX-License-Identifier: GPL-2.0
//! The raw ioctl path: what the conformance tests and the fuzzer send when
//! the arguments must be malformed (short argsz, bad pointers, data that
//! does not match the header), which no typed wrapper would build.

use std::io;
use std::os::fd::RawFd;

/// An ioctl with a pointer argument, its result as an errno.
///
/// # Safety
///
/// Whatever `arg` points to that the kernel may write for `req` must be
/// memory this process owns and does not otherwise borrow; a pointer to
/// unmapped memory (or null) is fine, the kernel answers EFAULT.
pub unsafe fn ioctl_ptr(fd: RawFd, req: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: per the contract.
    let r = unsafe { libc::ioctl(fd, req, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
