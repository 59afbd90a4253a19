//! `openhook-open [--flags NAMES] [--mode OCTAL] PATH... -open-hook-fd N`
//!
//! Opens each PATH through the broker and prints one line per path:
//! `PATH ok fd=N` or `PATH errno=EACCES`. The fds stay open until exit.
//! `--flags` is a comma-separated list of `O_*` names without the prefix
//! (`rdonly`, `rdwr,creat,trunc`, ...) or a number (`0x42`). Exit status:
//! 0 when every open succeeded, 1 when some were refused, 2 on usage or
//! connection errors.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use openhook_wire::hook::HookClient;
use openhook_wire::inherited;
use openhook_wire::Errno;

const FLAG_NAMES: &[(&str, i32)] = &[
    ("rdonly", libc::O_RDONLY),
    ("wronly", libc::O_WRONLY),
    ("rdwr", libc::O_RDWR),
    ("creat", libc::O_CREAT),
    ("excl", libc::O_EXCL),
    ("trunc", libc::O_TRUNC),
    ("append", libc::O_APPEND),
    ("nonblock", libc::O_NONBLOCK),
    ("directory", libc::O_DIRECTORY),
    ("nofollow", libc::O_NOFOLLOW),
    ("cloexec", libc::O_CLOEXEC),
    ("sync", libc::O_SYNC),
    ("dsync", libc::O_DSYNC),
    ("noctty", libc::O_NOCTTY),
    ("noatime", libc::O_NOATIME),
    ("direct", libc::O_DIRECT),
    ("path", libc::O_PATH),
    ("tmpfile", libc::O_TMPFILE),
];

struct Args {
    flags: i32,
    mode: u32,
    paths: Vec<PathBuf>,
    hook_fd: i32,
}

fn parse_flags(s: &str) -> Result<i32, String> {
    if let Some(hex) = s.strip_prefix("0x") {
        return i32::from_str_radix(hex, 16).map_err(|e| format!("--flags {s}: {e}"));
    }
    let mut flags = 0;
    for name in s.split(',') {
        let (_, v) = FLAG_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("unknown flag {name:?}"))?;
        flags |= v;
    }
    Ok(flags)
}

const USAGE: &str = "\
usage: openhook-broker --policy P -- openhook-open [--flags NAMES] [--mode OCTAL] PATH...

Opens each PATH through the broker's -open-hook-fd socket (appended by the
broker) and prints one line per path: `PATH ok fd=N` or `PATH errno=EACCES`.
--flags: comma-separated O_* names without the prefix (rdonly, rdwr,creat,trunc,
...) or a number (0x42); default rdonly. --mode: the creation mode, default 0600.
Exit status: 0 when every open succeeded, 1 when some were refused, 2 on usage
or connection errors.
";

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args_os().skip(1);
    let mut flags = libc::O_RDONLY;
    let mut mode = 0o600;
    let mut paths = Vec::new();
    let mut hook_fd = None;
    while let Some(a) = args.next() {
        let text = a.to_str().unwrap_or("");
        match text {
            "--flags" | "--mode" | "-open-hook-fd" => {
                let v = args.next().ok_or_else(|| format!("{text} needs a value"))?;
                let v = v.to_str().ok_or_else(|| format!("{text}: not UTF-8"))?;
                match text {
                    "--flags" => flags = parse_flags(v)?,
                    "--mode" => {
                        mode = u32::from_str_radix(v.trim_start_matches("0o"), 8)
                            .map_err(|e| format!("--mode {v}: {e}"))?
                    }
                    _ => hook_fd = Some(v.parse().map_err(|e| format!("-open-hook-fd {v}: {e}"))?),
                }
            }
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let hook_fd = hook_fd.ok_or("missing -open-hook-fd N (run me under openhook-broker)")?;
    Ok(Args {
        flags,
        mode,
        paths,
        hook_fd,
    })
}

fn main() -> ExitCode {
    // Help and version first, whatever else the command line holds.
    for a in std::env::args_os().skip(1) {
        let text = match a.to_str() {
            Some("-h" | "--help") => USAGE.to_string(),
            Some("-V" | "--version") => format!("openhook-open {}\n", env!("CARGO_PKG_VERSION")),
            _ => continue,
        };
        return ExitCode::from(u8::from(
            std::io::stdout().write_all(text.as_bytes()).is_err(),
        ));
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("openhook-open: {e}");
            return ExitCode::from(2);
        }
    };
    let sock = match inherited::claim(args.hook_fd) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openhook-open: -open-hook-fd {}: {e}", args.hook_fd);
            return ExitCode::from(2);
        }
    };
    let client = HookClient::new(sock);
    let mut held = Vec::new();
    let mut refused = false;
    let mut out = std::io::stdout().lock();
    for path in &args.paths {
        let line = match client.open(path, args.flags, args.mode) {
            Ok(fd) => {
                let line = format!("{} ok fd={}", path.display(), fd.as_raw_fd());
                held.push(fd);
                line
            }
            Err(e) => match Errno::from_io_error(&e) {
                Some(errno) => {
                    refused = true;
                    format!("{} errno={errno}", path.display())
                }
                None => {
                    let _ = out.flush();
                    eprintln!("openhook-open: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::from(2);
        }
    }
    let _ = out.flush();
    ExitCode::from(u8::from(refused))
}
