//! Escape suite: every route out is first shown to work unconfined, then to
//! be refused inside the real confinement, entered through the same
//! `openhook_sandbox::enter` the emulator calls (via the probe binary).
//! Layer-alone runs show that Landlock and capabilities each stop their
//! share on their own, should seccomp miss something.
//!
//! Needs root (CI runs as root): unconfined mount, bpf, unshare, setuid,
//! ptrace and open_by_handle_at must succeed for the comparison to mean
//! anything, so a non-root run fails rather than passing vacuously.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

const PROBE: &str = env!("CARGO_BIN_EXE_openhook-sandbox-probe");

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Errno(i32),
    Killed(i32),
    Other(String),
}

fn run_env(layers: &str, action: &str, arg: &str, env: &[(&str, &str)]) -> (Outcome, String) {
    let mut cmd = Command::new(PROBE);
    cmd.args([layers, action, arg])
        .env_remove("OPENHOOK_SECCOMP");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run probe");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let outcome = if let Some(sig) = out.status.signal() {
        Outcome::Killed(sig)
    } else if out.status.code() == Some(0) && stdout == "ok" {
        Outcome::Ok
    } else if let (Some(0), Some(n)) = (out.status.code(), stdout.strip_prefix("errno=")) {
        Outcome::Errno(n.parse().expect("errno number"))
    } else {
        Outcome::Other(format!(
            "status {:?} stdout {stdout:?} stderr {stderr:?}",
            out.status
        ))
    };
    (outcome, stderr)
}

fn run(layers: &str, action: &str, arg: &str) -> Outcome {
    run_env(layers, action, arg, &[]).0
}

fn assert_root() {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "the escape suite needs root: the unconfined half must be able to succeed"
    );
}

/// Unconfined must succeed; confined with `layers` must give `expected`.
fn refused(layers: &str, action: &str, arg: &str, expected: Outcome) {
    assert_eq!(
        run("none", action, arg),
        Outcome::Ok,
        "{action} must work unconfined"
    );
    assert_eq!(
        run(layers, action, arg),
        expected,
        "{action} confined by {layers}"
    );
}

const SIGSYS: i32 = libc::SIGSYS;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("readable"), b"secret").expect("write");
        Self { dir }
    }
    fn readable(&self) -> String {
        self.dir.path().join("readable").display().to_string()
    }
    fn fresh(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
    fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }
}

#[test]
fn open_family_gets_eacces() {
    assert_root();
    let f = Fixture::new();
    for action in [
        "open",
        "openat",
        "openat2",
        "name_to_handle_at",
        "open_by_handle_at",
    ] {
        refused("all", action, &f.readable(), Outcome::Errno(libc::EACCES));
    }
    // creat: unconfined creates one file, confined may not create another.
    assert_eq!(run("none", "creat", &f.fresh("c1")), Outcome::Ok);
    assert_eq!(
        run("all", "creat", &f.fresh("c2")),
        Outcome::Errno(libc::EACCES)
    );
    assert!(!std::path::Path::new(&f.fresh("c2")).exists());
}

#[test]
fn kill_list_dies_of_sigsys() {
    assert_root();
    let f = Fixture::new();
    for (action, arg) in [
        ("io_uring", f.readable()),
        ("execve", String::new()),
        ("process_vm_readv", String::new()),
        ("kill-parent", String::new()),
        ("mount", f.dir()),
        ("unshare", String::new()),
        ("bpf", String::new()),
        ("setuid0", String::new()),
        ("raise-cap", String::new()),
    ] {
        refused("all", action, &arg, Outcome::Killed(SIGSYS));
    }
}

#[test]
fn ptrace_of_another_process_is_killed() {
    assert_root();
    let mut target = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let pid = target.id().to_string();
    let unconfined = run("none", "ptrace", &pid);
    let confined = run("all", "ptrace", &pid);
    target.kill().expect("kill sleep");
    target.wait().expect("reap sleep");
    assert_eq!(unconfined, Outcome::Ok);
    assert_eq!(confined, Outcome::Killed(SIGSYS));
}

#[test]
fn inet_socket_to_a_loopback_listener_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    refused("all", "tcp", &port, Outcome::Killed(SIGSYS));
    // Landlock alone (ABI ≥ 4) refuses the connect itself.
    refused("landlock", "tcp", &port, Outcome::Errno(libc::EACCES));
}

#[test]
fn abstract_unix_socket_is_refused() {
    let name = format!("openhook-escape-{}", std::process::id());
    let listener = abstract_listener(&name);
    refused("all", "abstract", &name, Outcome::Killed(SIGSYS));
    // Landlock alone (ABI ≥ 6) scopes abstract sockets.
    refused("landlock", "abstract", &name, Outcome::Errno(libc::EPERM));
    drop(listener);
}

fn abstract_listener(name: &str) -> std::os::unix::net::UnixListener {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).expect("abstract addr");
    std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind abstract")
}

#[test]
fn landlock_alone_stops_paths_exec_and_signals() {
    let f = Fixture::new();
    for action in ["open", "openat", "openat2", "io_uring"] {
        refused(
            "landlock",
            action,
            &f.readable(),
            Outcome::Errno(libc::EACCES),
        );
    }
    assert_eq!(
        run("landlock", "creat", &f.fresh("c3")),
        Outcome::Errno(libc::EACCES)
    );
    refused("landlock", "execve", "", Outcome::Errno(libc::EACCES));
    refused("landlock", "kill-parent", "", Outcome::Errno(libc::EPERM));
}

#[test]
fn capabilities_alone_stop_privileged_calls() {
    assert_root();
    let f = Fixture::new();
    for (action, arg) in [
        ("raise-cap", String::new()),
        ("mount", f.dir()),
        ("unshare", String::new()),
        ("bpf", String::new()),
        ("open_by_handle_at", f.readable()),
    ] {
        refused("caps", action, &arg, Outcome::Errno(libc::EPERM));
    }
}

#[test]
fn confined_process_status_shows_every_layer() {
    let mut child = Command::new(PROBE)
        .args(["all", "status-wait"])
        .env_remove("OPENHOOK_SECCOMP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn probe");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "ready");
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("read status");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"x")
        .expect("release");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "probe exited with {:?}", out.status);
    for want in [
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "CapEff:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapInh:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
    ] {
        assert!(
            status.lines().any(|l| l == want),
            "missing `{want}` in:\n{status}"
        );
    }
    // The same process unconfined shows none of it (the check can fail).
    let mut plain = Command::new(PROBE)
        .args(["none", "status-wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn probe");
    let mut line = String::new();
    BufReader::new(plain.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", plain.id())).expect("read status");
    drop(plain.stdin.take());
    plain.wait().expect("wait");
    assert!(status.lines().any(|l| l == "Seccomp:\t0"), "{status}");
}

#[test]
fn entering_with_a_thread_running_is_refused() {
    let (outcome, stderr) = run_env("all", "thread-then-enter", "", &[]);
    assert!(matches!(outcome, Outcome::Other(_)), "{outcome:?}");
    assert!(stderr.contains("before any thread exists"), "{stderr}");
    // Without the thread the same entry succeeds.
    assert_eq!(run("all", "nothing", ""), Outcome::Ok);
}

#[test]
fn trap_debug_mode_names_the_refused_syscall_and_continues() {
    let (outcome, stderr) = run_env("all", "unshare", "", &[("OPENHOOK_SECCOMP", "trap")]);
    assert_eq!(outcome, Outcome::Errno(libc::ENOSYS), "{stderr}");
    let needle = format!("seccomp refused syscall {}", libc::SYS_unshare);
    assert!(stderr.contains(&needle), "{stderr}");
}

#[test]
fn confined_process_keeps_what_an_emulator_needs() {
    // Threads (glibc's clone3 gets ENOSYS and falls back to a filtered
    // clone) and AF_UNIX sockets work on the main thread…
    assert_eq!(run("all", "thread", ""), Outcome::Ok);
    assert_eq!(run("all", "unix-socket", ""), Outcome::Ok);
    // …while a vCPU thread's own filter narrows further: sockets are not on
    // its list (the same thread without that filter may).
    assert_eq!(run("none", "vcpu-thread-unix-socket", ""), Outcome::Ok);
    assert_eq!(
        run("all", "vcpu-thread-unix-socket", ""),
        Outcome::Killed(SIGSYS)
    );
}

#[test]
fn report_names_every_layer_for_this_kernel() {
    let out = Command::new(PROBE)
        .args(["report", "-"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for layer in ["no_new_privs", "capabilities", "landlock", "seccomp"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(layer)),
            "{layer}: {text}"
        );
    }
    let abi = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert!(text.contains(abi.trim()), "{text}");
    assert!(text.contains("ABI "), "{text}");
}

#[test]
fn path_taking_calls_fail_soft_with_eacces() {
    let f = Fixture::new();
    assert_eq!(run("none", "stat", &f.readable()), Outcome::Ok);
    assert_eq!(
        run("all", "stat", &f.readable()),
        Outcome::Errno(libc::EACCES)
    );
    // A missing path answers the same: no existence probing through stat.
    assert_eq!(
        run("all", "stat", &f.fresh("missing")),
        Outcome::Errno(libc::EACCES)
    );
    assert_eq!(
        run("none", "stat", &f.fresh("missing")),
        Outcome::Errno(libc::ENOENT)
    );
}
