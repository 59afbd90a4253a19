//! The hook door: a `-open-hook-fd` connection's requests go to the
//! [`Judge`] (decide → resolve → audit) and come back as replies. The
//! connection reader, protocol-level checks (`EINVAL`, `ENAMETOOLONG`,
//! `-ENOSYS`) and replies come from `openhook_wire::hook::Connection`.

use std::os::fd::OwnedFd;

use openhook_wire::hook::{Connection, Handler, OpenRequest, PathError, ServerError};
use openhook_wire::Errno;

use crate::ambient::Ambient;
use crate::audit::AuditLog;
use crate::judge::{Judge, Request};
use crate::policy::Policy;
use crate::resolve::Target;

/// One hook request's outcome without a log: the reply and the audit
/// record the log would get (what `check --explain` is compared against).
#[derive(Debug)]
pub struct Handled {
    pub reply: Result<OwnedFd, Errno>,
    pub record: crate::audit::AuditRecord,
}

/// Judges one QEMU_OPEN request from `pid` as the hook door does, through
/// the same [`Judge`], without writing a log line.
pub fn handle_open(
    policy: &Policy,
    ambient: &Ambient,
    pid: i32,
    path: &[u8],
    flags: u32,
    mode: u32,
) -> Result<Handled, crate::judge::RootsMismatch> {
    let judge = Judge::new(policy, ambient, None)?;
    let (reply, record) = judge.open_unlogged(&Request {
        pid,
        target: Target {
            tgid: pid,
            tid: pid,
        },
        path,
        flags,
        mode,
        syscall: None,
    });
    Ok(Handled { reply, record })
}

/// Serving one hook connection ended abnormally. The connection is closed;
/// nothing else is affected.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The peer broke the protocol (bad framing, EOF mid-frame, fds sent
    /// with a request) or the socket failed.
    #[error("hook connection: {0}")]
    Connection(#[from] ServerError),
    /// The rule roots were opened for another policy.
    #[error(transparent)]
    Roots(#[from] crate::judge::RootsMismatch),
}

/// The policy side of a hook connection.
struct PolicyHandler<'a> {
    judge: Judge<'a>,
    pid: i32,
}

impl PolicyHandler<'_> {
    fn request<'r>(&self, req: &OpenRequest<'r>) -> Request<'r> {
        Request {
            pid: self.pid,
            target: Target {
                tgid: self.pid,
                tid: self.pid,
            },
            path: req.path,
            flags: req.flags,
            mode: req.mode,
            syscall: None,
        }
    }
}

impl Handler for PolicyHandler<'_> {
    fn open(&mut self, req: &OpenRequest<'_>) -> Result<OwnedFd, Errno> {
        self.judge.open(&self.request(req))
    }

    fn rejected(&mut self, req: &OpenRequest<'_>, error: PathError) {
        self.judge
            .refuse(&self.request(req), error.errno(), error.to_string());
    }

    fn unknown(&mut self, command: u32) {
        tracing::warn!("hook: unknown command {command}, replied -ENOSYS");
    }
}

/// Serves one hook connection until the peer hangs up (`Ok`) or breaks the
/// protocol (`Err`; the connection is then closed). Each request is decided,
/// opened, audited (before the reply) and answered; every fd is closed once
/// sent.
pub fn serve(
    conn: OwnedFd,
    policy: &Policy,
    ambient: &Ambient,
    audit: Option<&AuditLog>,
    child_pid: i32,
) -> Result<(), ServeError> {
    let mut handler = PolicyHandler {
        judge: Judge::new(policy, ambient, audit)?,
        pid: child_pid,
    };
    Connection::new(conn).serve(&mut handler)?;
    Ok(())
}
