//! openhook-emulator launched by the real openhook-broker, under
//! policies: a policy allowing exactly `/dev/kvm`, the firmware, the
//! disk and a serial-log directory; a read-only drive; a drive outside the
//! policy. (The fully-confined successful run is in sandbox_emulator.rs.)
//! KVM tests fail, never skip, with OPENHOOK_REQUIRE_KVM=1.

#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use openhook_tests::bin;
use openhook_tests::fw::{self, FwMachine};
use openhook_tests::kvm_or_skip;

const LIMIT: Duration = Duration::from_secs(120);

struct Paths {
    _tmp: tempfile::TempDir,
    disk: PathBuf,
    logs: PathBuf,
    policy: PathBuf,
}

/// A disk in its own directory, a serial-log directory, and a policy
/// allowing `/dev/kvm`, the firmware, the serial-log directory (create) and
/// — when `allow_disk` — the disk file with `disk_access`.
fn setup(allow_disk: bool, disk_access: &str) -> Paths {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&images).unwrap();
    std::fs::create_dir(&logs).unwrap();
    let disk = images.join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
    let mut policy = format!(
        "version = 1\n\
         [[allow]]\npath = \"/dev/kvm\"\naccess = \"rw\"\ntypes = [\"char\"]\n\
         [[allow]]\npath = \"{}\"\naccess = \"r\"\n\
         [[allow]]\npath = \"{}/\"\naccess = \"w\"\ncreate = true\nmode = 0o640\n",
        fw::image(fw::IMAGE).display(),
        logs.display()
    );
    if allow_disk {
        policy.push_str(&format!(
            "[[allow]]\npath = \"{}\"\naccess = \"{disk_access}\"\n",
            disk.display()
        ));
    }
    let policy_path = tmp.path().join("policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    Paths {
        _tmp: tmp,
        disk,
        logs,
        policy: policy_path,
    }
}

fn run(p: &Paths, readonly: bool) -> fw::MachineRun {
    let serial = p.logs.join("serial.txt");
    let m = FwMachine::new(fw::image(fw::IMAGE), serial.clone()).drive(p.disk.clone(), readonly);
    let mut args: Vec<OsString> = vec![
        "--policy".into(),
        p.policy.clone().into(),
        "--".into(),
        bin("openhook-emulator").into(),
    ];
    args.extend(m.args());
    let mut cmd = Command::new(bin("openhook-broker"));
    cmd.args(args);
    fw::run_machine(cmd, &serial, LIMIT)
}

#[test]
fn brokered_guest_writes_the_disk_and_exits_with_the_firmwares_status() {
    if !kvm_or_skip("brokered rw") {
        return;
    }
    let p = setup(true, "rw");
    let r = run(&p, false);
    assert_eq!(r.code(), Some(fw::EXIT_PASS), "{}", r.describe());
    assert_eq!(r.serial, fw::expected_transcript("standard-rw.txt"));
    assert!(std::fs::read(&p.disk).unwrap() == fw::disk_after_write(fw::DISK_SECTORS));
}

#[test]
fn brokered_readonly_drive_gets_ioerr_and_the_file_is_unchanged() {
    if !kvm_or_skip("brokered readonly") {
        return;
    }
    // The policy grants only read access: readonly=on must ask for no more.
    let p = setup(true, "r");
    let r = run(&p, true);
    assert_eq!(r.code(), Some(fw::EXIT_PASS), "{}", r.describe());
    assert_eq!(r.serial, fw::expected_transcript("standard-readonly.txt"));
    assert!(std::fs::read(&p.disk).unwrap() == fw::fresh_disk(fw::DISK_SECTORS));
}

#[test]
fn a_drive_outside_the_policy_is_one_clear_startup_error() {
    if !kvm_or_skip("drive outside policy") {
        return;
    }
    for (allow, access, readonly) in [(false, "rw", false), (true, "r", false)] {
        let p = setup(allow, access);
        let r = run(&p, readonly);
        assert_eq!(r.code(), Some(1), "{}", r.describe());
        let line = format!(
            "drive '{}': Permission denied (os error 13)",
            p.disk.display()
        );
        let errors: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("openhook-emulator: "))
            .collect();
        assert!(
            errors.iter().any(|l| l.ends_with(&line)),
            "no {line:?} in\n{}",
            r.stderr
        );
        assert_eq!(
            errors.iter().filter(|l| !l.contains("WARNING")).count(),
            1,
            "one error line: {errors:?}"
        );
        assert!(
            std::fs::read(&p.disk).unwrap() == fw::fresh_disk(fw::DISK_SECTORS),
            "disk untouched"
        );
        let logs: Vec<_> = std::fs::read_dir(&p.logs).unwrap().collect();
        assert!(logs.is_empty(), "nothing written anywhere: {logs:?}");
    }
}
