//! Pre-exec hardening of the broker's child.
//!
//! [`PreExec::prepare`] runs in the broker before fork and does everything
//! that allocates, opens paths or looks things up: the kept-fd ranges, the
//! scrubbed environment, the user to switch to, namespace mount plans as C
//! strings, and the exec Landlock ruleset fd. [`PreExec::apply_in_child`]
//! runs between fork and exec and is **async-signal-safe**: it only walks
//! the prepared data and makes raw syscalls (`sys::child`), no allocation,
//! no locks, no logging.
//!
//! Child order (each step named in [`ChildStep`] when it fails):
//! rlimits → namespaces (+ empty root) when not in a user namespace →
//! bounding/ambient capabilities → uid/gid → user namespace (+ maps, empty
//! root, bounding again) → no_new_privs → capset(0) → Landlock → close fds.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustix::io::Errno;

use crate::error::SandboxError;
use crate::landlock;
use crate::mode::Mode;
use crate::sys;

/// Environment variables passed through by default (when set in the
/// broker's environment); everything else is dropped. `OPENHOOK_LOG` is
/// the log filter the broker and the emulator both read.
pub const DEFAULT_ENV_KEEP: &[&str] = &[
    "RUST_LOG",
    "RUST_BACKTRACE",
    "OPENHOOK_SECCOMP",
    "OPENHOOK_LOG",
    "TERM",
];

/// A namespace the child can be put in (`[sandbox] namespaces`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// New user namespace mapping only the child's own uid and gid.
    User,
    /// New pid namespace: the launcher creates the child in it (pid 1
    /// there) with `clone3(CLONE_NEWPID)`; see [`PreExec::new_pid_namespace`].
    Pid,
    /// New, empty network namespace (loopback down).
    Net,
    /// New System V IPC namespace.
    Ipc,
    /// New hostname namespace.
    Uts,
    /// New mount namespace whose root is an empty tmpfs holding read-only
    /// binds of what the exec needs.
    Mount,
}

impl FromStr for Namespace {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "user" => Self::User,
            "pid" => Self::Pid,
            "net" => Self::Net,
            "ipc" => Self::Ipc,
            "uts" => Self::Uts,
            "mount" => Self::Mount,
            other => {
                return Err(SandboxError::PreExec(format!(
                    "unknown namespace `{other}` (expected user, pid, net, ipc, uts or mount)"
                )))
            }
        })
    }
}

/// The `[sandbox]` table of the policy, as the broker's policy model hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// require | best-effort | off.
    pub mode: Mode,
    /// Switch to this user when the broker runs as root.
    pub user: Option<String>,
    /// Namespaces to create.
    pub namespaces: Vec<Namespace>,
    /// Environment variable names passed through; all others are dropped.
    pub env_keep: Vec<String>,
    /// RLIMIT_NOFILE (soft = hard).
    pub nofile: u64,
    /// RLIMIT_NPROC (soft = hard; counts threads of the user).
    pub nproc: u64,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            mode: Mode::Require,
            user: None,
            namespaces: Vec::new(),
            env_keep: DEFAULT_ENV_KEEP.iter().map(|s| (*s).to_string()).collect(),
            nofile: 1024,
            nproc: 4096,
        }
    }
}

/// A child step, named in [`ChildError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStep {
    /// setrlimit.
    Rlimits,
    /// unshare.
    Namespaces,
    /// uid_map / gid_map / setgroups.
    UserMaps,
    /// tmpfs root, binds, pivot_root.
    EmptyRoot,
    /// PR_CAPBSET_DROP / ambient clear.
    BoundingSet,
    /// setgroups/setresgid/setresuid.
    SwitchUser,
    /// PR_SET_NO_NEW_PRIVS.
    NoNewPrivs,
    /// capset to zero.
    Capabilities,
    /// landlock_restrict_self.
    Landlock,
    /// close_range.
    CloseFds,
    /// Transparent mode: loading the notifying seccomp filter and handing
    /// its listener to the broker.
    Notify,
}

/// A failed child step and its errno (`Copy`: no allocation in the child).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pre-exec step {step:?} failed: {errno}")]
pub struct ChildError {
    /// Which step.
    pub step: ChildStep,
    /// The errno.
    pub errno: Errno,
}

/// The transparent child's filter and where its listener goes.
#[derive(Debug)]
struct NotifyPlan {
    program: Vec<libc::sock_filter>,
    socket: i32,
}

/// `PT_INTERP` of `program`, read before the fork.
fn read_interpreter(program: &Path) -> Result<Option<PathBuf>, SandboxError> {
    use std::io::Read as _;
    // The headers are at the start; 64 KiB holds them for any real program.
    let mut bytes = Vec::with_capacity(64 << 10);
    // The sandbox crate reads the program once, to find what its exec needs.
    #[allow(clippy::disallowed_methods)]
    std::fs::File::open(program)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut bytes))
        .map_err(|e| SandboxError::PreExec(format!("{}: {e}", program.display())))?;
    crate::notify::elf::interpreter(&bytes)
        .map_err(|e| SandboxError::PreExec(format!("{}: {e}", program.display())))
}

/// A mount plan for the empty root.
#[derive(Debug)]
struct EmptyRoot {
    staging: CString,
    /// Directories to create under `staging`, parents first.
    mkdirs: Vec<CString>,
    /// (source, target under staging, is_dir).
    binds: Vec<(CString, CString, bool)>,
}

/// Everything the child needs, prepared before fork.
#[derive(Debug)]
pub struct PreExec {
    close: Vec<(libc::c_uint, libc::c_uint)>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    user: Option<(libc::uid_t, libc::gid_t)>,
    unshare_flags: libc::c_int,
    user_ns: bool,
    /// The launcher must create the child in a new pid namespace.
    pid_ns: bool,
    maps: Option<[(CString, Vec<u8>); 3]>,
    empty_root: Option<EmptyRoot>,
    bounding_may_fail: bool,
    landlock: Option<OwnedFd>,
    /// Transparent mode ([`PreExec::transparent`]).
    notify: Option<NotifyPlan>,
    env: Vec<(OsString, OsString)>,
    /// Mode `off`: only the fds are closed (the environment is scrubbed
    /// by the launcher); no privilege step runs.
    off: bool,
}

fn cstring(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| SandboxError::PreExec(format!("path {} contains NUL", p.display())))
}

/// The fd ranges the child closes: everything but 0–2 and `keep_fds`;
/// also the highest fd kept.
fn close_ranges(
    keep_fds: &[i32],
) -> Result<(Vec<(libc::c_uint, libc::c_uint)>, libc::c_uint), SandboxError> {
    let mut keep: Vec<libc::c_uint> = vec![0, 1, 2];
    for &fd in keep_fds {
        keep.push(
            libc::c_uint::try_from(fd)
                .map_err(|_| SandboxError::PreExec(format!("negative fd {fd} to keep")))?,
        );
    }
    keep.sort_unstable();
    keep.dedup();
    let mut close = Vec::new();
    let mut next = 0;
    for &k in &keep {
        if k > next {
            close.push((next, k - 1));
        }
        next = k + 1;
    }
    close.push((next, libc::c_uint::MAX));
    Ok((close, keep.last().copied().unwrap_or(2)))
}

/// The variables of `policy.env_keep` that are set, with their values.
fn kept_env(policy: &SandboxPolicy) -> Vec<(OsString, OsString)> {
    policy
        .env_keep
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
        .collect()
}

/// The (uid, gid) to switch to: only a root broker switches; a non-root
/// one may name only itself.
fn target_user(
    policy: &SandboxPolicy,
    euid: libc::uid_t,
) -> Result<Option<(libc::uid_t, libc::gid_t)>, SandboxError> {
    let Some(name) = &policy.user else {
        return Ok(None);
    };
    let (uid, gid) = sys::user::lookup(name)
        .ok_or_else(|| SandboxError::PreExec(format!("unknown user `{name}`")))?;
    if euid != 0 && uid != euid {
        return Err(SandboxError::PreExec(format!(
            "cannot switch to user `{name}`: the broker is not root"
        )));
    }
    Ok((euid == 0).then_some((uid, gid)))
}

/// The namespaces the child unshares (and whether the launcher clones it
/// into a new pid namespace).
struct NamespacePlan {
    flags: libc::c_int,
    user_ns: bool,
    pid_ns: bool,
    mount: bool,
}

impl NamespacePlan {
    fn new(policy: &SandboxPolicy, euid: libc::uid_t) -> Result<Self, SandboxError> {
        let mut plan = NamespacePlan {
            flags: 0,
            user_ns: false,
            pid_ns: false,
            mount: false,
        };
        for ns in &policy.namespaces {
            plan.flags |= match ns {
                Namespace::User => {
                    plan.user_ns = true;
                    libc::CLONE_NEWUSER
                }
                // Not an unshare: unshare(CLONE_NEWPID) would move only
                // the child's children, so the launcher clones into it.
                Namespace::Pid => {
                    plan.pid_ns = true;
                    0
                }
                Namespace::Net => libc::CLONE_NEWNET,
                Namespace::Ipc => libc::CLONE_NEWIPC,
                Namespace::Uts => libc::CLONE_NEWUTS,
                Namespace::Mount => {
                    plan.mount = true;
                    libc::CLONE_NEWNS
                }
            };
        }
        if (plan.flags != 0 || plan.pid_ns) && !plan.user_ns && euid != 0 {
            return Err(SandboxError::PreExec(
                "namespaces other than `user` need a root broker; add `user` to [sandbox] namespaces"
                    .into(),
            ));
        }
        Ok(plan)
    }
}

/// What the child writes to map its ids into a new user namespace.
fn id_maps(user: Option<(libc::uid_t, libc::gid_t)>, euid: libc::uid_t) -> [(CString, Vec<u8>); 3] {
    let (uid, gid) = user.unwrap_or((euid, rustix::process::getegid().as_raw()));
    [
        (CString::from(c"/proc/self/setgroups"), b"deny".to_vec()),
        (
            CString::from(c"/proc/self/uid_map"),
            format!("{uid} {uid} 1\n").into_bytes(),
        ),
        (
            CString::from(c"/proc/self/gid_map"),
            format!("{gid} {gid} 1\n").into_bytes(),
        ),
    ]
}

/// The exec Landlock ruleset for `program`, moved above `highest_kept` so
/// the launcher's fd placement cannot clobber it.
fn exec_ruleset_above(
    mode: Mode,
    paths: &[(PathBuf, bool)],
    highest_kept: libc::c_uint,
) -> Result<Option<OwnedFd>, SandboxError> {
    let Some(fd) = landlock::exec_ruleset_for(mode, paths)? else {
        return Ok(None);
    };
    let min = i32::try_from(highest_kept.saturating_add(1)).unwrap_or(i32::MAX);
    rustix::io::fcntl_dupfd_cloexec(&fd, min)
        .map(Some)
        .map_err(|e| SandboxError::PreExec(format!("dup ruleset fd: {e}")))
}

impl PreExec {
    /// Whether the launcher must create the child in a new pid namespace
    /// (`[sandbox] namespaces` has `pid`), so that it is pid 1 there and
    /// sees no other process.
    pub fn new_pid_namespace(&self) -> bool {
        self.pid_ns && !self.off
    }

    /// Prepares the child's steps for exec'ing `program`, keeping fds 0–2 and
    /// `keep_fds` (the child-side numbers of the hook fd and declared fds,
    /// after the launcher has placed them).
    ///
    /// The exec Landlock ruleset fd is moved above every kept fd so the
    /// launcher's placement cannot clobber it: the launcher must not `dup2`
    /// onto [`PreExec::reserved_fd`].
    pub fn prepare(
        policy: &SandboxPolicy,
        program: &Path,
        keep_fds: &[i32],
    ) -> Result<Self, SandboxError> {
        Self::prepare_for(policy, program, keep_fds, None)
    }

    /// [`PreExec::prepare`] for a transparent-mode launch of `program`: the
    /// Landlock domain allows executing only the program and its ELF
    /// interpreter (the loader's later opens go to the broker), and the last
    /// child step loads the notifying filter and sends its listener over
    /// `socket` (a kept fd number, closed before `execve`).
    pub fn prepare_transparent(
        policy: &SandboxPolicy,
        program: &Path,
        keep_fds: &[i32],
        socket: i32,
    ) -> Result<Self, SandboxError> {
        Self::prepare_for(policy, program, keep_fds, Some(socket))
    }

    fn prepare_for(
        policy: &SandboxPolicy,
        program: &Path,
        keep_fds: &[i32],
        notify_socket: Option<i32>,
    ) -> Result<Self, SandboxError> {
        let notify = notify_socket.map(|socket| NotifyPlan {
            program: crate::notify::target_program(),
            socket,
        });
        let (close, highest_kept) = close_ranges(keep_fds)?;
        let env = kept_env(policy);
        if policy.mode == Mode::Off {
            eprintln!(
                "openhook-sandbox: WARNING: sandbox is OFF for the child — only fds and the \
                 environment are scrubbed; no namespaces, capabilities kept, no Landlock."
            );
            return Ok(Self {
                notify,
                ..Self::off(close, env)
            });
        }

        let euid = rustix::process::geteuid().as_raw();
        let user = target_user(policy, euid)?;
        let ns = NamespacePlan::new(policy, euid)?;
        let maps = ns.user_ns.then(|| id_maps(user, euid));
        let empty_root = if ns.mount {
            Some(plan_empty_root(program)?)
        } else {
            None
        };

        let [eff, ..] = sys::probe::capability_sets()
            .map_err(|e| SandboxError::PreExec(format!("capget: {e}")))?;
        let bounding_may_fail = eff & (1 << crate::caps::CAP_SETPCAP) == 0;
        let exec_paths = if notify.is_some() {
            let interpreter = read_interpreter(program)?;
            landlock::transparent_exec_paths(program, interpreter.as_deref())
        } else {
            landlock::exec_paths(program)
        };
        let landlock = exec_ruleset_above(policy.mode, &exec_paths, highest_kept)?;

        Ok(Self {
            close,
            rlimits: vec![
                (libc::RLIMIT_NOFILE, policy.nofile),
                (libc::RLIMIT_NPROC, policy.nproc),
                (libc::RLIMIT_CORE, 0),
            ],
            user,
            unshare_flags: ns.flags,
            user_ns: ns.user_ns,
            pid_ns: ns.pid_ns,
            maps,
            empty_root,
            bounding_may_fail,
            landlock,
            notify,
            env,
            off: false,
        })
    }

    /// Mode `off`: only the fds are closed and the environment scrubbed.
    fn off(close: Vec<(libc::c_uint, libc::c_uint)>, env: Vec<(OsString, OsString)>) -> Self {
        Self {
            close,
            rlimits: Vec::new(),
            user: None,
            unshare_flags: 0,
            user_ns: false,
            pid_ns: false,
            maps: None,
            empty_root: None,
            bounding_may_fail: true,
            landlock: None,
            notify: None,
            env,
            off: true,
        }
    }

    /// The scrubbed environment: pass exactly these to the exec.
    pub fn env(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// The fd number the child needs until it calls `apply_in_child` (the
    /// Landlock ruleset), if any. It is close-on-exec.
    pub fn reserved_fd(&self) -> Option<i32> {
        self.landlock.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Runs the child steps. **Async-signal-safe**: call it in the child
    /// after fork and after the declared fds are at their numbers, right
    /// before exec. On error the child must `_exit` without exec.
    pub fn apply_in_child(&self) -> Result<(), ChildError> {
        use sys::child as c;
        let at = |step| move |errno| ChildError { step, errno };
        if self.off {
            self.close_fds().map_err(at(ChildStep::CloseFds))?;
            return self.hand_over_listener().map_err(at(ChildStep::Notify));
        }
        for &(res, v) in &self.rlimits {
            c::set_rlimit(res, v).map_err(at(ChildStep::Rlimits))?;
        }
        if !self.user_ns && self.unshare_flags != 0 {
            c::unshare(self.unshare_flags).map_err(at(ChildStep::Namespaces))?;
            if let Some(root) = &self.empty_root {
                enter_empty_root(root).map_err(at(ChildStep::EmptyRoot))?;
            }
        }
        self.drop_bounding().map_err(at(ChildStep::BoundingSet))?;
        if let Some((uid, gid)) = self.user {
            c::switch_user(uid, gid).map_err(at(ChildStep::SwitchUser))?;
        }
        if self.user_ns {
            if self.user.is_some() {
                c::set_dumpable().map_err(at(ChildStep::UserMaps))?;
            }
            c::unshare(self.unshare_flags).map_err(at(ChildStep::Namespaces))?;
            if let Some(maps) = &self.maps {
                for (path, data) in maps {
                    c::write_file(path, data).map_err(at(ChildStep::UserMaps))?;
                }
            }
            if let Some(root) = &self.empty_root {
                enter_empty_root(root).map_err(at(ChildStep::EmptyRoot))?;
            }
            // A new user namespace comes with a full bounding set.
            c::drop_bounding_set().map_err(at(ChildStep::BoundingSet))?;
        }
        c::set_no_new_privs().map_err(at(ChildStep::NoNewPrivs))?;
        c::clear_capabilities().map_err(at(ChildStep::Capabilities))?;
        if let Some(fd) = &self.landlock {
            c::landlock_restrict_self(fd.as_raw_fd()).map_err(at(ChildStep::Landlock))?;
        }
        self.close_fds().map_err(at(ChildStep::CloseFds))?;
        self.hand_over_listener().map_err(at(ChildStep::Notify))
    }

    /// The transparent child's last step: no_new_privs (also when the
    /// sandbox is off: the filter needs it), the filter, the listener sent
    /// to the broker and closed here, the socket closed.
    fn hand_over_listener(&self) -> Result<(), Errno> {
        use sys::child as c;
        let Some(plan) = &self.notify else {
            return Ok(());
        };
        c::set_no_new_privs()?;
        let listener = c::seccomp_with_listener(&plan.program)?;
        let sent = c::send_fd(plan.socket, listener);
        c::close(listener);
        c::close(plan.socket);
        sent
    }

    fn close_fds(&self) -> Result<(), Errno> {
        for &(first, last) in &self.close {
            sys::child::close_range(first, last)?;
        }
        Ok(())
    }

    fn drop_bounding(&self) -> Result<(), Errno> {
        sys::child::clear_ambient()?;
        match sys::child::drop_bounding_set() {
            Err(Errno::PERM) if self.bounding_may_fail => Ok(()),
            other => other,
        }
    }
}

/// Async-signal-safe: mounts and pivots per a prepared plan.
fn enter_empty_root(root: &EmptyRoot) -> Result<(), Errno> {
    use sys::child as c;
    c::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    c::mount(
        Some(c"tmpfs"),
        &root.staging,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=0755,size=64k"),
    )?;
    for dir in &root.mkdirs {
        c::mkdir(dir, 0o755)?;
    }
    for (src, dst, is_dir) in &root.binds {
        if *is_dir {
            c::mkdir(dst, 0o755)?;
        } else {
            c::touch(dst)?;
        }
        c::mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)?;
        // Read-only where the kernel lets us (a bind of a locked mount in a
        // user namespace may refuse); Landlock grants read/execute only anyway.
        let ro =
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
        let _ = c::mount(None, dst, None, ro, None);
    }
    c::pivot_into(&root.staging)
}

/// Where the empty root is staged: a directory the tmpfs may cover. It must
/// not hold anything to be bound in, or the tmpfs would hide the source
/// (a program built under /tmp).
const STAGING: [&str; 5] = ["/tmp", "/mnt", "/run", "/media", "/var/tmp"];

fn plan_empty_root(program: &Path) -> Result<EmptyRoot, SandboxError> {
    let sources: Vec<PathBuf> = landlock::exec_paths(program)
        .into_iter()
        .map(|(src, _)| src)
        .collect();
    let staging = STAGING
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            p.is_dir()
                && !sources.iter().any(|s| {
                    s.canonicalize()
                        .unwrap_or_else(|_| s.clone())
                        .starts_with(p)
                })
        })
        .ok_or_else(|| {
            SandboxError::PreExec(format!(
                "no directory to stage the empty root on: each of {} is missing or holds {}",
                STAGING.join(", "),
                program.display()
            ))
        })?;
    let mut mkdirs: Vec<PathBuf> = Vec::new();
    let mut binds = Vec::new();
    for src in sources {
        let rel = src.strip_prefix("/").unwrap_or(&src);
        let dst = staging.join(rel);
        let mut parent = dst.parent();
        let mut chain = Vec::new();
        while let Some(p) = parent {
            if p == staging {
                break;
            }
            chain.push(p.to_path_buf());
            parent = p.parent();
        }
        for p in chain.into_iter().rev() {
            if !mkdirs.contains(&p) {
                mkdirs.push(p);
            }
        }
        binds.push((cstring(&src)?, cstring(&dst)?, src.is_dir()));
    }
    Ok(EmptyRoot {
        staging: cstring(&staging)?,
        mkdirs: mkdirs
            .iter()
            .map(|p| cstring(p))
            .collect::<Result<_, _>>()?,
        binds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_ranges_skip_kept_fds() {
        let p = SandboxPolicy {
            mode: Mode::Off,
            ..SandboxPolicy::default()
        };
        let pe = PreExec::prepare(&p, Path::new("/bin/true"), &[10, 5, 11]).expect("prepare");
        assert_eq!(pe.close, vec![(3, 4), (6, 9), (12, libc::c_uint::MAX)]);
    }

    #[test]
    fn env_is_scrubbed_to_the_keep_list() {
        let p = SandboxPolicy {
            mode: Mode::Off,
            env_keep: vec!["PATH".into()],
            ..Default::default()
        };
        let pe = PreExec::prepare(&p, Path::new("/bin/true"), &[]).expect("prepare");
        assert!(pe.env().iter().all(|(k, _)| k == "PATH"));
    }

    #[test]
    fn namespaces_parse_and_reject_unknown() {
        assert_eq!("net".parse::<Namespace>().ok(), Some(Namespace::Net));
        assert!("time".parse::<Namespace>().is_err());
    }

    #[test]
    fn empty_root_plan_creates_parents_first() {
        let plan = plan_empty_root(Path::new("/bin/true")).expect("plan");
        let dirs: Vec<_> = plan
            .mkdirs
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        for (i, d) in dirs.iter().enumerate() {
            let parent = Path::new(d)
                .parent()
                .expect("parent")
                .to_string_lossy()
                .into_owned();
            if let Some(j) = dirs.iter().position(|x| *x == parent) {
                assert!(j < i, "{parent} created after {d}");
            }
        }
    }

    #[test]
    fn empty_root_is_not_staged_over_the_program() {
        let dir = tempfile::tempdir_in("/tmp").expect("tempdir");
        let prog = dir.path().join("prog");
        std::fs::copy("/bin/true", &prog).expect("copy");
        let plan = plan_empty_root(&prog).expect("plan");
        let staging = PathBuf::from(plan.staging.to_string_lossy().into_owned());
        assert!(!prog.starts_with(&staging), "staged on {staging:?}");
        assert!(STAGING.contains(&staging.to_str().expect("utf8")));
    }
}
