//! Resolution: performs what `policy::decide` allowed, with `openat2`
//! beneath the rule root. One of the two places that open paths (the
//! other is `ambient.rs`); there is no fallback resolver (without openat2 the broker refuses
//! to start, see [`probe_openat2`]).
//!
//! The open uses `O_NONBLOCK | O_NOCTTY` so a FIFO without a writer or a
//! device cannot hang the broker; the type is checked with `fstat` before
//! anything else happens to the file, then `O_TRUNC` is applied (regular
//! files only, as the kernel does) and the requested `O_NONBLOCK` state
//! restored.
//!
//! Rule roots below `/proc/self` or `/proc/thread-self` mean the process
//! that asks, never the broker: they are opened per request beneath
//! `/proc/<pid>` (`Ambient::proc_view`); such a root is not opened at
//! start-up ([`RuleRoot::Asker`]).

#![allow(clippy::disallowed_methods)] // one of the two modules that open paths

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use openhook_wire::Errno;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::policy::{Allowed, FileType};

/// A rule root: where requests under a rule resolve from.
#[derive(Debug)]
pub enum RuleRoot {
    /// An `O_PATH` directory fd opened at start-up.
    Dir(OwnedFd),
    /// Below `/proc/self` or `/proc/thread-self`: not opened at start-up
    /// (it would be the broker's); requests there resolve beneath the
    /// asking process's own `/proc/<pid>` (`Ambient::proc_view`).
    Asker,
}

/// The process a request is made for: `/proc/self` is its `tgid`,
/// `/proc/thread-self` its thread `tid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub tgid: i32,
    pub tid: i32,
}

/// `Some((thread, rest))` when a requested path is `/proc/self` or
/// `/proc/thread-self` or below them; `rest` is `.` for the directory
/// itself (pure).
pub fn proc_self_path(path: &[u8]) -> Option<(bool, &[u8])> {
    for (prefix, thread) in [
        (&b"/proc/self"[..], false),
        (&b"/proc/thread-self"[..], true),
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() {
                return Some((thread, b"."));
            }
            if let Some(rest) = rest.strip_prefix(b"/") {
                return Some((thread, rest));
            }
        }
    }
    None
}

/// The path below `/proc` that `/proc/self` (`thread`:
/// `/proc/thread-self`) means for `target` (pure).
pub fn proc_root_path(thread: bool, target: Target) -> String {
    if thread {
        format!("{}/task/{}", target.tgid, target.tid)
    } else {
        target.tgid.to_string()
    }
}

impl RuleRoot {
    /// The directory to resolve from.
    pub fn dir(&self) -> Result<BorrowedFd<'_>, ResolveError> {
        match self {
            RuleRoot::Dir(fd) => Ok(fd.as_fd()),
            // Unreachable through the judge (see the variant).
            RuleRoot::Asker => Err(ResolveError::Sys(Errno::ENOENT)),
        }
    }
}

/// `/proc/<tgid>[/task/<tid>]` beneath the broker's `/proc` fd.
pub fn open_proc_root(
    proc: Option<BorrowedFd<'_>>,
    thread: bool,
    target: Target,
) -> Result<OwnedFd, ResolveError> {
    let proc = proc.ok_or(ResolveError::Sys(Errno::ENOENT))?;
    Ok(rustix::fs::openat2(
        proc,
        proc_root_path(thread, target),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
    )?)
}

/// Why an allowed request produced no fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// The file's type is not in the rule's `types`: a policy denial (the
    /// caller replies with the deny errno). `None` for an unknown type.
    TypeMismatch(Option<FileType>),
    /// A syscall failed; inside an allowed tree its errno is the reply.
    Sys(Errno),
}

impl From<rustix::io::Errno> for ResolveError {
    fn from(e: rustix::io::Errno) -> Self {
        ResolveError::Sys(e.into())
    }
}

/// Opens `allowed.rel` beneath `root`.
pub fn open_beneath(root: BorrowedFd<'_>, allowed: &Allowed<'_>) -> Result<OwnedFd, ResolveError> {
    let fd = rustix::fs::openat2(
        root,
        allowed.rel,
        OFlags::from_bits_retain(allowed.oflags),
        Mode::from_raw_mode(allowed.mode),
        allowed.resolve,
    )?;
    let st = rustix::fs::fstat(&fd)?;
    let ftype = FileType::from_st_mode(st.st_mode);
    if !allowed.permits_type(ftype) {
        return Err(ResolveError::TypeMismatch(ftype));
    }
    if allowed.truncate && ftype == Some(FileType::File) {
        rustix::fs::ftruncate(&fd, 0)?;
    }
    if !allowed.nonblock {
        // F_SETFL changes only the status flags (O_APPEND, O_ASYNC,
        // O_DIRECT, O_NOATIME, O_NONBLOCK): setting them from the flags
        // the file was opened with, minus O_NONBLOCK, is exact and saves
        // an F_GETFL on every open.
        rustix::fs::fcntl_setfl(
            &fd,
            OFlags::from_bits_retain(allowed.oflags) - OFlags::NONBLOCK,
        )?;
    }
    Ok(fd)
}

/// Resolves `allowed.rel` beneath `root` to an `O_PATH` fd, for metadata
/// requests: the file itself is never opened (no device or FIFO side
/// effects). With `nofollow` a trailing symlink is returned as itself (its
/// type is then always acceptable: only the link is examined); otherwise
/// the type must be one the rule allows.
pub fn probe_beneath(
    root: BorrowedFd<'_>,
    allowed: &Allowed<'_>,
    nofollow: bool,
) -> Result<OwnedFd, ResolveError> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if nofollow {
        flags |= OFlags::NOFOLLOW;
    }
    if OFlags::from_bits_retain(allowed.oflags).contains(OFlags::DIRECTORY) {
        flags |= OFlags::DIRECTORY;
    }
    let fd = rustix::fs::openat2(root, allowed.rel, flags, Mode::empty(), allowed.resolve)?;
    let st = rustix::fs::fstat(&fd)?;
    if nofollow && st.st_mode & 0o170_000 == 0o120_000 {
        return Ok(fd);
    }
    let ftype = FileType::from_st_mode(st.st_mode);
    match ftype {
        Some(t) if allowed.types.contains(t) => Ok(fd),
        _ => Err(ResolveError::TypeMismatch(ftype)),
    }
}

/// Binds the unix socket `sock` at `allowed.rel` beneath `root`: the
/// parent directory is resolved beneath the root first, and the bind goes
/// through the broker's own fd for it (`/proc/self/fd/N/name`), so the
/// name is created in exactly that directory. The rule must allow sockets.
pub fn bind_beneath(
    root: BorrowedFd<'_>,
    allowed: &Allowed<'_>,
    sock: BorrowedFd<'_>,
) -> Result<(), ResolveError> {
    if !allowed.types.contains(FileType::Socket) {
        return Err(ResolveError::TypeMismatch(Some(FileType::Socket)));
    }
    let (parent, name) = match allowed.rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&allowed.rel[..i], &allowed.rel[i + 1..]),
        None => (&b"."[..], allowed.rel),
    };
    if name.is_empty() || name == b"." {
        return Err(ResolveError::Sys(Errno::EINVAL));
    }
    let dir = rustix::fs::openat2(
        root,
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        allowed.resolve,
    )?;
    let mut via = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    via.extend_from_slice(name);
    let addr = rustix::net::SocketAddrUnix::new(via)?;
    rustix::net::bind(sock, &addr)?;
    Ok(())
}

/// The socket file at `allowed.rel` beneath `root`, as an `O_PATH` fd
/// (symlinks as the rule says); the rule must allow sockets.
pub fn socket_beneath(
    root: BorrowedFd<'_>,
    allowed: &Allowed<'_>,
) -> Result<OwnedFd, ResolveError> {
    if !allowed.types.contains(FileType::Socket) {
        return Err(ResolveError::TypeMismatch(Some(FileType::Socket)));
    }
    probe_beneath(root, allowed, false)
}

/// Connects `sock` to the socket file `file` (from [`socket_beneath`])
/// through the broker's own fd for it (`/proc/self/fd/N`). May block as
/// long as the peer's backlog is full (a blocking socket).
pub fn connect_through(sock: BorrowedFd<'_>, file: BorrowedFd<'_>) -> Result<(), Errno> {
    let addr = rustix::net::SocketAddrUnix::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    rustix::net::connect(sock, &addr)?;
    Ok(())
}

/// What the filesystem says about a path (for `learn`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The type the name resolves to (`None`: it did not exist).
    pub ftype: Option<FileType>,
    /// The name itself is a symlink.
    pub symlink: bool,
    /// The name is a symlink whose target is not beneath the name's own
    /// directory: an exact rule (whose root is that directory) can never
    /// follow it.
    pub leaves_dir: bool,
}

/// What `rel` beneath `root` is (for `learn`): the type it resolves to
/// and whether the name itself is a symlink. Magic links are not followed.
pub fn examine(root: BorrowedFd<'_>, rel: &[u8]) -> Found {
    let at = |flags: OFlags| {
        rustix::fs::openat2(
            root,
            rel,
            OFlags::PATH | OFlags::CLOEXEC | flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .and_then(|fd| rustix::fs::fstat(&fd))
        .ok()
    };
    let symlink = at(OFlags::NOFOLLOW).is_some_and(|st| st.st_mode & 0o170_000 == 0o120_000);
    let ftype = at(OFlags::empty()).and_then(|st| FileType::from_st_mode(st.st_mode));
    Found {
        ftype,
        symlink,
        leaves_dir: symlink && ftype.is_some() && !resolves_beneath_own_dir(root, rel),
    }
}

/// Whether `rel` (beneath `root`) resolves, symlinks followed, beneath its
/// own parent directory: how an exact rule's resolution would follow it.
fn resolves_beneath_own_dir(root: BorrowedFd<'_>, rel: &[u8]) -> bool {
    let (dir, name): (&[u8], &[u8]) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (b".", rel),
    };
    let open = |at: BorrowedFd<'_>, p: &[u8], flags: OFlags| {
        rustix::fs::openat2(
            at,
            p,
            OFlags::PATH | OFlags::CLOEXEC | flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
    };
    open(root, dir, OFlags::DIRECTORY)
        .and_then(|d| open(d.as_fd(), name, OFlags::empty()))
        .is_ok()
}

/// Whether a `/proc/<tid>/cwd` or `/proc/<tid>/fd/<n>` link leads to a
/// directory (transparent mode: a dirfd must be one). Only `fstat` of an
/// `O_PATH` fd: the confined broker may not stat by path.
pub fn proc_link_is_dir(link: &str) -> Result<bool, Errno> {
    let fd = rustix::fs::openat2(
        rustix::fs::CWD,
        link,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::empty(),
    )?;
    Ok(rustix::fs::fstat(&fd)?.st_mode & 0o170_000 == 0o040_000)
}

/// The thread group of thread `tid` (`Tgid:` in `/proc/<tid>/status`).
pub fn tgid_of(tid: i32) -> Option<i32> {
    let fd = rustix::fs::openat2(
        rustix::fs::CWD,
        format!("/proc/{tid}/status"),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let mut buf = [0u8; 512];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Checks that `openat2` with `RESOLVE_BENEATH` works, from `root`.
pub fn probe_openat2(root: BorrowedFd<'_>) -> io::Result<()> {
    rustix::fs::openat2(
        root,
        ".",
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .map(drop)
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    //! Real files in a temp tree; the escape and race tests through the
    //! broker live in `tests/tests/`.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use crate::ambient::Ambient;
    use crate::policy::{decide, flags::*, parse, Policy};
    use std::os::unix::fs::symlink;

    struct Tree {
        dir: tempfile::TempDir,
        policy: Policy,
        ambient: Ambient,
    }

    fn tree(extra: &str) -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join("vm")).expect("mkdir");
        for sub in ["vm/sub", "f", "dev"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dir.path().join("vm/disk.img"), b"disk").expect("write");
        std::fs::write(dir.path().join("outside"), b"outside").expect("write");
        let text = format!(
            "version = 1\ndeny_errno = \"EPERM\"\n[[allow]]\npath = \"{d}/vm/\"\naccess = \"rw\"\ncreate = true\nmode = 0o640\n{}",
            extra.replace("{d}", &d)
        );
        let policy = parse(&text, "t.toml").expect("parses");
        let ambient = Ambient::open(&policy).expect("opens");
        Tree {
            dir,
            policy,
            ambient,
        }
    }

    impl Tree {
        fn path(&self, rel: &str) -> String {
            format!("{}/{rel}", self.dir.path().display())
        }
        fn open(&self, rel: &str, flags: u32, mode: u32) -> Result<OwnedFd, Errno> {
            let p = self.path(rel);
            let a = decide(&self.policy, p.as_bytes(), flags, mode).map_err(|d| d.errno())?;
            let root = self.ambient.root_for(a.root).expect("root");
            open_beneath(root, &a).map_err(|e| match e {
                ResolveError::TypeMismatch(_) => self.policy.deny_errno,
                ResolveError::Sys(e) => e,
            })
        }
    }

    #[test]
    fn opens_inside_and_passes_real_errnos() {
        let t = tree("");
        let fd = t.open("vm/disk.img", O_RDWR, 0).expect("opens");
        let fl = rustix::fs::fcntl_getfl(&fd).expect("getfl");
        assert!(!fl.contains(OFlags::NONBLOCK), "O_NONBLOCK restored");
        assert!(fl.contains(OFlags::RDWR));
        let fdfl = rustix::io::fcntl_getfd(&fd).expect("getfd");
        assert!(fdfl.contains(rustix::io::FdFlags::CLOEXEC));
        let fd = t
            .open("vm/disk.img", O_RDONLY | O_NONBLOCK, 0)
            .expect("opens");
        let fl = rustix::fs::fcntl_getfl(&fd).expect("getfl");
        assert!(fl.contains(OFlags::NONBLOCK), "requested O_NONBLOCK kept");
        // Real errnos inside the tree.
        assert_eq!(t.open("vm/none", O_RDONLY, 0).err(), Some(Errno::ENOENT));
        assert_eq!(t.open("vm/sub", O_RDWR, 0).err(), Some(Errno::EISDIR));
        assert_eq!(
            t.open("vm/disk.img", O_RDONLY | O_CREAT | O_EXCL, 0o600)
                .err(),
            Some(Errno::EEXIST)
        );
        assert_eq!(
            t.open("vm/disk.img/x", O_RDONLY, 0).err(),
            Some(Errno::ENOTDIR)
        );
        // Outside: the deny errno whether the file exists or not.
        assert_eq!(t.open("outside", O_RDONLY, 0).err(), Some(Errno::EPERM));
        assert_eq!(t.open("nothing", O_RDONLY, 0).err(), Some(Errno::EPERM));
        // The directory itself is not a file.
        assert_eq!(
            t.open("vm", O_RDONLY | O_DIRECTORY, 0).err(),
            Some(Errno::EPERM)
        );
    }

    #[test]
    fn create_clamps_mode_and_truncate_applies() {
        let t = tree("");
        let old = rustix::process::umask(Mode::empty());
        let fd = t.open("vm/new", O_RDWR | O_CREAT, 0o666);
        rustix::process::umask(old);
        let st = rustix::fs::fstat(fd.expect("created")).expect("fstat");
        assert_eq!(st.st_mode & 0o7777, 0o640);
        let fd = t.open("vm/disk.img", O_WRONLY | O_TRUNC, 0).expect("opens");
        assert_eq!(rustix::fs::fstat(&fd).expect("fstat").st_size, 0);
    }

    #[test]
    fn types_are_enforced_without_side_effects() {
        let t = tree("[[allow]]\npath = \"{d}/dev/\"\naccess = \"rw\"\ntypes = [\"char\"]\n");
        std::fs::write(t.dir.path().join("dev/file"), b"data").expect("write");
        // A regular file under a char-only rule: denied, and not truncated.
        assert_eq!(
            t.open("dev/file", O_RDWR | O_TRUNC, 0).err(),
            Some(Errno::EPERM)
        );
        assert_eq!(
            std::fs::read(t.dir.path().join("dev/file")).expect("read"),
            b"data"
        );
    }

    #[test]
    fn fifo_without_writer_does_not_block() {
        let t = tree("[[allow]]\npath = \"{d}/fifo\"\naccess = \"rw\"\ntypes = [\"fifo\"]\n");
        let fifo = t.dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        // Returns at once although no writer exists.
        let fd = t.open("fifo", O_RDONLY, 0).expect("opens");
        let fl = rustix::fs::fcntl_getfl(&fd).expect("getfl");
        assert!(!fl.contains(OFlags::NONBLOCK));
        drop(fd);
        // A FIFO under a file-only rule is a policy denial.
        std::fs::create_dir(t.dir.path().join("vm/p")).expect("mkdir");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            t.dir.path().join("vm/p/fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        assert_eq!(t.open("vm/p/fifo", O_RDONLY, 0).err(), Some(Errno::EPERM));
        // Write side with no reader: the kernel's ENXIO, not a hang.
        assert_eq!(t.open("fifo", O_WRONLY, 0).err(), Some(Errno::ENXIO));
    }

    #[test]
    fn symlinks_refused_unless_followed_and_never_out() {
        let t = tree("[[allow]]\npath = \"{d}/f/\"\nfollow_symlinks = true\n");
        let vm = t.dir.path().join("vm");
        let f = t.dir.path().join("f");
        std::fs::write(f.join("target"), b"t").expect("write");
        symlink("disk.img", vm.join("rel")).expect("symlink");
        symlink("target", f.join("rel")).expect("symlink");
        symlink(t.path("outside"), vm.join("abs_out")).expect("symlink");
        symlink(t.path("outside"), f.join("abs_out")).expect("symlink");
        symlink("../outside", f.join("rel_out")).expect("symlink");
        symlink("..", f.join("up")).expect("symlink");
        symlink("/proc/self/root", f.join("magic")).expect("symlink");
        // No-follow rule: any symlink is ELOOP.
        assert_eq!(t.open("vm/rel", O_RDONLY, 0).err(), Some(Errno::ELOOP));
        assert_eq!(t.open("vm/abs_out", O_RDONLY, 0).err(), Some(Errno::ELOOP));
        // Follow rule: inside fine, out of the root never.
        let fd = t
            .open("f/rel", O_RDONLY, 0)
            .expect("inside symlink followed");
        drop(fd);
        for out in [
            "f/abs_out",
            "f/rel_out",
            "f/up/outside",
            "f/magic/etc/passwd",
        ] {
            assert_eq!(t.open(out, O_RDONLY, 0).err(), Some(Errno::EXDEV), "{out}");
        }
    }

    #[test]
    fn proc_self_roots_mean_the_target() {
        assert_eq!(proc_self_path(b"/proc/self"), Some((false, &b"."[..])));
        assert_eq!(
            proc_self_path(b"/proc/self/task"),
            Some((false, &b"task"[..]))
        );
        assert_eq!(
            proc_self_path(b"/proc/thread-self/fd"),
            Some((true, &b"fd"[..]))
        );
        assert_eq!(proc_self_path(b"/proc/selfish"), None);
        assert_eq!(proc_self_path(b"/proc/1"), None);
        let t = Target { tgid: 40, tid: 41 };
        assert_eq!(proc_root_path(false, t), "40");
        assert_eq!(proc_root_path(true, t), "40/task/41");
    }

    #[test]
    fn probe_works_here() {
        let t = tree("");
        let root = t.ambient.root_for(crate::policy::RootId(0)).expect("root");
        probe_openat2(root).expect("openat2");
    }
}
