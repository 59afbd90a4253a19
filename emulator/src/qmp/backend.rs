//! What the monitor needs from the rest of the emulator, as traits, so
//! the QMP code depends on no concrete machine or fd store:
//! - [`Machine`]: run control and guest RAM (implemented for the vm
//!   engineer's `machine::MachineControl`);
//! - [`FdSets`]: the fd-set store behind `add-fd`/`remove-fd`/
//!   `query-fdsets` (implemented for the `fds` store).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;

use serde_json::Value;

use super::error::QmpError;

/// QAPI `RunState` as QMP prints it, plus whether vCPUs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStatus {
    /// `prelaunch`, `running`, `paused`, `shutdown`, `internal-error`, …
    pub status: &'static str,
    pub running: bool,
}

/// The running machine, as the monitor drives it. Calls are made from
/// monitor threads; implementations synchronise internally.
pub trait Machine: Send + Sync {
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

/// The result of `add-fd`: `{"fdset-id": I, "fd": F}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddedFd {
    pub fdset_id: i64,
    pub fd: i32,
}

/// The emulator's fd sets, as the monitor changes and lists them
/// (design §8). Errors carry QEMU's texts.
pub trait FdSets: Send {
    /// `add-fd`: `set` `None` takes the lowest free id from 0.
    fn add(
        &mut self,
        set: Option<i64>,
        fd: OwnedFd,
        opaque: Option<String>,
    ) -> Result<AddedFd, QmpError>;
    /// `remove-fd`: closes at once; `fd` `None` removes the whole set.
    fn remove(&mut self, set: i64, fd: Option<i64>) -> Result<(), QmpError>;
    /// `query-fdsets`: the QMP return value.
    fn query(&self) -> Value;
    /// Opens a file the monitor names (`chardev-add` `out`, a path or
    /// `/dev/fdset/N`) with `open(2)` flags, through the emulator's single
    /// open entry (the hook or an fd set).
    fn open(&mut self, path: &str, flags: i32) -> io::Result<OwnedFd>;
}
