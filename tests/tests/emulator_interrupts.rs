//! Interrupts reach a guest that uses them, with each irqchip placement
//! (`-accel kvm,kernel-irqchip=split|on`, and the default), and a reset
//! returns the interrupt controllers to their power-on state.
//!
//! The interrupt firmware (`openhook-fw-irq.bin`) routes the UART (pin 4,
//! edge) and the disk's virtio line (level) through the IOAPIC to the
//! local APIC, waits for the THR-empty interrupt and for one request's
//! used-ring interrupt, leaves both controllers programmed and waits for a
//! reset; after QMP `system_reset` it checks every IOAPIC pin masked and
//! clear, IOAPIC id 0 and the local APIC software-disabled. Without an
//! irqchip (`kernel-irqchip=off`) the same firmware fails: the test can.

#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openhook_tests::fw::{self, FwMachine};
use openhook_tests::{bin, kvm_or_skip};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("openhook-irq-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// The firmware machine's arguments without `-no-reboot` (a reset must
/// reset, not end the machine), plus `extra`.
fn command(m: &FwMachine, extra: &[&str]) -> Command {
    let mut c = Command::new(bin("openhook-emulator"));
    c.arg("-sandbox").arg("off");
    c.args(m.args().into_iter().filter(|a| a != "-no-reboot"));
    c.args(extra);
    c
}

fn machine(dir: &Path) -> FwMachine {
    let disk = dir.join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
    FwMachine::new(
        fw::image(openhook_firmware::IRQ_IMAGE),
        dir.join("serial.txt"),
    )
    .drive(disk, false)
}

fn wait_for_line(serial: &Path, what: &str, child: &mut std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(serial).unwrap_or_default();
        if text.contains(what) {
            return text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("machine ended ({status}) before {what:?}; serial:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no {what:?} in 60 s; serial:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the interrupt firmware with `extra` options, resets it over QMP once
/// it is programmed, and returns the whole transcript and the exit code.
fn run_with_reset(name: &str, extra: &[&str]) -> (String, Option<i32>) {
    let dir = scratch(name);
    let m = machine(&dir.0);
    let sock = dir.0.join("qmp.sock");
    let qmp = format!("unix:{},server=on,wait=off", sock.display());
    let mut cmd = command(&m, extra);
    cmd.arg("-qmp").arg(&qmp);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let programmed = wait_for_line(
        &m.serial,
        "irq: programmed, waiting for reset\n",
        &mut child,
    );
    let stream = UnixStream::connect(&sock).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("\"QMP\""), "greeting: {line}");
    let mut w = stream;
    w.write_all(
        b"{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"system_reset\", \"id\": 1}\n",
    )
    .unwrap();
    // The firmware exits after its result line; read the transcript only
    // then (it is written a byte at a time).
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = std::fs::read_to_string(&m.serial).unwrap_or_default();
    assert!(text.starts_with(&programmed[..programmed.len().min(40)]));
    (text, status.code())
}

fn check_interrupts_and_reset(name: &str, extra: &[&str]) -> String {
    if !kvm_or_skip(name) {
        return String::new();
    }
    let (text, code) = run_with_reset(name, extra);
    for want in [
        "irq: power-on: ioapic id 0, 24/24 pins masked, 24/24 clear; lapic svr ff\n",
        "irq: serial: interrupt taken\n",
        "irq: virtio: interrupt taken\n",
        "irq: programmed, waiting for reset\n",
        "irq: after reset: ioapic id 0, 24/24 pins masked, 24/24 clear; lapic svr ff\n",
        "result: PASS\n",
    ] {
        assert!(text.contains(want), "{name}: no {want:?} in:\n{text}");
    }
    assert_eq!(code, Some(1), "{name}: exit status; serial:\n{text}");
    text
}

#[test]
fn split_irqchip_delivers_serial_and_virtio_interrupts_and_resets_the_ioapic() {
    let text = check_interrupts_and_reset("split", &["-accel", "kvm,kernel-irqchip=split"]);
    assert!(
        text.is_empty() || text.contains("irq: pit: absent\n"),
        "{text}"
    );
}

#[test]
fn in_kernel_irqchip_delivers_serial_and_virtio_interrupts_and_resets() {
    check_interrupts_and_reset("on", &["-accel", "kvm,kernel-irqchip=on"]);
}

/// The in-kernel PIT (what a `-kernel` boot gets by default) interrupts
/// through the in-kernel IOAPIC, with `kernel-irqchip=on` given and as
/// chosen by `pit=on` alone; without a PIT the firmware says so.
#[test]
fn in_kernel_pit_interrupts_reach_the_guest() {
    for (name, extra) in [
        (
            "pit-on",
            &["-accel", "kvm,kernel-irqchip=on", "-M", "microvm,pit=on"][..],
        ),
        ("pit-auto", &["-M", "microvm,pit=on"][..]),
    ] {
        let text = check_interrupts_and_reset(name, extra);
        assert!(
            text.is_empty() || text.contains("irq: pit: interrupt taken\n"),
            "{text}"
        );
    }
}

#[test]
fn default_irqchip_delivers_interrupts() {
    check_interrupts_and_reset("default", &[]);
}

#[test]
fn without_an_irqchip_the_interrupt_guest_fails() {
    if !kvm_or_skip("without_an_irqchip_the_interrupt_guest_fails") {
        return;
    }
    let dir = scratch("off");
    let m = machine(&dir.0);
    let run = fw::run_machine(
        command(&m, &["-accel", "kvm,kernel-irqchip=off", "-no-reboot"]),
        &m.serial,
        Duration::from_secs(120),
    );
    assert!(
        run.serial.contains("irq: serial: FAIL: no interrupt\n")
            && run.serial.contains("irq: virtio: FAIL: no interrupt\n"),
        "{}",
        run.describe()
    );
    assert_eq!(run.code(), Some(3), "{}", run.describe());
}

#[test]
fn pit_on_needs_the_in_kernel_irqchip() {
    if !kvm_or_skip("pit_on_needs_the_in_kernel_irqchip") {
        return;
    }
    let dir = scratch("pit-refused");
    let m = machine(&dir.0);
    let run = fw::run_machine(
        command(
            &m,
            &["-accel", "kvm,kernel-irqchip=split", "-M", "microvm,pit=on"],
        ),
        &m.serial,
        Duration::from_secs(60),
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .contains("pit=on and pic=on need kernel-irqchip=on"),
        "{}",
        run.describe()
    );
}
