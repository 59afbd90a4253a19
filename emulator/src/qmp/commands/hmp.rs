//! `human-monitor-command`: a small HMP subset over the same command
//! code. Output is text with CRLF line ends; errors print as
//! `Error: DESC`, as QEMU's HMP does.
#![forbid(unsafe_code)]

use serde_json::{json, Map, Value};

use super::Ctx;
use crate::qmp::args::Args;
use crate::qmp::error::QmpError;
use crate::qmp::session::Effect;

fn run(ctx: &mut Ctx<'_>, command: &str, args: Value, effects: &mut Vec<Effect>) -> String {
    let map = match args {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    match super::execute(ctx, command, Args::new(map), effects) {
        Ok(_) => String::new(),
        Err(e) => format!("Error: {}\r\n", e.desc),
    }
}

fn info_status(ctx: &Ctx<'_>) -> Result<String, QmpError> {
    let s = ctx.machine()?.status();
    let mut out = format!(
        "VM status: {}",
        if s.running { "running" } else { "paused" }
    );
    if !s.running && s.status != "paused" {
        out.push_str(&format!(" ({})", s.status));
    }
    out.push_str("\r\n");
    Ok(out)
}

/// `info fdsets` (not in QEMU's HMP): one block per set, as query-fdsets.
fn info_fdsets(ctx: &mut Ctx<'_>) -> Result<String, QmpError> {
    let v = super::fdset::query_fdsets(ctx, Args::default())?;
    let mut out = String::new();
    for set in v.as_array().into_iter().flatten() {
        out.push_str(&format!("fdset-id: {}\r\n", set["fdset-id"]));
        for fd in set["fds"].as_array().into_iter().flatten() {
            out.push_str(&format!("  fd: {}", fd["fd"]));
            if let Some(o) = fd.get("opaque").and_then(Value::as_str) {
                out.push_str(&format!(" opaque: {o}"));
            }
            out.push_str("\r\n");
        }
    }
    Ok(out)
}

fn expect_arg(cmd: &str, arg: Option<&str>) -> Result<String, String> {
    arg.map(str::to_string).ok_or_else(|| {
        format!("{cmd}: string expected\r\nTry \"help {cmd}\" for more information\r\n")
    })
}

pub fn human_monitor_command(
    ctx: &mut Ctx<'_>,
    mut args: Args,
    effects: &mut Vec<Effect>,
) -> Result<Value, QmpError> {
    let line = args.str("command-line")?;
    let _cpu = args.opt_i64("cpu-index")?;
    args.finish()?;
    let mut words = line.split_whitespace();
    let Some(cmd) = words.next() else {
        return Ok(json!(""));
    };
    let arg = words.next();
    let text = match (cmd, arg) {
        ("info", Some("status")) => info_status(ctx).unwrap_or_else(|e| format!("Error: {}\r\n", e.desc)),
        ("info", Some("fdsets")) => info_fdsets(ctx).unwrap_or_else(|e| format!("Error: {}\r\n", e.desc)),
        ("info", Some("version")) => {
            let v = crate::qmp::session::QEMU_VERSION;
            // QEMU: the version, then its package in parentheses.
            format!(
                "{}.{}.{} ({})\r\n",
                v.major,
                v.minor,
                v.micro,
                crate::qmp::session::PACKAGE
            )
        }
        ("info", Some(other)) => format!("unknown command: 'info {other}'\r\n"),
        ("info", None) => "info fdsets  -- show fd sets\r\ninfo status  -- show the VM status\r\ninfo version  -- show the version\r\n".to_string(),
        ("getfd", a) => match expect_arg(cmd, a) {
            Ok(name) => run(ctx, "getfd", json!({ "fdname": name }), effects),
            Err(usage) => usage,
        },
        ("closefd", a) => match expect_arg(cmd, a) {
            Ok(name) => run(ctx, "closefd", json!({ "fdname": name }), effects),
            Err(usage) => usage,
        },
        ("chardev-add", Some(_)) => {
            let rest = line.trim_start()["chardev-add".len()..].trim();
            match super::chardev::parse_hmp(rest).and_then(|(id, spec)| super::chardev::add(ctx, &id, &spec)) {
                Ok(()) => String::new(),
                Err(e) => format!("Error: {}\r\n", e.desc),
            }
        }
        ("chardev-remove", a) => match expect_arg(cmd, a) {
            Ok(id) => run(ctx, "chardev-remove", json!({ "id": id }), effects),
            Err(usage) => usage,
        },
        ("chardev-add", None) => expect_arg(cmd, None).unwrap_or_else(|u| u),
        ("stop" | "cont" | "system_reset" | "system_powerdown" | "quit", _) => run(ctx, cmd, json!({}), effects),
        ("q", _) => run(ctx, "quit", json!({}), effects),
        _ => format!("unknown command: '{cmd}'\r\n"),
    };
    Ok(Value::String(text))
}
