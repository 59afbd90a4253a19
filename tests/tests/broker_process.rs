//! The broker as a process: exit status and signals mirrored, SIGTERM
//! forwarded, the child's fd table exactly the declared fds + the hook fd,
//! start-up errors as one line.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use openhook_tests::bin;
use openhook_tests::broker::{run, wait_or_kill, Conversation, Setup};

fn sh() -> &'static Path {
    Path::new("/bin/sh")
}

#[test]
fn exit_status_is_mirrored() {
    let s = Setup::new("");
    for code in [0, 3, 77, 255] {
        let f = run(s.broker(sh(), &["-c", &format!("exit {code}")]));
        assert_eq!(f.status.code(), Some(code), "{}", f.stderr);
    }
}

#[test]
fn killed_child_gives_128_plus_signal() {
    let s = Setup::new("");
    let f = run(s.broker(sh(), &["-c", "kill -KILL $$"]));
    assert_eq!(f.status.code(), Some(128 + 9));
    let f = run(s.broker(sh(), &["-c", "kill -SEGV $$"]));
    assert_eq!(f.status.code(), Some(128 + 11));
}

#[test]
fn sigterm_and_sigint_are_forwarded() {
    let s = Setup::new("");
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
        // Also with the signals ignored when the broker starts, as a
        // background job of a non-interactive shell inherits SIGINT: the
        // child inherited the SIG_IGN, ignored what the broker forwarded,
        // and both kept running (the first CI run of a fresh clone hung
        // here, started in the background).
        for ignored in [false, true] {
            let c = s.broker(sh(), &["-c", "echo ready; read x"]);
            let prelude = if ignored { "trap '' TERM INT; " } else { "" };
            let mut wrapped = Command::new(sh());
            wrapped
                .arg("-c")
                .arg(format!("{prelude}exec \"$0\" \"$@\""))
                .arg(c.get_program())
                .args(c.get_args())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = wrapped.spawn().unwrap();
            let mut conv = Conversation::new(&mut child);
            assert_eq!(conv.line(), "ready");
            // The broker blocks the signals before it spawns the child, so
            // by now it will take them. Send to the broker only.
            let broker =
                rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
            rustix::process::kill_process(
                broker,
                rustix::process::Signal::from_named_raw(sig).unwrap(),
            )
            .unwrap();
            // Without forwarding, sh would wait on and the hang guard fire.
            let status = wait_or_kill(&mut child, Duration::from_secs(20));
            assert_eq!(
                status.code(),
                Some(128 + sig),
                "SIG{name}, inherited ignored: {ignored}"
            );
        }
    }
}

/// The fd table of the broker's child (`sh`, paused on stdin), read from
/// outside: the sandboxed child cannot read /proc itself. Returns
/// `fds N... cloexec M...`.
fn child_fds(s: &Setup) -> String {
    let mut child = s
        .broker(sh(), &["-c", "echo ready; read x"])
        .spawn()
        .unwrap();
    let mut conv = Conversation::new(&mut child);
    assert_eq!(conv.line(), "ready");
    let broker = child.id();
    let kids = std::fs::read_to_string(format!("/proc/{broker}/task/{broker}/children")).unwrap();
    let pid: u32 = kids.trim().parse().unwrap();
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    fds.sort_unstable();
    let cloexec: Vec<String> = fds
        .iter()
        .filter(|n| {
            let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{n}")).unwrap();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .unwrap()
                .trim();
            u32::from_str_radix(flags, 8).unwrap() & 0o2000000 != 0
        })
        .map(|n| n.to_string())
        .collect();
    let all: Vec<String> = fds.iter().map(|n| n.to_string()).collect();
    conv.send("done");
    let status = wait_or_kill(&mut child, Duration::from_secs(60));
    assert!(status.success());
    format!("fds {} cloexec {}", all.join(" "), cloexec.join(" "))
}

#[test]
fn child_sees_only_declared_fds_and_the_hook_fd() {
    let s = Setup::new("");
    let sock = s.path("qmp.sock");
    let extra = format!(
        "[[listen]]\npath = \"{sock}\"\nfd = 10\n\n[[preopen]]\npath = \"{}\"\naccess = \"r\"\nfd = 11\n",
        s.path("srv/a.txt")
    );
    std::fs::write(
        &s.policy,
        std::fs::read_to_string(&s.policy).unwrap() + &extra,
    )
    .unwrap();
    // A descriptor the broker inherits without close-on-exec: it must not
    // reach the child.
    let (leak_r, _leak_w) = rustix::pipe::pipe().unwrap();
    assert_eq!(child_fds(&s), "fds 0 1 2 3 10 11 cloexec ");
    // The pipe really was inheritable (so the check above could fail).
    let flags = rustix::io::fcntl_getfd(&leak_r).unwrap();
    assert!(!flags.contains(rustix::io::FdFlags::CLOEXEC));
}

#[test]
fn hook_fd_avoids_declared_numbers() {
    let s = Setup::new("");
    let extra = format!(
        "[[preopen]]\npath = \"{}\"\naccess = \"r\"\nfd = 3\n",
        s.path("srv/a.txt")
    );
    std::fs::write(
        &s.policy,
        std::fs::read_to_string(&s.policy).unwrap() + &extra,
    )
    .unwrap();
    assert_eq!(child_fds(&s), "fds 0 1 2 3 4 cloexec ");
}

#[test]
fn opens_through_the_hook() {
    let s = Setup::new("");
    let f = run(s.broker(
        &bin("openhook-open"),
        &[
            &s.path("srv/a.txt"),
            "/etc/passwd",
            &s.path("srv/none"),
            "srv/a.txt",
        ],
    ));
    let lines: Vec<&str> = f.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{} ok fd=", s.path("srv/a.txt"))),
        "{}",
        f.stdout
    );
    assert_eq!(lines[1], "/etc/passwd errno=EACCES");
    assert_eq!(lines[2], format!("{} errno=ENOENT", s.path("srv/none")));
    assert_eq!(lines[3], "srv/a.txt errno=EACCES");
    assert_eq!(
        f.status.code(),
        Some(1),
        "openhook-open exits 1 when something was refused"
    );
    // The same file is readable outside the broker (the refusal is policy).
    assert!(std::fs::read("/etc/passwd").is_ok());
}

#[test]
fn startup_errors_are_one_line() {
    let s = Setup::new("");
    std::fs::write(
        &s.policy,
        "version = 1\n[[allow]]\npath = \"/x/\"\naccess = \"rx\"\n",
    )
    .unwrap();
    let f = run(s.broker(sh(), &["-c", "exit 0"]));
    assert_eq!(f.status.code(), Some(125));
    let p = s.policy.display().to_string();
    assert!(
        f.stderr.starts_with(&format!("openhook-broker: {p}:4:")),
        "{}",
        f.stderr
    );
    assert_eq!(f.stderr.lines().count(), 1, "{}", f.stderr);

    let s = Setup::new("");
    let f = run(s.broker(Path::new("no-such-program-xyz"), &[]));
    assert_eq!(f.status.code(), Some(127));
    assert_eq!(
        f.stderr,
        "openhook-broker: no-such-program-xyz: command not found\n"
    );

    let f = run(s.broker(&s.policy, &[]));
    assert_eq!(f.status.code(), Some(126), "{}", f.stderr);
}

#[test]
fn check_prints_rules_or_the_error() {
    let s = Setup::new("");
    let out = Command::new(bin("openhook-broker"))
        .args(["check", "--policy"])
        .arg(&s.policy)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&s.path("srv/")), "{text}");
    std::fs::write(&s.policy, "version = 2\n").unwrap();
    let out = Command::new(bin("openhook-broker"))
        .args(["check", "--policy"])
        .arg(&s.policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("openhook-broker: {}:1:", s.policy.display())),
        "{err}"
    );
}
