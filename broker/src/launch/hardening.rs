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
}
