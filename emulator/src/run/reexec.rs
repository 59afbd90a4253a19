//! Launched directly (no `-open-hook-fd`, sandbox on): the emulator
//! re-executes itself, same pid, as `openhook-broker` with a policy derived
//! from its own command line (docs/decisions/direct-launch-reexec.md).
//!
//! - The policy text (`cli::derived_policy::derive`) goes to the broker in
//!   a memfd (`memfd_create` opens no path) at a number above every fd the
//!   command line names, handed over as `--policy-fd N`.
//! - Every `fd=N` / `-add-fd fd=N` is left untouched (inherited, so not
//!   close-on-exec) and declared to the broker with `--pass-fd N`; the
//!   broker hands it to the confined emulator at the same number.
//! - Socket activation needs nothing here: `execve` keeps the pid, so
//!   `LISTEN_PID` still names the broker, which passes the listeners on
//!   with the confined emulator's own pid.
//! - The broker is `openhook-broker` next to our executable, else found on
//!   `PATH`; the program it launches is our executable's path.
//!
//! [`plan`] is pure; [`exec`] performs it and returns only on failure.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::cli::derived_policy::{self, DerivedPolicy};
use crate::fds::activation::Activation;
use crate::vm_config::MachineConfig;

/// The broker's executable name.
pub const BROKER: &str = "openhook-broker";

/// Why the re-exec did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReexecError {
    #[error("deriving the policy: {0}")]
    Derive(#[from] crate::cli::CliError),
    #[error("finding our own executable: {0}")]
    SelfExe(#[source] std::io::Error),
    #[error("passing the derived policy in a memfd: {0}")]
    Memfd(#[source] std::io::Error),
    #[error(
        "started without -open-hook-fd and with the sandbox on, so it re-executes itself as \
         {broker}, which failed: {source} (put {BROKER} next to openhook-emulator or on PATH, \
         or use -sandbox off for debugging only)",
        broker = .broker.display()
    )]
    Exec {
        broker: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The broker command line (after the broker's own name) for a derived
/// policy at `policy_fd`, fds `pass` passed through, launching `emulator`
/// with `args`.
pub fn broker_args(
    policy_fd: i32,
    pass: &[i32],
    emulator: &Path,
    args: &[OsString],
) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec!["--policy-fd".into(), policy_fd.to_string().into()];
    for n in pass {
        out.push("--pass-fd".into());
        out.push(n.to_string().into());
    }
    out.push("--".into());
    out.push(emulator.into());
    out.extend(args.iter().cloned());
    out
}

/// The lowest number for the policy memfd: above every fd the command line
/// names, every activated fd and every derived `[[listen]]` number, and
/// above the standard streams.
pub fn policy_fd_floor(
    pass: &[i32],
    activation: Option<&Activation>,
    derived: &DerivedPolicy,
) -> i32 {
    pass.iter()
        .copied()
        .chain(
            activation
                .into_iter()
                .flat_map(|a| a.fds.iter().map(|f| f.fd)),
        )
        .chain(derived.listens.iter().map(|l| l.fd))
        .max()
        .map_or(3, |m| m.saturating_add(1).max(3))
}

/// Where the broker is: next to `self_exe` when a file is there, else the
/// bare name (looked up on `PATH` by `execvp`).
pub fn broker_path(self_exe: &Path, exists: impl Fn(&Path) -> bool) -> PathBuf {
    self_exe
        .parent()
        .map(|d| d.join(BROKER))
        .filter(|p| exists(p))
        .unwrap_or_else(|| PathBuf::from(BROKER))
}

/// Replaces this process with the broker; returns only on failure.
/// `cfg` must have absolute paths; `args` are our own arguments, unchanged.
pub fn exec(
    cfg: &MachineConfig,
    args: &[OsString],
    activation: Option<&Activation>,
) -> ReexecError {
    match try_exec(cfg, args, activation) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(
    cfg: &MachineConfig,
    args: &[OsString],
    activation: Option<&Activation>,
) -> Result<std::convert::Infallible, ReexecError> {
    let derived = derived_policy::derive(cfg)?;
    let pass = derived_policy::passthrough_fds(cfg);
    let self_exe = std::env::current_exe().map_err(ReexecError::SelfExe)?;
    let broker = broker_path(&self_exe, |p| rustix::fs::stat(p).is_ok());

    let memfd =
        rustix::fs::memfd_create("openhook-derived-policy", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| ReexecError::Memfd(e.into()))?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(derived.toml.as_bytes())
        .map_err(ReexecError::Memfd)?;
    let floor = policy_fd_floor(&pass, activation, &derived);
    let policy = rustix::io::fcntl_dupfd_cloexec(file.as_fd(), floor)
        .map_err(|e| ReexecError::Memfd(e.into()))?;
    drop(file);
    // The broker inherits it across execve (and closes it once read).
    rustix::io::fcntl_setfd(&policy, rustix::io::FdFlags::empty())
        .map_err(|e| ReexecError::Memfd(e.into()))?;

    let argv = broker_args(policy.as_raw_fd(), &pass, &self_exe, args);
    let err = std::process::Command::new(&broker)
        .arg0(BROKER)
        .args(&argv)
        .exec();
    Err(ReexecError::Exec {
        broker,
        source: err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fds::activation::ActivatedFd;

    #[test]
    fn broker_argv() {
        let a = broker_args(
            13,
            &[3, 12],
            Path::new("/opt/oh/openhook-emulator"),
            &["-m".into(), "16".into()],
        );
        assert_eq!(
            a,
            [
                "--policy-fd",
                "13",
                "--pass-fd",
                "3",
                "--pass-fd",
                "12",
                "--",
                "/opt/oh/openhook-emulator",
                "-m",
                "16"
            ]
        );
    }

    #[test]
    fn policy_fd_avoids_every_named_number() {
        let d = DerivedPolicy {
            toml: String::new(),
            listens: vec![],
        };
        assert_eq!(policy_fd_floor(&[], None, &d), 3);
        assert_eq!(policy_fd_floor(&[3, 12], None, &d), 13);
        let act = Activation {
            fds: vec![
                ActivatedFd { fd: 3, name: None },
                ActivatedFd { fd: 4, name: None },
            ],
        };
        assert_eq!(policy_fd_floor(&[], Some(&act), &d), 5);
        let d = DerivedPolicy {
            toml: String::new(),
            listens: vec![derived_policy::DerivedListen {
                chardev: "m".into(),
                path: "/s".into(),
                fd: 10,
            }],
        };
        assert_eq!(policy_fd_floor(&[3], Some(&act), &d), 11);
    }

    #[test]
    fn broker_next_to_us_else_path() {
        let me = Path::new("/opt/oh/bin/openhook-emulator");
        assert_eq!(
            broker_path(me, |_| true),
            PathBuf::from("/opt/oh/bin/openhook-broker")
        );
        assert_eq!(broker_path(me, |_| false), PathBuf::from(BROKER));
    }
}
