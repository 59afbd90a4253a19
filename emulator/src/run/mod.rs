//! The emulator's start-up sequence, called by `main.rs`:
//!
//! 1. parse the command line (socket-activation listeners included) into
//!    a [`MachineConfig`](crate::vm_config::MachineConfig);
//! 2. claim every inherited fd (`-open-hook-fd`, `-add-fd`, chardev
//!    `fd=`, `LISTEN_FDS`) and block the termination signals;
//! 3. enter the sandbox (`openhook_sandbox::enter`) — before any thread
//!    exists and before any file is opened;
//! 4. open `/dev/kvm`, firmware, kernel, drives and serial output through
//!    the single open entry (hook or fd sets);
//!    chardevs and monitor sockets are readied by `qmp::startup::prepare`;
//! 5. build the machine, start the QMP monitors (`qmp::startup::start`)
//!    and the signal thread;
//! 6. run until the machine ends and return its exit status.

mod error;
pub mod files;
pub mod mode;
pub mod reexec;
mod serial_in;
mod sys;

use std::ffi::OsString;
use std::sync::Arc;

use openhook_sandbox::{Mode, Needs, Profile, ThreadKind};

use crate::devices::virtio::blk;
use crate::fds::activation::Activation;
use crate::fds::inherited::{self, InheritedFds};
use crate::fds::open::{HookOpen, Opener};
use crate::machine::{syscalls, ExitReason, Machine, ShutdownCause};
use crate::qmp;
use crate::vm_config::MachineConfig;

/// Syscalls of this module's own threads (the signal thread).
pub const SYSCALLS: &[i64] = &[libc::SYS_rt_sigtimedwait, libc::SYS_rt_sigprocmask];

pub use error::{StartError, EXIT_STARTUP};

/// What the sandbox must allow: the main/monitor threads' needs, and the
/// narrower vCPU filter. `mode` comes from [`mode::effective_mode`].
pub fn sandbox_profile(mode: Mode) -> Profile {
    let mut profile = Profile::new(mode);
    profile.main = Needs::default()
        .with(syscalls::SYSCALLS, syscalls::KVM_IOCTLS)
        .with(syscalls::BUILD_SYSCALLS, &[])
        .with(blk::SYSCALLS, &[])
        .with(crate::qmp::server::SYSCALLS, &[])
        .with(crate::chardev::output::SYSCALLS, &[])
        .with(crate::chardev::output::ACCEPT_SYSCALLS, &[])
        .with(SYSCALLS, &[]);
    // The UART writes its chardev's output on the vCPU thread.
    profile.vcpu = Needs::default()
        .with(syscalls::SYSCALLS, syscalls::KVM_RUN_IOCTLS)
        .with(blk::SYSCALLS, &[])
        .with(crate::chardev::output::SYSCALLS, &[]);
    profile
}

/// The emulator mode that prints the policy it would derive for the rest
/// of its arguments and exits (used by `openhook-broker
/// --print-derived-policy`). Opens nothing.
pub const PRINT_DERIVED_POLICY: &str = "--print-derived-policy";

/// Makes every path in `config` absolute against the current directory,
/// so the broker (which refuses relative names) sees the same files.
fn absolutize(config: &mut MachineConfig) -> Result<(), crate::cli::CliError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    crate::cli::paths::absolutize(config, &cwd)
}

fn print_derived_policy(args: Vec<OsString>) -> Result<i32, StartError> {
    let mut config = crate::cli::parse_command_line(args, &[])?;
    absolutize(&mut config)?;
    let derived = crate::cli::derived_policy::derive(&config)?;
    print!("{}", derived.toml);
    Ok(0)
}

/// Prints `-help`/`-version` text; an error when stdout cannot take it
/// (closed, full disk) rather than a panic.
fn print_info(text: &str) -> Result<i32, StartError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(StartError::Stdout)?;
    Ok(0)
}

/// Runs the emulator with `args` (without the program name); returns the
/// process exit status, or why start-up failed (`main.rs` prints it and
/// exits with [`StartError::exit_status`]).
pub fn main_with_args(args: Vec<OsString>) -> Result<i32, StartError> {
    match crate::cli::args::info_request(&args) {
        Some(crate::cli::args::InfoRequest::Help) => {
            return print_info(&crate::cli::options::help_text());
        }
        Some(crate::cli::args::InfoRequest::List(opt)) => {
            return print_info(&crate::cli::options::list_text(opt).unwrap_or_default());
        }
        Some(crate::cli::args::InfoRequest::Version) => {
            return print_info(&crate::cli::options::version_text());
        }
        None => {}
    }
    if args.first().is_some_and(|a| a == PRINT_DERIVED_POLICY) {
        return print_derived_policy(args.into_iter().skip(1).collect());
    }
    let (config, activation) = parse(args.clone())?;
    // Launched directly with the sandbox on: become the broker (same pid),
    // which launches the confined emulator. Nothing has been claimed or
    // opened yet, so every fd we were given is still inheritable.
    if config.hook_fd.is_none()
        && config.sandbox == crate::vm_config::SandboxSetting::On
        && std::env::var_os(openhook_sandbox::MODE_ENV).is_none()
    {
        return Err(reexec::exec(&config, &args, activation.as_ref()).into());
    }
    let mut inherited_fds = claim_fds(&config, activation.as_ref())?;
    let report = confine(&config)?;
    let started = start(&config, &mut inherited_fds, &report)?;
    Ok(started.run())
}

/// Step 1: the command line (socket-activation listeners included), with
/// every path made absolute.
fn parse(args: Vec<OsString>) -> Result<(MachineConfig, Option<Activation>), StartError> {
    let activation = inherited::read_activation()?;
    let activated_meta = activation
        .as_ref()
        .map(|a| a.fds.clone())
        .unwrap_or_default();
    let mut config = crate::cli::parse_command_line(args, &activated_meta)?;
    absolutize(&mut config)?;
    Ok((config, activation))
}

/// Step 2: inherited fds claimed, termination signals blocked.
fn claim_fds(
    config: &MachineConfig,
    activation: Option<&Activation>,
) -> Result<InheritedFds, StartError> {
    let activated = activation
        .map(inherited::claim_activation)
        .transpose()?
        .unwrap_or_default();
    let inherited_fds = inherited::claim_all(config, activated)?;
    sys::block(sys::TERMINATION_SIGNALS).map_err(StartError::BlockSignals)?;
    Ok(inherited_fds)
}

/// Step 3: the sandbox, in the mode the command line and the launcher
/// agree on.
fn confine(config: &MachineConfig) -> Result<openhook_sandbox::Report, StartError> {
    let launcher_mode = std::env::var(openhook_sandbox::MODE_ENV).ok();
    let mode = mode::effective_mode(config.sandbox, launcher_mode.as_deref())?;
    Ok(openhook_sandbox::enter(&sandbox_profile(mode))?)
}

/// A machine with its monitors and threads started, ready to run.
struct Started {
    machine: Machine,
    monitors: qmp::startup::Monitors,
    /// Fd-set dups the machine's files came from; open while it runs.
    _keep_open: files::KeepOpen,
    /// The open entry (hook connection, fd sets) and the machine's
    /// control handle live as long as the machine, as the monitors' do.
    _opener: Opener,
    _control: crate::machine::MachineControl,
}

impl Started {
    /// Step 6: runs until the machine ends; returns its exit status.
    fn run(self) -> i32 {
        let reason = self.machine.run();
        // The clients get the machine's last events (SHUTDOWN) before we exit.
        self.monitors.finish();
        match &reason {
            ExitReason::GuestCrash(msg) => eprintln!("openhook-emulator: guest crashed: {msg}"),
            ExitReason::HostError(msg) => eprintln!("openhook-emulator: {msg}"),
            _ => {}
        }
        reason.exit_status()
    }
}

/// Steps 4 and 5: files through the single open entry, chardevs and
/// monitor sockets, the machine, the monitors and the helper threads.
fn start(
    config: &MachineConfig,
    inherited_fds: &mut InheritedFds,
    report: &openhook_sandbox::Report,
) -> Result<Started, StartError> {
    let hook = inherited_fds
        .hook
        .take()
        .map(|fd| Box::new(openhook_wire::hook::HookClient::new(fd)) as Box<dyn HookOpen>);
    let opener = Opener::for_config(hook, config.sandbox)?;
    opener
        .add_claimed(std::mem::take(&mut inherited_fds.add_fds))
        .map_err(StartError::AddFd)?;
    let (chardevs, serial) = qmp::startup::serial_port(config);
    let (files, keep_open) = files::open_machine_files(&opener, config, Box::new(serial))?;
    // Chardevs (the UART's among them) and the monitors' sockets; a
    // wait=on monitor blocks here until its first client connects.
    let prepared = qmp::startup::prepare(config, &opener, inherited_fds, chardevs)?;

    let mut machine = Machine::build(config, files)?;
    let vcpu_filter = report.thread_filter(ThreadKind::Vcpu);
    machine.set_vcpu_thread_init(Arc::new(move || {
        vcpu_filter.load().map_err(|e| e.to_string())
    }));
    let control = machine.control();
    let monitors = qmp::startup::start(prepared, config, &control, &opener)?;
    if config.serial_reads_stdin() {
        serial_in::spawn(machine.serial_input()).map_err(StartError::SerialThread)?;
    }
    let signal_control = control.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = sys::wait(sys::TERMINATION_SIGNALS) {
                eprintln!("openhook-emulator: terminating on signal {sig}");
                signal_control.quit_for(ShutdownCause::HostSignal);
            }
        })
        .map_err(StartError::SignalThread)?;
    Ok(Started {
        machine,
        monitors,
        _keep_open: keep_open,
        _opener: opener,
        _control: control,
    })
}
