//! The policy's `[sandbox]` table → the sandbox crate's pre-exec hardening
//! ([`openhook_sandbox::SandboxPolicy`]). Pure mapping; the launcher
//! prepares it before fork (`PreExec::prepare`) and applies it in the child.
#![forbid(unsafe_code)]

use openhook_sandbox::{Mode, Namespace as SbNamespace, SandboxPolicy as SbPolicy};

use std::path::{Path, PathBuf};

use openhook_sandbox::broker::{BrokerProfile, PathGrant};

use crate::policy::{Namespace, Policy, RuleKind, SandboxMode, SandboxPolicy};

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

/// `openhook-broker check --sandbox [--policy F]`: the sandbox report for
/// this kernel ([`openhook_sandbox::report`]) and, given the policy's
/// table, whether a launch under it would start here. Returns the text and
/// whether the check passed (false: the policy's mode is `require` and a
/// layer cannot be enforced).
pub fn check(policy: Option<&SandboxPolicy>) -> (String, bool) {
    let mut out = openhook_sandbox::report();
    let Some(policy) = policy else {
        return (out, true);
    };
    let gaps = openhook_sandbox::require_gaps();
    let m = mode(policy.mode);
    let ok = m != Mode::Require || gaps.is_empty();
    out.push_str(&check_verdict(m, &gaps));
    (out, ok)
}

/// The policy line of [`check`] (pure).
fn check_verdict(m: Mode, gaps: &[String]) -> String {
    match (m, gaps.is_empty()) {
        (Mode::Off, _) => "policy [sandbox] mode = \"off\": the emulator would run UNCONFINED \
             (only undeclared fds closed and the environment scrubbed)\n"
            .to_string(),
        (_, true) => format!("policy [sandbox] mode = \"{m}\": every layer will be enforced\n"),
        (Mode::Require, false) => format!(
            "policy [sandbox] mode = \"require\": launch REFUSED on this kernel: {}\n",
            gaps.join("; ")
        ),
        (Mode::BestEffort, false) => format!(
            "policy [sandbox] mode = \"best-effort\": launch proceeds without: {}\n",
            gaps.join("; ")
        ),
    }
}

/// The broker's own Landlock grants, one per allow rule: a subtree rule's
/// directory gets the rule's access (and file creation when the rule has
/// `create`); an exact rule's file gets its access; an exact rule with
/// `create` whose file does not exist yet grants creation (and the access)
/// in its parent directory, the narrowest place Landlock can express it.
/// Deny rules cannot be expressed (Landlock only adds rights); they stay
/// the matcher's. Reads only file metadata (`exists`).
pub fn broker_grants(policy: &Policy) -> Vec<PathGrant> {
    let mut out = Vec::new();
    for rule in policy.rules.iter().filter(|r| r.kind == RuleKind::Allow) {
        let read = matches!(
            rule.access,
            crate::policy::Access::Read | crate::policy::Access::ReadWrite
        );
        let write = rule.access.can_write();
        let path = PathBuf::from(&rule.path);
        if rule.subtree || path.exists() {
            out.push(PathGrant {
                path,
                read,
                write,
                create: rule.create,
            });
        } else if rule.create {
            let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            out.push(PathGrant {
                path: parent,
                read,
                write,
                create: true,
            });
        }
    }
    out
}

/// The broker's confinement for `policy` once `child` runs: the policy's
/// sandbox mode, its grants, the seccomp debug switch from
/// `OPENHOOK_SECCOMP`.
pub fn broker_profile(policy: &Policy, child: i32, transparent: bool) -> BrokerProfile {
    BrokerProfile {
        mode: mode(policy.sandbox.mode),
        grants: broker_grants(policy),
        child: u32::try_from(child).unwrap_or(0),
        seccomp_default: openhook_sandbox::seccomp::install::default_action_from_env(),
        transparent,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests read and write their temp trees
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
    fn check_verdicts_name_the_mode_and_the_gaps() {
        let gaps = vec!["landlock: missing".to_string()];
        assert!(check_verdict(Mode::Require, &[]).contains("every layer will be enforced"));
        assert!(check_verdict(Mode::Require, &gaps).contains("REFUSED on this kernel: landlock"));
        assert!(check_verdict(Mode::BestEffort, &gaps).contains("proceeds without: landlock"));
        assert!(check_verdict(Mode::Off, &[]).contains("UNCONFINED"));
    }

    #[test]
    fn check_without_policy_is_the_report() {
        let (text, ok) = check(None);
        assert!(ok);
        for layer in ["no_new_privs", "capabilities", "landlock", "seccomp"] {
            assert!(text.contains(layer), "{layer} missing in:\n{text}");
        }
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

    #[test]
    fn broker_grants_follow_the_allow_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        std::fs::write(dir.path().join("exists"), b"x").expect("write");
        let text = format!(
            "version = 1\n\
             [[allow]]\npath = \"{d}/tree/\"\naccess = \"r\"\n\
             [[allow]]\npath = \"{d}/exists\"\naccess = \"w\"\n\
             [[allow]]\npath = \"{d}/new.img\"\naccess = \"rw\"\ncreate = true\n\
             [[allow]]\npath = \"{d}/absent\"\naccess = \"r\"\n\
             [[deny]]\npath = \"{d}/tree/secret/\"\n"
        );
        let policy = crate::policy::parse(&text, "t.toml").expect("parses");
        let g = broker_grants(&policy);
        let grant = |path: String, read, write, create| PathGrant {
            path: PathBuf::from(path),
            read,
            write,
            create,
        };
        assert_eq!(
            g,
            vec![
                grant(format!("{d}/tree"), true, false, false),
                grant(format!("{d}/exists"), false, true, false),
                grant(format!("{d}"), true, true, true),
            ]
        );
    }
}
