//! The QMP monitor: QEMU-compatible protocol, fd passing, fd sets.
//!
//! - [`session`]: one conversation without I/O (pure core).
//! - [`error`]: `QmpError` and QEMU's error texts.
//! - [`args`]: QAPI-style argument reading.
//! - [`backend`]: the traits the monitor drives (`Machine`, `FdSets`).
//! - [`server`]: sockets, SCM_RIGHTS intake, events, monitor threads.
//! - [`commands`]: the commands, one file per family.

pub mod args;
pub mod backend;
pub mod commands;
pub mod error;
pub mod server;
pub mod session;
pub mod startup;

pub use backend::{forward_events, FdSets, Machine, RunStatus};
pub use error::QmpError;
pub use server::{Hub, HubParts, Monitor, Transport};
pub use session::{Effect, Handler, Output, Session};
