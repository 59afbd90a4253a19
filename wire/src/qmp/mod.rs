//! QMP from the client's side, and the JSON handling both sides share.
//!
//! - [`stream`]: QEMU's JSON lexer and streamer (`lexer`, `parse`): bytes
//!   in, whole values or QEMU-worded parse errors out, bounded memory.
//! - [`message`]: message shapes, error classes, QEMU-style JSON output.
//! - [`client`]: a blocking client library (greeting, negotiation,
//!   commands with fds over SCM_RIGHTS, events).

#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
pub mod lexer;
pub mod message;
mod parse;
pub mod stream;

pub use client::{ClientError, QmpClient};
pub use message::{encode_line, ErrorBody, ErrorClass, Event, Greeting, ServerMessage, Timestamp};
pub use stream::{Item, JsonError, JsonStream, Limits};
