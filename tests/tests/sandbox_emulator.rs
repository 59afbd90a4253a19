//! The real emulator, launched by the real broker under a policy that
//! allows `/dev/kvm`, the firmware and the test directory, runs fully
//! confined and the guest firmware still passes:
//! - under `strace -f`, no open-family syscall succeeds in any emulator
//!   thread after its sandbox entry (the first `seccomp(SET_MODE_FILTER)`),
//!   while the same trace shows the broker's opens (and the emulator's own
//!   library loading before entry) succeeding;
//! - `/proc/<emulator>/status` (and every thread's) shows `NoNewPrivs: 1`,
//!   `Seccomp: 2` and zero capability sets, read while the guest is held
//!   with `-S` and a QMP monitor on a `[[listen]]` socket.
//!
//! KVM tests fail, never skip, with OPENHOOK_REQUIRE_KVM=1.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use openhook_tests::bin;
use openhook_tests::fw::{self, FwMachine};
use openhook_tests::kvm_or_skip;

const LIMIT: Duration = Duration::from_secs(120);
const QMP_FD: i32 = 10;

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    policy: PathBuf,
    machine: FwMachine,
    disk: PathBuf,
}

/// A test directory holding the disk (the serial file is created there),
/// and a policy allowing exactly `/dev/kvm`, the firmware and that
/// directory, with `[sandbox] mode = sandbox_mode`.
fn setup(qmp: bool, sandbox_mode: &str) -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let disk = dir.join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).expect("disk");
    let image = fw::image(fw::IMAGE);
    let mut policy = format!(
        "version = 1\n\
         [[allow]]\npath = \"/dev/kvm\"\naccess = \"rw\"\ntypes = [\"char\"]\n\
         [[allow]]\npath = \"{}\"\naccess = \"r\"\n\
         [[allow]]\npath = \"{}/\"\naccess = \"rw\"\ncreate = true\n\
         [sandbox]\nmode = \"{sandbox_mode}\"\n",
        image.display(),
        dir.display()
    );
    if qmp {
        policy.push_str(&format!(
            "[[listen]]\npath = \"{}/qmp.sock\"\nfd = {QMP_FD}\n",
            dir.display()
        ));
    }
    let policy_path = dir.join("policy.toml");
    fs::write(&policy_path, policy).expect("policy");
    let machine = FwMachine::new(image, dir.join("serial.txt")).drive(disk.clone(), false);
    Setup {
        _dir: tmp,
        dir,
        policy: policy_path,
        machine,
        disk,
    }
}

fn broker_args(s: &Setup, extra: &[&str]) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--policy".into(),
        s.policy.clone().into(),
        "--".into(),
        bin("openhook-emulator").into(),
    ];
    a.extend(s.machine.args());
    a.extend(extra.iter().map(OsString::from));
    a
}

fn assert_firmware_passed(s: &Setup, run: &fw::MachineRun) {
    assert_eq!(run.code(), Some(fw::EXIT_PASS), "{}", run.describe());
    assert_eq!(run.serial, fw::expected_transcript("standard-rw.txt"));
    assert!(
        fs::read(&s.disk).expect("disk") == fw::disk_after_write(fw::DISK_SECTORS),
        "disk does not hold what the guest wrote"
    );
}

// ---------------------------------------------------------------------
// strace analysis
// ---------------------------------------------------------------------

const OPEN_FAMILY: &[&str] = &["open", "openat", "openat2", "creat", "open_by_handle_at"];

/// One completed syscall from an `strace -f` log.
#[derive(Debug)]
struct Call {
    pid: u32,
    name: String,
    args: String,
    result: String,
}

/// Parses `PID name(args) = result` lines, joining `<unfinished ...>` /
/// `<... name resumed>` pairs. Signal and exit lines are skipped.
fn parse_strace(log: &str) -> Vec<Call> {
    let mut pending: HashMap<u32, (String, String)> = HashMap::new();
    let mut calls = Vec::new();
    for line in log.lines() {
        let Some((pid, rest)) = line.trim_start().split_once(char::is_whitespace) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("---") || rest.starts_with("+++") {
            continue;
        }
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((name, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            let (n, args) = pending
                .remove(&pid)
                .unwrap_or_else(|| (name.to_string(), String::new()));
            if let Some((a, result)) = tail.rsplit_once(" = ") {
                calls.push(Call {
                    pid,
                    name: n,
                    args: args + a,
                    result: result.trim().to_string(),
                });
            }
            continue;
        }
        let Some((name, after)) = rest.split_once('(') else {
            continue;
        };
        if let Some(args) = after.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, (name.to_string(), args.to_string()));
            continue;
        }
        if let Some((args, result)) = after.rsplit_once(" = ") {
            calls.push(Call {
                pid,
                name: name.to_string(),
                args: args.to_string(),
                result: result.trim().to_string(),
            });
        }
    }
    calls
}

fn is_success(result: &str) -> bool {
    !result.starts_with('-') && !result.starts_with('?')
}

fn is_clone(name: &str) -> bool {
    matches!(name, "clone" | "clone3" | "fork" | "vfork")
}

#[test]
fn no_open_family_call_succeeds_in_the_emulator_after_sandbox_entry() {
    if !kvm_or_skip("strace") {
        return;
    }
    let s = setup(false, "require");
    let log = s.dir.join("strace.log");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg("-e")
        .arg(format!(
            "trace={},execve,clone,clone3,fork,vfork,seccomp",
            OPEN_FAMILY.join(",")
        ))
        .arg(bin("openhook-broker"))
        .args(broker_args(&s, &[]));
    let run = fw::run_machine(cmd, &s.machine.serial, LIMIT);
    assert_firmware_passed(&s, &run);

    let text = fs::read_to_string(&log).expect("strace log (is strace installed?)");
    let calls = parse_strace(&text);
    let emu_exec = calls
        .iter()
        .position(|c| {
            c.name == "execve" && c.args.contains("openhook-emulator\"") && c.result == "0"
        })
        .expect("no successful execve of the emulator in the trace");
    let emu = calls[emu_exec].pid;
    // The sandbox entry marker: the emulator's first filter install.
    let entry = calls[emu_exec..]
        .iter()
        .position(|c| c.pid == emu && c.name == "seccomp" && c.args.contains("SET_MODE_FILTER"))
        .map(|i| emu_exec + i)
        .expect("the emulator never installed a seccomp filter");
    // Threads and children of the emulator (all created after entry:
    // `enter` refuses to run with a thread alive).
    let mut members: HashSet<u32> = HashSet::from([emu]);
    for c in &calls[emu_exec..] {
        if is_clone(&c.name) && members.contains(&c.pid) && is_success(&c.result) {
            members.insert(c.result.parse().expect("clone result"));
        }
    }
    assert!(members.len() >= 2, "no vCPU thread seen: {members:?}");

    let mut refused = 0;
    for c in &calls[entry..] {
        if members.contains(&c.pid) && OPEN_FAMILY.contains(&c.name.as_str()) {
            assert!(
                c.result.starts_with("-1 EACCES"),
                "open-family call after sandbox entry not refused with EACCES: {c:?}"
            );
            refused += 1;
        }
    }
    // Controls: the trace does capture successful opens — the emulator's
    // own library loading before entry, and the broker's openat2 for each
    // file it hands over (kvm, firmware, disk, serial).
    let pre_entry_ok = calls[emu_exec..entry]
        .iter()
        .filter(|c| c.pid == emu && OPEN_FAMILY.contains(&c.name.as_str()))
        .filter(|c| is_success(&c.result))
        .count();
    assert!(pre_entry_ok > 0, "no successful open before entry seen");
    // Before entry the emulator itself opens nothing: only the dynamic
    // loader (its cache and libraries) and std's stack-guard probe.
    for c in &calls[emu_exec..entry] {
        if c.pid == emu && OPEN_FAMILY.contains(&c.name.as_str()) {
            let path = c.args.split('"').nth(1).unwrap_or("");
            let loader = path == "/etc/ld.so.cache"
                || ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
                    .iter()
                    .any(|d| path.starts_with(&format!("{d}/")));
            assert!(
                loader || path == "/proc/self/maps",
                "the emulator opened {path:?} before entering the sandbox: {c:?}"
            );
        }
    }
    let broker_opens = calls
        .iter()
        .filter(|c| !members.contains(&c.pid) && c.name == "openat2" && is_success(&c.result))
        .count();
    assert!(broker_opens >= 4, "broker opens seen: {broker_opens}");
    eprintln!(
        "strace: {} calls, emulator threads {}, {pre_entry_ok} opens before entry, \
         {refused} refused after, broker openat2 {broker_opens}",
        calls.len(),
        members.len()
    );
}

// ---------------------------------------------------------------------
// /proc/<pid>/status while the guest is held with -S
// ---------------------------------------------------------------------

fn status_fields(path: &Path) -> HashMap<String, String> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn assert_confined(path: &Path) {
    let st = status_fields(path);
    let want = [
        ("NoNewPrivs", "1"),
        ("Seccomp", "2"),
        ("CapInh", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapEff", "0000000000000000"),
        ("CapBnd", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
    ];
    for (k, v) in want {
        assert_eq!(
            st.get(k).map(String::as_str),
            Some(v),
            "{k} in {}",
            path.display()
        );
    }
}

/// Connects once the broker has bound the `[[listen]]` socket: polls for
/// the path (the broker announces nothing), failing if the broker exits.
fn connect_when_bound(path: &Path, broker: &mut std::process::Child) -> UnixStream {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return s,
            Err(e) => {
                if let Some(st) = broker.try_wait().expect("try_wait") {
                    panic!(
                        "broker exited ({st}) before binding {}: {e}",
                        path.display()
                    );
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{}: {e}",
                    path.display()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn qmp_line(r: &mut impl BufRead) -> serde_json::Value {
    let mut line = String::new();
    r.read_line(&mut line).expect("qmp read");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("qmp line {line:?}: {e}"))
}

/// Reads QMP lines until one has a `return` (events are skipped).
fn qmp_return(r: &mut impl BufRead) -> serde_json::Value {
    loop {
        let v = qmp_line(r);
        if v.get("return").is_some() || v.get("error").is_some() {
            return v;
        }
    }
}

#[test]
fn emulator_status_shows_full_confinement_and_the_firmware_passes() {
    if !kvm_or_skip("status") {
        return;
    }
    let s = setup(true, "require");
    let chardev = format!("socket,id=mon,fd={QMP_FD},server=on,wait=off");
    let mut broker = Command::new(bin("openhook-broker"))
        .args(broker_args(
            &s,
            &[
                "-S",
                "-chardev",
                &chardev,
                "-mon",
                "chardev=mon,mode=control",
            ],
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn broker");
    let broker_pid = broker.id();
    // Watchdog: a hung machine fails the test instead of hanging it.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(LIMIT).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &broker_pid.to_string()])
                .status();
        }
    });

    // The broker bound the socket before launching; the greeting comes
    // once the emulator (already confined: monitors start after `enter`)
    // accepts.
    let sock = connect_when_bound(&s.dir.join("qmp.sock"), &mut broker);
    let mut reader = BufReader::new(sock.try_clone().expect("clone"));
    let mut w = sock;
    let greeting = qmp_line(&mut reader);
    assert!(greeting.get("QMP").is_some(), "{greeting}");
    w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .expect("write");
    assert!(qmp_return(&mut reader).get("return").is_some());
    w.write_all(b"{\"execute\":\"query-status\"}\n")
        .expect("write");
    let st = qmp_return(&mut reader);
    assert_eq!(st["return"]["running"], false, "{st}");

    let kids = fs::read_to_string(format!("/proc/{broker_pid}/task/{broker_pid}/children"))
        .expect("children");
    let emu: u32 = kids
        .split_whitespace()
        .next()
        .expect("no child")
        .parse()
        .expect("pid");
    let comm = fs::read_to_string(format!("/proc/{emu}/comm")).expect("comm");
    assert!(comm.starts_with("openhook-emulat"), "child is {comm:?}");
    assert_confined(&Path::new("/proc").join(emu.to_string()).join("status"));
    let mut threads = 0;
    for t in fs::read_dir(format!("/proc/{emu}/task")).expect("tasks") {
        assert_confined(&t.expect("task").path().join("status"));
        threads += 1;
    }
    assert!(
        threads >= 4,
        "main, vCPU, disk I/O and monitor threads expected: {threads}"
    );
    // The vCPU thread and the disk's I/O thread (ioeventfd, the default)
    // each stack the narrower vCPU filter on the process's (they load it
    // first thing, so poll for it).
    let filters = |tid: &str| -> u32 {
        status_fields(Path::new(&format!("/proc/{emu}/task/{tid}/status")))
            .get("Seccomp_filters")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let main_filters = filters(&emu.to_string());
    assert!(main_filters >= 1, "the emulator has no seccomp filter");
    let start = std::time::Instant::now();
    for name in ["vcpu", "virtio-blk"] {
        loop {
            let tid = fs::read_dir(format!("/proc/{emu}/task"))
                .expect("tasks")
                .filter_map(Result::ok)
                .map(|t| t.file_name().to_string_lossy().into_owned())
                .find(|t| {
                    fs::read_to_string(format!("/proc/{emu}/task/{t}/comm"))
                        .is_ok_and(|c| c.trim_end() == name)
                });
            if tid.as_deref().is_some_and(|t| filters(t) > main_filters) {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "no {name} thread with the vCPU filter (thread {tid:?}, main has {main_filters})"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The broker confined itself once the emulator ran (its own allow
    // list and policy-derived Landlock domain; resilience_confine.rs).
    // (Right after the exec, racing the child's own entry: poll.)
    let start = std::time::Instant::now();
    loop {
        let b = status_fields(Path::new(&format!("/proc/{broker_pid}/status")));
        if b.get("Seccomp").map(String::as_str) == Some("2") {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "the broker never confined itself: {b:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    w.write_all(b"{\"execute\":\"cont\"}\n").expect("write");
    let status = broker.wait().expect("wait");
    let _ = done_tx.send(());
    watchdog.join().expect("watchdog");
    let mut stderr = String::new();
    if let Some(mut e) = broker.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let run = fw::MachineRun {
        status: Some(status),
        serial: fs::read_to_string(&s.machine.serial).unwrap_or_default(),
        stdout: String::new(),
        stderr,
        wall: Duration::ZERO,
    };
    assert_firmware_passed(&s, &run);
}

// ---------------------------------------------------------------------
// The policy's mode reaches the emulator (openhook_sandbox::MODE_ENV)
// ---------------------------------------------------------------------

fn run_broker(s: &Setup, extra: &[&str]) -> fw::MachineRun {
    let mut cmd = Command::new(bin("openhook-broker"));
    cmd.args(broker_args(s, extra));
    fw::run_machine(cmd, &s.machine.serial, LIMIT)
}

#[test]
fn policy_mode_off_turns_the_emulators_sandbox_off() {
    if !kvm_or_skip("mode off") {
        return;
    }
    let s = setup(false, "off");
    let run = run_broker(&s, &[]);
    assert_firmware_passed(&s, &run);
    // The emulator's own warning (enter), not only the broker's pre-exec one.
    assert!(
        run.stderr
            .contains("WARNING: sandbox is OFF — this process"),
        "{}",
        run.describe()
    );
    // Control: under `require` neither warning appears.
    let s = setup(false, "require");
    let run = run_broker(&s, &[]);
    assert_firmware_passed(&s, &run);
    assert!(!run.stderr.contains("sandbox is OFF"), "{}", run.describe());
}

#[test]
fn sandbox_off_on_the_command_line_is_refused_under_a_require_policy() {
    let s = setup(false, "require");
    let run = run_broker(&s, &["-sandbox", "off"]);
    assert!(
        run.stderr.contains(
            "-sandbox off conflicts with the launcher's policy ([sandbox] mode = \"require\")"
        ),
        "{}",
        run.describe()
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(run.serial.is_empty(), "the guest ran: {}", run.describe());
}
