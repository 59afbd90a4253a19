//! `openhook-broker --policy FILE [--audit-log FILE] -- PROGRAM [ARGS...]`
//! (or `--policy-fd N [--pass-fd N]...` — how a directly launched
//! `openhook-emulator` re-executes itself as the broker),
//! `openhook-broker --print-derived-policy -- openhook-emulator [ARGS...]`
//! `openhook-broker check [--policy FILE] [--sandbox]` and
//! `openhook-broker check --policy FILE --explain PATH [--access r|w|rw]
//! [--create] [--truncate] [--type TYPE]`.
//!
//! An argument `@/FILE` among PROGRAM's arguments is replaced by the words
//! of FILE (`argfile`).
//!
//! Exit status: the child's (128 + signal when it was killed); 125 when the
//! broker cannot start it (bad policy, missing root, ...), 126 when the
//! program is not executable, 127 when it is not found. `check`: 0 valid,
//! 1 invalid; `check --explain`: 0 allowed, 1 denied, 2 bad policy.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::process::ExitCode;

use clap::Parser as _;
use openhook_broker::ambient::{self, Ambient};
use openhook_broker::cli::{Cli, Command};
use openhook_broker::judge::Judge;
use openhook_broker::launch::{self, Channel, LaunchSpec};
use openhook_broker::{
    activation, argfile, explain, inherited, judge, learn, notify, policy, serve,
};

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("openhook-broker: {message}");
    ExitCode::from(code)
}

/// Why the broker could not start its program (or `learn` could not
/// finish). Printed as one line; [`StartError::exit_code`] is the one
/// mapping to an exit status (the `check` queries keep their own).
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// `@/FILE` among the arguments could not be expanded.
    #[error("{0}")]
    Args(String),
    #[error("one of --policy FILE or --policy-fd N is required")]
    NoPolicySource,
    #[error("no program given")]
    NoProgram,
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// `--policy-fd`, `--pass-fd` or a `LISTEN_FDS` number.
    #[error(transparent)]
    Inherited(#[from] inherited::InheritedError),
    #[error(transparent)]
    Activation(#[from] activation::ActivationError),
    #[error(transparent)]
    Ambient(#[from] ambient::AmbientError),
    #[error(transparent)]
    Roots(#[from] judge::RootsMismatch),
    #[error(transparent)]
    Learn(#[from] learn::LearnError),
    #[error(transparent)]
    Launch(#[from] launch::LaunchError),
    /// `--print-derived-policy`: the program could not be run.
    #[error("{program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
}

impl StartError {
    /// 125 when the broker cannot start the program, 126 when it is not
    /// executable, 127 when it is not found, 2 for a usage error.
    fn exit_code(&self) -> u8 {
        match self {
            StartError::NoPolicySource => 2,
            StartError::Launch(e) => e.exit_code(),
            StartError::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
            StartError::Exec { .. } => 126,
            _ => 125,
        }
    }
}

/// The exit status of a run, or of its start-up failure (printed).
fn status(result: Result<ExitCode, StartError>) -> ExitCode {
    result.unwrap_or_else(|e| fail(e.exit_code(), e))
}

fn check(path: Option<&std::path::Path>, sandbox: bool) -> ExitCode {
    let policy = match path.map(ambient::load_policy).transpose() {
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

/// `check --policy P --explain PATH ...`: 0 allowed, 1 denied, 2 when the
/// policy does not load.
fn explain(policy: &std::path::Path, req: explain::Request) -> ExitCode {
    let policy = match ambient::load_policy(policy) {
        Ok(p) => p,
        Err(e) => return fail(2, e),
    };
    let e = explain::explain_on_host(&policy, &req, |allowed| Some(look(&policy, allowed)));
    print!("{}", e.text);
    ExitCode::from(if e.allowed { 0 } else { 1 })
}

/// `check --explain`'s look at the host: the allowed request resolved as
/// serving resolves it, to an `O_PATH` fd (nothing is opened for real).
fn look(policy: &policy::Policy, allowed: &policy::Allowed<'_>) -> explain::HostFinding {
    use explain::HostFinding;
    use openhook_broker::resolve::{self, ResolveError};
    let path = &policy.roots[allowed.root.0];
    if resolve::proc_self_path(path.as_bytes()).is_some() {
        return HostFinding::Skipped("a /proc/self root means the asking process");
    }
    let root = match ambient::open_rule_root(path) {
        Ok(fd) => fd,
        Err(_) => return HostFinding::Skipped("the rule root cannot be opened here"),
    };
    match resolve::probe_beneath(root.as_fd(), allowed, false) {
        Ok(fd) => match rustix::fs::fstat(&fd)
            .ok()
            .and_then(|st| policy::FileType::from_st_mode(st.st_mode))
        {
            Some(t) => HostFinding::Found(t),
            None => HostFinding::WrongType(None),
        },
        Err(ResolveError::TypeMismatch(t)) => HostFinding::WrongType(t),
        Err(ResolveError::Sys(e)) => HostFinding::Failed(e),
    }
}

/// Where the policy comes from.
enum PolicySource<'a> {
    File(&'a std::path::Path),
    Fd(i32),
}

fn load_policy(source: &PolicySource<'_>) -> Result<policy::Policy, StartError> {
    match *source {
        PolicySource::File(p) => Ok(ambient::load_policy(p)?),
        PolicySource::Fd(fd) => {
            let text = inherited::read_policy(fd, ambient::MAX_POLICY_BYTES)?;
            Ok(policy::parse(&text, &format!("policy-fd:{fd}"))?)
        }
    }
}

/// `PROGRAM --print-derived-policy ARGS`, its output and status relayed.
fn print_derived_policy(program: &[OsString]) -> Result<ExitCode, StartError> {
    let Some((program, args)) = program.split_first() else {
        return Err(StartError::NoProgram);
    };
    let st = std::process::Command::new(program)
        .arg("--print-derived-policy")
        .args(args)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|source| StartError::Exec {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    Ok(ExitCode::from(
        st.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(125),
    ))
}

/// Inherited fds to hand on at their numbers: `--pass-fd`s and, when the
/// activation is ours, the `LISTEN_FDS` listeners (each number once).
fn claim_passed(
    pass: &[i32],
    activation: Option<&activation::Activation>,
) -> Result<Vec<(std::os::fd::OwnedFd, i32)>, inherited::InheritedError> {
    let mut numbers: Vec<(i32, &'static str)> = pass.iter().map(|&n| (n, "--pass-fd")).collect();
    for n in activation.into_iter().flat_map(|a| a.fds()) {
        if !numbers.iter().any(|&(m, _)| m == n) {
            numbers.push((n, "LISTEN_FDS"));
        }
    }
    numbers.sort_unstable();
    numbers.dedup_by_key(|&mut (n, _)| n);
    numbers
        .into_iter()
        .map(|(n, what)| inherited::claim(n, what).map(|fd| (fd, n)))
        .collect()
}

/// How the launched program is served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `-open-hook-fd` appended.
    Hook,
    /// Seccomp user notification.
    Transparent,
}

fn run(
    source: &PolicySource<'_>,
    audit_path: Option<&std::path::Path>,
    pass: &[i32],
    program: &[OsString],
    mode: Mode,
) -> Result<ExitCode, StartError> {
    let policy = load_policy(source)?;
    let audit = audit_path.map(ambient::open_audit_log).transpose()?;
    launch_under(
        &policy,
        audit.as_ref(),
        pass,
        program,
        mode,
        matches!(source, PolicySource::Fd(_)),
    )
}

/// Launches `program` under `policy` and serves it until it exits.
fn launch_under(
    policy: &policy::Policy,
    audit: Option<&openhook_broker::audit::AuditLog>,
    pass: &[i32],
    program: &[OsString],
    mode: Mode,
    die_with_broker: bool,
) -> Result<ExitCode, StartError> {
    let Some((program, args)) = program.split_first() else {
        return Err(StartError::NoProgram);
    };
    let activation = activation::parse(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::env::var_os("LISTEN_FDNAMES"),
        std::process::id(),
    )?;
    let passed = claim_passed(pass, activation.as_ref())?;
    let ambient = Ambient::open(policy)?;
    let judge = Judge::new(policy, &ambient, audit)?;
    let declared = ambient
        .listeners
        .iter()
        .chain(&ambient.preopens)
        .map(|d| (d.fd.as_fd(), d.target))
        .chain(passed.iter().map(|(fd, n)| (fd.as_fd(), *n)))
        .collect();
    let spec = LaunchSpec {
        program: program.clone(),
        args: args.to_vec(),
        env: std::env::vars_os().collect(),
        declared,
        sandbox: launch::hardening::sandbox_policy(&policy.sandbox),
        activation,
        // --policy-fd is how the emulator re-executes itself as its own
        // broker (direct launch): the launcher's pid is ours, so a SIGKILL
        // it sends must end the VM too, as it would end QEMU.
        die_with_broker,
        transparent: mode == Mode::Transparent,
    };
    let confine = |child: i32| {
        let profile = launch::hardening::broker_profile(policy, child, mode == Mode::Transparent);
        let layers = openhook_sandbox::broker::confine_broker(&profile)?;
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
    let served = launch::run(&spec, confine, |channel, pid, stop| match channel {
        Channel::Hook(conn) => {
            if let Err(e) = serve::serve(conn, policy, &ambient, audit, pid) {
                tracing::warn!("{e}; connection closed");
            }
        }
        Channel::Listener(listener) => notify::serve(&listener, &judge, stop),
    });
    Ok(ExitCode::from(served?.code()))
}

/// `learn`: the program runs transparently under a policy that allows
/// everything; every decision is recorded (in a private log, and in
/// `--audit-log` when given); the policy is written from the records.
fn learn_run(
    output: &std::path::Path,
    audit_path: Option<&std::path::Path>,
    pass: &[i32],
    program: &[OsString],
) -> Result<ExitCode, StartError> {
    let policy = policy::parse(learn::PERMISSIVE_POLICY, "learn (allow everything)")?;
    let scratch = learn::Recording::new(audit_path)?;
    let mut out = ambient::open_output(output)?;
    // The policy is written from what was recorded even when the run failed.
    let run = status(launch_under(
        &policy,
        Some(scratch.log()),
        pass,
        program,
        Mode::Transparent,
        false,
    ));
    let n = scratch.write_policy(&mut out, program)?;
    eprintln!(
        "openhook-broker: learn: wrote {} ({n} rules); review it, then run with --policy {} --transparent",
        output.display(),
        output.display()
    );
    Ok(run)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPENHOOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    // `@/FILE` among PROGRAM's arguments: its words (see argfile).
    let cli = match argfile::expand(std::env::args_os().collect(), |p| {
        ambient::read_args_file(p)
    }) {
        Ok(argv) => Cli::parse_from(argv),
        Err(e) => return status(Err(StartError::Args(e))),
    };
    match cli.command {
        Some(Command::Check {
            policy: Some(policy),
            explain: Some(path),
            access,
            create,
            truncate,
            file_type,
            ..
        }) => explain(
            &policy,
            explain::Request {
                path: path.into_os_string().into_encoded_bytes(),
                access: match access.as_str() {
                    "w" => policy::Access::Write,
                    "rw" => policy::Access::ReadWrite,
                    _ => policy::Access::Read,
                },
                create,
                truncate,
                file_type: policy::FileType::ALL
                    .into_iter()
                    .find(|t| Some(t.as_str()) == file_type.as_deref()),
            },
        ),
        Some(Command::Check {
            policy, sandbox, ..
        }) => check(policy.as_deref(), sandbox),
        Some(Command::Learn {
            output,
            audit_log,
            pass_fd,
            program,
        }) => status(learn_run(&output, audit_log.as_deref(), &pass_fd, &program)),
        None if cli.print_derived_policy => status(print_derived_policy(&cli.program)),
        None => {
            let source = match (&cli.policy, cli.policy_fd) {
                (Some(p), None) => PolicySource::File(p),
                (None, Some(fd)) => PolicySource::Fd(fd),
                _ => return status(Err(StartError::NoPolicySource)),
            };
            let mode = if cli.transparent {
                Mode::Transparent
            } else {
                Mode::Hook
            };
            status(run(
                &source,
                cli.audit_log.as_deref(),
                &cli.pass_fd,
                &cli.program,
                mode,
            ))
        }
    }
}
