//! QMP input: QEMU's JSON lexer and streamer (`wire/src/qmp/{lexer,stream,
//! parse}.rs`), the session (`emulator/src/qmp/session.rs`) and the real
//! command dispatch (`emulator/src/qmp/commands/`), driven with a stand-in
//! machine (the `MachineBackend` trait), the real fd-set store and chardev
//! registry, and real fds in the SCM_RIGHTS batch.
//!
//! The first input byte picks the limits (QEMU-sized or tiny, to reach the
//! limit paths), the chunk size, and whether an fd arrives with a chunk;
//! the rest is what a client sends.
//!
//! Oracles:
//! - every reply is one line ending in CRLF, valid JSON, an object with
//!   exactly one of `return`/`error` (plus `id`), errors with a known class
//!   and a string `desc` and nothing else;
//! - replies do not depend on how the input was cut into reads;
//! - a session that was never negotiated returned nothing but errors;
//! - memory held for an incomplete message stays within the limits (the
//!   message so far and the token in progress, each at most `max_bytes`);
//! - after any input, `0xFF`, newline and a command get that command's
//!   answer (the connection recovers, docs/qmp.md);
//! - no fd is leaked: after the monitor is dropped, the lowest free fd
//!   number is what it was before the input.
#![no_main]

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use openhook_emulator::chardev::registry::Chardevs;
use openhook_emulator::fds::open::{HookOpen, Opener};
use openhook_emulator::qmp::commands::Ctx;
use openhook_emulator::qmp::FdBatch;
use openhook_emulator::qmp::{
    FdSets, Hub, HubParts, MachineBackend, Monitor, Output, RunStatus, Session,
};
use openhook_wire::qmp::Limits;
use serde_json::Value;

/// A machine with two small RAM regions and a run state.
struct Stand {
    running: AtomicBool,
}

const MAP: [(u64, u64); 2] = [(0, 0x4000), (0x10_0000, 0x1000)];

impl MachineBackend for Stand {
    fn status(&self) -> RunStatus {
        if self.running.load(Ordering::Relaxed) {
            RunStatus {
                status: "running",
                running: true,
            }
        } else {
            RunStatus {
                status: "paused",
                running: false,
            }
        }
    }
    fn pause(&self) {
        self.running.store(false, Ordering::Relaxed);
    }
    fn resume(&self) {
        self.running.store(true, Ordering::Relaxed);
    }
    fn reset(&self) {}
    fn powerdown(&self) {}
    fn quit(&self) {}
    fn memory_map(&self) -> Vec<(u64, u64)> {
        MAP.to_vec()
    }
    fn read_memory(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let len = buf.len() as u64;
        let inside = MAP
            .iter()
            .any(|&(s, l)| addr >= s && addr.checked_add(len).is_some_and(|e| e <= s + l));
        assert!(inside, "dump read outside guest RAM: {addr:#x}+{len}");
        buf.fill(0x5a);
        Ok(())
    }
}

/// The open hook of a broker whose policy allows nothing.
struct DenyAll;

impl HookOpen for DenyAll {
    fn open(&self, _: &std::path::Path, _: i32, _: u32) -> std::io::Result<OwnedFd> {
        Err(std::io::Error::from_raw_os_error(libc::EACCES))
    }
}

const CLASSES: [&str; 5] = [
    "GenericError",
    "CommandNotFound",
    "DeviceNotActive",
    "DeviceNotFound",
    "KVMMissingCap",
];

/// Checks one reply line; returns the parsed object.
fn check_line(line: &[u8]) -> serde_json::Map<String, Value> {
    assert!(
        line.ends_with(b"\r\n"),
        "no CRLF: {:?}",
        String::from_utf8_lossy(line)
    );
    assert_eq!(
        line.iter().filter(|&&b| b == b'\n').count(),
        1,
        "not one line"
    );
    let v: Value = serde_json::from_slice(line).unwrap_or_else(|e| {
        panic!(
            "reply is not JSON ({e}): {:?}",
            String::from_utf8_lossy(line)
        )
    });
    let Value::Object(obj) = v else {
        panic!("reply is not an object")
    };
    assert!(
        obj.keys()
            .all(|k| k == "return" || k == "error" || k == "id"),
        "{obj:?}"
    );
    assert!(
        obj.contains_key("return") != obj.contains_key("error"),
        "{obj:?}"
    );
    if let Some(e) = obj.get("error") {
        let e = e.as_object().expect("error is an object");
        assert_eq!(e.len(), 2, "{e:?}");
        let class = e.get("class").and_then(Value::as_str).expect("class");
        assert!(CLASSES.contains(&class), "class {class}");
        assert!(e.get("desc").is_some_and(Value::is_string));
    }
    obj
}

struct Run {
    lines: Vec<Vec<u8>>,
    negotiated_ever: bool,
    returns: usize,
}

/// A new fd gets the lowest free number (a memfd: needs no open stdin,
/// which CI does not have).
fn lowest_free_fd() -> i32 {
    use std::os::fd::AsRawFd;
    memfd().as_raw_fd()
}

fn memfd() -> OwnedFd {
    rustix::fs::memfd_create("qmp-fuzz", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd")
}

/// Feeds `input` in chunks of `chunk` bytes (0: all at once); `fds`
/// attaches a fresh fd to every chunk whose index has that bit set.
fn run(input: &[u8], limits: Limits, chunk: usize, fds: u8) -> Run {
    let machine: Arc<dyn MachineBackend> = Arc::new(Stand {
        running: AtomicBool::new(true),
    });
    // The real fd-set store and single open entry, behind a hook that
    // refuses every path (a broker with an empty policy): `/dev/fdset/N`
    // opens dup real fds, anything else gets EACCES.
    let fdsets: Arc<dyn FdSets> = Arc::new(Opener::with_hook(Box::new(DenyAll)));
    let hub = Hub::new(HubParts {
        name: Some("fuzz".into()),
        machine: Some(machine),
        fdsets: Some(fdsets),
        chardevs: Some(Chardevs::new()),
    });
    let monitor = Monitor::new();
    let mut batch = FdBatch::default();
    let mut session = Session::new(limits);
    // One memfd per run; each chunk that carries an fd gets a dup of it
    // (cheaper than a memfd per chunk, and just as real an fd).
    let file = memfd();
    let mut r = Run {
        lines: Vec::new(),
        negotiated_ever: false,
        returns: 0,
    };
    let size = if chunk == 0 {
        input.len().max(1)
    } else {
        chunk
    };
    for (i, piece) in input.chunks(size).enumerate() {
        if fds & (1 << (i % 8)) != 0 {
            batch.replace(vec![rustix::io::fcntl_dupfd_cloexec(&file, 0).expect("dup")]);
        }
        let mut ctx = Ctx {
            hub: &hub,
            monitor: &monitor,
            batch: &mut batch,
        };
        for out in session.feed(piece, &mut ctx) {
            if let Output::Send(line) = out {
                r.lines.push(line);
            }
        }
        r.negotiated_ever |= session.negotiated();
        // The message so far (≤ max_bytes) plus the token being lexed
        // (≤ max_bytes): bounded by twice the limit.
        assert!(
            session.pending() <= 2 * limits.max_bytes + 1,
            "pending {} over the limits",
            session.pending()
        );
    }
    for line in &r.lines {
        if check_line(line).contains_key("return") {
            r.returns += 1;
        }
    }
    // Recovery: whatever came before, 0xFF and a newline resynchronise.
    let mut ctx = Ctx {
        hub: &hub,
        monitor: &monitor,
        batch: &mut batch,
    };
    let out = session.feed(
        b"\xff\n{\"execute\": \"query-name\", \"id\": \"probe\"}",
        &mut ctx,
    );
    let Some(Output::Send(last)) = out.last() else {
        panic!("no answer to the probe: {out:?}")
    };
    let obj = check_line(last);
    assert_eq!(
        obj.get("id"),
        Some(&Value::String("probe".into())),
        "{obj:?}"
    );
    if session.negotiated() {
        assert_eq!(
            obj.get("return"),
            Some(&serde_json::json!({"name": "fuzz"}))
        );
    } else {
        assert_eq!(obj["error"]["class"], "CommandNotFound");
    }
    r
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    // Measured per input: between inputs libFuzzer itself opens files.
    let baseline = lowest_free_fd();

    let limits = if ctl & 1 == 0 {
        Limits::SERVER
    } else {
        Limits {
            max_bytes: 96,
            max_tokens: 24,
            max_depth: 6,
        }
    };
    let chunk = usize::from((ctl >> 1) & 0x1f) + 1;

    let whole = run(input, limits, 0, 0);
    let pieces = run(input, limits, chunk, 0);
    assert_eq!(
        whole.lines, pieces.lines,
        "replies depend on read boundaries (chunk {chunk})"
    );
    if !whole.negotiated_ever {
        assert_eq!(whole.returns, 0, "a command ran before negotiation");
    }
    // Lines are bounded by the input: each message needs at least a byte.
    assert!(whole.lines.len() <= input.len() + 1);

    // With real fds arriving alongside the chunks.
    let with_fds = run(input, limits, chunk, ctl.rotate_left(3) | 1);
    assert!(with_fds.lines.len() <= input.len() + 1);
    assert_eq!(lowest_free_fd(), baseline, "an fd leaked");
});
