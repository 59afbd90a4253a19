//! The validated policy model: types that cannot say anything invalid.
//!
//! A [`Policy`] exists only after `parse` has checked every rule, so the
//! decision core can trust it: rule paths are absolute and normalised, fd
//! numbers are unique, `create` rules may write and create regular files.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;

use openhook_wire::Errno;

/// Index of a rule in [`Policy::rules`] (file order, allow and deny mixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub usize);

/// Index of a rule root in [`Policy::roots`]; `Ambient` opens them in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RootId(pub usize);

/// Whether a rule grants or refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Allow,
    Deny,
}

/// Access granted by an allow rule (`access = "r" | "w" | "rw"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum Access {
    #[serde(rename = "r")]
    Read,
    #[serde(rename = "w")]
    Write,
    #[serde(rename = "rw")]
    ReadWrite,
}

impl Access {
    /// True when this grant covers `wanted`.
    pub fn covers(self, wanted: Access) -> bool {
        self == Access::ReadWrite || self == wanted
    }

    /// True when the grant includes writing.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }

    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "r",
            Access::Write => "w",
            Access::ReadWrite => "rw",
        }
    }
}

/// A file type an allow rule may hand out (`types = [...]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    File,
    Dir,
    Char,
    Block,
    Fifo,
    Socket,
}

impl FileType {
    /// Every type, in bit order.
    pub const ALL: [FileType; 6] = [
        FileType::File,
        FileType::Dir,
        FileType::Char,
        FileType::Block,
        FileType::Fifo,
        FileType::Socket,
    ];

    fn bit(self) -> u8 {
        match self {
            FileType::File => 1,
            FileType::Dir => 2,
            FileType::Char => 4,
            FileType::Block => 8,
            FileType::Fifo => 16,
            FileType::Socket => 32,
        }
    }

    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Dir => "dir",
            FileType::Char => "char",
            FileType::Block => "block",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
        }
    }

    /// Classifies an `st_mode` value; `None` for anything else (symlinks
    /// cannot be opened without `O_PATH`, which is never allowed).
    pub fn from_st_mode(mode: u32) -> Option<FileType> {
        match mode & 0o170_000 {
            0o100_000 => Some(FileType::File),
            0o040_000 => Some(FileType::Dir),
            0o020_000 => Some(FileType::Char),
            0o060_000 => Some(FileType::Block),
            0o010_000 => Some(FileType::Fifo),
            0o140_000 => Some(FileType::Socket),
            _ => None,
        }
    }
}

/// A set of [`FileType`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileTypes(u8);

impl FileTypes {
    /// The default for rules that name no types: regular files only.
    pub const FILE_ONLY: FileTypes = FileTypes(1);

    /// Adds one type.
    pub fn insert(&mut self, t: FileType) {
        self.0 |= t.bit();
    }

    /// True when `t` is in the set.
    pub fn contains(self, t: FileType) -> bool {
        self.0 & t.bit() != 0
    }

    /// True when the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<FileType> for FileTypes {
    fn from_iter<I: IntoIterator<Item = FileType>>(iter: I) -> Self {
        let mut set = FileTypes::default();
        for t in iter {
            set.insert(t);
        }
        set
    }
}

impl fmt::Display for FileTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in FileType::ALL {
            if self.contains(t) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(t.as_str())?;
                first = false;
            }
        }
        Ok(())
    }
}

/// One `[[allow]]` or `[[deny]]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    /// Normalised absolute path without a trailing slash (`/` for the root).
    pub path: String,
    /// True for a trailing-slash rule: the directory and everything beneath.
    pub subtree: bool,
    /// Access granted (deny rules: unused, [`Access::Read`]).
    pub access: Access,
    /// `O_CREAT` allowed.
    pub create: bool,
    /// Mode bits a created file may get at most.
    pub mode: u32,
    /// Types that may be handed out.
    pub types: FileTypes,
    /// Symlinks may be followed (never out of the root).
    pub follow_symlinks: bool,
    /// The directory opened at start-up that requests resolve from
    /// (allow rules only).
    pub root: Option<RootId>,
    /// 1-based line of the rule in the policy file.
    pub line: usize,
    /// Position of the rule among the file's rules of the same kind
    /// (`allow[0]`, `deny[2]`).
    pub ordinal: usize,
}

impl Rule {
    /// The rule's spelling in the policy file (`/srv/vm1/` for a subtree).
    pub fn display_path(&self) -> String {
        if self.subtree && self.path != "/" {
            format!("{}/", self.path)
        } else {
            self.path.clone()
        }
    }

    /// Short stable label for logs and the audit record: `allow[1] /srv/vm1/`.
    pub fn label(&self) -> String {
        let kind = match self.kind {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
        };
        format!("{kind}[{}] {}", self.ordinal, self.display_path())
    }
}

/// A `[[listen]]` socket: bound by the broker, inherited at `fd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub path: String,
    pub fd: i32,
    pub line: usize,
}

/// A `[[preopen]]` file: opened at start-up, inherited at `fd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub path: String,
    pub access: Access,
    pub fd: i32,
    pub line: usize,
}

/// `[sandbox] mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Every layer must apply, or the launch fails (default).
    #[default]
    Require,
    /// Apply what the kernel supports; log what was skipped.
    BestEffort,
    /// No confinement (debugging only).
    Off,
}

impl SandboxMode {
    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Require => "require",
            SandboxMode::BestEffort => "best-effort",
            SandboxMode::Off => "off",
        }
    }
}

/// A namespace the sandbox may unshare (`[sandbox] namespaces`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    User,
    Pid,
    Net,
    Ipc,
    Uts,
    Mount,
}

impl Namespace {
    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Pid => "pid",
            Namespace::Net => "net",
            Namespace::Ipc => "ipc",
            Namespace::Uts => "uts",
            Namespace::Mount => "mount",
        }
    }
}

/// The `[sandbox]` table, consumed by the sandbox crate.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SandboxPolicy {
    pub mode: SandboxMode,
    /// Drop to this user when the broker runs as root.
    pub user: Option<String>,
    /// Namespaces to unshare; `None` when the table does not say (the
    /// sandbox crate's default applies).
    pub namespaces: Option<Vec<Namespace>>,
}

/// What hangs off one path component in the rule index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    pub children: HashMap<Box<[u8]>, usize>,
    pub exact_allow: Option<RuleId>,
    pub exact_deny: Option<RuleId>,
    pub tree_allow: Option<RuleId>,
    pub tree_deny: Option<RuleId>,
}

/// A component trie over rule paths: a lookup costs one hash per request
/// path component, whatever the number of rules.
#[derive(Clone, Debug)]
pub(crate) struct RuleIndex {
    pub nodes: Vec<Node>,
}

impl Default for RuleIndex {
    fn default() -> Self {
        RuleIndex {
            nodes: vec![Node::default()],
        }
    }
}

impl RuleIndex {
    /// The node for `path` (absolute, normalised), created on demand.
    pub fn node_mut(&mut self, path: &str) -> &mut Node {
        let mut at = 0;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            let next = self.nodes.len();
            let child = *self.nodes[at]
                .children
                .entry(comp.as_bytes().into())
                .or_insert(next);
            if child == next {
                self.nodes.push(Node::default());
            }
            at = child;
        }
        &mut self.nodes[at]
    }
}

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Name of the file it came from (for messages).
    pub source: String,
    /// Errno for every policy denial.
    pub deny_errno: Errno,
    /// Every allow and deny rule, in file order.
    pub rules: Vec<Rule>,
    /// Distinct rule-root directories, in first-use order.
    pub roots: Vec<String>,
    pub listen: Vec<Listen>,
    pub preopen: Vec<Preopen>,
    pub sandbox: SandboxPolicy,
    pub(crate) index: RuleIndex,
}

impl Policy {
    /// The rule with this id.
    pub fn rule(&self, id: RuleId) -> &Rule {
        &self.rules[id.0]
    }

    /// The effective rules, one per line, as `openhook-broker check` prints
    /// them.
    pub fn describe(&self) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "policy {} (version 1): deny errno {} ({})",
            self.source,
            crate::policy::errno_name(self.deny_errno).unwrap_or("?"),
            self.deny_errno.get()
        );
        let _ = writeln!(
            out,
            "matching: any matching deny wins; otherwise the longest matching allow decides; no match is denied"
        );
        for r in &self.rules {
            let _ = write!(
                out,
                "{:<10} {:<8} {}",
                r.label().split(' ').next().unwrap_or(""),
                if r.subtree { "subtree" } else { "exact" },
                r.display_path()
            );
            if r.kind == RuleKind::Allow {
                let _ = write!(out, "  access={} types={}", r.access.as_str(), r.types);
                if r.create {
                    let _ = write!(out, " create mode<={:#o}", r.mode);
                }
                let _ = write!(
                    out,
                    " symlinks={}",
                    if r.follow_symlinks {
                        "follow-beneath-root"
                    } else {
                        "refused"
                    }
                );
                if let Some(root) = r.root {
                    let _ = write!(out, " root={}", self.roots[root.0]);
                }
            }
            let _ = writeln!(out, "  ({}:{})", self.source, r.line);
        }
        for l in &self.listen {
            let _ = writeln!(
                out,
                "listen     unix     {}  fd={}  ({}:{})",
                l.path, l.fd, self.source, l.line
            );
        }
        for p in &self.preopen {
            let _ = writeln!(
                out,
                "preopen    file     {}  access={} fd={}  ({}:{})",
                p.path,
                p.access.as_str(),
                p.fd,
                self.source,
                p.line
            );
        }
        let _ = write!(out, "sandbox    mode={}", self.sandbox.mode.as_str());
        if let Some(user) = &self.sandbox.user {
            let _ = write!(out, " user={user}");
        }
        match &self.sandbox.namespaces {
            Some(ns) => {
                let names: Vec<&str> = ns.iter().map(|n| n.as_str()).collect();
                let _ = writeln!(out, " namespaces=[{}]", names.join(","));
            }
            None => {
                let _ = writeln!(out, " namespaces=default");
            }
        }
        out
    }
}
