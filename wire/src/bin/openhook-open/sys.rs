//! Claiming the inherited `-open-hook-fd` number as an `OwnedFd` (the only
//! unsafe in this program).
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Take ownership of fd `n`, which the parent (the broker) left open for
/// us. Fails if `n` is not an open fd. Call once per number.
pub fn claim_inherited_fd(n: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor flags of `n`; any integer
    // is acceptable (EBADF if it is not open).
    let r = unsafe { libc::fcntl(n, libc::F_GETFD) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `n` is open (checked above), nothing else in this process
    // refers to it (it was inherited across exec and main claims it exactly
    // once, before any other code could open or close fds), so we may own it.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}
