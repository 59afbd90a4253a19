//! The real `openhook-emulator` binary running the bundled firmware,
//! driven over QMP by real clients: Python `qemu.qmp` (as its own
//! launcher, passing the monitor socket with `pass_fds`), a QEMU-style Perl
//! launcher passing a pre-opened monitor socket, with socat as the client, and `systemd-socket-activate`.
//!
//! These tests need /dev/kvm: without it they are skipped, unless
//! `OPENHOOK_REQUIRE_KVM=1`, which makes them fail instead.
#![allow(clippy::disallowed_methods)]

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use openhook_tests::{bin, fw};
use openhook_tests::{kvm_or_skip, read_until, spawn_until_stderr, Reaper};
use serde_json::{json, Value};

/// The firmware machine without isa-debug-exit: the guest prints its
/// transcript, then halts, and the emulator stays up for the monitor.
/// Sandbox off (no broker in these tests; see docs/qmp.md).
fn machine_args(dir: &Path) -> Vec<String> {
    let disk = dir.join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
    vec![
        "-m".into(),
        "16".into(),
        "-nodefaults".into(),
        "-sandbox".into(),
        "off".into(),
        "-bios".into(),
        fw::image(fw::IMAGE).display().to_string(),
        "-drive".into(),
        format!("id=d0,file={},format=raw,if=none", disk.display()),
        "-device".into(),
        "virtio-blk-device,drive=d0".into(),
    ]
}

const HALT_LINE: &str = "openhook-fw: isa-debug-exit did not stop the machine; halting\n";

#[test]
fn qemu_qmp_python_drives_the_emulator() {
    if !kvm_or_skip("qemu_qmp_python_drives_the_emulator") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    let log = dir.path().join("console.log");
    let dump = dir.path().join("ram.dump");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/qmp/e2e_qemu_qmp.py");
    let mut args = machine_args(dir.path());
    args.extend(["-S", "-serial", "chardev:ser"].map(String::from));
    let out = Command::new("python3")
        .arg(&script)
        .arg(bin("openhook-emulator"))
        .args([&sock, &log, &dump])
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python: {stdout}\n{stderr}");
    let steps: Vec<(String, Value)> = stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["step"].as_str().unwrap().to_string(), v["value"].clone())
        })
        .collect();
    let get = |name: &str| -> Vec<&Value> {
        steps
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(
        get("greeting")[0],
        &json!({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": concat!("openhook-emulator ", env!("CARGO_PKG_VERSION"))}, "capabilities": []}})
    );
    assert_eq!(
        get("query-status"),
        vec![
            &json!({"status": "prelaunch", "singlestep": false, "running": false}),
            &json!({"status": "running", "singlestep": false, "running": true}),
        ]
    );
    let added = get("add-fd")[0];
    assert_eq!(added["fdset-id"], json!(1));
    let fd = added["fd"].as_i64().unwrap();
    assert!(fd > 2, "the emulator's own fd number: {fd}");
    assert_eq!(
        get("query-fdsets")[0],
        &json!([{"fdset-id": 1, "fds": [{"fd": fd, "opaque": "console-log"}]}])
    );
    assert_eq!(get("chardev-add")[0], &json!({}));
    assert_eq!(get("guest-halted")[0], &json!(true), "{stderr}");

    // The guest's serial output landed in the fd-set file.
    let console = std::fs::read_to_string(&log).unwrap();
    let want = fw::expected_transcript("standard-rw.txt");
    assert_eq!(console, format!("{want}{HALT_LINE}"));

    // The dump is the guest's RAM: 16 MiB, file offset = guest address;
    // data buffer B (0x120000) holds what the guest wrote to sectors 1-8.
    let ram = std::fs::read(&dump).unwrap();
    assert_eq!(ram.len(), 16 << 20);
    let written: Vec<u8> = (fw::WRITE_FIRST..fw::WRITE_FIRST + fw::WRITE_COUNT)
        .flat_map(fw::written_sector)
        .collect();
    assert_eq!(&ram[0x12_0000..0x12_0000 + written.len()], &written[..]);
    // Buffer A (0x110000) last held the read-back of the same sectors.
    assert_eq!(&ram[0x11_0000..0x11_0000 + written.len()], &written[..]);
    assert_eq!(
        get("dump-completed")[0],
        &json!({"result": {"total": 16 << 20, "status": "completed", "completed": 16 << 20}})
    );
    assert_eq!(
        get("shutdown")[0],
        &json!({"guest": false, "reason": "host-qmp-quit"})
    );
    assert_eq!(get("exit")[0], &json!(0), "emulator exit status");
}

/// Seed 000's launcher, unchanged but for the program name (and, so tests
/// can run side by side, the socket path and the machine arguments, which
/// come from the environment and argv).
const SEED_000_LAUNCHER: &str = r#"
use IO::Socket::UNIX;
use Fcntl;
unlink $ENV{QMP_SOCKET};
my $srv = IO::Socket::UNIX->new(
  Type => SOCK_STREAM(),
  Local => $ENV{QMP_SOCKET},
  Listen => 1,
);
my $flags = fcntl $srv, F_GETFD, 0;
fcntl $srv, F_SETFD, $flags & ~FD_CLOEXEC;
my $fd = $srv->fileno();
exec $ENV{EMULATOR}, @ARGV,
  "-chardev", "socket,fd=$fd,server,nowait,id=mon",
  "-mon", "chardev=mon,mode=control";
"#;

#[test]
fn seed_000_perl_launcher_with_socat_connects_once() {
    if !kvm_or_skip("seed_000_perl_launcher_with_socat_connects_once") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp");
    let launcher = dir.path().join("launch.pl");
    std::fs::write(&launcher, SEED_000_LAUNCHER).unwrap();
    let mut args = machine_args(dir.path());
    args.push("-S".into());
    // The launcher binds and listens before it execs, so once the process
    // is the emulator a single connect() must succeed (the point of handing over a pre-opened socket).
    let child = Command::new("perl")
        .arg(&launcher)
        .args(&args)
        .env("QMP_SOCKET", &sock)
        .env("EMULATOR", bin("openhook-emulator"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    // The emulator replaces Perl in the same process; once /proc shows its
    // executable, the socket was bound and listening before exec.
    let exe = std::fs::canonicalize(bin("openhook-emulator")).unwrap();
    let proc_exe = PathBuf::from(format!("/proc/{}/exe", child.0.id()));
    while std::fs::read_link(&proc_exe).ok().as_ref() != Some(&exe) {
        assert!(child.0.try_wait().unwrap().is_none(), "launcher exited");
        std::thread::yield_now();
    }
    // socat is the client: one connection, no retry loop.
    let mut socat = Command::new("socat")
        .arg("-")
        .arg(format!("UNIX-CONNECT:{}", sock.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = socat.stdin.take().unwrap();
    let mut output = BufReader::new(socat.stdout.take().unwrap());
    let greeting = read_until(&mut output, |v| v.get("QMP").is_some());
    assert_eq!(greeting.len(), 1);
    input
        .write_all(
            b"{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-status\", \"id\": 1}\n",
        )
        .unwrap();
    let got = read_until(&mut output, |v| v.get("id") == Some(&json!(1)));
    assert_eq!(
        got.last().unwrap()["return"],
        json!({"status": "prelaunch", "singlestep": false, "running": false})
    );
    input
        .write_all(b"{\"execute\": \"cont\"}\n{\"execute\": \"stop\"}\n{\"execute\": \"system_reset\"}\n{\"execute\": \"system_powerdown\"}\n{\"execute\": \"quit\", \"id\": \"q\"}\n")
        .unwrap();
    let got = read_until(&mut output, |v| v["event"] == json!("SHUTDOWN"));
    let events: Vec<(&str, &Value)> = got
        .iter()
        .filter_map(|v| Some((v["event"].as_str()?, &v["data"])))
        .collect();
    assert_eq!(
        events,
        vec![
            ("RESUME", &Value::Null),
            ("STOP", &Value::Null),
            (
                "RESET",
                &json!({"guest": false, "reason": "host-qmp-system-reset"})
            ),
            ("POWERDOWN", &Value::Null),
            (
                "SHUTDOWN",
                &json!({"guest": false, "reason": "host-qmp-quit"})
            ),
        ]
    );
    for v in got.iter().filter(|v| v.get("event").is_some()) {
        assert!(v["timestamp"]["seconds"].as_i64().unwrap() > 0);
        assert!(v["timestamp"]["microseconds"].as_i64().is_some());
    }
    drop(input);
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let _ = socat.wait();
}

#[test]
fn systemd_socket_activate_serves_qmp_on_the_activated_socket() {
    if !kvm_or_skip("systemd_socket_activate_serves_qmp_on_the_activated_socket") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("activated.sock");
    let mut args = machine_args(dir.path());
    args.extend(
        [
            "-S",
            "-chardev",
            "socket,fd=3,server=on,wait=off,id=mon",
            "-mon",
            "chardev=mon,mode=control",
        ]
        .map(String::from),
    );
    // systemd-socket-activate binds, then prints "Listening on ..." and
    // waits for a connection before it execs the program.
    let (mut child, mut err) = spawn_until_stderr(
        Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(&sock)
            .arg(bin("openhook-emulator"))
            .args(&args)
            .stdin(Stdio::null()),
        "Listening on",
    );
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let greeting = read_until(&mut r, |v| v.get("QMP").is_some());
    assert_eq!(greeting.len(), 1);
    s.write_all(b"{\"execute\": \"qmp_capabilities\"}{\"execute\": \"query-status\", \"id\": 7}")
        .unwrap();
    let got = read_until(&mut r, |v| v.get("id") == Some(&json!(7)));
    assert_eq!(got.last().unwrap()["return"]["status"], json!("prelaunch"));
    s.write_all(b"{\"execute\": \"quit\"}").unwrap();
    read_until(&mut r, |v| v["event"] == json!("SHUTDOWN"));
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
}

#[test]
fn qmp_stdio_monitor() {
    if !kvm_or_skip("qmp_stdio_monitor") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = machine_args(dir.path());
    args.extend(["-S", "-qmp", "stdio"].map(String::from));
    let child = Command::new(bin("openhook-emulator"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let mut input = child.0.stdin.take().unwrap();
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    read_until(&mut out, |v| v.get("QMP").is_some());
    input
        .write_all(
            b"{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-status\", \"id\": 2}\n",
        )
        .unwrap();
    let got = read_until(&mut out, |v| v.get("id") == Some(&json!(2)));
    assert_eq!(got.last().unwrap()["return"]["status"], json!("prelaunch"));
    input.write_all(b"{\"execute\": \"quit\"}\n").unwrap();
    read_until(&mut out, |v| v["event"] == json!("SHUTDOWN"));
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}

/// The emulator's open fds (by listing /proc/PID/fd).
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn qmp_unix_path_with_wait_blocks_start_up_and_survives_bad_clients() {
    if !kvm_or_skip("qmp_unix_path_with_wait_blocks_start_up_and_survives_bad_clients") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("m.sock");
    let mut args = machine_args(dir.path());
    args.extend([
        "-qmp".to_string(),
        format!("unix:{},server=on,wait=on", sock.display()),
    ]);
    // wait=on: the emulator binds P itself (sandbox off, no hook), says it
    // waits, and goes on only once this first client has connected.
    let (mut child, mut err) = spawn_until_stderr(
        Command::new(bin("openhook-emulator"))
            .args(&args)
            .stdin(Stdio::null()),
        "waiting for a connection",
    );
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let mut c = openhook_wire::qmp::QmpClient::connect(&sock).unwrap();
    c.set_timeout(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(
        c.execute("query-status", None).unwrap()["status"],
        json!("running")
    );
    drop(c);
    let pid = child.0.id();
    // Baseline once the first client has gone and the next is served.
    let mut c = openhook_wire::qmp::QmpClient::connect(&sock).unwrap();
    c.set_timeout(Some(Duration::from_secs(60))).unwrap();
    let baseline = fd_count(pid);
    // Hostile clients: malformed JSON, a non-object, deep nesting, fds with
    // no command, 100 fds in one message, a client leaving mid-command.
    for bad in [
        &b"{]\n"[..],
        b"[1,2]\n",
        &[b'['; 10_000][..],
        b"{\"execute\": \"query-status\", \"argu",
    ] {
        let mut s = UnixStream::connect(&sock).unwrap();
        drop(c);
        s.write_all(bad).unwrap();
        drop(s);
        c = openhook_wire::qmp::QmpClient::connect(&sock).unwrap();
        c.set_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    let files: Vec<std::fs::File> = (0..100)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let fds: Vec<_> = files.iter().map(std::os::fd::AsFd::as_fd).collect();
    c.send_raw(b" ", &fds).unwrap();
    assert!(fd_count(pid) >= baseline, "received fds are pending");
    c.execute("query-name", None).unwrap();
    drop(c);
    let mut c = openhook_wire::qmp::QmpClient::connect(&sock).unwrap();
    c.set_timeout(Some(Duration::from_secs(60))).unwrap();
    assert_eq!(
        c.execute("query-status", None).unwrap()["status"],
        json!("running"),
        "the VM keeps running"
    );
    assert_eq!(fd_count(pid), baseline, "fd count back to the baseline");
    c.execute("quit", None).unwrap();
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}

/// A socket serial whose client does not read for a while loses nothing:
/// bytes the socket has no room for are held, the UART shows its
/// transmitter busy meanwhile, the polling guest waits (our firmware up to
/// its per-character patience, then writes on and the byte is held too),
/// and the whole transcript arrives once the client reads. Before, bytes
/// past the socket buffer (about 280 one-byte sends) were dropped and the
/// guest finished within ~0.2 s.
#[test]
fn socket_serial_waits_for_a_slow_client_and_loses_nothing() {
    if !kvm_or_skip("socket_serial_waits_for_a_slow_client_and_loses_nothing") {
        return;
    }
    // Unconfined, and launched directly with the sandbox on (re-executed as
    // the broker: the socket is its [[listen]], the UART's room check runs
    // under the vCPU thread's seccomp filter).
    for sandbox in ["off", "on"] {
        slow_serial_client(sandbox);
    }
}

fn slow_serial_client(sandbox: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("serial.sock");
    let mut args = machine_args(dir.path());
    let at = args.iter().position(|a| a == "-sandbox").unwrap();
    args[at + 1] = sandbox.to_string();
    args.extend([
        "-chardev".to_string(),
        format!("socket,id=ser,path={},server=on,wait=on", sock.display()),
        "-serial".into(),
        "chardev:ser".into(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=4".into(),
    ]);
    let (mut child, mut err) = spawn_until_stderr(
        Command::new(bin("openhook-emulator"))
            .args(&args)
            .stdin(Stdio::null()),
        "waiting for a connection",
    );
    let errors = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        rest
    });
    let mut client = UnixStream::connect(&sock).unwrap();
    // Far longer than the guest needs to print everything when not held;
    // shorter than the ~500 held characters at its patience (2^24 TSC
    // ticks, 3-8 ms each).
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        child.0.try_wait().unwrap(),
        None,
        "sandbox {sandbox}: the guest finished while its serial client was not reading"
    );
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    let status = child.0.wait().unwrap();
    let stderr = errors.join().unwrap();
    assert_eq!(
        status.code(),
        Some(fw::EXIT_PASS),
        "sandbox {sandbox}: {stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&got),
        fw::expected_transcript("standard-rw.txt"),
        "sandbox {sandbox}"
    );
}

/// SIGTERM, SIGINT and SIGHUP end the emulator cleanly (QEMU: "terminating
/// on signal N", exit 0) — also when it was started with them ignored, as a
/// background job of a non-interactive shell inherits SIGINT (and `nohup`,
/// SIGHUP). This holds because they are blocked before any thread exists:
/// Linux queues a blocked signal even when its disposition is SIG_IGN, so
/// `sigwait` takes it; unblocked and ignored, it would be discarded.
#[test]
fn termination_signals_end_the_emulator_even_when_inherited_ignored() {
    if !kvm_or_skip("termination_signals_end_the_emulator_even_when_inherited_ignored") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut args = machine_args(dir.path());
    args.extend(["-S", "-qmp", "stdio"].map(String::from));
    for (sig, signal) in [
        (libc::SIGTERM, rustix::process::Signal::TERM),
        (libc::SIGINT, rustix::process::Signal::INT),
        (libc::SIGHUP, rustix::process::Signal::HUP),
    ] {
        for ignored in [false, true] {
            // `trap '' ...` sets SIG_IGN, which exec keeps.
            let prelude = if ignored {
                "trap '' TERM INT HUP; "
            } else {
                ""
            };
            let child = Command::new("sh")
                .arg("-c")
                .arg(format!("{prelude}exec \"$0\" \"$@\""))
                .arg(bin("openhook-emulator"))
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut child = Reaper(child);
            let _input = child.0.stdin.take().unwrap();
            let mut out = BufReader::new(child.0.stdout.take().unwrap());
            read_until(&mut out, |v| v.get("QMP").is_some());
            let pid = rustix::process::Pid::from_raw(i32::try_from(child.0.id()).unwrap()).unwrap();
            rustix::process::kill_process(pid, signal).unwrap();
            let status =
                openhook_tests::broker::wait_or_kill(&mut child.0, Duration::from_secs(20));
            let err = openhook_tests::stderr_text(&mut child.0);
            assert_eq!(
                status.code(),
                Some(0),
                "signal {sig}, ignored {ignored}: {err}"
            );
            assert!(
                err.contains(&format!("terminating on signal {sig}")),
                "signal {sig}, ignored {ignored}: {err}"
            );
        }
    }
}
