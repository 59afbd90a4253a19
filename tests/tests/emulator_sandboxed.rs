//! openhook-emulator sandboxed (seccomp, Landlock, no capabilities) with
//! every file coming through `-open-hook-fd`: a test "broker" thread in
//! this process serves an allow-list of exact paths over a real socket
//! with the wire crate's server loop. The guest firmware must pass, the
//! disk must hold what the guest wrote, and paths outside the list must
//! fail at start-up with a clear error. KVM tests fail, never skip, with
//! OPENHOOK_REQUIRE_KVM=1.

#![allow(clippy::disallowed_methods)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openhook_tests::fw::{self, FwMachine};
use openhook_wire::errno::Errno;
use openhook_wire::hook::{Connection, Handler, OpenRequest};
use rustix::fs::{Mode, OFlags};
use rustix::io::FdFlags;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

const LIMIT: Duration = Duration::from_secs(60);

fn kvm_or_skip(test: &str) -> bool {
    if Path::new("/dev/kvm").exists() {
        return true;
    }
    assert!(
        std::env::var("OPENHOOK_REQUIRE_KVM").as_deref() != Ok("1"),
        "{test}: /dev/kvm is missing but OPENHOOK_REQUIRE_KVM=1"
    );
    eprintln!("skipping {test}: /dev/kvm is missing");
    false
}

/// Requests as (path, flags).
type Seen = Vec<(Vec<u8>, u32)>;

/// Serves exactly the listed paths; records every request.
struct AllowList {
    allowed: Vec<PathBuf>,
    seen: Arc<Mutex<Seen>>,
}

impl Handler for AllowList {
    fn open(&mut self, r: &OpenRequest<'_>) -> Result<OwnedFd, Errno> {
        self.seen.lock().unwrap().push((r.path.to_vec(), r.flags));
        if !self
            .allowed
            .iter()
            .any(|p| p.as_os_str().as_bytes() == r.path)
        {
            return Err(Errno::EACCES);
        }
        let flags = OFlags::from_bits_retain(r.flags) | OFlags::CLOEXEC | OFlags::NOCTTY;
        rustix::fs::open(
            Path::new(std::ffi::OsStr::from_bytes(r.path)),
            flags,
            Mode::from_raw_mode(r.mode),
        )
        .map_err(|e| Errno::from_io_error(&e.into()).unwrap_or(Errno::EACCES))
    }
}

struct Brokered {
    run: fw::MachineRun,
    seen: Seen,
}

/// Runs the emulator with `args`, its hook socket served by `allowed`.
fn run_brokered(
    allowed: Vec<PathBuf>,
    args: Vec<std::ffi::OsString>,
    serial: &Path,
    extra_fd: Option<&OwnedFd>,
) -> Brokered {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    // The child inherits its end: clear close-on-exec just for the spawn.
    rustix::io::fcntl_setfd(&theirs, FdFlags::empty()).unwrap();
    if let Some(fd) = extra_fd {
        rustix::io::fcntl_setfd(fd, FdFlags::empty()).unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut handler = AllowList {
        allowed,
        seen: seen.clone(),
    };
    let server = std::thread::spawn(move || {
        let _ = Connection::new(ours).serve(&mut handler);
    });
    let mut cmd = Command::new(openhook_tests::bin("openhook-emulator"));
    cmd.args(args)
        .arg("-open-hook-fd")
        .arg(theirs.as_raw_fd().to_string());
    let run = fw::run_machine(cmd, serial, LIMIT);
    eprintln!("emulator stderr:\n{}", run.stderr);
    drop(theirs);
    server.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    Brokered { run, seen }
}

fn paths(seen: &[(Vec<u8>, u32)]) -> Vec<String> {
    seen.iter()
        .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

#[test]
fn sandboxed_firmware_passes_with_files_from_the_hook() {
    if !kvm_or_skip("sandboxed_firmware_passes_with_files_from_the_hook") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.txt");
    let disk = dir.path().join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
    let bios = fw::image(fw::IMAGE);
    let m = FwMachine::new(bios.clone(), serial.clone()).drive(disk.clone(), false);
    let allowed = vec![
        PathBuf::from("/dev/kvm"),
        bios.clone(),
        disk.clone(),
        serial.clone(),
    ];
    let b = run_brokered(allowed, m.args(), &serial, None);
    eprintln!("sandboxed run: wall time {:?}", b.run.wall);
    assert_eq!(b.run.code(), Some(fw::EXIT_PASS), "{}", b.run.describe());
    assert_eq!(b.run.serial, fw::expected_transcript("standard-rw.txt"));
    assert!(
        std::fs::read(&disk).unwrap() == fw::disk_after_write(fw::DISK_SECTORS),
        "disk bytes"
    );
    let want: Vec<String> = [
        "/dev/kvm",
        bios.to_str().unwrap(),
        disk.to_str().unwrap(),
        serial.to_str().unwrap(),
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        paths(&b.seen),
        want,
        "exactly these requests, in this order"
    );
    // The sandbox really was on: the emulator said nothing about it being off.
    assert!(!b.run.stderr.contains("sandbox is OFF"), "{}", b.run.stderr);
}

#[test]
fn sandboxed_readonly_drive_refuses_guest_writes() {
    if !kvm_or_skip("sandboxed_readonly_drive_refuses_guest_writes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.txt");
    let disk = dir.path().join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
    let bios = fw::image(fw::IMAGE);
    let m = FwMachine::new(bios.clone(), serial.clone()).drive(disk.clone(), true);
    let allowed = vec![
        PathBuf::from("/dev/kvm"),
        bios,
        disk.clone(),
        serial.clone(),
    ];
    let b = run_brokered(allowed, m.args(), &serial, None);
    assert_eq!(b.run.code(), Some(fw::EXIT_PASS), "{}", b.run.describe());
    assert_eq!(
        b.run.serial,
        fw::expected_transcript("standard-readonly.txt")
    );
    assert!(
        std::fs::read(&disk).unwrap() == fw::fresh_disk(fw::DISK_SECTORS),
        "disk unchanged"
    );
    // The drive was asked for read-only.
    let (_, flags) = b
        .seen
        .iter()
        .find(|(p, _)| p == disk.as_os_str().as_bytes())
        .unwrap();
    assert_eq!(flags & 3, 0, "O_RDONLY");
}

#[test]
fn a_drive_the_broker_refuses_is_a_clear_startup_error() {
    if !kvm_or_skip("a_drive_the_broker_refuses_is_a_clear_startup_error") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.txt");
    let disk = dir.path().join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
    let bios = fw::image(fw::IMAGE);
    let m = FwMachine::new(bios.clone(), serial.clone()).drive(disk.clone(), false);
    // The disk is not on the list.
    let b = run_brokered(
        vec![PathBuf::from("/dev/kvm"), bios, serial.clone()],
        m.args(),
        &serial,
        None,
    );
    assert_eq!(b.run.code(), Some(1), "{}", b.run.describe());
    let line = format!(
        "drive '{}': Permission denied (os error 13)",
        disk.display()
    );
    assert!(
        b.run.stderr.contains(&line),
        "stderr lacks {line:?}:\n{}",
        b.run.stderr
    );
    assert!(
        std::fs::read(&disk).unwrap() == fw::fresh_disk(fw::DISK_SECTORS),
        "nothing written"
    );
    assert!(!serial.exists(), "nothing created");
}

#[test]
fn disk_from_an_fd_set_never_reaches_the_broker() {
    if !kvm_or_skip("disk_from_an_fd_set_never_reaches_the_broker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serial = dir.path().join("serial.txt");
    let disk = dir.path().join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
    let disk_fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .unwrap()
        .into();
    let bios = fw::image(fw::IMAGE);
    let m =
        FwMachine::new(bios.clone(), serial.clone()).drive(PathBuf::from("/dev/fdset/1"), false);
    let mut args = vec![
        "-add-fd".into(),
        format!("fd={},set=1", disk_fd.as_raw_fd()).into(),
    ];
    args.extend(m.args());
    let b = run_brokered(
        vec![PathBuf::from("/dev/kvm"), bios.clone(), serial.clone()],
        args,
        &serial,
        Some(&disk_fd),
    );
    assert_eq!(b.run.code(), Some(fw::EXIT_PASS), "{}", b.run.describe());
    assert!(
        std::fs::read(&disk).unwrap() == fw::disk_after_write(fw::DISK_SECTORS),
        "disk bytes"
    );
    assert!(
        !paths(&b.seen)
            .iter()
            .any(|p| p.contains("fdset") || p.contains("disk")),
        "{:?}",
        paths(&b.seen)
    );
}
