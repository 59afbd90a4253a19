//! openhook-wire: the `-open-hook-fd` protocol (codec, client, server loop),
//! SCM_RIGHTS helpers, and the QMP client side. No policy lives here.
//!
//! - [`errno`]: the `Errno` newtype, names ⇄ numbers.
//! - [`inherited`]: the one place an inherited fd number becomes an `OwnedFd`.
//! - [`activation`]: systemd socket activation (`LISTEN_*`, pure parse).
//! - [`hook::frame`]: QEMU_OPEN request/reply byte layout (pure, push-style).
//! - [`hook::client`]: a blocking client, safe to share between threads.
//! - [`hook::server`]: a connection reader yielding decoded requests.
//! - [`scm`]: SCM_RIGHTS send/receive via rustix.
//! - [`qmp`]: the QMP client side.
// Unsafe only in `inherited` (claiming fd numbers), which opts back in.
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod activation;
pub mod errno;
pub mod hook;
pub mod inherited;
pub mod qmp;
pub mod scm;
#[cfg(any(test, feature = "test-utils"))]
pub mod testutil;

pub use errno::Errno;
