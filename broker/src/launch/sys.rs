//! The unsafe edge of launching: fork + exec with the child-side steps, the
//! signal mask, and `sigwait`.
//!
//! Between `fork` and `execve` the child runs only async-signal-safe code:
//! every buffer it touches (argv, envp, the fd plan, the scratch array for
//! fd copies) is allocated by [`ExecPlan::new`] before the fork, and the
//! child makes raw system calls only: no allocation, no locks, no logging.
//! The broker must still be single-threaded when it calls [`fork_child`]
//! (the serve thread starts afterwards).
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;

use openhook_sandbox::{ChildStep as SandboxStep, PreExec};
use rustix::process::Pid;

/// `CLOSE_RANGE_CLOEXEC` (Linux 5.11): mark the range close-on-exec
/// instead of closing it.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Which child-side step failed (reported to the parent with the errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ChildStep {
    /// Resetting the signal mask and SIGPIPE.
    Signals = 1,
    /// `PR_SET_PDEATHSIG`, or the broker died before it took effect.
    ParentDeath = 2,
    /// Copying a declared fd out of the way (`F_DUPFD_CLOEXEC`).
    DupHigh = 3,
    /// Placing a declared fd at its number (`dup2`).
    Dup2 = 4,
    /// Marking every other fd close-on-exec (`close_range`).
    CloseRange = 5,
    /// The sandbox's pre-exec hardening.
    Sandbox = 6,
    /// `execve` itself.
    Exec = 7,
}

impl ChildStep {
    fn from_raw(n: i32) -> Option<ChildStep> {
        [
            ChildStep::Signals,
            ChildStep::ParentDeath,
            ChildStep::DupHigh,
            ChildStep::Dup2,
            ChildStep::CloseRange,
            ChildStep::Sandbox,
            ChildStep::Exec,
        ]
        .into_iter()
        .find(|s| *s as i32 == n)
    }

    /// What the step does, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            ChildStep::Signals => "resetting signals",
            ChildStep::ParentDeath => "arming the parent-death signal",
            ChildStep::DupHigh => "copying a declared fd",
            ChildStep::Dup2 => "placing a declared fd at its number",
            ChildStep::CloseRange => "closing inherited fds",
            ChildStep::Sandbox => "entering the pre-exec sandbox",
            ChildStep::Exec => "executing the program",
        }
    }
}

/// Why the child did not reach the program.
#[derive(Debug, thiserror::Error)]
pub enum ForkExecError {
    /// A preparation step in the parent failed.
    #[error("{what}: {source}")]
    Parent {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A child-side step failed; the child has been reaped.
    #[error("{}{}: {}", .step.describe(), .sandbox.map(|s| format!(" (step {s:?})")).unwrap_or_default(), io::Error::from_raw_os_error(*.errno))]
    Child {
        /// The step.
        step: ChildStep,
        /// Its errno.
        errno: i32,
        /// For [`ChildStep::Sandbox`]: which hardening step failed.
        sandbox: Option<SandboxStep>,
    },
}

fn parent_err(what: &'static str) -> impl FnOnce(io::Error) -> ForkExecError {
    move |source| ForkExecError::Parent { what, source }
}

/// Everything the child needs, allocated before the fork.
pub struct ExecPlan {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    /// (fd in the broker, number in the child).
    moves: Vec<(RawFd, RawFd)>,
    /// Scratch for the child's out-of-the-way copies; `moves.len()` long.
    high: Vec<RawFd>,
    /// The child's kept numbers above 2, ascending.
    keep: Vec<RawFd>,
    /// Copies are made at or above this (greater than every target).
    high_base: RawFd,
    parent: libc::pid_t,
    /// Arm `PR_SET_PDEATHSIG(SIGKILL)` in the child ([`ExecPlan::die_with_broker`]).
    die_with_broker: bool,
    empty_mask: libc::sigset_t,
    /// The exec-status pipe: EOF on the read end means `execve` succeeded.
    report_r: OwnedFd,
    /// Its write end, above every target, close-on-exec; the hardening
    /// keeps it open so a failed `execve` can still be reported.
    report_w: OwnedFd,
    /// `LISTEN_PID=<child pid>`: an envp entry the child fills in after
    /// the fork, when an activation is handed on ([`ExecPlan::add_listen_pid`]).
    listen_pid: Option<Box<[u8; LISTEN_PID_BUF]>>,
}

const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";
/// The prefix, at most 10 digits and the NUL.
const LISTEN_PID_BUF: usize = 32;

/// Writes `LISTEN_PID=<pid>` and a NUL into `buf` (no allocation: called
/// in the child between fork and exec).
fn write_listen_pid(buf: &mut [u8; LISTEN_PID_BUF], pid: libc::pid_t) {
    buf[..LISTEN_PID_PREFIX.len()].copy_from_slice(LISTEN_PID_PREFIX);
    let mut digits = [0u8; 12];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        // n % 10 < 10: the cast cannot truncate.
        digits[len] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        len += 1;
        n /= 10;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    let mut at = LISTEN_PID_PREFIX.len();
    for d in digits[..len].iter().rev() {
        buf[at] = *d;
        at += 1;
    }
    buf[at] = 0;
}

/// The sandbox's child steps, in the order the status pipe encodes them
/// (index + 1; 0 means no sandbox step).
const SANDBOX_STEPS: [SandboxStep; 11] = [
    SandboxStep::Rlimits,
    SandboxStep::Namespaces,
    SandboxStep::UserMaps,
    SandboxStep::EmptyRoot,
    SandboxStep::BoundingSet,
    SandboxStep::SwitchUser,
    SandboxStep::NoNewPrivs,
    SandboxStep::Capabilities,
    SandboxStep::Landlock,
    SandboxStep::CloseFds,
    SandboxStep::Notify,
];

fn sandbox_step_code(step: SandboxStep) -> i32 {
    SANDBOX_STEPS
        .iter()
        .position(|s| *s == step)
        .and_then(|i| i32::try_from(i + 1).ok())
        .unwrap_or(0)
}

fn sandbox_step_from_code(code: i32) -> Option<SandboxStep> {
    let i = usize::try_from(code).ok()?.checked_sub(1)?;
    SANDBOX_STEPS.get(i).copied()
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("argument or environment entry contains a NUL byte: {s:?}"),
        )
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl ExecPlan {
    /// `path`: the program (already resolved, no PATH search in the
    /// child); `argv` including argv[0]; `moves`: each fd and the number it
    /// must have in the child. Targets must be distinct and at least 3
    /// (checked by the caller). The environment starts empty
    /// ([`ExecPlan::set_env`]).
    pub fn new(
        path: &OsStr,
        argv: &[&OsStr],
        moves: &[(BorrowedFd<'_>, RawFd)],
    ) -> io::Result<ExecPlan> {
        let env: &[&OsStr] = &[];
        let path = cstring(path)?;
        let argv = argv
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = env
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<Vec<_>>>()?;
        let argv_ptrs = null_terminated(&argv);
        let envp_ptrs = null_terminated(&envp);
        let mut keep: Vec<RawFd> = moves.iter().map(|&(_, t)| t).collect();
        keep.sort_unstable();
        let high_base = keep.last().copied().unwrap_or(2).saturating_add(1);
        let (report_r, report_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // Keep the report pipe above every target number, so that placing
        // the declared fds can never overwrite it.
        let report_w = rustix::io::fcntl_dupfd_cloexec(&report_w, high_base)?;
        Ok(ExecPlan {
            path,
            _argv: argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
            moves: moves.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect(),
            high: vec![-1; moves.len()],
            keep,
            high_base,
            parent: rustix::process::getpid().as_raw_nonzero().get(),
            die_with_broker: false,
            empty_mask: empty_sigset()?,
            report_r,
            report_w,
            listen_pid: None,
        })
    }

    /// The child gets SIGKILL when the broker dies. Off by default: a
    /// broker's death must not take a running guest down (the emulator
    /// keeps its files; later opens fail). On for a direct launch, where
    /// the pid the launcher knows and kills is the broker's.
    pub fn die_with_broker(&mut self, on: bool) {
        self.die_with_broker = on;
    }

    /// Adds a `LISTEN_PID` entry to the environment (after [`set_env`]),
    /// holding the child's own pid: the child writes it after the fork.
    ///
    /// [`set_env`]: ExecPlan::set_env
    pub fn add_listen_pid(&mut self) {
        let mut buf = Box::new([0u8; LISTEN_PID_BUF]);
        write_listen_pid(&mut buf, 0);
        // The terminating null stays last.
        let at = self.envp_ptrs.len().saturating_sub(1);
        self.envp_ptrs.insert(at, buf.as_ptr().cast());
        self.listen_pid = Some(buf);
    }

    /// The child's environment, as `KEY=VALUE` entries.
    pub fn set_env(&mut self, env: &[&OsStr]) -> io::Result<()> {
        let envp = env
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<Vec<_>>>()?;
        self.envp_ptrs = null_terminated(&envp);
        self._envp = envp;
        self.listen_pid = None;
        Ok(())
    }

    /// The fd numbers the child holds open up to `execve`: the targets and
    /// the (close-on-exec) status pipe. The pre-exec hardening must keep
    /// exactly these.
    pub fn child_fds(&self) -> Vec<RawFd> {
        let mut fds = self.keep.clone();
        fds.push(self.report_w.as_raw_fd());
        fds
    }

    /// Whether `fd` is a number the child places a declared fd at.
    pub fn is_target(&self, fd: RawFd) -> bool {
        self.keep.contains(&fd)
    }
}

fn empty_sigset() -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set it is given a pointer to.
    if unsafe { libc::sigemptyset(set.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by sigemptyset just above.
    Ok(unsafe { set.assume_init() })
}

fn sigset_of(signals: &[i32]) -> io::Result<libc::sigset_t> {
    let mut set = empty_sigset()?;
    for &sig in signals {
        // SAFETY: `set` is an initialised sigset_t; sigaddset only writes it.
        if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(set)
}

/// Block `signals` in the calling thread (and so in every thread it
/// creates afterwards), so that [`wait_signal`] can take them.
pub fn block_signals(signals: &[i32]) -> io::Result<()> {
    let set = sigset_of(signals)?;
    // SAFETY: `set` is a valid sigset_t; a null old-set pointer is allowed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Restore the default disposition of `sig` (e.g. SIGCHLD, which a parent
/// may have left ignored, which would make the kernel reap our child).
pub fn default_disposition(sig: i32) -> io::Result<()> {
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    if unsafe { libc::signal(sig, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until one of `signals` (blocked with [`block_signals`]) is pending
/// and take it.
pub fn wait_signal(signals: &[i32]) -> io::Result<i32> {
    let set = sigset_of(signals)?;
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is a valid sigset_t and `sig` a valid out-pointer.
    let r = unsafe { libc::sigwait(&set, &mut sig) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(sig)
}

fn errno() -> i32 {
    // No allocation: the OS variant of io::Error holds just the code.
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A child forked by [`fork_child`] whose `execve` is not yet confirmed.
pub struct Forked {
    pid: Pid,
    report: OwnedFd,
}

impl Forked {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits until the child's `execve` succeeded (EOF on the report pipe)
    /// or reports the step that failed (the child is reaped then).
    pub fn wait_exec(self) -> Result<Pid, ForkExecError> {
        read_report(self.report, self.pid)
    }
}

/// Fork; the child runs [`child_steps`] (ending with `hardening`) and
/// `execve`s the plan's program. Returns at once with the child's pid and
/// the report pipe: [`Forked::wait_exec`] returns once `execve` has
/// succeeded (the close-on-exec pipe tells), or the step that failed in
/// the child, so the parent can do its own work (the broker confines
/// itself) meanwhile. `hardening` must have been prepared with
/// [`ExecPlan::child_fds`] as the fds to keep, and its reserved fd must
/// not be a target.
pub fn fork_child(mut plan: ExecPlan, hardening: &PreExec) -> Result<Forked, ForkExecError> {
    let report_raw = plan.report_w.as_raw_fd();

    let pid = if hardening.new_pid_namespace() {
        clone_into_new_pid_namespace()
    } else {
        // SAFETY: the broker is single-threaded here (documented contract
        // of this module), and the child only runs `child_main`, which is
        // async-signal-safe and never returns.
        unsafe { libc::fork() }
    };
    if pid < 0 {
        return Err(parent_err("fork")(io::Error::last_os_error()));
    }
    if pid == 0 {
        child_main(&mut plan, hardening, report_raw);
    }
    let ExecPlan {
        report_r, report_w, ..
    } = plan;
    drop(report_w);
    let child = Pid::from_raw(pid).ok_or_else(|| parent_err("fork")(io::Error::other("pid 0")))?;
    Ok(Forked {
        pid: child,
        report: report_r,
    })
}

/// `fork`, but the child is pid 1 of a new pid namespace. `clone3` rather
/// than `unshare(CLONE_NEWPID)` in the broker: after that unshare the
/// kernel refuses to create threads in the broker (its serve thread).
/// Returns what `fork` would: 0 in the child, the child's pid (in the
/// broker's namespace) in the parent, -1 with errno set on failure.
fn clone_into_new_pid_namespace() -> libc::pid_t {
    let args = libc::clone_args {
        flags: u64::try_from(libc::CLONE_NEWPID).unwrap_or(0),
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: u64::try_from(libc::SIGCHLD).unwrap_or(0),
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    // SAFETY: like `fork` above: no CLONE_VM, so the child gets a copy of
    // the address space and continues here; the broker is single-threaded
    // and the child only runs the async-signal-safe `child_main`. `args`
    // is a valid clone_args of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    libc::pid_t::try_from(r).unwrap_or(-1)
}

/// Parent side: EOF on the pipe means `execve` succeeded.
fn read_report(report: OwnedFd, child: Pid) -> Result<Pid, ForkExecError> {
    let mut buf = [0u8; 12];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(&report, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(parent_err("reading the exec status")(e.into())),
        }
    }
    if got == 0 {
        return Ok(child);
    }
    // The child failed before or at execve: reap it, report why.
    let _ = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty());
    let word = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&buf[i * 4..i * 4 + 4]);
        i32::from_ne_bytes(w)
    };
    Err(ForkExecError::Child {
        step: ChildStep::from_raw(word(0)).unwrap_or(ChildStep::Exec),
        errno: word(1),
        sandbox: sandbox_step_from_code(word(2)),
    })
}

/// Child side of the fork. Never returns.
fn child_main(plan: &mut ExecPlan, hardening: &PreExec, report: RawFd) -> ! {
    let (step, err, detail) = match child_steps(plan, hardening) {
        Err(failed) => failed,
        Ok(()) => {
            // SAFETY: path, argv and envp are NUL-terminated strings and
            // null-terminated pointer arrays kept alive by `plan`.
            unsafe {
                libc::execve(
                    plan.path.as_ptr(),
                    plan.argv_ptrs.as_ptr(),
                    plan.envp_ptrs.as_ptr(),
                )
            };
            (ChildStep::Exec, errno(), 0)
        }
    };
    let mut msg = [0u8; 12];
    msg[..4].copy_from_slice(&(step as i32).to_ne_bytes());
    msg[4..8].copy_from_slice(&err.to_ne_bytes());
    msg[8..].copy_from_slice(&detail.to_ne_bytes());
    // SAFETY: `report` is the open write end of the status pipe and `msg`
    // is a valid 12-byte buffer; write(2) is async-signal-safe. A 12-byte
    // pipe write is atomic.
    let _ = unsafe { libc::write(report, msg.as_ptr().cast(), msg.len()) };
    // SAFETY: _exit ends the child without running any parent state's
    // destructors or atexit handlers.
    unsafe { libc::_exit(127) }
}

// ---------------------------------------------------------------------
// CHILD-SIDE STEPS (between fork and exec): async-signal-safe only.
// The sandbox's pre-exec hardening is step 5.
// Errors: (step, errno, sandbox step code or 0).
// ---------------------------------------------------------------------
fn child_steps(plan: &mut ExecPlan, hardening: &PreExec) -> Result<(), (ChildStep, i32, i32)> {
    base_steps(plan, hardening.new_pid_namespace()).map_err(|(step, errno)| (step, errno, 0))?;
    // 5. Sandbox pre-exec hardening (async-signal-safe: raw syscalls on
    //    data prepared before the fork): rlimits, namespaces, user switch,
    //    no_new_privs, capabilities, exec Landlock domain, and close_range
    //    over every fd but 0-2, the targets and the status pipe.
    hardening.apply_in_child().map_err(|e| {
        (
            ChildStep::Sandbox,
            e.errno.raw_os_error(),
            sandbox_step_code(e.step),
        )
    })
}

fn base_steps(plan: &mut ExecPlan, new_pid_ns: bool) -> Result<(), (ChildStep, i32)> {
    // 1. Signals: the broker blocks SIGINT/SIGTERM/SIGCHLD and Rust ignores
    //    SIGPIPE; neither may leak into the program.
    // SAFETY: `empty_mask` is an initialised sigset_t; sigprocmask is
    // async-signal-safe.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &plan.empty_mask, std::ptr::null_mut()) } != 0
    {
        return Err((ChildStep::Signals, errno()));
    }
    // SAFETY: installing SIG_DFL; signal(2) is async-signal-safe.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err((ChildStep::Signals, errno()));
    }

    // 2. If asked, die with the broker; if it is already gone, stop here.
    if plan.die_with_broker {
        // SAFETY: PR_SET_PDEATHSIG takes a signal number; prctl is a plain
        // syscall.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
            return Err((ChildStep::ParentDeath, errno()));
        }
    }
    // In a new pid namespace the broker is outside it and getppid() is 0
    // while the broker lives; the window before this check then goes
    // unchecked (the broker is blocked reading the report pipe).
    let expected_parent = if new_pid_ns { 0 } else { plan.parent };
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != expected_parent {
        return Err((ChildStep::ParentDeath, libc::ESRCH));
    }

    // 3. Declared fds and the hook fd at their numbers: first copy every
    //    source above all targets (so no placement can clobber a source not
    //    yet placed), then dup2 each copy to its target (dup2 clears
    //    close-on-exec on the target only).
    for (i, &(src, _)) in plan.moves.iter().enumerate() {
        // SAFETY: F_DUPFD_CLOEXEC on an fd number; fails with EBADF if it
        // is not open.
        let high = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, plan.high_base) };
        if high < 0 {
            return Err((ChildStep::DupHigh, errno()));
        }
        plan.high[i] = high;
    }
    for (i, &(_, target)) in plan.moves.iter().enumerate() {
        // SAFETY: `high[i]` is open (step above); dup2 atomically replaces
        // whatever `target` was.
        if unsafe { libc::dup2(plan.high[i], target) } < 0 {
            return Err((ChildStep::Dup2, errno()));
        }
    }

    // 4. Every other fd above 2 (the copies, the broker's own fds) becomes
    //    close-on-exec. CLOEXEC rather than close: the status pipe must
    //    survive until execve.
    let mut first: RawFd = 3;
    for &kept in &plan.keep {
        if kept > first {
            mark_cloexec(first, kept - 1)?;
        }
        first = kept.saturating_add(1);
    }
    mark_cloexec(first, RawFd::MAX)?;

    // 5. A handed-on socket activation names this process: its pid is
    //    known only now. The buffer's address is already in envp.
    if let Some(buf) = plan.listen_pid.as_mut() {
        // SAFETY: getpid has no preconditions.
        write_listen_pid(buf, unsafe { libc::getpid() });
    }
    Ok(())
}

fn mark_cloexec(first: RawFd, last: RawFd) -> Result<(), (ChildStep, i32)> {
    let (Ok(first), Ok(last)) = (libc::c_uint::try_from(first), libc::c_uint::try_from(last))
    else {
        return Err((ChildStep::CloseRange, libc::EINVAL));
    };
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on open
    // fds in the range; no fd is closed, so nothing we hold is invalidated.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        return Err((ChildStep::CloseRange, errno()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_pid_entry() {
        let mut buf = [0xffu8; LISTEN_PID_BUF];
        for (pid, want) in [
            (0, "LISTEN_PID=0"),
            (7, "LISTEN_PID=7"),
            (4_194_304, "LISTEN_PID=4194304"),
            (libc::pid_t::MAX, "LISTEN_PID=2147483647"),
        ] {
            write_listen_pid(&mut buf, pid);
            let end = buf.iter().position(|&b| b == 0).unwrap();
            assert_eq!(&buf[..end], want.as_bytes());
        }
    }

    #[test]
    fn sandbox_steps_round_trip_through_the_status_code() {
        for step in SANDBOX_STEPS {
            let code = sandbox_step_code(step);
            assert_ne!(code, 0);
            assert_eq!(sandbox_step_from_code(code), Some(step));
        }
        assert_eq!(sandbox_step_from_code(0), None);
        assert_eq!(sandbox_step_from_code(-1), None);
        let past_last = i32::try_from(SANDBOX_STEPS.len() + 1).expect("small");
        assert_eq!(sandbox_step_from_code(past_last), None);
    }

    #[test]
    fn child_errors_name_the_sandbox_step() {
        let e = ForkExecError::Child {
            step: ChildStep::Sandbox,
            errno: libc::EPERM,
            sandbox: Some(SandboxStep::Landlock),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("entering the pre-exec sandbox (step Landlock): "),
            "{text}"
        );
    }
}
