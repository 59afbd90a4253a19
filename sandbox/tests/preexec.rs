//! Pre-exec hardening in a real fork/exec: the probe holds an inheritable
//! fd and a declared fd 10, then re-executes itself through
//! `PreExec::apply_in_child`; the test inspects the exec'd child from
//! outside (`/proc/<pid>/…`) while it waits. Each check is also run without
//! the hardening, where it must come out the other way.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

const PROBE: &str = env!("CARGO_BIN_EXE_openhook-sandbox-probe");

struct Launched {
    probe: Child,
    child_pid: u32,
    leaked: i32,
    lines: BufReader<std::process::ChildStdout>,
    /// Child lines that arrived before the probe's `child=` line.
    early: std::collections::VecDeque<String>,
}

fn launch(env: &[(&str, &str)], child_args: &[&str]) -> Launched {
    let mut cmd = Command::new(PROBE);
    cmd.arg("preexec").args(child_args);
    cmd.env_clear()
        .env("RUST_LOG", "kept")
        .env("OPENHOOK_TEST_SECRET", "must-not-pass");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut probe = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn probe");
    let mut lines = BufReader::new(probe.stdout.take().expect("stdout"));
    // The exec'd child may print before the probe reports its pid.
    let mut early = std::collections::VecDeque::new();
    let first = loop {
        let mut l = String::new();
        lines.read_line(&mut l).expect("read");
        if l.starts_with("child=") || l.is_empty() || l.starts_with("prepare-error") {
            break l;
        }
        early.push_back(l.trim().to_string());
    };
    let (pid, leaked) = first
        .trim()
        .strip_prefix("child=")
        .and_then(|r| r.split_once(" leaked="))
        .unwrap_or_else(|| panic!("unexpected probe output {first:?}"));
    Launched {
        probe,
        child_pid: pid.parse().expect("pid"),
        leaked: leaked.parse().expect("fd"),
        lines,
        early,
    }
}

impl Launched {
    fn line(&mut self) -> String {
        if let Some(l) = self.early.pop_front() {
            return l;
        }
        let mut l = String::new();
        self.lines.read_line(&mut l).expect("read");
        l.trim().to_string()
    }
    fn proc(&self, what: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{what}", self.child_pid))
            .unwrap_or_else(|e| panic!("read /proc/{}/{what}: {e}", self.child_pid))
    }
    fn fds(&self) -> BTreeSet<i32> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child_pid))
            .expect("read fd dir")
            .map(|e| {
                e.expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .parse()
                    .expect("fd")
            })
            .collect()
    }
    fn finish(mut self) -> String {
        if let Some(mut stdin) = self.probe.stdin.take() {
            let _ = stdin.write_all(b"x");
        }
        let mut rest = self.line();
        while !(rest.starts_with("exit=") || rest.starts_with("signal=") || rest.is_empty()) {
            rest = self.line();
        }
        let status = self.probe.wait().expect("wait");
        assert!(status.success());
        rest
    }
}

fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn undeclared_fds_env_and_privileges_do_not_reach_the_child() {
    // Without hardening, the inheritable fd and the secret do pass.
    let mut plain = launch(&[("PROBE_NO_PREEXEC", "1")], &["none", "status-wait"]);
    assert_eq!(plain.line(), "ready");
    let plain_fds = plain.fds();
    let plain_env = plain.proc("environ");
    let plain_status = plain.proc("status");
    plain.finish();
    assert!(
        plain_fds.contains(&3),
        "control run should leak fd 3: {plain_fds:?}"
    );
    assert!(plain_env.contains("OPENHOOK_TEST_SECRET"));
    assert_eq!(status_field(&plain_status, "NoNewPrivs"), "0");

    let mut hard = launch(&[], &["none", "status-wait"]);
    assert_eq!(hard.line(), "ready");
    let fds = hard.fds();
    let env = hard.proc("environ");
    let status = hard.proc("status");
    let limits = hard.proc("limits");
    let leaked = hard.leaked;
    assert_eq!(hard.finish(), "exit=0");

    assert_eq!(
        fds,
        BTreeSet::from([0, 1, 2, 10]),
        "leaked fd {leaked} must be closed"
    );
    let vars: Vec<&str> = env.split('\0').filter(|s| !s.is_empty()).collect();
    assert_eq!(vars, vec!["RUST_LOG=kept"], "environment not scrubbed");
    for (key, want) in [
        ("NoNewPrivs", "1"),
        ("CapEff", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapInh", "0000000000000000"),
        ("CapBnd", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(status_field(&status, key), want, "{key}");
    }
    let limit = |name: &str| -> Vec<String> {
        let line = limits
            .lines()
            .find(|l| l.starts_with(name))
            .expect("limit line");
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(String::from)
            .collect()
    };
    assert_eq!(limit("Max open files"), ["1024", "1024"]);
    assert_eq!(limit("Max core file size"), ["0", "0"]);
    assert_eq!(limit("Max processes"), ["4096", "4096"]);
}

#[test]
fn exec_landlock_allows_the_program_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("readable");
    std::fs::write(&file, b"x").expect("write");
    let file = file.display().to_string();

    let plain = launch(&[("PROBE_NO_PREEXEC", "1")], &["none", "open", &file]);
    let mut plain = plain;
    assert_eq!(plain.line(), "ok");
    plain.finish();

    // The exec itself worked (the probe ran), but it may not open paths or
    // exec anything else.
    let mut hard = launch(&[], &["none", "open", &file]);
    assert_eq!(hard.line(), format!("errno={}", libc::EACCES));
    assert_eq!(hard.finish(), "exit=0");
    let mut hard = launch(&[], &["none", "execve"]);
    assert_eq!(hard.line(), format!("errno={}", libc::EACCES));
    assert_eq!(hard.finish(), "exit=0");
}

#[test]
fn namespaces_and_empty_root() {
    let mut ns = launch(
        &[("PROBE_NS", "net,uts,ipc,mount")],
        &["none", "status-wait"],
    );
    assert_eq!(ns.line(), "ready");
    let link = |pid: &str, n: &str| std::fs::read_link(format!("/proc/{pid}/ns/{n}")).expect("ns");
    let pid = ns.child_pid.to_string();
    for n in ["net", "uts", "ipc", "mnt"] {
        assert_ne!(link(&pid, n), link("self", n), "{n} namespace not new");
    }
    assert_eq!(link(&pid, "user"), link("self", "user"));
    // The child's root holds only what the exec needs.
    let root = format!("/proc/{pid}/root");
    assert!(std::path::Path::new(&format!("{root}/etc/ld.so.cache")).exists());
    assert!(!std::path::Path::new(&format!("{root}/etc/passwd")).exists());
    assert!(!std::path::Path::new(&format!("{root}/proc/self")).exists());
    assert!(std::path::Path::new("/etc/passwd").exists());
    assert_eq!(ns.finish(), "exit=0");
}

#[test]
fn user_namespace_with_user_switch() {
    let mut ns = launch(
        &[("PROBE_NS", "user,net,mount"), ("PROBE_USER", "nobody")],
        &["none", "status-wait"],
    );
    assert_eq!(ns.line(), "ready");
    let status = ns.proc("status");
    let pid = ns.child_pid.to_string();
    let user_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).expect("ns");
    assert_eq!(ns.finish(), "exit=0");
    assert_eq!(status_field(&status, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&status, "CapBnd"), "0000000000000000");
    assert_ne!(
        user_ns,
        std::fs::read_link("/proc/self/ns/user").expect("ns")
    );
}

#[test]
fn pid_namespace_is_left_to_the_launcher() {
    // `pid` is not an unshare in the child: PreExec only tells the launcher
    // (the broker clones into a new pid namespace, tested end to end in
    // tests/tests/sandbox_launch.rs). Preparing it must succeed.
    let out = Command::new(PROBE)
        .args(["preexec", "none", "nothing"])
        .env("PROBE_NS", "pid")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.starts_with("prepare-error="), "{stdout}");
}
