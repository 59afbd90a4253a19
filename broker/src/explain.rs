//! `openhook-broker check --explain`: the decision the broker would take
//! for one request, told rule by rule. The judgement is
//! `policy::decide_traced`'s — the function serving runs, with a recorder
//! for the rules that lost — and the file-type check is
//! `Allowed::permits_type`, the one `resolve.rs` applies; this module only
//! words what they report.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use crate::policy::flags::{O_CREAT, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};
use crate::policy::{
    decide_traced, errno_name, Access, Allowed, Denial, DenyReason, FileType, Lost, Policy, RuleId,
    RuleKind, Trace,
};

/// The request to explain, as the emulator would send it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: Vec<u8>,
    pub access: Access,
    /// `O_CREAT`.
    pub create: bool,
    /// `O_TRUNC`.
    pub truncate: bool,
    /// The type of the file the open would find; `None`: not checked.
    pub file_type: Option<FileType>,
}

impl Request {
    /// The open-flag word the request carries on the wire.
    pub fn flags(&self) -> u32 {
        let acc = match self.access {
            Access::Read => O_RDONLY,
            Access::Write => O_WRONLY,
            Access::ReadWrite => O_RDWR,
        };
        acc | if self.create { O_CREAT } else { 0 } | if self.truncate { O_TRUNC } else { 0 }
    }
}

/// What resolving an allowed request on this host found: the serving
/// broker's resolution (`resolve::probe_beneath`: `openat2` beneath the
/// rule root with the rule's resolve flags, `O_PATH`, then the type check),
/// made by the caller so this module stays free of syscalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFinding {
    /// Resolved to a file of this type, which the rule allows.
    Found(FileType),
    /// Resolved to a file whose type the rule does not allow (`None`: a
    /// type the policy cannot name).
    WrongType(Option<FileType>),
    /// Resolution failed with this errno (`ELOOP`: a symlink on the way
    /// under a rule that refuses them; `EXDEV`: out of the root; `ENOENT`).
    Failed(openhook_wire::Errno),
    /// Not looked at (a root below `/proc/self`, or it could not be opened).
    Skipped(&'static str),
}

/// The outcome and its wording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The broker would hand out an fd (subject to the open itself
    /// succeeding on the host: ENOENT and the like are the file's errno).
    pub allowed: bool,
    pub text: String,
}

#[derive(Default)]
struct Losers(Vec<(RuleId, RuleId, Lost)>);

impl Trace for Losers {
    fn lost(&mut self, rule: RuleId, winner: RuleId, why: Lost) {
        self.0.push((rule, winner, why));
    }
}

/// `allow[2] /srv/vm1/ro/ (vm.toml:20)`.
fn cite(policy: &Policy, id: RuleId) -> String {
    let r = policy.rule(id);
    format!("{} ({}:{})", r.label(), policy.source, r.line)
}

/// What the deciding allow rule grants, in policy-file words.
fn grants(policy: &Policy, id: RuleId) -> String {
    let r = policy.rule(id);
    let mut s = format!("access={} types={}", r.access.as_str(), r.types);
    if r.create {
        let _ = write!(s, " create mode<={:#o}", r.mode);
    }
    s
}

fn symlink_note(policy: &Policy, id: RuleId) -> &'static str {
    if policy.rule(id).follow_symlinks {
        "symlinks: followed, but never out of the rule root (RESOLVE_BENEATH)"
    } else {
        "symlinks: refused (follow_symlinks = false): a symlink on the way fails the open with ELOOP"
    }
}

/// The "on this host" line of an allowed request; false when what the host
/// holds makes the broker refuse (a symlink the rule refuses, an escape
/// from the root).
fn host_line(
    out: &mut String,
    policy: &Policy,
    rule: RuleId,
    host: Option<HostFinding>,
    create: bool,
) -> bool {
    use openhook_wire::Errno;
    match host {
        None => true,
        Some(HostFinding::Found(t)) => {
            let what = match t {
                FileType::File => "regular file",
                FileType::Dir => "directory",
                FileType::Char => "character device",
                FileType::Block => "block device",
                FileType::Fifo => "FIFO",
                FileType::Socket => "socket",
            };
            let _ = writeln!(out, "on this host: resolves to a {what} beneath the root");
            true
        }
        // Handled as a type denial by the caller.
        Some(HostFinding::WrongType(_)) => false,
        Some(HostFinding::Skipped(why)) => {
            let _ = writeln!(out, "on this host: not looked at ({why})");
            true
        }
        Some(HostFinding::Failed(e)) if e == Errno::ELOOP && !policy.rule(rule).follow_symlinks => {
            let _ = writeln!(
                out,
                "on this host: deny ELOOP (40): a symlink on the way, and {} refuses symlinks (follow_symlinks = false)",
                policy.rule(rule).label()
            );
            false
        }
        Some(HostFinding::Failed(e)) if e == Errno::EXDEV => {
            let _ = writeln!(
                out,
                "on this host: deny EXDEV (18): a symlink or `..` on the way leads out of the rule root"
            );
            false
        }
        Some(HostFinding::Failed(e)) if e == Errno::ENOENT && create => {
            let _ = writeln!(out, "on this host: does not exist yet; the open creates it");
            true
        }
        Some(HostFinding::Failed(e)) => {
            let _ = writeln!(
                out,
                "on this host: the open would fail with {} ({}): the file's own errno, inside the allowed tree",
                errno_name(e).unwrap_or("errno"),
                e.get()
            );
            true
        }
    }
}

/// Explains `req` under `policy` as a hypothesis: no look at the host
/// (`req.file_type`, when given, is the type the open would find).
pub fn explain(policy: &Policy, req: &Request) -> Explanation {
    explain_on_host(policy, req, |_| None)
}

/// [`explain`], and for an allowed request without `req.file_type`,
/// `look` resolves it on this host as the broker would: its finding decides
/// the type check and tells whether a symlink or an escape from the root
/// stops the open.
pub fn explain_on_host<L>(policy: &Policy, req: &Request, look: L) -> Explanation
where
    L: FnOnce(&Allowed<'_>) -> Option<HostFinding>,
{
    let mut losers = Losers::default();
    let decided = decide_traced(policy, &req.path, req.flags(), 0o666, &mut losers);
    let mut out = request_line(req);
    let host = match (&decided, req.file_type) {
        (Ok(a), None) => look(a),
        _ => None,
    };
    // The type the open would find: the host's, else --type's.
    let file_type = match host {
        Some(HostFinding::Found(t)) => Some(Some(t)),
        Some(HostFinding::WrongType(t)) => Some(t),
        _ => req.file_type.map(Some),
    };
    let allowed = match &decided {
        Ok(a) if file_type.is_none_or(|t| a.permits_type(t)) => {
            allowed_lines(&mut out, policy, a, file_type.is_none());
            host_line(&mut out, policy, a.rule, host, req.create)
        }
        Ok(a) => {
            type_denied_lines(&mut out, policy, a, file_type.flatten(), host.is_some());
            false
        }
        Err(d) => {
            denied_lines(&mut out, policy, d);
            false
        }
    };
    let decided_by_rule = match &decided {
        Ok(_) => true,
        Err(d) => d.rule.is_some(),
    };
    loser_lines(&mut out, policy, &losers, decided_by_rule);
    Explanation { allowed, text: out }
}

fn errno_text(e: openhook_wire::Errno) -> String {
    format!("{} ({})", errno_name(e).unwrap_or("errno"), e.get())
}

/// `request: PATH access=rw create (flags 0o102)`.
fn request_line(req: &Request) -> String {
    let mut out = format!(
        "request: {} access={}",
        String::from_utf8_lossy(&req.path),
        req.access.as_str()
    );
    if req.create {
        out.push_str(" create");
    }
    if req.truncate {
        out.push_str(" truncate");
    }
    if let Some(t) = req.file_type {
        let _ = write!(out, " type={}", t.as_str());
    }
    let _ = writeln!(out, " (flags {:#o})", req.flags());
    out
}

fn allowed_lines(out: &mut String, policy: &Policy, a: &Allowed<'_>, type_unknown: bool) {
    let _ = writeln!(out, "decision: allow by {}", cite(policy, a.rule));
    let _ = writeln!(out, "  grants {}", grants(policy, a.rule));
    let created = if a.mode != 0 {
        format!(
            ", created with mode at most {:#o}",
            policy.rule(a.rule).mode
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  opens {:?} beneath {}{created}",
        String::from_utf8_lossy(a.rel),
        policy.roots[a.root.0]
    );
    if type_unknown {
        let _ = writeln!(
            out,
            "  the file found must be of type {} (give --type to check one)",
            a.types
        );
    }
    let _ = writeln!(out, "  {}", symlink_note(policy, a.rule));
}

fn type_denied_lines(
    out: &mut String,
    policy: &Policy,
    a: &Allowed<'_>,
    found: Option<FileType>,
    on_host: bool,
) {
    let _ = writeln!(
        out,
        "decision: deny {}: {} by {}",
        errno_text(policy.deny_errno),
        DenyReason::TypeMismatch,
        cite(policy, a.rule)
    );
    let _ = writeln!(
        out,
        "  type {} is not in types={}{}",
        found.map_or(
            "(not file, dir, char, block, fifo or socket)",
            FileType::as_str
        ),
        a.types,
        if on_host { " (found on this host)" } else { "" }
    );
}

fn denied_lines(out: &mut String, policy: &Policy, d: &Denial) {
    let _ = write!(out, "decision: deny {}: {}", errno_text(d.errno), d.reason);
    match d.rule {
        Some(id) => {
            let _ = writeln!(out, " by {}", cite(policy, id));
            if policy.rule(id).kind == RuleKind::Allow {
                let _ = writeln!(out, "  grants {}", grants(policy, id));
            }
        }
        None => out.push('\n'),
    }
}

/// The matching rules that did not decide, each with the rule that beat
/// it and why.
fn loser_lines(out: &mut String, policy: &Policy, losers: &Losers, decided_by_rule: bool) {
    if losers.0.is_empty() {
        if decided_by_rule {
            let _ = writeln!(out, "no other rule matches");
        }
        return;
    }
    let _ = writeln!(out, "matched and lost:");
    for (rule, winner, why) in &losers.0 {
        let _ = writeln!(
            out,
            "  {}: {why} ({})",
            cite(policy, *rule),
            policy.rule(*winner).label()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse;

    const POLICY: &str = r#"version = 1
deny_errno = "EPERM"

[[allow]]
path = "/dev/kvm"
access = "rw"
types = ["char"]

[[allow]]
path = "/srv/vm1/"
access = "rw"
create = true
mode = 0o640

[[deny]]
path = "/srv/vm1/secret/"

[[allow]]
path = "/srv/vm1/ro/"
access = "r"
follow_symlinks = true
"#;

    fn req(path: &str, access: Access) -> Request {
        Request {
            path: path.as_bytes().to_vec(),
            access,
            create: false,
            truncate: false,
            file_type: None,
        }
    }

    #[test]
    fn allow_names_the_rule_and_the_losers() {
        let p = parse(POLICY, "vm.toml").expect("parses");
        let e = explain(&p, &req("/srv/vm1/ro/disk.img", Access::Read));
        assert!(e.allowed, "{}", e.text);
        assert_eq!(
            e.text,
            "request: /srv/vm1/ro/disk.img access=r (flags 0o0)\n\
             decision: allow by allow[2] /srv/vm1/ro/ (vm.toml:19)\n  \
             grants access=r types=file\n  \
             opens \"disk.img\" beneath /srv/vm1/ro\n  \
             the file found must be of type file (give --type to check one)\n  \
             symlinks: followed, but never out of the rule root (RESOLVE_BENEATH)\n\
             matched and lost:\n  \
             allow[1] /srv/vm1/ (vm.toml:10): a longer match decides (allow[2] /srv/vm1/ro/)\n"
        );
    }

    /// The example in docs/policy.md is this module's output.
    #[test]
    fn documented_example_is_real() {
        const DOC: &str = include_str!("../../docs/policy.md");
        let block = |marker: &str, fence: &str| {
            let rest = &DOC[DOC.find(marker).expect("marker")..];
            let body = &rest[rest.find(fence).expect("fence") + fence.len()..];
            let body = body.strip_prefix('\n').unwrap_or(body);
            body[..body.find("```").expect("closing fence")].to_string()
        };
        let p = parse(&block("## A complete example", "```toml"), "vm.toml").expect("parses");
        let shown = block("## Explaining a decision", "```");
        let (cmd, output) = shown.split_once('\n').expect("command line");
        assert!(
            cmd.ends_with("--explain /srv/vm1/secret/key --access rw"),
            "{cmd}"
        );
        let e = explain(&p, &req("/srv/vm1/secret/key", Access::ReadWrite));
        assert!(!e.allowed);
        assert_eq!(e.text, output);
    }

    #[test]
    fn host_findings_decide_type_and_symlinks() {
        let p = parse(POLICY, "vm.toml").expect("parses");
        let r = req("/srv/vm1/disk.img", Access::Read);
        let with = |f: HostFinding| explain_on_host(&p, &r, |_| Some(f));
        let e = with(HostFinding::Found(FileType::File));
        assert!(e.allowed);
        assert!(
            e.text.contains("on this host: resolves to a regular file"),
            "{}",
            e.text
        );
        assert!(!e.text.contains("give --type"), "{}", e.text);
        let e = with(HostFinding::WrongType(Some(FileType::Dir)));
        assert!(!e.allowed);
        assert!(
            e.text
                .contains("decision: deny EPERM (1): file type not allowed"),
            "{}",
            e.text
        );
        assert!(
            e.text
                .contains("type dir is not in types=file (found on this host)"),
            "{}",
            e.text
        );
        let e = with(HostFinding::Failed(openhook_wire::Errno::ELOOP));
        assert!(!e.allowed);
        assert!(
            e.text.contains("deny ELOOP (40): a symlink on the way"),
            "{}",
            e.text
        );
        let e = with(HostFinding::Failed(openhook_wire::Errno::EXDEV));
        assert!(!e.allowed);
        let e = with(HostFinding::Failed(openhook_wire::Errno::ENOENT));
        assert!(
            e.allowed,
            "the policy allows; ENOENT is the file's own errno"
        );
        assert!(e.text.contains("fail with ENOENT (2)"), "{}", e.text);
        // Under a rule that follows symlinks, ELOOP is the kernel's own
        // (too many links), not a refusal.
        let r = req("/srv/vm1/ro/x", Access::Read);
        let e = explain_on_host(&p, &r, |_| {
            Some(HostFinding::Failed(openhook_wire::Errno::ELOOP))
        });
        assert!(e.allowed, "{}", e.text);
        // With --type the host is not looked at.
        let mut r = req("/dev/kvm", Access::ReadWrite);
        r.file_type = Some(FileType::Char);
        let e = explain_on_host(&p, &r, |_| panic!("looked at the host"));
        assert!(e.allowed);
    }

    #[test]
    fn denials_say_why() {
        let p = parse(POLICY, "vm.toml").expect("parses");
        let e = explain(&p, &req("/srv/vm1/ro/disk.img", Access::ReadWrite));
        assert!(!e.allowed);
        assert!(
            e.text.contains(
                "decision: deny EPERM (1): access not granted by the rule by allow[2] /srv/vm1/ro/ (vm.toml:19)\n  grants access=r"
            ),
            "{}",
            e.text
        );
        let e = explain(&p, &req("/srv/vm1/secret/key", Access::Read));
        assert!(!e.allowed);
        assert!(
            e.text
                .contains("deny rule by deny[0] /srv/vm1/secret/ (vm.toml:16)"),
            "{}",
            e.text
        );
        assert!(
            e.text.contains(
                "allow[1] /srv/vm1/ (vm.toml:10): a matching deny rule wins (deny[0] /srv/vm1/secret/)"
            ),
            "{}",
            e.text
        );
        let e = explain(&p, &req("/etc/passwd", Access::Read));
        assert!(!e.allowed);
        assert!(e
            .text
            .contains("decision: deny EPERM (1): no rule matches\n"));
        assert!(!e.text.contains("other rule"));
        let mut r = req("/dev/kvm", Access::ReadWrite);
        r.file_type = Some(FileType::File);
        let e = explain(&p, &r);
        assert!(!e.allowed);
        assert!(e
            .text
            .contains("file type not allowed by the rule by allow[0] /dev/kvm"));
        assert!(e.text.contains("type file is not in types=char"));
        r.file_type = Some(FileType::Char);
        assert!(explain(&p, &r).allowed);
        let mut r = req("/srv/vm1/ro/new", Access::ReadWrite);
        r.create = true;
        assert!(!explain(&p, &r).allowed);
        let mut r = req("/srv/vm1/new", Access::ReadWrite);
        r.create = true;
        let e = explain(&p, &r);
        assert!(e.allowed);
        assert!(e.text.contains("created with mode at most 0o640"));
        assert!(e.text.contains("symlinks: refused"));
    }
}
