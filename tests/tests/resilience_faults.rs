//! Faults injected into real processes:
//! - the child / the emulator SIGKILLed at random points while opens and
//!   guest I/O are in flight: the broker exits 128+9, reaps it (no zombie),
//!   and every audit line parses;
//! - the broker SIGKILLed: the guest keeps running on the files it has,
//!   QMP still answers, a later brokered open fails with a clear errno;
//!   on a direct launch (`--policy-fd`, the emulator's re-exec) the child
//!   dies with the broker instead, as QEMU would die of that SIGKILL;
//! - a client that stalls mid-frame (and a grandchild keeps the hook fd):
//!   the child's exit is still reaped promptly and the broker exits;
//! - the disk fills up during guest writes (a small tmpfs mounted here):
//!   ENOSPC reaches the guest as VIRTIO_BLK_S_IOERR, the emulator does not
//!   crash, the firmware reports the failed request and exits;
//! - data the guest flushed is in the file after the emulator is SIGKILLed.
//!
//! Random delays come from the clock and are printed (`delay ...`), so a
//! failing point can be reproduced with `OPENHOOK_FAULT_DELAY_US=N`.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openhook_tests::bin;
use openhook_tests::fw::{self, FwMachine};
use openhook_tests::kvm_or_skip;

const LIMIT: Duration = Duration::from_secs(60);

/// A delay in `0..max_us` from the clock, or `OPENHOOK_FAULT_DELAY_US`.
fn random_delay(max_us: u64) -> Duration {
    let us = std::env::var("OPENHOOK_FAULT_DELAY_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .subsec_nanos();
            // xorshift of the nanoseconds: cheap, varies run to run.
            let mut x = u64::from(n) | 1;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % max_us
        });
    eprintln!("delay {us} us (OPENHOOK_FAULT_DELAY_US={us} reproduces)");
    Duration::from_micros(us)
}

fn sigkill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
}

/// The broker's only child, polled for until it exists.
fn child_of(broker: u32) -> u32 {
    let deadline = Instant::now() + LIMIT;
    loop {
        let kids = fs::read_to_string(format!("/proc/{broker}/task/{broker}/children"))
            .unwrap_or_default();
        if let Some(k) = kids.split_whitespace().next() {
            return k.parse().expect("pid");
        }
        assert!(Instant::now() < deadline, "broker {broker} has no child");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Gone, or a zombie that is not ours to reap (reparented after the
/// broker died): not running either way.
fn not_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// Waits for `child` with a hang guard (SIGKILL at LIMIT → test fails).
fn wait_guarded(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("process {} hung", child.id());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every audit line is a complete JSON object with the record's fields.
fn assert_audit_complete(path: &Path) -> usize {
    let text = fs::read_to_string(path).expect("audit log");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "audit log ends mid-line"
    );
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line {line:?}: {e}"));
        for k in ["ts", "pid", "path", "flags", "decision", "errno"] {
            assert!(v.get(k).is_some(), "audit line without {k}: {line}");
        }
        n += 1;
    }
    n
}

fn write_policy(dir: &Path, body: &str, mode: &str) -> PathBuf {
    let p = dir.join("policy.toml");
    fs::write(
        &p,
        format!("version = 1\n{body}[sandbox]\nmode = \"{mode}\"\n"),
    )
    .expect("policy");
    p
}

#[test]
fn child_killed_mid_flood_broker_exits_137_reaped_audit_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("ok")).expect("mkdir");
    fs::write(dir.path().join("ok/a"), b"a").expect("write");
    let ok = dir.path().join("ok/a");
    let policy = write_policy(
        dir.path(),
        &format!(
            "[[allow]]\npath = \"{}/\"\naccess = \"r\"\n",
            dir.path().join("ok").display()
        ),
        "require",
    );
    for round in 0..5 {
        let audit = dir.path().join(format!("audit{round}.log"));
        let mut broker = Command::new(bin("openhook-broker"))
            .arg("--policy")
            .arg(&policy)
            .arg("--audit-log")
            .arg(&audit)
            .arg("--")
            .arg(bin("openhook-test-peer"))
            .args(["flood", "1000000"])
            .arg(&ok)
            .arg(dir.path().join("denied"))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn broker");
        let child = child_of(broker.id());
        std::thread::sleep(random_delay(200_000));
        sigkill(child);
        let st = wait_guarded(&mut broker);
        assert_eq!(st.code(), Some(128 + 9), "round {round}: {st}");
        assert!(not_running(child), "child {child} still running");
        assert!(
            !Path::new(&format!("/proc/{child}")).exists(),
            "child {child} left as a zombie"
        );
        let n = assert_audit_complete(&audit);
        eprintln!("round {round}: {n} audit lines, all complete");
    }
}

#[test]
fn broker_killed_guest_keeps_running_later_opens_fail() {
    if !kvm_or_skip("broker_killed_guest_keeps_running_later_opens_fail") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let disk = dir.join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).expect("disk");
    let image = fw::image(fw::IMAGE);
    let serial = dir.join("serial.txt");
    let sock = dir.join("qmp.sock");
    let policy = write_policy(
        dir,
        &format!(
            "[[allow]]\npath = \"/dev/kvm\"\naccess = \"rw\"\ntypes = [\"char\"]\n\
             [[allow]]\npath = \"{}\"\naccess = \"r\"\n\
             [[allow]]\npath = \"{}/\"\naccess = \"rw\"\ncreate = true\n\
             [[listen]]\npath = \"{}\"\nfd = 10\n",
            image.display(),
            dir.display(),
            sock.display()
        ),
        "require",
    );
    let m = FwMachine::new(image, serial.clone()).drive(disk.clone(), false);
    let mut broker = Command::new(bin("openhook-broker"))
        .arg("--policy")
        .arg(&policy)
        .arg("--")
        .arg(bin("openhook-emulator"))
        .args(m.args())
        .arg("-S")
        .arg("-chardev")
        .arg(format!(
            "socket,id=mon,path={},server=on,wait=off",
            sock.display()
        ))
        .args(["-mon", "chardev=mon,mode=control"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn broker");
    let emulator = child_of(broker.id());
    let mut conn = None;
    wait_until("the broker's QMP listener", || {
        conn = std::os::unix::net::UnixStream::connect(&sock).ok();
        conn.is_some()
    });
    let w = conn.expect("connected");
    let mut r = BufReader::new(w.try_clone().expect("clone"));
    let mut w = w;
    w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .expect("write");
    assert!(qmp_return(&mut r).get("return").is_some());

    sigkill(broker.id());
    assert_eq!(wait_guarded(&mut broker).code(), None, "broker killed");

    // The guest's process is still there and QMP still answers.
    assert!(!not_running(emulator), "the emulator died with its broker");
    w.write_all(b"{\"execute\":\"query-status\"}\n")
        .expect("write");
    let st = qmp_return(&mut r);
    assert_eq!(st["return"]["status"], "prelaunch", "{st}");
    // A later open through the hook fails with a clear errno, no hang.
    let log = dir.join("later.log");
    w.write_all(
        format!(
            "{{\"execute\":\"chardev-add\",\"arguments\":{{\"id\":\"later\",\
             \"backend\":{{\"type\":\"file\",\"data\":{{\"out\":\"{}\"}}}}}}}}\n",
            log.display()
        )
        .as_bytes(),
    )
    .expect("write");
    let e = qmp_return(&mut r);
    let desc = e["error"]["desc"].as_str().unwrap_or_default().to_string();
    assert!(
        desc.starts_with(&format!("Could not open '{}': ", log.display()))
            && (desc.contains("Broken pipe") || desc.contains("Connection reset")),
        "{e}"
    );
    assert!(!log.exists(), "nothing opened without the broker");
    // The guest runs to completion on the files it already has.
    w.write_all(b"{\"execute\":\"cont\"}\n").expect("write");
    wait_until("the guest to finish", || not_running(emulator));
    assert_eq!(
        fs::read_to_string(&serial).unwrap_or_default(),
        fw::expected_transcript("standard-rw.txt")
    );
    assert!(
        fs::read(&disk).expect("disk") == fw::disk_after_write(fw::DISK_SECTORS),
        "the guest's writes after the broker died are not on disk"
    );
}

#[test]
fn direct_launch_child_dies_with_its_broker() {
    // `--policy-fd` is the emulator's re-exec as its own broker: the pid a
    // launcher knows is the broker's, and its SIGKILL must end the child.
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write_policy(
        dir.path(),
        "[[allow]]\npath = \"/dev/null\"\naccess = \"r\"\ntypes = [\"char\"]\n",
        // off: the child is a shell that execs `sleep`, which the child
        // sandbox's exec rules would refuse; the parent-death signal does
        // not depend on the mode.
        "off",
    );
    // The child becomes `sleep`, which would outlive the broker on its own
    // (a hook client would exit anyway once its socket closes); `sh -c`
    // takes the appended `-open-hook-fd N` as positional arguments.
    let sleep = fs::canonicalize("/bin/sleep").expect("sleep");
    let mut broker = Command::new("bash")
        .arg("-c")
        .arg("exec \"$0\" --policy-fd 5 -- /bin/sh -c \"exec $1 300\" 5<\"$2\"")
        .arg(bin("openhook-broker"))
        .arg(&sleep)
        .arg(&policy)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let child = child_of(broker.id());
    // Past the exec (the parent-death signal is armed before it).
    wait_until("the child to exec", || {
        fs::read_link(format!("/proc/{child}/exe")).ok().as_ref() == Some(&sleep)
    });
    sigkill(broker.id());
    let st = broker.wait().expect("wait");
    assert_eq!(st.code(), None, "killed: {st}");
    let took = wait_until("the child to die with its broker", || not_running(child));
    eprintln!("child gone {took:?} after the broker's SIGKILL");
}

#[test]
fn stalled_client_does_not_delay_reaping() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Mode off: the stalling grandchild is `sleep`, which the pre-exec
    // Landlock domain would not let the child exec.
    let policy = write_policy(
        dir.path(),
        "[[allow]]\npath = \"/dev/null\"\naccess = \"r\"\ntypes = [\"char\"]\n",
        "off",
    );
    let start = Instant::now();
    let out = Command::new(bin("openhook-broker"))
        .arg("--policy")
        .arg(&policy)
        .arg("--")
        .arg(bin("openhook-test-peer"))
        .arg("half-then-exit")
        .stderr(Stdio::null())
        .output()
        .expect("run");
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let grandchild: u32 = text
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no grandchild: {text}"));
    let alive = !not_running(grandchild);
    sigkill(grandchild);
    assert_eq!(out.status.code(), Some(0));
    assert!(alive, "the stalling grandchild was gone too early");
    assert!(took < Duration::from_secs(10), "broker took {took:?}");
    eprintln!("child exited with a half frame pending; broker exited after {took:?}");
}

/// A machine under the real broker: the firmware image readable, a test
/// directory writable (disk and serial file there).
struct Vm {
    dir: PathBuf,
    policy: PathBuf,
    machine: FwMachine,
    disk: PathBuf,
    audit: PathBuf,
}

fn vm(dir: &Path, image: &str, disk: PathBuf) -> Vm {
    let image = fw::image(image);
    let policy = write_policy(
        dir,
        &format!(
            "[[allow]]\npath = \"/dev/kvm\"\naccess = \"rw\"\ntypes = [\"char\"]\n\
             [[allow]]\npath = \"{}\"\naccess = \"r\"\n\
             [[allow]]\npath = \"{}/\"\naccess = \"rw\"\ncreate = true\n",
            image.display(),
            dir.display()
        ),
        "require",
    );
    let mut machine = FwMachine::new(image, dir.join("serial.txt")).drive(disk.clone(), false);
    machine.memory_mib = 16;
    Vm {
        dir: dir.to_path_buf(),
        policy,
        machine,
        disk,
        audit: dir.join("audit.log"),
    }
}

impl Vm {
    fn spawn(&self) -> Child {
        Command::new(bin("openhook-broker"))
            .arg("--policy")
            .arg(&self.policy)
            .arg("--audit-log")
            .arg(&self.audit)
            .arg("--")
            .arg(bin("openhook-emulator"))
            .args(self.machine.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn broker")
    }
    fn serial(&self) -> String {
        fs::read_to_string(&self.machine.serial).unwrap_or_default()
    }
}

fn sparse_disk(path: &Path, sectors: u64) {
    let f = fs::File::create(path).expect("create disk");
    f.set_len(sectors * fw::SECTOR as u64).expect("size disk");
}

#[test]
fn emulator_killed_at_random_points_broker_exits_137() {
    if !kvm_or_skip("emulator_killed_at_random_points") {
        return;
    }
    for round in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = dir.path().join("disk.img");
        sparse_disk(&disk, 64 * 2048);
        let v = vm(dir.path(), fw::BENCH_IMAGE, disk);
        let mut broker = v.spawn();
        let emu = child_of(broker.id());
        // Rounds 0 and 1: from start-up opens (first ms) to device set-up.
        // Round 2: mid-bench, timed from the start of the write pass (a
        // fixed delay from launch outran the whole run on a fast host:
        // the bench firmware ends within ~150 ms there).
        if round == 2 {
            wait_until("bench: write start", || {
                if let Some(st) = broker.try_wait().expect("try_wait") {
                    panic!("broker exited {st} before the bench: {}", v.serial());
                }
                v.serial().contains("bench: write start")
            });
        }
        std::thread::sleep(random_delay([5_000, 50_000, 20_000][round]));
        sigkill(emu);
        let st = wait_guarded(&mut broker);
        assert_eq!(st.code(), Some(128 + 9), "round {round}: {st}");
        assert!(!Path::new(&format!("/proc/{emu}")).exists(), "zombie {emu}");
        let n = assert_audit_complete(&v.audit);
        let serial = v.serial();
        eprintln!(
            "round {round}: {n} audit lines; serial got to {:?}",
            serial.lines().last().unwrap_or("")
        );
    }
}

#[test]
fn flushed_data_survives_emulator_sigkill() {
    if !kvm_or_skip("flushed_data_survives_emulator_sigkill") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.img");
    let sectors = 64 * 2048;
    sparse_disk(&disk, sectors);
    let v = vm(dir.path(), fw::BENCH_IMAGE, disk.clone());
    let mut broker = v.spawn();
    let emu = child_of(broker.id());
    wait_until("bench: flush done", || {
        if let Some(st) = broker.try_wait().expect("try_wait") {
            panic!("broker exited {st} before the flush: {}", v.serial());
        }
        v.serial().contains("bench: flush done")
    });
    sigkill(emu);
    let st = wait_guarded(&mut broker);
    eprintln!("broker {st}; serial:\n{}", v.serial());
    assert_eq!(st.code(), Some(128 + 9), "killed after the flush");
    assert!(
        fs::read(&disk).expect("disk") == fw::disk_after_bench(sectors),
        "flushed data is not in the file after SIGKILL"
    );
    assert_audit_complete(&v.audit);
}

/// A tmpfs of `size` mounted on `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(path).expect("mkdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .ok()?;
        st.success().then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_is_an_io_error_to_the_guest_not_a_crash() {
    if !kvm_or_skip("disk_full") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let small = dir.path().join("small");
    let Some(_fs) = Tmpfs::mount(&small, "4m") else {
        assert!(
            !rustix::process::geteuid().is_root(),
            "mounting a tmpfs failed although we are root"
        );
        eprintln!("skipping disk_full: mounting a tmpfs needs root");
        return;
    };
    // 16 MiB sparse disk on a 4 MiB filesystem: the bench's writes run out
    // of space part-way.
    let disk = small.join("disk.img");
    sparse_disk(&disk, 16 * 2048);
    let v = vm(&small, fw::BENCH_IMAGE, disk);
    let mut broker = v.spawn();
    let st = wait_guarded(&mut broker);
    let serial = v.serial();
    let mut stderr = String::new();
    if let Some(mut e) = broker.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    eprintln!("broker {st}\n--- serial ---\n{serial}--- stderr ---\n{stderr}");
    // The firmware saw a failed request (IOERR = status 1) and exited
    // through isa-debug-exit with FAIL: the emulator neither crashed nor
    // was killed.
    assert!(
        serial.contains("bench: write failed at sector") && serial.contains("status 1"),
        "no IOERR reached the guest:\n{serial}"
    );
    assert_eq!(st.code(), Some(fw::EXIT_FAIL), "{st}\n{stderr}");
    assert_audit_complete(&v.audit);
    let _ = std::io::stderr().flush();
    let _ = v.dir;
    let _ = v.disk;
}

/// Serves exactly the listed paths (the test's stand-in for a broker whose
/// death can be staged without PR_SET_PDEATHSIG taking the emulator along).
struct Exact(Vec<PathBuf>);

impl openhook_wire::hook::Handler for Exact {
    fn open(
        &mut self,
        r: &openhook_wire::hook::OpenRequest<'_>,
    ) -> Result<std::os::fd::OwnedFd, openhook_wire::Errno> {
        use std::os::unix::ffi::OsStrExt;
        if !self.0.iter().any(|p| p.as_os_str().as_bytes() == r.path) {
            return Err(openhook_wire::Errno::EACCES);
        }
        let flags = rustix::fs::OFlags::from_bits_retain(r.flags) | rustix::fs::OFlags::CLOEXEC;
        rustix::fs::open(
            Path::new(std::ffi::OsStr::from_bytes(r.path)),
            flags,
            rustix::fs::Mode::from_raw_mode(r.mode),
        )
        .map_err(|e| {
            openhook_wire::Errno::from_io_error(&e.into()).unwrap_or(openhook_wire::Errno::EACCES)
        })
    }
}

fn qmp_return(r: &mut impl BufRead) -> serde_json::Value {
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("qmp read");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("qmp line {line:?}: {e}"));
        if v.get("return").is_some() || v.get("error").is_some() {
            return v;
        }
    }
}

#[test]
fn hook_peer_gone_guest_keeps_running_and_qmp_answers() {
    use std::os::fd::AsRawFd;
    if !kvm_or_skip("hook_peer_gone") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk.img");
    fw::prepare_disk(&disk, fw::DISK_SECTORS).expect("disk");
    let image = fw::image(fw::IMAGE);
    let serial = dir.path().join("serial.txt");
    let m = FwMachine::new(image.clone(), serial.clone()).drive(disk.clone(), false);
    let (ours, theirs) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair");
    let listener =
        std::os::unix::net::UnixListener::bind(dir.path().join("qmp.sock")).expect("bind");
    // The child inherits these two: clear close-on-exec for the spawn.
    rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty()).expect("setfd");
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty()).expect("setfd");
    let kill_switch = ours.try_clone().expect("dup");
    let allowed = vec![
        PathBuf::from("/dev/kvm"),
        image,
        disk.clone(),
        serial.clone(),
    ];
    let server = std::thread::spawn(move || {
        let _ = openhook_wire::hook::Connection::new(ours).serve(&mut Exact(allowed));
    });
    let mut emu = Command::new(bin("openhook-emulator"))
        .args(m.args())
        .arg("-S")
        .arg("-chardev")
        .arg(format!(
            "socket,id=mon,fd={},server=on,wait=off",
            listener.as_raw_fd()
        ))
        .args(["-mon", "chardev=mon,mode=control"])
        .arg("-open-hook-fd")
        .arg(theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn emulator");
    drop(theirs);
    drop(listener);
    let sock =
        std::os::unix::net::UnixStream::connect(dir.path().join("qmp.sock")).expect("connect");
    let mut r = BufReader::new(sock.try_clone().expect("clone"));
    let mut w = sock;
    w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .expect("write");
    assert!(qmp_return(&mut r).get("return").is_some());
    w.write_all(b"{\"execute\":\"query-status\"}\n")
        .expect("write");
    assert_eq!(qmp_return(&mut r)["return"]["running"], false);

    // The "broker" goes away: its end of the hook socket is shut down and
    // the serve thread ends, as when the broker process dies.
    rustix::net::shutdown(&kill_switch, rustix::net::Shutdown::Both).expect("shutdown");
    server.join().expect("server");
    drop(kill_switch);

    // QMP still answers, and the guest runs to completion on its files.
    w.write_all(b"{\"execute\":\"query-status\"}\n")
        .expect("write");
    let st = qmp_return(&mut r);
    assert_eq!(st["return"]["running"], false, "{st}");
    w.write_all(b"{\"execute\":\"cont\"}\n").expect("write");
    let status = wait_guarded(&mut emu);
    let mut stderr = String::new();
    if let Some(mut e) = emu.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert_eq!(status.code(), Some(fw::EXIT_PASS), "{status}\n{stderr}");
    assert_eq!(
        fs::read_to_string(&serial).unwrap_or_default(),
        fw::expected_transcript("standard-rw.txt")
    );
    assert!(
        fs::read(&disk).expect("disk") == fw::disk_after_write(fw::DISK_SECTORS),
        "the guest's writes after the broker left are not on disk"
    );
}
