//! `openhook-broker check --explain` agrees with serving: for a matrix of
//! requests over real files (a regular file, a directory, a FIFO, a char
//! device, beneath allow, deny, exact and read-only rules), the decision,
//! deciding rule and reason the binary prints are the ones the broker's
//! own request handler (`serve::handle_open`: decide, openat2, fstat)
//! records, and its exit status is 0 exactly when the handler sends an fd.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::process::Command;

use openhook_broker::ambient::Ambient;
use openhook_broker::audit::Decision;
use openhook_broker::{ambient, serve};
use openhook_tests::bin;

const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;

fn type_name(path: &std::path::Path) -> Option<&'static str> {
    let t = fs::metadata(path).ok()?.file_type();
    Some(if t.is_file() {
        "file"
    } else if t.is_dir() {
        "dir"
    } else if t.is_char_device() {
        "char"
    } else if t.is_block_device() {
        "block"
    } else if t.is_fifo() {
        "fifo"
    } else {
        "socket"
    })
}

#[test]
fn explain_matches_what_serving_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    for sub in ["vm/ro", "vm/secret", "vm/dir"] {
        fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
    }
    for f in [
        "vm/disk.img",
        "vm/ro/base.img",
        "vm/ro/own.img",
        "vm/secret/key",
    ] {
        fs::write(dir.path().join(f), b"x").expect("write");
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("vm/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let text = format!(
        "version = 1\ndeny_errno = \"EPERM\"\n\n\
         [[allow]]\npath = \"{d}/vm/\"\naccess = \"rw\"\ncreate = true\n\n\
         [[allow]]\npath = \"{d}/vm/ro/\"\naccess = \"r\"\n\n\
         [[allow]]\npath = \"{d}/vm/ro/own.img\"\naccess = \"rw\"\n\n\
         [[deny]]\npath = \"{d}/vm/secret/\"\n\n\
         [[allow]]\npath = \"/dev/null\"\naccess = \"rw\"\ntypes = [\"char\"]\n"
    );
    let policy_path = dir.path().join("vm.toml");
    fs::write(&policy_path, &text).expect("write policy");
    let policy = ambient::load_policy(&policy_path).expect("parses");
    let ambient = Ambient::open(&policy).expect("opens");

    let cases: &[(&str, &str, bool, bool)] = &[
        ("vm/disk.img", "r", false, false),
        ("vm/disk.img", "rw", false, true),
        ("vm/new.img", "rw", true, false),
        ("vm/dir", "r", false, false),
        ("vm/fifo", "r", false, false),
        ("vm/ro/base.img", "r", false, false),
        ("vm/ro/base.img", "rw", false, false),
        ("vm/ro/base.img", "r", false, true),
        ("vm/ro/own.img", "rw", false, false),
        ("vm/ro/new.img", "rw", true, false),
        ("vm/secret/key", "r", false, false),
        ("vm.toml", "r", false, false),
        ("/dev/null", "rw", false, false),
        ("/dev/null", "w", true, false),
        ("/etc/hostname", "r", false, false),
    ];
    let mut allowed = 0;
    for &(rel, access, create, truncate) in cases {
        let path = if rel.starts_with('/') {
            rel.to_string()
        } else {
            format!("{d}/{rel}")
        };
        let flags = match access {
            "r" => 0,
            "w" => O_WRONLY,
            _ => O_RDWR,
        } | if create { O_CREAT } else { 0 }
            | if truncate { O_TRUNC } else { 0 };
        // The file type the open will find (a created file is a file).
        let ftype = type_name(std::path::Path::new(&path)).or(create.then_some("file"));
        let handled = serve::handle_open(&policy, &ambient, 1, path.as_bytes(), flags, 0o600)
            .expect("roots opened for this policy");
        if handled.reply.is_ok() && create {
            let _ = fs::remove_file(&path);
        }

        let mut cmd = Command::new(bin("openhook-broker"));
        cmd.args(["check", "--policy"]).arg(&policy_path).args([
            "--explain",
            &path,
            "--access",
            access,
        ]);
        if create {
            cmd.arg("--create");
        }
        if truncate {
            cmd.arg("--truncate");
        }
        if let Some(t) = ftype {
            cmd.args(["--type", t]);
        }
        let out = cmd.output().expect("run openhook-broker check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let decision_line = stdout
            .lines()
            .find(|l| l.starts_with("decision: "))
            .unwrap_or_else(|| panic!("{path}: no decision line in\n{stdout}"));
        let r = &handled.record;
        let what = format!("{path} {access} create={create} truncate={truncate}");
        assert_ne!(
            r.decision,
            Decision::Error,
            "{what}: the matrix has no failing opens: {r:?}"
        );
        let served_allow = r.decision == Decision::Allow;
        assert_eq!(
            out.status.code(),
            Some(if served_allow { 0 } else { 1 }),
            "{what}: served {r:?}, explained\n{stdout}"
        );
        if served_allow {
            allowed += 1;
            assert!(
                decision_line.starts_with("decision: allow"),
                "{what}: {stdout}"
            );
        } else {
            assert!(
                decision_line.contains(&format!(": {}", r.reason)),
                "{what}: served reason {:?}, explained\n{stdout}",
                r.reason
            );
        }
        match &r.rule {
            Some(label) => assert!(
                decision_line.contains(&format!("by {label} (")),
                "{what}: served by {label}, explained\n{stdout}"
            ),
            None => assert!(!decision_line.contains(" by "), "{what}: {stdout}"),
        }
    }
    // Both outcomes are exercised.
    assert!(allowed >= 5 && allowed < cases.len(), "{allowed} allowed");
}

#[test]
fn explain_lists_the_rules_that_lost_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let policy_path = dir.path().join("p.toml");
    fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
    fs::write(
        &policy_path,
        format!(
            "version = 1\n[[allow]]\npath = \"{d}/\"\n\n[[allow]]\npath = \"{d}/a/\"\naccess = \"rw\"\n\n[[deny]]\npath = \"{d}/a/b/\"\n"
        ),
    )
    .expect("write");
    let p = policy_path.display();
    let out = Command::new(bin("openhook-broker"))
        .args(["check", "--policy"])
        .arg(&policy_path)
        .args(["--explain", &format!("{d}/a/b/c")])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("deny rule by deny[0] {d}/a/b/ ({p}:10)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "allow[0] {d}/ ({p}:3): a longer match decides (allow[1] {d}/a/)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "allow[1] {d}/a/ ({p}:6): a matching deny rule wins (deny[0] {d}/a/b/)"
        )),
        "{stdout}"
    );
    // A policy that does not load: 2, and one line on stderr.
    fs::write(&policy_path, "version = 2\n").expect("write");
    let out = Command::new(bin("openhook-broker"))
        .args(["check", "--policy"])
        .arg(&policy_path)
        .args(["--explain", "/x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

/// Without --type the binary looks at the host as serving would: the type
/// found decides, and a symlink under a rule that refuses them is the
/// ELOOP the handler replies; both agree with `serve::handle_open`.
#[test]
fn explain_looks_at_the_host_like_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    fs::create_dir_all(dir.path().join("vm")).expect("mkdir");
    fs::write(dir.path().join("vm/disk.img"), b"x").expect("write");
    std::os::unix::fs::symlink("disk.img", dir.path().join("vm/link")).expect("symlink");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("vm/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let policy_path = dir.path().join("p.toml");
    fs::write(
        &policy_path,
        format!(
            "version = 1\n[[allow]]\npath = \"{d}/vm/\"\naccess = \"rw\"\n\
             [[allow]]\npath = \"/dev/null\"\naccess = \"rw\"\ntypes = [\"char\"]\n"
        ),
    )
    .expect("write");
    let policy = ambient::load_policy(&policy_path).expect("parses");
    let ambient = Ambient::open(&policy).expect("opens");
    let cases: &[(&str, i32, &str)] = &[
        (
            "vm/disk.img",
            0,
            "on this host: resolves to a regular file beneath the root",
        ),
        (
            "/dev/null",
            0,
            "on this host: resolves to a character device",
        ),
        (
            "vm/link",
            1,
            "on this host: deny ELOOP (40): a symlink on the way",
        ),
        (
            "vm/fifo",
            1,
            "type fifo is not in types=file (found on this host)",
        ),
        (
            "vm/missing",
            0,
            "on this host: the open would fail with ENOENT (2)",
        ),
    ];
    for &(rel, code, says) in cases {
        let path = if rel.starts_with('/') {
            rel.to_string()
        } else {
            format!("{d}/{rel}")
        };
        let out = Command::new(bin("openhook-broker"))
            .args(["check", "--policy"])
            .arg(&policy_path)
            .args(["--explain", &path])
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{path}:\n{stdout}");
        assert!(stdout.contains(says), "{path}:\n{stdout}");
        let served = serve::handle_open(&policy, &ambient, 1, path.as_bytes(), 0, 0)
            .expect("roots opened for this policy");
        let r = &served.record;
        match rel {
            "vm/link" => assert_eq!((r.decision, r.errno), (Decision::Error, 40), "{r:?}"),
            "vm/missing" => assert_eq!((r.decision, r.errno), (Decision::Error, 2), "{r:?}"),
            "vm/fifo" => assert_eq!(r.decision, Decision::Deny, "{r:?}"),
            _ => assert_eq!(r.decision, Decision::Allow, "{r:?}"),
        }
    }
}
