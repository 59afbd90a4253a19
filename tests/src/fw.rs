//! The guest test firmware's side of the tests: its images, the disk
//! convention, the command line that runs it, and a runner that reads the
//! serial transcript. See `tests/firmware/README.md`.
//!
//! The same [`FwMachine`] produces the QEMU-syntax arguments for
//! `qemu-system-x86_64 -M microvm` ([`qemu_command`]) and for
//! `openhook-emulator`, so both machines can be fed the same image and disk
//! and compared on transcript, disk bytes and exit status.

// Test harness: reads transcripts and writes disk images by path.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The standard disk test (`tests/firmware`, the `openhook-firmware` package).
pub const IMAGE: &str = openhook_firmware::IMAGE;
/// The hostile-guest variant (`-DOPENHOOK_FW_HOSTILE`).
pub const HOSTILE_IMAGE: &str = openhook_firmware::HOSTILE_IMAGE;
/// The throughput variant (`-DOPENHOOK_FW_BENCH`): whole-disk sequential
/// write then read in 1 MiB requests; needs `-m 4` or more.
pub const BENCH_IMAGE: &str = openhook_firmware::BENCH_IMAGE;
/// The start-up variant (`-DOPENHOOK_FW_BOOT`): the banner, then exit with
/// PASS; it never touches a disk.
pub const BOOT_IMAGE: &str = openhook_firmware::BOOT_IMAGE;
/// Sectors per request of the bench variant.
pub const BENCH_CHUNK_SECTORS: u64 = 2048;

/// Process exit status after the firmware wrote v to isa-debug-exit:
/// `(v << 1) | 1`. v = 0: every check passed.
pub const EXIT_PASS: i32 = 1;
/// v = 1: a check failed (the transcript says which).
pub const EXIT_FAIL: i32 = 3;
/// v = 2: no virtio-blk device found (enumeration itself was fine).
pub const EXIT_NO_DISK: i32 = 5;

pub const SECTOR: usize = 512;
/// Disk size the tests use (1 MiB); the expected transcripts depend on it.
pub const DISK_SECTORS: u64 = 2048;
/// The firmware writes [`written_sector`] to sectors `WRITE_FIRST ..
/// WRITE_FIRST + WRITE_COUNT`.
pub const WRITE_FIRST: u64 = 1;
pub const WRITE_COUNT: u64 = 8;

/// Path of a firmware image (in the `openhook-firmware` build directory).
pub fn image(name: &str) -> PathBuf {
    let p = openhook_firmware::path(name);
    assert!(
        p.is_file(),
        "{} is missing: it is built by tests/firmware/build.rs (cargo build -p openhook-firmware)",
        p.display()
    );
    p
}

fn fill(sector: u64, tag: &[u8; 8], mul_i: u32, mul_s: u32, add: u32) -> [u8; SECTOR] {
    let mut out = [0u8; SECTOR];
    out[..8].copy_from_slice(&sector.to_le_bytes());
    out[8..16].copy_from_slice(tag);
    let s = sector.to_le_bytes();
    let s_low = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    for (i, b) in (16u32..).zip(out[16..].iter_mut()) {
        let v = mul_i
            .wrapping_mul(i)
            .wrapping_add(mul_s.wrapping_mul(s_low))
            .wrapping_add(add);
        *b = v.to_le_bytes()[0];
    }
    out
}

/// What the test puts into sector 0 and the last sector.
pub fn prepared_sector(sector: u64) -> [u8; SECTOR] {
    fill(sector, b"openhook", 1, 13, 0xc3)
}

/// What the firmware writes into sectors 1..=8.
pub fn written_sector(sector: u64) -> [u8; SECTOR] {
    fill(sector, b"fw-wrote", 11, 37, 0x5a)
}

/// A fresh test disk: `sectors` sectors, zero except sector 0 and the last
/// sector, which hold [`prepared_sector`].
pub fn fresh_disk(sectors: u64) -> Vec<u8> {
    let len = usize::try_from(sectors).expect("disk size") * SECTOR;
    let mut d = vec![0u8; len];
    d[..SECTOR].copy_from_slice(&prepared_sector(0));
    d[len - SECTOR..].copy_from_slice(&prepared_sector(sectors - 1));
    d
}

/// The disk after a passing read-write run of the standard firmware.
pub fn disk_after_write(sectors: u64) -> Vec<u8> {
    let mut d = fresh_disk(sectors);
    for s in WRITE_FIRST..WRITE_FIRST + WRITE_COUNT {
        let off = usize::try_from(s).expect("sector") * SECTOR;
        d[off..off + SECTOR].copy_from_slice(&written_sector(s));
    }
    d
}

/// The disk after a passing bench run over a zero-filled disk: every
/// 1 MiB chunk starts with `written_sector(0)`, the rest stays zero.
pub fn disk_after_bench(sectors: u64) -> Vec<u8> {
    let len = usize::try_from(sectors).expect("disk size") * SECTOR;
    let mut d = vec![0u8; len];
    let chunk = usize::try_from(BENCH_CHUNK_SECTORS).expect("chunk") * SECTOR;
    for off in (0..len).step_by(chunk) {
        d[off..off + SECTOR].copy_from_slice(&written_sector(0));
    }
    d
}

/// Write a fresh disk image (see [`fresh_disk`]) to `path`.
pub fn prepare_disk(path: &Path, sectors: u64) -> io::Result<()> {
    std::fs::write(path, fresh_disk(sectors))
}

/// An expected transcript from `tests/data/fw/`.
pub fn expected_transcript(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/fw")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One virtio-blk drive, in command-line order (first is slot 23).
#[derive(Debug, Clone)]
pub struct FwDrive {
    pub file: PathBuf,
    pub readonly: bool,
}

/// A machine running a firmware image: what both QEMU and openhook get.
#[derive(Debug, Clone)]
pub struct FwMachine {
    pub bios: PathBuf,
    /// Serial output goes to this file (`-serial file:PATH`).
    pub serial: PathBuf,
    pub drives: Vec<FwDrive>,
    pub memory_mib: u32,
}

/// QemuOpts value escaping: a comma is written twice.
fn opt(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

impl FwMachine {
    pub fn new(bios: PathBuf, serial: PathBuf) -> Self {
        FwMachine {
            bios,
            serial,
            drives: Vec::new(),
            memory_mib: 128,
        }
    }

    pub fn drive(mut self, file: PathBuf, readonly: bool) -> Self {
        self.drives.push(FwDrive { file, readonly });
        self
    }

    /// The machine's arguments in QEMU syntax, common to QEMU and
    /// openhook-emulator (no accelerator, CPU or machine options).
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<String> = vec![
            "-m".into(),
            self.memory_mib.to_string(),
            "-nodefaults".into(),
            "-nographic".into(),
            "-no-reboot".into(),
            "-bios".into(),
            opt(&self.bios),
            "-serial".into(),
            format!("file:{}", self.serial.display()),
            "-device".into(),
            "isa-debug-exit,iobase=0xf4,iosize=4".into(),
        ];
        for (i, d) in self.drives.iter().enumerate() {
            let ro = if d.readonly { ",readonly=on" } else { "" };
            a.push("-drive".into());
            a.push(format!(
                "id=d{i},file={},format=raw,if=none{ro}",
                opt(&d.file)
            ));
            a.push("-device".into());
            a.push(format!("virtio-blk-device,drive=d{i}"));
        }
        a.into_iter().map(OsString::from).collect()
    }
}

/// Arguments QEMU 7.2 needs for this machine on top of [`FwMachine::args`]:
/// microvm with KVM; `-arch-capabilities` because on PVM hosts QEMU dies
/// setting MSR 0x10a; `force-legacy=false` because QEMU's virtio-mmio
/// transports default to the legacy (version 1) register layout and the
/// firmware speaks only version 2.
pub const QEMU_MACHINE_ARGS: &[&str] = &[
    "-M",
    "microvm",
    "-accel",
    "kvm",
    "-cpu",
    "host,-arch-capabilities",
    "-global",
    "virtio-mmio.force-legacy=false",
];

/// `qemu-system-x86_64` running `m`.
pub fn qemu_command(qemu: &Path, m: &FwMachine) -> Command {
    let mut c = Command::new(qemu);
    c.args(QEMU_MACHINE_ARGS).args(m.args());
    c
}

fn env_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty() && v != "0")
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The QEMU binary, or None (and a note on stderr) when the test should be
/// skipped: only when `qemu-system-x86_64` is absent and
/// `OPENHOOK_REQUIRE_QEMU` is unset (or KVM is absent and neither
/// `OPENHOOK_REQUIRE_QEMU` nor `OPENHOOK_REQUIRE_KVM` is set).
pub fn qemu_or_skip(test: &str) -> Option<PathBuf> {
    let require = env_set("OPENHOOK_REQUIRE_QEMU");
    let Some(qemu) = find_in_path("qemu-system-x86_64") else {
        assert!(
            !require,
            "{test}: qemu-system-x86_64 not found on PATH and OPENHOOK_REQUIRE_QEMU is set \
             (scripts/setup-deps.sh installs it)"
        );
        eprintln!("skipping {test}: qemu-system-x86_64 not found (set OPENHOOK_REQUIRE_QEMU=1 to fail instead)");
        return None;
    };
    if !Path::new("/dev/kvm").exists() {
        assert!(
            !require && !env_set("OPENHOOK_REQUIRE_KVM"),
            "{test}: /dev/kvm is missing but OPENHOOK_REQUIRE_QEMU/OPENHOOK_REQUIRE_KVM is set"
        );
        eprintln!("skipping {test}: /dev/kvm is missing");
        return None;
    }
    Some(qemu)
}

/// What a machine run left behind.
#[derive(Debug)]
pub struct MachineRun {
    /// None when the run was killed at the time limit.
    pub status: Option<ExitStatus>,
    pub serial: String,
    pub stdout: String,
    pub stderr: String,
    /// Launch to exit.
    pub wall: Duration,
}

impl MachineRun {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// A one-line description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status {:?} after {:?}\n--- serial ---\n{}--- stderr ---\n{}",
            self.status, self.wall, self.serial, self.stderr
        )
    }
}

/// Run a machine command to completion (at most `limit`; then it is
/// killed), then read the serial transcript from `serial` (missing file:
/// empty transcript). stdin is /dev/null; stdout and stderr are captured.
pub fn run_machine(mut cmd: Command, serial: &Path, limit: Duration) -> MachineRun {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {:?}: {e}", cmd.get_program()));
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("child pid");
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(Instant::now());
        out
    });
    let timed_out = match rx.recv_timeout(limit) {
        Ok(_) => false,
        Err(_) => {
            // The child is still ours (not yet reaped: the waiter has not
            // returned), so the pid cannot have been reused.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            true
        }
    };
    let out = waiter
        .join()
        .expect("waiter thread")
        .expect("waiting for the machine");
    let wall = start.elapsed();
    MachineRun {
        status: if timed_out { None } else { Some(out.status) },
        serial: std::fs::read_to_string(serial).unwrap_or_default(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_the_documented_formula() {
        let p = prepared_sector(2047);
        assert_eq!(&p[..8], &2047u64.to_le_bytes());
        assert_eq!(&p[8..16], b"openhook");
        assert_eq!(u32::from(p[16]), (16 + 13 * 2047 + 0xc3) % 256);
        let w = written_sector(3);
        assert_eq!(&w[8..16], b"fw-wrote");
        assert_eq!(u32::from(w[511]), (11 * 511 + 37 * 3 + 0x5a) % 256);
        assert_ne!(written_sector(1), written_sector(2));
    }

    #[test]
    fn fresh_and_written_disks_differ_only_in_sectors_1_to_8() {
        let a = fresh_disk(16);
        let b = disk_after_write(16);
        for s in 0..16usize {
            let same = a[s * SECTOR..(s + 1) * SECTOR] == b[s * SECTOR..(s + 1) * SECTOR];
            assert_eq!(same, !(1..=8).contains(&s), "sector {s}");
        }
    }

    #[test]
    fn args_escape_commas_and_order_drives() {
        let m = FwMachine::new("/a,b/fw.bin".into(), "/s.txt".into())
            .drive("/d0.img".into(), false)
            .drive("/d1.img".into(), true);
        let a: Vec<String> = m
            .args()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert!(a.contains(&"/a,,b/fw.bin".to_string()));
        let d0 = a.iter().position(|s| s.starts_with("id=d0,")).unwrap();
        let d1 = a.iter().position(|s| s.starts_with("id=d1,")).unwrap();
        assert!(d0 < d1);
        assert!(a[d1].ends_with(",readonly=on"));
    }
}
