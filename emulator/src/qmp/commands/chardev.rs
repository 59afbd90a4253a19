//! `chardev-add`, `chardev-remove`, `chardev-change` (QMP), and the HMP
//! `chardev-add` spelling.
//!
//! Backends:
//! - `file` with `out` = a path, opened through the single open entry (the
//!   open hook, i.e. the broker's policy) or `/dev/fdset/N` (a tracked dup
//!   from the fd set whose access mode matches); flags as QEMU:
//!   `O_WRONLY|O_CREAT` plus `O_TRUNC` (or `O_APPEND` with `append`),
//!   mode 0666.
//! - `socket` with `addr` `{"type": "fd", "data": {"str": NAME}}` naming a
//!   `getfd` fd (docs/qmp.md): not a socket → "File descriptor 'NAME' is not
//!   a socket" and closed; server mode calls `listen()`; from QMP `server`
//!   defaults to true and `wait` to false; TLS with an fd as client is
//!   refused with QEMU's text (and TLS in general: not supported).
//! - `null`.
//!
//! Validation follows QEMU 7.2's `qmp_chardev_validate_socket` in order.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use serde_json::Value;

use super::{empty, Ctx};
use crate::chardev::{ChardevOutput, Chardevs, SocketOutput};
use crate::cli::chardev::{
    RECONNECT_FD, RECONNECT_SERVER, TLS_AUTHZ, TLS_FD_CLIENT, TLS_UNIX, WAIT_CLIENT,
};
use crate::cli::qemu_opts;
use crate::qmp::args::Args;
use crate::qmp::error::QmpError;
use crate::vm_config::{OUTPUT_FILE_FLAGS, OUTPUT_FILE_MODE};

/// Every QAPI `ChardevBackend` type (so a valid but unsupported one gets
/// a clear refusal, not a schema error).
const QAPI_TYPES: &[&str] = &[
    "file",
    "serial",
    "parallel",
    "pipe",
    "socket",
    "udp",
    "pty",
    "null",
    "mux",
    "msmouse",
    "wctablet",
    "braille",
    "testdev",
    "stdio",
    "console",
    "spicevmc",
    "spiceport",
    "qemu-vdagent",
    "dbus",
    "vc",
    "ringbuf",
    "memory",
];

const QAPI_ADDR_TYPES: &[&str] = &["inet", "unix", "vsock", "fd"];

/// A backend as asked for, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendSpec {
    File { out: PathBuf, append: bool },
    Socket(SocketSpec),
    Null,
}

/// QAPI `ChardevSocket` with what we support (address type `fd`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SocketSpec {
    /// The address type (`fd`, `unix`, …) and, for `fd`, the getfd name.
    pub addr_type: &'static str,
    pub fd_name: Option<String>,
    pub server: Option<bool>,
    pub wait: Option<bool>,
    pub tls_creds: Option<String>,
    pub tls_authz: Option<String>,
    pub reconnect: Option<i64>,
    pub websocket: Option<bool>,
}

impl SocketSpec {
    /// QEMU's `qmp_chardev_validate_socket`, then our own limits. Returns
    /// the effective `(server, wait)`: QMP defaults server on, wait off.
    pub fn validate(&self) -> Result<(bool, bool), QmpError> {
        let server_given_on = self.server == Some(true);
        match self.addr_type {
            "fd" => {
                if self.reconnect.is_some() {
                    return Err(QmpError::generic(RECONNECT_FD));
                }
                if self.tls_creds.is_some() && !server_given_on {
                    return Err(QmpError::generic(TLS_FD_CLIENT));
                }
            }
            "unix" if self.tls_creds.is_some() => return Err(QmpError::generic(TLS_UNIX)),
            _ => {}
        }
        if self.tls_authz.is_some() && self.tls_creds.is_none() {
            return Err(QmpError::generic(TLS_AUTHZ));
        }
        let server = self.server.unwrap_or(true);
        if server {
            if self.reconnect.is_some() {
                return Err(QmpError::generic(RECONNECT_SERVER));
            }
        } else {
            if self.websocket == Some(true) {
                return Err(QmpError::generic("Websocket client is not implemented"));
            }
            if self.wait.is_some() {
                return Err(QmpError::generic(WAIT_CLIENT));
            }
        }
        if self.addr_type != "fd" {
            return Err(QmpError::generic(format!(
                "chardev: socket address type '{}' is not supported by openhook-emulator \
                 (pass the socket with getfd and use type 'fd')",
                self.addr_type
            )));
        }
        if self.tls_creds.is_some() {
            return Err(QmpError::generic(
                "chardev: socket: TLS is not supported by openhook-emulator",
            ));
        }
        if self.websocket == Some(true) || self.reconnect.is_some() {
            return Err(QmpError::generic(
                "chardev: socket: websocket and reconnect are not supported by openhook-emulator",
            ));
        }
        Ok((server, self.wait.unwrap_or(false)))
    }
}

fn refuse_on(args: &mut Args, key: &str) -> Result<(), QmpError> {
    if args.opt_bool(key)? == Some(true) {
        return Err(QmpError::generic(format!(
            "chardev: {key} is not supported by openhook-emulator"
        )));
    }
    Ok(())
}

/// Common `ChardevCommon` members: `logfile` refused, `logappend` ignored.
fn common(data: &mut Args) -> Result<(), QmpError> {
    if data.opt_str("logfile")?.is_some() {
        return Err(QmpError::generic("chardev: logfile is not supported"));
    }
    data.opt_bool("logappend")?;
    Ok(())
}

/// Reads a QAPI `ChardevBackend` (`{"type": T, "data": {...}}`).
pub fn parse_backend(mut backend: Args) -> Result<BackendSpec, QmpError> {
    let kind = backend.choice("type", QAPI_TYPES)?;
    let mut data = backend.object("data")?;
    backend.finish()?;
    let spec = match kind {
        "file" => {
            let out = data.str("out")?;
            if data.opt_str("in")?.is_some() {
                return Err(QmpError::generic(
                    "chardev: file: 'in' is not supported (output only)",
                ));
            }
            let append = data.opt_bool("append")?.unwrap_or(false);
            common(&mut data)?;
            BackendSpec::File {
                out: PathBuf::from(out),
                append,
            }
        }
        "socket" => {
            let mut addr = data.object("addr")?;
            let addr_type = addr.choice("type", QAPI_ADDR_TYPES)?;
            let mut a = addr.object("data")?;
            addr.finish()?;
            let fd_name = if addr_type == "fd" {
                let s = a.str("str")?;
                a.finish()?;
                Some(s)
            } else {
                None
            };
            let mut s = SocketSpec {
                addr_type,
                fd_name,
                tls_creds: data.opt_str("tls-creds")?,
                tls_authz: data.opt_str("tls-authz")?,
                server: data.opt_bool("server")?,
                wait: data.opt_bool("wait")?,
                reconnect: data.opt_i64("reconnect")?,
                websocket: data.opt_bool("websocket")?,
            };
            data.opt_bool("nodelay")?;
            refuse_on(&mut data, "telnet")?;
            refuse_on(&mut data, "tn3270")?;
            common(&mut data)?;
            s.validate()?;
            if addr_type != "fd" {
                // Other address types keep their members; not supported.
                s.fd_name = None;
            }
            BackendSpec::Socket(s)
        }
        "null" => {
            common(&mut data)?;
            BackendSpec::Null
        }
        other => {
            return Err(QmpError::generic(format!(
                "chardev: backend type '{other}' is not supported by openhook-emulator \
                 (supported: file, socket with an fd, null)"
            )))
        }
    };
    data.finish()?;
    Ok(spec)
}

/// HMP `chardev-add BACKEND,id=ID,...` (QemuOpts syntax, command-line
/// defaults: `server=off`, `wait=on` for a server). Inside a monitor,
/// `fd=` is a `getfd` name.
pub fn parse_hmp(text: &str) -> Result<(String, BackendSpec), QmpError> {
    let opts = |e: qemu_opts::OptsError| QmpError::generic(e.to_string());
    let mut r = qemu_opts::parse(text, Some("backend"))
        .map_err(opts)?
        .reader();
    let id = r
        .take("id")
        .ok_or_else(|| QmpError::generic("Parameter 'id' is missing"))?;
    let backend = r
        .take("backend")
        .ok_or_else(|| QmpError::generic(format!("chardev: \"{id}\" missing backend")))?;
    let spec = match backend.as_str() {
        "file" => {
            let out = r
                .take("path")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| QmpError::generic("chardev: file: no filename given"))?;
            let append = r.take_bool("append").map_err(opts)?.unwrap_or(false);
            BackendSpec::File {
                out: PathBuf::from(out),
                append,
            }
        }
        "null" => BackendSpec::Null,
        "socket" => {
            let fd = r.take("fd");
            let path = r.take("path");
            let host = r.take("host");
            let addr_type = match (&fd, &path, &host) {
                (Some(_), None, None) => "fd",
                (None, Some(_), None) => "unix",
                (None, None, Some(_)) => "inet",
                _ => return Err(QmpError::generic(crate::cli::chardev::EXACTLY_ONE_ADDRESS)),
            };
            r.ignore("port");
            let server = r.take_bool("server").map_err(opts)?.unwrap_or(false);
            let wait = r.take_bool("wait").map_err(opts)?;
            let s = SocketSpec {
                addr_type,
                fd_name: fd,
                server: Some(server),
                wait: if server {
                    Some(wait.unwrap_or(true))
                } else {
                    wait
                },
                tls_creds: r.take("tls-creds"),
                tls_authz: r.take("tls-authz"),
                reconnect: r.take_i64("reconnect").map_err(opts)?,
                websocket: r.take_bool("websocket").map_err(opts)?,
            };
            s.validate()?;
            BackendSpec::Socket(s)
        }
        other => {
            return Err(QmpError::generic(format!(
                "'{other}' is not a valid char driver name"
            )))
        }
    };
    r.ignore("logappend");
    r.finish().map_err(opts)?;
    Ok((id, spec))
}

fn chardevs<'a>(ctx: &'a Ctx<'_>) -> Result<&'a std::sync::Arc<Chardevs>, QmpError> {
    ctx.hub
        .chardevs()
        .ok_or_else(|| QmpError::generic("chardevs are not available"))
}

/// Opens what `spec` names: the file through the open entry, the socket
/// from the monitor's `getfd` table.
pub fn open_backend(ctx: &Ctx<'_>, spec: &BackendSpec) -> Result<ChardevOutput, QmpError> {
    match spec {
        BackendSpec::Null => Ok(ChardevOutput::Null),
        BackendSpec::File { out, append } => {
            let sets = super::fdset::sets(ctx)?;
            let flags = if *append {
                (OUTPUT_FILE_FLAGS & !libc::O_TRUNC) | libc::O_APPEND
            } else {
                OUTPUT_FILE_FLAGS
            };
            let f = sets.open(out, flags, OUTPUT_FILE_MODE).map_err(|e| {
                QmpError::generic(format!(
                    "Could not open '{}': {}",
                    out.display(),
                    strerror(&e)
                ))
            })?;
            Ok(ChardevOutput::File(f))
        }
        BackendSpec::Socket(s) => {
            let (server, wait) = s.validate()?;
            let name = s.fd_name.as_deref().unwrap_or("");
            let fd = super::getfd::take_named(ctx, name)?;
            if !is_socket(std::os::fd::AsFd::as_fd(&fd)) {
                drop(fd);
                return Err(QmpError::generic(format!(
                    "File descriptor '{name}' is not a socket"
                )));
            }
            if server {
                if let Err(e) = rustix::net::listen(&fd, 1) {
                    return Err(QmpError::generic(format!(
                        "Failed to listen on fd socket: {}",
                        strerror(&e.into())
                    )));
                }
                let out = SocketOutput::listening(fd, wait)
                    .map_err(|e| QmpError::generic(format!("chardev: socket: {e}")))?;
                Ok(ChardevOutput::Socket(out))
            } else {
                Ok(ChardevOutput::Socket(SocketOutput::connected(fd)))
            }
        }
    }
}

/// `strerror` text without Rust's " (os error N)" suffix, as QEMU prints.
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Adds a chardev from a parsed spec (QMP and HMP).
pub fn add(ctx: &Ctx<'_>, id: &str, spec: &BackendSpec) -> Result<(), QmpError> {
    let devs = chardevs(ctx)?;
    // Refuse a taken id before anything is opened or consumed.
    if devs.contains(id) {
        return Err(QmpError::generic(
            crate::chardev::ChardevError::Duplicate(id.to_string()).to_string(),
        ));
    }
    let out = open_backend(ctx, spec)?;
    devs.add(id, out)
        .map_err(|e| QmpError::generic(e.to_string()))
}

pub fn chardev_add(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let id = args.str("id")?;
    let spec = parse_backend(args.object("backend")?)?;
    args.finish()?;
    add(ctx, &id, &spec)?;
    Ok(empty())
}

pub fn chardev_remove(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let id = args.str("id")?;
    args.finish()?;
    chardevs(ctx)?
        .remove(&id)
        .map_err(|e| QmpError::generic(e.to_string()))?;
    Ok(empty())
}

pub fn chardev_change(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let id = args.str("id")?;
    let spec = parse_backend(args.object("backend")?)?;
    args.finish()?;
    let devs = chardevs(ctx)?;
    if !devs.contains(&id) {
        return Err(QmpError::generic(
            crate::chardev::ChardevError::ChangeMissing(id).to_string(),
        ));
    }
    let out = open_backend(ctx, &spec)?;
    devs.change(&id, out)
        .map_err(|e| QmpError::generic(e.to_string()))?;
    Ok(empty())
}

/// `query-chardev`: `[{"label", "filename", "frontend-open"}]`.
pub fn query_chardev(ctx: &mut Ctx<'_>, args: Args) -> Result<Value, QmpError> {
    args.finish()?;
    let list = chardevs(ctx)?
        .ids()
        .into_iter()
        .map(|(id, kind)| {
            serde_json::json!({"frontend-open": kind == "monitor", "filename": kind, "label": id})
        })
        .collect();
    Ok(Value::Array(list))
}

/// `true` when `fd` is a socket (what `chardev-add` `fd` demands).
fn is_socket(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_type(fd).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qmp(v: Value) -> Result<BackendSpec, String> {
        match v {
            Value::Object(m) => parse_backend(Args::new(m)).map_err(|e| e.desc),
            _ => unreachable!(),
        }
    }

    fn sock(data: Value) -> Result<BackendSpec, String> {
        qmp(json!({"type": "socket", "data": data}))
    }

    #[test]
    fn qmp_file_and_socket_forms() {
        assert_eq!(
            qmp(json!({"type": "file", "data": {"out": "/dev/fdset/1"}})),
            Ok(BackendSpec::File {
                out: "/dev/fdset/1".into(),
                append: false
            })
        );
        let s = sock(json!({"addr": {"type": "fd", "data": {"str": "chr"}}})).unwrap();
        let BackendSpec::Socket(s) = s else { panic!() };
        assert_eq!(s.fd_name.as_deref(), Some("chr"));
        assert_eq!(s.validate(), Ok((true, false)), "QMP: server on, wait off");
        let s =
            sock(json!({"addr": {"type": "fd", "data": {"str": "c"}}, "server": false})).unwrap();
        let BackendSpec::Socket(s) = s else { panic!() };
        assert_eq!(s.validate(), Ok((false, false)));
    }

    #[test]
    fn qmp_socket_errors_in_qemus_order_and_texts() {
        let fd = json!({"type": "fd", "data": {"str": "c"}});
        let cases = [
            (
                json!({"addr": fd, "tls-creds": "t"}),
                "'tls_creds' option is incompatible with 'fd' address type as client",
            ),
            (
                json!({"addr": fd, "tls-creds": "t", "server": false}),
                "'tls_creds' option is incompatible with 'fd' address type as client",
            ),
            (
                json!({"addr": fd, "reconnect": 1}),
                "'reconnect' option is incompatible with 'fd' address type",
            ),
            (
                json!({"addr": fd, "tls-authz": "a"}),
                "'tls_authz' option requires 'tls_creds' option",
            ),
            (
                json!({"addr": fd, "server": false, "wait": false}),
                "'wait' option is incompatible with socket in client connect mode",
            ),
            (
                json!({"addr": fd, "tls-creds": "t", "server": true}),
                "chardev: socket: TLS is not supported by openhook-emulator",
            ),
            (
                json!({"addr": {"type": "unix", "data": {"path": "/x"}}, "tls-creds": "t"}),
                "'tls_creds' option is incompatible with 'unix' address type",
            ),
            (
                json!({"addr": {"type": "fd", "data": {}}}),
                "Parameter 'data.addr.data.str' is missing",
            ),
        ];
        for (data, want) in cases {
            assert_eq!(sock(data.clone()).unwrap_err(), want, "{data}");
        }
    }

    #[test]
    fn hmp_forms() {
        assert_eq!(
            parse_hmp("file,id=log,path=/dev/fdset/2"),
            Ok((
                "log".into(),
                BackendSpec::File {
                    out: "/dev/fdset/2".into(),
                    append: false
                }
            ))
        );
        let (id, spec) = parse_hmp("socket,id=s,fd=mysock,server=on,wait=off").unwrap();
        assert_eq!(id, "s");
        let BackendSpec::Socket(s) = spec else {
            panic!()
        };
        assert_eq!(s.validate(), Ok((true, false)));
        // Command-line defaults: client unless server is given.
        let (_, spec) = parse_hmp("socket,id=s,fd=c").unwrap();
        let BackendSpec::Socket(s) = spec else {
            panic!()
        };
        assert_eq!(s.validate(), Ok((false, false)));
        assert_eq!(
            parse_hmp("socket,id=s,fd=c,tls-creds=t").unwrap_err().desc,
            "'tls_creds' option is incompatible with 'fd' address type as client"
        );
        assert_eq!(
            parse_hmp("socket,id=s,fd=c,path=/x").unwrap_err().desc,
            "Exactly one of 'path', 'fd' or 'host' required"
        );
        assert_eq!(
            parse_hmp("bogus,id=x").unwrap_err().desc,
            "'bogus' is not a valid char driver name"
        );
    }
}
