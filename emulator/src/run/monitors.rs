//! Connects the QMP monitors (`-qmp`, `-mon`) to the machine and the fd
//! sets: adapters from [`MachineControl`] and [`Opener`] to the monitor's
//! backend traits, event forwarding, and one thread per monitor.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::config::{ChardevBackend, MachineConfig, MonitorMode, SocketAddrConfig};
use crate::fds::inherited::InheritedFds;
use crate::fds::open::Opener;
use crate::machine::{MachineControl, MachineEvent};
use crate::qmp::backend::{AddedFd, FdSets, Machine as QmpMachine, RunStatus};
use crate::qmp::server::{self, Hub, Monitor, Transport};
use crate::qmp::QmpError;

/// The machine as the monitor sees it.
pub struct MachineHandle(pub MachineControl);

impl QmpMachine for MachineHandle {
    fn status(&self) -> RunStatus {
        let s = self.0.status();
        RunStatus {
            status: s.as_qmp_str(),
            running: s.is_running(),
        }
    }
    fn pause(&self) {
        self.0.pause();
    }
    fn resume(&self) {
        self.0.resume();
    }
    fn reset(&self) {
        self.0.reset();
    }
    fn powerdown(&self) {
        self.0.powerdown();
    }
    fn quit(&self) {
        self.0.quit();
    }
    fn memory_map(&self) -> Vec<(u64, u64)> {
        self.0.memory_map()
    }
    fn read_memory(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0
            .read_memory(addr, buf)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// The fd sets as the monitor sees them.
pub struct FdSetHandle(pub Opener);

impl FdSets for FdSetHandle {
    fn add(
        &mut self,
        set: Option<i64>,
        fd: OwnedFd,
        opaque: Option<String>,
    ) -> Result<AddedFd, QmpError> {
        let info = self
            .0
            .add_fd(set, fd, opaque)
            .map_err(|e| QmpError::generic(e.to_string()))?;
        Ok(AddedFd {
            fdset_id: info.fdset_id,
            fd: info.fd.0,
        })
    }
    fn remove(&mut self, set: i64, fd: Option<i64>) -> Result<(), QmpError> {
        self.0
            .remove_fd(set, fd)
            .map_err(|e| QmpError::generic(e.to_string()))
    }
    fn query(&self) -> Value {
        serde_json::to_value(self.0.query_fdsets()).unwrap_or_else(|_| json!([]))
    }
    fn open(&mut self, path: &str, flags: i32) -> io::Result<OwnedFd> {
        let opened = self
            .0
            .open(Path::new(path), flags | libc::O_CLOEXEC, 0o666)?;
        // The monitor's consumer owns a clone; the dup's fd-set tracking
        // ends when `opened` drops here.
        Ok(opened.file().try_clone()?.into())
    }
}

/// QMP event name and data for a machine event.
pub fn event_json(ev: &MachineEvent) -> (&'static str, Option<Value>) {
    let data = match ev {
        MachineEvent::Reset { guest, reason } | MachineEvent::Shutdown { guest, reason } => {
            Some(json!({"guest": guest, "reason": reason.as_qmp_str()}))
        }
        MachineEvent::Stop | MachineEvent::Resume | MachineEvent::Powerdown => None,
    };
    (ev.name(), data)
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("-mon/-qmp: no chardev '{0}'")]
    NoSuchChardev(String),
    #[error("chardev '{id}': {why}")]
    Unsupported { id: String, why: &'static str },
    #[error("chardev '{id}': {source}")]
    Socket {
        id: String,
        #[source]
        source: io::Error,
    },
}

fn transport(
    cfg: &MachineConfig,
    inherited: &mut InheritedFds,
    chardev: &str,
) -> Result<Transport, MonitorError> {
    let c = cfg
        .chardevs
        .iter()
        .find(|c| c.id == chardev)
        .ok_or_else(|| MonitorError::NoSuchChardev(chardev.into()))?;
    let sock = match &c.backend {
        ChardevBackend::Stdio => return Ok(Transport::Stdio),
        ChardevBackend::File { .. } => {
            return Err(MonitorError::Unsupported {
                id: c.id.clone(),
                why: "a monitor needs a socket or stdio",
            })
        }
        ChardevBackend::Socket(s) => s,
    };
    match &sock.addr {
        SocketAddrConfig::Fd(_) | SocketAddrConfig::Activated(_) => {
            let fd = inherited
                .take_chardev(&c.id)
                .ok_or_else(|| MonitorError::NoSuchChardev(c.id.clone()))?;
            if sock.server {
                // QEMU calls listen() on a server-mode fd (a no-op if it
                // already listens).
                rustix::net::listen(&fd, 1).map_err(|e| MonitorError::Socket {
                    id: c.id.clone(),
                    source: e.into(),
                })?;
                Ok(Transport::Listener(fd))
            } else {
                Ok(Transport::Connected(fd))
            }
        }
        SocketAddrConfig::Unix(_) => Err(MonitorError::Unsupported {
            id: c.id.clone(),
            why: "path= sockets come from the broker's [[listen]]; pass the socket with fd=N",
        }),
    }
}

/// Starts every QMP monitor of `cfg` and the thread forwarding machine
/// events to them. Readline (HMP) monitors are not provided.
pub fn start(
    cfg: &MachineConfig,
    inherited: &mut InheritedFds,
    control: &MachineControl,
    opener: &Opener,
) -> Result<(), MonitorError> {
    if cfg.monitors.is_empty() {
        return Ok(());
    }
    let machine: Arc<dyn QmpMachine> = Arc::new(MachineHandle(control.clone()));
    let fdsets: Arc<Mutex<dyn FdSets>> = Arc::new(Mutex::new(FdSetHandle(opener.clone())));
    let hub = Hub::new(cfg.name.clone(), Some(machine), Some(fdsets));
    let mut transports = Vec::new();
    for m in &cfg.monitors {
        if m.mode == MonitorMode::Readline {
            return Err(MonitorError::Unsupported {
                id: m.chardev.clone(),
                why: "human monitor (readline) is not provided; use mode=control",
            });
        }
        transports.push(transport(cfg, inherited, &m.chardev)?);
    }
    let events = control.subscribe();
    let event_hub = hub.clone();
    std::thread::Builder::new()
        .name("qmp-events".into())
        .spawn(move || {
            for ev in events {
                let (name, data) = event_json(&ev);
                event_hub.emit(name, data);
            }
        })
        .map_err(|e| MonitorError::Socket {
            id: "events".into(),
            source: e,
        })?;
    for t in transports {
        server::spawn(hub.clone(), Monitor::new(), t).map_err(|e| MonitorError::Socket {
            id: "monitor".into(),
            source: e,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::ShutdownCause;

    #[test]
    fn events_have_qemu_names_and_data() {
        assert_eq!(event_json(&MachineEvent::Stop), ("STOP", None));
        assert_eq!(event_json(&MachineEvent::Powerdown), ("POWERDOWN", None));
        assert_eq!(
            event_json(&MachineEvent::Shutdown {
                guest: false,
                reason: ShutdownCause::HostQmpQuit
            }),
            (
                "SHUTDOWN",
                Some(json!({"guest": false, "reason": "host-qmp-quit"}))
            )
        );
        assert_eq!(
            event_json(&MachineEvent::Reset {
                guest: true,
                reason: ShutdownCause::GuestReset
            }),
            (
                "RESET",
                Some(json!({"guest": true, "reason": "guest-reset"}))
            )
        );
    }
}
