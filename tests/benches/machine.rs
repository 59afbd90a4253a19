//! Machine benchmark (prints figures; not a test): openhook-emulator and
//! QEMU 7.2 `-M microvm` side by side on the same firmware and disks.
//!
//! - launch → first serial byte and launch → exit for the standard
//!   firmware (median of `OPENHOOK_BENCH_BOOT_RUNS`, default 5), peak RSS (VmHWM, sampled until exit); the
//!   same for the boot-only firmware (start-up and exit around next to no
//!   guest work);
//! - guest sequential write and read of a 64 MiB disk in 1 MiB requests
//!   (bench firmware), timed by the guest's TSC tick counts (rate
//!   estimated from all passes against the host clock; the host-timed
//!   figures are printed too); `OPENHOOK_BENCH_TP_RUNS` runs per machine
//!   (default 5), the machines taking turns, medians compared.
//!
//! Our emulator is measured twice: `openhook-emulator` alone with
//! `-sandbox off` (no broker), and as deployed, `openhook-broker --policy P
//! -- openhook-emulator ...` with a policy allowing exactly `/dev/kvm`, the
//! firmware and the disk, and the default sandbox (`require`): the times
//! then include the broker's start-up, the brokered opens and the
//! sandbox; peak RSS is given for the broker and the emulator separately.
//! At the end it prints our/QEMU ratios (docs/performance.md).
//!
//! Run: `cargo build --release -p openhook-emulator -p openhook-broker &&
//! cargo bench -p openhook-tests --bench machine`.

#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use openhook_tests::fw::{self, FwMachine};

/// Boots per machine and firmware (`OPENHOOK_BENCH_BOOT_RUNS`, default 5).
fn boot_runs() -> usize {
    std::env::var("OPENHOOK_BENCH_BOOT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5)
}
/// Throughput runs per machine, alternated between the machines: a pass
/// over 64 MiB takes only 25-40 ms, so single runs swing by 10-20 %.
fn tp_runs() -> usize {
    std::env::var("OPENHOOK_BENCH_TP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5)
}

struct Timed {
    first_byte: Option<Duration>,
    last_byte: Option<Duration>,
    /// The emulator's start-up marks (exec, vm-created, first-exit), from
    /// launch.
    marks: Vec<(String, Duration)>,
    exit: Duration,
    lines: Vec<(Duration, String)>,
    peak_rss_kib: u64,
    /// Peak VmHWM of the child's children (the emulator under the broker).
    child_rss_kib: u64,
    code: Option<i32>,
}

/// Pids of the children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` with the serial port on stdout, timestamping every line, and
/// samples peak RSS every `sample` (the sampling competes with the machine
/// for the two cores, so throughput runs sample less often).
fn timed(mut cmd: Command, sample: Duration) -> Timed {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("OPENHOOK_LOG", "warn,boot_time=info");
    let launch_ns = openhook_emulator::boot_time::now_ns();
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((start.elapsed(), line));
        }
    });
    let marks = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| parse_mark(&l, launch_ns))
            .collect::<Vec<_>>()
    });
    let mut peak = 0;
    let mut child_peak = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if let Some(h) = vm_hwm(pid) {
            peak = peak.max(h);
        }
        for c in children(pid) {
            if let Some(h) = vm_hwm(c) {
                child_peak = child_peak.max(h);
            }
        }
        std::thread::sleep(sample);
    };
    let exit = start.elapsed();
    reader.join().unwrap();
    let lines: Vec<_> = rx.try_iter().collect();
    Timed {
        first_byte: lines.first().map(|l| l.0),
        last_byte: lines.last().map(|l| l.0),
        marks: marks.join().unwrap(),
        exit,
        lines,
        peak_rss_kib: peak,
        child_rss_kib: child_peak,
        code: status.code(),
    }
}

/// `line` without terminal colour sequences (`ESC [ ... m`), which the
/// log formatter adds.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `boot_time` log line of the emulator (`... mark="exec" t_ns=N`) as
/// (mark, time since launch).
fn parse_mark(line: &str, launch_ns: u64) -> Option<(String, Duration)> {
    let line = strip_ansi(line);
    let rest = &line[line.find("boot_time")?..];
    let mark = rest[rest.find("mark=")? + 5..]
        .split_whitespace()
        .next()?
        .trim_matches('"')
        .to_string();
    let t: u64 = rest[rest.find("t_ns=")? + 5..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((mark, Duration::from_nanos(t.saturating_sub(launch_ns))))
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

/// `openhook-broker --policy P -- openhook-emulator ARGS`, P allowing
/// `/dev/kvm`, the firmware and the machine's disks (default sandbox mode,
/// `require`). The policy is written beside the first disk.
fn brokered(m: &FwMachine) -> Command {
    let mut policy = format!(
        "version = 1\n\
         [[allow]]\npath = \"/dev/kvm\"\naccess = \"rw\"\ntypes = [\"char\"]\n\
         [[allow]]\npath = \"{}\"\naccess = \"r\"\n",
        m.bios.display()
    );
    for d in &m.drives {
        let access = if d.readonly { "r" } else { "rw" };
        policy.push_str(&format!(
            "[[allow]]\npath = \"{}\"\naccess = \"{access}\"\n",
            d.file.display()
        ));
    }
    let file = m.drives[0].file.with_extension("policy.toml");
    std::fs::write(&file, policy).unwrap();
    let mut c = Command::new(openhook_tests::bin("openhook-broker"));
    c.arg("--policy")
        .arg(file)
        .arg("--")
        .arg(openhook_tests::bin("openhook-emulator"))
        .args(args(m));
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

/// The first serial line starting with `prefix`, with when it was seen.
fn line<'t>(t: &'t Timed, prefix: &str) -> &'t (Duration, String) {
    t.lines
        .iter()
        .find(|(_, l)| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?}"))
}

fn at(t: &Timed, prefix: &str) -> Duration {
    line(t, prefix).0
}

/// Medians of the boot breakdown (from launch); peak RSS (KiB) of the
/// launched process and of its child (the emulator under the broker).
struct Boot {
    name: &'static str,
    exec: Option<Duration>,
    vm: Option<Duration>,
    first_exit: Option<Duration>,
    first: Duration,
    last: Duration,
    exit: Duration,
    rss_kib: u64,
    child_rss_kib: u64,
}

type Make<'a> = (&'static str, &'a dyn Fn(&FwMachine) -> Command);

/// Boots `image` `boot_runs()` times on each machine, the machines taking turns,
/// and prints each one's breakdown: launch → exec of the emulator → KVM VM
/// created → first vCPU exit → first serial byte → last serial byte →
/// process end (medians; QEMU has the last three).
fn boots(image: &str, machines: &[Make<'_>], dir: &Path) -> Vec<Boot> {
    let disk = dir.join("boot-disk.img");
    let mut runs: Vec<Vec<Timed>> = machines.iter().map(|_| Vec::new()).collect();
    for _ in 0..boot_runs() {
        for ((name, make), runs) in machines.iter().zip(&mut runs) {
            fw::prepare_disk(&disk, fw::DISK_SECTORS).unwrap();
            let m = FwMachine::new(fw::image(image), dir.join("unused")).drive(disk.clone(), false);
            let t = timed(make(&m), Duration::from_millis(2));
            assert_eq!(t.code, Some(fw::EXIT_PASS), "{name}: firmware did not pass");
            runs.push(t);
        }
    }
    machines
        .iter()
        .zip(runs)
        .map(|((name, _), runs)| summarize(name, &runs))
        .collect()
}

fn summarize(name: &'static str, runs: &[Timed]) -> Boot {
    let mark = |m: &str| {
        let v: Vec<Duration> = runs
            .iter()
            .filter_map(|t| t.marks.iter().find(|x| x.0 == m).map(|x| x.1))
            .collect();
        (v.len() == runs.len()).then(|| median(v))
    };
    let b = Boot {
        name,
        exec: mark("exec"),
        vm: mark("vm-created"),
        first_exit: mark("first-exit"),
        first: median(runs.iter().map(|t| t.first_byte.unwrap()).collect()),
        last: median(runs.iter().map(|t| t.last_byte.unwrap()).collect()),
        exit: median(runs.iter().map(|t| t.exit).collect()),
        rss_kib: runs.iter().map(|t| t.peak_rss_kib).max().unwrap_or(0),
        child_rss_kib: runs.iter().map(|t| t.child_rss_kib).max().unwrap_or(0),
    };
    let ms = |d: Option<Duration>| match d {
        Some(d) => format!("{:>6.1}", d.as_secs_f64() * 1e3),
        None => format!("{:>6}", "-"),
    };
    let child = if b.child_rss_kib > 0 {
        format!(" (its child {:.1} MiB)", b.child_rss_kib as f64 / 1024.0)
    } else {
        String::new()
    };
    println!(
        "{name:<18} exec {} VM {} 1st exit {} 1st byte {} last byte {} end {} ms   peak RSS {:>5.1} MiB{child}",
        ms(b.exec),
        ms(b.vm),
        ms(b.first_exit),
        ms(Some(b.first)),
        ms(Some(b.last)),
        ms(Some(b.exit)),
        b.rss_kib as f64 / 1024.0
    );
    b
}

/// The guest's own tick count for a pass: "bench: PASS done, ..., T tsc
/// ticks".
fn ticks(t: &Timed, pass: &str) -> f64 {
    let line = &line(t, &format!("bench: {pass} done")).1;
    line.trim_end_matches(" tsc ticks")
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tick count in {line:?}"))
}

/// One bench-firmware run: each pass's guest TSC ticks and host-timed
/// duration (between its start and done lines).
#[derive(Clone, Copy)]
struct Passes {
    write_ticks: f64,
    read_ticks: f64,
    write_host: f64,
    read_host: f64,
}

impl Passes {
    /// Write and read MiB/s with the guest TSC at `hz`.
    fn rates(&self, hz: f64) -> (f64, f64) {
        (64.0 * hz / self.write_ticks, 64.0 * hz / self.read_ticks)
    }
}

/// Runs the bench firmware once and prints the host-timed figures.
fn throughput(name: &str, make: &dyn Fn(&FwMachine) -> Command, dir: &Path) -> Passes {
    // Written once per machine (each run overwrites it anyway): a fresh
    // 64 MiB of dirty page cache before every run only adds writeback
    // noise.
    let disk = dir.join(format!("{name}-bench.img"));
    if !disk.exists() {
        std::fs::write(&disk, vec![0u8; 64 << 20]).unwrap();
    }
    let m = FwMachine::new(fw::image(fw::BENCH_IMAGE), dir.join("unused")).drive(disk, false);
    let t = timed(make(&m), Duration::from_millis(20));
    assert_eq!(
        t.code,
        Some(fw::EXIT_PASS),
        "{name}: bench firmware did not pass"
    );
    let p = Passes {
        write_ticks: ticks(&t, "write"),
        read_ticks: ticks(&t, "read"),
        write_host: (at(&t, "bench: write done") - at(&t, "bench: write start")).as_secs_f64(),
        read_host: (at(&t, "bench: read done") - at(&t, "bench: read start")).as_secs_f64(),
    };
    let child = if t.child_rss_kib > 0 {
        format!(" (its child {:.1} MiB)", t.child_rss_kib as f64 / 1024.0)
    } else {
        String::new()
    };
    println!(
        "{name:<18} 64 MiB in 1 MiB requests, host-timed: write {:>7.1} MiB/s   read {:>7.1} MiB/s   run {:.0} ms, peak RSS {:.1} MiB{child}",
        64.0 / p.write_host,
        64.0 / p.read_host,
        t.exit.as_secs_f64() * 1e3,
        t.peak_rss_kib as f64 / 1024.0
    );
    p
}

fn ratio_line(what: &str, ours: f64, qemu: f64, goal: &str, met: bool) {
    println!(
        "  {what:<44} {:>6.3}  (goal {goal}: {})",
        ours / qemu,
        if met { "met" } else { "NOT met" }
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
        "machine benchmark: {} (median of {} runs)",
        openhook_tests::bin("openhook-emulator").display(),
        boot_runs()
    );
    let q = find_qemu();
    let qemu_make = |m: &FwMachine| qemu(q.as_ref().unwrap(), m);
    let mut machines: Vec<Make<'_>> =
        vec![("openhook-emulator", &ours), ("openhook+broker", &brokered)];
    if q.is_some() {
        machines.push(("qemu microvm", &qemu_make));
    }
    println!(
        "boot breakdown, ms from launch (medians of {}, machines taking turns)",
        boot_runs()
    );
    println!("standard firmware:");
    let mut std_boots = boots(fw::IMAGE, &machines, dir.path()).into_iter();
    let (alone, with_broker, qb) = (
        std_boots.next().unwrap(),
        std_boots.next().unwrap(),
        std_boots.next(),
    );
    // The same start-up and exit with next to no guest work: on PVM hosts
    // the standard firmware's emulated guest code (the same on both
    // machines) is most of a run, and this separates what the VMM costs.
    println!("boot-only firmware (banner, then exit):");
    let mut floor = boots(fw::BOOT_IMAGE, &machines, dir.path());
    let qfloor = if q.is_some() { floor.pop() } else { None };
    let mut runs: [Vec<Passes>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let tp_runs = tp_runs();
    for _ in 0..tp_runs {
        runs[0].push(throughput("openhook-emulator", &ours, dir.path()));
        runs[1].push(throughput("openhook+broker", &brokered, dir.path()));
        if let Some(q) = &q {
            runs[2].push(throughput("qemu microvm", &|m| qemu(q, m), dir.path()));
        }
    }
    let (Some(_), Some(qb), Some(qfloor)) = (&q, qb, qfloor) else {
        println!("qemu-system-x86_64 not found: no comparison");
        return;
    };
    // The passes last 20-40 ms, where a serial line seen a little late or
    // early on the host moves a single figure by 10 %. The guest's TSC
    // ticks at one rate on both machines (KVM, no TSC scaling asked for),
    // so rates come from the tick counts, with that rate estimated from
    // every pass of every machine: total ticks / total host-timed seconds.
    let all = runs.iter().flatten();
    let (ticks_sum, host_sum) = all.fold((0.0, 0.0), |(t, h), p| {
        (
            t + p.write_ticks + p.read_ticks,
            h + p.write_host + p.read_host,
        )
    });
    let hz = ticks_sum / host_sum;
    println!("guest TSC rate (all passes): {:.3} GHz", hz / 1e9);
    for (name, v) in ["openhook-emulator", "openhook+broker", "qemu microvm"]
        .iter()
        .zip(&runs)
    {
        let per: Vec<String> = v
            .iter()
            .map(|p| {
                let (w, r) = p.rates(hz);
                format!("{w:.0}/{r:.0}")
            })
            .collect();
        println!(
            "{name:<18} TSC-timed write/read MiB/s per run: {}",
            per.join(" ")
        );
    }
    let tp: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|v| v.iter().map(|p| p.rates(hz)).collect())
        .collect();
    let med = |v: &[(f64, f64)]| {
        let mut w: Vec<f64> = v.iter().map(|x| x.0).collect();
        let mut r: Vec<f64> = v.iter().map(|x| x.1).collect();
        w.sort_by(f64::total_cmp);
        r.sort_by(f64::total_cmp);
        (w[w.len() / 2], r[r.len() / 2])
    };
    let (t_alone, t_broker, tq) = (med(&tp[0]), med(&tp[1]), med(&tp[2]));
    for (name, t) in [
        ("openhook-emulator", t_alone),
        ("openhook+broker", t_broker),
        ("qemu microvm", tq),
    ] {
        println!(
            "{name:<18} median of {tp_runs} (TSC-timed): write {:>7.1} MiB/s   read {:>7.1} MiB/s",
            t.0, t.1
        );
    }
    let s = |d: Duration| d.as_secs_f64();
    let ratios = |label: &str, b: &Boot, rss_kib: u64, t: (f64, f64)| {
        println!("ratios, {label} / qemu microvm (same run):");
        let first = s(b.first) / s(qb.first);
        println!("  {:<44} {first:>6.3}", "launch → first serial byte");
        let exit = s(b.exit) / s(qb.exit);
        ratio_line(
            "launch → exit",
            s(b.exit),
            s(qb.exit),
            "<= 0.25",
            exit <= 0.25,
        );
        let rss = rss_kib as f64 / qb.rss_kib as f64;
        ratio_line(
            "emulator peak RSS",
            rss_kib as f64,
            qb.rss_kib as f64,
            "<= 0.25",
            rss <= 0.25,
        );
        ratio_line(
            "disk write throughput (medians)",
            t.0,
            tq.0,
            ">= 1",
            t.0 >= tq.0,
        );
        ratio_line(
            "disk read throughput (medians)",
            t.1,
            tq.1,
            ">= 1",
            t.1 >= tq.1,
        );
    };
    let ratios = |label: &str, b: &Boot, floor: &Boot, rss_kib: u64, t: (f64, f64)| {
        ratios(label, b, rss_kib, t);
        println!(
            "  {:<44} {:>6.3}  (start-up + exit only: {:.1} ms vs {:.1} ms)",
            "launch → exit, boot-only firmware",
            s(floor.exit) / s(qfloor.exit),
            s(floor.exit) * 1e3,
            s(qfloor.exit) * 1e3
        );
    };
    ratios(
        "openhook-emulator alone",
        &alone,
        &floor[0],
        alone.rss_kib,
        t_alone,
    );
    ratios(
        "openhook-broker + emulator",
        &with_broker,
        &floor[1],
        with_broker.child_rss_kib,
        t_broker,
    );
    println!(
        "  {:<44} {:>6.3}  (broker {:.1} MiB + emulator {:.1} MiB)",
        "broker + emulator peak RSS",
        (with_broker.rss_kib + with_broker.child_rss_kib) as f64 / qb.rss_kib as f64,
        with_broker.rss_kib as f64 / 1024.0,
        with_broker.child_rss_kib as f64 / 1024.0
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("start and exit goals (same run):");
    for (label, b, qref) in [
        ("boot-only, alone", &floor[0], &qfloor),
        ("boot-only, broker", &floor[1], &qfloor),
        ("standard, alone", &alone, &qb),
        ("standard, broker", &with_broker, &qb),
    ] {
        let (o, q) = (ms(b.exit - b.last), ms(qref.exit - qref.last));
        println!(
            "  {:<44} {o:>6.1} ms vs {q:>6.1} ms  (goal <= QEMU's: {})",
            format!("last serial byte → end, {label}"),
            if o <= q { "met" } else { "NOT met" }
        );
    }
    let f = &floor[1];
    ratio_line(
        "boot-only, broker: launch → exit",
        ms(f.exit),
        ms(qfloor.exit),
        "<= 0.25",
        ms(f.exit) <= 0.25 * ms(qfloor.exit),
    );
    ratio_line(
        "boot-only, broker: launch → first byte",
        ms(f.first),
        ms(qfloor.first),
        "<= 0.10",
        ms(f.first) <= 0.10 * ms(qfloor.first),
    );
    ratio_line(
        "boot-only: broker / alone, launch → first byte",
        ms(f.first),
        ms(floor[0].first),
        "<= 1.5",
        ms(f.first) <= 1.5 * ms(floor[0].first),
    );
    // What the VMM adds around the guest's printing on the standard
    // firmware: (launch → exit) − (first byte → last byte).
    let share = |b: &Boot| ms(b.exit) - (ms(b.last) - ms(b.first));
    for b in [&alone, &with_broker] {
        ratio_line(
            &format!("standard, {}: VMM share", b.name),
            share(b),
            share(&qb),
            "<= 0.25",
            share(b) <= 0.25 * share(&qb),
        );
    }
}
