//! The `openhook-qmp` command line (clap), a module of its own so the man
//! page and shell completions are built from it (`manpages/build.rs`
//! includes this file by path). clap and std only.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "openhook-qmp",
    version,
    about = "Talk to a QMP monitor, passing files as fds",
    after_long_help = "COMMAND is a QMP command object ('{\"execute\": \"add-fd\"}') or a \
command name followed by its arguments as JSON (add-fd '{\"fdset-id\": 1}'). Files named \
with --fd are opened here, with the manager's rights, and sent with the command in one \
SCM_RIGHTS message. Responses and events are printed one JSON object per line.\n\n\
Exit status: 0 when the command returned, 1 when it answered an error, 2 for anything else."
)]
pub struct Cli {
    /// The monitor's Unix socket.
    pub socket: PathBuf,
    /// A command object, or a command name followed by JSON arguments.
    pub command: Vec<String>,
    /// Read commands from stdin, one per line; print everything received.
    #[arg(long, conflicts_with = "command")]
    pub interactive: bool,
    /// Open PATH (r, w or rw) and send it with the (first) command.
    #[arg(long = "fd", value_name = "PATH:r|w|rw")]
    pub fds: Vec<String>,
    /// After the reply, keep printing events for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub linger: u64,
    /// Also print the greeting.
    #[arg(long)]
    pub greeting: bool,
}
