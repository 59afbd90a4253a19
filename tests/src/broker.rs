//! Running `openhook-broker` with a policy and a child, with a hang guard,
//! and looking at its fd table.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bin;

/// A temp directory with `srv/a.txt` (readable), `srv/sub/`, and a policy
/// allowing `srv/` read-only (`deny_errno = "EACCES"`) plus `extra` TOML.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub policy: PathBuf,
}

impl Setup {
    pub fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("srv/sub")).unwrap();
        std::fs::write(dir.path().join("srv/a.txt"), b"hello").unwrap();
        let policy = dir.path().join("policy.toml");
        let text = format!(
            "version = 1\ndeny_errno = \"EACCES\"\n\n[[allow]]\npath = \"{}/srv/\"\naccess = \"r\"\n\n{extra}",
            dir.path().display()
        );
        std::fs::write(&policy, text).unwrap();
        Setup { dir, policy }
    }

    /// `<dir>/REL` as a string.
    pub fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    /// `openhook-broker --policy P -- PROGRAM ARGS...`, stdin/stdout piped,
    /// stderr piped.
    pub fn broker(&self, program: &Path, args: &[&str]) -> Command {
        let broker = bin("openhook-broker");
        assert!(
            broker.exists(),
            "{} is not built: run `cargo build --workspace` (or cargo test --workspace)",
            broker.display()
        );
        let mut c = Command::new(broker);
        c.arg("--policy")
            .arg(&self.policy)
            .arg("--")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

/// The test peer binary (`tests/src/bin/openhook-test-peer`).
pub fn peer() -> PathBuf {
    bin("openhook-test-peer")
}

/// Waits for `child`, killing it and failing if it takes longer than
/// `limit` (a hang guard, not a timing assertion: the limit is generous).
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} still running after {limit:?}: hang", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Output of a finished broker run.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the command to completion under the hang guard.
pub fn run(mut cmd: Command) -> Finished {
    let mut child = cmd.spawn().unwrap();
    drop(child.stdin.take());
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let status = wait_or_kill(&mut child, Duration::from_secs(120));
    Finished {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// The open fds of process `pid`, as `N -> target` lines.
pub fn fd_table(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    v.sort();
    v
}

/// Number of open fds of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Line-by-line conversation with a running child's stdin/stdout.
pub struct Conversation {
    pub stdin: ChildStdin,
    pub stdout: BufReader<ChildStdout>,
}

impl Conversation {
    pub fn new(child: &mut Child) -> Conversation {
        Conversation {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
        }
    }

    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.stdout.read_line(&mut s).unwrap();
        s.trim_end().to_string()
    }

    pub fn send(&mut self, s: &str) {
        writeln!(self.stdin, "{s}").unwrap();
        self.stdin.flush().unwrap();
    }
}
