//! The `-open-hook-fd` protocol: frame codec (pure), client, server side.

pub mod client;
pub mod frame;
pub mod server;

pub use client::{ClientError, HookClient};
pub use frame::{Decoded, FrameError, OpenRequest, PathError, Request};
pub use server::{Connection, Handler, ServerError};
