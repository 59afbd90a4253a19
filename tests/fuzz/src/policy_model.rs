//! A naive model of the policy rules of docs/policy.md, written from the text
//! and not from `broker/src/policy/`: a linear scan over the rules instead
//! of the component trie, kernel flag values spelled out as numbers.
//! Used as the oracle of `policy_decide` and `policy_toml`.

use openhook_broker::policy::{Access, DenyReason, FileType, FileTypes};

// Linux open flags, from include/uapi/asm-generic/fcntl.h (x86_64, aarch64).
pub const O_WRONLY: u32 = 0o1;
pub const O_RDWR: u32 = 0o2;
pub const O_ACCMODE: u32 = 0o3;
pub const O_CREAT: u32 = 0o100;
pub const O_EXCL: u32 = 0o200;
pub const O_NOCTTY: u32 = 0o400;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_DSYNC: u32 = 0o10000;
pub const O_ASYNC: u32 = 0o20000;
pub const O_DIRECT: u32 = 0o40000;
pub const O_LARGEFILE: u32 = 0o100000;
pub const O_DIRECTORY: u32 = 0o200000;
pub const O_NOFOLLOW: u32 = 0o400000;
pub const O_NOATIME: u32 = 0o1000000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_SYNC: u32 = 0o4010000;
pub const O_PATH: u32 = 0o10000000;
pub const O_TMPFILE: u32 = 0o20200000;

/// The flags docs/policy.md lists besides the access mode; every other bit is
/// refused.
pub const LISTED: [u32; 15] = [
    O_APPEND,
    O_ASYNC,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECT,
    O_DIRECTORY,
    O_DSYNC,
    O_EXCL,
    O_LARGEFILE,
    O_NOATIME,
    O_NOCTTY,
    O_NOFOLLOW,
    O_NONBLOCK,
    O_SYNC,
    O_TRUNC,
];

pub fn listed_mask() -> u32 {
    LISTED.iter().fold(0, |a, f| a | f)
}

/// One rule as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRule {
    pub allow: bool,
    /// Normalised: absolute, no trailing slash (`/` for the root).
    pub path: String,
    pub subtree: bool,
    pub access: Access,
    pub create: bool,
    pub mode: u32,
    pub types: FileTypes,
    pub follow: bool,
}

impl ModelRule {
    pub fn matches(&self, path: &[u8]) -> bool {
        let rp = self.path.as_bytes();
        if !self.subtree {
            return path == rp;
        }
        rp == b"/" || path == rp || (path.starts_with(rp) && path.get(rp.len()) == Some(&b'/'))
    }

    /// The directory requests resolve from.
    pub fn root(&self) -> &str {
        if self.subtree {
            &self.path
        } else {
            parent(&self.path)
        }
    }

    /// The spelling in a policy file.
    pub fn spelled(&self) -> String {
        if self.subtree && self.path != "/" {
            format!("{}/", self.path)
        } else {
            self.path.clone()
        }
    }
}

pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `p` is `root` or lies beneath it.
pub fn beneath(p: &str, root: &str) -> bool {
    root == "/" || p == root || (p.starts_with(root) && p.as_bytes().get(root.len()) == Some(&b'/'))
}

fn access_str(a: Access) -> &'static str {
    match a {
        Access::Read => "r",
        Access::Write => "w",
        Access::ReadWrite => "rw",
    }
}

fn covers(grant: Access, want: Access) -> bool {
    grant == Access::ReadWrite || grant == want
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The rules as `[[allow]]` / `[[deny]]` tables, in order.
pub fn rules_toml(rules: &[ModelRule]) -> String {
    let mut text = String::new();
    for r in rules {
        if r.allow {
            text.push_str(&format!(
                "[[allow]]\npath = {}\naccess = \"{}\"\n",
                toml_str(&r.spelled()),
                access_str(r.access)
            ));
            let types: Vec<String> = FileType::ALL
                .iter()
                .filter(|t| r.types.contains(**t))
                .map(|t| format!("\"{}\"", t.as_str()))
                .collect();
            text.push_str(&format!("types = [{}]\n", types.join(", ")));
            if r.create {
                text.push_str(&format!("create = true\nmode = 0o{:o}\n", r.mode));
            }
            if r.follow {
                text.push_str("follow_symlinks = true\n");
            }
        } else {
            text.push_str(&format!("[[deny]]\npath = {}\n", toml_str(&r.spelled())));
        }
    }
    text
}

/// Whether the parser must accept these rules: no duplicate (kind, path,
/// subtree), no deny rule at or beneath the root of a `follow_symlinks`
/// allow rule, and the per-rule constraints of docs/policy.md.
pub fn rules_valid(rules: &[ModelRule]) -> bool {
    for (i, r) in rules.iter().enumerate() {
        if rules[..i]
            .iter()
            .any(|q| q.allow == r.allow && q.path == r.path && q.subtree == r.subtree)
        {
            return false;
        }
        if r.allow {
            if r.types.is_empty() || r.mode > 0o777 {
                return false;
            }
            if r.create && (r.access == Access::Read || !r.types.contains(FileType::File)) {
                return false;
            }
        }
    }
    let follow_roots: Vec<&str> = rules
        .iter()
        .filter(|r| r.allow && r.follow)
        .map(|r| r.root())
        .collect();
    !rules
        .iter()
        .filter(|r| !r.allow)
        .any(|d| follow_roots.iter().any(|root| beneath(&d.path, root)))
}

/// What the model expects `decide` to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Deny {
        reason: DenyReason,
        /// `None`: the policy's deny errno.
        errno: Option<i32>,
    },
    Allow {
        rule: usize,
        /// Directory to resolve from.
        root: String,
        /// Path below it (`.` for the root itself).
        rel: Vec<u8>,
        oflags: u32,
        mode: u32,
        truncate: bool,
        nonblock: bool,
    },
}

fn deny(reason: DenyReason) -> Expect {
    Expect::Deny {
        reason,
        errno: None,
    }
}

/// The decision for one request (docs/protocol.md, docs/policy.md).
pub fn decide(rules: &[ModelRule], path: &[u8], flags: u32, mode: u32) -> Expect {
    // The name's shape.
    if path.is_empty() {
        return Expect::Deny {
            reason: DenyReason::EmptyPath,
            errno: Some(libc::EINVAL),
        };
    }
    if path.contains(&0) {
        return Expect::Deny {
            reason: DenyReason::EmbeddedNul,
            errno: Some(libc::EINVAL),
        };
    }
    if path.len() > 4095 {
        return Expect::Deny {
            reason: DenyReason::NameTooLong,
            errno: Some(libc::ENAMETOOLONG),
        };
    }
    if path[0] != b'/' {
        return deny(DenyReason::NotAbsolute);
    }
    if path != b"/" {
        if path.ends_with(b"/") {
            return deny(DenyReason::TrailingSlash);
        }
        for comp in path[1..].split(|&b| b == b'/') {
            if comp.is_empty() {
                return deny(DenyReason::EmptyComponent);
            }
            if comp == b"." || comp == b".." {
                return deny(DenyReason::DotComponent);
            }
        }
    }
    // Any matching deny rule wins.
    if rules.iter().any(|r| !r.allow && r.matches(path)) {
        return deny(DenyReason::DenyRule);
    }
    // Longest matching allow rule; an exact rule beats a subtree rule on
    // the same path.
    let best = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.allow && r.matches(path))
        .max_by_key(|(_, r)| (if r.path == "/" { 0 } else { r.path.len() }, !r.subtree));
    let Some((index, rule)) = best else {
        return deny(DenyReason::NoMatch);
    };
    // Flags.
    let unknown = flags & !(listed_mask() | O_ACCMODE);
    if unknown != 0 {
        return deny(DenyReason::UnknownFlags(unknown));
    }
    let want = match flags & O_ACCMODE {
        0 => Access::Read,
        O_WRONLY => Access::Write,
        O_RDWR => Access::ReadWrite,
        _ => return deny(DenyReason::AccessMode3),
    };
    if !covers(rule.access, want) {
        return deny(DenyReason::AccessNotGranted);
    }
    if flags & O_TRUNC != 0 && want == Access::Read {
        return deny(DenyReason::ReadOnlyTruncate);
    }
    if flags & O_CREAT != 0 && !rule.create {
        return deny(DenyReason::CreateNotAllowed);
    }
    let root = rule.root().to_string();
    let rel = if !rule.subtree {
        path[path.iter().rposition(|&b| b == b'/').unwrap_or(0) + 1..].to_vec()
    } else if path == rule.path.as_bytes() {
        b".".to_vec()
    } else if rule.path == "/" {
        path[1..].to_vec()
    } else {
        path[rule.path.len() + 1..].to_vec()
    };
    Expect::Allow {
        rule: index,
        root,
        rel,
        oflags: (flags & !O_TRUNC) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
        mode: if flags & O_CREAT != 0 {
            mode & rule.mode
        } else {
            0
        },
        truncate: flags & O_TRUNC != 0,
        nonblock: flags & O_NONBLOCK != 0,
    }
}

/// Compares the broker's answer with the model's, and checks the safety
/// properties that hold whatever the rules are. Panics on a disagreement.
pub fn check_decision(
    policy: &openhook_broker::policy::Policy,
    rules: &[ModelRule],
    path: &[u8],
    flags: u32,
    mode: u32,
) {
    use rustix::fs::ResolveFlags;

    let got = openhook_broker::policy::decide(policy, path, flags, mode);
    let want = decide(rules, path, flags, mode);
    let show = || {
        format!(
            "path {:?} flags {flags:#o} mode {mode:#o}",
            String::from_utf8_lossy(path)
        )
    };
    // Safety first: whatever the rules, an allowed request carries no
    // dangerous flag and a relative path that cannot climb.
    if let Ok(a) = &got {
        assert_eq!(flags & O_PATH, 0, "O_PATH allowed: {}", show());
        assert_eq!(
            flags & O_TMPFILE & !O_DIRECTORY,
            0,
            "O_TMPFILE allowed: {}",
            show()
        );
        assert_ne!(
            flags & O_ACCMODE,
            O_ACCMODE,
            "access mode 3 allowed: {}",
            show()
        );
        assert_eq!(
            a.oflags & !(listed_mask() | O_ACCMODE),
            0,
            "unknown bit passed: {}",
            show()
        );
        assert_eq!(a.oflags & O_TRUNC, 0);
        assert_ne!(a.oflags & O_CLOEXEC, 0);
        assert!(
            !a.rel.is_empty() && !a.rel.starts_with(b"/") && !a.rel.contains(&0),
            "rel {:?}: {}",
            a.rel,
            show()
        );
        if a.rel != b"." {
            assert!(
                a.rel
                    .split(|&b| b == b'/')
                    .all(|c| !c.is_empty() && c != b"." && c != b".."),
                "rel {:?}",
                a.rel
            );
        }
        assert!(a
            .resolve
            .contains(ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS));
        let rule = policy.rule(a.rule);
        assert_eq!(
            a.mode & !rule.mode,
            0,
            "mode wider than the rule: {}",
            show()
        );
        assert_eq!(
            a.resolve.contains(ResolveFlags::NO_SYMLINKS),
            !rule.follow_symlinks
        );
        assert_eq!(a.types, rule.types);
        // No deny rule matches an allowed path.
        assert!(
            !rules.iter().any(|r| !r.allow && r.matches(path)),
            "allowed under a deny rule: {}",
            show()
        );
    }
    match (got, want) {
        (Err(d), Expect::Deny { reason, errno }) => {
            assert_eq!(d.reason, reason, "{}", show());
            let errno = errno.unwrap_or(policy.deny_errno.get());
            assert_eq!(d.errno.get(), errno, "{}", show());
            if reason == DenyReason::DenyRule {
                let r = d.rule.expect("a deny rule is named");
                assert!(!rules[r.0].allow && rules[r.0].matches(path), "{}", show());
            }
        }
        (
            Ok(a),
            Expect::Allow {
                rule,
                root,
                rel,
                oflags,
                mode,
                truncate,
                nonblock,
            },
        ) => {
            assert_eq!(a.rule.0, rule, "{}", show());
            assert_eq!(policy.roots[a.root.0], root, "{}", show());
            assert_eq!(a.rel, &rel[..], "{}", show());
            assert_eq!(a.oflags, oflags, "{}", show());
            assert_eq!(a.mode, mode, "{}", show());
            assert_eq!((a.truncate, a.nonblock), (truncate, nonblock), "{}", show());
        }
        (got, want) => panic!("{}: broker {got:?}, model {want:?}", show()),
    }
}

/// The model rules of a parsed policy (for `policy_toml`).
pub fn from_policy(policy: &openhook_broker::policy::Policy) -> Vec<ModelRule> {
    use openhook_broker::policy::RuleKind;
    policy
        .rules
        .iter()
        .map(|r| ModelRule {
            allow: r.kind == RuleKind::Allow,
            path: r.path.clone(),
            subtree: r.subtree,
            access: r.access,
            create: r.create,
            mode: r.mode,
            types: r.types,
            follow: r.follow_symlinks,
        })
        .collect()
}
