//! The guest test firmware on QEMU's `microvm` (Debian's qemu-system-x86
//! 7.2): the reference our emulator is compared with. Checks the serial
//! transcript against `tests/data/fw/`, the disk bytes, and the exit status.
//!
//! Skipped only when qemu-system-x86_64 is absent and OPENHOOK_REQUIRE_QEMU
//! is unset (scripts/test.sh sets it).

#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use openhook_tests::fw::{self, FwMachine};

const LIMIT: Duration = Duration::from_secs(120);

struct Outcome {
    run: fw::MachineRun,
    disk: Option<Vec<u8>>,
}

/// Run `image` on QEMU with one fresh test disk (or none); None = skipped.
fn run_qemu(test: &str, image: &str, disk: Option<bool>) -> Option<Outcome> {
    let qemu = fw::qemu_or_skip(test)?;
    let dir = tempfile::tempdir().expect("tempdir");
    let serial = dir.path().join("serial.txt");
    let disk_path = dir.path().join("disk.img");
    let mut m = FwMachine::new(fw::image(image), serial.clone());
    if let Some(readonly) = disk {
        fw::prepare_disk(&disk_path, fw::DISK_SECTORS).expect("prepare disk");
        m = m.drive(disk_path.clone(), readonly);
    }
    let run = fw::run_machine(fw::qemu_command(&qemu, &m), &serial, LIMIT);
    eprintln!("{test}: qemu-system-x86_64 wall time {:?}", run.wall);
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
fn qemu_standard_read_write() {
    let Some(o) = run_qemu("qemu_standard_read_write", fw::IMAGE, Some(false)) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_PASS), "{}", o.run.describe());
    assert_transcript(&o.run, "standard-rw.txt");
    assert_disk(&o.disk.unwrap(), &fw::disk_after_write(fw::DISK_SECTORS));
}

#[test]
fn qemu_standard_readonly() {
    let Some(o) = run_qemu("qemu_standard_readonly", fw::IMAGE, Some(true)) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_PASS), "{}", o.run.describe());
    assert_transcript(&o.run, "standard-readonly.txt");
    assert_disk(&o.disk.unwrap(), &fw::fresh_disk(fw::DISK_SECTORS));
}

#[test]
fn qemu_standard_no_disk() {
    let Some(o) = run_qemu("qemu_standard_no_disk", fw::IMAGE, None) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_NO_DISK), "{}", o.run.describe());
    assert_transcript(&o.run, "standard-no-disk.txt");
}

#[test]
fn qemu_boot_variant() {
    let Some(o) = run_qemu("qemu_boot_variant", fw::BOOT_IMAGE, Some(false)) else {
        return;
    };
    assert_eq!(o.run.code(), Some(fw::EXIT_PASS), "{}", o.run.describe());
    assert_transcript(&o.run, "boot.txt");
    assert_disk(&o.disk.unwrap(), &fw::fresh_disk(fw::DISK_SECTORS));
}

#[test]
fn qemu_hostile_guest() {
    let Some(o) = run_qemu("qemu_hostile_guest", fw::HOSTILE_IMAGE, Some(false)) else {
        return;
    };
    // QEMU survives every case; its answers are recorded as the reference.
    assert_eq!(o.run.code(), Some(fw::EXIT_PASS), "{}", o.run.describe());
    assert_transcript(&o.run, "hostile-qemu.txt");
    // QEMU reads unassigned memory as zeros, so its "write-from-outside-ram"
    // writes zeros over the zeros of sector 1: the file stays the same.
    assert_disk(&o.disk.unwrap(), &fw::fresh_disk(fw::DISK_SECTORS));
}

#[test]
fn qemu_bench_variant() {
    let Some(qemu) = fw::qemu_or_skip("qemu_bench_variant") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let serial = dir.path().join("serial.txt");
    let disk = dir.path().join("bench.img");
    let sectors = 4 * fw::BENCH_CHUNK_SECTORS; // 4 MiB: keeps the test fast
    std::fs::write(&disk, vec![0u8; 4 << 20]).expect("disk");
    let m = FwMachine::new(fw::image(fw::BENCH_IMAGE), serial.clone()).drive(disk.clone(), false);
    let run = fw::run_machine(fw::qemu_command(&qemu, &m), &serial, LIMIT);
    eprintln!(
        "qemu_bench_variant: qemu-system-x86_64 wall time {:?}",
        run.wall
    );
    assert_eq!(run.code(), Some(fw::EXIT_PASS), "{}", run.describe());
    for line in [
        "bench: write start",
        "bench: flush done",
        "bench: read start",
        "bench: verify ok",
        "result: PASS",
    ] {
        assert!(
            run.serial.lines().any(|l| l == line),
            "no {line:?}\n{}",
            run.describe()
        );
    }
    assert!(run
        .serial
        .lines()
        .any(|l| l.starts_with("bench: read done, 8192 sectors in 4 requests, ")));
    assert_disk(
        &std::fs::read(&disk).expect("disk"),
        &fw::disk_after_bench(sectors),
    );
}

/// The expected transcripts must agree with the disk convention: the
/// fnv1a values the firmware prints are those of the sectors the tests
/// compute, so a transcript can only match if the bytes do.
#[test]
fn expected_transcripts_match_the_disk_convention() {
    fn fnv1a(bytes: &[u8]) -> u32 {
        bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    }
    let last = fw::DISK_SECTORS - 1;
    let written: Vec<u8> = (fw::WRITE_FIRST..fw::WRITE_FIRST + fw::WRITE_COUNT)
        .flat_map(fw::written_sector)
        .collect();
    let zeros = vec![0u8; written.len()];
    let rw = fw::expected_transcript("standard-rw.txt");
    let ro = fw::expected_transcript("standard-readonly.txt");
    let lines = [
        (
            &rw,
            format!(
                "blk: read sector 0: status 0, fnv1a {:#010x}, prepared pattern ok",
                fnv1a(&fw::prepared_sector(0))
            ),
        ),
        (
            &rw,
            format!(
                "blk: read sector {last}: status 0, fnv1a {:#010x}, prepared pattern ok",
                fnv1a(&fw::prepared_sector(last))
            ),
        ),
        (
            &rw,
            format!(
                "blk: read sectors 1-8: status 0, fnv1a {:#010x}, written pattern ok",
                fnv1a(&written)
            ),
        ),
        (
            &ro,
            format!(
                "blk: read sectors 1-8: status 0, fnv1a {:#010x}, unchanged",
                fnv1a(&zeros)
            ),
        ),
        (&rw, format!("blk: capacity {} sectors", fw::DISK_SECTORS)),
    ];
    for (t, line) in lines {
        assert!(
            t.lines().any(|l| l == line),
            "expected transcript lacks {line:?}"
        );
    }
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/fw/hostile-qemu.txt")
        .is_file());
}
