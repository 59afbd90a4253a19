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

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

pub use signals::ChildExit;
pub use spawn::{Channel, LaunchSpec, SpawnError};
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
    /// The broker could not confine itself; the child was killed and reaped.
    #[error("confining the broker: {0}")]
    Confine(#[source] openhook_sandbox::SandboxError),
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

/// Start the program, call `confine` with the child's pid (the broker
/// restricts itself there, still single-threaded; on error the child is
/// killed and reaped and the error returned), serve its channel in a
/// thread with `serve` (which gets the channel, the child's pid and a
/// stop eventfd that becomes readable once the child is reaped), forward
/// SIGTERM/SIGINT, reap the child and return how it ended.
///
/// Must be called while the process is single-threaded. The serve thread
/// never delays reaping: once the child is gone a hook socket is shut down
/// (so a half-sent frame from a lingering grandchild ends the serve loop
/// too), the stop eventfd is signalled, and the thread is joined.
pub fn run<C, F>(spec: &LaunchSpec<'_>, confine: C, serve: F) -> Result<ChildExit, LaunchError>
where
    C: FnOnce(i32) -> Result<(), openhook_sandbox::SandboxError>,
    F: FnOnce(Channel, i32, BorrowedFd<'_>) + Send,
{
    signals::prepare().map_err(LaunchError::Signals)?;
    let stop = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
        .map_err(|e| LaunchError::Signals(e.into()))?;
    let mut child = spawn::spawn(spec)?;
    // The broker confines itself while the child hardens itself and execs
    // (both are on the way to the child's first request), then checks
    // that the exec succeeded.
    if let Err(e) = confine(child.pid.as_raw_nonzero().get()) {
        let _ = rustix::process::kill_process(child.pid, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(Some(child.pid), rustix::process::WaitOptions::empty());
        return Err(LaunchError::Confine(e));
    }
    child.exec_done()?;
    let shutdown = match &child.channel {
        Channel::Hook(fd) => Some(fd.try_clone().map_err(LaunchError::Dup)?),
        Channel::Listener(_) => None,
    };
    let end_hook = |fd: &Option<OwnedFd>| {
        if let Some(fd) = fd {
            let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Both);
        }
    };
    let channel = child.channel;
    let (shutdown, stop) = (&shutdown, &stop);
    std::thread::scope(|scope| {
        let pid = child.pid.as_raw_nonzero().get();
        scope.spawn(move || {
            serve(channel, pid, stop.as_fd());
            // `serve` closed its fd, but our duplicate keeps the socket
            // open: shut it down so the child sees the connection closed.
            end_hook(shutdown);
        });
        let exit = signals::supervise(child.pid).map_err(LaunchError::Wait);
        // Ends a serve loop still blocked in recvmsg or sendmsg, or polling
        // a listener a lingering grandchild still holds.
        end_hook(shutdown);
        let _ = rustix::io::write(stop, &1u64.to_ne_bytes());
        exit
    })
}
