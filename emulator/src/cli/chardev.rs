//! `-chardev`, `-serial`, `-mon`, and the legacy `-qmp`/`-monitor` forms
//! (pure). Socket rules follow docs/qmp.md and QEMU's
//! `qmp_chardev_validate_socket`.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use super::block::take_id;
use super::error::{CliError, Loc};
use super::qemu_opts::{self, OptsReader};
use crate::fds::activation::ActivatedFd;
use crate::vm_config::{
    ChardevBackend, ChardevConfig, InheritedFd, MonitorConfig, MonitorMode, SerialConfig,
    SocketAddrConfig, SocketChardev,
};

pub const EXACTLY_ONE_ADDRESS: &str = "Exactly one of 'path', 'fd' or 'host' required";
pub const TLS_FD_CLIENT: &str =
    "'tls_creds' option is incompatible with 'fd' address type as client";
pub const TLS_UNIX: &str = "'tls_creds' option is incompatible with 'unix' address type";
pub const WAIT_CLIENT: &str = "'wait' option is incompatible with socket in client connect mode";
pub const RECONNECT_FD: &str = "'reconnect' option is incompatible with 'fd' address type";
pub const RECONNECT_SERVER: &str =
    "'reconnect' option is incompatible with socket in server listen mode";
pub const TLS_AUTHZ: &str = "'tls_authz' option requires 'tls_creds' option";

/// `-chardev backend,id=ID,...`. `activated` are the socket-activation
/// listeners: one whose name equals the chardev id becomes its address.
pub fn chardev(loc: Loc<'_>, activated: &[ActivatedFd]) -> Result<ChardevConfig, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("backend"))
        .map_err(|e| loc.opts(e))?
        .reader();
    let id = take_id(&mut r, loc)?.ok_or_else(|| loc.err("chardev: no id specified"))?;
    let backend = r
        .take("backend")
        .ok_or_else(|| loc.err(format!("chardev: \"{id}\" missing backend")))?;
    let backend = backend_opts(&mut r, loc, &id, &backend, activated)?;
    r.finish().map_err(|e| loc.opts(e))?;
    Ok(ChardevConfig { id, backend })
}

fn backend_opts(
    r: &mut OptsReader,
    loc: Loc<'_>,
    id: &str,
    backend: &str,
    activated: &[ActivatedFd],
) -> Result<ChardevBackend, CliError> {
    common_opts(r, loc)?;
    match backend {
        "stdio" => {
            // Ctrl-C handling on stdio; we never put the terminal in raw mode.
            r.take_bool("signal").map_err(|e| loc.opts(e))?;
            Ok(ChardevBackend::Stdio)
        }
        "file" => {
            let path = r
                .take("path")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| loc.err("chardev: file: no filename given"))?;
            if r.take_bool("append").map_err(|e| loc.opts(e))? == Some(true) {
                return Err(loc.err("chardev: file: append=on is not supported"));
            }
            Ok(ChardevBackend::File {
                path: PathBuf::from(path),
            })
        }
        "socket" => socket_opts(r, loc, id, activated).map(ChardevBackend::Socket),
        other => Err(loc.err(format!("'{other}' is not a valid char driver name"))),
    }
}

/// Options every QEMU chardev has; we support their neutral values.
fn common_opts(r: &mut OptsReader, loc: Loc<'_>) -> Result<(), CliError> {
    if r.take_bool("mux").map_err(|e| loc.opts(e))? == Some(true) {
        return Err(loc.err("chardev: mux=on is not supported"));
    }
    if r.take("logfile").is_some() {
        return Err(loc.err("chardev: logfile is not supported"));
    }
    r.take_bool("logappend").map_err(|e| loc.opts(e))?;
    Ok(())
}

/// The socket backend's options (also used by `-qmp unix:...`).
/// A socket chardev's options as given, before their combinations are
/// checked.
struct SocketOptions {
    path: Option<String>,
    fd: Option<String>,
    host: Option<String>,
    port: Option<String>,
    server: Option<bool>,
    wait: Option<bool>,
    tls_creds: Option<String>,
    tls_authz: Option<String>,
    reconnect: Option<u64>,
}

impl SocketOptions {
    /// Takes every socket option from `r`; refuses the ones only `off`
    /// may have.
    fn take(r: &mut OptsReader, loc: Loc<'_>) -> Result<Self, CliError> {
        let opts = SocketOptions {
            path: r.take("path"),
            fd: r.take("fd"),
            host: r.take("host"),
            port: r.take("port"),
            server: r.take_bool("server").map_err(|e| loc.opts(e))?,
            wait: r.take_bool("wait").map_err(|e| loc.opts(e))?,
            tls_creds: r.take("tls-creds"),
            tls_authz: r.take("tls-authz"),
            reconnect: r.take_u64("reconnect").map_err(|e| loc.opts(e))?,
        };
        // TCP_NODELAY and unix address length: meaningless or fixed for us.
        r.take_bool("delay").map_err(|e| loc.opts(e))?;
        r.take_bool("nodelay").map_err(|e| loc.opts(e))?;
        r.take_bool("tight").map_err(|e| loc.opts(e))?;
        for off_only in ["telnet", "tn3270", "websocket", "abstract"] {
            if r.take_bool(off_only).map_err(|e| loc.opts(e))? == Some(true) {
                return Err(loc.err(format!("chardev: socket: {off_only}=on is not supported")));
            }
        }
        Ok(opts)
    }

    /// The one address: an activated listener named like the chardev, a
    /// path, or an fd number.
    fn addr(&self, loc: Loc<'_>, activation: Option<i32>) -> Result<SocketAddrConfig, CliError> {
        Ok(match (&self.path, &self.fd, &self.host, activation) {
            // An activated listener named like the chardev replaces a path
            // (systemd bound that path for us) or stands alone.
            (_, None, None, Some(n)) => SocketAddrConfig::Activated(InheritedFd(n)),
            (Some(p), None, None, None) => SocketAddrConfig::Unix(PathBuf::from(p)),
            (None, Some(f), None, _) => SocketAddrConfig::Fd(InheritedFd(parse_fd_number(loc, f)?)),
            (None, None, Some(_), _) => {
                if self.port.is_none() {
                    return Err(loc.err("chardev: socket: no port given"));
                }
                return Err(loc.err(
                    "chardev: socket: TCP sockets are not supported by openhook-emulator \
                     (use path= or fd=)",
                ));
            }
            _ => return Err(loc.err(EXACTLY_ONE_ADDRESS)),
        })
    }

    /// QEMU's checks of what goes with what, then what we do not support.
    fn check(&self, loc: Loc<'_>, addr: &SocketAddrConfig, server: bool) -> Result<(), CliError> {
        match addr {
            SocketAddrConfig::Fd(_) => {
                if self.reconnect.is_some() {
                    return Err(loc.err(RECONNECT_FD));
                }
                if self.tls_creds.is_some() && !server {
                    return Err(loc.err(TLS_FD_CLIENT));
                }
            }
            SocketAddrConfig::Unix(_) if self.tls_creds.is_some() => return Err(loc.err(TLS_UNIX)),
            _ => {}
        }
        if self.tls_authz.is_some() && self.tls_creds.is_none() {
            return Err(loc.err(TLS_AUTHZ));
        }
        if server {
            if self.reconnect.is_some() {
                return Err(loc.err(RECONNECT_SERVER));
            }
        } else if self.wait.is_some() {
            return Err(loc.err(WAIT_CLIENT));
        }
        if self.reconnect.is_some() {
            return Err(loc.err("chardev: socket: reconnect is not supported"));
        }
        if self.tls_creds.is_some() {
            return Err(loc.err("chardev: socket: TLS is not supported by openhook-emulator"));
        }
        Ok(())
    }
}

fn socket_opts(
    r: &mut OptsReader,
    loc: Loc<'_>,
    id: &str,
    activated: &[ActivatedFd],
) -> Result<SocketChardev, CliError> {
    let opts = SocketOptions::take(r, loc)?;
    let activation = activated
        .iter()
        .find(|a| a.name.as_deref() == Some(id))
        .map(|a| a.fd);
    let addr = opts.addr(loc, activation)?;
    let server = match (&addr, opts.server) {
        (SocketAddrConfig::Activated(_), Some(false)) => {
            return Err(loc.err(format!(
                "chardev: socket: '{id}' is a socket-activated listener and needs server=on"
            )))
        }
        (SocketAddrConfig::Activated(_), None) => true,
        (_, s) => s.unwrap_or(false),
    };
    opts.check(loc, &addr, server)?;
    Ok(SocketChardev {
        addr,
        server,
        // Command-line default: a server waits for its first client.
        wait: server && opts.wait.unwrap_or(true),
        tls_creds: opts.tls_creds,
    })
}

/// A decimal fd number as QEMU's `socket_get_fd` reads it on the command line.
fn parse_fd_number(loc: Loc<'_>, text: &str) -> Result<i32, CliError> {
    text.parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| loc.err(format!("Unable to parse FD number {text}")))
}

/// `-serial stdio|chardev:ID|file:PATH|none` (and `mon:stdio`, taken as
/// `stdio` without QEMU's monitor multiplexer).
pub fn serial(loc: Loc<'_>) -> Result<SerialConfig, CliError> {
    let arg = loc.arg.unwrap_or("");
    match arg {
        "none" => return Ok(SerialConfig::None),
        "stdio" | "mon:stdio" => return Ok(SerialConfig::Stdio),
        _ => {}
    }
    if let Some(path) = arg.strip_prefix("file:") {
        if path.is_empty() {
            return Err(loc.err("chardev: file: no filename given"));
        }
        return Ok(SerialConfig::File(PathBuf::from(path)));
    }
    if let Some(id) = arg.strip_prefix("chardev:") {
        return Ok(SerialConfig::Chardev(id.to_string()));
    }
    Err(loc.err(format!(
        "could not connect serial device to character backend '{arg}' \
         (supported: stdio, file:PATH, chardev:ID, none)"
    )))
}

/// `-mon [chardev=]ID[,mode=control|readline][,pretty=on|off]`.
pub fn mon(loc: Loc<'_>) -> Result<MonitorConfig, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("chardev"))
        .map_err(|e| loc.opts(e))?
        .reader();
    let chardev = r.require("chardev").map_err(|e| loc.opts(e))?;
    let mode = match r.take("mode").as_deref() {
        None | Some("readline") => MonitorMode::Readline,
        Some("control") => MonitorMode::Control,
        Some(other) => return Err(loc.err(format!("unknown monitor mode '{other}'"))),
    };
    // Pretty-printing only changes whitespace; responses are always compact.
    r.take_bool("pretty").map_err(|e| loc.opts(e))?;
    r.finish().map_err(|e| loc.opts(e))?;
    Ok(MonitorConfig { chardev, mode })
}

/// `-qmp DEV` / `-monitor DEV`: a legacy chardev spelling plus a monitor.
/// `DEV` is `stdio`, `unix:PATH[,server=on|off][,wait=on|off]` or `none`
/// (no monitor). The chardev gets `id` (QEMU's `compat_monitorN`).
pub fn legacy_monitor(
    loc: Loc<'_>,
    id: &str,
    mode: MonitorMode,
    activated: &[ActivatedFd],
) -> Result<Option<(ChardevConfig, MonitorConfig)>, CliError> {
    let arg = loc.arg.unwrap_or("");
    let backend = if arg == "none" {
        return Ok(None);
    } else if arg == "stdio" {
        ChardevBackend::Stdio
    } else if let Some(rest) = arg.strip_prefix("unix:") {
        let mut r = qemu_opts::parse(rest, Some("path"))
            .map_err(|e| loc.opts(e))?
            .reader();
        let sock = socket_opts(&mut r, loc, id, activated)?;
        r.finish().map_err(|e| loc.opts(e))?;
        ChardevBackend::Socket(sock)
    } else {
        let kind = arg.split(':').next().unwrap_or(arg);
        return Err(loc.err(format!(
            "'{kind}' is not supported here (use stdio, unix:PATH or -chardev with -mon)"
        )));
    };
    Ok(Some((
        ChardevConfig {
            id: id.to_string(),
            backend,
        },
        MonitorConfig {
            chardev: id.to_string(),
            mode,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc<'a>(option: &'a str, arg: &'a str) -> Loc<'a> {
        Loc {
            option,
            arg: Some(arg),
        }
    }

    fn sock(arg: &str) -> Result<SocketChardev, String> {
        match chardev(loc("chardev", arg), &[]) {
            Ok(ChardevConfig {
                backend: ChardevBackend::Socket(s),
                ..
            }) => Ok(s),
            Ok(other) => panic!("not a socket: {other:?}"),
            Err(e) => Err(e.message),
        }
    }

    #[test]
    fn seed_000_preopened_monitor() {
        let c = chardev(loc("chardev", "socket,fd=3,server,nowait,id=mon"), &[]).unwrap();
        assert_eq!(
            c,
            ChardevConfig {
                id: "mon".into(),
                backend: ChardevBackend::Socket(SocketChardev {
                    addr: SocketAddrConfig::Fd(InheritedFd(3)),
                    server: true,
                    wait: false,
                    tls_creds: None,
                }),
            }
        );
    }

    #[test]
    fn socket_defaults_and_forms() {
        let s = sock("socket,id=m,path=/run/q.sock,server=on").unwrap();
        assert_eq!(s.addr, SocketAddrConfig::Unix("/run/q.sock".into()));
        assert!(s.server);
        assert!(s.wait, "command-line default: a server waits");
        let s = sock("socket,id=m,path=/run/q.sock").unwrap();
        assert!(!s.server);
        assert!(!s.wait);
        let s = sock("socket,id=m,path=/run/q.sock,server=on,wait=off").unwrap();
        assert!(!s.wait);
    }

    #[test]
    fn socket_design_8_errors() {
        let cases = [
            ("socket,id=m", EXACTLY_ONE_ADDRESS),
            ("socket,id=m,path=/a,fd=3", EXACTLY_ONE_ADDRESS),
            (
                "socket,id=m,path=/a,host=localhost,port=1",
                EXACTLY_ONE_ADDRESS,
            ),
            ("socket,id=m,fd=3,host=localhost", EXACTLY_ONE_ADDRESS),
            ("socket,id=m,fd=3,tls-creds=t0", TLS_FD_CLIENT),
            ("socket,id=m,fd=3,server=off,tls-creds=t0", TLS_FD_CLIENT),
            ("socket,id=m,path=/a,server=on,tls-creds=t0", TLS_UNIX),
            ("socket,id=m,path=/a,wait=off", WAIT_CLIENT),
            ("socket,id=m,fd=3,reconnect=1", RECONNECT_FD),
            (
                "socket,id=m,path=/a,server=on,reconnect=1",
                RECONNECT_SERVER,
            ),
            ("socket,id=m,path=/a,tls-authz=z", TLS_AUTHZ),
            (
                "socket,id=m,host=localhost",
                "chardev: socket: no port given",
            ),
            ("socket,id=m,fd=x", "Unable to parse FD number x"),
            ("socket,id=m,fd=-1", "Unable to parse FD number -1"),
        ];
        for (arg, want) in cases {
            assert_eq!(sock(arg).unwrap_err(), want, "{arg}");
        }
        // TLS on a server fd passes the design check but is not implemented.
        assert_eq!(
            sock("socket,id=m,fd=3,server=on,tls-creds=t0").unwrap_err(),
            "chardev: socket: TLS is not supported by openhook-emulator"
        );
        assert!(sock("socket,id=m,host=h,port=1").is_err());
        assert!(sock("socket,id=m,path=/a,telnet").is_err());
        assert!(sock("socket,id=m,path=/a,nodelay").is_ok());
    }

    #[test]
    fn chardev_backends_and_errors() {
        assert_eq!(
            chardev(loc("chardev", "stdio,id=s0,signal=off"), &[]).unwrap(),
            ChardevConfig {
                id: "s0".into(),
                backend: ChardevBackend::Stdio
            }
        );
        assert_eq!(
            chardev(loc("chardev", "file,id=f,path=/var/log/vm,,1.log"), &[]).unwrap(),
            ChardevConfig {
                id: "f".into(),
                backend: ChardevBackend::File {
                    path: "/var/log/vm,1.log".into()
                }
            }
        );
        let err = |arg: &str| chardev(loc("chardev", arg), &[]).unwrap_err().to_string();
        assert_eq!(
            err("file,id=f"),
            "-chardev file,id=f: chardev: file: no filename given"
        );
        assert_eq!(
            err("socket,path=/a"),
            "-chardev socket,path=/a: chardev: no id specified"
        );
        assert_eq!(err("id=x"), "-chardev id=x: chardev: \"x\" missing backend");
        assert_eq!(
            err("pty,id=x"),
            "-chardev pty,id=x: 'pty' is not a valid char driver name"
        );
        assert_eq!(
            err("stdio,id=x,foo=1"),
            "-chardev stdio,id=x,foo=1: Invalid parameter 'foo'"
        );
        assert_eq!(
            err("stdio,id=x,mux=on"),
            "-chardev stdio,id=x,mux=on: chardev: mux=on is not supported"
        );
    }

    #[test]
    fn activation_names_match_chardev_ids() {
        let act = [
            ActivatedFd {
                fd: 3,
                name: Some("qmp".into()),
            },
            ActivatedFd { fd: 4, name: None },
        ];
        let c = chardev(loc("chardev", "socket,id=qmp,server=on,wait=off"), &act).unwrap();
        let ChardevBackend::Socket(s) = c.backend else {
            panic!()
        };
        assert_eq!(s.addr, SocketAddrConfig::Activated(InheritedFd(3)));
        assert!(s.server);
        assert!(!s.wait);
        // A path is replaced by the activated listener bound to it.
        let c = chardev(
            loc("chardev", "socket,id=qmp,path=/run/q,server,nowait"),
            &act,
        )
        .unwrap();
        let ChardevBackend::Socket(s) = c.backend else {
            panic!()
        };
        assert_eq!(s.addr, SocketAddrConfig::Activated(InheritedFd(3)));
        // Unnamed activated fds are referred to by number.
        let c = chardev(loc("chardev", "socket,id=other,fd=4,server,nowait"), &act).unwrap();
        let ChardevBackend::Socket(s) = c.backend else {
            panic!()
        };
        assert_eq!(s.addr, SocketAddrConfig::Fd(InheritedFd(4)));
        // No match: the usual rule.
        assert!(chardev(loc("chardev", "socket,id=x,server"), &act).is_err());
        assert!(chardev(loc("chardev", "socket,id=qmp,server=off"), &act).is_err());
    }

    #[test]
    fn serial_forms() {
        assert_eq!(serial(loc("serial", "stdio")), Ok(SerialConfig::Stdio));
        assert_eq!(serial(loc("serial", "mon:stdio")), Ok(SerialConfig::Stdio));
        assert_eq!(serial(loc("serial", "none")), Ok(SerialConfig::None));
        assert_eq!(
            serial(loc("serial", "file:/tmp/s.log")),
            Ok(SerialConfig::File("/tmp/s.log".into()))
        );
        assert_eq!(
            serial(loc("serial", "chardev:ser0")),
            Ok(SerialConfig::Chardev("ser0".into()))
        );
        assert!(serial(loc("serial", "file:")).is_err());
        assert!(serial(loc("serial", "tcp:localhost:4444")).is_err());
        assert!(serial(loc("serial", "vc")).is_err());
    }

    #[test]
    fn mon_and_legacy_qmp() {
        assert_eq!(
            mon(loc("mon", "chardev=mon,mode=control")),
            Ok(MonitorConfig {
                chardev: "mon".into(),
                mode: MonitorMode::Control
            })
        );
        assert_eq!(
            mon(loc("mon", "mon")),
            Ok(MonitorConfig {
                chardev: "mon".into(),
                mode: MonitorMode::Readline
            })
        );
        assert!(mon(loc("mon", "chardev=m,mode=json")).is_err());
        assert!(mon(loc("mon", "mode=control")).is_err());
        let (c, m) = legacy_monitor(
            loc("qmp", "unix:/run/q.sock,server=on,wait=off"),
            "compat_monitor0",
            MonitorMode::Control,
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.id, "compat_monitor0");
        assert_eq!(
            c.backend,
            ChardevBackend::Socket(SocketChardev {
                addr: SocketAddrConfig::Unix("/run/q.sock".into()),
                server: true,
                wait: false,
                tls_creds: None
            })
        );
        assert_eq!(m.mode, MonitorMode::Control);
        let (c, _) = legacy_monitor(
            loc("qmp", "stdio"),
            "compat_monitor0",
            MonitorMode::Control,
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.backend, ChardevBackend::Stdio);
        assert_eq!(
            legacy_monitor(loc("monitor", "none"), "x", MonitorMode::Readline, &[]),
            Ok(None)
        );
        assert!(legacy_monitor(
            loc("qmp", "tcp:localhost:4444,server"),
            "x",
            MonitorMode::Control,
            &[]
        )
        .is_err());
        assert!(legacy_monitor(
            loc("qmp", "unix:/a,wait=off"),
            "x",
            MonitorMode::Control,
            &[]
        )
        .is_err());
    }
}
