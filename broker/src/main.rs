//! `openhook-broker --policy FILE [--audit-log FILE] -- PROGRAM [ARGS...]`
//! and `openhook-broker check [--policy FILE] [--sandbox]`.
//!
//! Exit status: the child's (128 + signal when it was killed); 125 when the
//! broker cannot start it (bad policy, missing root, ...), 126 when the
//! program is not executable, 127 when it is not found. `check`: 0 valid,
//! 1 invalid.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use openhook_broker::ambient::{self, Ambient};
use openhook_broker::launch::{self, LaunchSpec};
use openhook_broker::{policy, serve};

#[derive(Parser)]
#[command(
    name = "openhook-broker",
    version,
    about = "Launch PROGRAM and answer its -open-hook-fd open requests under a policy",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The policy file (TOML, see docs/policy.md).
    #[arg(long, value_name = "FILE", required = true)]
    policy: Option<PathBuf>,
    /// Append one JSON line per decision to FILE.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// The program to launch and its arguments (`-open-hook-fd N` is appended).
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
    program: Vec<OsString>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy file and print the effective rules; with
    /// --sandbox, print what the sandbox can enforce on this kernel.
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
    },
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("openhook-broker: {message}");
    ExitCode::from(code)
}

fn check(path: Option<&std::path::Path>, sandbox: bool) -> ExitCode {
    let policy = match path.map(policy::load).transpose() {
        Ok(p) => p,
        Err(e) => return fail(1, e),
    };
    if let Some(p) = &policy {
        print!("{}", p.describe());
    }
    if sandbox {
        let (text, ok) = launch::hardening::check(policy.as_ref().map(|p| &p.sandbox));
        print!("{text}");
        if !ok {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn run(
    policy_path: &std::path::Path,
    audit_path: Option<&std::path::Path>,
    program: &[OsString],
) -> ExitCode {
    let Some((program, args)) = program.split_first() else {
        return fail(125, "no program given");
    };
    let policy = match policy::load(policy_path) {
        Ok(p) => p,
        Err(e) => return fail(125, e),
    };
    let ambient = match Ambient::open(&policy) {
        Ok(a) => a,
        Err(e) => return fail(125, e),
    };
    let audit = match audit_path.map(ambient::open_audit_log).transpose() {
        Ok(a) => a,
        Err(e) => return fail(125, e),
    };
    let declared = ambient
        .listeners
        .iter()
        .chain(&ambient.preopens)
        .map(|d| (d.fd.as_fd(), d.target))
        .collect();
    let spec = LaunchSpec {
        program: program.clone(),
        args: args.to_vec(),
        env: std::env::vars_os().collect(),
        declared,
        sandbox: launch::hardening::sandbox_policy(&policy.sandbox),
    };
    let confine = |child: i32| {
        let profile = launch::hardening::broker_profile(&policy, child);
        let layers =
            openhook_sandbox::broker::confine_broker(&profile).map_err(|e| e.to_string())?;
        for (name, state) in layers {
            tracing::debug!("broker self-confinement: {name}: {state:?}");
            if let openhook_sandbox::LayerState::Partial(w)
            | openhook_sandbox::LayerState::Missing(w) = state
            {
                if profile.mode == openhook_sandbox::Mode::BestEffort {
                    eprintln!(
                        "openhook-broker: best-effort: broker {name} not fully enforced: {w}"
                    );
                }
            }
        }
        Ok(())
    };
    let served = launch::run(&spec, confine, |conn, pid| {
        if let Err(e) = serve::serve(conn, &policy, &ambient, audit.as_ref(), pid) {
            tracing::warn!("{e}; connection closed");
        }
    });
    match served {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => fail(e.exit_code(), e),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPENHOOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { policy, sandbox }) => check(policy.as_deref(), sandbox),
        None => match cli.policy {
            Some(p) => run(&p, cli.audit_log.as_deref(), &cli.program),
            None => fail(2, "--policy FILE is required"),
        },
    }
}
