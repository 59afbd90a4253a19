//! Real QEMU 7.2 (`qemu-system-x86_64 -M microvm`) under transparent mode,
//! with a policy made by `openhook-broker learn`, next to a bare QEMU run
//! of the same command in the same test:
//! - the project's guest firmware with a virtio-blk disk: transcript, exit
//!   status and disk bytes identical; every file QEMU opened (strace of a
//!   bare run, and QEMU's own fd table while paused) is in the audit log;
//!   `/proc/<qemu>/status` while paused shows no_new_privs, seccomp filter
//!   mode and no capabilities;
//! - the drive moved outside the learned policy: QEMU's own error naming
//!   the file, non-zero exit, the file untouched, a deny line;
//! - the real `qemu.qmp` client on a broker-bound `[[listen]]` monitor:
//!   `send_fd_scm` + `add-fd`, a `file` block node on `/dev/fdset/1` reads
//!   and writes the disk, `query-fdsets`;
//! - the disk only as `[[preopen]]` fds in an `-add-fd` set used by
//!   `-drive file=/dev/fdset/2`;
//! - QEMU binding its own `-qmp unix:` socket: learned, then bound by the
//!   broker under that rule; without the rule QEMU's own error and a deny;
//! - QEMU's own `-sandbox on,...` filter (libvirt's default) stacked on ours;
//! - `learn` on a small dynamic C program, then enforce; the same for
//!   Python (hundreds of start-up probes, and a stat of `/`).
//!
//! QEMU starts paused (`-S`, QMP on stdio) so the test can look at the
//! running process; `cont` runs the firmware to its isa-debug-exit.
//! A learned policy never holds a subtree rule for `/`, `/tmp`, `/home`,
//! `/root` or the test's scratch directory.
//!
//! Skipped only when qemu-system-x86_64 is absent and OPENHOOK_REQUIRE_QEMU
//! is unset.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use openhook_tests::broker::wait_or_kill;
use openhook_tests::fw::{self, FwMachine};
use openhook_tests::transparent::{self as tp, audit_lines, field, status_field};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

struct Fx {
    _dir: tempfile::TempDir,
    s: PathBuf,
    qemu: PathBuf,
    bios: PathBuf,
    disk: PathBuf,
    serial: PathBuf,
}

impl Fx {
    fn new(test: &str) -> Option<Fx> {
        let qemu = fw::qemu_or_skip(test)?;
        let dir = tempfile::tempdir().expect("tempdir");
        let s = dir.path().to_path_buf();
        // The firmware is copied in: the command names only scratch files.
        let bios = s.join("fw.bin");
        std::fs::copy(fw::image(fw::IMAGE), &bios).unwrap();
        let disk = s.join("disk.img");
        fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
        Some(Fx {
            serial: s.join("serial.txt"),
            _dir: dir,
            s,
            qemu,
            bios,
            disk,
        })
    }

    /// QEMU's arguments for the firmware with `disk`, paused, QMP on stdio.
    fn args(&self, disk: &Path) -> Vec<OsString> {
        let m =
            FwMachine::new(self.bios.clone(), self.serial.clone()).drive(disk.to_path_buf(), false);
        let mut a: Vec<OsString> = fw::QEMU_MACHINE_ARGS.iter().map(OsString::from).collect();
        a.extend(m.args());
        a.extend(["-S", "-qmp", "stdio"].map(OsString::from));
        a
    }

    fn reset(&self) {
        fw::prepare_disk(&self.disk, fw::DISK_SECTORS).unwrap();
        let _ = std::fs::remove_file(&self.serial);
    }

    /// `learn` on the standard command; returns the policy's path.
    fn learn(&self) -> PathBuf {
        self.reset();
        let out = self.s.join("learned.toml");
        let audit = self.s.join("learn-audit.jsonl");
        let r = run_paused(
            {
                let mut c =
                    tp::learn_command(&out, Some(&audit), &self.qemu, self.args(&self.disk));
                c.current_dir(&self.s);
                c
            },
            Some(&self.qemu),
            |_| {},
        );
        assert_eq!(r.code(), Some(fw::EXIT_PASS), "learn run: {}", r.describe());
        assert!(out.is_file(), "learn wrote no policy: {}", r.describe());
        check_learned(&std::fs::read_to_string(&out).unwrap(), &self.s);
        let c = Command::new(tp::broker())
            .args(["check", "--policy"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            c.status.success(),
            "the learned policy does not check: {}",
            String::from_utf8_lossy(&c.stderr)
        );
        self.reset();
        out
    }
}

/// What a paused-then-continued run came to.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    serial: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
    fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout ---\n{}--- stderr ---\n{}--- serial ---\n{}",
            self.status, self.stdout, self.stderr, self.serial
        )
    }
}

/// The pid of `parent`'s child (any thread's), waiting up to 30 s for one
/// that has exec'd `exe`.
fn child_running(parent: u32, exe: &Path) -> u32 {
    let want = std::fs::canonicalize(exe).unwrap();
    let start = Instant::now();
    loop {
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) {
            for t in tasks.flatten() {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                for k in kids.split_whitespace() {
                    let k: u32 = k.parse().unwrap();
                    if std::fs::read_link(format!("/proc/{k}/exe")).ok().as_deref() == Some(&want) {
                        return k;
                    }
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no child of {parent} runs {}",
            want.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `cmd` (QEMU paused with QMP on stdio, directly or under the
/// broker): greeting, `qmp_capabilities`, then `paused(qemu pid)` while
/// QEMU waits, `cont`, and the run to its end. `brokered`: QEMU (this
/// binary) is the child of `cmd`'s process. A QEMU that exits early (bad
/// drive) just ends the run.
fn run_paused(mut cmd: Command, brokered: Option<&Path>, paused: impl FnOnce(u32)) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child: Child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let err = child.stderr.take().unwrap();
    let t_err = std::thread::spawn(move || std::io::read_to_string(err).unwrap());
    let mut stdout = String::new();
    let read_line = |out: &mut BufReader<_>, stdout: &mut String| -> Option<Value> {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap_or(0) == 0 {
            return None;
        }
        stdout.push_str(&l);
        serde_json::from_str(l.trim()).ok()
    };
    if let Some(greeting) = read_line(&mut out, &mut stdout) {
        assert!(
            greeting.get("QMP").is_some(),
            "not a QMP greeting: {greeting}"
        );
        let _ = writeln!(stdin, "{{\"execute\": \"qmp_capabilities\"}}");
        let mut answered = false;
        while let Some(v) = read_line(&mut out, &mut stdout) {
            if v.get("return").is_some() || v.get("error").is_some() {
                answered = true;
                break;
            }
        }
        if answered {
            let pid = match brokered {
                Some(qemu) => child_running(child.id(), qemu),
                None => child.id(),
            };
            paused(pid);
            let _ = writeln!(stdin, "{{\"execute\": \"cont\"}}");
        }
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    stdout.push_str(&rest);
    drop(stdin);
    let status = wait_or_kill(&mut child, LIMIT);
    Run {
        status,
        stdout,
        stderr: t_err.join().unwrap(),
        serial: String::new(),
    }
}

fn with_serial(mut r: Run, serial: &Path) -> Run {
    r.serial = std::fs::read_to_string(serial).unwrap_or_default();
    r
}

/// No learned subtree rule may cover `/`, `/tmp`, `/home`, `/root` or the
/// scratch directory (or anything above it); write access only on exact
/// rules.
fn check_learned(text: &str, scratch: &Path) {
    let rules = tp::allow_rules(text);
    assert!(!rules.is_empty(), "no allow rules learned:\n{text}");
    let mut forbidden: BTreeSet<PathBuf> = ["/", "/tmp", "/home", "/root"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for a in scratch.ancestors() {
        forbidden.insert(a.to_path_buf());
    }
    for (path, access) in &rules {
        if let Some(dir) = path.strip_suffix('/') {
            let dir = if dir.is_empty() { "/" } else { dir };
            assert!(
                !forbidden.contains(Path::new(dir)),
                "learned a subtree rule for {path}:\n{text}"
            );
            assert_eq!(
                access, "r",
                "learned subtree rule {path} grants {access}:\n{text}"
            );
        }
    }
}

/// Lexically normalised (`.` components and duplicate slashes dropped),
/// then canonicalised when the file exists.
fn norm(p: &str, cwd: &Path) -> PathBuf {
    let p = Path::new(p);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let lex: PathBuf = abs
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    std::fs::canonicalize(&lex).unwrap_or(lex)
}

/// Paths a bare run opened successfully, by strace (None without strace).
fn strace_opens(fx: &Fx) -> Option<BTreeSet<PathBuf>> {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("strace not found: the fd-table check alone covers the audit log");
        return None;
    }
    fx.reset();
    let log = fx.s.join("strace.txt");
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-e",
        "trace=open,openat,openat2,creat",
        "-e",
        "status=successful",
        "-o",
    ])
    .arg(&log)
    .arg(&fx.qemu)
    .args(fx.args(&fx.disk))
    .current_dir(&fx.s);
    let r = run_paused(cmd, None, |_| {});
    assert_eq!(
        r.code(),
        Some(fw::EXIT_PASS),
        "strace run: {}",
        r.describe()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let mut set = BTreeSet::new();
    for line in text.lines() {
        if !line.contains("open") {
            continue;
        }
        // `PID openat(AT_FDCWD, "/path", ...) = N`
        if let Some(q) = line.split('"').nth(1) {
            set.insert(norm(q, &fx.s));
        }
    }
    fx.reset();
    Some(set)
}

fn audited_paths(audit: &[Value], decision: Option<&str>, cwd: &Path) -> BTreeSet<PathBuf> {
    audit
        .iter()
        .filter(|l| decision.is_none_or(|d| field(l, "decision") == d))
        .map(|l| norm(field(l, "path"), cwd))
        .collect()
}

/// /proc/PID/status says: no_new_privs, seccomp filter mode, no
/// capabilities. Returns the text.
fn assert_confined_status(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for (k, v) in [
        ("NoNewPrivs", "1"),
        ("Seccomp", "2"),
        ("CapEff", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapBnd", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
        ("CapInh", "0000000000000000"),
    ] {
        assert_eq!(
            status_field(&status, k).as_deref(),
            Some(v),
            "/proc/{pid}/status {k}:\n{status}"
        );
    }
    status
}

/// Regular files and devices in /proc/PID/fd.
fn fd_files(pid: u32) -> BTreeSet<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.is_absolute() && t.exists())
        .collect()
}

#[test]
fn learned_policy_runs_qemu_like_bare() {
    let Some(fx) = Fx::new("learned_policy_runs_qemu_like_bare") else {
        return;
    };
    // Bare: the reference. Its status shows what the confined one must not.
    fx.reset();
    let mut bare_status = String::new();
    let mut cmd = Command::new(&fx.qemu);
    cmd.args(fx.args(&fx.disk)).current_dir(&fx.s);
    let bare = with_serial(
        run_paused(cmd, None, |pid| {
            bare_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        }),
        &fx.serial,
    );
    assert_eq!(
        bare.code(),
        Some(fw::EXIT_PASS),
        "bare: {}",
        bare.describe()
    );
    assert_eq!(bare.serial, fw::expected_transcript("standard-rw.txt"));
    assert_eq!(status_field(&bare_status, "Seccomp").as_deref(), Some("0"));
    let bare_disk = std::fs::read(&fx.disk).unwrap();
    assert!(
        bare_disk == fw::disk_after_write(fw::DISK_SECTORS),
        "bare disk"
    );
    let opened = strace_opens(&fx);

    let policy = fx.learn();
    let text = std::fs::read_to_string(&policy).unwrap();
    eprintln!("learned policy ({} bytes):\n{text}", text.len());

    let audit_path = fx.s.join("audit.jsonl");
    let mut held = BTreeSet::new();
    let mut audit_at_pause = Vec::new();
    let mut cmd = tp::command(&policy, Some(&audit_path), &[], &fx.qemu, fx.args(&fx.disk));
    cmd.current_dir(&fx.s);
    let conf = with_serial(
        run_paused(cmd, Some(&fx.qemu), |pid| {
            assert_confined_status(pid);
            held = fd_files(pid);
            audit_at_pause = audit_lines(&audit_path);
        }),
        &fx.serial,
    );
    assert_eq!(conf.code(), bare.code(), "exit status: {}", conf.describe());
    assert_eq!(conf.serial, bare.serial, "serial transcript");
    let conf_disk = std::fs::read(&fx.disk).unwrap();
    assert!(
        conf_disk == bare_disk,
        "disk bytes differ from the bare run's"
    );

    // Every file QEMU holds while paused came through the broker.
    let allowed = audited_paths(&audit_at_pause, Some("allow"), &fx.s);
    assert!(!held.is_empty());
    for f in &held {
        assert!(
            allowed.contains(f),
            "QEMU holds {} but the audit log has no allow line for it",
            f.display()
        );
    }
    // Every file a bare QEMU opens is in the audit log.
    let audit = audit_lines(&audit_path);
    for l in &audit {
        assert!(
            !field(l, "syscall").is_empty(),
            "audit line without syscall: {l}"
        );
    }
    if let Some(opened) = opened {
        let seen = audited_paths(&audit, None, &fx.s);
        let missing: Vec<_> = opened.difference(&seen).collect();
        assert!(
            missing.is_empty(),
            "opened by bare QEMU, absent from the audit log: {missing:?}"
        );
    }
    assert!(
        audit.iter().any(|l| field(l, "decision") == "allow"
            && norm(field(l, "path"), &fx.s) == norm(&fx.disk.display().to_string(), &fx.s)),
        "no allow line for the disk"
    );
}

#[test]
fn drive_outside_the_learned_policy_is_refused() {
    let Some(fx) = Fx::new("drive_outside_the_learned_policy_is_refused") else {
        return;
    };
    let policy = fx.learn();
    let moved_dir = fx.s.join("moved");
    std::fs::create_dir(&moved_dir).unwrap();
    let moved = moved_dir.join("disk.img");
    // Bare, the moved disk works.
    fw::prepare_disk(&moved, fw::DISK_SECTORS).unwrap();
    let mut cmd = Command::new(&fx.qemu);
    cmd.args(fx.args(&moved));
    let bare = with_serial(run_paused(cmd, None, |_| {}), &fx.serial);
    assert_eq!(
        bare.code(),
        Some(fw::EXIT_PASS),
        "bare: {}",
        bare.describe()
    );

    fw::prepare_disk(&moved, fw::DISK_SECTORS).unwrap();
    let _ = std::fs::remove_file(&fx.serial);
    let before = std::fs::metadata(&moved).unwrap();
    let audit_path = fx.s.join("audit.jsonl");
    let cmd = tp::command(&policy, Some(&audit_path), &[], &fx.qemu, fx.args(&moved));
    let conf = run_paused(cmd, Some(&fx.qemu), |_| {});
    // QEMU's start-up failure is exit status 1, which is also the
    // firmware's PASS: the guest must not have run at all.
    assert_ne!(conf.code(), Some(0), "{}", conf.describe());
    let serial = std::fs::read_to_string(&fx.serial).unwrap_or_default();
    assert!(serial.is_empty(), "the guest ran: {serial}");
    assert!(
        conf.stderr.contains("qemu-system-x86_64")
            && conf.stderr.contains(&moved.display().to_string()),
        "QEMU's own error naming the file: {}",
        conf.describe()
    );
    let after = std::fs::metadata(&moved).unwrap();
    assert!(
        std::fs::read(&moved).unwrap() == fw::fresh_disk(fw::DISK_SECTORS),
        "the refused disk was changed"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (before.mtime(), before.mtime_nsec()),
        (after.mtime(), after.mtime_nsec())
    );
    let audit = audit_lines(&audit_path);
    assert!(
        audit
            .iter()
            .any(|l| field(l, "decision") == "deny"
                && field(l, "path") == moved.display().to_string()),
        "no deny line for {}: {audit:#?}",
        moved.display()
    );
}

#[test]
fn qemu_qmp_add_fd_on_a_broker_bound_monitor() {
    let Some(fx) = Fx::new("qemu_qmp_add_fd_on_a_broker_bound_monitor") else {
        return;
    };
    // The disk for the fd set is outside the policy: QEMU gets it only as
    // an fd.
    let fdisk = fx.s.join("fdset-disk.img");
    let machine = |fd: &str| -> Vec<OsString> {
        let m = FwMachine::new(fx.bios.clone(), fx.serial.clone());
        let mut a: Vec<OsString> = fw::QEMU_MACHINE_ARGS.iter().map(OsString::from).collect();
        a.extend(m.args());
        a.extend(
            [
                "-S".to_string(),
                "-chardev".into(),
                format!("socket,id=mon,fd={fd},server=on,wait=off"),
                "-mon".into(),
                "chardev=mon,mode=control".into(),
            ]
            .map(OsString::from),
        );
        a
    };
    let script = tp::source("qmp_fdset.py");

    // Bare QEMU, launched by the script the way a manager would: the
    // reference answers.
    std::fs::write(&fdisk, vec![0x11u8; 65536]).unwrap();
    let bare_sock = fx.s.join("bare.sock");
    let mut py = Command::new("python3");
    py.arg(&script)
        .arg("launch")
        .arg(&bare_sock)
        .arg(&fdisk)
        .arg(&fx.qemu)
        .args(machine("{fd}"));
    let (bare_steps, bare_out) = run_script(py, None);
    assert_eq!(bare_steps.get("exit"), Some(&Value::from(0)), "{bare_out}");
    check_fdset_steps(&bare_steps, &bare_out, &fdisk);

    // Confined, under the learned policy plus the monitor socket, which
    // the broker binds and hands over at fd 10.
    let learned = fx.learn();
    let sock = fx.s.join("qmp.sock");
    let policy = fx.s.join("qmp.toml");
    std::fs::write(
        &policy,
        format!(
            "{}\n\n[[listen]]\npath = \"{}\"\nfd = 10\n",
            std::fs::read_to_string(&learned).unwrap(),
            sock.display()
        ),
    )
    .unwrap();
    std::fs::write(&fdisk, vec![0x11u8; 65536]).unwrap();
    let audit_path = fx.s.join("audit.jsonl");
    let mut broker = tp::command(&policy, Some(&audit_path), &[], &fx.qemu, machine("10"));
    broker
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut b = broker.spawn().unwrap();
    let b_out = b.stdout.take().unwrap();
    let b_err = b.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || std::io::read_to_string(b_out).unwrap());
    let t_err = std::thread::spawn(move || std::io::read_to_string(b_err).unwrap());
    let start = Instant::now();
    while !sock.exists() {
        if let Some(st) = b.try_wait().unwrap() {
            panic!("broker ended: {st:?} {}", t_err.join().unwrap());
        }
        assert!(
            start.elapsed() < LIMIT,
            "the broker never bound {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut py = Command::new("python3");
    py.arg(&script).arg("connect").arg(&sock).arg(&fdisk);
    let broker_pid = b.id();
    let qemu = fx.qemu.clone();
    let (steps, py_out) = run_script(
        py,
        Some(Box::new(move || {
            let pid = child_running(broker_pid, &qemu);
            assert_confined_status(pid);
        })),
    );
    let status = wait_or_kill(&mut b, LIMIT);
    let qemu_out = t_out.join().unwrap();
    let qemu_err = t_err.join().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "confined QEMU after quit: {qemu_err}"
    );
    check_fdset_steps(&steps, &format!("{py_out}{qemu_out}"), &fdisk);
    // The same answers as the bare QEMU's (fd numbers aside).
    for k in ["greeting", "query-status", "blockdev-add", "node-file"] {
        assert_eq!(steps.get(k), bare_steps.get(k), "step {k}");
    }
    // QEMU never asked for the fd-set disk by path.
    let audit = audit_lines(&audit_path);
    assert!(
        !audit
            .iter()
            .any(|l| field(l, "path").contains("fdset-disk")),
        "the fd-set disk was opened by path: {audit:#?}"
    );
}

type Steps = std::collections::BTreeMap<String, Value>;

/// Runs the qmp_fdset.py script; at its `paused` step runs `at_pause`
/// (if any), then lets it quit. Returns the steps by name and the whole
/// stdout.
fn run_script(mut py: Command, at_pause: Option<Box<dyn FnOnce()>>) -> (Steps, String) {
    py.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = py.spawn().expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let err = child.stderr.take().unwrap();
    let t_err = std::thread::spawn(move || std::io::read_to_string(err).unwrap());
    let mut steps = Steps::new();
    let mut text = String::new();
    let mut at_pause = at_pause;
    loop {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap() == 0 {
            break;
        }
        text.push_str(&l);
        let Ok(v) = serde_json::from_str::<Value>(l.trim()) else {
            continue; // QEMU's own output (qemu-io) shares stdout when launched here.
        };
        let name = v["step"].as_str().unwrap_or("").to_string();
        if name == "paused" {
            if let Some(f) = at_pause.take() {
                f();
            }
            writeln!(stdin, "go").unwrap();
        }
        steps.insert(name, v["value"].clone());
    }
    let status = wait_or_kill(&mut child, LIMIT);
    let err = t_err.join().unwrap();
    assert!(status.success(), "qmp_fdset.py: {status:?}\n{text}\n{err}");
    (steps, text)
}

fn check_fdset_steps(steps: &Steps, out: &str, disk: &Path) {
    let add = &steps["add-fd"];
    assert_eq!(add["fdset-id"], 1, "add-fd: {add}");
    let fd = add["fd"].as_i64().expect("add-fd fd");
    let want = serde_json::json!([{"fdset-id": 1, "fds": [{"fd": fd, "opaque": "disk"}]}]);
    assert_eq!(steps["query-fdsets"], want, "query-fdsets");
    assert_eq!(steps["query-fdsets-after"], want, "query-fdsets after use");
    assert_eq!(steps["blockdev-add"], serde_json::json!({}));
    assert_eq!(steps["node-file"], serde_json::json!(["/dev/fdset/1"]));
    assert!(
        out.contains("read 4096/4096 bytes at offset 0")
            && out.contains("wrote 4096/4096 bytes at offset 4096")
            && !out.contains("Pattern verification failed"),
        "qemu-io through /dev/fdset/1: {out}"
    );
    let bytes = std::fs::read(disk).unwrap();
    assert!(bytes[..4096].iter().all(|b| *b == 0x11));
    assert!(
        bytes[4096..8192].iter().all(|b| *b == 0x5a),
        "the write did not land"
    );
    assert!(bytes[8192..].iter().all(|b| *b == 0x11));
}

#[test]
fn learn_then_enforce_a_small_program() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path();
    let prog = s.join("learn-probe");
    tp::gcc(&tp::source("learn-probe.c"), &prog, &[]);
    let input = s.join("input.txt");
    let output = s.join("output.txt");
    std::fs::write(&input, b"abcdef transparent\n").unwrap();
    let run = |mut c: Command| -> (ExitStatus, String, String) {
        let o = c.stdin(Stdio::null()).output().unwrap();
        (
            o.status,
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let args = |i: &Path| vec![i.as_os_str().to_owned(), output.as_os_str().to_owned()];

    let mut bare = Command::new(&prog);
    bare.args(args(&input));
    let (st, bare_out, err) = run(bare);
    assert!(st.success(), "bare: {bare_out} {err}");
    assert!(bare_out.contains("own pid ok"), "{bare_out}");
    let bare_bytes = std::fs::read(&output).unwrap();
    std::fs::remove_file(&output).unwrap();

    let policy = s.join("learned.toml");
    let (st, out, err) = run(tp::learn_command(&policy, None, &prog, args(&input)));
    assert!(st.success(), "learn: {out} {err}");
    assert_eq!(out, bare_out, "learn run output");
    let text = std::fs::read_to_string(&policy).expect("learned policy");
    eprintln!("learned:\n{text}");
    check_learned(&text, s);
    let rules = tp::allow_rules(&text);
    let has = |p: &Path, acc: &[&str]| {
        rules
            .iter()
            .any(|(path, a)| Path::new(path) == p && acc.contains(&a.as_str()))
    };
    assert!(
        has(&input, &["r"]),
        "no read-only exact rule for the input:\n{text}"
    );
    assert!(
        has(&output, &["w", "rw"]),
        "no write rule for the output:\n{text}"
    );
    std::fs::remove_file(&output).unwrap();

    let audit = s.join("audit.jsonl");
    let mut c = tp::command(&policy, Some(&audit), &[], &prog, args(&input));
    c.current_dir(s);
    let (st, out, err) = run(c);
    assert!(st.success(), "enforced: {out} {err}");
    assert_eq!(out, bare_out, "enforced output");
    assert_eq!(
        std::fs::read(&output).unwrap(),
        bare_bytes,
        "enforced output file"
    );
    let lines = audit_lines(&audit);
    for want in [&input, &output] {
        assert!(
            lines.iter().any(|l| field(l, "decision") == "allow"
                && field(l, "path") == want.display().to_string()),
            "no allow line for {}",
            want.display()
        );
    }

    // The learned policy is not a blank cheque: another input is refused.
    let other = s.join("other.txt");
    std::fs::write(&other, b"not learned").unwrap();
    let (st, out, _) = run(tp::command(&policy, Some(&audit), &[], &prog, args(&other)));
    assert_eq!(st.code(), Some(1), "other input: {out}");
    assert!(out.contains(&other.display().to_string()), "{out}");
    assert!(
        audit_lines(&audit)
            .iter()
            .any(|l| field(l, "decision") == "deny"
                && field(l, "path") == other.display().to_string()),
        "no deny line for the unlearned input"
    );
}

#[test]
fn preopened_disk_through_an_fd_set() {
    let Some(fx) = Fx::new("preopened_disk_through_an_fd_set") else {
        return;
    };
    // The disk reaches QEMU only as fds 8 (read-only) and 9 (read-write)
    // in fd set 2, used as `-drive file=/dev/fdset/2`, the way launchers
    // pass disks to QEMU (QEMU's block layer opens the set read-only
    // first, then read-write: it needs both modes).
    let mut args = fx.args(Path::new("/dev/fdset/2"));
    args.extend(
        [
            "-add-fd",
            "fd=8,set=2,opaque=ro",
            "-add-fd",
            "fd=9,set=2,opaque=rw",
        ]
        .map(OsString::from),
    );
    // Bare: a shell opens the disk at fds 8 and 9 for it (dash takes
    // one-digit fds only).
    let wrap = |inner: &Command| -> Command {
        let mut w = Command::new("/bin/sh");
        w.arg("-c")
            .arg("exec 8<\"$0\"; exec 9<>\"$0\"; exec \"$@\"")
            .arg(&fx.disk)
            .arg(inner.get_program())
            .args(inner.get_args());
        w
    };
    fx.reset();
    let mut q = Command::new(&fx.qemu);
    q.args(&args);
    let bare = with_serial(run_paused(wrap(&q), None, |_| {}), &fx.serial);
    assert_eq!(
        bare.code(),
        Some(fw::EXIT_PASS),
        "bare: {}",
        bare.describe()
    );
    assert_eq!(bare.serial, fw::expected_transcript("standard-rw.txt"));
    assert!(std::fs::read(&fx.disk).unwrap() == fw::disk_after_write(fw::DISK_SECTORS));

    // Confined: the learned policy (which has its own exact rule for the
    // disk: remove it, the disk must come only from [[preopen]]) plus the
    // preopened disk.
    let learned = std::fs::read_to_string(fx.learn()).unwrap();
    let disk = fx.disk.display().to_string();
    let without_disk: String = learned
        .split("\n\n")
        .filter(|block| !block.contains(&format!("path = \"{disk}\"")))
        .collect::<Vec<_>>()
        .join("\n\n");
    assert!(
        !tp::allow_rules(&without_disk)
            .iter()
            .any(|(p, _)| *p == disk),
        "{without_disk}"
    );
    let policy = fx.s.join("preopen.toml");
    std::fs::write(
        &policy,
        format!(
            "{without_disk}\n\n[[preopen]]\npath = \"{disk}\"\naccess = \"r\"\nfd = 8\n\n\
             [[preopen]]\npath = \"{disk}\"\naccess = \"rw\"\nfd = 9\n"
        ),
    )
    .unwrap();
    fx.reset();
    let audit_path = fx.s.join("audit.jsonl");
    let conf = with_serial(
        run_paused(
            tp::command(&policy, Some(&audit_path), &[], &fx.qemu, &args),
            Some(&fx.qemu),
            |pid| {
                assert_confined_status(pid);
            },
        ),
        &fx.serial,
    );
    assert_eq!(conf.code(), bare.code(), "confined: {}", conf.describe());
    assert_eq!(conf.serial, bare.serial, "confined: {}", conf.describe());
    assert!(
        std::fs::read(&fx.disk).unwrap() == fw::disk_after_write(fw::DISK_SECTORS),
        "disk bytes after the confined run"
    );
    let audit = audit_lines(&audit_path);
    assert!(
        !audit.iter().any(|l| field(l, "path") == disk),
        "the preopened disk was asked for by path: {audit:#?}"
    );
}

/// Connects to QEMU's own QMP socket at `sock` (waiting for it to appear),
/// negotiates, reads `query-status`, quits. Returns the status reply.
fn qmp_quit(sock: &Path, qemu: &mut Child) -> Value {
    use openhook_tests::read_until;
    let start = Instant::now();
    let stream = loop {
        if let Ok(s) = std::os::unix::net::UnixStream::connect(sock) {
            break s;
        }
        if let Some(st) = qemu.try_wait().unwrap() {
            panic!("QEMU ended before its QMP socket took connections: {st:?}");
        }
        assert!(
            start.elapsed() < LIMIT,
            "no QMP socket at {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    read_until(&mut r, |v| v.get("QMP").is_some());
    writeln!(w, "{{\"execute\": \"qmp_capabilities\"}}").unwrap();
    read_until(&mut r, |v| v.get("return").is_some());
    writeln!(w, "{{\"execute\": \"query-status\"}}").unwrap();
    let status = read_until(&mut r, |v| v.get("return").is_some())
        .pop()
        .unwrap();
    writeln!(w, "{{\"execute\": \"quit\"}}").unwrap();
    // Until QEMU closes the connection: it drops requests still queued
    // when the client goes first.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut r, &mut rest);
    status["return"].clone()
}

#[test]
fn qemu_binds_its_own_qmp_socket_under_a_learned_rule() {
    let Some(fx) = Fx::new("qemu_binds_its_own_qmp_socket_under_a_learned_rule") else {
        return;
    };
    let sock = fx.s.join("qmp.sock");
    let mut args: Vec<OsString> = fw::QEMU_MACHINE_ARGS.iter().map(OsString::from).collect();
    args.extend(FwMachine::new(fx.bios.clone(), fx.serial.clone()).args());
    args.push("-S".into());
    args.push("-qmp".into());
    args.push(format!("unix:{},server=on,wait=off", sock.display()).into());
    let spawn = |mut c: Command| -> Child {
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .current_dir(&fx.s)
            .spawn()
            .unwrap()
    };
    let quiet = |mut child: Child| -> (ExitStatus, String) {
        let st = wait_or_kill(&mut child, LIMIT);
        (st, openhook_tests::stderr_text(&mut child))
    };
    // Bare, then learning: QEMU binds the socket; a QMP client quits it.
    let mut bare = spawn({
        let mut c = Command::new(&fx.qemu);
        c.args(&args);
        c
    });
    let want = qmp_quit(&sock, &mut bare);
    assert_eq!(want["status"], "prelaunch");
    let (st, err) = quiet(bare);
    assert_eq!(st.code(), Some(0), "bare: {err}");
    let _ = std::fs::remove_file(&sock);
    let learned = fx.s.join("learned.toml");
    let mut l = spawn(tp::learn_command(&learned, None, &fx.qemu, &args));
    assert_eq!(qmp_quit(&sock, &mut l), want);
    let (st, err) = quiet(l);
    assert_eq!(st.code(), Some(0), "learn: {err}");
    let text = std::fs::read_to_string(&learned).unwrap();
    check_learned(&text, &fx.s);
    assert!(
        tp::allow_rules(&text)
            .iter()
            .any(|(p, a)| Path::new(p) == sock && a.contains('w')),
        "no rule for the socket QEMU bound:\n{text}"
    );

    // Enforced: the broker binds it for QEMU (stale sockets must be gone
    // first: QEMU's own unlink is refused by Landlock).
    let _ = std::fs::remove_file(&sock);
    let audit = fx.s.join("audit.jsonl");
    let mut q = spawn(tp::command(&learned, Some(&audit), &[], &fx.qemu, &args));
    assert_eq!(qmp_quit(&sock, &mut q), want);
    let (st, err) = quiet(q);
    assert_eq!(st.code(), Some(0), "enforced: {err}");
    let lines = audit_lines(&audit);
    assert!(
        lines.iter().any(|l| field(l, "decision") == "allow"
            && field(l, "syscall") == "bind"
            && field(l, "path") == sock.display().to_string()),
        "no allow line for the bind: {lines:#?}"
    );

    // Without that rule QEMU cannot bind: its own error, a deny line.
    let _ = std::fs::remove_file(&sock);
    let sock_s = sock.display().to_string();
    let no_sock: String = text
        .split("\n\n")
        .filter(|b| !b.contains(&format!("path = \"{sock_s}\"")))
        .collect::<Vec<_>>()
        .join("\n\n");
    let policy = fx.s.join("no-sock.toml");
    std::fs::write(&policy, no_sock).unwrap();
    let audit = fx.s.join("audit-deny.jsonl");
    let (st, err) = quiet(spawn(tp::command(
        &policy,
        Some(&audit),
        &[],
        &fx.qemu,
        &args,
    )));
    assert_ne!(st.code(), Some(0), "QEMU ran without its socket");
    assert!(
        err.contains(&sock_s),
        "QEMU's error names the socket: {err}"
    );
    assert!(!sock.exists(), "the socket was created");
    assert!(
        audit_lines(&audit)
            .iter()
            .any(|l| field(l, "decision") == "deny" && field(l, "path") == sock_s),
        "no deny line for the refused bind"
    );
}

#[test]
fn qemu_own_seccomp_sandbox_stacks_under_transparent_mode() {
    let Some(fx) = Fx::new("qemu_own_seccomp_sandbox_stacks_under_transparent_mode") else {
        return;
    };
    // libvirt's default for QEMU: its own seccomp filter, loaded with
    // TSYNC on top of ours (a filter without a listener may stack).
    let mut args = fx.args(&fx.disk);
    args.extend(
        [
            "-sandbox",
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        ]
        .map(OsString::from),
    );
    fx.reset();
    let mut c = Command::new(&fx.qemu);
    c.args(&args).current_dir(&fx.s);
    let bare = with_serial(run_paused(c, None, |_| {}), &fx.serial);
    assert_eq!(
        bare.code(),
        Some(fw::EXIT_PASS),
        "bare: {}",
        bare.describe()
    );
    let bare_disk = std::fs::read(&fx.disk).unwrap();

    fx.reset();
    let policy = fx.s.join("sandboxed.toml");
    let mut l = tp::learn_command(&policy, None, &fx.qemu, &args);
    l.current_dir(&fx.s);
    let learn = run_paused(l, Some(&fx.qemu), |_| {});
    assert_eq!(
        learn.code(),
        Some(fw::EXIT_PASS),
        "learn: {}",
        learn.describe()
    );

    fx.reset();
    let mut e = tp::command(&policy, None, &[], &fx.qemu, &args);
    e.current_dir(&fx.s);
    let conf = with_serial(
        run_paused(e, Some(&fx.qemu), |pid| {
            assert_confined_status(pid);
        }),
        &fx.serial,
    );
    assert_eq!(conf.code(), bare.code(), "{}", conf.describe());
    assert_eq!(conf.serial, bare.serial);
    assert!(std::fs::read(&fx.disk).unwrap() == bare_disk, "disk bytes");
}

#[test]
fn learn_then_enforce_python() {
    // A real interpreter: hundreds of stats, probes and opens at start-up
    // (and a stat of `/`, which must not become a rule for the whole host).
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path();
    let Ok(o) = Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
    else {
        panic!("python3 not found (scripts/setup-deps.sh installs it)");
    };
    let python = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
    std::fs::create_dir(s.join("data")).unwrap();
    for n in ["a.txt", "b.txt"] {
        std::fs::write(s.join("data").join(n), n).unwrap();
    }
    let script = format!(
        "import json, os; d = {:?}; print(json.dumps([(n, open(os.path.join(d, n)).read()) for n in sorted(os.listdir(d))]))",
        s.join("data").display().to_string()
    );
    let run = |c: &mut Command| -> (ExitStatus, String, String) {
        let o = c.stdin(Stdio::null()).current_dir(s).output().unwrap();
        (
            o.status,
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (st, bare, err) = run(Command::new(&python).args(["-c", &script]));
    assert!(st.success(), "bare python: {err}");
    assert!(bare.contains("[\"a.txt\", \"a.txt\"]"), "{bare}");

    let policy = s.join("python.toml");
    let (st, out, err) = run(&mut tp::learn_command(
        &policy,
        None,
        &python,
        ["-c", &script],
    ));
    assert!(st.success(), "learn: {err}");
    assert_eq!(out, bare);
    let text = std::fs::read_to_string(&policy).unwrap();
    check_learned(&text, s);

    let (st, out, err) = run(&mut tp::command(
        &policy,
        None,
        &[],
        &python,
        ["-c", &script],
    ));
    assert!(st.success(), "enforced: {err}");
    assert_eq!(out, bare, "enforced output");
    // The learned policy lists only what was listed: not the host's /etc.
    let probe = "import os; print(len(os.listdir('/etc')))";
    let (st, out, _) = run(Command::new(&python).args(["-c", probe]));
    assert!(
        st.success() && out.trim() != "0",
        "bare listdir /etc: {out}"
    );
    let (st, out, err) = run(&mut tp::command(&policy, None, &[], &python, ["-c", probe]));
    assert!(
        !st.success() && err.contains("Error"),
        "listing /etc under the learned policy: {st:?} {out} {err}"
    );
}

#[test]
fn learn_names_symlinks_its_policy_cannot_follow() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path();
    let prog = s.join("learn-probe");
    tp::gcc(&tp::source("learn-probe.c"), &prog, &[]);
    for d in ["a", "b"] {
        std::fs::create_dir(s.join(d)).unwrap();
    }
    std::fs::write(s.join("b/input.txt"), b"linked\n").unwrap();
    // One link stays in its directory, one leaves it.
    std::os::unix::fs::symlink("input.txt", s.join("b/same")).unwrap();
    std::os::unix::fs::symlink("../b/input.txt", s.join("a/out")).unwrap();
    let output = s.join("output.txt");
    for (link, leaves) in [("b/same", false), ("a/out", true)] {
        let input = s.join(link);
        let policy = s.join("learned.toml");
        let o = tp::learn_command(&policy, None, &prog, [&input, &output])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "learn {link}: {o:?}");
        let text = std::fs::read_to_string(&policy).unwrap();
        let named = text.contains(&format!("#   {}\n", input.display()));
        assert_eq!(named, leaves, "{link} listed as not covered:\n{text}");
        let o = tp::command(&policy, None, &[], &prog, [&input, &output])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // What the list says is what enforcement does.
        assert_eq!(o.status.success(), !leaves, "{link} enforced: {o:?}");
    }
}
