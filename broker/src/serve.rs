//! Serving: decode → decide → resolve → audit → reply. All judgement lives
//! in `policy::decide`; this is the thin shell around it. The connection
//! reader, protocol-level checks (`EINVAL`, `ENAMETOOLONG`, `-ENOSYS`) and
//! replies come from `openhook_wire::hook::Connection`.

use std::os::fd::OwnedFd;

use openhook_wire::hook::{Connection, Handler, OpenRequest, PathError, ServerError};
use openhook_wire::Errno;

use crate::ambient::Ambient;
use crate::audit::{escape_path, now_ts, AuditLog, AuditRecord, Decision};
use crate::policy::{decide, DenyReason, Policy};
use crate::resolve::{open_beneath, ResolveError};

/// The outcome of one request: the fd to send or the errno to reply, and
/// the audit record describing it.
#[derive(Debug)]
pub struct Handled {
    pub reply: Result<OwnedFd, Errno>,
    pub record: AuditRecord,
}

/// Decides and performs one QEMU_OPEN request. Never fails as a whole:
/// every problem becomes an errno reply.
pub fn handle_open(
    policy: &Policy,
    ambient: &Ambient,
    pid: i32,
    path: &[u8],
    flags: u32,
    mode: u32,
) -> Handled {
    let label = |rule: Option<crate::policy::RuleId>| rule.map(|r| policy.rule(r).label());
    let (reply, decision, rule, reason) = match decide(policy, path, flags, mode) {
        Err(d) => (
            Err(d.errno()),
            Decision::Deny,
            label(d.rule),
            d.reason.to_string(),
        ),
        Ok(allowed) => {
            let rule = label(Some(allowed.rule));
            match ambient.root(allowed.root) {
                // Ambient::open opens every root of the policy it is given.
                None => (
                    Err(policy.deny_errno),
                    Decision::Deny,
                    rule,
                    "rule root not open".to_string(),
                ),
                Some(root) => match open_beneath(root, &allowed) {
                    Ok(fd) => (Ok(fd), Decision::Allow, rule, "allowed".to_string()),
                    Err(ResolveError::TypeMismatch(_)) => (
                        Err(policy.deny_errno),
                        Decision::Deny,
                        rule,
                        DenyReason::TypeMismatch.to_string(),
                    ),
                    Err(ResolveError::Sys(e)) => {
                        (Err(e), Decision::Error, rule, format!("open failed: {e}"))
                    }
                },
            }
        }
    };
    let errno = match &reply {
        Ok(_) => 0,
        Err(e) => e.get(),
    };
    Handled {
        reply,
        record: AuditRecord {
            ts: now_ts(),
            pid,
            path: escape_path(path),
            flags,
            mode,
            decision,
            errno,
            rule,
            reason,
        },
    }
}

/// Handles one request and writes its audit line. If the audit line cannot
/// be written the request is refused (`EIO`): no decision goes unrecorded.
pub fn handle_and_audit(
    policy: &Policy,
    ambient: &Ambient,
    audit: Option<&AuditLog>,
    pid: i32,
    path: &[u8],
    flags: u32,
    mode: u32,
) -> Result<OwnedFd, Errno> {
    let handled = handle_open(policy, ambient, pid, path, flags, mode);
    if let Some(log) = audit {
        if let Err(e) = log.write(&handled.record) {
            tracing::error!("audit log write failed: {e}; refusing the request");
            return Err(Errno::EIO);
        }
    }
    handled.reply
}

/// Serving one hook connection ended abnormally. The connection is closed;
/// nothing else is affected.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The peer broke the protocol (bad framing, EOF mid-frame, fds sent
    /// with a request) or the socket failed.
    #[error("hook connection: {0}")]
    Connection(#[from] ServerError),
}

/// The policy side of a hook connection.
struct PolicyHandler<'a> {
    policy: &'a Policy,
    ambient: &'a Ambient,
    audit: Option<&'a AuditLog>,
    pid: i32,
}

impl Handler for PolicyHandler<'_> {
    fn open(&mut self, req: &OpenRequest<'_>) -> Result<OwnedFd, Errno> {
        handle_and_audit(
            self.policy,
            self.ambient,
            self.audit,
            self.pid,
            req.path,
            req.flags,
            req.mode,
        )
    }

    fn rejected(&mut self, req: &OpenRequest<'_>, error: PathError) {
        let Some(log) = self.audit else { return };
        let record = AuditRecord {
            ts: now_ts(),
            pid: self.pid,
            path: escape_path(req.path),
            flags: req.flags,
            mode: req.mode,
            decision: Decision::Deny,
            errno: error.errno().get(),
            rule: None,
            reason: error.to_string(),
        };
        if let Err(e) = log.write(&record) {
            tracing::error!("audit log write failed: {e}");
        }
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
        policy,
        ambient,
        audit,
        pid: child_pid,
    };
    Connection::new(conn).serve(&mut handler)?;
    Ok(())
}
