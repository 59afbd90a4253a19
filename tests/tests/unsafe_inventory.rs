//! `unsafe` appears only in the files listed in
//! docs/dev/unsafe.md, and every listed file still needs it.

#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The line without string literals and without a trailing comment.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let (mut in_str, mut escaped) = (false, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// Whether a line of code uses the `unsafe` keyword.
fn uses_unsafe(line: &str) -> bool {
    code_of(line)
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == "unsafe")
}

#[test]
fn unsafe_only_where_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let doc = std::fs::read_to_string(root.join("docs/dev/unsafe.md")).unwrap();
    let listed: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect();
    assert!(listed.len() >= 5, "table parsed: {listed:?}");
    let mut files = Vec::new();
    for krate in ["wire", "broker", "sandbox", "emulator"] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    let mut found = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut in_code = true;
        for line in text.lines() {
            // Unit-test modules may use unsafe helpers of their own; the
            // inventory is about shipped code.
            if line.trim_start().starts_with("#[cfg(test)]") {
                in_code = false;
            }
            if in_code && uses_unsafe(line) && !line.contains("unsafe_code") {
                let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                found.insert(rel);
                break;
            }
        }
    }
    let unlisted: Vec<_> = found.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&found).collect();
    assert!(
        unlisted.is_empty(),
        "unsafe outside docs/dev/unsafe.md: {unlisted:?}"
    );
    assert!(
        stale.is_empty(),
        "listed in docs/dev/unsafe.md but no unsafe left: {stale:?}"
    );
}

#[test]
fn the_scan_sees_the_keyword_and_nothing_else() {
    assert!(uses_unsafe("    let x = unsafe { f() };"));
    assert!(uses_unsafe("pub unsafe fn g() {}"));
    assert!(!uses_unsafe("// SAFETY: unsafe is fine here"));
    assert!(!uses_unsafe("let not_unsafe = 1;"));
    assert!(!uses_unsafe("#![deny(unsafe_op_in_unsafe_fn_x)]"));
    assert!(!uses_unsafe(r#"Some("unsafe") => CacheMode::Unsafe,"#));
    assert!(uses_unsafe(r#"let s = "a\"b"; unsafe { f(s) }"#));
}
