//! Supervising the child: SIGTERM/SIGINT forwarded to it, SIGCHLD reaps it,
//! all taken synchronously with `sigwait` in the main thread (no signal
//! handlers). The exit status is mirrored: the child's code, or 128+signal.

use std::io;

use rustix::process::{Pid, Signal, WaitOptions};

use super::sys;

/// Signals the broker takes with `sigwait`: blocked before the child and
/// the serve thread exist.
const TAKEN: [i32; 3] = [libc::SIGCHLD, libc::SIGINT, libc::SIGTERM];

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl ChildExit {
    /// The broker's own exit status: the child's code, or 128 + signal.
    pub fn code(self) -> u8 {
        let n = match self {
            ChildExit::Exited(c) => c,
            ChildExit::Signaled(s) => 128 + s,
        };
        u8::try_from(n & 0xff).unwrap_or(u8::MAX)
    }
}

/// Block the signals [`supervise`] takes and give them their default
/// disposition. The child inherits dispositions across fork and exec: a
/// broker started as a background job of a non-interactive shell has
/// SIGINT ignored, and its child then ignored the SIGINT (or SIGTERM) the
/// broker forwarded and ran on. An ignored SIGCHLD would let the kernel
/// reap the child. QEMU, likewise, takes SIGINT/SIGTERM whatever it
/// inherited. Call before spawning the child or any thread.
pub fn prepare() -> io::Result<()> {
    sys::block_signals(&TAKEN)?;
    for sig in TAKEN {
        sys::default_disposition(sig)?;
    }
    Ok(())
}

/// Wait for `child` to end, forwarding SIGTERM and SIGINT to it.
pub fn supervise(child: Pid) -> io::Result<ChildExit> {
    loop {
        if let Some((_, status)) = rustix::process::waitpid(Some(child), WaitOptions::NOHANG)? {
            if let Some(code) = status.exit_status() {
                return Ok(ChildExit::Exited(code));
            }
            if let Some(sig) = status.terminating_signal() {
                return Ok(ChildExit::Signaled(sig));
            }
            continue;
        }
        let sig = sys::wait_signal(&TAKEN)?;
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            if let Some(s) = Signal::from_named_raw(sig) {
                // ESRCH: it is exiting anyway; SIGCHLD follows.
                let _ = rustix::process::kill_process(child, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_mirrored() {
        assert_eq!(ChildExit::Exited(0).code(), 0);
        assert_eq!(ChildExit::Exited(3).code(), 3);
        assert_eq!(ChildExit::Signaled(libc::SIGKILL).code(), 137);
        assert_eq!(ChildExit::Signaled(libc::SIGTERM).code(), 143);
    }
}
