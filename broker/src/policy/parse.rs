//! Policy text → validated [`Policy`]. Syntax goes through serde structs
//! that keep spans (`toml::Spanned`) and refuse unknown keys; the semantic
//! checks then turn spans into `file:line:col` messages.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use openhook_wire::Errno;
use serde::Deserialize;
use toml::Spanned;

use super::decide::MAX_PATH;
use super::model::{
    Access, FileType, FileTypes, Listen, Namespace, Policy, Preopen, RootId, Rule, RuleIndex,
    RuleKind, SandboxMode, SandboxPolicy,
};

/// A policy file error, displayed as `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct PolicyError {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    pub message: String,
}

/// Lowest fd number a `[[listen]]`/`[[preopen]]` entry may use.
pub const MIN_DECLARED_FD: i32 = 3;
/// Highest fd number a `[[listen]]`/`[[preopen]]` entry may use.
pub const MAX_DECLARED_FD: i32 = 65_535;
/// Longest unix socket path (`sun_path` less its NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// Default creation-mode clamp for `create = true` rules without `mode`.
pub const DEFAULT_CREATE_MODE: u32 = 0o600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Option<Spanned<i64>>,
    deny_errno: Option<Spanned<toml::Value>>,
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    deny: Vec<Spanned<RawDeny>>,
    #[serde(default)]
    listen: Vec<Spanned<RawListen>>,
    #[serde(default)]
    preopen: Vec<Spanned<RawPreopen>>,
    sandbox: Option<RawSandbox>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    path: Spanned<String>,
    access: Option<Access>,
    create: Option<Spanned<bool>>,
    mode: Option<Spanned<i64>>,
    types: Option<Spanned<Vec<FileType>>>,
    follow_symlinks: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeny {
    path: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    path: Spanned<String>,
    fd: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreopen {
    path: Spanned<String>,
    access: Option<Access>,
    fd: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSandbox {
    mode: Option<SandboxMode>,
    user: Option<Spanned<String>>,
    namespaces: Option<Vec<Namespace>>,
}

/// Maps byte offsets to `line:col` (line starts are indexed once: a
/// 10,000-rule policy asks for a line per rule).
struct Locator<'a> {
    text: &'a str,
    file: &'a str,
    /// Byte offset of each line's start (u32: policies are far below 4 GiB).
    line_starts: Vec<u32>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str, file: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
        Locator {
            text,
            file,
            line_starts,
        }
    }

    fn at(&self, offset: usize, message: impl Into<String>) -> PolicyError {
        let offset = offset.min(self.text.len());
        // Back up to a char boundary so slicing cannot panic.
        let mut offset = offset;
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        // The last line start at or before `offset` (index 0 is always 0).
        let line = self
            .line_starts
            .partition_point(|&s| usize::try_from(s).is_ok_and(|s| s <= offset));
        let line_start = usize::try_from(self.line_starts[line - 1]).unwrap_or(0);
        let col = self.text[line_start..offset].chars().count() + 1;
        PolicyError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
        }
    }

    fn span(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        self.at(span.start, message)
    }

    fn line(&self, offset: usize) -> usize {
        self.at(offset, "").line
    }
}

/// Checks a rule path; returns (normalised path, subtree).
fn rule_path(p: &str) -> Result<(String, bool), String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    if !p.starts_with('/') {
        return Err(format!("rule path {p:?} is not absolute"));
    }
    if p.contains('\0') {
        return Err("rule path contains a NUL byte".into());
    }
    if p.len() > MAX_PATH {
        return Err(format!("rule path is longer than {MAX_PATH} bytes"));
    }
    let subtree = p.ends_with('/');
    let trimmed = if p == "/" {
        ""
    } else {
        p.trim_end_matches('/')
    };
    if subtree && trimmed.len() + 1 != p.len() {
        return Err(format!("rule path {p:?} has an empty component"));
    }
    for comp in trimmed.split('/').skip(1) {
        match comp {
            "" => return Err(format!("rule path {p:?} has an empty component")),
            "." | ".." => return Err(format!("rule path {p:?} has a `.` or `..` component")),
            _ => {}
        }
    }
    let norm = if trimmed.is_empty() { "/" } else { trimmed };
    Ok((norm.to_string(), subtree || norm == "/"))
}

/// Checks a `[[listen]]`/`[[preopen]]` path.
fn file_path(p: &str) -> Result<(), String> {
    let (_, subtree) = rule_path(p)?;
    if subtree {
        return Err(format!("path {p:?} names a directory (trailing slash)"));
    }
    Ok(())
}

/// Parent directory of a normalised absolute path (`/` for `/x`).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn errno_value(v: &toml::Value) -> Result<Errno, String> {
    match v {
        toml::Value::String(name) => super::errno_from_name(name).ok_or_else(|| {
            format!("unknown errno name {name:?} (use a name like \"EACCES\" or a number)")
        }),
        toml::Value::Integer(n) => i32::try_from(*n)
            .ok()
            .and_then(Errno::new)
            .ok_or_else(|| format!("errno {n} is out of range 1..={}", Errno::MAX)),
        _ => Err("deny_errno must be an errno name or a number".into()),
    }
}

/// Parses and validates policy text. `file_name` only labels messages.
pub fn parse(text: &str, file_name: &str) -> Result<Policy, PolicyError> {
    parse_batched(text, file_name, SECTIONS_PER_BATCH)
}

/// Array-table sections per batch when a large policy is parsed in batches
/// (see `sections`): about 256 KiB of parse tree at a time.
const SECTIONS_PER_BATCH: usize = 128;

/// [`parse`] with a chosen batch size; `usize::MAX` parses the document
/// whole. The result must not depend on `per_batch` (the `policy_toml` fuzz
/// target checks it).
#[doc(hidden)]
pub fn parse_batched(text: &str, file_name: &str, per_batch: usize) -> Result<Policy, PolicyError> {
    let loc = Locator::new(text, file_name);
    let raw = raw_policy(text, per_batch).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        loc.at(offset, e.message().trim_end().to_string())
    })?;
    validate(raw, &loc)
}

/// The syntax pass: in batches when the document allows it, otherwise (and
/// for the error of any failing batch) over the whole document.
fn raw_policy(text: &str, per_batch: usize) -> Result<RawPolicy, toml::de::Error> {
    let Some(batches) = super::sections::batches(text, per_batch) else {
        return toml::from_str(text);
    };
    let mut buf = Vec::new();
    let mut all: Option<RawPolicy> = None;
    for batch in batches {
        batch.text(text, &mut buf);
        let Ok(batch_text) = String::from_utf8(std::mem::take(&mut buf)) else {
            return toml::from_str(text);
        };
        let part = toml::from_str::<RawPolicy>(&batch_text);
        buf = batch_text.into_bytes();
        let Ok(part) = part else {
            return toml::from_str(text);
        };
        match &mut all {
            None => all = Some(part),
            Some(all) => {
                all.allow.extend(part.allow);
                all.deny.extend(part.deny);
                all.listen.extend(part.listen);
                all.preopen.extend(part.preopen);
            }
        }
    }
    all.map_or_else(|| toml::from_str(text), Ok)
}

/// The semantic pass, section by section, in file order: the first error
/// found is the one reported.
fn validate(raw: RawPolicy, loc: &Locator<'_>) -> Result<Policy, PolicyError> {
    check_version(raw.version.as_ref(), loc)?;
    let deny_errno = deny_errno(raw.deny_errno.as_ref(), loc)?;
    let rules = RuleSet::build(&raw.allow, &raw.deny, loc)?;
    rules.check_follow_symlinks_against_denies(loc)?;
    let mut fds = DeclaredFds::default();
    let listen = listens(&raw.listen, &mut fds, loc)?;
    let preopen = preopens(&raw.preopen, &mut fds, loc)?;
    let sandbox = sandbox(raw.sandbox, loc)?;
    Ok(Policy {
        source: loc.file.to_string(),
        deny_errno,
        rules: rules.rules,
        roots: rules.roots,
        listen,
        preopen,
        sandbox,
        index: rules.index,
    })
}

/// `version = 1`, required.
fn check_version(version: Option<&Spanned<i64>>, loc: &Locator<'_>) -> Result<(), PolicyError> {
    let Some(version) = version else {
        return Err(loc.at(0, "missing `version = 1`"));
    };
    if *version.get_ref() != 1 {
        return Err(loc.span(
            version.span(),
            format!(
                "unsupported policy version {} (this broker reads version 1)",
                version.get_ref()
            ),
        ));
    }
    Ok(())
}

/// `deny_errno`, `EACCES` by default.
fn deny_errno(v: Option<&Spanned<toml::Value>>, loc: &Locator<'_>) -> Result<Errno, PolicyError> {
    match v {
        None => Ok(Errno::EACCES),
        Some(v) => errno_value(v.get_ref()).map_err(|m| loc.span(v.span(), m)),
    }
}

/// One `[[allow]]` or `[[deny]]` entry, as read.
enum RawRule<'r> {
    Allow(&'r RawAllow),
    Deny(&'r RawDeny),
}

/// The validated rules, their roots and lookup index, and what the
/// follow_symlinks check needs.
#[derive(Default)]
struct RuleSet {
    rules: Vec<Rule>,
    roots: Vec<String>,
    root_ids: HashMap<String, RootId>,
    index: RuleIndex,
    /// (is allow, path, subtree) → line of its first rule.
    first_line: HashMap<(bool, String, bool), usize>,
    /// Deny rules to check against follow_symlinks roots: (path, offset).
    deny_paths: Vec<(String, usize)>,
    /// Roots resolved with follow_symlinks → line of the first such rule.
    follow_roots: HashMap<String, usize>,
}

impl RuleSet {
    /// Validates the rules in file order (allow and deny arrays
    /// interleaved by position).
    fn build(
        allow: &[Spanned<RawAllow>],
        deny: &[Spanned<RawDeny>],
        loc: &Locator<'_>,
    ) -> Result<RuleSet, PolicyError> {
        let mut raw_rules: Vec<(usize, usize, RawRule<'_>)> = Vec::new();
        for (i, a) in allow.iter().enumerate() {
            raw_rules.push((
                a.get_ref().path.span().start,
                i,
                RawRule::Allow(a.get_ref()),
            ));
        }
        for (i, d) in deny.iter().enumerate() {
            raw_rules.push((d.get_ref().path.span().start, i, RawRule::Deny(d.get_ref())));
        }
        raw_rules.sort_by_key(|r| r.0);
        let mut set = RuleSet {
            rules: Vec::with_capacity(raw_rules.len()),
            ..RuleSet::default()
        };
        for (offset, ordinal, r) in raw_rules {
            set.add(offset, ordinal, &r, loc)?;
        }
        Ok(set)
    }

    /// Checks and adds one rule.
    fn add(
        &mut self,
        offset: usize,
        ordinal: usize,
        r: &RawRule<'_>,
        loc: &Locator<'_>,
    ) -> Result<(), PolicyError> {
        let line = loc.line(offset);
        let (path_spanned, kind) = match r {
            RawRule::Allow(a) => (&a.path, RuleKind::Allow),
            RawRule::Deny(d) => (&d.path, RuleKind::Deny),
        };
        let (path, subtree) =
            rule_path(path_spanned.get_ref()).map_err(|m| loc.span(path_spanned.span(), m))?;
        let key = (kind == RuleKind::Allow, path.clone(), subtree);
        if let Some(first) = self.first_line.get(&key) {
            return Err(loc.span(
                path_spanned.span(),
                format!(
                    "duplicate rule for {} (first at line {first})",
                    path_spanned.get_ref()
                ),
            ));
        }
        self.first_line.insert(key, line);
        let id = super::model::RuleId(self.rules.len());
        let at = RulePlace {
            id,
            line,
            ordinal,
            subtree,
        };
        let rule = match r {
            RawRule::Deny(_) => self.deny_rule(path, offset, at),
            RawRule::Allow(a) => self.allow_rule(a, path, offset, at, loc)?,
        };
        self.rules.push(rule);
        Ok(())
    }

    fn deny_rule(&mut self, path: String, offset: usize, at: RulePlace) -> Rule {
        self.deny_paths.push((path.clone(), offset));
        let node = self.index.node_mut(&path);
        if at.subtree {
            node.tree_deny = Some(at.id);
        } else {
            node.exact_deny = Some(at.id);
        }
        Rule {
            kind: RuleKind::Deny,
            path,
            subtree: at.subtree,
            access: Access::Read,
            create: false,
            mode: 0,
            types: FileTypes::default(),
            follow_symlinks: false,
            root: None,
            line: at.line,
            ordinal: at.ordinal,
        }
    }

    fn allow_rule(
        &mut self,
        a: &RawAllow,
        path: String,
        offset: usize,
        at: RulePlace,
        loc: &Locator<'_>,
    ) -> Result<Rule, PolicyError> {
        let checked = AllowFields::check(a, offset, loc)?;
        let root_path = if at.subtree {
            path.clone()
        } else {
            parent(&path).to_string()
        };
        if checked.follow_symlinks {
            self.follow_roots
                .entry(root_path.clone())
                .or_insert(at.line);
        }
        let root = self.root(root_path);
        let node = self.index.node_mut(&path);
        if at.subtree {
            node.tree_allow = Some(at.id);
        } else {
            node.exact_allow = Some(at.id);
        }
        Ok(Rule {
            kind: RuleKind::Allow,
            path,
            subtree: at.subtree,
            access: checked.access,
            create: checked.create,
            mode: if checked.create { checked.mode } else { 0 },
            types: checked.types,
            follow_symlinks: checked.follow_symlinks,
            root: Some(root),
            line: at.line,
            ordinal: at.ordinal,
        })
    }

    /// The id of the root at `root_path`, added on first use.
    fn root(&mut self, root_path: String) -> RootId {
        let roots = &mut self.roots;
        *self.root_ids.entry(root_path.clone()).or_insert_with(|| {
            roots.push(root_path);
            RootId(roots.len() - 1)
        })
    }

    /// A symlink inside a followed root could point into a deny rule's
    /// path, so the pairing is refused rather than silently weakened.
    fn check_follow_symlinks_against_denies(&self, loc: &Locator<'_>) -> Result<(), PolicyError> {
        if self.follow_roots.is_empty() {
            return Ok(());
        }
        for (deny, offset) in &self.deny_paths {
            let mut p = deny.as_str();
            loop {
                if let Some(line) = self.follow_roots.get(p) {
                    return Err(loc.at(
                        *offset,
                        format!(
                            "deny rule {deny} lies under {p}, which an allow rule at line {line} resolves with follow_symlinks = true; a symlink there could reach the denied path (set follow_symlinks = false)"
                        ),
                    ));
                }
                if p == "/" {
                    break;
                }
                p = parent(p);
            }
        }
        Ok(())
    }
}

/// Where a rule sits: its id, line, position in its array, and whether it
/// names a subtree.
#[derive(Clone, Copy)]
struct RulePlace {
    id: super::model::RuleId,
    line: usize,
    ordinal: usize,
    subtree: bool,
}

/// An `[[allow]]` entry's own fields, checked.
struct AllowFields {
    access: Access,
    types: FileTypes,
    create: bool,
    mode: u32,
    follow_symlinks: bool,
}

impl AllowFields {
    fn check(a: &RawAllow, offset: usize, loc: &Locator<'_>) -> Result<Self, PolicyError> {
        let access = a.access.unwrap_or(Access::Read);
        let types = match &a.types {
            None => FileTypes::FILE_ONLY,
            Some(t) => {
                if t.get_ref().is_empty() {
                    return Err(loc.span(t.span(), "types must not be empty"));
                }
                t.get_ref().iter().copied().collect()
            }
        };
        let create = a.create.as_ref().is_some_and(|c| *c.get_ref());
        if create {
            let span = a.create.as_ref().map_or(offset..offset, Spanned::span);
            if !access.can_write() {
                return Err(loc.span(span, "create = true needs access \"w\" or \"rw\""));
            }
            if !types.contains(FileType::File) {
                return Err(loc.span(
                    span,
                    "create = true needs \"file\" in types (O_CREAT makes regular files)",
                ));
            }
        }
        let mode = match &a.mode {
            None => DEFAULT_CREATE_MODE,
            Some(m) => {
                if !create {
                    return Err(loc.span(m.span(), "mode needs create = true"));
                }
                match u32::try_from(*m.get_ref()) {
                    Ok(v @ 0..=0o777) => v,
                    _ => {
                        return Err(loc.span(
                            m.span(),
                            format!("mode {:#o} is out of range 0..=0o777", m.get_ref()),
                        ))
                    }
                }
            }
        };
        Ok(AllowFields {
            access,
            types,
            create,
            mode,
            follow_symlinks: a.follow_symlinks.unwrap_or(false),
        })
    }
}

/// The fd numbers `[[listen]]` and `[[preopen]]` declare: each in range
/// and used once.
#[derive(Default)]
struct DeclaredFds(HashMap<i64, usize>);

impl DeclaredFds {
    fn check(
        &mut self,
        fd: &Spanned<i64>,
        line: usize,
        loc: &Locator<'_>,
    ) -> Result<i32, PolicyError> {
        let n = *fd.get_ref();
        let v = i32::try_from(n)
            .ok()
            .filter(|v| (MIN_DECLARED_FD..=MAX_DECLARED_FD).contains(v))
            .ok_or_else(|| {
                loc.span(
                    fd.span(),
                    format!("fd {n} is out of range {MIN_DECLARED_FD}..={MAX_DECLARED_FD}"),
                )
            })?;
        if let Some(first) = self.0.insert(n, line) {
            return Err(loc.span(
                fd.span(),
                format!("fd {n} is already declared at line {first}"),
            ));
        }
        Ok(v)
    }
}

/// `[[listen]]` entries.
fn listens(
    raw: &[Spanned<RawListen>],
    fds: &mut DeclaredFds,
    loc: &Locator<'_>,
) -> Result<Vec<Listen>, PolicyError> {
    let mut listen = Vec::new();
    for l in raw {
        let l = l.get_ref();
        let line = loc.line(l.path.span().start);
        file_path(l.path.get_ref()).map_err(|m| loc.span(l.path.span(), m))?;
        if l.path.get_ref().len() > MAX_SOCKET_PATH {
            return Err(loc.span(
                l.path.span(),
                format!("socket path is longer than {MAX_SOCKET_PATH} bytes"),
            ));
        }
        let fd = fds.check(&l.fd, line, loc)?;
        listen.push(Listen {
            path: l.path.get_ref().clone(),
            fd,
            line,
        });
    }
    Ok(listen)
}

/// `[[preopen]]` entries.
fn preopens(
    raw: &[Spanned<RawPreopen>],
    fds: &mut DeclaredFds,
    loc: &Locator<'_>,
) -> Result<Vec<Preopen>, PolicyError> {
    let mut preopen = Vec::new();
    for p in raw {
        let p = p.get_ref();
        let line = loc.line(p.path.span().start);
        file_path(p.path.get_ref()).map_err(|m| loc.span(p.path.span(), m))?;
        let fd = fds.check(&p.fd, line, loc)?;
        preopen.push(Preopen {
            path: p.path.get_ref().clone(),
            access: p.access.unwrap_or(Access::Read),
            fd,
            line,
        });
    }
    Ok(preopen)
}

/// The `[sandbox]` table.
fn sandbox(raw: Option<RawSandbox>, loc: &Locator<'_>) -> Result<SandboxPolicy, PolicyError> {
    let Some(s) = raw else {
        return Ok(SandboxPolicy::default());
    };
    if let Some(u) = &s.user {
        if u.get_ref().is_empty() || u.get_ref().contains(['\0', ':', '/']) {
            return Err(loc.span(u.span(), "user must be a user name or number"));
        }
    }
    let namespaces = s.namespaces.map(|ns| {
        let mut seen = HashSet::new();
        ns.into_iter().filter(|n| seen.insert(*n)).collect()
    });
    Ok(SandboxPolicy {
        mode: s.mode.unwrap_or_default(),
        user: s.user.map(Spanned::into_inner),
        namespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        let e = parse(text, "p.toml").expect_err("policy must be refused");
        assert_eq!(
            e.to_string(),
            format!("p.toml:{}:{}: {}", e.line, e.col, e.message)
        );
        (e.line, e.col, e.message)
    }

    /// A large policy mixing every section kind, comments, multi-line
    /// values and a `[sandbox]` table in the middle.
    fn big_policy(n: usize, broken_at: Option<usize>) -> String {
        let mut s = String::from("# big\nversion = 1\ndeny_errno = \"ENOENT\"\n\n");
        for i in 0..n {
            if i == n / 2 {
                s.push_str("[sandbox]\nmode = \"off\" # here\n\n");
            }
            if Some(i) == broken_at {
                s.push_str("[[allow]]\npath = \"/srv/broken\"\naccess = \"rwx\"\n");
                continue;
            }
            match i % 5 {
                0 => s.push_str(&format!(
                    "[[allow]]\npath = \"/srv/d{i}/\"\naccess = \"rw\"\ncreate = true\ntypes = [\n  \"file\", # f\n  \"dir\",\n]\n\n"
                )),
                1 => s.push_str(&format!("  [[deny]] # d\n  path = '/srv/d{}/x'\n", i - 1)),
                2 => s.push_str(&format!(
                    "[[allow]]\npath = \"\"\"/srv/f{i}\"\"\"\n# [[allow]] in a comment\n"
                )),
                3 => s.push_str(&format!("[[listen]]\npath = \"/run/s{i}\"\nfd = {}\n", 10 + i)),
                _ => s.push_str(&format!(
                    "[[preopen]]\npath = \"/srv/p{i}\"\naccess = \"r\"\nfd = {}\n",
                    10 + i
                )),
            }
        }
        s
    }

    /// The policy as text, without the rule index: it is built from the
    /// rules, and its hash maps print in a random order.
    fn shown(p: &Result<Policy, PolicyError>) -> String {
        let s = format!("{p:?}");
        s.split(", index: RuleIndex")
            .next()
            .unwrap_or(&s)
            .to_string()
    }

    #[test]
    fn batched_parsing_gives_the_whole_document_result() {
        let text = big_policy(1_500, None);
        let whole = shown(&parse_batched(&text, "p.toml", usize::MAX));
        assert!(whole.starts_with("Ok("), "{whole}");
        assert!(super::super::sections::batches(&text, 7).is_some());
        for per_batch in [1, 7, 512] {
            let batched = shown(&parse_batched(&text, "p.toml", per_batch));
            assert!(batched == whole, "per_batch {per_batch} differs");
        }
        assert_eq!(shown(&parse(&text, "p.toml")), whole);
    }

    #[test]
    fn batched_parsing_reports_the_whole_document_error() {
        let text = big_policy(1_500, Some(1_201));
        let whole = parse_batched(&text, "p.toml", usize::MAX).expect_err("refused");
        assert!(whole.message.contains("rwx"), "{whole}");
        for per_batch in [1, 7, 512] {
            let e = parse_batched(&text, "p.toml", per_batch).expect_err("refused");
            assert_eq!(e, whole);
        }
    }

    fn assert_err(text: &str, line: usize, col: usize, needle: &str) {
        let (l, c, m) = err(text);
        assert_eq!((l, c), (line, col), "position for {needle:?}: {m}");
        assert!(m.contains(needle), "message {m:?} lacks {needle:?}");
    }

    #[test]
    fn design_example_parses() {
        let text = r#"
version = 1
deny_errno = "EACCES"        # errno name or number for every policy denial

[[allow]]
path = "/dev/kvm"            # no trailing slash: exactly this file
access = "rw"                # "r" | "w" | "rw"
types = ["char"]

[[allow]]
path = "/srv/vm1/"           # trailing slash: everything beneath this directory
access = "rw"
create = true                # O_CREAT allowed here
mode = 0o640                 # created files get at most these bits
follow_symlinks = false

[[deny]]
path = "/srv/vm1/secret/"    # deny wins over allow

[[listen]]
path = "/run/vm1/qmp.sock"
fd = 10

[[preopen]]
path = "/srv/vm1/disk.img"
access = "rw"
fd = 11

[sandbox]
mode = "require"
user = "nobody"
namespaces = ["user", "pid", "net", "ipc", "uts", "mount"]
"#;
        let p = parse(text, "vm.toml").expect("parses");
        assert_eq!(p.deny_errno, Errno::EACCES);
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.roots, vec!["/dev".to_string(), "/srv/vm1".to_string()]);
        assert_eq!(p.rules[1].mode, 0o640);
        assert_eq!(p.rules[2].kind, RuleKind::Deny);
        assert_eq!(p.rules[2].line, 18);
        assert_eq!(p.listen[0].fd, 10);
        assert_eq!(p.preopen[0].access, Access::ReadWrite);
        assert_eq!(p.sandbox.mode, SandboxMode::Require);
        assert_eq!(p.sandbox.user.as_deref(), Some("nobody"));
        assert_eq!(p.sandbox.namespaces.as_ref().map(Vec::len), Some(6));
        let d = p.describe();
        assert!(
            d.contains("allow[1]   subtree  /srv/vm1/  access=rw types=file create mode<=0o640"),
            "{d}"
        );
        assert!(d.contains("deny[0]    subtree  /srv/vm1/secret/"), "{d}");
        assert!(
            d.contains("listen     unix     /run/vm1/qmp.sock  fd=10"),
            "{d}"
        );
    }

    #[test]
    fn defaults() {
        let p = parse("version = 1\n[[allow]]\npath = \"/a\"\n", "t").expect("parses");
        assert_eq!(p.deny_errno, Errno::EACCES);
        let r = &p.rules[0];
        assert_eq!(r.access, Access::Read);
        assert_eq!(r.types, FileTypes::FILE_ONLY);
        assert!(!r.create && !r.follow_symlinks && !r.subtree);
        assert_eq!(p.sandbox, SandboxPolicy::default());
        let p = parse(
            "version = 1\n[[allow]]\npath = \"/a/\"\naccess = \"w\"\ncreate = true\n",
            "t",
        )
        .expect("parses");
        assert_eq!(p.rules[0].mode, DEFAULT_CREATE_MODE);
    }

    #[test]
    fn deny_errno_name_or_number() {
        let p = parse("version = 1\ndeny_errno = \"ENOENT\"\n", "t").expect("parses");
        assert_eq!(p.deny_errno, Errno::ENOENT);
        let p = parse("version = 1\ndeny_errno = 1\n", "t").expect("parses");
        assert_eq!(p.deny_errno, Errno::EPERM);
        assert_err(
            "version = 1\ndeny_errno = \"EWHAT\"\n",
            2,
            14,
            "unknown errno name",
        );
        assert_err("version = 1\ndeny_errno = 0\n", 2, 14, "out of range");
        assert_err("version = 1\ndeny_errno = -13\n", 2, 14, "out of range");
        assert_err(
            "version = 1\ndeny_errno = true\n",
            2,
            14,
            "errno name or a number",
        );
    }

    #[test]
    fn errors_have_positions() {
        // Syntax.
        assert_err("version = 1\n[[allow]\n", 2, 9, "");
        // Missing or wrong version.
        assert_err("[[allow]]\npath = \"/a\"\n", 1, 1, "missing `version = 1`");
        assert_err("# c\nversion = 2\n", 2, 11, "unsupported policy version 2");
        assert_err("version = \"1\"\n", 1, 11, "");
        // Unknown keys, top level and in tables.
        assert_err("version = 1\nbogus = 3\n", 2, 1, "unknown field `bogus`");
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a\"\nacess = \"r\"\n",
            4,
            1,
            "unknown field `acess`",
        );
        assert_err(
            "version = 1\n[sandbox]\nmode = \"on\"\n",
            3,
            8,
            "unknown variant",
        );
        assert_err(
            "version = 1\n[sandbox]\nnamespaces = [\"user\", \"time\"]\n",
            3,
            23,
            "unknown variant",
        );
        // Bad values.
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a\"\naccess = \"x\"\n",
            4,
            10,
            "unknown variant",
        );
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a\"\ntypes = [\"file\", \"link\"]\n",
            4,
            18,
            "unknown variant",
        );
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a\"\ntypes = []\n",
            4,
            9,
            "types must not be empty",
        );
        // Semantic errors point at the offending value.
        assert_err(
            "version = 1\n[[allow]]\npath = \"srv/vm1/\"\n",
            3,
            8,
            "not absolute",
        );
        assert_err(
            "version = 1\n[[deny]]\npath = \"/a/../b\"\n",
            3,
            8,
            "`.` or `..`",
        );
        assert_err(
            "version = 1\n[[deny]]\npath = \"/a//b\"\n",
            3,
            8,
            "empty component",
        );
        assert_err(
            "version = 1\n[[deny]]\npath = \"/a//\"\n",
            3,
            8,
            "empty component",
        );
        assert_err("version = 1\n[[deny]]\npath = \"\"\n", 3, 8, "empty path");
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a/\"\ncreate = true\n",
            4,
            10,
            "needs access",
        );
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a/\"\naccess = \"rw\"\ncreate = true\ntypes = [\"char\"]\n",
            5,
            10,
            "needs \"file\" in types",
        );
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a/\"\nmode = 0o600\n",
            4,
            8,
            "mode needs create",
        );
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a/\"\naccess = \"rw\"\ncreate = true\nmode = 0o4755\n",
            6,
            8,
            "out of range",
        );
        assert_err(
            "version = 1\n[[allow]]\npath = \"/a/\"\n\n[[allow]]\npath = \"/a/\"\naccess = \"rw\"\n",
            6,
            8,
            "duplicate rule for /a/ (first at line 3)",
        );
        assert_err(
            "version = 1\n[[listen]]\npath = \"/run/a.sock\"\nfd = 2\n",
            4,
            6,
            "out of range",
        );
        assert_err(
            "version = 1\n[[listen]]\npath = \"/run/a.sock\"\nfd = 10\n[[preopen]]\npath = \"/a\"\nfd = 10\n",
            7,
            6,
            "fd 10 is already declared at line 3",
        );
        assert_err(
            "version = 1\n[[listen]]\npath = \"run/a.sock\"\nfd = 10\n",
            3,
            8,
            "not absolute",
        );
        let long = format!(
            "version = 1\n[[listen]]\npath = \"/{}\"\nfd = 10\n",
            "s".repeat(107)
        );
        assert_err(&long, 3, 8, "longer than 107");
        assert_err(
            "version = 1\n[[preopen]]\npath = \"/srv/\"\nfd = 10\n",
            3,
            8,
            "trailing slash",
        );
        assert_err(
            "version = 1\n[[preopen]]\npath = \"/a\"\n",
            2,
            1,
            "missing field `fd`",
        );
        assert_err("version = 1\n[sandbox]\nuser = \"\"\n", 3, 8, "user name");
        // Columns count characters, not bytes.
        assert_err(
            "version = 1\n[[deny]]\npath = \"é\" \n",
            3,
            8,
            "not absolute",
        );
        assert_err("version = 1\n[[deny]]\n\"é\" = 1\n", 3, 1, "unknown field");
        // Deny under a root that follows symlinks.
        assert_err(
            "version = 1\n[[allow]]\npath = \"/srv/\"\nfollow_symlinks = true\n[[deny]]\npath = \"/srv/a/secret\"\n",
            6,
            8,
            "follow_symlinks",
        );
        assert_err(
            "version = 1\n[[allow]]\npath = \"/srv/link\"\nfollow_symlinks = true\n[[deny]]\npath = \"/srv/secret/\"\n",
            6,
            8,
            "follow_symlinks",
        );
    }

    #[test]
    fn follow_symlinks_without_deny_below_is_fine() {
        parse(
            "version = 1\n[[allow]]\npath = \"/srv/vm1/\"\nfollow_symlinks = true\n[[deny]]\npath = \"/srv/other/\"\n",
            "t",
        )
        .expect("parses");
    }

    #[test]
    fn rule_paths() {
        assert_eq!(rule_path("/"), Ok(("/".into(), true)));
        assert_eq!(rule_path("/a"), Ok(("/a".into(), false)));
        assert_eq!(rule_path("/a/b/"), Ok(("/a/b".into(), true)));
        assert!(rule_path("/a\0b").is_err());
        assert!(rule_path("//").is_err());
        assert!(rule_path("/./a").is_err());
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
    }

    #[test]
    fn file_order_is_kept() {
        let p = parse(
            "version = 1\n[[deny]]\npath = \"/x/y/\"\n[[allow]]\npath = \"/x/\"\n[[deny]]\npath = \"/x/z\"\n",
            "t",
        )
        .expect("parses");
        let labels: Vec<String> = p.rules.iter().map(|r| r.label()).collect();
        assert_eq!(labels, ["deny[0] /x/y/", "allow[0] /x/", "deny[1] /x/z"]);
        assert_eq!(p.rules[1].line, 5);
    }

    proptest::proptest! {
        /// Arbitrary text, and arbitrary mixes of policy-like lines, give a
        /// policy or a positioned error, never a panic.
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text, "fuzz.toml");
        }

        #[test]
        fn never_panics_on_policy_like_text(lines in proptest::collection::vec(
            proptest::sample::select(vec![
                "version = 1", "version = 2", "deny_errno = \"EPERM\"", "deny_errno = 0",
                "[[allow]]", "[[deny]]", "[[listen]]", "[[preopen]]", "[sandbox]",
                "path = \"/a/\"", "path = \"/a\"", "path = \"a\"", "path = \"/a/../b\"",
                "access = \"rw\"", "access = \"x\"", "create = true", "mode = 0o640",
                "mode = -1", "types = []", "types = [\"fifo\"]", "follow_symlinks = true",
                "fd = 3", "fd = 99999999999", "mode = \"off\"", "user = \"\"", "é = 1",
            ]),
            0..16,
        )) {
            let text = lines.join("\n");
            match parse(&text, "fuzz.toml") {
                Ok(_) => {}
                Err(e) => {
                    let n = text.lines().count().max(1);
                    proptest::prop_assert!(e.line >= 1 && e.line <= n + 1, "{e}");
                    proptest::prop_assert!(e.col >= 1, "{e}");
                }
            }
        }
    }

    #[test]
    fn many_rules() {
        let mut text = String::from("version = 1\n");
        for i in 0..10_000 {
            text.push_str(&format!("[[allow]]\npath = \"/srv/vm{i}/\"\n"));
        }
        let p = parse(&text, "big.toml").expect("parses");
        assert_eq!(p.rules.len(), 10_000);
        assert!(super::super::decide(&p, b"/srv/vm9999/disk", 0, 0).is_ok());
        assert!(super::super::decide(&p, b"/srv/vm10000/disk", 0, 0).is_err());
    }
}

#[cfg(test)]
mod doc_tests {
    //! `docs/policy.md` shows real behaviour: its example parses and
    //! `describe` prints exactly the block the document shows.
    use super::parse;

    const DOC: &str = include_str!("../../../docs/policy.md");

    fn block_after(marker: &str, fence: &str) -> String {
        let start = DOC.find(marker).expect("marker in docs/policy.md");
        let rest = &DOC[start..];
        let open = rest.find(fence).expect("fence") + fence.len();
        let body = &rest[open..];
        let body = body.strip_prefix('\n').unwrap_or(body);
        let close = body.find("```").expect("closing fence");
        body[..close].to_string()
    }

    #[test]
    fn example_and_check_output_match_the_docs() {
        let toml = block_after("## A complete example", "```toml");
        let shown = block_after("prints for it:", "```");
        let p = parse(&toml, "vm.toml").expect("the documented example parses");
        assert_eq!(p.describe(), shown);
    }

    #[test]
    fn documented_errors_are_real() {
        let cases = [
            ("version = 1\n[[allow]]\npath = \"/a\"\n\n\n\naccess = \"x\"\n", "vm.toml:7:10: unknown variant `x`, expected one of `r`, `w`, `rw`"),
            ("version = 1\n[[allow]]\nacess = \"rw\"\npath = \"/a\"\n", "vm.toml:3:1: unknown field `acess`, expected one of `path`, `access`, `create`, `mode`, `types`, `follow_symlinks`"),
            ("version = 1\n[[allow]]\npath = \"srv/vm1/\"\n", "vm.toml:3:8: rule path \"srv/vm1/\" is not absolute"),
            ("[[allow]]\npath = \"/a\"\n", "vm.toml:1:1: missing `version = 1`"),
        ];
        for (text, shown) in cases {
            assert!(DOC.contains(shown), "docs/policy.md shows {shown:?}");
            let e = parse(text, "vm.toml").expect_err("refused");
            assert_eq!(e.to_string(), shown);
        }
    }
}
