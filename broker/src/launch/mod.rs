//! Launching: the hook socketpair, the child with only its declared fds and
//! the hook fd (`spawn`), the serve thread, signal forwarding and reaping
//! (`signals`). The unsafe fork/exec and signal-mask calls are in `sys`.
//!
//! [`run`] is the whole sequence. The serve function is a parameter so
//! launching knows nothing about policy: `main.rs` passes a closure that
//! calls `serve::serve`.

pub mod hardening;
pub mod signals;
pub mod spawn;
mod sys;

use std::os::fd::OwnedFd;

pub use signals::ChildExit;
pub use spawn::{LaunchSpec, SpawnError};
pub use sys::{ChildStep, ForkExecError};

/// Why launching failed after the child was started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Setting up signal handling failed.
    #[error("setting up signals: {0}")]
    Signals(#[source] std::io::Error),
    /// Starting the program failed.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// Waiting for the child failed.
    #[error("waiting for the child: {0}")]
    Wait(#[source] std::io::Error),
    /// Duplicating the hook socket failed.
    #[error("duplicating the hook socket: {0}")]
    Dup(#[source] std::io::Error),
}

impl LaunchError {
    /// Exit status for this failure (see [`SpawnError::exit_code`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            LaunchError::Spawn(e) => e.exit_code(),
            _ => 125,
        }
    }
}

/// Start the program, serve its hook connection in a thread with `serve`
/// (which gets the broker's end of the socketpair and the child's pid, and
/// returns at EOF),
/// forward SIGTERM/SIGINT, reap the child and return how it ended.
///
/// Must be called while the process is single-threaded. The serve thread
/// never delays reaping: once the child is gone the socket is shut down
/// (so a half-sent frame from a lingering grandchild ends the serve loop
/// too) and the thread is joined.
pub fn run<F>(spec: &LaunchSpec<'_>, serve: F) -> Result<ChildExit, LaunchError>
where
    F: FnOnce(OwnedFd, i32) + Send,
{
    signals::prepare().map_err(LaunchError::Signals)?;
    let child = spawn::spawn(spec)?;
    let shutdown = child.hook.try_clone().map_err(LaunchError::Dup)?;
    let hook = child.hook;
    let shutdown = &shutdown;
    std::thread::scope(|scope| {
        let pid = child.pid.as_raw_nonzero().get();
        scope.spawn(move || {
            serve(hook, pid);
            // `serve` closed its fd, but our duplicate keeps the socket
            // open: shut it down so the child sees the connection closed.
            let _ = rustix::net::shutdown(shutdown, rustix::net::Shutdown::Both);
        });
        let exit = signals::supervise(child.pid).map_err(LaunchError::Wait);
        // Ends a serve loop still blocked in recvmsg or sendmsg.
        let _ = rustix::net::shutdown(shutdown, rustix::net::Shutdown::Both);
        exit
    })
}
