//! Machine benchmark (prints figures; not a test): openhook-emulator and
//! QEMU 7.2 `-M microvm` side by side on the same firmware and disks.
//!
//! - launch → first serial byte and launch → exit for the standard
//!   firmware (median of RUNS), peak RSS (VmHWM, sampled until exit);
//! - guest sequential write and read of a 64 MiB disk in 1 MiB requests
//!   (bench firmware), timed on the host from the serial lines.
//!
//! Run: `cargo build --release -p openhook-emulator && cargo bench -p
//! openhook-tests --bench machine`. Ours runs with `-sandbox off` and no
//! broker (add the broker's start-up on top).

#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use openhook_tests::fw::{self, FwMachine};

const RUNS: usize = 5;

struct Timed {
    first_byte: Option<Duration>,
    exit: Duration,
    lines: Vec<(Duration, String)>,
    peak_rss_kib: u64,
    code: Option<i32>,
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` with the serial port on stdout, timestamping every line.
fn timed(mut cmd: Command) -> Timed {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((start.elapsed(), line));
        }
    });
    let mut peak = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if let Some(h) = vm_hwm(pid) {
            peak = peak.max(h);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let exit = start.elapsed();
    reader.join().unwrap();
    let lines: Vec<_> = rx.try_iter().collect();
    Timed {
        first_byte: lines.first().map(|l| l.0),
        exit,
        lines,
        peak_rss_kib: peak,
        code: status.code(),
    }
}

/// The firmware machine's arguments with the serial port on stdout.
fn args(m: &FwMachine) -> Vec<OsString> {
    let mut a = m.args();
    for i in 0..a.len() {
        if a[i] == "-serial" {
            a[i + 1] = "stdio".into();
        }
    }
    a
}

fn ours(m: &FwMachine) -> Command {
    let mut c = Command::new(openhook_tests::bin("openhook-emulator"));
    c.arg("-sandbox").arg("off").args(args(m));
    c
}

fn qemu(q: &Path, m: &FwMachine) -> Command {
    let mut c = Command::new(q);
    c.args(fw::QEMU_MACHINE_ARGS).args(args(m));
    c
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn at(t: &Timed, prefix: &str) -> Duration {
    t.lines
        .iter()
        .find(|(_, l)| l.starts_with(prefix))
        .map(|x| x.0)
        .unwrap_or_else(|| panic!("no line {prefix:?}"))
}

fn boot(name: &str, make: &dyn Fn(&FwMachine) -> Command, dir: &Path) {
    let disk = dir.join(format!("{name}-disk.img"));
    let mut first = Vec::new();
    let mut exit = Vec::new();
    let mut rss = 0;
    for _ in 0..RUNS {
        fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
        let m = FwMachine::new(fw::image(fw::IMAGE), dir.join("unused")).drive(disk.clone(), false);
        let t = timed(make(&m));
        assert_eq!(t.code, Some(fw::EXIT_PASS), "{name}: firmware did not pass");
        first.push(t.first_byte.unwrap());
        exit.push(t.exit);
        rss = rss.max(t.peak_rss_kib);
    }
    println!(
        "{name:<18} launch→first serial byte {:>8.1} ms   launch→exit {:>8.1} ms   peak RSS {:>6.1} MiB",
        median(first).as_secs_f64() * 1e3,
        median(exit).as_secs_f64() * 1e3,
        rss as f64 / 1024.0
    );
}

fn throughput(name: &str, make: &dyn Fn(&FwMachine) -> Command, dir: &Path) {
    let disk = dir.join(format!("{name}-bench.img"));
    std::fs::write(&disk, vec![0u8; 64 << 20]).unwrap();
    let m = FwMachine::new(fw::image(fw::BENCH_IMAGE), dir.join("unused")).drive(disk, false);
    let t = timed(make(&m));
    assert_eq!(
        t.code,
        Some(fw::EXIT_PASS),
        "{name}: bench firmware did not pass"
    );
    let w = at(&t, "bench: write done") - at(&t, "bench: write start");
    let r = at(&t, "bench: read done") - at(&t, "bench: read start");
    println!(
        "{name:<18} 64 MiB in 1 MiB requests: write {:>7.1} MiB/s ({:.0} ms)   read {:>7.1} MiB/s ({:.0} ms)   run {:.0} ms, peak RSS {:.1} MiB",
        64.0 / w.as_secs_f64(),
        w.as_secs_f64() * 1e3,
        64.0 / r.as_secs_f64(),
        r.as_secs_f64() * 1e3,
        t.exit.as_secs_f64() * 1e3,
        t.peak_rss_kib as f64 / 1024.0
    );
}

fn find_qemu() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!(
        "machine benchmark: {} (median of {RUNS} runs)",
        openhook_tests::bin("openhook-emulator").display()
    );
    boot("openhook-emulator", &ours, dir.path());
    let q = find_qemu();
    if let Some(q) = &q {
        boot("qemu microvm", &|m| qemu(q, m), dir.path());
    }
    throughput("openhook-emulator", &ours, dir.path());
    if let Some(q) = &q {
        throughput("qemu microvm", &|m| qemu(q, m), dir.path());
    } else {
        println!("qemu-system-x86_64 not found: no comparison");
    }
}
