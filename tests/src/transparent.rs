//! Transparent mode's side of the tests: building the C programs of
//! `tests/data/transparent/` with gcc, running a program under
//! `openhook-broker --transparent` or `learn`, reading the audit log and
//! a process's status fields.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bin;

/// A source file of `tests/data/transparent/`.
pub fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/transparent")
        .join(name)
}

/// `gcc -O2 -pthread EXTRA -o OUT SRC`; fails the test with gcc's output.
pub fn gcc(src: &Path, out: &Path, extra: &[&str]) {
    let o = Command::new("gcc")
        .args(["-O2", "-pthread", "-Wall"])
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(src)
        .output()
        .expect("gcc runs (scripts/setup-deps.sh installs it)");
    assert!(
        o.status.success(),
        "gcc {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The broker binary, checked to exist.
pub fn broker() -> PathBuf {
    let b = bin("openhook-broker");
    assert!(
        b.exists(),
        "{} is not built: run `cargo build --workspace`",
        b.display()
    );
    b
}

/// `openhook-broker --policy POLICY --transparent [--audit-log AUDIT]
/// [--pass-fd N]... -- PROGRAM ARGS...`
pub fn command<S: AsRef<OsStr>>(
    policy: &Path,
    audit: Option<&Path>,
    pass_fds: &[i32],
    program: &Path,
    args: impl IntoIterator<Item = S>,
) -> Command {
    let mut c = Command::new(broker());
    c.arg("--policy").arg(policy).arg("--transparent");
    if let Some(a) = audit {
        c.arg("--audit-log").arg(a);
    }
    for n in pass_fds {
        c.arg("--pass-fd").arg(n.to_string());
    }
    c.arg("--").arg(program).args(args);
    c
}

/// `openhook-broker learn --output OUTPUT [--audit-log AUDIT] -- PROGRAM ARGS...`
pub fn learn_command<S: AsRef<OsStr>>(
    output: &Path,
    audit: Option<&Path>,
    program: &Path,
    args: impl IntoIterator<Item = S>,
) -> Command {
    let mut c = Command::new(broker());
    c.arg("learn").arg("--output").arg(output);
    if let Some(a) = audit {
        c.arg("--audit-log").arg(a);
    }
    c.arg("--").arg(program).args(args);
    c
}

/// Every line of an audit log as JSON (a missing file: none). A line that
/// is not JSON fails the test.
pub fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?} is not JSON: {e}"))
        })
        .collect()
}

/// A string field of an audit line ("" when absent).
pub fn field<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(|x| x.as_str()).unwrap_or("")
}

/// `Name:\tvalue` of /proc/PID/status, trimmed.
pub fn status_field(status: &str, name: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

/// The `[[allow]]` rules of a policy text as `(path, access)`, read with
/// a TOML parser (a learned policy is also checked by the broker itself
/// when it is enforced).
pub fn allow_rules(policy_text: &str) -> Vec<(String, String)> {
    let doc: toml::Table = policy_text.parse().expect("the policy is TOML");
    let Some(allows) = doc.get("allow").and_then(|a| a.as_array()) else {
        return Vec::new();
    };
    allows
        .iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            (s("path"), s("access"))
        })
        .collect()
}
