//! openhook-qmp: the manager's side of a QMP monitor.
//!
//!     openhook-qmp SOCKET COMMAND [--fd PATH:r|w|rw ...] [--linger MS]
//!     openhook-qmp SOCKET --interactive [--fd PATH:r|w|rw ...]
//!
//! COMMAND is a QMP command object (`{"execute": "add-fd"}`) or a command
//! name optionally followed by its arguments as JSON
//! (`add-fd '{"fdset-id": 1}'`). Files named with `--fd` are opened here,
//! on the manager's side and with the manager's rights, and sent with the
//! command's bytes in one SCM_RIGHTS message. Responses and events are
//! printed one JSON object per line. Exit status: 0 when the command
//! returned, 1 when it answered an error, 2 for anything else.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use openhook_wire::qmp::cli::Cli;
use openhook_wire::qmp::message::{to_qemu_json, ErrorResponse, ReturnResponse};
use openhook_wire::qmp::{ClientError, QmpClient, ServerMessage};
use openhook_wire::scm::send_with_fds;
use serde_json::Value;

fn open_fd_arg(spec: &str) -> Result<File, String> {
    let (path, mode) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("--fd {spec}: expected PATH:r|w|rw"))?;
    let (read, write) = match mode {
        "r" => (true, false),
        "w" => (false, true),
        "rw" => (true, true),
        _ => return Err(format!("--fd {spec}: access must be r, w or rw")),
    };
    // The manager side runs with the manager's own authority; the
    // open-path ban (clippy.toml) is about the broker and the emulator.
    #[allow(clippy::disallowed_methods)]
    let file = std::fs::OpenOptions::new()
        .read(read)
        .write(write)
        .create(write)
        .truncate(false)
        .open(path);
    file.map_err(|e| format!("{path}: {e}"))
}

/// Builds `{"execute": ..., "arguments": ...}` from the command words.
fn command_value(words: &[String]) -> Result<Value, String> {
    let first = words.first().ok_or("no command given")?;
    if first.trim_start().starts_with('{') {
        if words.len() > 1 {
            return Err("a command object takes no further words".into());
        }
        return serde_json::from_str(first).map_err(|e| format!("command: {e}"));
    }
    let mut cmd = serde_json::json!({ "execute": first });
    match words.len() {
        1 => {}
        2 => {
            let args: Value =
                serde_json::from_str(&words[1]).map_err(|e| format!("arguments: {e}"))?;
            cmd["arguments"] = args;
        }
        _ => return Err("expected COMMAND [ARGUMENTS-JSON]".into()),
    }
    Ok(cmd)
}

fn print_message(m: &ServerMessage) {
    let line = match m {
        ServerMessage::Greeting(g) => to_qemu_json(g),
        ServerMessage::Return { ret, id } => to_qemu_json(&ReturnResponse {
            ret,
            id: id.as_ref(),
        }),
        ServerMessage::Error { error, id } => to_qemu_json(&ErrorResponse {
            error,
            id: id.as_ref(),
        }),
        ServerMessage::Event(e) => to_qemu_json(e),
        ServerMessage::Other(v) => to_qemu_json(v),
    };
    let mut out = io::stdout().lock();
    let _ = out.write_all(&line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn one_shot(cli: &Cli, client: &mut QmpClient, fds: &[BorrowedFd<'_>]) -> Result<bool, String> {
    let mut cmd = command_value(&cli.command)?;
    let id = cmd
        .get("id")
        .cloned()
        .unwrap_or_else(|| Value::from("openhook-qmp"));
    cmd["id"] = id.clone();
    let mut line = to_qemu_json(&cmd);
    line.extend_from_slice(b"\r\n");
    client.send_raw(&line, fds).map_err(|e| e.to_string())?;
    let ok = loop {
        let m = client.recv().map_err(|e| e.to_string())?;
        print_message(&m);
        match m {
            ServerMessage::Return { id: rid, .. } if rid.as_ref().is_none_or(|r| *r == id) => {
                break true
            }
            ServerMessage::Error { id: rid, .. } if rid.as_ref().is_none_or(|r| *r == id) => {
                break false
            }
            _ => {}
        }
    };
    if cli.linger > 0 {
        let end = Instant::now() + Duration::from_millis(cli.linger);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            client.set_timeout(Some(left)).map_err(|e| e.to_string())?;
            match client.recv() {
                Ok(m) => print_message(&m),
                Err(ClientError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(ClientError::Closed) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(ok)
}

fn interactive(client: QmpClient, fds: &[BorrowedFd<'_>]) -> Result<bool, String> {
    let sock = client.socket().try_clone().map_err(|e| e.to_string())?;
    // A reader thread prints whatever arrives, events included.
    let reader = std::thread::spawn(move || {
        let mut client = client;
        while let Ok(m) = client.recv() {
            print_message(&m);
        }
    });
    let mut first = true;
    for line in io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let words: Vec<String> = match line.trim_start().starts_with('{') {
            true => vec![line.clone()],
            false => {
                let (c, a) = line
                    .trim()
                    .split_once(char::is_whitespace)
                    .unwrap_or((line.trim(), ""));
                if a.trim().is_empty() {
                    vec![c.to_string()]
                } else {
                    vec![c.to_string(), a.trim().to_string()]
                }
            }
        };
        let cmd = match command_value(&words) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("openhook-qmp: {e}");
                continue;
            }
        };
        let mut bytes = to_qemu_json(&cmd);
        bytes.extend_from_slice(b"\r\n");
        let attach: &[BorrowedFd<'_>] = if first { fds } else { &[] };
        first = false;
        let sent = if attach.is_empty() {
            0
        } else {
            send_with_fds(&sock, &bytes, attach).map_err(|e| e.to_string())?
        };
        (&sock)
            .write_all(&bytes[sent..])
            .map_err(|e| e.to_string())?;
    }
    let _ = sock.shutdown(std::net::Shutdown::Write);
    let _ = reader.join();
    Ok(true)
}

fn run(cli: &Cli) -> Result<bool, String> {
    if !cli.interactive && cli.command.is_empty() {
        return Err("give a COMMAND or --interactive".into());
    }
    let files = cli
        .fds
        .iter()
        .map(|s| open_fd_arg(s))
        .collect::<Result<Vec<_>, _>>()?;
    let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
    let sock =
        UnixStream::connect(&cli.socket).map_err(|e| format!("{}: {e}", cli.socket.display()))?;
    let mut client = QmpClient::handshake(sock).map_err(|e| e.to_string())?;
    if cli.greeting {
        print_message(&ServerMessage::Greeting(client.greeting().clone()));
    }
    client
        .negotiate()
        .map_err(|e| format!("qmp_capabilities: {e}"))?;
    if cli.interactive {
        interactive(client, &fds)
    } else {
        one_shot(cli, &mut client, &fds)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("openhook-qmp: {e}");
            ExitCode::from(2)
        }
    }
}
