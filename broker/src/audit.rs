//! The audit log: one JSON object per line per decision, written before the
//! reply is sent, built from the decision. Data, not diagnostics: never
//! goes through `tracing`.
//!
//! Paths are peer bytes, not necessarily UTF-8. The `path` field keeps them
//! recoverable: valid UTF-8 is copied as is except `\`, which becomes `\\`;
//! every byte that is not part of valid UTF-8 becomes `\xHH` (two lowercase
//! hex digits). [`unescape_path`] reverses it exactly. JSON's own escaping
//! (quotes, control characters) comes on top, as usual.

use std::fs::File;
use std::io::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// An fd was sent.
    Allow,
    /// The policy refused (`errno` is the deny errno, or `EINVAL` /
    /// `ENAMETOOLONG` for a malformed name).
    Deny,
    /// The policy allowed it but the open failed (`errno` is the kernel's).
    Error,
}

/// One audit line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Seconds since the Unix epoch, microsecond resolution.
    pub ts: f64,
    /// The requesting process (the launched child).
    pub pid: i32,
    /// The requested path, escaped (see the module docs).
    pub path: String,
    /// The request's flag word.
    pub flags: u32,
    /// The request's mode.
    pub mode: u32,
    pub decision: Decision,
    /// 0 when allowed, else the positive errno replied.
    pub errno: i32,
    /// The deciding rule (`allow[1] /srv/vm1/`), `null` when none matched.
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Transparent mode: the syscall that asked (`openat`, `newfstatat`,
    /// ...). Absent for hook requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
}

/// Seconds since the Unix epoch, rounded to microseconds.
pub fn now_ts() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_micros() as f64) / 1e6)
}

/// The append-only audit log file.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
}

impl AuditLog {
    /// Wraps a file opened for appending (see `ambient::open_audit_log`).
    pub fn new(file: File) -> AuditLog {
        AuditLog { file }
    }

    /// Writes one line with a single `write` (`O_APPEND` keeps lines whole).
    pub fn write(&self, record: &AuditRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        (&self.file).write_all(&line)
    }
}

/// Escapes path bytes for the `path` field.
pub fn escape_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Recovers the bytes from an escaped `path`; `None` if it is not a valid
/// escape.
pub fn unescape_path(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', more @ ..] => {
                out.push(b'\\');
                rest = more;
            }
            [b'x', h, l, more @ ..] => {
                let hex = std::str::from_utf8(&[*h, *l]).ok()?.to_owned();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
                rest = more;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests read and write their temp trees
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_path(b"/srv/vm1/disk.img"), "/srv/vm1/disk.img");
        assert_eq!(escape_path("/é".as_bytes()), "/é");
        assert_eq!(escape_path(b"/a\\b"), "/a\\\\b");
        assert_eq!(escape_path(b"/a\xffb\xc3"), "/a\\xffb\\xc3");
        assert_eq!(escape_path(b"/\\xff"), "/\\\\xff");
        assert_eq!(unescape_path("/\\\\xff"), Some(b"/\\xff".to_vec()));
        assert_eq!(unescape_path("/\\xf"), None);
        assert_eq!(unescape_path("/\\q"), None);
        assert_eq!(unescape_path("/\\xzz"), None);
    }

    #[test]
    fn record_is_one_json_line_with_all_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let log = crate::ambient::open_audit_log(&path).expect("opens");
        for i in 0..3 {
            let r = AuditRecord {
                ts: now_ts(),
                pid: 42,
                path: escape_path(b"/srv/\xff\"x\n"),
                flags: 2,
                mode: 0o600,
                decision: Decision::Deny,
                errno: 13,
                rule: Some(format!("deny[{i}] /srv/")),
                reason: "deny rule".into(),
                syscall: None,
            };
            log.write(&r).expect("write");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for (i, l) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            for k in [
                "ts", "pid", "path", "flags", "mode", "decision", "errno", "rule",
            ] {
                assert!(v.get(k).is_some(), "field {k} in {l}");
            }
            assert_eq!(v["decision"], "deny");
            assert_eq!(v["rule"], format!("deny[{i}] /srv/"));
            let path = v["path"].as_str().expect("string");
            assert_eq!(unescape_path(path), Some(b"/srv/\xff\"x\n".to_vec()));
            assert!(v["ts"].as_f64().expect("ts") > 1.6e9);
        }
    }

    proptest! {
        #[test]
        fn path_escape_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let s = escape_path(&bytes);
            prop_assert_eq!(unescape_path(&s), Some(bytes));
        }

        #[test]
        fn utf8_without_backslash_is_unchanged(s in "[^\\\\]{0,32}") {
            prop_assert_eq!(escape_path(s.as_bytes()), s);
        }
    }
}
