//! The policy parser (`broker/src/policy/parse.rs`) on arbitrary text.
//!
//! Oracles:
//! - an error is `fuzz.toml:LINE:COL: message` with a position inside the
//!   text (LINE ≤ lines + 1, COL ≤ that line's characters + 1);
//! - an accepted policy satisfies the invariants docs/policy.md promises:
//!   normalised absolute rule paths, a root for every allow rule (the rule
//!   path, or its parent for an exact rule), deny rules without one, no
//!   duplicate rules, no deny rule under a `follow_symlinks` root,
//!   `create` only with write access and "file" in types, `mode` ≤ 0o777,
//!   declared fds in 3..=65535 and distinct, deny errno in 1..=4095;
//! - printing the accepted policy back as TOML and parsing that gives the
//!   same policy (rules, roots, listen, preopen, sandbox, deny errno);
//! - parsing in batches of one section (`parse_batched(.., 1)`) gives the
//!   same policy or the same error as parsing the document whole;
//! - `decide` on every rule path (and one name below it) agrees with the
//!   naive model of docs/policy.md built from the parsed rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openhook_broker::policy::parse::parse_batched;
use openhook_broker::policy::{parse, Access, Policy, RuleKind, SandboxMode};
use openhook_fuzz::policy_model::{self as model, toml_str};

fn check_error(text: &str, e: &openhook_broker::policy::PolicyError) {
    assert_eq!(
        e.to_string(),
        format!("fuzz.toml:{}:{}: {}", e.line, e.col, e.message)
    );
    assert!(e.line >= 1 && e.col >= 1, "{e}");
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        e.line <= lines.len(),
        "{e}: line beyond the text ({} lines)",
        lines.len()
    );
    let width = lines[e.line - 1].chars().count();
    assert!(
        e.col <= width + 1,
        "{e}: column beyond line {} of {width} characters",
        e.line
    );
}

fn check_invariants(p: &Policy) {
    let rules = model::from_policy(p);
    assert!(
        model::rules_valid(&rules),
        "parser accepted rules the model refuses: {rules:?}"
    );
    assert!((1..=4095).contains(&p.deny_errno.get()));
    for (r, m) in p.rules.iter().zip(&rules) {
        let path = &r.path;
        assert!(path.starts_with('/'), "{path:?}");
        if path != "/" {
            assert!(!path.ends_with('/'), "{path:?}");
            assert!(
                path[1..]
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".."),
                "{path:?}"
            );
        } else {
            assert!(r.subtree);
        }
        assert!(!path.contains('\0') && path.len() <= 4095);
        match r.kind {
            RuleKind::Allow => {
                let root = r.root.expect("allow rules have a root");
                assert_eq!(p.roots[root.0], m.root(), "root of {path:?}");
                assert!(r.mode <= 0o777);
                assert!(!r.types.is_empty());
            }
            RuleKind::Deny => assert!(r.root.is_none()),
        }
    }
    // Every root is used by some allow rule, once.
    for (i, root) in p.roots.iter().enumerate() {
        assert!(
            rules.iter().any(|r| r.allow && r.root() == root),
            "unused root {root}"
        );
        assert!(!p.roots[..i].contains(root), "duplicate root {root}");
    }
    let mut fds: Vec<i32> = p
        .listen
        .iter()
        .map(|l| l.fd)
        .chain(p.preopen.iter().map(|o| o.fd))
        .collect();
    assert!(fds.iter().all(|fd| (3..=65_535).contains(fd)), "{fds:?}");
    let n = fds.len();
    fds.sort_unstable();
    fds.dedup();
    assert_eq!(fds.len(), n, "a declared fd repeats");
    for path in p
        .listen
        .iter()
        .map(|l| &l.path)
        .chain(p.preopen.iter().map(|o| &o.path))
    {
        assert!(path.starts_with('/') && !path.ends_with('/'), "{path:?}");
    }
    for l in &p.listen {
        assert!(l.path.len() <= 107);
    }
}

fn access_str(a: Access) -> &'static str {
    match a {
        Access::Read => "r",
        Access::Write => "w",
        Access::ReadWrite => "rw",
    }
}

/// The policy written back as a file.
fn print(p: &Policy) -> String {
    let mut t = format!("version = 1\ndeny_errno = {}\n", p.deny_errno.get());
    t.push_str(&model::rules_toml(&model::from_policy(p)));
    for l in &p.listen {
        t.push_str(&format!(
            "[[listen]]\npath = {}\nfd = {}\n",
            toml_str(&l.path),
            l.fd
        ));
    }
    for o in &p.preopen {
        t.push_str(&format!(
            "[[preopen]]\npath = {}\naccess = \"{}\"\nfd = {}\n",
            toml_str(&o.path),
            access_str(o.access),
            o.fd
        ));
    }
    let mode = match p.sandbox.mode {
        SandboxMode::Require => "require",
        SandboxMode::BestEffort => "best-effort",
        SandboxMode::Off => "off",
    };
    t.push_str(&format!("[sandbox]\nmode = \"{mode}\"\n"));
    if let Some(u) = &p.sandbox.user {
        t.push_str(&format!("user = {}\n", toml_str(u)));
    }
    if let Some(ns) = &p.sandbox.namespaces {
        let names: Vec<String> = ns.iter().map(|n| format!("\"{}\"", n.as_str())).collect();
        t.push_str(&format!("namespaces = [{}]\n", names.join(", ")));
    }
    t
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let whole = parse_batched(text, "fuzz.toml", usize::MAX);
    // Batched parsing (one section per batch, the most splitting) must not
    // change the outcome: the same policy or the same error.
    let batched = parse_batched(text, "fuzz.toml", 1);
    // (The rule index is built from the rules and prints in hash order.)
    let shown = |p: &Result<Policy, _>| {
        let s = format!("{p:?}");
        s.split(", index: RuleIndex").next().unwrap_or(&s).to_string()
    };
    assert_eq!(shown(&whole), shown(&batched), "batched parse differs");
    let policy = match whole {
        Err(e) => return check_error(text, &e),
        Ok(p) => p,
    };
    check_invariants(&policy);
    let _ = policy.describe();

    // Print and parse again: the same policy.
    let printed = print(&policy);
    let again =
        parse(&printed, "fuzz.toml").unwrap_or_else(|e| panic!("reprint refused: {e}\n{printed}"));
    assert_eq!(
        model::from_policy(&again),
        model::from_policy(&policy),
        "\n{printed}"
    );
    assert_eq!(again.roots, policy.roots);
    assert_eq!(again.deny_errno, policy.deny_errno);
    let strip_l = |p: &Policy| {
        p.listen
            .iter()
            .map(|l| (l.path.clone(), l.fd))
            .collect::<Vec<_>>()
    };
    let strip_o = |p: &Policy| {
        p.preopen
            .iter()
            .map(|o| (o.path.clone(), o.access, o.fd))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip_l(&again), strip_l(&policy));
    assert_eq!(strip_o(&again), strip_o(&policy));
    assert_eq!(again.sandbox, policy.sandbox);

    // Decisions on the rule paths agree with the model.
    let rules = model::from_policy(&policy);
    for r in rules.iter().take(64) {
        let below = format!("{}/x", if r.path == "/" { "" } else { &r.path });
        for path in [r.path.as_bytes(), below.as_bytes()] {
            for flags in [
                0,
                model::O_RDWR,
                model::O_WRONLY | model::O_CREAT | model::O_TRUNC,
            ] {
                model::check_decision(&policy, &rules, path, flags, 0o644);
            }
        }
    }
});
