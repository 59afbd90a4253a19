//! The broker's own confinement, entered once its child runs: a Landlock
//! domain whose rules are derived from the policy (each rule root gets
//! exactly the rights its rule allows) and the `Broker` seccomp allow list.
//!
//! Both are applied to the calling thread, which must be the only thread
//! (the serve thread starts afterwards and inherits them). Unlike the
//! emulator's domain, signals are not scoped: the broker must still forward
//! SIGTERM/SIGINT to its child, which lives outside the domain.

use std::path::PathBuf;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::error::SandboxError;
use crate::landlock::Support;
use crate::mode::{LayerState, Mode};
use crate::seccomp::{install, DefaultAction, Needs, ThreadFilter, ThreadKind};
use crate::sys;

/// What one policy rule lets the broker do beneath `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathGrant {
    /// A directory (rights apply beneath it) or a file (file rights only).
    pub path: PathBuf,
    /// Open for reading (files) and list (directories).
    pub read: bool,
    /// Open for writing, truncate.
    pub write: bool,
    /// Create regular files (directories only).
    pub create: bool,
}

/// The broker's confinement.
#[derive(Clone, Debug)]
pub struct BrokerProfile {
    /// Strictness (`Off`: nothing is applied).
    pub mode: Mode,
    /// One grant per policy allow rule.
    pub grants: Vec<PathGrant>,
    /// The child the broker may still signal.
    pub child: u32,
    /// Default seccomp action (`KillProcess` unless debugging).
    pub seccomp_default: DefaultAction,
    /// Transparent mode: the broker serves the child's seccomp listener
    /// (seccomp kind [`ThreadKind::TransparentBroker`] with the listener
    /// ioctls). Its Landlock layer is skipped: Landlock lets a process read
    /// another's memory only inside its own domain, and the child's domain
    /// is not nested in the broker's.
    pub transparent: bool,
}

/// The seccomp user-notification ioctls the transparent broker issues.
pub const LISTENER_IOCTLS: &[u64] = &[
    libc::SECCOMP_IOCTL_NOTIF_RECV,
    libc::SECCOMP_IOCTL_NOTIF_SEND,
    libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
    libc::SECCOMP_IOCTL_NOTIF_ADDFD,
    libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
];

/// The Landlock rights for a grant (pure). Device ioctls are granted with
/// any access: the right is recorded in the fd at open time and the
/// emulator needs it on the devices the policy hands it (`/dev/kvm`).
pub fn grant_rights(
    g: &PathGrant,
    is_dir: bool,
    handled: BitFlags<AccessFs>,
) -> BitFlags<AccessFs> {
    let mut r: BitFlags<AccessFs> = AccessFs::IoctlDev.into();
    if g.read {
        r |= AccessFs::ReadFile;
        if is_dir {
            r |= AccessFs::ReadDir;
        }
    }
    if g.write {
        r |= AccessFs::WriteFile | AccessFs::Truncate;
    }
    if g.create && is_dir {
        r |= AccessFs::MakeReg;
    }
    if !is_dir {
        r &= AccessFs::from_file(landlock::ABI::V5);
    }
    r & handled
}

fn landlock_layer(p: &BrokerProfile) -> Result<LayerState, SandboxError> {
    let support = Support::probe();
    let missing = support.missing();
    if p.mode == Mode::Require && !missing.is_empty() {
        return Err(SandboxError::LayerUnavailable {
            layer: "landlock",
            why: missing.join("; "),
        });
    }
    if support.kernel_abi.is_none() {
        return Ok(LayerState::Missing(missing.join("; ")));
    }
    let abi = support.abi();
    let level = match p.mode {
        Mode::Require => CompatLevel::HardRequirement,
        Mode::BestEffort | Mode::Off => CompatLevel::BestEffort,
    };
    let handled = AccessFs::from_all(abi);
    let mut rs = Ruleset::default()
        .set_compatibility(level)
        .handle_access(handled)?;
    if !AccessNet::from_all(abi).is_empty() {
        rs = rs.handle_access(AccessNet::from_all(abi))?;
    }
    let scopes = Scope::from_all(abi) & Scope::AbstractUnixSocket;
    if !scopes.is_empty() {
        rs = rs.scope(scopes)?;
    }
    let mut created = rs.create()?;
    let mut n = 0usize;
    for g in &p.grants {
        let is_dir = g.path.is_dir();
        let fd = PathFd::new(&g.path).map_err(|source| SandboxError::LandlockPath {
            path: g.path.display().to_string(),
            source,
        })?;
        let rights = grant_rights(g, is_dir, handled);
        created = created.add_rule(PathBeneath::new(fd, rights))?;
        n += 1;
    }
    let status = created.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced if missing.is_empty() => {
            LayerState::Enforced(format!("ABI {abi}, {n} rules from the policy"))
        }
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => LayerState::Partial(
            format!("ABI {abi}, {n} rules; missing: {}", missing.join("; ")),
        ),
        RulesetStatus::NotEnforced => LayerState::Missing("ruleset not enforced".into()),
    })
}

/// Confines the calling (only) thread of the broker. Returns each layer's
/// outcome; in `require` mode an error names a layer that could not be
/// enforced, in `best-effort` mode gaps are returned as `Partial`/`Missing`.
pub fn confine_broker(p: &BrokerProfile) -> Result<Vec<(&'static str, LayerState)>, SandboxError> {
    if p.mode == Mode::Off {
        return Ok(vec![
            ("landlock", LayerState::Skipped),
            ("seccomp", LayerState::Skipped),
        ]);
    }
    sys::probe::single_threaded().map_err(|e| {
        SandboxError::ThreadsExist(format!("unshare(CLONE_THREAD|CLONE_VM) says {e}"))
    })?;
    if p.mode == Mode::Require {
        install::support().map_err(|why| SandboxError::LayerUnavailable {
            layer: "seccomp",
            why,
        })?;
    }
    let (kind, needs) = if p.transparent {
        (
            ThreadKind::TransparentBroker,
            Needs::default().with(&[], LISTENER_IOCTLS),
        )
    } else {
        (ThreadKind::Broker, Needs::default())
    };
    let filter = ThreadFilter::compile_with_peer(
        kind,
        &needs,
        &Needs::default(),
        p.seccomp_default,
        Some(p.child),
    )?;
    // Seccomp without CAP_SYS_ADMIN needs it; Landlock sets it too.
    rustix::thread::set_no_new_privs(true).map_err(|errno| SandboxError::Apply {
        layer: "no_new_privs",
        errno,
    })?;
    let landlock = if p.transparent {
        LayerState::Skipped
    } else {
        landlock_layer(p)?
    };
    let seccomp = match filter.load() {
        Ok(()) => LayerState::Enforced("broker allow list".into()),
        Err(e) if p.mode == Mode::Require => return Err(e),
        Err(e) => LayerState::Missing(e.to_string()),
    };
    Ok(vec![("landlock", landlock), ("seccomp", seccomp)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(read: bool, write: bool, create: bool) -> PathGrant {
        PathGrant {
            path: PathBuf::from("/x"),
            read,
            write,
            create,
        }
    }

    #[test]
    fn rights_follow_the_rule() {
        let all = AccessFs::from_all(landlock::ABI::V5);
        let ro = grant_rights(&g(true, false, false), true, all);
        assert!(ro.contains(AccessFs::ReadFile | AccessFs::ReadDir));
        assert!(!ro.intersects(AccessFs::WriteFile | AccessFs::MakeReg | AccessFs::Truncate));
        let wo = grant_rights(&g(false, true, false), true, all);
        assert!(wo.contains(AccessFs::WriteFile | AccessFs::Truncate));
        assert!(!wo.intersects(AccessFs::ReadFile | AccessFs::MakeReg));
        let rwc = grant_rights(&g(true, true, true), true, all);
        assert!(rwc.contains(AccessFs::MakeReg));
        // Never: removing, renaming, other node types, executing.
        for r in [&ro, &wo, &rwc] {
            assert!(!r.intersects(
                AccessFs::RemoveFile
                    | AccessFs::RemoveDir
                    | AccessFs::MakeDir
                    | AccessFs::MakeSym
                    | AccessFs::MakeChar
                    | AccessFs::MakeBlock
                    | AccessFs::Refer
                    | AccessFs::Execute
            ));
        }
        // A file gets file rights only, even with create.
        let f = grant_rights(&g(true, true, true), false, all);
        assert!(!f.intersects(AccessFs::MakeReg | AccessFs::ReadDir));
        assert!(f.contains(AccessFs::ReadFile | AccessFs::WriteFile));
    }
}
