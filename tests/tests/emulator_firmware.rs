//! The guest test firmware on openhook-emulator: the same images, disks
//! and expected transcripts as on QEMU microvm (`firmware_qemu.rs`), so a
//! pass here and there means the two machines agree byte for byte.
//!
//! These run the emulator with `-sandbox off` (no broker); the brokered,
//! sandboxed runs are in `emulator_broker.rs`. KVM tests fail, never skip,
//! with OPENHOOK_REQUIRE_KVM=1.

#![allow(clippy::disallowed_methods)]

use std::process::Command;
use std::time::Duration;

use openhook_tests::fw::{self, FwMachine};
use openhook_tests::kvm_or_skip;

const LIMIT: Duration = Duration::from_secs(60);

struct Outcome {
    run: fw::MachineRun,
    disk: Option<Vec<u8>>,
}

fn run_ours(test: &str, image: &str, disk: Option<bool>) -> Option<Outcome> {
    if !kvm_or_skip(test) {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let serial = dir.path().join("serial.txt");
    let disk_path = dir.path().join("disk.img");
    let mut m = FwMachine::new(fw::image(image), serial.clone());
    if let Some(readonly) = disk {
        fw::prepare_disk(&disk_path, fw::DISK_SECTORS).expect("prepare disk");
        m = m.drive(disk_path.clone(), readonly);
    }
    let mut cmd = Command::new(openhook_tests::bin("openhook-emulator"));
    cmd.arg("-sandbox").arg("off").args(m.args());
    let run = fw::run_machine(cmd, &serial, LIMIT);
    eprintln!("{test}: openhook-emulator wall time {:?}", run.wall);
    let disk = disk.map(|_| std::fs::read(&disk_path).expect("read disk back"));
    Some(Outcome { run, disk })
}

fn assert_transcript(run: &fw::MachineRun, expected: &str) {
    let want = fw::expected_transcript(expected);
    assert_eq!(
        run.serial,
        want,
        "transcript differs from tests/data/fw/{expected}\n{}",
        run.describe()
    );
}

fn assert_disk(disk: &[u8], want: &[u8]) {
    assert_eq!(disk.len(), want.len(), "disk size changed");
    for (s, (got, exp)) in disk
        .chunks(fw::SECTOR)
        .zip(want.chunks(fw::SECTOR))
        .enumerate()
    {
        assert!(got == exp, "disk sector {s} differs from the expectation");
    }
}

#[test]
fn ours_standard_read_write() {
    let Some(o) = run_ours("ours_standard_read_write", fw::IMAGE, Some(false)) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_PASS), "{}", o.run.describe());
    assert_transcript(&o.run, "standard-rw.txt");
    assert_disk(&o.disk.unwrap(), &fw::disk_after_write(fw::DISK_SECTORS));
}

#[test]
fn ours_standard_readonly() {
    let Some(o) = run_ours("ours_standard_readonly", fw::IMAGE, Some(true)) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_PASS), "{}", o.run.describe());
    assert_transcript(&o.run, "standard-readonly.txt");
    assert_disk(&o.disk.unwrap(), &fw::fresh_disk(fw::DISK_SECTORS));
}

#[test]
fn ours_standard_no_disk() {
    let Some(o) = run_ours("ours_standard_no_disk", fw::IMAGE, None) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_NO_DISK), "{}", o.run.describe());
    assert_transcript(&o.run, "standard-no-disk.txt");
}

#[test]
fn ours_boot_variant() {
    let Some(o) = run_ours("ours_boot_variant", fw::BOOT_IMAGE, Some(false)) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_PASS), "{}", o.run.describe());
    assert_transcript(&o.run, "boot.txt");
    assert_disk(&o.disk.unwrap(), &fw::fresh_disk(fw::DISK_SECTORS));
}

#[test]
fn ours_hostile_guest() {
    let Some(o) = run_ours("ours_hostile_guest", fw::HOSTILE_IMAGE, Some(false)) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_PASS), "{}", o.run.describe());
    assert_transcript(&o.run, "hostile-openhook.txt");
    // Buffers outside RAM are refused before any I/O: the disk is unchanged.
    assert_disk(&o.disk.unwrap(), &fw::fresh_disk(fw::DISK_SECTORS));
}
