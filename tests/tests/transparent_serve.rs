//! Serving transparent-mode notifications under load, with the static
//! escape probe (`tests/data/transparent/escape-probe.c`): many target
//! threads at once, a FIFO without a writer that must not stall the broker,
//! and target processes killed in the middle of their requests (the broker
//! keeps serving and holds no more fds afterwards than before); the launch
//! contract (status mirrored, SIGTERM forwarded, declared fds only).
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use openhook_tests::broker::{fd_count, wait_or_kill};
use openhook_tests::transparent as tp;

struct Fx {
    _dir: tempfile::TempDir,
    s: PathBuf,
    probe: PathBuf,
    policy: PathBuf,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().to_path_buf();
        std::fs::create_dir_all(s.join("allowed")).unwrap();
        std::fs::create_dir_all(s.join("outside")).unwrap();
        std::fs::create_dir_all(s.join("sockets")).unwrap();
        std::fs::write(s.join("allowed/file"), b"inside").unwrap();
        std::fs::write(s.join("outside/secret"), b"secret").unwrap();
        let fifo = s.join("allowed/fifo");
        let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(st.success());
        let probe = s.join("escape-probe");
        tp::gcc(&tp::source("escape-probe.c"), &probe, &["-static"]);
        let policy = s.join("policy.toml");
        let d = s.display();
        std::fs::write(
            &policy,
            format!(
                "version = 1\ndeny_errno = \"EPERM\"\n\n\
                 [[allow]]\npath = \"{d}/allowed/\"\naccess = \"r\"\ntypes = [\"file\", \"fifo\"]\n\n\
                 [[allow]]\npath = \"{d}/sockets/\"\naccess = \"rw\"\ntypes = [\"socket\"]\n"
            ),
        )
        .unwrap();
        Fx {
            _dir: dir,
            s,
            probe,
            policy,
        }
    }

    fn ps(&self, rel: &str) -> String {
        self.s.join(rel).display().to_string()
    }

    fn run(&self, confined: bool, args: &[&str]) -> String {
        let mut c = if confined {
            tp::command(&self.policy, None, &[], &self.probe, args)
        } else {
            let mut c = Command::new(&self.probe);
            c.args(args);
            c
        };
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let t = std::thread::spawn(move || std::io::read_to_string(out).unwrap());
        let st = wait_or_kill(&mut child, Duration::from_secs(60));
        let out = t.join().unwrap();
        assert!(st.success(), "{args:?} (confined {confined}): {st:?} {out}");
        out.trim().to_string()
    }
}

#[test]
fn many_threads_at_once_each_get_their_own_answer() {
    let f = Fx::new();
    let args = [
        "threads",
        "16",
        "300",
        &f.ps("allowed/file"),
        &f.ps("outside/secret"),
    ];
    // Unconfined both files open (the outside one is no EPERM: all "bad").
    assert_eq!(
        f.run(false, &args),
        "ok threads inside=4800 denied=0 bad=4800"
    );
    // Confined: every inside open is that file, every outside one EPERM.
    assert_eq!(
        f.run(true, &args),
        "ok threads inside=4800 denied=4800 bad=0"
    );
}

#[test]
fn a_fifo_without_writer_stalls_nothing() {
    let f = Fx::new();
    let file = std::fs::metadata(f.s.join("allowed/file")).unwrap();
    let want = format!("ok fd {} {}", file.dev(), file.ino());
    let args = ["fifo", &f.ps("allowed/fifo"), &f.ps("allowed/file")];
    // Unconfined the FIFO's open blocks its thread; the other one goes on.
    assert_eq!(f.run(false, &args), want);
    // Confined the broker must not block on it either (nor stop serving).
    assert_eq!(f.run(true, &args), want);
}

#[test]
fn targets_killed_mid_request_leave_the_broker_serving_and_leak_nothing() {
    let f = Fx::new();
    let file = std::fs::metadata(f.s.join("allowed/file")).unwrap();
    let mut child = tp::command(
        &f.policy,
        None,
        &[],
        &f.probe,
        ["churn", "300", &f.ps("allowed/file")],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let broker = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let before = fd_count(broker);
    writeln!(stdin, "go").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "churned");
    // Let any request still being served finish (at most 10 s: a hang
    // guard, not a timing).
    let mut after = fd_count(broker);
    for _ in 0..500 {
        if after == before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        after = fd_count(broker);
    }
    writeln!(stdin, "go").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        format!("ok fd {} {}", file.dev(), file.ino()),
        "the broker no longer serves after 300 killed targets"
    );
    let st = wait_or_kill(&mut child, Duration::from_secs(60));
    assert!(st.success(), "{st:?}");
    assert_eq!(after, before, "broker fds before and after the churn");
}

#[test]
fn launch_contract_status_signals_and_fds() {
    let f = Fx::new();
    let run = |args: &[&str]| -> std::process::ExitStatus {
        let mut c = tp::command(&f.policy, None, &[], &f.probe, args);
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_or_kill(&mut child, Duration::from_secs(60))
    };
    // Exit status mirrored; a killed child is 128 + signal.
    assert_eq!(run(&["exit", "7"]).code(), Some(7));
    assert_eq!(run(&["raise", "9"]).code(), Some(128 + 9));
    // SIGTERM to the broker reaches the program.
    let mut child = tp::command(&f.policy, None, &[], &f.probe, ["wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(
        wait_or_kill(&mut child, Duration::from_secs(60)).code(),
        Some(128 + 15)
    );
    // Declared fds only: fd 5 held by the launcher stays behind, --pass-fd 7
    // arrives at 7.
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg("exec 5<\"$0\"; exec 7<\"$0\"; exec \"$@\"")
        .arg(f.s.join("allowed/file"))
        .arg(tp::broker())
        .args(["--policy"])
        .arg(&f.policy)
        .args(["--transparent", "--pass-fd", "7", "--"])
        .arg(&f.probe)
        .arg("fds");
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ok 0 1 2 7");
    // Without the broker the probe does see both (and whatever else the
    // test harness lets children inherit).
    let o = Command::new("/bin/sh")
        .arg("-c")
        .arg("exec 5<\"$0\"; exec 7<\"$0\"; exec \"$@\"")
        .arg(f.s.join("allowed/file"))
        .arg(&f.probe)
        .arg("fds")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let bare = String::from_utf8_lossy(&o.stdout).into_owned();
    let bare: Vec<&str> = bare.split_whitespace().collect();
    assert!(bare.contains(&"5") && bare.contains(&"7"), "{bare:?}");
}

#[test]
fn connects_that_block_neither_stall_serving_nor_outlive_the_program() {
    let f = Fx::new();
    // A listener with a backlog of 1 that never accepts: connects past the
    // backlog block in the kernel.
    let sock = f.s.join("sockets/full.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    rustix::net::listen(&listener, 1).unwrap();
    let file = std::fs::metadata(f.s.join("allowed/file")).unwrap();
    let want = format!("ok fd {} {}", file.dev(), file.ino());
    let args = [
        "connect_block",
        &sock.display().to_string(),
        "4",
        &f.ps("allowed/file"),
    ];
    // Unconfined: the open is answered, the program exits.
    assert_eq!(f.run(false, &args), want);
    // Confined: the broker performs the connects; it must still answer the
    // open, and end when the program does (the hang guard fails it).
    assert_eq!(f.run(true, &args), want);
    drop(listener);
}

#[test]
fn names_at_page_edges_read_as_the_kernel_reads_them() {
    let f = Fx::new();
    let file = f.ps("allowed/file");
    for mode in ["end", "cross", "unterminated", "long"] {
        let args = ["edge_open", &file, mode];
        let bare = f.run(false, &args);
        let conf = f.run(true, &args);
        assert_eq!(conf, bare, "{mode}: confined vs the kernel's own answer");
    }
    // The kernel's answers, so the cases are what they claim.
    assert!(f
        .run(false, &["edge_open", &file, "end"])
        .starts_with("ok fd"));
    assert_eq!(
        f.run(false, &["edge_open", &file, "unterminated"]),
        "err 14"
    );
    assert_eq!(f.run(false, &["edge_open", &file, "long"]), "err 36");
}

#[test]
fn a_process_left_behind_gets_no_file_once_the_broker_is_gone() {
    let f = Fx::new();
    let file = std::fs::metadata(f.s.join("allowed/file")).unwrap();
    let args = ["orphan", &f.ps("allowed/file")];
    // Unconfined the grandchild opens the file after its parent exited.
    assert_eq!(
        f.run(false, &args),
        format!("ok fd {} {}", file.dev(), file.ino())
    );
    // Confined the broker ends with the program; the grandchild (which
    // waits until the broker is gone) keeps the filter, whose listener is
    // closed: even an allowed path fails (ENOSYS).
    let path = f.ps("allowed/file");
    assert_eq!(f.run(true, &["orphan", &path, "wait"]), "err 38");
}
