//! The one place an inherited fd number becomes an `OwnedFd`, for every
//! program of the workspace: the broker (`--policy-fd`, `--pass-fd`,
//! `LISTEN_FDS`), the emulator (`-open-hook-fd`, `-add-fd`, chardev `fd=`,
//! `LISTEN_FDS`, `[[listen]]` sockets), `openhook-open` and the test peer
//! (`-open-hook-fd`).
//!
//! A number is claimed only when it is above 2, open and *not*
//! close-on-exec. Every fd inherited across `execve` has the flag clear,
//! while every fd a process of ours opens itself is close-on-exec (Rust
//! std, rustix with `CLOEXEC`, our own dups), so the check also proves no
//! other owner exists in the process. Claiming sets the flag, so the same
//! number can never be claimed twice. Standard streams 0–2 are never
//! claimed: std keeps using them. See `docs/dev/unsafe.md`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::io::{Errno, FdFlags};

/// Why a number could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// 0, 1 or 2 (or negative).
    #[error("standard I/O streams cannot be claimed")]
    Stdio,
    /// `F_GETFD` failed: the number is not open.
    #[error("{}", io::Error::from(*.0))]
    NotOpen(Errno),
    /// Open but close-on-exec: this process owns it already.
    #[error("fd is close-on-exec, so it was not inherited")]
    CloseOnExec,
    /// Setting close-on-exec on the claimed fd failed.
    #[error("{}", io::Error::from(*.0))]
    SetFlags(Errno),
}

impl From<ClaimError> for io::Error {
    fn from(e: ClaimError) -> io::Error {
        match e {
            ClaimError::NotOpen(errno) | ClaimError::SetFlags(errno) => errno.into(),
            other => io::Error::new(io::ErrorKind::InvalidInput, other),
        }
    }
}

/// The descriptor flags of number `n`, or the errno (`EBADF`: not open).
/// Reads the fd table only; claims nothing.
pub fn fd_flags(n: RawFd) -> Result<FdFlags, Errno> {
    // SAFETY: F_GETFD reads the fd-table flags of the number `n`; it has no
    // memory effects and fails with EBADF when `n` is not open.
    let r = unsafe { libc::fcntl(n, libc::F_GETFD) };
    if r < 0 {
        return Err(Errno::from_io_error(&io::Error::last_os_error()).unwrap_or(Errno::BADF));
    }
    Ok(FdFlags::from_bits_retain(r.cast_unsigned()))
}

/// Fails unless `n` is an open, inherited (not close-on-exec), non-stdio fd.
fn check_claimable(n: RawFd) -> Result<(), ClaimError> {
    if n <= 2 {
        return Err(ClaimError::Stdio);
    }
    let flags = fd_flags(n).map_err(ClaimError::NotOpen)?;
    if flags.contains(FdFlags::CLOEXEC) {
        return Err(ClaimError::CloseOnExec);
    }
    Ok(())
}

/// Claims inherited fd `n`: checks it (module docs), owns it and marks it
/// close-on-exec.
pub fn claim(n: RawFd) -> Result<OwnedFd, ClaimError> {
    check_claimable(n)?;
    // SAFETY: `n` is open and not close-on-exec; nothing in our processes
    // creates inheritable fds above 2 except what they inherited, and a
    // claimed fd becomes close-on-exec at once (next line), so this is the
    // only `OwnedFd` for `n` (module docs).
    let fd = unsafe { OwnedFd::from_raw_fd(n) };
    rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC).map_err(ClaimError::SetFlags)?;
    Ok(fd)
}

/// Runs `f` on inherited fd `n` without claiming it, if `n` could be
/// claimed (open, not close-on-exec, above 2); `None` otherwise. For
/// looking at inherited fds (e.g. which one is a listener bound to a path)
/// before deciding which to claim.
pub fn inspect<T>(n: RawFd, f: impl FnOnce(BorrowedFd<'_>) -> T) -> Option<T> {
    check_claimable(n).ok()?;
    // SAFETY: `n` is open and inherited (checked just above), so no owner
    // in this process closes it; the borrow lasts only for `f`, which
    // cannot keep it (the lifetime is local), and claims nothing.
    let fd = unsafe { BorrowedFd::borrow_raw(n) };
    Some(f(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    /// Tests here create inheritable fds and claim numbers; one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn inheritable() -> (OwnedFd, RawFd) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        rustix::io::fcntl_setfd(&w, FdFlags::empty()).unwrap();
        (r, w.into_raw_fd())
    }

    #[test]
    fn claims_an_inherited_number_once() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (_r, n) = inheritable();
        assert_eq!(inspect(n, |fd| fd.as_raw_fd()), Some(n));
        let fd = claim(n).unwrap();
        assert_eq!(fd.as_raw_fd(), n);
        assert!(rustix::io::fcntl_getfd(&fd)
            .unwrap()
            .contains(FdFlags::CLOEXEC));
        assert_eq!(claim(n).unwrap_err(), ClaimError::CloseOnExec);
        assert_eq!(inspect(n, |_| ()), None);
        drop(fd);
    }

    #[test]
    fn refuses_stdio_and_closed_numbers() {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        for n in [-1, 0, 1, 2] {
            assert_eq!(claim(n).unwrap_err(), ClaimError::Stdio);
        }
        assert_eq!(
            claim(100_000).unwrap_err(),
            ClaimError::NotOpen(Errno::BADF)
        );
        assert_eq!(fd_flags(100_000), Err(Errno::BADF));
        assert_eq!(
            io::Error::from(ClaimError::NotOpen(Errno::BADF)).to_string(),
            io::Error::from_raw_os_error(libc::EBADF).to_string()
        );
        assert_eq!(
            io::Error::from(ClaimError::CloseOnExec).to_string(),
            "fd is close-on-exec, so it was not inherited"
        );
    }
}
