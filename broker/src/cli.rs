//! The `openhook-broker` command line (clap): a module of its own so the
//! man pages and shell completions are built from the very definitions
//! the broker parses with (`manpages/build.rs` includes this file by
//! path). clap and std only.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "openhook-broker",
    version,
    about = "Launch PROGRAM and answer its open requests under a policy: over -open-hook-fd, or with --transparent every path syscall of an unmodified program",
    after_long_help = "Exit status: the program's (128 + N when signal N killed it); 125 when \
the broker cannot start it (bad policy, missing rule root, ...), 126 when PROGRAM is not \
executable, 127 when it is not found. check: 0 valid, 1 invalid; check --explain: 0 allowed, \
1 denied, 2 bad policy.\n\nSee openhook-policy(5) for the policy file, openhook-emulator(1) \
for the emulator, docs/systemd.md for running VMs as services.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The policy file (TOML, see docs/policy.md).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["policy_fd", "print_derived_policy"], conflicts_with = "policy_fd")]
    pub policy: Option<PathBuf>,
    /// Read the policy text from inherited fd N (a memfd or pipe) instead.
    #[arg(long, value_name = "N")]
    pub policy_fd: Option<i32>,
    /// Hand inherited fd N to the program at the same number (repeatable;
    /// it must be open and not close-on-exec).
    #[arg(long, value_name = "N")]
    pub pass_fd: Vec<i32>,
    /// Print the policy `PROGRAM --print-derived-policy ARGS` derives from
    /// the emulator command line (what a directly launched emulator would
    /// run under) and exit with its status.
    #[arg(long, conflicts_with_all = ["policy", "policy_fd", "audit_log", "pass_fd"])]
    pub print_derived_policy: bool,
    /// Append one JSON line per decision to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Run an unmodified PROGRAM (no `-open-hook-fd`): its open, stat,
    /// access, readlink, statfs, bind and connect calls are brokered
    /// through seccomp user notification (see docs/transparent.md).
    #[arg(long)]
    pub transparent: bool,
    /// The program to launch and its arguments (`-open-hook-fd N` is
    /// appended unless --transparent). An argument `@/FILE` is replaced by
    /// the words of FILE (an argument file, see docs/systemd.md).
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
    pub program: Vec<OsString>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Validate a policy file and print the effective rules; with
    /// --sandbox, print what the sandbox can enforce on this kernel; with
    /// --explain PATH, the decision for one open and the rules behind it.
    #[command(group = clap::ArgGroup::new("what").required(true).multiple(true).args(["policy", "sandbox"]))]
    Check {
        /// The policy file.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Print each sandbox layer, what this kernel offers and whether it
        /// will be enforced (and, with --policy, whether the policy's mode
        /// would start here).
        #[arg(long)]
        sandbox: bool,
        /// Explain the decision the broker would take for an open of PATH:
        /// the deciding rule (file:line) and the matching rules that lost.
        /// Exit status 0 allowed, 1 denied, 2 bad policy or arguments.
        #[arg(
            long,
            value_name = "PATH",
            requires = "policy",
            conflicts_with = "sandbox"
        )]
        explain: Option<PathBuf>,
        /// With --explain: the access requested.
        #[arg(long, value_name = "ACCESS", default_value = "r", value_parser = ["r", "w", "rw"], requires = "explain")]
        access: String,
        /// With --explain: the open creates the file (O_CREAT).
        #[arg(long, requires = "explain")]
        create: bool,
        /// With --explain: the open truncates the file (O_TRUNC).
        #[arg(long, requires = "explain")]
        truncate: bool,
        /// With --explain: the type of the file the open would find.
        #[arg(long = "type", value_name = "TYPE", value_parser = ["file", "dir", "char", "block", "fifo", "socket"], requires = "explain")]
        file_type: Option<String>,
    },
    /// Run PROGRAM transparently, allowing and recording every path it
    /// uses, then write a reviewable policy that runs it in enforcing mode.
    Learn {
        /// Where to write the policy.
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
        /// Also append the recorded decisions to FILE.
        #[arg(long, value_name = "FILE")]
        audit_log: Option<PathBuf>,
        /// Hand inherited fd N to the program at the same number.
        #[arg(long, value_name = "N")]
        pass_fd: Vec<i32>,
        /// The program and its arguments.
        #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
        program: Vec<OsString>,
    },
}
