//! The real `openhook-broker` hardens the child it launches (pre-exec part
//! of the sandbox): an fd the broker holds without CLOEXEC does not reach
//! the child (while a plain fork/exec of the same program does get it), the
//! environment is scrubbed, and the child runs with no_new_privs and every
//! capability set empty.
//!
//! The child is `/bin/sh -c 'echo ready; read x'`: it says when it runs and
//! then waits for a line, so the test reads `/proc/<child>/…` from outside
//! (the child itself cannot: its exec Landlock domain allows reading only
//! its own binary and libraries).
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use openhook_tests::bin;

const SCRIPT: &str = "echo ready; read x";
const SECRET: &str = "OPENHOOK_TEST_SECRET_TOKEN";

/// An fd that any process this test spawns inherits (no CLOEXEC), like a
/// descriptor a careless parent of the broker left open.
fn inheritable_fd() -> OwnedFd {
    let (r, _w) = rustix::pipe::pipe().expect("pipe");
    // Far above what the broker opens itself, so its number is ours.
    let high = rustix::io::fcntl_dupfd_cloexec(&r, 200).expect("dup");
    rustix::io::fcntl_setfd(&high, rustix::io::FdFlags::empty()).expect("clear cloexec");
    high
}

fn wait_ready(child: &mut Child) {
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n", "the child did not start");
}

fn finish(mut child: Child) -> std::process::ExitStatus {
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"\n")
        .expect("write");
    child.wait().expect("wait")
}

fn status_field(pid: u32, key: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("{key} missing in /proc/{pid}/status"))
}

fn has_fd(pid: u32, fd: i32) -> bool {
    Path::new(&format!("/proc/{pid}/fd/{fd}")).exists()
}

fn has_env(pid: u32, key: &str) -> bool {
    let env = fs::read(format!("/proc/{pid}/environ")).expect("environ");
    env.split(|&b| b == 0)
        .any(|kv| kv.starts_with(format!("{key}=").as_bytes()))
}

/// The broker's children (it forks from its main thread).
fn broker_child(broker: u32) -> u32 {
    let kids =
        fs::read_to_string(format!("/proc/{broker}/task/{broker}/children")).expect("children");
    let kids: Vec<u32> = kids
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert_eq!(kids.len(), 1, "broker children: {kids:?}");
    kids[0]
}

fn policy_file(dir: &Path, mode: &str) -> std::path::PathBuf {
    let p = dir.join("policy.toml");
    fs::write(
        &p,
        format!(
            "version = 1\n[[allow]]\npath = \"{}/\"\naccess = \"r\"\n[sandbox]\nmode = \"{mode}\"\n",
            dir.display()
        ),
    )
    .expect("policy");
    p
}

fn broker(policy: &Path) -> Child {
    Command::new(bin("openhook-broker"))
        .arg("--policy")
        .arg(policy)
        .args(["--", "/bin/sh", "-c", SCRIPT])
        .env(SECRET, "hunter2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn broker")
}

#[test]
fn plain_fork_exec_inherits_the_fd_and_the_environment() {
    // Control: without the broker's hardening the same fd and variable
    // reach the same program, and it keeps root's capabilities.
    let fd = inheritable_fd();
    let mut child = Command::new("/bin/sh")
        .args(["-c", SCRIPT])
        .env(SECRET, "hunter2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    wait_ready(&mut child);
    let pid = child.id();
    assert!(has_fd(pid, fd.as_raw_fd()), "control: fd not inherited");
    assert!(has_env(pid, SECRET), "control: env not inherited");
    assert_eq!(status_field(pid, "NoNewPrivs:"), "0");
    if rustix::process::geteuid().is_root() {
        assert_ne!(status_field(pid, "CapEff:"), "0000000000000000");
        assert_ne!(status_field(pid, "CapBnd:"), "0000000000000000");
    }
    assert!(finish(child).success());
}

#[test]
fn broker_child_gets_no_undeclared_fd_no_env_no_privilege() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy_file(dir.path(), "require");
    let fd = inheritable_fd();
    let mut b = broker(&policy);
    wait_ready(&mut b);
    let broker_pid = b.id();
    // The broker itself holds the fd (it inherited it without CLOEXEC) …
    assert!(has_fd(broker_pid, fd.as_raw_fd()), "broker lacks the fd");
    assert!(has_env(broker_pid, SECRET));
    let child = broker_child(broker_pid);
    // … the child it launched does not.
    assert!(
        !has_fd(child, fd.as_raw_fd()),
        "undeclared fd {} reached the child",
        fd.as_raw_fd()
    );
    // Only 0-2 and the hook fd (3).
    let mut fds: Vec<i32> = fs::read_dir(format!("/proc/{child}/fd"))
        .expect("fd dir")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("fd")
        })
        .collect();
    fds.sort_unstable();
    assert_eq!(fds, [0, 1, 2, 3], "child fds");
    assert!(!has_env(child, SECRET), "secret variable reached the child");
    assert_eq!(status_field(child, "NoNewPrivs:"), "1");
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(status_field(child, set), "0000000000000000", "{set}");
    }
    if rustix::process::geteuid().is_root() {
        // Root holds CAP_SETPCAP, so the bounding set is emptied too.
        assert_eq!(status_field(child, "CapBnd:"), "0000000000000000");
    }
    let st = finish(b);
    assert_eq!(st.code(), Some(0), "broker exit");
}

#[test]
fn mode_off_still_closes_fds_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy_file(dir.path(), "off");
    let fd = inheritable_fd();
    let mut b = Command::new(bin("openhook-broker"))
        .arg("--policy")
        .arg(&policy)
        .args(["--", "/bin/sh", "-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn broker");
    wait_ready(&mut b);
    let child = broker_child(b.id());
    assert!(
        !has_fd(child, fd.as_raw_fd()),
        "undeclared fd reached the child"
    );
    assert_eq!(
        status_field(child, "NoNewPrivs:"),
        "0",
        "off applies no layer"
    );
    let out = {
        b.stdin.take().expect("stdin").write_all(b"\n").expect("w");
        b.wait_with_output().expect("wait")
    };
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sandbox is OFF"), "stderr: {err}");
}

/// The kernel's Landlock ABI, asked independently of the sandbox crate
/// (`landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`).
fn landlock_abi() -> i64 {
    let out = Command::new("python3")
        .args([
            "-c",
            "import ctypes; l = ctypes.CDLL(None, use_errno=True); print(l.syscall(444, None, 0, 1))",
        ])
        .output()
        .expect("python3 (scripts/setup-deps.sh installs it)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("abi")
}

fn check(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(bin("openhook-broker"))
        .arg("check")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn layer_line<'a>(report: &'a str, layer: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(layer))
        .unwrap_or_else(|| panic!("no {layer} line in:\n{report}"))
}

#[test]
fn check_sandbox_reports_each_layer_and_the_kernels_landlock_abi() {
    let (code, out) = check(&["--sandbox"], &[]);
    assert_eq!(code, Some(0), "{out}");
    for layer in ["no_new_privs", "capabilities", "seccomp"] {
        assert!(layer_line(&out, layer).contains("enforced"), "{out}");
    }
    let abi = landlock_abi();
    let ll = layer_line(&out, "landlock");
    if abi > 0 {
        assert!(
            ll.contains(&format!("ABI {abi} ")),
            "kernel ABI {abi}: {ll}"
        );
        assert_eq!(ll.trim_end().ends_with("enforced"), abi >= 6, "{ll}");
    } else {
        assert!(
            ll.contains("not available") && ll.contains("REFUSES"),
            "{ll}"
        );
    }
    assert!(!out.contains("OPENHOOK_SECCOMP"), "{out}");
    // The seccomp debug switch is reported.
    let (_, debug) = check(&["--sandbox"], &[("OPENHOOK_SECCOMP", "trap")]);
    assert!(debug.contains("OPENHOOK_SECCOMP is set"), "{debug}");
}

#[test]
fn check_policy_sandbox_says_whether_the_launch_would_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = policy_file(dir.path(), "require");
    let p = policy.to_str().expect("utf-8");
    let (code, out) = check(&["--policy", p, "--sandbox"], &[]);
    if landlock_abi() >= 6 {
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.contains("mode = \"require\": every layer will be enforced"),
            "{out}"
        );
    } else {
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("launch REFUSED on this kernel: landlock"),
            "{out}"
        );
    }
    let policy = policy_file(dir.path(), "off");
    let (code, out) = check(
        &["--policy", policy.to_str().expect("utf-8"), "--sandbox"],
        &[],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("UNCONFINED"), "{out}");
}

fn write_policy(dir: &Path, sandbox: &str) -> std::path::PathBuf {
    let p = dir.join("policy.toml");
    fs::write(
        &p,
        format!(
            "version = 1\n[[allow]]\npath = \"{}/\"\naccess = \"r\"\n[sandbox]\n{sandbox}\n",
            dir.display()
        ),
    )
    .expect("policy");
    p
}

#[test]
fn sandbox_table_user_and_namespaces_reach_the_child() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: switching users and creating namespaces needs a root broker");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write_policy(
        dir.path(),
        "user = \"nobody\"\nnamespaces = [\"net\", \"ipc\", \"uts\"]",
    );
    let mut b = broker(&policy);
    wait_ready(&mut b);
    let broker_pid = b.id();
    let child = broker_child(broker_pid);
    let uid = status_field(child, "Uid:");
    assert!(
        uid.split_whitespace().all(|u| u == "65534"),
        "child uids: {uid}"
    );
    for ns in ["net", "ipc", "uts"] {
        let theirs = fs::read_link(format!("/proc/{child}/ns/{ns}")).expect("ns");
        let ours = fs::read_link(format!("/proc/{broker_pid}/ns/{ns}")).expect("ns");
        assert_ne!(theirs, ours, "{ns} namespace not new");
    }
    // Control: a namespace not asked for is shared.
    assert_eq!(
        fs::read_link(format!("/proc/{child}/ns/mnt")).expect("ns"),
        fs::read_link(format!("/proc/{broker_pid}/ns/mnt")).expect("ns")
    );
    assert_eq!(status_field(child, "NoNewPrivs:"), "1");
    assert_eq!(finish(b).code(), Some(0));
}

#[test]
fn pid_namespace_makes_the_child_pid_1_of_its_own() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: creating namespaces needs a root broker");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write_policy(dir.path(), "namespaces = [\"pid\"]");
    let mut b = broker(&policy);
    wait_ready(&mut b);
    let broker_pid = b.id();
    let child = broker_child(broker_pid);
    // NSpid lists the pid in each namespace, outermost first: the child is
    // pid 1 of a namespace of its own.
    let nspid = status_field(child, "NSpid:");
    assert_eq!(nspid, format!("{child}\t1"), "NSpid of the child");
    assert_ne!(
        fs::read_link(format!("/proc/{child}/ns/pid")).expect("ns"),
        fs::read_link(format!("/proc/{broker_pid}/ns/pid")).expect("ns"),
        "pid namespace not new"
    );
    // The rest of the hardening still ran, and the exit status comes back.
    assert_eq!(status_field(child, "NoNewPrivs:"), "1");
    assert_eq!(finish(b).code(), Some(0));
}

#[test]
fn an_unknown_sandbox_user_stops_the_launch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write_policy(dir.path(), "user = \"no-such-user-openhook\"");
    let out = Command::new(bin("openhook-broker"))
        .arg("--policy")
        .arg(&policy)
        .args(["--", "/bin/sh", "-c", "echo ran"])
        .output()
        .expect("run broker");
    assert_eq!(out.status.code(), Some(125));
    assert!(out.stdout.is_empty(), "the program ran");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sandbox: ") && err.contains("no-such-user-openhook"),
        "{err}"
    );
}
