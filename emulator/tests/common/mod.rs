//! Shared helpers for the machine's real-KVM tests: a /dev/kvm fd, serial
//! capture, a watchdog, and hand-assembled guest code (see `guest.rs`).
#![allow(clippy::disallowed_methods, dead_code)]

pub mod guest;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openhook_emulator::machine::{ExitReason, Machine, MachineControl, MachineFiles, MachineInfo};
use openhook_emulator::vm_config::{DebugExitConfig, MachineConfig};

/// `/dev/kvm`, or `None` (test skipped) when it cannot be opened and
/// `OPENHOOK_REQUIRE_KVM` is not `1` — with it set, the test fails.
pub fn kvm() -> Option<OwnedFd> {
    match OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(f) => Some(f.into()),
        Err(e) => {
            if std::env::var("OPENHOOK_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("OPENHOOK_REQUIRE_KVM=1 but /dev/kvm cannot be opened: {e}");
            }
            eprintln!("skipping: /dev/kvm unavailable ({e})");
            None
        }
    }
}

/// Serial output captured in memory.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl openhook_emulator::devices::serial::SerialOutput for Capture {}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A config for a firmware-booted test machine with isa-debug-exit at 0xf4.
/// Queue notifications are served on the vCPU thread (`ioeventfd=off`):
/// the straight-line guests of `guest.rs` read a request's outcome right
/// after QueueNotify, which only the synchronous path guarantees. Tests
/// of the I/O-thread path set `ioeventfd` and wait for the used ring.
pub fn config() -> MachineConfig {
    MachineConfig {
        memory_mib: 16,
        ioeventfd: false,
        firmware: Some("test-firmware.bin".into()),
        debug_exit: Some(DebugExitConfig {
            iobase: 0xf4,
            iosize: 4,
        }),
        ..MachineConfig::default()
    }
}

/// A firmware image as an (unlinked) temporary file.
pub fn firmware_file(bytes: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

pub struct Run {
    pub reason: ExitReason,
    pub info: MachineInfo,
    pub serial: String,
    pub control: MachineControl,
}

/// Quits the machine if it is still running after `secs`: a hang shows up
/// as `ExitReason::Quit` instead of a stuck test.
pub fn watchdog(control: MachineControl, secs: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        control.quit();
    });
}

/// Builds and runs a machine with `rom` as firmware and `drives` as disks.
pub fn run_rom(cfg: &MachineConfig, rom: &[u8], drives: Vec<File>) -> Option<Run> {
    let kvm = kvm()?;
    let serial = Capture::default();
    let files = MachineFiles {
        kvm,
        firmware: Some(firmware_file(rom)),
        kernel: None,
        initrd: None,
        drives,
        serial: Box::new(serial.clone()),
    };
    let machine = Machine::build(cfg, files).expect("build machine");
    let info = machine.info().clone();
    let control = machine.control();
    watchdog(control.clone(), 30);
    let reason = machine.run();
    Some(Run {
        reason,
        info,
        serial: serial.text(),
        control,
    })
}
