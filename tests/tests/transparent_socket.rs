//! A program binding its own unix socket under transparent mode: real QEMU
//! 7.2 with `-qmp unix:PATH,server=on,wait=off`. The broker mediates the
//! `bind` (docs/transparent.md): allowed by a rule for the socket's
//! directory with `types` including `socket` and `create = true`, it binds
//! a copy of QEMU's socket there itself; without such a rule the bind is
//! refused, QEMU says so and exits, and the audit log has the deny line.
//! The same command runs bare first (the operation works unconfined), then
//! under `learn` (whose policy must carry the socket rule), then enforced.
//!
//! Skipped only when qemu-system-x86_64 is absent and OPENHOOK_REQUIRE_QEMU
//! is unset.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use openhook_tests::broker::wait_or_kill;
use openhook_tests::fw::{self, FwMachine};
use openhook_tests::transparent::{self as tp, audit_lines, field};

const LIMIT: Duration = Duration::from_secs(60);

/// The QEMU command: the firmware machine, paused, QMP on a socket QEMU
/// binds itself.
fn qemu_args(s: &Path, sock: &Path) -> Vec<String> {
    let m = FwMachine::new(s.join("fw.bin"), s.join("serial.txt"));
    let mut a: Vec<String> = fw::QEMU_MACHINE_ARGS
        .iter()
        .map(|x| x.to_string())
        .collect();
    a.extend(m.args().iter().map(|x| x.to_string_lossy().into_owned()));
    a.push("-S".into());
    a.push("-qmp".into());
    a.push(format!("unix:{},server=on,wait=off", sock.display()));
    a
}

/// Waits for the socket, then negotiates, asks `query-status` and quits.
/// Returns the status QEMU reported.
fn drive_monitor(sock: &Path, child: &mut std::process::Child) -> Option<String> {
    let start = Instant::now();
    let stream = loop {
        if let Ok(s) = UnixStream::connect(sock) {
            break s;
        }
        if child.try_wait().unwrap().is_some() || start.elapsed() > LIMIT {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut greeting = String::new();
    r.read_line(&mut greeting).unwrap();
    assert!(greeting.contains("\"QMP\""), "greeting: {greeting}");
    reply(&mut w, &mut r, "{\"execute\":\"qmp_capabilities\"}\n");
    let st = reply(&mut w, &mut r, "{\"execute\":\"query-status\"}\n");
    let _ = reply(&mut w, &mut r, "{\"execute\":\"quit\"}\n");
    st["return"]["status"].as_str().map(str::to_string)
}

/// Sends one command, returns its answer (events skipped).
fn reply(w: &mut UnixStream, r: &mut BufReader<UnixStream>, cmd: &str) -> serde_json::Value {
    w.write_all(cmd.as_bytes()).unwrap();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v.get("return").is_some() || v.get("error").is_some() {
            return v;
        }
    }
}

struct Run {
    status: ExitStatus,
    monitor: Option<String>,
    stderr: String,
}

fn run(mut c: Command, sock: &Path) -> Run {
    let _ = std::fs::remove_file(sock);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let monitor = drive_monitor(sock, &mut child);
    let mut stderr_pipe = child.stderr.take().unwrap();
    let status = wait_or_kill(&mut child, LIMIT);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut stderr_pipe, &mut stderr).unwrap();
    Run {
        status,
        monitor,
        stderr,
    }
}

#[test]
fn qemu_binding_its_own_monitor_socket() {
    let Some(qemu) = fw::qemu_or_skip("qemu_binding_its_own_monitor_socket") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().to_path_buf();
    std::fs::copy(fw::image(fw::IMAGE), s.join("fw.bin")).unwrap();
    let run_dir = s.join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let sock: PathBuf = run_dir.join("qmp.sock");
    let args = qemu_args(&s, &sock);

    // Bare: QEMU binds the socket and answers on it.
    let mut bare = Command::new(&qemu);
    bare.args(&args);
    let r = run(bare, &sock);
    assert_eq!(
        r.monitor.as_deref(),
        Some("prelaunch"),
        "bare: {}",
        r.stderr
    );
    assert!(r.status.success(), "bare: {:?} {}", r.status, r.stderr);

    // Learned: the policy carries a create rule for the socket.
    let policy = s.join("learned.toml");
    let r = run(tp::learn_command(&policy, None, &qemu, &args), &sock);
    assert_eq!(
        r.monitor.as_deref(),
        Some("prelaunch"),
        "learn: {}",
        r.stderr
    );
    assert!(r.status.success(), "learn: {:?} {}", r.status, r.stderr);
    let text = std::fs::read_to_string(&policy).unwrap();
    let rule = format!("path = \"{}\"", sock.display());
    let at = text
        .find(&rule)
        .unwrap_or_else(|| panic!("no rule for the socket:\n{text}"));
    let body = &text[at..text[at..].find("\n\n").map_or(text.len(), |e| at + e)];
    assert!(body.contains("create = true"), "{body}");
    assert!(body.contains("\"socket\""), "{body}");

    // Enforced: the broker binds it for QEMU; one allow line names bind.
    let audit = s.join("audit.jsonl");
    let r = run(tp::command(&policy, Some(&audit), &[], &qemu, &args), &sock);
    assert_eq!(
        r.monitor.as_deref(),
        Some("prelaunch"),
        "enforced: {}",
        r.stderr
    );
    assert!(r.status.success(), "enforced: {:?} {}", r.status, r.stderr);
    let sock_str = sock.display().to_string();
    let lines = audit_lines(&audit);
    assert!(
        lines.iter().any(|l| field(l, "syscall") == "bind"
            && field(l, "path") == sock_str
            && field(l, "decision") == "allow"),
        "no allowed bind in the audit log"
    );

    // Without the socket rule: refused, QEMU reports it and exits.
    let stripped: String = {
        let start = text[..at].rfind("\n\n").map_or(0, |i| i + 2);
        let end = text[at..].find("\n\n").map_or(text.len(), |e| at + e + 2);
        format!("{}{}", &text[..start], &text[end..])
    };
    assert!(!stripped.contains(&rule));
    let denied_policy = s.join("no-socket.toml");
    std::fs::write(&denied_policy, stripped).unwrap();
    let audit2 = s.join("audit2.jsonl");
    let r = run(
        tp::command(&denied_policy, Some(&audit2), &[], &qemu, &args),
        &sock,
    );
    assert_eq!(r.monitor, None, "the monitor answered without its rule");
    assert!(!r.status.success(), "QEMU ran without its socket");
    assert!(
        r.stderr.contains(&sock_str),
        "QEMU's error names the socket: {}",
        r.stderr
    );
    assert!(!sock.exists(), "a socket file was created");
    assert!(
        audit_lines(&audit2)
            .iter()
            .any(|l| field(l, "syscall") == "bind"
                && field(l, "path") == sock_str
                && field(l, "decision") == "deny"),
        "no denied bind in the audit log"
    );
}
