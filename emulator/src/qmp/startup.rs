//! Start-up wiring of chardevs and monitors (`-chardev`, `-serial`,
//! `-mon`, `-qmp`), in two steps around building the machine:
//!
//! 1. [`prepare`] (after the sandbox is entered, before the machine is
//!    built): opens each `-chardev` (file chardevs through the single open
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

use crate::chardev::registry::SerialWriter;
use crate::chardev::{ChardevOutput, Chardevs, SocketOutput, SERIAL0};
use crate::config::{
    ChardevBackend, ChardevConfig, MachineConfig, MonitorMode, SerialConfig, SocketAddrConfig,
    SocketChardev, OUTPUT_FILE_FLAGS, OUTPUT_FILE_MODE,
};
use crate::fds::inherited::InheritedFds;
use crate::fds::open::Opener;
use crate::machine::MachineControl;

use super::backend::forward_events;
use super::server::{self, Hub, HubParts, Monitor, Transport};

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
    serial: Option<SerialWriter>,
    monitors: Vec<Transport>,
}

impl Prepared {
    /// The UART's output (for `MachineFiles::serial`); a second call
    /// returns a writer on the same port.
    pub fn take_serial(&self) -> SerialWriter {
        match &self.serial {
            Some(w) => w.clone(),
            None => SerialWriter::disconnected(),
        }
    }
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
                eprintln!(
                    "openhook-emulator: -chardev id={}: waiting for a connection (wait=on)",
                    c.id
                );
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
) -> Result<Prepared, StartupError> {
    let chardevs = Chardevs::new();
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
    // The UART. QEMU names the chardev of a legacy -serial `serial0`;
    // with no -serial it is a null chardev here, so `chardev-change
    // serial0` always has a target.
    let serial_id = match &cfg.serial {
        SerialConfig::Chardev(id) => {
            if !chardevs.contains(id) {
                eprintln!(
                    "openhook-emulator: -serial chardev:{id}: no such chardev yet; serial output \
                     is discarded until a monitor's chardev-add creates '{id}'"
                );
            }
            id.clone()
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
            SERIAL0.to_string()
        }
    };
    let serial = chardevs.serial_port(&serial_id);
    Ok(Prepared {
        chardevs,
        serial: Some(serial),
        monitors,
    })
}

/// The running monitors (step 2's result).
pub struct Started {
    hub: Arc<Hub>,
    forwarder: JoinHandle<()>,
    /// The monitor threads; they run until the process ends.
    pub monitors: Vec<JoinHandle<()>>,
}

impl Started {
    /// Before the process exits: lets every machine event emitted so far
    /// (the SHUTDOWN of a `quit`, say) reach the connected clients, as
    /// QEMU sends it before exiting. Call after the machine has ended and
    /// after [`MachineControl::close_events`]; waits at most `limit` in all.
    pub fn deliver_pending_events(self, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while !self.forwarder.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.hub
            .wait_delivered(deadline.saturating_duration_since(std::time::Instant::now()));
    }
}

/// Step 2: the event forwarder and one thread per monitor.
pub fn start(
    prepared: Prepared,
    cfg: &MachineConfig,
    control: &MachineControl,
    opener: &Opener,
) -> Result<Started, StartupError> {
    let hub = Hub::new(HubParts {
        name: cfg.name.clone(),
        machine: Some(Arc::new(control.clone())),
        fdsets: Some(Arc::new(opener.clone())),
        chardevs: Some(prepared.chardevs),
    });
    let forwarder = forward_events(control, hub.clone()).map_err(StartupError::Thread)?;
    let mut monitors = Vec::new();
    for t in prepared.monitors {
        monitors.push(server::spawn(hub.clone(), Monitor::new(), t).map_err(StartupError::Thread)?);
    }
    Ok(Started {
        hub,
        forwarder,
        monitors,
    })
}
