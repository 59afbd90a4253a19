//! Direct Linux boot (`-kernel`, `-append`, auto `virtio_mmio.device=`):
//! a real Debian kernel (the uncompressed vmlinux that
//! scripts/fetch-test-kernel.sh unpacks) must reach its first earlyprintk
//! lines on the emulated 8250. On PVM hosts the kernel runs largely
//! emulated, so the test stops there (docs/machine.md): a full boot needs a
//! real-KVM host.
//!
//! Skipped when no kernel is present, unless OPENHOOK_REQUIRE_KERNEL=1;
//! KVM missing fails with OPENHOOK_REQUIRE_KVM=1.

#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(180);

fn kernel_or_skip(test: &str) -> Option<PathBuf> {
    let k = std::env::var_os("OPENHOOK_TEST_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/openhook-test-kernel/vmlinux"));
    if !Path::new("/dev/kvm").exists() {
        assert!(
            std::env::var("OPENHOOK_REQUIRE_KVM").as_deref() != Ok("1"),
            "{test}: no /dev/kvm"
        );
        eprintln!("skipping {test}: /dev/kvm is missing");
        return None;
    }
    if !k.is_file() {
        assert!(
            std::env::var("OPENHOOK_REQUIRE_KERNEL").as_deref() != Ok("1"),
            "{test}: {} missing (scripts/fetch-test-kernel.sh)",
            k.display()
        );
        eprintln!(
            "skipping {test}: no test kernel at {} (scripts/fetch-test-kernel.sh)",
            k.display()
        );
        return None;
    }
    Some(k)
}

#[test]
fn linux_reaches_its_first_serial_output() {
    let Some(kernel) = kernel_or_skip("linux_reaches_its_first_serial_output") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let mut child = Command::new(openhook_tests::bin("openhook-emulator"))
        .args([
            "-sandbox",
            "off",
            "-m",
            "256",
            "-nodefaults",
            "-nographic",
            "-serial",
            "stdio",
            "-kernel",
        ])
        .arg(&kernel)
        .args([
            "-append",
            "console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr",
        ])
        .arg("-drive")
        .arg(format!("id=d0,file={},format=raw,if=none", disk.display()))
        .args(["-device", "virtio-blk-device,drive=d0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut serial = Vec::new();
    let mut first_byte = None;
    let want_cmdline = "virtio_mmio.device=512@0xfeb02e00:9";
    while start.elapsed() < LIMIT {
        let text = String::from_utf8_lossy(&serial).into_owned();
        // The e820 map is printed after the command line; its last entry
        // complete means both are.
        let e820_done = text
            .find("0x000000000fffffff] usable")
            .is_some_and(|at| text[at..].contains('\n'));
        if text.contains("Linux version") && e820_done {
            break;
        }
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            first_byte.get_or_insert(start.elapsed());
            serial.extend(chunk);
        }
    }
    // SIGTERM: the emulator quits cleanly (QEMU: "terminating on signal").
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    let err = openhook_tests::stderr_text(&mut child);
    let text = String::from_utf8_lossy(&serial).into_owned();
    eprintln!(
        "first serial byte after {first_byte:?}; stopped after {:?}",
        start.elapsed()
    );
    assert!(
        text.contains("Linux version"),
        "no kernel banner within {LIMIT:?}:\n{text}\n--- stderr ---\n{err}"
    );
    let cmdline = text
        .lines()
        .find(|l| l.contains("Command line:"))
        .unwrap_or("");
    assert!(
        cmdline.contains("earlyprintk=serial,ttyS0,115200"),
        "{cmdline}"
    );
    assert!(
        cmdline.contains(want_cmdline),
        "auto virtio-mmio entry missing: {cmdline}"
    );
    assert!(
        text.contains("BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable"),
        "{text}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM ends the emulator cleanly\n{err}"
    );
    assert!(err.contains("terminating on signal 15"), "{err}");
}
