//! Why the emulator could not start: one type for every start-up step,
//! printed as one line by `main.rs`, with one mapping to an exit status.
#![forbid(unsafe_code)]

use std::io;

use openhook_sandbox::SandboxError;

use super::mode::ModeError;
use super::reexec::ReexecError;
use crate::cli::CliError;
use crate::fds::activation::ActivationError;
use crate::fds::fdset::FdSetError;
use crate::fds::inherited::InheritedError;
use crate::fds::open::OpenerError;
use crate::machine::BuildError;
use crate::qmp::startup::StartupError;

use super::files::FilesError;

/// Exit status for a start-up failure (QEMU's).
pub const EXIT_STARTUP: i32 = 1;

/// A start-up failure, by step.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `-help`/`-version`: stdout could not take the text.
    #[error("writing to stdout: {0}")]
    Stdout(#[source] io::Error),
    #[error(transparent)]
    Activation(#[from] ActivationError),
    #[error(transparent)]
    Cli(#[from] CliError),
    /// Becoming the broker (direct launch) failed.
    #[error(transparent)]
    Reexec(#[from] ReexecError),
    #[error(transparent)]
    Inherited(#[from] InheritedError),
    #[error("blocking termination signals: {0}")]
    BlockSignals(#[source] io::Error),
    #[error("sandbox: {0}")]
    Mode(#[from] ModeError),
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Opener(#[from] OpenerError),
    #[error("-add-fd: {0}")]
    AddFd(#[source] FdSetError),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    Monitors(#[from] StartupError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("starting the serial input thread: {0}")]
    SerialThread(#[source] io::Error),
    #[error("starting the signal thread: {0}")]
    SignalThread(#[source] io::Error),
}

impl StartError {
    /// The process exit status for this failure: QEMU's 1 for every
    /// start-up error.
    pub fn exit_status(&self) -> i32 {
        EXIT_STARTUP
    }
}
