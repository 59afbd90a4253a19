//! `contrib/systemd/`: the units pass `systemd-analyze verify`, and the
//! service's exact `ExecStart` (specifiers expanded, install prefixes
//! mapped into a scratch root) runs the shipped example VM
//! (`contrib/examples/vm1.*`) under `systemd-socket-activate` with the
//! socket unit's `ListenStream` and `FileDescriptorName`: a QMP client
//! connects to that address, which starts the VM, talks to the confined
//! emulator, and lets the firmware run to its verdict.
//!
//! Nothing is installed on the host: systemd's view of `/usr/bin`, `/etc`,
//! `/var` and `/run` is the scratch root (`--root` for verify; a path map
//! for the run, since the binaries are the ones just built).
#![allow(clippy::disallowed_methods)]

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use openhook_tests::fw;
use openhook_tests::{bin, bin_dir, kvm_or_skip, read_until, spawn_until_stderr, tool_or_skip};
use serde_json::json;

const INSTANCE: &str = "vm1";

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib")
        .join(rel)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The value of the first `KEY=` line of a unit file.
fn directive(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_string()
}

/// The host paths the scratch root stands for, longest first.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        Root {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, abs: &str) -> PathBuf {
        self.dir.path().join(abs.trim_start_matches('/'))
    }

    /// `text` with `%i` expanded and every install location moved into the
    /// scratch root; `/usr/bin/` becomes the directory of the built binaries.
    fn map(&self, text: &str) -> String {
        let mut s = text.replace("%i", INSTANCE);
        for prefix in [
            "/etc/openhook/",
            "/var/lib/openhook/",
            "/var/log/openhook/",
            "/run/openhook/",
        ] {
            let to = self.path(prefix.trim_end_matches('/'));
            s = s.replace(prefix, &format!("{}/", to.display()));
        }
        s.replace("/usr/bin/", &format!("{}/", bin_dir().display()))
    }
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool_or_skip("units_verify", "systemd-analyze") else {
        return;
    };
    let host_units = Path::new("/usr/lib/systemd/system");
    if !host_units.join("sysinit.target").exists() {
        let _ = tool_or_skip("units_verify", "systemd-sysinit.target-is-missing");
        return;
    }
    let root = Root::new();
    let units = root.path("/etc/systemd/system");
    let usr_bin = root.path("/usr/bin");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(&usr_bin).unwrap();
    for name in ["openhook-vm@.service", "openhook-vm@.socket"] {
        std::fs::copy(contrib(&format!("systemd/{name}")), units.join(name)).unwrap();
    }
    // ExecStart's programs must exist and be executable in the root.
    for b in ["openhook-broker", "openhook-emulator"] {
        std::fs::copy(bin(b), usr_bin.join(b)).unwrap();
    }
    // The targets the units order against (sysinit.target, sockets.target, ...).
    std::fs::create_dir_all(root.path("/usr/lib/systemd")).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(host_units)
        .arg(root.path("/usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(status.success());
    let verify = |units: &[&str]| {
        Command::new(&analyze)
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.dir.path().display()))
            .args(units)
            .output()
            .unwrap()
    };
    let out = verify(&[
        &format!("openhook-vm@{INSTANCE}.service"),
        &format!("openhook-vm@{INSTANCE}.socket"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // verify only warns about unknown keys and the like: none allowed.
    assert!(stderr.trim().is_empty(), "{stderr}");

    // The check can fail: a misspelt directive is reported.
    let service = units.join("openhook-vm@.service");
    let text = read(&service).replace("ProtectHome=yes", "ProtectHomme=yes");
    std::fs::write(&service, text).unwrap();
    let out = verify(&[&format!("openhook-vm@{INSTANCE}.service")]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ProtectHomme"),
        "{out:?}"
    );
}

#[test]
fn exec_start_under_socket_activation_serves_qmp_and_runs_the_vm() {
    if !kvm_or_skip("exec_start_socket_activation") {
        return;
    }
    let Some(activate) = tool_or_skip("exec_start_socket_activation", "systemd-socket-activate")
    else {
        return;
    };
    let service = read(&contrib("systemd/openhook-vm@.service"));
    let socket = read(&contrib("systemd/openhook-vm@.socket"));
    let root = Root::new();

    // What systemd creates for the unit (StateDirectory, LogsDirectory,
    // the socket's directory) and what the operator installs.
    for d in [
        "/etc/openhook",
        "/var/lib/openhook/vm1",
        "/var/log/openhook/vm1",
        "/run/openhook",
    ] {
        std::fs::create_dir_all(root.path(d)).unwrap();
    }
    assert_eq!(directive(&service, "StateDirectory"), "openhook/%i");
    // The audit log's directory and the VM's own are writable.
    assert_eq!(directive(&service, "LogsDirectory"), "openhook openhook/%i");
    std::fs::copy(
        fw::image(fw::IMAGE),
        root.path("/var/lib/openhook/vm1/firmware.bin"),
    )
    .unwrap();
    fw::prepare_disk(
        &root.path("/var/lib/openhook/vm1/disk.img"),
        fw::DISK_SECTORS,
    )
    .unwrap();
    std::fs::write(
        root.path("/etc/openhook/vm1.toml"),
        root.map(&read(&contrib("examples/vm1.toml"))),
    )
    .unwrap();
    // The shipped arguments, paused at start-up so the test sees the
    // machine before the firmware runs.
    let args = root.map(&read(&contrib("examples/vm1.args"))) + "-S\n";
    std::fs::write(root.path("/etc/openhook/vm1.args"), args).unwrap();

    let exec_start = root.map(&directive(&service, "ExecStart"));
    let listen = PathBuf::from(root.map(&directive(&socket, "ListenStream")));
    let fdname = directive(&socket, "FileDescriptorName");
    let (mut child, mut err) = spawn_until_stderr(
        Command::new(&activate)
            .arg("-l")
            .arg(&listen)
            .arg(format!("--fdname={fdname}"))
            .args(exec_start.split_whitespace())
            .stdin(Stdio::null()),
        "Listening on",
    );

    // The first connection starts the service.
    let mut s = UnixStream::connect(&listen).unwrap();
    // Whatever the launcher, broker and emulator say, shown on failure.
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let guard = Diagnostics(Some(err));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let greeting = read_until(&mut r, |v| v.get("QMP").is_some());
    let package = format!("openhook-emulator {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(greeting[0]["QMP"]["version"]["package"], json!(package));
    s.write_all(
        b"{\"execute\": \"qmp_capabilities\"}\n\
          {\"execute\": \"query-name\", \"id\": 1}\n\
          {\"execute\": \"query-status\", \"id\": 2}\n",
    )
    .unwrap();
    let got = read_until(&mut r, |v| v.get("id") == Some(&json!(2)));
    assert!(
        got.contains(&json!({"return": {"name": INSTANCE}, "id": 1})),
        "{got:?}"
    );
    assert_eq!(
        got.last().unwrap()["return"],
        json!({"status": "prelaunch", "singlestep": false, "running": false})
    );
    s.write_all(b"{\"execute\": \"cont\", \"id\": 3}\n")
        .unwrap();
    read_until(&mut r, |v| v.get("id") == Some(&json!(3)));

    // The firmware checks the disk and reports through isa-debug-exit:
    // status 1 is its pass, relayed by the emulator and the broker.
    let status = child.0.wait().unwrap();
    let rest = guard.take();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert_eq!(
        read(&root.path("/var/log/openhook/vm1/serial.txt")),
        fw::expected_transcript("standard-rw.txt")
    );
    let audit = read(&root.path("/var/log/openhook/vm1.jsonl"));
    for file in ["firmware.bin", "disk.img", "serial.txt", "/dev/kvm"] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(file) && l.contains("\"decision\":\"allow\"")),
            "{file} not allowed in\n{audit}"
        );
    }
}

/// The stderr reader of the launched service: printed if the test fails
/// before [`Diagnostics::take`].
struct Diagnostics(Option<std::thread::JoinHandle<String>>);

impl Diagnostics {
    fn take(mut self) -> String {
        self.0
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Diagnostics {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            if std::thread::panicking() && t.is_finished() {
                eprintln!("service stderr:\n{}", t.join().unwrap_or_default());
            }
        }
    }
}
