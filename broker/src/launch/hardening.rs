//! The policy's `[sandbox]` table → the sandbox crate's pre-exec hardening
//! ([`openhook_sandbox::SandboxPolicy`]). Pure mapping; the launcher
//! prepares it before fork (`PreExec::prepare`) and applies it in the child.
#![forbid(unsafe_code)]

use openhook_sandbox::{Mode, Namespace as SbNamespace, SandboxPolicy as SbPolicy};

use crate::policy::{Namespace, SandboxMode, SandboxPolicy};

/// The sandbox mode for a policy mode.
pub fn mode(m: SandboxMode) -> Mode {
    match m {
        SandboxMode::Require => Mode::Require,
        SandboxMode::BestEffort => Mode::BestEffort,
        SandboxMode::Off => Mode::Off,
    }
}

fn namespace(n: Namespace) -> SbNamespace {
    match n {
        Namespace::User => SbNamespace::User,
        Namespace::Pid => SbNamespace::Pid,
        Namespace::Net => SbNamespace::Net,
        Namespace::Ipc => SbNamespace::Ipc,
        Namespace::Uts => SbNamespace::Uts,
        Namespace::Mount => SbNamespace::Mount,
    }
}

/// The hardening for the child of a broker running `policy`: its mode, user
/// and namespaces; the environment keep list and rlimits are the sandbox
/// crate's defaults (`DEFAULT_ENV_KEEP`, NOFILE 1024, NPROC 4096).
pub fn sandbox_policy(policy: &SandboxPolicy) -> SbPolicy {
    SbPolicy {
        mode: mode(policy.mode),
        user: policy.user.clone(),
        namespaces: policy
            .namespaces
            .iter()
            .flatten()
            .copied()
            .map(namespace)
            .collect(),
        ..SbPolicy::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_maps_to_the_same_spelling() {
        for m in [
            SandboxMode::Require,
            SandboxMode::BestEffort,
            SandboxMode::Off,
        ] {
            assert_eq!(mode(m).to_string(), m.as_str());
        }
    }

    #[test]
    fn every_namespace_maps_to_the_same_spelling() {
        for n in [
            Namespace::User,
            Namespace::Pid,
            Namespace::Net,
            Namespace::Ipc,
            Namespace::Uts,
            Namespace::Mount,
        ] {
            assert_eq!(n.as_str().parse::<SbNamespace>().ok(), Some(namespace(n)));
        }
    }

    #[test]
    fn default_table_is_require_without_namespaces() {
        let sb = sandbox_policy(&SandboxPolicy::default());
        assert_eq!(sb, SbPolicy::default());
        assert_eq!(sb.mode, Mode::Require);
        assert!(sb.namespaces.is_empty());
    }

    #[test]
    fn table_fields_are_carried() {
        let sb = sandbox_policy(&SandboxPolicy {
            mode: SandboxMode::BestEffort,
            user: Some("nobody".into()),
            namespaces: Some(vec![Namespace::User, Namespace::Net]),
        });
        assert_eq!(sb.mode, Mode::BestEffort);
        assert_eq!(sb.user.as_deref(), Some("nobody"));
        assert_eq!(sb.namespaces, [SbNamespace::User, SbNamespace::Net]);
    }
}
