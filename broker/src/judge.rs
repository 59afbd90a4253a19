//! One judgement, many doors: every request, from the hook socket
//! (`serve.rs`) or from the seccomp listener (`notify/`), goes through
//! [`Judge`]: decide (`policy::decide`, pure) → resolve (`resolve.rs`,
//! `openat2` beneath the rule root) → audit (one record, built here) →
//! the reply. [`verdict`] is the pure part that turns a decision and a
//! resolve result into the reply and the audit fields.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use openhook_wire::Errno;
use rustix::fs::ResolveFlags;

use crate::ambient::Ambient;
use crate::audit::{escape_path, now_ts, AuditLog, AuditRecord, Decision};
use crate::policy::{Allowed, Denial, DenyReason, Policy, RuleId};
use crate::resolve::{self, ResolveError, Target};

/// One request, whichever door it came through.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The process asking (audit `pid`).
    pub pid: i32,
    /// Who `/proc/self` and `/proc/thread-self` mean for this request.
    pub target: Target,
    /// Absolute path (hook mode: as sent; transparent mode: made absolute).
    pub path: &'a [u8],
    /// Linux `O_*` flags.
    pub flags: u32,
    /// Creation mode.
    pub mode: u32,
    /// Transparent mode: the syscall's name, for the audit log.
    pub syscall: Option<&'static str>,
}

/// What a request comes to: the reply and what the audit line says.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict<T> {
    /// The fd (or other result) to hand over, or the errno.
    pub reply: Result<T, Errno>,
    pub decision: Decision,
    /// The deciding rule, when one matched.
    pub rule: Option<RuleId>,
    pub reason: String,
}

/// The pure outcome of (decision, resolve result). A type mismatch found
/// while resolving is a policy denial (the deny errno); any other resolve
/// failure inside an allowed tree is the kernel's errno.
pub fn verdict<T>(
    deny_errno: Errno,
    decided: Result<RuleId, Denial>,
    resolved: impl FnOnce() -> Result<T, ResolveError>,
) -> Verdict<T> {
    let rule = match decided {
        Err(d) => {
            return Verdict {
                reply: Err(d.errno()),
                decision: Decision::Deny,
                rule: d.rule,
                reason: d.reason.to_string(),
            }
        }
        Ok(rule) => rule,
    };
    match resolved() {
        Ok(v) => Verdict {
            reply: Ok(v),
            decision: Decision::Allow,
            rule: Some(rule),
            reason: "allowed".into(),
        },
        Err(ResolveError::TypeMismatch(_)) => Verdict {
            reply: Err(deny_errno),
            decision: Decision::Deny,
            rule: Some(rule),
            reason: DenyReason::TypeMismatch.to_string(),
        },
        Err(ResolveError::Sys(e)) => Verdict {
            reply: Err(e),
            decision: Decision::Error,
            rule: Some(rule),
            reason: format!("open failed: {e}"),
        },
    }
}

/// The policy, its opened rule roots and the audit log, together: built
/// only by [`Judge::new`], which checks the roots belong to the policy, so
/// every `RootId` the policy's decisions carry has its root here.
#[derive(Clone, Copy, Debug)]
pub struct Judge<'a> {
    policy: &'a Policy,
    ambient: &'a Ambient,
    audit: Option<&'a AuditLog>,
}

/// The ambient authority was opened for another policy.
#[derive(Debug, thiserror::Error)]
#[error("the opened rule roots ({opened}) do not match the policy's ({wanted})")]
pub struct RootsMismatch {
    opened: usize,
    wanted: usize,
}

impl<'a> Judge<'a> {
    /// Bundles a policy with the roots `Ambient::open` opened for it.
    pub fn new(
        policy: &'a Policy,
        ambient: &'a Ambient,
        audit: Option<&'a AuditLog>,
    ) -> Result<Self, RootsMismatch> {
        if ambient.root_count() != policy.roots.len() {
            return Err(RootsMismatch {
                opened: ambient.root_count(),
                wanted: policy.roots.len(),
            });
        }
        Ok(Self {
            policy,
            ambient,
            audit,
        })
    }

    /// The policy.
    pub fn policy(&self) -> &'a Policy {
        self.policy
    }

    fn decide<'p>(
        &self,
        path: &'p [u8],
        flags: u32,
        mode: u32,
    ) -> Result<crate::policy::Allowed<'p>, Denial> {
        #[cfg(feature = "test-skip-matcher")]
        return crate::skip_matcher::decide(self.policy, path, flags, mode);
        #[cfg(not(feature = "test-skip-matcher"))]
        crate::policy::decide(self.policy, path, flags, mode)
    }

    /// Decides `req`, performs `act` beneath the rule root when allowed,
    /// audits, and returns the reply. If the audit line cannot be written
    /// the request is refused (`EIO`): no decision goes unrecorded.
    fn perform<T>(
        &self,
        req: &Request<'_>,
        act: impl FnOnce(BorrowedFd<'_>, &Allowed<'_>) -> Result<T, ResolveError>,
    ) -> Result<T, Errno> {
        let v = self.evaluate(req, act);
        self.record(req, v)
    }

    /// Decides `req` and, when allowed, performs `act` beneath the rule
    /// root: the verdict, not yet audited.
    fn evaluate<T>(
        &self,
        req: &Request<'_>,
        act: impl FnOnce(BorrowedFd<'_>, &Allowed<'_>) -> Result<T, ResolveError>,
    ) -> Verdict<T> {
        match self.decide(req.path, req.flags, req.mode) {
            Err(d) => verdict(self.policy.deny_errno, Err(d), || {
                Err(ResolveError::Sys(Errno::EIO))
            }),
            Ok(allowed) => verdict(self.policy.deny_errno, Ok(allowed.rule), || {
                // `/proc/self/...` means the asking process, whichever rule
                // allowed it: resolve beneath its own `/proc/<pid>`.
                if let Some(view) = self.ambient.proc_view(req.path, req.target) {
                    let (root, rel) = view?;
                    let mut own = allowed.clone();
                    own.rel = rel;
                    return act(root.as_fd(), &own);
                }
                act(self.ambient.root_for(allowed.root)?, &allowed)
            }),
        }
    }

    /// An open: decided, performed beneath the rule root, audited.
    pub fn open(&self, req: &Request<'_>) -> Result<OwnedFd, Errno> {
        self.perform(req, resolve::open_beneath)
    }

    /// [`Judge::open`] with extra `openat2` resolve restrictions (the
    /// target's own `RESOLVE_NO_SYMLINKS` and the like).
    pub fn open_stricter(&self, req: &Request<'_>, extra: ResolveFlags) -> Result<OwnedFd, Errno> {
        self.perform(req, |root, allowed| {
            let mut a = allowed.clone();
            a.resolve |= extra;
            resolve::open_beneath(root, &a)
        })
    }

    /// A metadata request (stat, access, readlink, statfs): decided as an
    /// open with `req.flags` (read access for a plain lookup), then
    /// resolved to an `O_PATH` fd without opening the file itself;
    /// `nofollow` keeps a trailing symlink. Audited like an open.
    pub fn probe(&self, req: &Request<'_>, nofollow: bool) -> Result<OwnedFd, Errno> {
        self.perform(req, |root, allowed| {
            resolve::probe_beneath(root, allowed, nofollow)
        })
    }

    /// Binds `sock` at `req.path` (decided as creating a socket file).
    pub fn bind_socket(&self, req: &Request<'_>, sock: BorrowedFd<'_>) -> Result<(), Errno> {
        self.perform(req, |root, allowed| {
            resolve::bind_beneath(root, allowed, sock)
        })
    }

    /// The socket file at `req.path`, as an `O_PATH` fd to connect
    /// through ([`resolve::connect_through`]); the rule must allow sockets.
    pub fn socket_file(&self, req: &Request<'_>) -> Result<OwnedFd, Errno> {
        self.perform(req, resolve::socket_beneath)
    }

    /// Records a request refused before any decision (malformed, or a
    /// syscall transparent mode refuses with an audit line).
    pub fn refuse(&self, req: &Request<'_>, errno: Errno, reason: String) -> Errno {
        let v: Verdict<OwnedFd> = Verdict {
            reply: Err(errno),
            decision: Decision::Deny,
            rule: None,
            reason,
        };
        match self.record(req, v) {
            Ok(_) => errno,
            Err(e) => e,
        }
    }

    /// The audit record for `req` decided as `v` (the one place records
    /// are built).
    fn audit_record<T>(&self, req: &Request<'_>, v: &Verdict<T>) -> AuditRecord {
        AuditRecord {
            ts: now_ts(),
            pid: req.pid,
            path: escape_path(req.path),
            flags: req.flags,
            mode: req.mode,
            decision: v.decision,
            errno: v.reply.as_ref().err().map_or(0, |e| e.get()),
            rule: v.rule.map(|r| self.policy.rule(r).label()),
            reason: v.reason.clone(),
            syscall: req.syscall.map(str::to_string),
        }
    }

    /// Writes the audit line for `v` (when there is a log) and returns the
    /// reply; `EIO` when the line cannot be written.
    fn record<T>(&self, req: &Request<'_>, v: Verdict<T>) -> Result<T, Errno> {
        let Some(log) = self.audit else {
            return v.reply;
        };
        if let Err(e) = log.write(&self.audit_record(req, &v)) {
            tracing::error!("audit log write failed: {e}; refusing the request");
            return Err(Errno::EIO);
        }
        v.reply
    }

    /// [`Judge::open`] without a log: the reply and the record the log
    /// would get (for `check --explain` comparisons and tests).
    pub fn open_unlogged(&self, req: &Request<'_>) -> (Result<OwnedFd, Errno>, AuditRecord) {
        let v = self.evaluate(req, resolve::open_beneath);
        let record = self.audit_record(req, &v);
        (v.reply, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(reason: DenyReason, rule: Option<RuleId>) -> Denial {
        Denial {
            errno: Errno::EPERM,
            reason,
            rule,
        }
    }

    #[test]
    fn a_denial_never_resolves() {
        let v = verdict::<()>(Errno::EPERM, Err(denial(DenyReason::NoMatch, None)), || {
            panic!("resolved a denied request")
        });
        assert_eq!(v.reply, Err(Errno::EPERM));
        assert_eq!(v.decision, Decision::Deny);
        assert_eq!(v.rule, None);
        assert_eq!(v.reason, "no rule matches");
    }

    #[test]
    fn resolve_results_map_to_allow_deny_or_error() {
        let r = RuleId(3);
        let ok = verdict(Errno::EPERM, Ok(r), || Ok(7));
        assert_eq!(
            (ok.reply, ok.decision, ok.rule),
            (Ok(7), Decision::Allow, Some(r))
        );
        let mismatch = verdict::<()>(Errno::EPERM, Ok(r), || {
            Err(ResolveError::TypeMismatch(None))
        });
        assert_eq!(mismatch.reply, Err(Errno::EPERM));
        assert_eq!(mismatch.decision, Decision::Deny);
        assert_eq!(mismatch.reason, "file type not allowed by the rule");
        let sys = verdict::<()>(Errno::EPERM, Ok(r), || {
            Err(ResolveError::Sys(Errno::ENOENT))
        });
        assert_eq!(sys.reply, Err(Errno::ENOENT));
        assert_eq!(sys.decision, Decision::Error);
        assert_eq!(sys.rule, Some(r));
    }
}
