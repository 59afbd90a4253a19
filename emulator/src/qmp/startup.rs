//! Start-up wiring of chardevs and monitors (`-chardev`, `-serial`,
//! `-mon`, `-qmp`), in two steps around building the machine:
//!
//! 0. [`serial_port`]: the registry and the UART's writer, nothing opened.
//! 1. [`prepare`] (after the sandbox is entered and the machine's own
//!    files are open, before the machine is built): opens each `-chardev` (file chardevs through the single open
//!    entry; sockets from `fd=N`, socket activation, or — for `path=` — the
//!    broker's `[[listen]]` socket found by `fds::inherited::find_listener`;
//!    only with no hook and `-sandbox off` does the emulator bind a path
//!    itself), registers them, gives the UART its [`SerialWriter`], and
//!    readies one transport per monitor. A monitor server with `wait=on`
//!    blocks here until its first client connects, as QEMU's start-up does.
//! 2. [`start`] (once the machine exists): the shared [`Hub`] over the
//!    machine control, the fd sets and the chardevs, the event forwarder,
//!    and one thread per monitor.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::chardev::registry::SerialWriter;
use crate::chardev::{ChardevOutput, Chardevs, SocketOutput, SERIAL0};
use crate::fds::inherited::InheritedFds;
use crate::fds::open::Opener;
use crate::machine::MachineControl;
use crate::vm_config::{
    ChardevBackend, ChardevConfig, MachineConfig, MonitorMode, SerialConfig, SocketAddrConfig,
    SocketChardev, OUTPUT_FILE_FLAGS, OUTPUT_FILE_MODE,
};

use super::events::{forward_events, EventForwarder};
use super::hub::{Hub, HubParts, Monitor};
use super::server::{self, Transport};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("-chardev id={id}: could not open '{path}': {source}")]
    File {
        id: String,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "-chardev id={id}: path={path}: no listening socket bound to that path was inherited \
         (inside the sandbox the broker binds it: declare [[listen]] path = \"{path}\" in the policy)"
    )]
    NoListener { id: String, path: String },
    #[error("-chardev id={id}: path={path}: {source}")]
    Bind {
        id: String,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("-chardev id={id}: a client-mode socket on a path cannot be connected from the sandbox; pass a connected socket with fd=N")]
    ClientPath { id: String },
    #[error("-chardev id={id}: the socket was not claimed")]
    NotClaimed { id: String },
    #[error("-chardev id={id}: Failed to listen on fd socket: {source}")]
    Listen {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("-chardev id={id}: waiting for a client: {source}")]
    Accept {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("-mon chardev={0}: chardev not found")]
    NoSuchChardev(String),
    #[error("-mon chardev={0}: a monitor needs a socket or stdio chardev")]
    MonitorOnFile(String),
    #[error(
        "-mon chardev={0}: the human monitor (mode=readline) is not provided; use mode=control"
    )]
    Readline(String),
    #[error("starting a thread: {0}")]
    Thread(#[source] io::Error),
    #[error("-chardev id={id}: {source}")]
    Registry {
        id: String,
        #[source]
        source: crate::chardev::ChardevError,
    },
}

/// What [`prepare`] readied.
pub struct Prepared {
    pub chardevs: Arc<Chardevs>,
    monitors: Vec<Transport>,
}

/// The chardev registry and the UART's writer, before anything is
/// opened: the port follows the serial's chardev id (`serial0` for a
/// legacy `-serial`, else ID of `-serial chardev:ID`) and attaches when
/// [`prepare`] (or later a monitor) adds that chardev.
pub fn serial_port(cfg: &MachineConfig) -> (Arc<Chardevs>, SerialWriter) {
    let chardevs = Chardevs::new();
    let id = match &cfg.serial {
        SerialConfig::Chardev(id) => id.as_str(),
        _ => SERIAL0,
    };
    let writer = chardevs.serial_port(id);
    (chardevs, writer)
}

/// A socket chardev's fd, connected or listening (`listen()` applied).
enum SocketEnd {
    Listening(OwnedFd),
    Connected(OwnedFd),
}

fn socket_end(
    c: &ChardevConfig,
    s: &SocketChardev,
    opener: &Opener,
    inherited: &mut InheritedFds,
) -> Result<SocketEnd, StartupError> {
    let fd = match (&s.addr, inherited.take_chardev(&c.id)) {
        (_, Some(fd)) => fd,
        (SocketAddrConfig::Unix(p), None) => {
            let path = p.display().to_string();
            if !s.server {
                return Err(StartupError::ClientPath { id: c.id.clone() });
            }
            if !opener.is_direct() {
                return Err(StartupError::NoListener {
                    id: c.id.clone(),
                    path,
                });
            }
            opener
                .bind_unix_listener(p)
                .map_err(|source| StartupError::Bind {
                    id: c.id.clone(),
                    path,
                    source,
                })?
        }
        (_, None) => return Err(StartupError::NotClaimed { id: c.id.clone() }),
    };
    if s.server {
        // QEMU listens on a server-mode fd (harmless if it already does).
        rustix::net::listen(&fd, 16).map_err(|e| StartupError::Listen {
            id: c.id.clone(),
            source: e.into(),
        })?;
        Ok(SocketEnd::Listening(fd))
    } else {
        Ok(SocketEnd::Connected(fd))
    }
}

fn chardev_output(
    c: &ChardevConfig,
    opener: &Opener,
    inherited: &mut InheritedFds,
) -> Result<ChardevOutput, StartupError> {
    Ok(match &c.backend {
        ChardevBackend::Stdio => ChardevOutput::Stdout,
        ChardevBackend::File { path } => {
            let f = opener
                .open(path, OUTPUT_FILE_FLAGS, OUTPUT_FILE_MODE)
                .map_err(|source| StartupError::File {
                    id: c.id.clone(),
                    path: path.display().to_string(),
                    source,
                })?;
            ChardevOutput::File(f)
        }
        ChardevBackend::Socket(s) => match socket_end(c, s, opener, inherited)? {
            SocketEnd::Listening(l) => {
                if s.wait {
                    say_waiting(&c.id);
                }
                ChardevOutput::Socket(SocketOutput::listening(l, s.wait).map_err(|source| {
                    StartupError::Accept {
                        id: c.id.clone(),
                        source,
                    }
                })?)
            }
            SocketEnd::Connected(fd) => ChardevOutput::Socket(SocketOutput::connected(fd)),
        },
    })
}

/// Start-up blocks on a `wait=on` server until its first client: say so,
/// as QEMU does, so a launcher knows when to connect.
fn say_waiting(id: &str) {
    eprintln!("openhook-emulator: -chardev id={id}: waiting for a connection (wait=on)");
}

fn monitor_transport(
    c: &ChardevConfig,
    opener: &Opener,
    inherited: &mut InheritedFds,
) -> Result<Transport, StartupError> {
    match &c.backend {
        ChardevBackend::Stdio => Ok(Transport::Stdio),
        ChardevBackend::File { .. } => Err(StartupError::MonitorOnFile(c.id.clone())),
        ChardevBackend::Socket(s) => match socket_end(c, s, opener, inherited)? {
            SocketEnd::Connected(fd) => Ok(Transport::Connected(fd)),
            SocketEnd::Listening(listener) if s.wait => {
                say_waiting(&c.id);
                let first =
                    server::accept_first(&listener).map_err(|source| StartupError::Accept {
                        id: c.id.clone(),
                        source,
                    })?;
                Ok(Transport::ListenerWithFirst { listener, first })
            }
            SocketEnd::Listening(listener) => Ok(Transport::Listener(listener)),
        },
    }
}

/// Step 1; see the module docs.
pub fn prepare(
    cfg: &MachineConfig,
    opener: &Opener,
    inherited: &mut InheritedFds,
    chardevs: Arc<Chardevs>,
) -> Result<Prepared, StartupError> {
    let registry = |id: &str| {
        let id = id.to_string();
        move |source| StartupError::Registry { id, source }
    };
    let mut monitors = Vec::new();
    for m in &cfg.monitors {
        if m.mode == MonitorMode::Readline {
            return Err(StartupError::Readline(m.chardev.clone()));
        }
    }
    // In command-line order, as QEMU creates them.
    for c in &cfg.chardevs {
        if cfg.monitors.iter().any(|m| m.chardev == c.id) {
            monitors.push(monitor_transport(c, opener, inherited)?);
            chardevs.add_monitor(&c.id).map_err(registry(&c.id))?;
        } else {
            let out = chardev_output(c, opener, inherited)?;
            chardevs.add(&c.id, out).map_err(registry(&c.id))?;
        }
    }
    if let Some(m) = cfg
        .monitors
        .iter()
        .find(|m| !cfg.chardevs.iter().any(|c| c.id == m.chardev))
    {
        return Err(StartupError::NoSuchChardev(m.chardev.clone()));
    }
    // The UART's chardev. QEMU names the chardev of a legacy -serial
    // `serial0`; with no -serial it is a null chardev here, so
    // `chardev-change serial0` always has a target.
    match &cfg.serial {
        SerialConfig::Chardev(id) => {
            if !chardevs.contains(id) {
                eprintln!(
                    "openhook-emulator: -serial chardev:{id}: no such chardev yet; serial output \
                     is discarded until a monitor's chardev-add creates '{id}'"
                );
            }
        }
        other => {
            let out = match other {
                SerialConfig::Stdio => ChardevOutput::Stdout,
                SerialConfig::File(path) => {
                    let f = opener
                        .open(path, OUTPUT_FILE_FLAGS, OUTPUT_FILE_MODE)
                        .map_err(|source| StartupError::File {
                            id: SERIAL0.into(),
                            path: path.display().to_string(),
                            source,
                        })?;
                    ChardevOutput::File(f)
                }
                _ => ChardevOutput::Null,
            };
            chardevs.add(SERIAL0, out).map_err(registry(SERIAL0))?;
        }
    }
    Ok(Prepared { chardevs, monitors })
}

/// The running monitors (their threads run until the process ends).
pub struct Monitors {
    hub: Arc<Hub>,
    forwarder: EventForwarder,
    _threads: Vec<JoinHandle<()>>,
}

/// How long exiting waits for clients to be sent the last events.
const EXIT_FLUSH: Duration = Duration::from_secs(2);

impl Monitors {
    /// Once the machine has ended: forward its last events (SHUTDOWN) and
    /// give each client up to [`EXIT_FLUSH`] in all to be sent them.
    pub fn finish(self) {
        self.forwarder.finish();
        self.hub.flush(EXIT_FLUSH);
    }
}

/// Step 2.
pub fn start(
    prepared: Prepared,
    cfg: &MachineConfig,
    control: &MachineControl,
    opener: &Opener,
) -> Result<Monitors, StartupError> {
    let hub = Hub::new(HubParts {
        name: cfg.name.clone(),
        machine: Some(Arc::new(control.clone())),
        fdsets: Some(Arc::new(opener.clone())),
        chardevs: Some(prepared.chardevs),
    });
    let forwarder = forward_events(control, hub.clone()).map_err(StartupError::Thread)?;
    let mut threads = Vec::new();
    for t in prepared.monitors {
        threads.push(server::spawn(hub.clone(), Monitor::new(), t).map_err(StartupError::Thread)?);
    }
    Ok(Monitors {
        hub,
        forwarder,
        _threads: threads,
    })
}
