//! The QMP monitor: QEMU-compatible protocol, fd passing, fd sets.
//!
//! - [`session`]: one conversation without I/O (pure core).
//! - [`error`]: `QmpError` and QEMU's error texts.
//! - [`args`]: QAPI-style argument reading.
//! - [`backend`]: the traits the monitor drives (`MachineBackend`, `FdSets`).
//! - [`hub`]: state the monitors share (`Hub`, `Monitor`, `FdBatch`).
//! - [`events`]: machine events into QMP events.
//! - [`server`]: sockets, SCM_RIGHTS intake, monitor threads.
//! - [`commands`]: the commands, one file per family.
//! - [`startup`]: the monitors and chardevs the command line asks for.
//!
//! Dependencies inside `qmp` point one way: `server` → `commands` → `hub`
//! → `backend`; `events` → `hub`; `startup` → all of them.

pub mod args;
pub mod backend;
pub mod commands;
pub mod error;
pub mod events;
pub mod hub;
pub mod server;
pub mod session;
pub mod startup;

pub use backend::{FdSets, MachineBackend, RunStatus};
pub use error::QmpError;
pub use events::forward_events;
pub use hub::{FdBatch, Hub, HubParts, Monitor};
pub use server::Transport;
pub use session::{Effect, Handler, Output, Session};
