//! The emulator's diagnostics reach stderr: a `tracing` line from inside
//! the running machine (the serial input thread failing to read stdin) is
//! printed, filtered by OPENHOOK_LOG as the broker's are. Without a
//! subscriber installed the line goes nowhere and the test times out.
//! KVM tests fail, never skip, with OPENHOOK_REQUIRE_KVM=1.

#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use openhook_tests::{bin, kvm_or_skip};

/// A 64 KiB firmware image whose guest polls the UART's line status for
/// received data forever (it never gets any here).
fn waiting_rom(dir: &Path) -> PathBuf {
    #[rustfmt::skip]
    let code: [u8; 8] = [
        0xba, 0xfd, 0x03, // 0: mov dx, 0x3fd (line status)
        0xec,             // 3: in al, dx
        0xa8, 0x01,       // 4: test al, 1 (data ready)
        0xeb, 0xf8,       // 6: jmp 0
    ];
    let mut rom = vec![0xf4u8; 0x1_0000];
    rom[..code.len()].copy_from_slice(&code);
    rom[0xfff0..0xfff3].copy_from_slice(&[0xe9, 0x0d, 0x00]); // jmp near 0
    let path = dir.join("wait.bin");
    std::fs::write(&path, rom).unwrap();
    path
}

#[test]
fn a_tracing_warning_from_the_running_machine_reaches_stderr() {
    if !kvm_or_skip("a_tracing_warning_from_the_running_machine_reaches_stderr") {
        return;
    }
    warning_reaches_stderr(&["-sandbox", "off"]);
}

/// The same inside the full sandbox (launched directly: the emulator
/// re-executes itself as the broker, which launches it confined): writing
/// the line needs nothing the confined emulator lacks.
#[test]
fn a_tracing_warning_from_the_confined_machine_reaches_stderr() {
    if !kvm_or_skip("a_tracing_warning_from_the_confined_machine_reaches_stderr") {
        return;
    }
    warning_reaches_stderr(&[]);
}

fn warning_reaches_stderr(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let rom = waiting_rom(dir.path());
    // A directory as stdin: the serial input thread's read fails (EISDIR)
    // and it logs a warning.
    let stdin = std::fs::File::open(dir.path()).unwrap();
    let mut child = Command::new(bin("openhook-emulator"))
        .args(extra)
        .args(["-m", "16", "-nodefaults", "-nographic"])
        .arg("-bios")
        .arg(&rom)
        .args(["-serial", "stdio"])
        .env_remove("OPENHOOK_LOG")
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openhook-emulator");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("serial input: reading stdin") {
                let _ = tx.send(line.clone());
            }
            lines.push(line);
        }
        lines
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let all = reader.join().unwrap();
    let line = got.unwrap_or_else(|_| panic!("no tracing line on stderr within 30 s: {all:?}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("Is a directory"), "{line}");
    let unconfined = all.iter().any(|l| l.contains("sandbox is OFF"));
    assert_eq!(unconfined, extra.contains(&"off"), "{all:?}");
}
