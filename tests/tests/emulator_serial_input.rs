//! Guest serial input: with `-serial stdio`, what the emulator reads on
//! stdin reaches the guest's UART, none of it lost when the guest reads
//! slower than it arrives (the UART's FIFO holds 64 bytes), as on QEMU.
//!
//! The guest is a hand-assembled real-mode echo loop: poll the line status
//! for received data, read the byte, write it back, stop at `q` through
//! isa-debug-exit. KVM tests fail, never skip, with OPENHOOK_REQUIRE_KVM=1.

#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use openhook_tests::{bin, fw, kvm_or_skip};

/// Writes `echo.bin` into `dir` and returns its path: a 64 KiB firmware
/// image, the echo loop at offset 0 (mapped at 0xffff0000) and `jmp near
/// 0` at the reset vector.
fn echo_rom(dir: &Path) -> PathBuf {
    #[rustfmt::skip]
    let code: [u8; 22] = [
        0xba, 0xfd, 0x03, // 0:  mov dx, 0x3fd (line status)
        0xec,             // 3:  in al, dx
        0xa8, 0x01,       // 4:  test al, 1 (data ready)
        0x74, 0xf8,       // 6:  jz 0
        0xba, 0xf8, 0x03, // 8:  mov dx, 0x3f8
        0xec,             // 11: in al, dx (receive buffer)
        0xee,             // 12: out dx, al (echo)
        0x3c, b'q',       // 13: cmp al, 'q'
        0x75, 0xef,       // 15: jne 0
        0xb0, 0x21,       // 17: mov al, 0x21
        0xe6, 0xf4,       // 19: out 0xf4, al (isa-debug-exit: status 0x43)
        0xf4,             // 21: hlt
    ];
    let mut rom = vec![0xf4u8; 0x1_0000];
    rom[..code.len()].copy_from_slice(&code);
    rom[0xfff0..0xfff3].copy_from_slice(&[0xe9, 0x0d, 0x00]); // jmp near 0
    let path = dir.join("echo.bin");
    std::fs::write(&path, rom).unwrap();
    path
}

/// Runs `cmd` (the machine, serial on stdio) with `input` on stdin;
/// returns (exit code, stdout).
fn echo(mut cmd: Command, input: &[u8]) -> (Option<i32>, Vec<u8>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        // The machine may end (and close the pipe) before all is written
        // if it were to stop early; that shows as a short transcript.
        let _ = stdin.write_all(&data);
    });
    let status = openhook_tests::broker::wait_or_kill(&mut child, Duration::from_secs(60));
    feeder.join().unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    (status.code(), out)
}

fn machine_args(rom: &Path) -> Vec<String> {
    vec![
        "-m".into(),
        "16".into(),
        "-nodefaults".into(),
        "-nographic".into(),
        "-bios".into(),
        rom.display().to_string(),
        "-serial".into(),
        "stdio".into(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=4".into(),
    ]
}

/// 5,000 bytes, far beyond the 64-byte FIFO, ending in `q`.
fn long_input() -> Vec<u8> {
    let mut v: Vec<u8> = (0..4999u32)
        .map(|i| b"abcdefghijklmnoprstuvwxyz0123456789\n"[(i % 36) as usize])
        .collect();
    v.push(b'q');
    v
}

#[test]
fn stdin_reaches_the_guest_uart_with_nothing_lost() {
    if !kvm_or_skip("stdin_reaches_the_guest_uart_with_nothing_lost") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rom = echo_rom(dir.path());
    for sandbox in ["off", "on"] {
        for input in [b"hello, guest\nq".to_vec(), long_input()] {
            let mut cmd = Command::new(bin("openhook-emulator"));
            cmd.args(["-sandbox", sandbox]).args(machine_args(&rom));
            let (code, out) = echo(cmd, &input);
            assert_eq!(code, Some(0x43), "sandbox {sandbox}: exit status");
            assert!(
                out == input,
                "sandbox {sandbox}: echoed {} of {} bytes: {:?}",
                out.len(),
                input.len(),
                String::from_utf8_lossy(&out[..out.len().min(200)])
            );
        }
    }
}

#[test]
fn qemu_echoes_the_same() {
    let Some(qemu) = fw::qemu_or_skip("qemu_echoes_the_same") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rom = echo_rom(dir.path());
    let input = long_input();
    let mut cmd = Command::new(qemu);
    cmd.args(fw::QEMU_MACHINE_ARGS).args(machine_args(&rom));
    let (code, out) = echo(cmd, &input);
    assert_eq!(code, Some(0x43), "QEMU exit status");
    assert!(
        out == input,
        "QEMU echoed {} of {} bytes",
        out.len(),
        input.len()
    );
}
