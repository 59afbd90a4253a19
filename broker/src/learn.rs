//! `openhook-broker learn`: run a program transparently under a policy that
//! allows everything, record every decision, then write a policy a person
//! can review and that runs the same command in enforcing mode.
//!
//! What the written policy holds ([`policy_text`], pure):
//! - an exact rule per file the program used, with the access it used
//!   (`w` only where a write-mode open happened, `create` only where
//!   `O_CREAT` was asked), the types it found, `follow_symlinks` where the
//!   name is a symlink;
//! - read-only subtree rules instead, for files read in system library and
//!   data directories (the loader's directories, `/usr/share/...`), never
//!   for `/`, `/tmp`, `/home`, `/root`, or a directory named on the
//!   command line;
//! - `deny_errno = "ENOENT"`: what the program probed and did not find
//!   (or what is not in the policy) looks absent, not forbidden;
//! - a comment on each rule saying which syscalls used it and how often.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::ambient::{self, AmbientError};
use crate::audit::{unescape_path, AuditLog, AuditRecord, Decision};
use crate::policy::flags::{O_ACCMODE, O_CREAT, O_RDONLY, O_RDWR, O_WRONLY};
use crate::policy::FileType;

/// The policy a learning run is served under: everything below `/`, any
/// type, symlinks followed (never out of `/`, never through magic links).
pub const PERMISSIVE_POLICY: &str = r#"version = 1
deny_errno = "ENOENT"
[[allow]]
path = "/"
access = "rw"
create = true
mode = 0o777
types = ["file", "dir", "char", "block", "fifo", "socket"]
follow_symlinks = true
"#;

/// Directories whose files a program reads as part of the system (shared
/// libraries, data): these become read-only subtree rules.
pub const SYSTEM_DIRS: &[&str] = &[
    "/lib/",
    "/lib64/",
    "/lib32/",
    "/usr/lib/",
    "/usr/lib64/",
    "/usr/lib32/",
    "/usr/local/lib/",
    "/usr/share/",
];

/// Never a subtree rule, whatever is read there.
pub const NEVER_SUBTREE: &[&str] = &[
    "/", "/tmp", "/var/tmp", "/home", "/root", "/dev", "/proc", "/sys", "/run",
];

/// What the run did with one path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Use {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    /// Syscall name → count.
    pub calls: BTreeMap<String, usize>,
}

pub use crate::resolve::Found;

/// Folds audit records into per-path uses (allowed and failed requests
/// alike: a failed create still says where the program writes).
pub fn uses(records: &[AuditRecord]) -> BTreeMap<Vec<u8>, Use> {
    let mut out: BTreeMap<Vec<u8>, Use> = BTreeMap::new();
    for r in records {
        if r.decision == Decision::Deny {
            continue;
        }
        let Some(path) = unescape_path(&r.path) else {
            continue;
        };
        if path.is_empty() || path[0] != b'/' {
            continue;
        }
        let u = out.entry(path).or_default();
        match r.flags & O_ACCMODE {
            O_RDONLY => u.read = true,
            O_WRONLY => u.write = true,
            O_RDWR => {
                u.read = true;
                u.write = true;
            }
            _ => {}
        }
        u.create |= r.flags & O_CREAT != 0;
        let name = r.syscall.clone().unwrap_or_else(|| "hook".into());
        *u.calls.entry(name).or_default() += 1;
    }
    // A failed open that created nothing and found nothing (ENOENT) needs
    // no rule: with deny_errno ENOENT it fails the same way when enforced.
    out
}

/// The subtree directory a read-only file falls under, if any (pure).
pub fn subtree_for(path: &str, command_dirs: &BTreeSet<String>) -> Option<String> {
    let parent = &path[..path.rfind('/')?];
    if parent.is_empty() || NEVER_SUBTREE.contains(&parent) || command_dirs.contains(parent) {
        return None;
    }
    let dir = format!("{parent}/");
    SYSTEM_DIRS
        .iter()
        .any(|s| dir.starts_with(s))
        .then_some(dir)
}

/// Directories of the paths named on the command line (as whole
/// arguments or as `key=value` values inside QEMU-style option lists).
pub fn command_dirs(argv: &[OsString]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for a in argv {
        let a = a.to_string_lossy();
        for part in a.split(',') {
            let v = part.split_once('=').map_or(part, |(_, v)| v);
            if let Some(i) = v.rfind('/') {
                if v.starts_with('/') && i > 0 {
                    out.insert(v[..i].to_string());
                }
            }
        }
    }
    out
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn types_list(types: &BTreeSet<&'static str>) -> String {
    let v: Vec<String> = types.iter().map(|t| quote(t)).collect();
    format!("[{}]", v.join(", "))
}

fn calls_comment(calls: &BTreeMap<String, usize>) -> String {
    let v: Vec<String> = calls.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    v.join(", ")
}

/// `s` as TOML comment text: TOML allows no control character but tab in
/// a comment (and a newline would end it), so each is written `\xHH`.
fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                format!("\\x{:02x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A subtree rule being built: types seen, paths, syscall counts.
type Tree = (BTreeSet<&'static str>, usize, BTreeMap<String, usize>);

/// The policy text (pure): `uses` with what the filesystem says about each
/// path (`found`), `argv` for the header and for the directories that must
/// never become subtrees. Returns the text and the number of rules.
pub fn policy_text(
    uses: &BTreeMap<Vec<u8>, Use>,
    found: &BTreeMap<Vec<u8>, Found>,
    argv: &[OsString],
) -> (String, usize) {
    let plan = Plan::new(uses, found, &command_dirs(argv));
    let mut out = header(argv);
    let mut n = 0;
    for (dir, tree) in &plan.trees {
        n += 1;
        write_tree(&mut out, dir, tree);
    }
    for (path, u, f) in &plan.exact {
        // A subtree already covers it (read-only file in a covered dir).
        if !u.write && !u.create && plan.trees.keys().any(|d| path.starts_with(d.as_str())) {
            continue;
        }
        n += 1;
        write_exact(&mut out, path, u, *f);
    }
    for p in &plan.leaves_dir {
        tracing::warn!("learn: {p} is a symlink out of its directory: its rule cannot follow it");
    }
    write_not_covered(
        &mut out,
        "# NOT COVERED: these are symlinks to files outside their own directory;\n\
         # a rule follows symlinks only beneath its root, so under this policy they\n\
         # fail (EXDEV). Name the target instead, or add a rule covering both:",
        &plan.leaves_dir,
    );
    write_not_covered(
        &mut out,
        "# NOT COVERED: a rule for these would cover everything beneath them\n\
         # (a path ending in / is a subtree); under this policy they fail as absent:",
        &plan.not_exact,
    );
    for p in &plan.not_utf8 {
        tracing::warn!("learn: {p} is not UTF-8: no policy rule can name it");
    }
    write_not_covered(
        &mut out,
        "# NOT COVERED: the program used these paths, but policy paths are UTF-8\n\
         # (bytes that are not are shown as \\xHH); under this policy they fail as absent:",
        &plan.not_utf8,
    );
    let _ = writeln!(out, "[sandbox]\nmode = \"require\"");
    (out, n)
}

/// The comment header, version and deny errno.
fn header(argv: &[OsString]) -> String {
    let mut out = String::new();
    let cmd: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let _ = writeln!(out, "# Written by `openhook-broker learn` from one run of:");
    let _ = writeln!(out, "#   {}", comment_safe(&cmd.join(" ")));
    let _ = writeln!(
        out,
        "# Review every rule before use. Run it with:\n#   openhook-broker --policy THIS --transparent -- PROGRAM ARGS"
    );
    let _ = writeln!(out, "version = 1");
    let _ = writeln!(
        out,
        "# What the program probed and did not find, or anything outside this\n# policy, fails as if absent."
    );
    let _ = writeln!(out, "deny_errno = \"ENOENT\"\n");
    out
}

/// Where each used path goes in the policy.
struct Plan<'u> {
    /// Read-only files in system directories, grouped into subtrees.
    trees: BTreeMap<String, Tree>,
    exact: Vec<(String, &'u Use, Found)>,
    /// A policy names paths as TOML strings, which are UTF-8: other paths
    /// cannot get a rule, and are listed instead of silently left out.
    not_utf8: Vec<String>,
    /// A policy path ending in `/` names everything beneath it: `/` itself
    /// (which programs stat, Python's start-up for one) can have no exact
    /// rule, and a rule for it would open every directory of the host.
    not_exact: Vec<String>,
    /// Symlinks leading out of their own directory: their rule is written,
    /// but symlinks are followed only beneath a rule's root (for an exact
    /// rule, the name's directory), so it cannot open them.
    leaves_dir: Vec<String>,
}

impl<'u> Plan<'u> {
    fn new(
        uses: &'u BTreeMap<Vec<u8>, Use>,
        found: &BTreeMap<Vec<u8>, Found>,
        dirs: &BTreeSet<String>,
    ) -> Self {
        let mut plan = Plan {
            trees: BTreeMap::new(),
            exact: Vec::new(),
            not_utf8: Vec::new(),
            not_exact: Vec::new(),
            leaves_dir: Vec::new(),
        };
        for (path, u) in uses {
            let Ok(p) = std::str::from_utf8(path) else {
                plan.not_utf8.push(crate::audit::escape_path(path));
                continue;
            };
            let f = found.get(path).copied().unwrap_or_default();
            if f.ftype.is_none() && !f.symlink && !u.create {
                continue;
            }
            if p.ends_with('/') {
                plan.not_exact.push(p.to_string());
                continue;
            }
            if f.leaves_dir {
                plan.leaves_dir.push(p.to_string());
            }
            let read_only = !u.write && !u.create;
            match (read_only, subtree_for(p, dirs)) {
                (true, Some(dir)) => {
                    let e = plan.trees.entry(dir).or_default();
                    e.0.insert(f.ftype.map_or("file", FileType::as_str));
                    e.0.insert("dir");
                    e.1 += 1;
                    for (k, n) in &u.calls {
                        *e.2.entry(k.clone()).or_default() += n;
                    }
                }
                _ => plan.exact.push((p.to_string(), u, f)),
            }
        }
        plan
    }
}

fn write_tree(out: &mut String, dir: &str, (types, files, calls): &Tree) {
    let _ = writeln!(
        out,
        "# System directory: {files} path(s) read beneath it ({}).",
        calls_comment(calls)
    );
    let _ = writeln!(out, "[[allow]]\npath = {}", quote(dir));
    let _ = writeln!(out, "access = \"r\"");
    let _ = writeln!(out, "types = {}", types_list(types));
    let _ = writeln!(out, "follow_symlinks = true\n");
}

fn write_exact(out: &mut String, path: &str, u: &Use, f: Found) {
    let access = match (u.read, u.write) {
        (_, false) => "r",
        (false, true) => "w",
        (true, true) => "rw",
    };
    let why = if u.write { "written" } else { "read" };
    let _ = writeln!(out, "# {why}: {}", calls_comment(&u.calls));
    let _ = writeln!(out, "[[allow]]\npath = {}", quote(path));
    let _ = writeln!(out, "access = \"{access}\"");
    let mut types = BTreeSet::new();
    types.insert(f.ftype.map_or("file", FileType::as_str));
    if u.create {
        // The parser requires it: O_CREAT makes regular files (a bound
        // socket is created too, and needs "socket" beside it).
        types.insert("file");
    }
    let _ = writeln!(out, "types = {}", types_list(&types));
    if u.create {
        let _ = writeln!(out, "create = true\nmode = 0o644");
    }
    if f.symlink {
        let _ = writeln!(out, "follow_symlinks = true");
    }
    out.push('\n');
}

/// A comment block listing `paths` under `title` (nothing when empty).
fn write_not_covered(out: &mut String, title: &str, paths: &[String]) {
    if paths.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    for p in paths {
        let _ = writeln!(out, "#   {}", comment_safe(p));
    }
    out.push('\n');
}

/// A learning run's records: kept in a memfd (the broker may not open
/// files once confined), copied to `--audit-log` at the end; the output
/// file and `/` are opened before the run for the same reason.
pub struct Recording {
    log: AuditLog,
    memfd: OwnedFd,
    audit: Option<AuditLog>,
    root: OwnedFd,
}

/// Why learning could not finish.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error(transparent)]
    Open(#[from] AmbientError),
    #[error("learn: {0}")]
    Io(#[from] std::io::Error),
}

impl Recording {
    /// Opens the record memfd, `/` and `--audit-log`.
    pub fn new(audit: Option<&Path>) -> Result<Self, LearnError> {
        let memfd = rustix::fs::memfd_create("openhook-learn", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(std::io::Error::from)?;
        let log = AuditLog::new(File::from(memfd.try_clone()?));
        let audit = audit.map(ambient::open_audit_log).transpose()?;
        let root = ambient::open_root_dir().map_err(std::io::Error::from)?;
        Ok(Self {
            log,
            memfd,
            audit,
            root,
        })
    }

    /// The log the run writes to.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    fn records(&self) -> Result<Vec<AuditRecord>, LearnError> {
        let mut bytes = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut at = 0u64;
        loop {
            let n = rustix::io::pread(&self.memfd, &mut buf, at).map_err(std::io::Error::from)?;
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Ok(bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }

    fn found(&self, path: &[u8]) -> Found {
        let rel = if path == b"/" { &b"."[..] } else { &path[1..] };
        crate::resolve::examine(self.root.as_fd(), rel)
    }

    /// Writes the policy to `output` (opened by the caller before the run).
    pub fn write_policy(&self, output: &mut File, argv: &[OsString]) -> Result<usize, LearnError> {
        let records = self.records()?;
        if let Some(a) = &self.audit {
            for r in &records {
                a.write(r)?;
            }
        }
        let uses = uses(&records);
        let found = uses.keys().map(|p| (p.clone(), self.found(p))).collect();
        let (text, n) = policy_text(&uses, &found, argv);
        output.write_all(text.as_bytes())?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, flags: u32, syscall: &str, decision: Decision) -> AuditRecord {
        AuditRecord {
            ts: 0.0,
            pid: 1,
            path: path.into(),
            flags,
            mode: 0,
            decision,
            errno: 0,
            rule: None,
            reason: String::new(),
            syscall: Some(syscall.into()),
        }
    }

    fn found(ftype: FileType) -> Found {
        Found {
            ftype: Some(ftype),
            symlink: false,
            leaves_dir: false,
        }
    }

    #[test]
    fn symlinks_out_of_their_directory_are_named() {
        let records = vec![rec("/etc/localtime", O_RDONLY, "openat", Decision::Allow)];
        let u = uses(&records);
        let mut f = BTreeMap::new();
        f.insert(
            b"/etc/localtime".to_vec(),
            Found {
                ftype: Some(FileType::File),
                symlink: true,
                leaves_dir: true,
            },
        );
        let (text, _) = policy_text(&u, &f, &[OsString::from("prog")]);
        crate::policy::parse(&text, "learned").expect("the learned policy parses");
        assert!(
            text.contains("symlinks to files outside their own directory")
                && text.contains("#   /etc/localtime\n"),
            "{text}"
        );
    }

    #[test]
    fn the_root_directory_gets_no_rule() {
        // Python's start-up stats `/`: an "exact" rule for it would be the
        // subtree rule for the whole host.
        let records = vec![
            rec("/", O_RDONLY, "newfstatat", Decision::Allow),
            rec("/tmp/t/data", O_RDONLY, "openat", Decision::Allow),
        ];
        let u = uses(&records);
        let mut f = BTreeMap::new();
        f.insert(b"/".to_vec(), found(FileType::Dir));
        f.insert(b"/tmp/t/data".to_vec(), found(FileType::File));
        let (text, n) = policy_text(&u, &f, &[OsString::from("prog")]);
        let p = crate::policy::parse(&text, "learned").expect("the learned policy parses");
        assert_eq!(n, 1, "{text}");
        assert_eq!(p.rules.len(), 1);
        assert!(p
            .rules
            .iter()
            .all(|r| r.path != "/" && r.path != "/tmp/t/data/"));
        assert!(text.contains("# NOT COVERED: a rule for these") && text.contains("#   /\n"));
    }

    #[test]
    fn odd_bytes_never_make_an_invalid_policy() {
        // Control characters and quotes in names and arguments, and a name
        // that is not UTF-8 (written `\xff` in the audit log).
        let odd = "/tmp/t/we\"ird\r\u{1}\nname";
        let records = vec![
            rec(odd, O_RDONLY, "openat", Decision::Allow),
            rec("/tmp/t/bad\\xffname", O_RDONLY, "openat", Decision::Allow),
        ];
        let u = uses(&records);
        let mut f = BTreeMap::new();
        f.insert(odd.as_bytes().to_vec(), found(FileType::File));
        f.insert(b"/tmp/t/bad\xffname".to_vec(), found(FileType::File));
        let argv: Vec<OsString> = ["prog", odd, "--x=\u{7f}\u{1b}[2J"]
            .iter()
            .map(OsString::from)
            .collect();
        let (text, n) = policy_text(&u, &f, &argv);
        let p = crate::policy::parse(&text, "learned").expect("the learned policy parses");
        assert_eq!(n, 1, "{text}");
        assert_eq!(p.rules[0].path, odd);
        assert!(
            text.contains("# NOT COVERED") && text.contains("#   /tmp/t/bad\\xffname\n"),
            "the non-UTF-8 path is listed: {text}"
        );
        assert!(text.contains("\\x0d\\x01\\x0aname"), "{text}");
    }

    #[test]
    fn system_reads_become_subtrees_and_data_stays_exact() {
        let records = vec![
            rec(
                "/lib/x86_64-linux-gnu/libc.so.6",
                O_RDONLY,
                "openat",
                Decision::Allow,
            ),
            rec(
                "/lib/x86_64-linux-gnu/libz.so.1",
                O_RDONLY,
                "openat",
                Decision::Allow,
            ),
            rec(
                "/usr/share/qemu/bios.bin",
                O_RDONLY,
                "openat",
                Decision::Allow,
            ),
            rec("/tmp/t/disk.img", O_RDWR, "openat", Decision::Allow),
            rec("/tmp/t/fw.bin", O_RDONLY, "openat", Decision::Allow),
            rec("/tmp/t/new", O_WRONLY | O_CREAT, "openat", Decision::Allow),
            rec("/dev/kvm", O_RDWR, "openat", Decision::Allow),
            rec("/dev/sgx_vepc", O_RDWR, "openat", Decision::Error),
            rec("/etc/shadow", O_RDONLY, "openat", Decision::Deny),
        ];
        let u = uses(&records);
        let mut f = BTreeMap::new();
        for p in [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libz.so.1",
            "/usr/share/qemu/bios.bin",
            "/tmp/t/disk.img",
            "/tmp/t/fw.bin",
            "/tmp/t/new",
        ] {
            f.insert(p.as_bytes().to_vec(), found(FileType::File));
        }
        f.insert(b"/dev/kvm".to_vec(), found(FileType::Char));
        let argv: Vec<OsString> = ["qemu", "-drive", "file=/tmp/t/disk.img,format=raw"]
            .iter()
            .map(OsString::from)
            .collect();
        let (text, n) = policy_text(&u, &f, &argv);
        let p = crate::policy::parse(&text, "learned").expect("the learned policy parses");
        assert_eq!(p.rules.len(), n);
        assert!(text.contains("path = \"/lib/x86_64-linux-gnu/\""), "{text}");
        assert!(text.contains("path = \"/usr/share/qemu/\""), "{text}");
        assert!(
            text.contains("path = \"/tmp/t/disk.img\"\naccess = \"rw\""),
            "{text}"
        );
        assert!(
            text.contains("path = \"/tmp/t/fw.bin\"\naccess = \"r\""),
            "{text}"
        );
        assert!(
            text.contains("path = \"/tmp/t/new\"\naccess = \"w\""),
            "{text}"
        );
        assert!(
            text.contains("path = \"/dev/kvm\"\naccess = \"rw\"\ntypes = [\"char\"]"),
            "{text}"
        );
        assert!(
            !text.contains("sgx_vepc"),
            "absent files need no rule: {text}"
        );
        assert!(!text.contains("shadow"), "{text}");
        for r in &p.rules {
            assert!(
                !(r.subtree && ["/", "/tmp", "/tmp/t"].contains(&r.path.as_str())),
                "subtree rule for {}",
                r.path
            );
        }
    }

    #[test]
    fn never_subtrees() {
        let none = BTreeSet::new();
        assert_eq!(subtree_for("/tmp/x", &none), None);
        assert_eq!(subtree_for("/x", &none), None);
        assert_eq!(subtree_for("/root/.qemu/x", &none), None);
        assert_eq!(
            subtree_for("/usr/share/qemu/x", &none),
            Some("/usr/share/qemu/".into())
        );
        let dirs: BTreeSet<String> = ["/usr/share/qemu".to_string()].into();
        assert_eq!(subtree_for("/usr/share/qemu/x", &dirs), None);
        let argv: Vec<OsString> = ["-bios", "/srv/a/fw.bin", "-drive", "id=d,file=/srv/b/d.img"]
            .iter()
            .map(OsString::from)
            .collect();
        let d = command_dirs(&argv);
        assert!(d.contains("/srv/a") && d.contains("/srv/b"), "{d:?}");
    }
}
