//! Spawning the program: the hook socketpair, the fd plan (declared fds at
//! their numbers plus the hook fd), `-open-hook-fd N` appended, PATH lookup
//! done in the parent, the sandbox's pre-exec hardening prepared before the
//! fork (`hardening.rs` maps the policy's `[sandbox]` table). The fork/exec
//! itself is in `sys.rs`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use openhook_sandbox::{PreExec, SandboxError, SandboxPolicy};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::process::Pid;

use super::sys::{self, ExecPlan, ForkExecError};

/// What to run and which fds it gets.
pub struct LaunchSpec<'a> {
    /// The program: a path, or a name looked up in `PATH`.
    pub program: OsString,
    /// Its arguments (argv[1..]); `-open-hook-fd N` is appended.
    pub args: Vec<OsString>,
    /// The environment `PATH` is looked up in, `(key, value)`. The child
    /// itself gets only the hardening's scrubbed environment: the
    /// variables of `sandbox.env_keep` that are set in the broker's own
    /// environment (`PreExec::env`).
    pub env: Vec<(OsString, OsString)>,
    /// fds it inherits, each at the given number (at least 3, distinct).
    pub declared: Vec<(BorrowedFd<'a>, RawFd)>,
    /// The pre-exec hardening (from the policy's `[sandbox]` table via
    /// [`super::hardening::sandbox_policy`]). Mode `off` still closes
    /// undeclared fds and scrubs the environment, and says so on stderr.
    pub sandbox: SandboxPolicy,
    /// A socket activation to hand on: its fds must be among `declared`
    /// at their numbers; the child gets `LISTEN_FDS`/`LISTEN_FDNAMES` as
    /// given and `LISTEN_PID` = its own pid.
    pub activation: Option<crate::activation::Activation>,
    /// Kill the child when the broker dies (direct launch: the launcher
    /// knows only the broker's pid). Otherwise the guest outlives a dead
    /// broker and only its later opens fail.
    pub die_with_broker: bool,
    /// Transparent mode: the program is not told of any hook (no
    /// `-open-hook-fd`); the child loads the notifying seccomp filter last
    /// and the broker serves its listener instead of a hook socket.
    pub transparent: bool,
}

/// Why the program could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A declared fd number is below 3 or given twice.
    #[error("declared fd number {0} is invalid (must be at least 3 and unique)")]
    BadTarget(RawFd),
    /// The program was not found in `PATH` (or at its path).
    #[error("{}: command not found", .0.display())]
    NotFound(PathBuf),
    /// Creating the hook socketpair failed.
    #[error("creating the hook socketpair: {0}")]
    Socketpair(#[source] io::Error),
    /// Building argv/envp failed (a NUL byte).
    #[error("{0}")]
    Args(#[source] io::Error),
    /// Preparing the pre-exec hardening failed (e.g. an unknown
    /// `[sandbox] user`, or the mode is `require` and a layer is missing).
    #[error("sandbox: {0}")]
    Sandbox(#[source] SandboxError),
    /// The transparent child's seccomp listener did not arrive.
    #[error("receiving the seccomp listener: {0}")]
    Listener(String),
    /// fork/exec failed.
    #[error("{program}: {source}")]
    Exec {
        /// The program.
        program: PathBuf,
        /// What failed.
        #[source]
        source: ForkExecError,
    },
}

impl SpawnError {
    /// Exit status the broker uses for this failure: 127 not found,
    /// 126 found but not executable, 125 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::Exec {
                source:
                    ForkExecError::Child {
                        step: sys::ChildStep::Exec,
                        errno,
                        ..
                    },
                ..
            } => {
                if *errno == libc::ENOENT {
                    127
                } else {
                    126
                }
            }
            _ => 125,
        }
    }
}

/// A running child and the broker's end of its channel.
pub struct Spawned {
    /// The child's pid.
    pub pid: Pid,
    /// Hook mode: the broker's end of the hook socketpair. Transparent
    /// mode: the seccomp listener of the child's filter.
    pub channel: Channel,
    /// The number the child got the hook fd at (transparent mode: the
    /// number the listener socket had until the child closed it).
    pub hook_fd: RawFd,
    /// Hook mode: the child's `execve`, still to be confirmed with
    /// [`Spawned::exec_done`] (the broker confines itself meanwhile).
    pending: Option<(sys::Forked, PathBuf)>,
}

impl Spawned {
    /// Waits until the child's `execve` succeeded; on failure the child
    /// has been reaped and the step that failed is in the error.
    pub fn exec_done(&mut self) -> Result<(), SpawnError> {
        match self.pending.take() {
            Some((forked, program)) => forked
                .wait_exec()
                .map(|_| ())
                .map_err(|source| SpawnError::Exec { program, source }),
            None => Ok(()),
        }
    }
}

/// What the broker serves.
#[derive(Debug)]
pub enum Channel {
    /// The `-open-hook-fd` socket.
    Hook(OwnedFd),
    /// A seccomp user-notification listener.
    Listener(OwnedFd),
}

/// The hook fd number: the lowest number ≥ 3 that no declared fd uses.
pub fn choose_hook_fd(targets: &[RawFd]) -> RawFd {
    let mut n = 3;
    while targets.contains(&n) {
        n += 1;
    }
    n
}

/// Declared targets must be ≥ 3 and distinct.
pub fn check_targets(targets: &[RawFd]) -> Result<(), SpawnError> {
    for (i, &t) in targets.iter().enumerate() {
        if t < 3 || targets[..i].contains(&t) {
            return Err(SpawnError::BadTarget(t));
        }
    }
    Ok(())
}

/// The program's path: as given when it contains a `/`, else the first
/// executable regular file named `program` in the `PATH` directories.
pub fn resolve_program(program: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, SpawnError> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let dirs = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    for dir in dirs.as_bytes().split(|&b| b == b':') {
        let dir: &Path = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(program);
        let is_file = rustix::fs::stat(&candidate)
            .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file())
            .unwrap_or(false);
        if is_file && rustix::fs::access(&candidate, rustix::fs::Access::EXEC_OK).is_ok() {
            return Ok(candidate);
        }
    }
    Err(SpawnError::NotFound(PathBuf::from(program)))
}

/// `argv` for the child: program, args, `-open-hook-fd`, `N`.
pub fn child_argv(program: &OsStr, args: &[OsString], hook_fd: RawFd) -> Vec<OsString> {
    let mut argv = Vec::with_capacity(args.len() + 3);
    argv.push(program.to_os_string());
    argv.extend(args.iter().cloned());
    argv.push("-open-hook-fd".into());
    argv.push(hook_fd.to_string().into());
    argv
}

/// Create the hook socketpair and start the program with only the declared
/// fds and the hook fd inherited. Call while the broker is single-threaded.
pub fn spawn(spec: &LaunchSpec<'_>) -> Result<Spawned, SpawnError> {
    let targets: Vec<RawFd> = spec.declared.iter().map(|&(_, t)| t).collect();
    check_targets(&targets)?;
    let hook_fd = choose_hook_fd(&targets);
    let path_var = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let path = resolve_program(&spec.program, path_var)?;

    let (broker_end, child_end) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| SpawnError::Socketpair(e.into()))?;

    let argv = if spec.transparent {
        std::iter::once(spec.program.clone())
            .chain(spec.args.iter().cloned())
            .collect()
    } else {
        child_argv(&spec.program, &spec.args, hook_fd)
    };
    let argv: Vec<&OsStr> = argv.iter().map(|a| a.as_os_str()).collect();
    let mut moves = spec.declared.clone();
    moves.push((child_end.as_fd(), hook_fd));

    let mut plan = ExecPlan::new(path.as_os_str(), &argv, &moves).map_err(SpawnError::Args)?;
    plan.die_with_broker(spec.die_with_broker);
    let pre = if spec.transparent {
        PreExec::prepare_transparent(&spec.sandbox, &path, &plan.child_fds(), hook_fd)
    } else {
        PreExec::prepare(&spec.sandbox, &path, &plan.child_fds())
    }
    .map_err(SpawnError::Sandbox)?;
    let env = child_env(spec, &pre);
    let env: Vec<&OsStr> = env.iter().map(|e| e.as_os_str()).collect();
    plan.set_env(&env).map_err(SpawnError::Args)?;
    if spec.activation.is_some() {
        plan.add_listen_pid();
    }
    if let Some(fd) = pre.reserved_fd().filter(|&fd| plan.is_target(fd)) {
        // prepare() places it above every kept fd; a target here is a bug.
        return Err(SpawnError::Sandbox(SandboxError::PreExec(format!(
            "the hardening's reserved fd {fd} is a declared fd number"
        ))));
    }
    let exec_err = |source| SpawnError::Exec {
        program: path.clone(),
        source,
    };
    let forked = sys::fork_child(plan, &pre).map_err(exec_err)?;
    let pid = forked.pid();
    // Transparent mode takes the listener the child sends before its
    // execve, so it waits for the exec here; hook mode confirms it later.
    let pending = if spec.transparent {
        forked.wait_exec().map_err(exec_err)?;
        None
    } else {
        Some((forked, path.clone()))
    };
    let channel = if spec.transparent {
        Channel::Listener(receive_listener(&broker_end).map_err(|e| {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            SpawnError::Listener(e)
        })?)
    } else {
        Channel::Hook(broker_end)
    };
    Ok(Spawned {
        pid,
        channel,
        hook_fd,
        pending,
    })
}

/// The child's environment, as `KEY=VALUE` entries: the hardening's
/// scrubbed one, plus the policy's sandbox mode for the emulator
/// (`openhook_sandbox::MODE_ENV`) and a socket activation's `LISTEN_FDS` /
/// `LISTEN_FDNAMES` (`LISTEN_PID` is filled in by the child).
fn child_env(spec: &LaunchSpec<'_>, pre: &PreExec) -> Vec<OsString> {
    let mode_env = (
        OsString::from(openhook_sandbox::MODE_ENV),
        OsString::from(spec.sandbox.mode.to_string()),
    );
    let mut extra = vec![mode_env];
    if let Some(a) = &spec.activation {
        extra.push(("LISTEN_FDS".into(), a.count.to_string().into()));
        if let Some(names) = &a.names {
            extra.push(("LISTEN_FDNAMES".into(), names.clone()));
        }
    }
    pre.env()
        .iter()
        .filter(|(k, _)| {
            k != openhook_sandbox::MODE_ENV
                && !["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]
                    .contains(&k.to_str().unwrap_or(""))
        })
        .chain(extra.iter())
        .map(|(k, v)| {
            let mut e = k.clone();
            e.push("=");
            e.push(v);
            e
        })
        .collect()
}

/// The listener the child sent before `execve` (already in the socket:
/// the exec succeeded only after the send).
fn receive_listener(sock: &OwnedFd) -> Result<OwnedFd, String> {
    let mut byte = [0u8; 1];
    let got = openhook_wire::scm::recv_with_fds(sock, &mut byte, 1).map_err(|e| e.to_string())?;
    got.fds
        .into_iter()
        .next()
        .ok_or_else(|| "the child sent no fd".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_fd_avoids_declared_numbers() {
        assert_eq!(choose_hook_fd(&[]), 3);
        assert_eq!(choose_hook_fd(&[10, 11]), 3);
        assert_eq!(choose_hook_fd(&[3, 4, 6]), 5);
    }

    #[test]
    fn targets_must_be_above_stdio_and_unique() {
        assert!(check_targets(&[3, 10, 11]).is_ok());
        assert!(matches!(check_targets(&[2]), Err(SpawnError::BadTarget(2))));
        assert!(matches!(
            check_targets(&[10, 10]),
            Err(SpawnError::BadTarget(10))
        ));
    }

    #[test]
    fn argv_gets_the_hook_option_appended() {
        let argv = child_argv(OsStr::new("emu"), &["-m".into(), "64".into()], 3);
        assert_eq!(argv, ["emu", "-m", "64", "-open-hook-fd", "3"]);
    }

    #[test]
    fn path_lookup() {
        let sh = resolve_program(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin:/usr/bin")),
        )
        .unwrap();
        assert!(sh.ends_with("sh"));
        assert!(matches!(
            resolve_program(OsStr::new("no-such-program-xyz"), Some(OsStr::new("/bin"))),
            Err(SpawnError::NotFound(_))
        ));
        assert_eq!(
            resolve_program(OsStr::new("./x"), None).unwrap(),
            PathBuf::from("./x")
        );
    }
}
