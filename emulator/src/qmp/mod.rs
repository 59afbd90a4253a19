//! The QMP monitor: QEMU-compatible protocol, fd passing, fd sets.
//!
//! - [`session`]: one conversation without I/O (pure core).
//! - [`error`]: `QmpError` and QEMU's error texts.
//! - [`args`]: QAPI-style argument reading.

pub mod args;
pub mod error;
pub mod session;

pub use error::QmpError;
pub use session::{Effect, Handler, Output, Session};
