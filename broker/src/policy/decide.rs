//! The policy decision: (policy, path, flags, mode) → [`Allowed`] or
//! [`Denial`]. Pure: no syscalls, no fds. `resolve.rs` performs what an
//! [`Allowed`] describes; `serve.rs` maps a [`Denial`] to the wire.
#![forbid(unsafe_code)]

use std::fmt;

use openhook_wire::Errno;
use rustix::fs::ResolveFlags;

use super::flags::{self, FlagError, O_CLOEXEC, O_NOCTTY, O_NONBLOCK, O_TRUNC};
use super::model::{Access, FileType, FileTypes, Policy, RootId, RuleId};

/// Longest name a request may carry (longer → `ENAMETOOLONG`, docs/protocol.md).
pub const MAX_PATH: usize = openhook_wire::hook::frame::MAX_FILENAME;

/// What to open, from where, and how. Built only by [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed<'a> {
    /// The rule root to resolve from (index into `Ambient`'s roots).
    pub root: RootId,
    /// Path relative to the root (`.` for the root directory itself).
    pub rel: &'a [u8],
    /// Flags for `openat2`: the request's known flags without `O_TRUNC`,
    /// plus `O_CLOEXEC | O_NONBLOCK | O_NOCTTY`.
    pub oflags: u32,
    /// The request asked for `O_NONBLOCK` (restored after the type check).
    pub nonblock: bool,
    /// The request asked for `O_TRUNC`: applied with `ftruncate` after the
    /// type check, so a file of a refused type is never truncated.
    pub truncate: bool,
    /// Creation mode, clamped by the rule (0 without `O_CREAT`).
    pub mode: u32,
    /// `openat2` resolve flags.
    pub resolve: ResolveFlags,
    /// File types the result may have.
    pub types: FileTypes,
    /// The deciding rule.
    pub rule: RuleId,
}

impl Allowed<'_> {
    /// True when a file of type `ftype` (`None`: a type the policy cannot
    /// name) may be handed out under the deciding rule: the check
    /// `resolve.rs` applies after `fstat`, and `check --explain` reports.
    pub fn permits_type(&self, ftype: Option<FileType>) -> bool {
        ftype.is_some_and(|t| self.types.contains(t))
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// Empty name (`EINVAL`).
    EmptyPath,
    /// NUL byte inside the name (`EINVAL`).
    EmbeddedNul,
    /// Name over [`MAX_PATH`] bytes (`ENAMETOOLONG`).
    NameTooLong,
    /// Not starting with `/`.
    NotAbsolute,
    /// A `.` or `..` component.
    DotComponent,
    /// An empty component (`//`).
    EmptyComponent,
    /// A trailing `/`.
    TrailingSlash,
    /// No allow rule matches.
    NoMatch,
    /// A deny rule matches.
    DenyRule,
    /// Access mode 3.
    AccessMode3,
    /// Flag bits outside the known set.
    UnknownFlags(u32),
    /// The rule does not grant the requested access.
    AccessNotGranted,
    /// `O_RDONLY | O_TRUNC`.
    ReadOnlyTruncate,
    /// `O_CREAT` on a rule without `create`.
    CreateNotAllowed,
    /// The opened file's type is not in the rule's `types` (from resolve).
    TypeMismatch,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::EmptyPath => f.write_str("empty path"),
            DenyReason::EmbeddedNul => f.write_str("embedded NUL in path"),
            DenyReason::NameTooLong => f.write_str("path longer than 4095 bytes"),
            DenyReason::NotAbsolute => f.write_str("relative path"),
            DenyReason::DotComponent => f.write_str("`.` or `..` component"),
            DenyReason::EmptyComponent => f.write_str("empty path component"),
            DenyReason::TrailingSlash => f.write_str("trailing slash"),
            DenyReason::NoMatch => f.write_str("no rule matches"),
            DenyReason::DenyRule => f.write_str("deny rule"),
            DenyReason::AccessMode3 => f.write_str("access mode 3"),
            DenyReason::UnknownFlags(bits) => write!(f, "flags {bits:#o} not allowed"),
            DenyReason::AccessNotGranted => f.write_str("access not granted by the rule"),
            DenyReason::ReadOnlyTruncate => f.write_str("O_TRUNC with read-only access"),
            DenyReason::CreateNotAllowed => f.write_str("O_CREAT on a rule without create"),
            DenyReason::TypeMismatch => f.write_str("file type not allowed by the rule"),
        }
    }
}

/// A refused request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denial {
    /// Errno for the reply (the policy's deny errno unless the request is
    /// malformed: `EINVAL`, `ENAMETOOLONG`).
    pub errno: Errno,
    pub reason: DenyReason,
    /// The rule that decided, when one matched.
    pub rule: Option<RuleId>,
}

impl Denial {
    /// The errno for the wire reply.
    pub fn errno(&self) -> Errno {
        self.errno
    }
}

/// Checks the name's shape; `Err` carries the reason and errno.
fn check_path(policy: &Policy, path: &[u8]) -> Result<(), (DenyReason, Errno)> {
    let deny = policy.deny_errno;
    if path.is_empty() {
        return Err((DenyReason::EmptyPath, Errno::EINVAL));
    }
    if path.contains(&0) {
        return Err((DenyReason::EmbeddedNul, Errno::EINVAL));
    }
    if path.len() > MAX_PATH {
        return Err((DenyReason::NameTooLong, Errno::ENAMETOOLONG));
    }
    if path[0] != b'/' {
        return Err((DenyReason::NotAbsolute, deny));
    }
    if path == b"/" {
        return Ok(());
    }
    if path.ends_with(b"/") {
        return Err((DenyReason::TrailingSlash, deny));
    }
    for comp in path[1..].split(|&b| b == b'/') {
        match comp {
            b"" => return Err((DenyReason::EmptyComponent, deny)),
            b"." | b".." => return Err((DenyReason::DotComponent, deny)),
            _ => {}
        }
    }
    Ok(())
}

/// The relative path below a directory rule whose path ends at byte `end`
/// of `path` (`end == 0` is `/`).
fn rel_below(path: &[u8], end: usize) -> &[u8] {
    if end >= path.len() || path == b"/" {
        b"."
    } else {
        &path[end + 1..]
    }
}

/// Why `old` lost to an exact rule at the request's own node: a subtree
/// rule on that very path loses as the less specific spelling, one from a
/// shorter path as a shorter match.
fn superseded_by_exact(same_node_tree: Option<RuleId>, old: RuleId) -> Lost {
    if same_node_tree == Some(old) {
        Lost::ExactOverSubtree
    } else {
        Lost::LongerMatch
    }
}

/// Why a matching rule did not decide a request (reported to a [`Trace`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// A rule of the same kind on a longer path matched.
    LongerMatch,
    /// An exact rule on the same path matched (it beats the subtree rule).
    ExactOverSubtree,
    /// A deny rule matched, and a matching deny always wins.
    DenyWins,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lost::LongerMatch => "a longer match decides",
            Lost::ExactOverSubtree => "an exact rule on the same path beats a subtree rule",
            Lost::DenyWins => "a matching deny rule wins",
        })
    }
}

/// What [`decide_traced`] reports besides its result: every matching rule
/// that did not decide, the rule that beat it, and why. The deciding rule
/// is the result's (`Allowed::rule`, `Denial::rule`). `openhook-broker
/// check --explain` records these; [`decide`] passes `()`, whose empty
/// methods compile away, so serving pays nothing for the reporting.
pub trait Trace {
    /// `rule` matched the path but `winner` took precedence.
    fn lost(&mut self, _rule: RuleId, _winner: RuleId, _why: Lost) {}
}

impl Trace for () {}

/// Decides a request. Deny rules win; otherwise the longest matching allow
/// rule decides (an exact rule beats a subtree rule on the same path).
pub fn decide<'a>(
    policy: &Policy,
    path: &'a [u8],
    flags: u32,
    mode: u32,
) -> Result<Allowed<'a>, Denial> {
    decide_traced(policy, path, flags, mode, &mut ())
}

/// [`decide`], reporting to `trace` each matching rule that lost and why.
pub fn decide_traced<'a, T: Trace>(
    policy: &Policy,
    path: &'a [u8],
    flags: u32,
    mode: u32,
    trace: &mut T,
) -> Result<Allowed<'a>, Denial> {
    let deny = |reason, rule| Denial {
        errno: policy.deny_errno,
        reason,
        rule,
    };
    check_path(policy, path).map_err(|(reason, errno)| Denial {
        errno,
        reason,
        rule: None,
    })?;

    // Walk the rule index component by component; a rule found deeper
    // supersedes the one of its kind found so far.
    let nodes = &policy.index.nodes;
    let mut node = &nodes[0];
    let mut allow: Option<(RuleId, usize)> = node.tree_allow.map(|r| (r, 0));
    let mut denied = node.tree_deny;
    let mut whole = true;
    let mut end = 0;
    if path != b"/" {
        for comp in path[1..].split(|&b| b == b'/') {
            end += 1 + comp.len();
            match node.children.get(comp) {
                Some(&next) => node = &nodes[next],
                None => {
                    whole = false;
                    break;
                }
            }
            if let Some(r) = node.tree_allow {
                if let Some((old, _)) = allow {
                    trace.lost(old, r, Lost::LongerMatch);
                }
                allow = Some((r, end));
            }
            if let Some(r) = node.tree_deny {
                if let Some(old) = denied {
                    trace.lost(old, r, Lost::LongerMatch);
                }
                denied = Some(r);
            }
        }
    }
    let mut exact = false;
    if whole {
        if let Some(r) = node.exact_deny {
            if let Some(old) = denied {
                trace.lost(old, r, superseded_by_exact(node.tree_deny, old));
            }
            denied = Some(r);
        }
        if let Some(r) = node.exact_allow {
            if let Some((old, _)) = allow {
                trace.lost(old, r, superseded_by_exact(node.tree_allow, old));
            }
            allow = Some((r, path.len()));
            exact = true;
        }
    }
    if let Some(r) = denied {
        if let Some((a, _)) = allow {
            trace.lost(a, r, Lost::DenyWins);
        }
        return Err(deny(DenyReason::DenyRule, Some(r)));
    }
    let Some((rule_id, end)) = allow else {
        return Err(deny(DenyReason::NoMatch, None));
    };
    let rule = policy.rule(rule_id);
    let Some(root) = rule.root else {
        // Allow rules always have a root (parse guarantees it).
        return Err(deny(DenyReason::NoMatch, None));
    };
    let rel = if exact {
        let slash = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
        &path[slash + 1..]
    } else {
        rel_below(path, end)
    };

    let req = flags::classify(flags).map_err(|e| match e {
        FlagError::AccessMode3 => deny(DenyReason::AccessMode3, Some(rule_id)),
        FlagError::Unknown(bits) => deny(DenyReason::UnknownFlags(bits), Some(rule_id)),
    })?;
    if !rule.access.covers(req.access) {
        return Err(deny(DenyReason::AccessNotGranted, Some(rule_id)));
    }
    if req.truncate() && req.access == Access::Read {
        return Err(deny(DenyReason::ReadOnlyTruncate, Some(rule_id)));
    }
    if req.create() && !rule.create {
        return Err(deny(DenyReason::CreateNotAllowed, Some(rule_id)));
    }

    let mut resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    if !rule.follow_symlinks {
        resolve |= ResolveFlags::NO_SYMLINKS;
    }
    Ok(Allowed {
        root,
        rel,
        oflags: (req.bits & !O_TRUNC) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
        nonblock: req.nonblock(),
        truncate: req.truncate(),
        mode: if req.create() { mode & rule.mode } else { 0 },
        resolve,
        types: rule.types,
        rule: rule_id,
    })
}

#[cfg(test)]
mod tests {
    use super::super::flags::*;
    use super::super::parse::parse;
    use super::*;
    use proptest::prelude::*;

    const POLICY: &str = r#"
version = 1
deny_errno = "EPERM"

[[allow]]
path = "/etc/hostname"
access = "r"

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

[[allow]]
path = "/srv/vm1/ro/disk.img"
access = "rw"
"#;

    fn policy() -> Policy {
        parse(POLICY, "test.toml").expect("policy parses")
    }

    fn rule_at(p: &Policy, path: &str) -> RuleId {
        let i = p
            .rules
            .iter()
            .position(|r| r.display_path() == path)
            .expect("rule exists");
        RuleId(i)
    }

    /// Flags each rule kind must accept besides the access mode, from the
    /// design's list; O_TRUNC and O_CREAT are judged separately.
    fn extra_ok(bit: u32) -> bool {
        matches!(
            1u32 << bit,
            O_APPEND
                | O_ASYNC
                | O_CLOEXEC
                | O_DIRECT
                | O_DIRECTORY
                | O_DSYNC
                | O_EXCL
                | O_LARGEFILE
                | O_NOATIME
                | O_NOCTTY
                | O_NOFOLLOW
                | O_NONBLOCK
        ) || (1u32 << bit) == (O_SYNC & !O_DSYNC)
    }

    /// The allow/deny matrix: every flag bit 2..31 × every access mode ×
    /// every rule kind.
    #[test]
    fn flag_bit_matrix() {
        let p = policy();
        struct Kind {
            name: &'static str,
            path: &'static [u8],
            read: bool,
            write: bool,
            create: bool,
            denied_by_rule: bool,
        }
        let kinds = [
            Kind {
                name: "exact r",
                path: b"/etc/hostname",
                read: true,
                write: false,
                create: false,
                denied_by_rule: false,
            },
            Kind {
                name: "exact rw",
                path: b"/dev/kvm",
                read: true,
                write: true,
                create: false,
                denied_by_rule: false,
            },
            Kind {
                name: "subtree rw+create",
                path: b"/srv/vm1/disk.img",
                read: true,
                write: true,
                create: true,
                denied_by_rule: false,
            },
            Kind {
                name: "deny inside allow",
                path: b"/srv/vm1/secret/key",
                read: true,
                write: true,
                create: true,
                denied_by_rule: true,
            },
        ];
        let mut checked = 0;
        for k in &kinds {
            for accmode in 0..4u32 {
                for bit in 2..32u32 {
                    let f = 1u32 << bit;
                    let flags = accmode | f;
                    let access_ok = match accmode {
                        0 => k.read,
                        1 => k.write,
                        2 => k.read && k.write,
                        _ => false,
                    };
                    let bit_ok = if f == O_TRUNC {
                        accmode != 0
                    } else if f == O_CREAT {
                        k.create
                    } else {
                        extra_ok(bit)
                    };
                    let expect = !k.denied_by_rule && access_ok && bit_ok;
                    let got = decide(&p, k.path, flags, 0o600);
                    assert_eq!(
                        got.is_ok(),
                        expect,
                        "{}: accmode {accmode} bit {bit} ({f:#o}): {got:?}",
                        k.name
                    );
                    if let Err(d) = got {
                        assert_eq!(d.errno(), Errno::EPERM, "{} bit {bit}", k.name);
                        if k.denied_by_rule {
                            assert_eq!(d.reason, DenyReason::DenyRule);
                        }
                    }
                    if let Ok(a) = got {
                        assert_ne!(a.oflags & O_CLOEXEC, 0);
                        assert_ne!(a.oflags & O_NONBLOCK, 0);
                        assert_ne!(a.oflags & O_NOCTTY, 0);
                        assert_eq!(a.oflags & O_TRUNC, 0);
                        assert_eq!(a.truncate, f == O_TRUNC);
                        assert_eq!(a.nonblock, f == O_NONBLOCK);
                        assert_eq!(
                            a.oflags & !(O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_TRUNC),
                            flags & !(O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_TRUNC)
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 4 * 4 * 30);
    }

    #[test]
    fn bad_paths() {
        let p = policy();
        let deny = Errno::EPERM;
        let long = {
            let mut v = b"/srv/vm1/".to_vec();
            v.resize(4096, b'a');
            v
        };
        let just_fits = {
            let mut v = b"/srv/vm1/".to_vec();
            v.resize(4095, b'a');
            v
        };
        let cases: &[(&[u8], Errno, DenyReason)] = &[
            (b"", Errno::EINVAL, DenyReason::EmptyPath),
            (b"srv/vm1/disk.img", deny, DenyReason::NotAbsolute),
            (b"disk.img", deny, DenyReason::NotAbsolute),
            (b"./srv/vm1/disk.img", deny, DenyReason::NotAbsolute),
            (b"/srv/vm1/./disk.img", deny, DenyReason::DotComponent),
            (b"/srv/vm1/.", deny, DenyReason::DotComponent),
            (b"/srv/vm1/../vm1/disk.img", deny, DenyReason::DotComponent),
            (b"/srv/vm1/ro/..", deny, DenyReason::DotComponent),
            (b"/srv//vm1/disk.img", deny, DenyReason::EmptyComponent),
            (b"//srv/vm1/disk.img", deny, DenyReason::EmptyComponent),
            (b"/srv/vm1/dir/", deny, DenyReason::TrailingSlash),
            (b"/srv/vm1/", deny, DenyReason::TrailingSlash),
            (
                b"/srv/vm1/disk\0.img",
                Errno::EINVAL,
                DenyReason::EmbeddedNul,
            ),
            (
                b"/srv/vm1/disk.img\0",
                Errno::EINVAL,
                DenyReason::EmbeddedNul,
            ),
            (&long, Errno::ENAMETOOLONG, DenyReason::NameTooLong),
        ];
        for (path, errno, reason) in cases {
            let d = decide(&p, path, 0, 0).expect_err("bad path refused");
            assert_eq!(
                (d.errno, d.reason),
                (*errno, *reason),
                "{:?}",
                String::from_utf8_lossy(path)
            );
        }
        // The same requests, well formed, are allowed.
        for ok in [
            &b"/srv/vm1/disk.img"[..],
            b"/srv/vm1/.hidden",
            b"/srv/vm1/..x",
            b"/srv/vm1/dir/x",
            b"/srv/vm1",
            &just_fits,
        ] {
            assert!(decide(&p, ok, 0, 0).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn rel_paths_and_roots() {
        let p = policy();
        let a = decide(&p, b"/srv/vm1/a/b", 0, 0).expect("allowed");
        assert_eq!(a.rel, b"a/b");
        assert_eq!(p.roots[a.root.0], "/srv/vm1");
        let a = decide(&p, b"/srv/vm1", 0, 0).expect("allowed");
        assert_eq!(a.rel, b".");
        let a = decide(&p, b"/dev/kvm", 2, 0).expect("allowed");
        assert_eq!(a.rel, b"kvm");
        assert_eq!(p.roots[a.root.0], "/dev");
        assert_eq!(
            a.types,
            [super::super::model::FileType::Char].into_iter().collect()
        );
        assert_eq!(
            a.resolve,
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS
        );
        // The exact rule beats the shorter read-only subtree rule.
        let a = decide(&p, b"/srv/vm1/ro/disk.img", 2, 0).expect("allowed");
        assert_eq!(a.rule, rule_at(&p, "/srv/vm1/ro/disk.img"));
        assert_eq!(a.rel, b"disk.img");
        assert_eq!(p.roots[a.root.0], "/srv/vm1/ro");
        // ... and the read-only subtree beats /srv/vm1/ for its other files.
        let d = decide(&p, b"/srv/vm1/ro/other", 2, 0).expect_err("read-only");
        assert_eq!(d.reason, DenyReason::AccessNotGranted);
        assert_eq!(d.rule, Some(rule_at(&p, "/srv/vm1/ro/")));
        // The deny subtree covers its directory too.
        let d = decide(&p, b"/srv/vm1/secret", 0, 0).expect_err("denied");
        assert_eq!(d.reason, DenyReason::DenyRule);
        // Exact rules match exactly.
        for path in [
            &b"/etc/hostname2"[..],
            b"/etc/hostname/x",
            b"/etc",
            b"/dev/kvm0",
        ] {
            let d = decide(&p, path, 0, 0).expect_err("no match");
            assert_eq!(d.reason, DenyReason::NoMatch, "{path:?}");
        }
    }

    /// Records what [`decide_traced`] reports.
    #[derive(Default)]
    struct Record(Vec<(RuleId, RuleId, Lost)>);

    impl Trace for Record {
        fn lost(&mut self, rule: RuleId, winner: RuleId, why: Lost) {
            self.0.push((rule, winner, why));
        }
    }

    #[test]
    fn trace_reports_the_rules_that_lost() {
        let p = policy();
        let r = |path| rule_at(&p, path);
        let mut t = Record::default();
        let a = decide_traced(&p, b"/srv/vm1/ro/disk.img", 2, 0, &mut t).expect("allowed");
        assert_eq!(a.rule, r("/srv/vm1/ro/disk.img"));
        assert_eq!(
            t.0,
            [
                (r("/srv/vm1/"), r("/srv/vm1/ro/"), Lost::LongerMatch),
                (
                    r("/srv/vm1/ro/"),
                    r("/srv/vm1/ro/disk.img"),
                    Lost::LongerMatch
                ),
            ]
        );
        let mut t = Record::default();
        let d = decide_traced(&p, b"/srv/vm1/secret/key", 0, 0, &mut t).expect_err("denied");
        assert_eq!(d.rule, Some(r("/srv/vm1/secret/")));
        assert_eq!(
            t.0,
            [(r("/srv/vm1/"), r("/srv/vm1/secret/"), Lost::DenyWins)]
        );
        // The winner's own checks still refuse: the trace is unchanged.
        let mut t = Record::default();
        let d = decide_traced(&p, b"/srv/vm1/ro/other", 2, 0, &mut t).expect_err("read-only");
        assert_eq!(d.reason, DenyReason::AccessNotGranted);
        assert_eq!(
            t.0,
            [(r("/srv/vm1/"), r("/srv/vm1/ro/"), Lost::LongerMatch)]
        );

        let p = parse(
            "version = 1\n[[allow]]\npath = \"/a/\"\n[[allow]]\npath = \"/a\"\naccess = \"rw\"\n",
            "t.toml",
        )
        .expect("parses");
        let mut t = Record::default();
        let a = decide_traced(&p, b"/a", 2, 0, &mut t).expect("allowed");
        assert_eq!(a.rule, RuleId(1));
        assert_eq!(t.0, [(RuleId(0), RuleId(1), Lost::ExactOverSubtree)]);
    }

    #[test]
    fn permits_type_is_the_rules_types() {
        let p = policy();
        let a = decide(&p, b"/dev/kvm", 2, 0).expect("allowed");
        assert!(a.permits_type(Some(FileType::Char)));
        assert!(!a.permits_type(Some(FileType::File)));
        assert!(!a.permits_type(None));
    }

    #[test]
    fn mode_is_clamped() {
        let p = policy();
        let a = decide(&p, b"/srv/vm1/new", O_RDWR | O_CREAT, 0o7777).expect("allowed");
        assert_eq!(a.mode, 0o640);
        let a = decide(&p, b"/srv/vm1/new", O_RDWR | O_CREAT, 0o604).expect("allowed");
        assert_eq!(a.mode, 0o600);
        let a = decide(&p, b"/srv/vm1/new", O_RDWR, 0o666).expect("allowed");
        assert_eq!(a.mode, 0);
    }

    #[test]
    fn follow_symlinks_drops_no_symlinks() {
        let p = parse(
            "version = 1\n[[allow]]\npath = \"/a/\"\nfollow_symlinks = true\n",
            "t.toml",
        )
        .expect("parses");
        let a = decide(&p, b"/a/x", 0, 0).expect("allowed");
        assert_eq!(
            a.resolve,
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
        );
    }

    #[test]
    fn root_subtree_rule() {
        let p = parse("version = 1\n[[allow]]\npath = \"/\"\n", "t.toml").expect("parses");
        let a = decide(&p, b"/etc/passwd", 0, 0).expect("allowed");
        assert_eq!(a.rel, b"etc/passwd");
        assert_eq!(p.roots[a.root.0], "/");
        let a = decide(&p, b"/", 0, 0).expect("allowed");
        assert_eq!(a.rel, b".");
    }

    /// A naive model of the matching rules, to compare the index against.
    fn naive(rules: &[(bool, String, bool)], path: &str) -> Option<(bool, usize)> {
        let matches = |r: &(bool, String, bool)| {
            let (_, rp, subtree) = r;
            if *subtree {
                rp == "/" || path == rp || path.starts_with(&format!("{rp}/"))
            } else {
                path == rp
            }
        };
        if let Some(i) = rules.iter().position(|r| !r.0 && matches(r)) {
            return Some((false, i));
        }
        // Longest allow; exact beats subtree on the same path.
        rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 && matches(r))
            .max_by_key(|(_, r)| (if r.1 == "/" { 0 } else { r.1.len() }, !r.2))
            .map(|(i, _)| (true, i))
    }

    fn arb_path() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..4)
            .prop_map(|c| format!("/{}", c.join("/")))
    }

    fn arb_request_path() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(
                prop::sample::select(vec![
                    &b"/"[..],
                    b"srv",
                    b"vm1",
                    b"ro",
                    b"secret",
                    b"disk.img",
                    b".",
                    b"..",
                    b"\0",
                    b"\xff",
                    b"dev",
                    b"kvm",
                    b"etc",
                    b"hostname",
                ]),
                0..10,
            )
            .prop_map(|parts| parts.concat()),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        /// Whatever arrives, decide answers without panicking, and what it
        /// allows is safe to hand to openat2: a relative path with no `.`/`..`
        /// components, known flags only, O_CLOEXEC set, mode within the rule.
        #[test]
        fn arbitrary_requests_are_safe(
            path in arb_request_path(),
            flags in any::<u32>(),
            mode in any::<u32>(),
        ) {
            let p = policy();
            if let Ok(a) = decide(&p, &path, flags, mode) {
                prop_assert!(!a.rel.is_empty());
                prop_assert!(!a.rel.starts_with(b"/"));
                prop_assert!(!a.rel.contains(&0));
                for comp in a.rel.split(|&b| b == b'/') {
                    prop_assert!(comp != b".." && !comp.is_empty());
                }
                prop_assert_eq!(a.oflags & !(KNOWN | O_ACCMODE), 0);
                prop_assert_ne!(a.oflags & O_ACCMODE, O_ACCMODE);
                prop_assert_ne!(a.oflags & O_CLOEXEC, 0);
                let rule = p.rule(a.rule);
                prop_assert_eq!(a.mode & !rule.mode, 0);
                prop_assert!(rule.kind == super::super::model::RuleKind::Allow);
            }
        }
    }

    proptest! {
        /// Deny wins, the longest allow wins, no match gives the deny errno.
        #[test]
        fn matches_naive_model(
            rules in prop::collection::vec((any::<bool>(), arb_path(), any::<bool>()), 0..8),
            path in arb_path().prop_filter("not the root", |p| p != "/"),
        ) {
            let mut text = String::from("version = 1\ndeny_errno = 77\n");
            let mut seen = std::collections::HashSet::new();
            let mut kept = Vec::new();
            for (allow, p, subtree) in rules {
                let subtree = subtree || p == "/";
                if !seen.insert((allow, p.clone(), subtree)) {
                    continue;
                }
                let spelled = if subtree && p != "/" { format!("{p}/") } else { p.clone() };
                let kind = if allow { "allow" } else { "deny" };
                text.push_str(&format!("[[{kind}]]\npath = \"{spelled}\"\n"));
                kept.push((allow, p, subtree));
            }
            let policy = parse(&text, "prop.toml").expect("generated policy parses");
            let got = decide(&policy, path.as_bytes(), 0, 0);
            // The traced decision is the same, and every matching rule is
            // either the deciding one or reported lost exactly once.
            let mut trace = Record::default();
            let traced = decide_traced(&policy, path.as_bytes(), 0, 0, &mut trace);
            prop_assert_eq!(&traced, &got);
            let winner = match &got {
                Ok(a) => Some(a.rule),
                Err(d) => d.rule,
            };
            let mut seen: Vec<usize> = trace.0.iter().map(|(r, _, _)| r.0).collect();
            seen.extend(winner.map(|r| r.0));
            seen.sort_unstable();
            let matching: Vec<usize> = (0..kept.len())
                .filter(|&i| naive(&kept[i..=i], &path).is_some())
                .collect();
            prop_assert_eq!(seen, matching);
            match naive(&kept, &path) {
                None => {
                    let d = got.expect_err("no match denies");
                    prop_assert_eq!(d.reason, DenyReason::NoMatch);
                    prop_assert_eq!(d.errno, Errno::new(77).expect("errno"));
                }
                Some((false, _)) => {
                    let d = got.expect_err("deny wins");
                    prop_assert_eq!(d.reason, DenyReason::DenyRule);
                    prop_assert_eq!(d.errno, Errno::new(77).expect("errno"));
                }
                Some((true, i)) => {
                    let a = got.expect("allowed");
                    prop_assert_eq!(a.rule, RuleId(i));
                }
            }
        }
    }
}
