//! Start-up opens: the broker's ambient authority, used once before serving.
//!
//! This is one of the two places that open paths (the other is
//! `resolve.rs`; clippy.toml bans the open APIs everywhere else). It reads the policy file, opens every rule root as an
//! `O_PATH` directory, binds the `[[listen]]` sockets, opens the
//! `[[preopen]]` files and the audit log. Policy paths are trusted (the
//! operator wrote them), so symlinks in them are followed here.
#![allow(clippy::disallowed_methods)] // the one module allowed to open paths at start-up

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::audit::AuditLog;
use crate::policy::{Access, Policy, RootId};
use crate::resolve::{self, ResolveError, RuleRoot, Target};

/// An fd the child inherits at a declared number.
#[derive(Debug)]
pub struct DeclaredFd {
    /// Close-on-exec here; the launcher places it at `target`.
    pub fd: OwnedFd,
    /// The fd number the child sees.
    pub target: i32,
}

/// Everything opened at start-up.
#[derive(Debug)]
pub struct Ambient {
    roots: Vec<RuleRoot>,
    /// `/proc`, when a root is below `/proc/self` or `/proc/thread-self`.
    proc: Option<OwnedFd>,
    /// `[[listen]]` sockets, bound and listening.
    pub listeners: Vec<DeclaredFd>,
    /// `[[preopen]]` files.
    pub preopens: Vec<DeclaredFd>,
}

/// A start-up open failed; each variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum AmbientError {
    #[error("rule root {path}: {source}")]
    Root {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("listen socket {path}: {message}")]
    Listen { path: String, message: String },
    #[error("preopen {path}: {source}")]
    Preopen {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("audit log {}: {source}", path.display())]
    AuditLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("output {}: {source}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("openat2 is unavailable ({0}); the broker needs Linux 5.6 or later")]
    NoOpenat2(#[source] io::Error),
}

impl Ambient {
    /// Opens the policy's roots, listeners and preopens, in file order.
    pub fn open(policy: &Policy) -> Result<Ambient, AmbientError> {
        let mut roots = Vec::with_capacity(policy.roots.len());
        for path in &policy.roots {
            if resolve::proc_self_path(path.as_bytes()).is_some() {
                roots.push(RuleRoot::Asker);
                continue;
            }
            roots.push(RuleRoot::Dir(open_dir(path).map_err(|e| {
                AmbientError::Root {
                    path: path.clone(),
                    source: e.into(),
                }
            })?));
        }
        // `/proc/self/...` requests resolve beneath `/proc/<pid>` of the
        // asking process, whatever rule allowed them.
        let proc = open_dir("/proc").ok();
        let probe_root = match roots.iter().find_map(|r| match r {
            RuleRoot::Dir(fd) => Some(fd),
            RuleRoot::Asker => None,
        }) {
            Some(fd) => fd.try_clone().map_err(AmbientError::NoOpenat2)?,
            None => open_dir("/").map_err(|e| AmbientError::NoOpenat2(e.into()))?,
        };
        resolve::probe_openat2(probe_root.as_fd()).map_err(AmbientError::NoOpenat2)?;
        let mut listeners = Vec::with_capacity(policy.listen.len());
        for l in &policy.listen {
            let fd = bind_listener(&l.path).map_err(|message| AmbientError::Listen {
                path: l.path.clone(),
                message,
            })?;
            listeners.push(DeclaredFd { fd, target: l.fd });
        }
        let mut preopens = Vec::with_capacity(policy.preopen.len());
        for p in &policy.preopen {
            let fd = open_preopen(&p.path, p.access).map_err(|e| AmbientError::Preopen {
                path: p.path.clone(),
                source: e.into(),
            })?;
            preopens.push(DeclaredFd { fd, target: p.fd });
        }
        #[cfg(feature = "test-skip-matcher")]
        roots.push(RuleRoot::Dir(open_dir("/").map_err(|e| {
            AmbientError::Root {
                path: "/".into(),
                source: e.into(),
            }
        })?));
        Ok(Ambient {
            roots,
            proc,
            listeners,
            preopens,
        })
    }

    /// How many rule roots were opened (one per policy root).
    pub fn root_count(&self) -> usize {
        #[cfg(feature = "test-skip-matcher")]
        return self.roots.len() - 1;
        #[cfg(not(feature = "test-skip-matcher"))]
        self.roots.len()
    }

    /// The directory to resolve root `id` from. An id from another policy
    /// is `ENOENT` (the judge checks the count once).
    pub fn root_for(&self, id: RootId) -> Result<BorrowedFd<'_>, ResolveError> {
        self.roots
            .get(id.0)
            .ok_or(ResolveError::from(Errno::NOENT))?
            .dir()
    }
}

impl Ambient {
    /// For a path below `/proc/self` or `/proc/thread-self`: the target's
    /// own `/proc/<pid>` directory and the path below it. `None` for any
    /// other path.
    pub fn proc_view<'p>(
        &self,
        path: &'p [u8],
        target: Target,
    ) -> Option<Result<(OwnedFd, &'p [u8]), ResolveError>> {
        let (thread, rest) = resolve::proc_self_path(path)?;
        let proc = self.proc.as_ref().map(AsFd::as_fd);
        Some(resolve::open_proc_root(proc, thread, target).map(|fd| (fd, rest)))
    }
}

/// An `O_PATH` directory (start-up: the operator's paths, symlinks followed).
fn open_dir(path: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens a preopen file without blocking on a FIFO or device, then clears
/// `O_NONBLOCK`.
fn open_preopen(path: &str, access: Access) -> Result<OwnedFd, Errno> {
    let acc = match access {
        Access::Read => OFlags::RDONLY,
        Access::Write => OFlags::WRONLY,
        Access::ReadWrite => OFlags::RDWR,
    };
    let fd = rustix::fs::open(
        path,
        acc | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    let fl = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, fl - OFlags::NONBLOCK)?;
    Ok(fd)
}

/// Binds and listens on a unix socket path. A stale socket file (one
/// nobody accepts on: `connect` gets `ECONNREFUSED`) is removed first; a
/// live socket or any other file at the path is an error.
fn bind_listener(path: &str) -> Result<OwnedFd, String> {
    let addr = SocketAddrUnix::new(path).map_err(|e| e.to_string())?;
    match rustix::fs::lstat(path) {
        Ok(st) => {
            if st.st_mode & 0o170_000 != 0o140_000 {
                return Err("exists and is not a socket".into());
            }
            let probe = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC,
                None,
            )
            .map_err(|e| e.to_string())?;
            match rustix::net::connect(&probe, &addr) {
                Ok(()) => return Err("another process is listening on it".into()),
                Err(Errno::CONNREFUSED) => {
                    rustix::fs::unlink(path).map_err(|e| format!("removing stale socket: {e}"))?;
                }
                Err(e) => return Err(format!("probing existing socket: {e}")),
            }
        }
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e.to_string()),
    }
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| e.to_string())?;
    rustix::net::bind(&fd, &addr).map_err(|e| e.to_string())?;
    rustix::net::listen(&fd, 128).map_err(|e| e.to_string())?;
    Ok(fd)
}

/// Opens (creating, mode 0600) the audit log for appending.
pub fn open_audit_log(path: &Path) -> Result<AuditLog, AmbientError> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| AmbientError::AuditLog {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(AuditLog::new(file))
}

/// Creates (or truncates, mode 0644) a file the broker writes after its
/// child ran (`learn --output`): opened now, before the broker confines
/// itself.
pub fn open_output(path: &Path) -> Result<File, AmbientError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| AmbientError::Output {
            path: path.to_path_buf(),
            source,
        })
}

/// A rule root directory as an `O_PATH` fd, for `check --explain`'s look
/// at the host (the serving broker opens all of them in [`Ambient::open`]).
pub fn open_rule_root(path: &str) -> Result<OwnedFd, Errno> {
    open_dir(path)
}

/// `/` as an `O_PATH` directory (`learn` examines the used paths beneath it).
pub fn open_root_dir() -> Result<OwnedFd, Errno> {
    open_dir("/")
}

/// Reads and validates a policy file. Read errors are reported as
/// `file:1:1: message` so every load failure has one shape.
pub fn load_policy(path: &Path) -> Result<Policy, crate::policy::PolicyError> {
    let name = path.display().to_string();
    let text = read_policy_file(path).map_err(|e| crate::policy::PolicyError {
        file: name.clone(),
        line: e.line,
        col: e.col,
        message: e.message,
    })?;
    crate::policy::parse(&text, &name)
}

/// Why the policy file could not be read, positioned like a parse error.
#[derive(Debug)]
pub struct ReadError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Largest policy file read (a 10,000-rule policy is well under 1 MiB).
pub const MAX_POLICY_BYTES: u64 = 16 << 20;

/// Reads the policy file as UTF-8 text.
pub fn read_policy_file(path: &Path) -> Result<String, ReadError> {
    let at_start = |message: String| ReadError {
        line: 1,
        col: 1,
        message,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| at_start(format!("cannot read policy: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| at_start(format!("cannot read policy: {e}")))?;
    if !meta.is_file() {
        return Err(at_start("policy is not a regular file".into()));
    }
    // Sized from the file so a large policy is not read into a buffer
    // doubled past it.
    let mut bytes =
        Vec::with_capacity(usize::try_from(meta.len().min(MAX_POLICY_BYTES) + 1).unwrap_or(0));
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| at_start(format!("cannot read policy: {e}")))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_POLICY_BYTES {
        return Err(at_start(format!(
            "policy is larger than {MAX_POLICY_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // valid_up_to marks a char boundary, so this is valid UTF-8.
        let before = String::from_utf8_lossy(good);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ReadError {
            line,
            col,
            message: "policy is not valid UTF-8".into(),
        }
    })
}

/// Largest argument file read (`argfile`): a command line, not data.
pub const MAX_ARGS_BYTES: u64 = 1 << 20;

/// Reads an argument file (`@/path` among the program's arguments) as
/// UTF-8 text: a regular file of at most [`MAX_ARGS_BYTES`].
pub fn read_args_file(path: &Path) -> Result<String, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_ARGS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_ARGS_BYTES {
        return Err(format!("larger than {MAX_ARGS_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not valid UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse;

    #[test]
    fn opens_roots_and_names_missing_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let p = parse(
            &format!("version = 1\n[[allow]]\npath = \"{d}/\"\n[[allow]]\npath = \"{d}/f\"\n"),
            "t",
        )
        .expect("parses");
        let a = Ambient::open(&p).expect("opens");
        assert_eq!(p.roots.len(), 1, "exact rule shares its parent root");
        assert!(a.root_for(RootId(0)).is_ok());
        let p = parse(
            &format!("version = 1\n[[allow]]\npath = \"{d}/missing/x\"\n"),
            "t",
        )
        .expect("parses");
        let e = Ambient::open(&p).expect_err("missing root");
        assert!(e.to_string().contains(&format!("{d}/missing")), "{e}");
    }

    #[test]
    fn listen_replaces_only_stale_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("s.sock");
        let s = sock.display().to_string();
        let p = parse(
            &format!("version = 1\n[[listen]]\npath = \"{s}\"\nfd = 10\n"),
            "t",
        )
        .expect("parses");
        let a = Ambient::open(&p).expect("binds");
        assert_eq!(a.listeners[0].target, 10);
        // A live listener refuses a second bind.
        let e = Ambient::open(&p).expect_err("in use");
        assert!(e.to_string().contains("listening"), "{e}");
        drop(a);
        // Now stale: replaced.
        let a = Ambient::open(&p).expect("stale socket replaced");
        drop(a);
        // A regular file is never removed.
        std::fs::remove_file(&sock).expect("rm");
        std::fs::write(&sock, b"keep").expect("write");
        let e = Ambient::open(&p).expect_err("not a socket");
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&sock).expect("read"), b"keep");
    }

    #[test]
    fn preopen_and_fifo_do_not_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let f = fifo.display();
        let p = parse(
            &format!("version = 1\n[[preopen]]\npath = \"{f}\"\nfd = 12\n"),
            "t",
        )
        .expect("parses");
        let a = Ambient::open(&p).expect("opens a FIFO without a writer");
        let fl = rustix::fs::fcntl_getfl(&a.preopens[0].fd).expect("getfl");
        assert!(!fl.contains(OFlags::NONBLOCK));
        assert_eq!(a.preopens[0].target, 12);
    }

    #[test]
    fn read_policy_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("p.toml");
        std::fs::write(&f, b"version = 1\n# caf\xc3\xa9 \xff\n").expect("write");
        let e = read_policy_file(&f).expect_err("not utf-8");
        assert_eq!((e.line, e.col), (2, 8));
        let e = read_policy_file(&dir.path().join("none")).expect_err("missing");
        assert!(e.message.contains("No such file"), "{}", e.message);
        let e = read_policy_file(dir.path()).expect_err("dir");
        assert!(e.message.contains("not a regular file"), "{}", e.message);
    }
}
