//! `openhook-test-peer SCENARIO [ARGS...] -open-hook-fd N`: a hook client for
//! the end-to-end tests, run as the broker's child. It speaks raw bytes on
//! the hook fd and prints what came back, one line per observation:
//!
//! - `list-fds`: `fds 0 1 2 3` (its open fds, sorted) and
//!   `cloexec 3 10` (those of them marked close-on-exec).
//! - `raw HEX`: sends the bytes, half-closes, prints `reply HEX [fd]` per
//!   reply and `eof` when the broker closes the connection.
//! - `raw-then-open HEX PATH`: sends HEX without half-closing, prints the
//!   reply, then sends a QEMU_OPEN for PATH and prints that reply (shows the
//!   connection lives on).
//! - `with-fds PATH`: a QEMU_OPEN carrying its own stdin fd; prints what
//!   comes back (`eof` expected).
//! - `hold`: sleeps 600 s (the grandchild of `half-then-exit`).
//! - `half-then-exit`: sends 5 bytes of a header, starts `hold` holding
//!   the hook fd (prints `grandchild PID`), exits 0 without closing.
//! - `flood COUNT OKPATH DENIEDPATH`: pipelines COUNT requests alternating
//!   OKPATH/DENIEDPATH from a writer thread, reads the replies, prints
//!   `ok A errno B eof C`.
//! - `mixed COUNT OKPATH DENIEDPATH`: prints `ready`, waits for a stdin line,
//!   does COUNT round trips through `HookClient` alternating the paths,
//!   prints `done ok A denied B`, waits for a stdin line, exits.

use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;

use openhook_wire::hook::frame::{self, REPLY_LEN};
use openhook_wire::hook::HookClient;
use openhook_wire::inherited;
use openhook_wire::scm;

fn hex(s: &str) -> Result<Vec<u8>, String> {
    let d: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !d.len().is_multiple_of(2) {
        return Err("odd hex".into());
    }
    d.chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|t| u8::from_str_radix(t, 16).ok())
                .ok_or_else(|| format!("bad hex {p:?}"))
        })
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads one reply; `None` at EOF. Prints it.
fn read_reply(sock: &OwnedFd, out: &mut impl Write) -> Result<Option<([u8; 12], usize)>, String> {
    let mut buf = [0u8; REPLY_LEN];
    let mut got = 0;
    let mut fds = 0;
    while got < REPLY_LEN {
        let r = scm::recv_with_fds(sock, &mut buf[got..], 4).map_err(|e| e.to_string())?;
        if r.bytes == 0 {
            writeln!(out, "eof").map_err(|e| e.to_string())?;
            if got > 0 {
                return Err(format!("eof after {got} reply bytes"));
            }
            return Ok(None);
        }
        got += r.bytes;
        fds += r.fds.len();
    }
    let fd = if fds > 0 {
        format!(" fds={fds}")
    } else {
        String::new()
    };
    writeln!(out, "reply {}{fd}", to_hex(&buf)).map_err(|e| e.to_string())?;
    Ok(Some((buf, fds)))
}

// Lists /proc/self/fd by path: a test tool, not a confined program.
#[allow(clippy::disallowed_methods)]
fn list_fds(out: &mut impl Write) -> Result<(), String> {
    let mut nums: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory iterator's own fd is closed now: drop it.
    nums.retain(|&n| inherited::fd_flags(n).is_ok());
    nums.sort_unstable();
    let cloexec: Vec<String> = nums
        .iter()
        .filter(|&&n| {
            inherited::fd_flags(n).is_ok_and(|f| f.contains(rustix::io::FdFlags::CLOEXEC))
        })
        .map(|n| n.to_string())
        .collect();
    let all: Vec<String> = nums.iter().map(|n| n.to_string()).collect();
    writeln!(out, "fds {}", all.join(" ")).map_err(|e| e.to_string())?;
    writeln!(out, "cloexec {}", cloexec.join(" ")).map_err(|e| e.to_string())
}

fn open_frame(path: &str) -> Result<Vec<u8>, String> {
    frame::encode_open(0, 0, path.as_bytes()).map_err(|e| e.to_string())
}

fn run(args: &[String], hook_fd: i32) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let scenario = args.first().map(String::as_str).unwrap_or("");
    if scenario == "list-fds" {
        return list_fds(&mut out);
    }
    if scenario == "hold" {
        std::thread::sleep(std::time::Duration::from_secs(600));
        return Ok(());
    }
    let sock = inherited::claim(hook_fd).map_err(|e| format!("hook fd {hook_fd}: {e}"))?;
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| format!("{scenario}: missing argument {i}"))
    };
    let send = |bytes: &[u8]| scm::send_all_with_fds(&sock, bytes, &[]).map_err(|e| e.to_string());
    match scenario {
        "raw" => {
            send(&hex(&arg(1)?)?)?;
            rustix::net::shutdown(&sock, rustix::net::Shutdown::Write)
                .map_err(|e| e.to_string())?;
            while read_reply(&sock, &mut out)?.is_some() {}
        }
        "raw-then-open" => {
            send(&hex(&arg(1)?)?)?;
            read_reply(&sock, &mut out)?;
            send(&open_frame(&arg(2)?)?)?;
            read_reply(&sock, &mut out)?;
        }
        "with-fds" => {
            let stdin = std::io::stdin();
            let fds = [stdin.as_fd()];
            scm::send_all_with_fds(&sock, &open_frame(&arg(1)?)?, &fds)
                .map_err(|e| e.to_string())?;
            while read_reply(&sock, &mut out)?.is_some() {}
        }
        "half-then-exit" => {
            send(&open_frame("/x")?[..5])?;
            // The grandchild inherits the hook fd: undo the claim's
            // close-on-exec.
            rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::empty())
                .map_err(|e| e.to_string())?;
            // Our own binary (the only one the sandbox lets us execute).
            let me = std::env::args_os().next().ok_or("no argv[0]")?;
            let child = std::process::Command::new(me)
                .arg("hold")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            writeln!(out, "grandchild {}", child.id()).map_err(|e| e.to_string())?;
            // The hook fd was inherited by `hold` (not close-on-exec).
            std::mem::forget(sock);
        }
        "flood" => {
            let count: usize = arg(1)?.parse().map_err(|e| format!("count: {e}"))?;
            let (ok, denied) = (open_frame(&arg(2)?)?, open_frame(&arg(3)?)?);
            let writer_sock = sock.try_clone().map_err(|e| e.to_string())?;
            let writer = std::thread::spawn(move || {
                for i in 0..count {
                    let f = if i % 2 == 0 { &ok } else { &denied };
                    if scm::send_all_with_fds(&writer_sock, f, &[]).is_err() {
                        break;
                    }
                }
            });
            let (mut oks, mut errnos, mut eof) = (0, 0, 0);
            let mut sink = std::io::sink();
            for _ in 0..count {
                match read_reply(&sock, &mut sink)? {
                    None => {
                        eof = 1;
                        break;
                    }
                    Some((r, fds)) => {
                        if r[8..] == [0, 0, 0, 0] && fds == 1 {
                            oks += 1;
                        } else {
                            errnos += 1;
                        }
                    }
                }
            }
            let _ = writer.join();
            writeln!(out, "ok {oks} errno {errnos} eof {eof}").map_err(|e| e.to_string())?;
        }
        "mixed" => {
            let count: usize = arg(1)?.parse().map_err(|e| format!("count: {e}"))?;
            let (okp, deniedp) = (arg(2)?, arg(3)?);
            let client = HookClient::new(sock);
            let mut line = String::new();
            // Warm-up: once an allowed and then a denied request are
            // answered, the broker has finished starting up (its serve thread
            // runs) and has closed its copy of the allowed fd (requests are
            // served in order), so its fd table is settled when the test
            // counts it. COUNT is even, so the last request is a denied one
            // too.
            client
                .open(Path::new(&okp), libc::O_RDONLY, 0)
                .map_err(|e| format!("warm-up open: {e}"))?;
            let _ = client.open(Path::new(&deniedp), libc::O_RDONLY, 0);
            writeln!(out, "ready").map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            let (mut ok, mut denied) = (0, 0);
            for i in 0..count {
                let p = if i % 2 == 0 { &okp } else { &deniedp };
                match client.open(Path::new(p), libc::O_RDONLY, 0) {
                    Ok(fd) => {
                        drop(fd);
                        ok += 1
                    }
                    Err(e) if e.raw_os_error().is_some() => denied += 1,
                    Err(e) => return Err(format!("request {i}: {e}")),
                }
            }
            writeln!(out, "done ok {ok} denied {denied}").map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
        }
        other => return Err(format!("unknown scenario {other:?}")),
    }
    out.flush().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let hook_fd = match args.iter().position(|a| a == "-open-hook-fd") {
        Some(i) if i + 1 < args.len() => {
            let n = args[i + 1].parse().unwrap_or(-1);
            args.truncate(i);
            n
        }
        _ => -1,
    };
    match run(&args, hook_fd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openhook-test-peer: {e}");
            ExitCode::from(3)
        }
    }
}
