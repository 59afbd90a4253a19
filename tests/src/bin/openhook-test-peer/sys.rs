//! Claiming the inherited `-open-hook-fd` number as an `OwnedFd`, and
//! checking whether an fd number is open (the only unsafe in this helper).
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The fd flags of `n`, or `None` if it is not open.
pub fn fd_flags(n: RawFd) -> Option<i32> {
    // SAFETY: F_GETFD only reads the descriptor flags of `n`; any integer
    // is acceptable (EBADF if it is not open).
    let r = unsafe { libc::fcntl(n, libc::F_GETFD) };
    (r >= 0).then_some(r)
}

/// Take ownership of fd `n`, inherited from the broker. Call once per number.
pub fn claim_inherited_fd(n: RawFd) -> std::io::Result<OwnedFd> {
    if fd_flags(n).is_none() {
        return Err(std::io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: `n` is open (checked above) and nothing else in this process
    // refers to it: it was inherited across exec and main claims it exactly
    // once, before any other code runs.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}
