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

pub mod files;
pub mod mode;
pub mod reexec;
mod serial_in;
mod sys;

use std::ffi::OsString;
use std::sync::Arc;

use openhook_sandbox::{Mode, Needs, Profile, ThreadKind};

use crate::devices::virtio::blk;
use crate::fds::inherited;
use crate::fds::open::{HookOpen, Opener};
use crate::machine::{syscalls, ExitReason, Machine, ShutdownCause};
use crate::qmp;

/// Syscalls of this module's own threads (the signal thread).
pub const SYSCALLS: &[i64] = &[libc::SYS_rt_sigtimedwait, libc::SYS_rt_sigprocmask];

/// Exit status for a start-up failure (QEMU's).
pub const EXIT_STARTUP: i32 = 1;

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("openhook-emulator: {msg}");
    EXIT_STARTUP
}

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
fn absolutize(config: &mut crate::vm_config::MachineConfig) -> Result<(), crate::cli::CliError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    crate::cli::paths::absolutize(config, &cwd)
}

fn print_derived_policy(args: Vec<OsString>) -> i32 {
    let mut config = match crate::cli::parse_command_line(args, &[]) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Err(e) = absolutize(&mut config) {
        return fail(e);
    }
    match crate::cli::derived_policy::derive(&config) {
        Ok(d) => {
            print!("{}", d.toml);
            0
        }
        Err(e) => fail(e),
    }
}

/// Prints `-help`/`-version` text: 0, or 1 when stdout cannot take it
/// (closed, full disk) rather than a panic.
fn print_info(text: &str) -> i32 {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => fail(format!("writing to stdout: {e}")),
    }
}

/// Runs the emulator with `args` (without the program name); returns the
/// process exit status.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    match crate::cli::args::info_request(&args) {
        Some(crate::cli::args::InfoRequest::Help) => {
            return print_info(&crate::cli::options::help_text());
        }
        Some(crate::cli::args::InfoRequest::Version) => {
            return print_info(&crate::cli::options::version_text());
        }
        None => {}
    }
    if args.first().is_some_and(|a| a == PRINT_DERIVED_POLICY) {
        return print_derived_policy(args.into_iter().skip(1).collect());
    }
    // 1. Command line.
    let activation = match inherited::read_activation() {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let activated_meta = activation
        .as_ref()
        .map(|a| a.fds.clone())
        .unwrap_or_default();
    let own_args = args.clone();
    let mut config = match crate::cli::parse_command_line(args, &activated_meta) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Err(e) = absolutize(&mut config) {
        return fail(e);
    }
    // Launched directly with the sandbox on: become the broker (same pid),
    // which launches the confined emulator. Nothing has been claimed or
    // opened yet, so every fd we were given is still inheritable.
    if config.hook_fd.is_none()
        && config.sandbox == crate::vm_config::SandboxSetting::On
        && std::env::var_os(openhook_sandbox::MODE_ENV).is_none()
    {
        return fail(reexec::exec(&config, &own_args, activation.as_ref()));
    }

    // 2. Inherited fds and signals.
    let activated = match activation
        .as_ref()
        .map(inherited::claim_activation)
        .transpose()
    {
        Ok(a) => a.unwrap_or_default(),
        Err(e) => return fail(e),
    };
    let mut inherited_fds = match inherited::claim_all(&config, activated) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    if let Err(e) = sys::block(sys::TERMINATION_SIGNALS) {
        return fail(format!("blocking termination signals: {e}"));
    }

    // 3. Sandbox.
    let launcher_mode = std::env::var(openhook_sandbox::MODE_ENV).ok();
    let mode = match mode::effective_mode(config.sandbox, launcher_mode.as_deref()) {
        Ok(m) => m,
        Err(e) => return fail(format!("sandbox: {e}")),
    };
    let report = match openhook_sandbox::enter(&sandbox_profile(mode)) {
        Ok(r) => r,
        Err(e) => return fail(format!("sandbox: {e}")),
    };

    // 4. Files.
    let hook = inherited_fds
        .hook
        .take()
        .map(|fd| Box::new(openhook_wire::hook::HookClient::new(fd)) as Box<dyn HookOpen>);
    let opener = match Opener::for_config(hook, config.sandbox) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    if let Err(e) = opener.add_claimed(std::mem::take(&mut inherited_fds.add_fds)) {
        return fail(format!("-add-fd: {e}"));
    }
    let (chardevs, serial) = qmp::startup::serial_port(&config);
    let (files, _keep_open) = match files::open_machine_files(&opener, &config, Box::new(serial)) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    // Chardevs (the UART's among them) and the monitors' sockets; a
    // wait=on monitor blocks here until its first client connects.
    let prepared = match qmp::startup::prepare(&config, &opener, &mut inherited_fds, chardevs) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };

    // 5. Machine, monitors, signals.
    let mut machine = match Machine::build(&config, files) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let vcpu_filter = report.thread_filter(ThreadKind::Vcpu);
    machine.set_vcpu_thread_init(Arc::new(move || {
        vcpu_filter.load().map_err(|e| e.to_string())
    }));
    let control = machine.control();
    let monitors = match qmp::startup::start(prepared, &config, &control, &opener) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    if config.serial_reads_stdin() {
        if let Err(e) = serial_in::spawn(machine.serial_input()) {
            return fail(format!("starting the serial input thread: {e}"));
        }
    }
    let signal_control = control.clone();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = sys::wait(sys::TERMINATION_SIGNALS) {
                eprintln!("openhook-emulator: terminating on signal {sig}");
                signal_control.quit_for(ShutdownCause::HostSignal);
            }
        });
    if let Err(e) = spawned {
        return fail(format!("starting the signal thread: {e}"));
    }

    // 6. Run.
    let reason = machine.run();
    // The clients get the machine's last events (SHUTDOWN) before we exit.
    monitors.finish();
    match &reason {
        ExitReason::GuestCrash(msg) => eprintln!("openhook-emulator: guest crashed: {msg}"),
        ExitReason::HostError(msg) => eprintln!("openhook-emulator: {msg}"),
        _ => {}
    }
    reason.exit_status()
}
