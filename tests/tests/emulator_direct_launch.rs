//! `openhook-emulator` launched directly, the QEMU way, with the sandbox
//! on (docs/decisions/direct-launch-reexec.md): it re-executes itself, same pid, as
//! `openhook-broker` with a policy derived from its command line, and the
//! broker launches the confined emulator. Real binaries, real KVM, real
//! launchers (a Perl launcher passing a pre-opened monitor socket,
//! `systemd-socket-activate`).
//!
//! KVM tests are skipped without /dev/kvm unless `OPENHOOK_REQUIRE_KVM=1`,
//! which makes them fail instead.
#![allow(clippy::disallowed_methods)]

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openhook_tests::bin;
use openhook_tests::fw::{self, FwMachine};
use openhook_tests::{kvm_or_skip, read_until, spawn_until_stderr, Reaper};
use serde_json::json;

fn canonical(name: &str) -> PathBuf {
    std::fs::canonicalize(bin(name)).unwrap()
}

fn exe_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Waits until `pid` runs the broker and has a child running the emulator;
/// returns the child's pid.
fn confined_child(pid: u32, child: &mut Child) -> u32 {
    let broker = canonical("openhook-broker");
    let emulator = canonical("openhook-emulator");
    let start = Instant::now();
    loop {
        assert!(child.try_wait().unwrap().is_none(), "launcher exited early");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no confined child"
        );
        if exe_of(pid).as_ref() == Some(&broker) {
            let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            if let Some(k) = kids.split_whitespace().next() {
                let k: u32 = k.parse().unwrap();
                if exe_of(k).as_ref() == Some(&emulator) {
                    return k;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 60 s) until `pid` runs under a seccomp filter: the
/// confined emulator enters its sandbox right after it starts.
fn assert_filtered(pid: u32) {
    let start = Instant::now();
    while seccomp_mode(pid) != "2" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "pid {pid}: Seccomp is {}",
            seccomp_mode(pid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `Seccomp:` field of /proc/PID/status (2 = filter mode).
fn seccomp_mode(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .unwrap()
        .trim()
        .to_string()
}

/// The firmware machine without isa-debug-exit, paused (`-S`): it stays up
/// for the monitor. No `-sandbox off`.
fn paused_machine_args() -> Vec<String> {
    vec![
        "-m".into(),
        "16".into(),
        "-nodefaults".into(),
        "-S".into(),
        "-bios".into(),
        fw::image(fw::IMAGE).display().to_string(),
    ]
}

/// One connection: greeting, negotiation, `query-status` (prelaunch),
/// `quit` until SHUTDOWN.
fn qmp_session(sock: &Path) {
    qmp_session_then_quit(sock, || {});
}

/// [`qmp_session`], calling `before_quit` between `query-status` and
/// `quit`: a test that inspects the running emulator meanwhile keeps it
/// alive until it is done (a start takes a few ms, less than one of its
/// polls).
fn qmp_session_then_quit(sock: &Path, before_quit: impl FnOnce()) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let greeting = read_until(&mut r, |v| v.get("QMP").is_some());
    assert_eq!(greeting.len(), 1);
    s.write_all(
        b"{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-status\", \"id\": 7}\n",
    )
    .unwrap();
    let got = read_until(&mut r, |v| v.get("id") == Some(&json!(7)));
    assert_eq!(
        got.last().unwrap()["return"],
        json!({"status": "prelaunch", "singlestep": false, "running": false})
    );
    before_quit();
    s.write_all(b"{\"execute\": \"quit\"}\n").unwrap();
    read_until(&mut r, |v| v["event"] == json!("SHUTDOWN"));
}

#[test]
fn print_derived_policy_golden() {
    // Relative names are made absolute against the emulator's directory.
    let out = Command::new(bin("openhook-broker"))
        .current_dir("/srv")
        .args(["--print-derived-policy", "--"])
        .arg(bin("openhook-emulator"))
        .args([
            "-m",
            "16",
            "-bios",
            "fw.bin",
            "-kernel",
            "/boot/vmlinuz",
            "-initrd",
            "/boot/initrd.img",
            "-drive",
            "file=/srv/vm1/disk.img,if=virtio",
            "-drive",
            "file=vm1/base.img,if=virtio,readonly=on",
            "-drive",
            "file=/dev/fdset/1,if=virtio",
            "-serial",
            "file:/var/log/vm1/serial.log",
            "-chardev",
            "file,id=dbg,path=/var/log/vm1/debug.log",
            "-chardev",
            "socket,id=mon,fd=3,server,nowait",
            "-mon",
            "chardev=mon,mode=control",
            "-add-fd",
            "fd=12,set=1",
            "-qmp",
            "unix:/run/vm1/qmp.sock,server=on,wait=off",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let golden = r#"# Derived by openhook-emulator from its own command line.
version = 1
deny_errno = "EACCES"

[[allow]]
path = "/dev/kvm"
access = "rw"
types = ["char"]

[[allow]]
path = "/srv/fw.bin"
access = "r"

[[allow]]
path = "/boot/vmlinuz"
access = "r"

[[allow]]
path = "/boot/initrd.img"
access = "r"

[[allow]]
path = "/srv/vm1/disk.img"
access = "rw"
types = ["file", "block"]

[[allow]]
path = "/srv/vm1/base.img"
access = "r"
types = ["file", "block"]

[[allow]]
path = "/var/log/vm1/serial.log"
access = "w"
create = true
types = ["file", "char", "fifo"]

[[allow]]
path = "/var/log/vm1/debug.log"
access = "w"
create = true
types = ["file", "char", "fifo"]

[[listen]]
path = "/run/vm1/qmp.sock"
fd = 13

[sandbox]
mode = "require"
"#;
    assert_eq!(String::from_utf8(out.stdout).unwrap(), golden);
    // A bad command line: the emulator's error and status are relayed.
    let out = Command::new(bin("openhook-broker"))
        .args(["--print-derived-policy", "--"])
        .arg(bin("openhook-emulator"))
        .args(["-no-such-option"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(!out.stderr.is_empty());
}

#[test]
fn firmware_passes_launched_directly_with_the_sandbox_on() {
    if !kvm_or_skip("firmware_passes_launched_directly_with_the_sandbox_on") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.log");
    let disk = dir.path().join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
    let m = FwMachine::new(fw::image(fw::IMAGE), serial.clone()).drive(disk.clone(), false);
    // No broker, no -open-hook-fd, no -sandbox: the emulator becomes the
    // broker and its confined child opens everything through the hook.
    let mut cmd = Command::new(bin("openhook-emulator"));
    cmd.args(m.args());
    let run = fw::run_machine(cmd, &serial, Duration::from_secs(120));
    assert_eq!(run.code(), Some(fw::EXIT_PASS), "{}", run.describe());
    assert_eq!(run.serial, fw::expected_transcript("standard-rw.txt"));
    assert!(std::fs::read(&disk).unwrap() == fw::disk_after_write(fw::DISK_SECTORS));
    // Never the unsandboxed direct-open path (which warns loudly).
    assert!(!run.stderr.contains("-sandbox off"), "{}", run.stderr);
}

#[test]
fn same_pid_becomes_the_broker_and_the_child_is_confined() {
    if !kvm_or_skip("same_pid_becomes_the_broker_and_the_child_is_confined") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A path monitor: the derived policy's [[listen]], bound by the broker.
    let sock = dir.path().join("qmp.sock");
    let child = Command::new(bin("openhook-emulator"))
        .args(paused_machine_args())
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut child = Reaper(child);
    let kid = confined_child(pid, &mut child.0);
    assert_ne!(kid, pid);
    assert_filtered(kid);
    // The broker confines itself too once the child runs (its own allow
    // list and a Landlock domain derived from the policy; docs/security.md).
    // It does so right after the exec, racing the child's own entry: poll.
    let start = Instant::now();
    while seccomp_mode(pid) != "2" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the broker never confined itself"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    while !sock.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    qmp_session(&sock);
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

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
fn seed_000_perl_launcher_sandboxed() {
    if !kvm_or_skip("seed_000_perl_launcher_sandboxed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp");
    let launcher = dir.path().join("launch.pl");
    std::fs::write(&launcher, SEED_000_LAUNCHER).unwrap();
    let child = Command::new("perl")
        .arg(&launcher)
        .args(paused_machine_args())
        .env("QMP_SOCKET", &sock)
        .env("EMULATOR", bin("openhook-emulator"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut child = Reaper(child);
    // Perl → emulator → broker, all one pid; the confined emulator is its
    // child. The socket was listening before the first exec, so one
    // connect, no retry.
    let kid = confined_child(pid, &mut child.0);
    assert_filtered(kid);
    qmp_session(&sock);
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn systemd_socket_activate_sandboxed_hands_activation_on() {
    if !kvm_or_skip("systemd_socket_activate_sandboxed_hands_activation_on") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("activated.sock");
    // The chardev names no fd: it gets the activated listener by name,
    // which only works if LISTEN_PID named the confined emulator.
    let (mut child, mut err) = spawn_until_stderr(
        Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(&sock)
            .arg("--fdname=mon")
            .arg(bin("openhook-emulator"))
            .args(paused_machine_args())
            .args([
                "-chardev",
                "socket,id=mon,server=on,wait=off",
                "-mon",
                "chardev=mon,mode=control",
            ])
            .stdin(Stdio::null()),
        "Listening on",
    );
    let pid = child.0.id();
    // systemd-socket-activate execs the program on the first connection;
    // the session quits only once the confined child has been seen (or
    // this thread failed and dropped `go`).
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let s = std::thread::spawn({
        let sock = sock.clone();
        move || {
            qmp_session_then_quit(&sock, move || {
                let _ = wait.recv();
            })
        }
    });
    let kid = confined_child(pid, &mut child.0);
    assert_filtered(kid);
    drop(go);
    s.join().unwrap();
    let status = child.0.wait().unwrap();
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    assert_eq!(status.code(), Some(0), "{rest}");
}

#[test]
fn systemd_socket_activate_fd_3_sandboxed() {
    if !kvm_or_skip("systemd_socket_activate_fd_3_sandboxed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("activated.sock");
    let (mut child, mut err) = spawn_until_stderr(
        Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(&sock)
            .arg(bin("openhook-emulator"))
            .args(paused_machine_args())
            .args([
                "-chardev",
                "socket,fd=3,server=on,wait=off,id=mon",
                "-mon",
                "chardev=mon,mode=control",
            ])
            .stdin(Stdio::null()),
        "Listening on",
    );
    qmp_session(&sock);
    let status = child.0.wait().unwrap();
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    assert_eq!(status.code(), Some(0), "{rest}");
}

/// Launcher for the AF_VSOCK activation test: activates a unix listener
/// (fd 3, "mon") and an AF_VSOCK listener (fd 4, "vmon"), execs the
/// emulator (same pid, as systemd would), then talks QMP on the unix one
/// and inspects the confined emulator's fd 4 with pidfd_getfd.
const VSOCK_LAUNCHER: &str = r#"
import ctypes, json, os, socket, sys, time
unix_path, emulator, args = sys.argv[1], sys.argv[2], sys.argv[3:]
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.bind(unix_path); u.listen()
v = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
v.bind((socket.VMADDR_CID_ANY, socket.VMADDR_PORT_ANY)); v.listen()
port = v.getsockname()[1]
pid = os.fork()
if pid == 0:
    # Via fresh numbers: dup2 onto the fd's own number would keep
    # close-on-exec, and the two must not clobber each other.
    a, b = os.dup(u.fileno()), os.dup(v.fileno())
    os.dup2(a, 3); os.dup2(b, 4)
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="2", LISTEN_FDNAMES="mon:vmon")
    os.execv(emulator, [emulator] + args)
u.close(); v.close()
c = socket.socket(socket.AF_UNIX); c.connect(unix_path)
f = c.makefile("rwb")
def msg():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m
greeting = msg()
for cmd in ("qmp_capabilities", "query-chardev"):
    f.write(json.dumps({"execute": cmd}).encode() + b"\n"); f.flush()
    reply = msg()
chardevs = reply["return"]
# The broker re-executed in our child's pid; the confined emulator is its child.
kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
libc = ctypes.CDLL(None, use_errno=True)
found = []
for kid in kids:
    pidfd = os.pidfd_open(int(kid))
    fd = libc.syscall(438, pidfd, 4, 0)  # pidfd_getfd
    if fd >= 0:
        s = socket.socket(fileno=fd)
        found.append({"domain": s.getsockopt(socket.SOL_SOCKET, 39),  # SO_DOMAIN
                      "listening": s.getsockopt(socket.SOL_SOCKET, 30),  # SO_ACCEPTCONN
                      "port": s.getsockname()[1]})
        s.close()
    os.close(pidfd)
f.write(b'{"execute": "quit"}\n'); f.flush()
_, status = os.waitpid(pid, 0)
print(json.dumps({"chardevs": chardevs, "emulator_fd4": found, "port": port,
                  "vsock": socket.AF_VSOCK, "exit": os.waitstatus_to_exitcode(status)}))
"#;

/// An AF_VSOCK listener from socket activation reaches the confined
/// emulator (broker re-exec, activation handed on) and becomes a QMP
/// monitor. No client connects over vsock: this host has only the virtio
/// guest transport, no `vsock_loopback`, so nothing local can reach a
/// vsock listener; the test shows the listener is accepted, passed at its
/// number and kept listening, and that the unix monitor beside it works.
#[test]
fn vsock_listener_from_socket_activation_reaches_the_confined_emulator() {
    if !kvm_or_skip("vsock_listener_from_socket_activation_reaches_the_confined_emulator") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mon.sock");
    let out = Command::new("python3")
        .args(["-c", VSOCK_LAUNCHER])
        .arg(&sock)
        .arg(bin("openhook-emulator"))
        .args(paused_machine_args())
        .args([
            "-chardev",
            "socket,id=mon,server=on,wait=off",
            "-mon",
            "chardev=mon,mode=control",
            "-chardev",
            "socket,id=vmon,server=on,wait=off",
            "-mon",
            "chardev=vmon,mode=control",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "launcher: {stderr}");
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let labels: Vec<&str> = got["chardevs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"vmon") && labels.contains(&"mon"), "{got}");
    assert_eq!(
        got["emulator_fd4"],
        json!([{"domain": got["vsock"], "listening": 1, "port": got["port"]}]),
        "the confined emulator holds the vsock listener at fd 4: {stderr}"
    );
    assert_eq!(got["exit"], json!(0), "{stderr}");
}
