//! What the monitor needs from the rest of the emulator, as traits, and
//! their one implementation each over the emulator's real parts:
//! - [`MachineBackend`]: run control and guest RAM, implemented for
//!   [`MachineControl`] (the vm engineer's handle; `qmp` depends on
//!   `machine`, never the reverse);
//! - [`FdSets`]: the fd-set store behind `add-fd`/`remove-fd`/
//!   `query-fdsets` and the single open entry, implemented for
//!   [`Opener`] (`fds::open` over the pure rules of `fds::fdset`).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use serde_json::Value;

use super::error::QmpError;
use crate::fds::fdset::AddFdInfo;
use crate::fds::open::{OpenedFile, Opener};
use crate::machine::{MachineControl, RunState};

/// QAPI `RunState` as QMP prints it, plus whether vCPUs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStatus {
    /// `prelaunch`, `running`, `paused`, `shutdown`, `internal-error`, …
    pub status: &'static str,
    pub running: bool,
}

/// The running machine, as the monitor drives it. Calls are made from
/// monitor threads; implementations synchronise internally.
pub trait MachineBackend: Send + Sync {
    fn status(&self) -> RunStatus;
    /// `stop`: park the vCPUs (emits STOP when the state changes).
    fn pause(&self);
    /// `cont`: run the vCPUs (emits RESUME).
    fn resume(&self);
    /// `system_reset` (emits RESET).
    fn reset(&self);
    /// `system_powerdown` (emits POWERDOWN; the guest decides the rest).
    fn powerdown(&self);
    /// `quit`: end the emulator (emits SHUTDOWN).
    fn quit(&self);
    /// Guest RAM regions as `(guest physical address, length)`, ascending.
    fn memory_map(&self) -> Vec<(u64, u64)>;
    /// Copies guest RAM at `addr` into `buf`.
    fn read_memory(&self, addr: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// The emulator's fd sets and open entry, as the monitor uses them
/// (docs/qmp.md). Errors carry QEMU's texts.
pub trait FdSets: Send + Sync {
    /// `add-fd`: `set` `None` takes the lowest free id from 0. On error
    /// the fd is closed.
    fn add(
        &self,
        set: Option<i64>,
        fd: OwnedFd,
        opaque: Option<String>,
    ) -> Result<AddFdInfo, QmpError>;
    /// `remove-fd`: closes at once; `fd` `None` removes the whole set.
    fn remove(&self, set: i64, fd: Option<i64>) -> Result<(), QmpError>;
    /// `query-fdsets`: the QMP return value.
    fn query(&self) -> Value;
    /// Opens a file a monitor command names (`chardev-add` `out`: a path
    /// through the open hook, or `/dev/fdset/N`) with `open(2)` flags.
    fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OpenedFile>;
}

impl FdSets for Opener {
    fn add(
        &self,
        set: Option<i64>,
        fd: OwnedFd,
        opaque: Option<String>,
    ) -> Result<AddFdInfo, QmpError> {
        self.add_fd(set, fd, opaque).map_err(QmpError::from)
    }

    fn remove(&self, set: i64, fd: Option<i64>) -> Result<(), QmpError> {
        self.remove_fd(set, fd).map_err(QmpError::from)
    }

    fn query(&self) -> Value {
        serde_json::to_value(self.query_fdsets()).unwrap_or(Value::Array(Vec::new()))
    }

    fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OpenedFile> {
        // Inherent method (the single open entry), not this trait method.
        self.open(path, flags, mode)
    }
}

impl MachineBackend for MachineControl {
    fn status(&self) -> RunStatus {
        let s = MachineControl::status(self);
        RunStatus {
            status: s.as_qmp_str(),
            running: s == RunState::Running,
        }
    }

    fn pause(&self) {
        MachineControl::pause(self);
    }

    fn resume(&self) {
        MachineControl::resume(self);
    }

    fn reset(&self) {
        MachineControl::reset(self);
    }

    fn powerdown(&self) {
        MachineControl::powerdown(self);
    }

    fn quit(&self) {
        MachineControl::quit(self);
    }

    fn memory_map(&self) -> Vec<(u64, u64)> {
        MachineControl::memory_map(self)
    }

    fn read_memory(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        MachineControl::read_memory(self, addr, buf).map_err(|e| io::Error::other(e.to_string()))
    }
}
