//! The QEMU-compatible command line, apart from the machine model: argv → recognised
//! options (`args`) → QemuOpts per option (`qemu_opts`) → the validated
//! [`MachineConfig`](crate::vm_config::MachineConfig) (`config`). QEMU
//! spellings live only here. Nothing in this module touches the OS.

pub mod args;
pub mod block;
pub mod chardev;
pub mod config;
pub mod derived_policy;
pub mod error;
pub mod machine_opts;
pub mod options;
pub mod paths;
pub mod process_opts;
pub mod qemu_opts;
pub mod scalar;

use std::ffi::OsString;

pub use error::CliError;

use crate::fds::activation::ActivatedFd;
use crate::vm_config::MachineConfig;

/// Parses the arguments after the program name. `activated` are the
/// socket-activation listeners meant for us (see `fds::activation`), so
/// chardev ids can pick them up by name; pass `&[]` without activation.
pub fn parse_command_line<I>(args: I, activated: &[ActivatedFd]) -> Result<MachineConfig, CliError>
where
    I: IntoIterator<Item = OsString>,
{
    let options = args::split_args(args)?;
    config::build(&options, activated)
}
