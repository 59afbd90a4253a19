//! The one function in the emulator that opens files: [`Opener::open`].
//!
//! - `/dev/fdset/N` resolves through the fd sets (docs/qmp.md): the newest
//!   member whose access mode and `O_DIRECT` match is duplicated with
//!   `F_DUPFD_CLOEXEC`, the requested status flags are applied with
//!   `F_SETFL` (an `O_SYNC` mismatch is `EINVAL`), and `O_TRUNC` (or
//!   `O_CREAT|O_EXCL`, as QEMU does) truncates. The dup is tracked until the
//!   [`OpenedFile`] drops.
//! - Any other path goes to the open hook (the broker).
//! - Only when there is no `-open-hook-fd` *and* `-sandbox off` does the
//!   emulator open paths itself, after a loud warning.
//!
//! A test below fails if any other emulator source opens a path.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};

use std::collections::HashMap;

use rustix::fs::{Mode, OFlags};

use super::fdset::{self, AddFdInfo, FdNum, FdSetError, FdSetInfo, FdSets};
use super::inherited::ClaimedAddFd;
use crate::vm_config::SandboxSetting;

/// What the broker's client offers (`openhook_wire::hook::HookClient`).
/// `flags` are Linux `O_*` bits.
pub trait HookOpen: Send + Sync {
    fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd>;
}

impl HookOpen for openhook_wire::hook::HookClient {
    fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        openhook_wire::hook::HookClient::open(self, path, flags, mode)
    }
}

/// Where non-fdset paths go.
enum Route {
    Hook(Box<dyn HookOpen>),
    /// No hook and the sandbox off: this process's own authority.
    Direct,
}

/// Why an [`Opener`] cannot be made for a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenerError {
    #[error(
        "no -open-hook-fd and the sandbox is on: the emulator must be started by \
         openhook-broker (or with -sandbox off for debugging)"
    )]
    NoHookInSandbox,
}

#[derive(Default)]
struct FdTable {
    sets: FdSets,
    owned: HashMap<FdNum, OwnedFd>,
}

struct Shared {
    route: Route,
    table: Mutex<FdTable>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FdTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The shared open entry and fd-set store; cheap to clone, safe to share
/// between threads (the QMP monitor and the machine hold the same one).
#[derive(Clone)]
pub struct Opener {
    shared: Arc<Shared>,
}

static DIRECT_WARNING: Once = Once::new();

const DIRECT_WARNING_TEXT: &str = "openhook-emulator: WARNING: no -open-hook-fd and -sandbox off: \
files are opened directly with this process's own authority. This is for debugging only; \
nothing confines what the emulator opens.";

impl Opener {
    fn new(route: Route) -> Self {
        Opener {
            shared: Arc::new(Shared {
                route,
                table: Mutex::new(FdTable::default()),
            }),
        }
    }

    /// Paths go through `hook`.
    pub fn with_hook(hook: Box<dyn HookOpen>) -> Self {
        Self::new(Route::Hook(hook))
    }

    /// Paths go to the broker over the claimed `-open-hook-fd` socket.
    pub fn with_hook_socket(sock: OwnedFd) -> Self {
        Self::with_hook(Box::new(openhook_wire::hook::HookClient::new(sock)))
    }

    /// Paths are opened directly; prints the warning (once per process).
    pub fn direct_unsandboxed() -> Self {
        DIRECT_WARNING.call_once(|| eprintln!("{DIRECT_WARNING_TEXT}"));
        Self::new(Route::Direct)
    }

    /// The opener a configuration calls for: the hook when there is one,
    /// direct opens only with the sandbox off.
    pub fn for_config(
        hook: Option<Box<dyn HookOpen>>,
        sandbox: SandboxSetting,
    ) -> Result<Self, OpenerError> {
        match (hook, sandbox) {
            (Some(h), _) => Ok(Self::with_hook(h)),
            (None, SandboxSetting::Off) => Ok(Self::direct_unsandboxed()),
            (None, SandboxSetting::On) => Err(OpenerError::NoHookInSandbox),
        }
    }

    /// Whether paths are opened directly (no broker).
    pub fn is_direct(&self) -> bool {
        matches!(self.shared.route, Route::Direct)
    }

    /// Opens `path` with Linux `O_*` `flags` and creation `mode`. The result
    /// is always close-on-exec. Relative paths are passed on as given (the
    /// broker refuses them; give absolute paths).
    pub fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OpenedFile> {
        if let Some(id) = fdset::parse_fdset_path(path.as_os_str().as_bytes()) {
            let id = id.map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
            return self.open_fdset(id, flags);
        }
        let flags = flags | libc::O_CLOEXEC;
        let fd = match &self.shared.route {
            Route::Hook(h) => h.open(path, flags, mode)?,
            // The one direct open: `-sandbox off` without a hook.
            #[allow(clippy::disallowed_methods)]
            Route::Direct => rustix::fs::open(
                path,
                OFlags::from_bits_retain(u32::from_ne_bytes(flags.to_ne_bytes())),
                Mode::from_raw_mode(mode),
            )?,
        };
        Ok(OpenedFile {
            file: File::from(fd),
            dup_of: None,
        })
    }

    fn open_fdset(&self, id: i64, flags: i32) -> io::Result<OpenedFile> {
        let mut t = self.shared.lock();
        // Status flags are shared with earlier dups (F_SETFL on a dup
        // changes the member too), so match against their current values.
        for num in t.sets.members(id) {
            if let Some(fd) = t.owned.get(&num) {
                let now = getfl(fd)?;
                t.sets.set_flags(num, now);
            }
        }
        let num = t
            .sets
            .choose(id, flags)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        let member = t
            .owned
            .get(&num)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        let dup = rustix::io::fcntl_dupfd_cloexec(member, 0)?;
        if flags & libc::O_SYNC != getfl(&dup)? & libc::O_SYNC {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        rustix::fs::fcntl_setfl(
            &dup,
            OFlags::from_bits_retain(u32::from_ne_bytes(flags.to_ne_bytes())),
        )?;
        let excl_create = libc::O_CREAT | libc::O_EXCL;
        if flags & libc::O_TRUNC != 0 || flags & excl_create == excl_create {
            rustix::fs::ftruncate(&dup, 0)?;
        }
        t.sets
            .add_dup(id, FdNum(dup.as_raw_fd()))
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        drop(t);
        Ok(OpenedFile {
            file: File::from(dup),
            dup_of: Some(Arc::downgrade(&self.shared)),
        })
    }

    /// A listening AF_UNIX stream socket bound to `path`, for a
    /// `path=` server chardev that no inherited socket serves. Only on the
    /// direct route (no hook, `-sandbox off`); with a broker the socket
    /// comes from its `[[listen]]` (`fds::inherited::find_listener`), and
    /// this returns `EACCES`. A stale socket file is not removed.
    pub fn bind_unix_listener(&self, path: &Path) -> io::Result<OwnedFd> {
        if !self.is_direct() {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        let fd = rustix::net::socket_with(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::bind(&fd, &rustix::net::SocketAddrUnix::new(path)?)?;
        rustix::net::listen(&fd, 16)?;
        Ok(fd)
    }

    /// `add-fd` / `-add-fd`: puts `fd` into set `id` (lowest free when
    /// `None`). On error the fd is closed, as QEMU does.
    pub fn add_fd(
        &self,
        id: Option<i64>,
        fd: OwnedFd,
        opaque: Option<String>,
    ) -> Result<AddFdInfo, FdSetError> {
        let num = FdNum(fd.as_raw_fd());
        let flags = getfl(&fd).unwrap_or(0);
        let mut t = self.shared.lock();
        let info = t.sets.add(id, num, flags, opaque)?;
        t.owned.insert(num, fd);
        Ok(info)
    }

    /// Puts the claimed `-add-fd` fds into their sets, in command-line order.
    pub fn add_claimed(&self, fds: Vec<ClaimedAddFd>) -> Result<(), FdSetError> {
        for a in fds {
            let id = i64::try_from(a.set).map_err(|_| FdSetError::NegativeId)?;
            self.add_fd(Some(id), a.fd, a.opaque)?;
        }
        Ok(())
    }

    /// `remove-fd`: closes one fd of the set, or all of them, now.
    pub fn remove_fd(&self, id: i64, fd: Option<i64>) -> Result<(), FdSetError> {
        let mut t = self.shared.lock();
        let removed = t.sets.remove(id, fd)?;
        for num in removed {
            drop(t.owned.remove(&num));
        }
        Ok(())
    }

    /// `query-fdsets`.
    pub fn query_fdsets(&self) -> Vec<FdSetInfo> {
        self.shared.lock().sets.query()
    }

    /// Live dups handed out from set `id`.
    pub fn dup_count(&self, id: i64) -> usize {
        self.shared.lock().sets.dup_count(id)
    }
}

fn getfl(fd: impl AsFd) -> io::Result<i32> {
    let bits = rustix::fs::fcntl_getfl(fd)?.bits();
    Ok(i32::from_ne_bytes(bits.to_ne_bytes()))
}

/// An opened file. For an fd-set dup, dropping it also tells the fd set
/// (closing goes through the same layer that handed it out).
pub struct OpenedFile {
    file: File,
    dup_of: Option<Weak<Shared>>,
}

impl OpenedFile {
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether this is a dup from an fd set.
    pub fn is_fdset_dup(&self) -> bool {
        self.dup_of.is_some()
    }
}

impl Deref for OpenedFile {
    type Target = File;
    fn deref(&self) -> &File {
        &self.file
    }
}

impl AsFd for OpenedFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl std::fmt::Debug for OpenedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedFile")
            .field("fd", &self.file.as_raw_fd())
            .field("fdset_dup", &self.dup_of.is_some())
            .finish()
    }
}

impl Drop for OpenedFile {
    fn drop(&mut self) {
        // Untrack while the number is still ours, then `file` closes.
        if let Some(shared) = self.dup_of.take().and_then(|w| w.upgrade()) {
            shared.lock().sets.remove_dup(FdNum(self.file.as_raw_fd()));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;

    /// A real file on a disk filesystem (O_DIRECT works there, not on tmpfs).
    fn disk_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("openhook-open-test")
            .tempdir_in("/var/tmp")
            .or_else(|_| tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    fn raw_open(path: &Path, flags: i32) -> OwnedFd {
        rustix::fs::open(
            path,
            OFlags::from_bits_retain(u32::from_ne_bytes((flags | libc::O_CLOEXEC).to_ne_bytes())),
            Mode::from_raw_mode(0o600),
        )
        .unwrap()
    }

    fn file_with(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn errno(r: io::Result<OpenedFile>) -> i32 {
        r.unwrap_err().raw_os_error().unwrap()
    }

    fn fdset(n: i64) -> PathBuf {
        PathBuf::from(format!("/dev/fdset/{n}"))
    }

    #[test]
    fn fdset_picks_the_fd_with_the_matching_access_mode() {
        let dir = disk_dir();
        let p = file_with(dir.path(), "disk.img", b"0123456789");
        let o = Opener::direct_unsandboxed();
        let ro = raw_open(&p, libc::O_RDONLY);
        let rw = raw_open(&p, libc::O_RDWR);
        let (ro_n, rw_n) = (ro.as_raw_fd(), rw.as_raw_fd());
        assert_eq!(
            o.add_fd(Some(1), ro, Some("r".into())).unwrap().fd,
            FdNum(ro_n)
        );
        assert_eq!(o.add_fd(Some(1), rw, None).unwrap().fd, FdNum(rw_n));

        let f = o.open(&fdset(1), libc::O_RDWR, 0).unwrap();
        assert!(f.is_fdset_dup());
        assert_ne!(f.as_raw_fd(), rw_n);
        // Same open file description as the rw member (kcmp would say so;
        // the shared offset shows it without privileges).
        f.write_all_at(b"AB", 0).unwrap();
        assert_eq!(getfl(&*f).unwrap() & libc::O_ACCMODE, libc::O_RDWR);
        assert!(rustix::io::fcntl_getfd(&*f)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC));
        let g = o.open(&fdset(1), libc::O_RDONLY, 0).unwrap();
        assert_eq!(getfl(&*g).unwrap() & libc::O_ACCMODE, libc::O_RDONLY);
        let mut s = String::new();
        (&*g).seek(SeekFrom::Start(0)).unwrap();
        g.file().read_to_string(&mut s).unwrap();
        assert_eq!(s, "AB23456789");
        assert_eq!(o.dup_count(1), 2);
        // No write-only member: EACCES. No set: ENOENT. Bad number: EINVAL.
        assert_eq!(errno(o.open(&fdset(1), libc::O_WRONLY, 0)), libc::EACCES);
        assert_eq!(errno(o.open(&fdset(9), libc::O_RDWR, 0)), libc::ENOENT);
        assert_eq!(
            errno(o.open(Path::new("/dev/fdset/x"), libc::O_RDWR, 0)),
            libc::EINVAL
        );
        assert_eq!(
            errno(o.open(Path::new("/dev/fdset/-1"), libc::O_RDWR, 0)),
            libc::EINVAL
        );
        drop(f);
        assert_eq!(o.dup_count(1), 1);
        drop(g);
        assert_eq!(o.dup_count(1), 0);
    }

    #[test]
    fn read_only_fd_for_a_read_write_drive_is_eacces() {
        let dir = disk_dir();
        let p = file_with(dir.path(), "ro.img", b"x");
        let o = Opener::direct_unsandboxed();
        o.add_fd(Some(0), raw_open(&p, libc::O_RDONLY), None)
            .unwrap();
        assert_eq!(errno(o.open(&fdset(0), libc::O_RDWR, 0)), libc::EACCES);
        assert!(o.open(&fdset(0), libc::O_RDONLY, 0).is_ok());
    }

    #[test]
    fn o_direct_fd_only_matches_o_direct_requests() {
        let dir = disk_dir();
        let p = file_with(dir.path(), "direct.img", &[0u8; 4096]);
        let o = Opener::direct_unsandboxed();
        o.add_fd(Some(2), raw_open(&p, libc::O_RDWR | libc::O_DIRECT), None)
            .unwrap();
        // cache=writeback asks without O_DIRECT: no match.
        assert_eq!(errno(o.open(&fdset(2), libc::O_RDWR, 0)), libc::EACCES);
        // cache=none asks with O_DIRECT: match, and the dup has O_DIRECT.
        let f = o.open(&fdset(2), libc::O_RDWR | libc::O_DIRECT, 0).unwrap();
        assert_ne!(getfl(&*f).unwrap() & libc::O_DIRECT, 0);
        // And the other way round: a plain fd does not serve O_DIRECT.
        o.add_fd(Some(3), raw_open(&p, libc::O_RDWR), None).unwrap();
        assert_eq!(
            errno(o.open(&fdset(3), libc::O_RDWR | libc::O_DIRECT, 0)),
            libc::EACCES
        );
    }

    #[test]
    fn setfl_o_sync_mismatch_and_truncate() {
        let dir = disk_dir();
        let p = file_with(dir.path(), "t.img", b"0123456789");
        let o = Opener::direct_unsandboxed();
        o.add_fd(Some(0), raw_open(&p, libc::O_RDWR), None).unwrap();
        // O_SYNC requested but the member lacks it: EINVAL (F_SETFL cannot add it).
        assert_eq!(
            errno(o.open(&fdset(0), libc::O_RDWR | libc::O_SYNC, 0)),
            libc::EINVAL
        );
        assert_eq!(o.dup_count(0), 0, "a failed open leaves no dup behind");
        // F_SETFL applies the status flags it can: O_APPEND, O_NONBLOCK.
        let f = o
            .open(
                &fdset(0),
                libc::O_RDWR | libc::O_APPEND | libc::O_NONBLOCK,
                0,
            )
            .unwrap();
        let fl = getfl(&*f).unwrap();
        assert_ne!(fl & libc::O_APPEND, 0);
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        drop(f);
        // O_TRUNC truncates; contents were 10 bytes.
        let f = o.open(&fdset(0), libc::O_RDWR | libc::O_TRUNC, 0).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        (&*f).write_all(b"new").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        // O_CREAT|O_EXCL truncates as QEMU does.
        let f = o
            .open(&fdset(0), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0)
            .unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
    }

    #[test]
    fn o_sync_member_serves_o_sync_requests() {
        let dir = disk_dir();
        let p = file_with(dir.path(), "s.img", b"");
        let o = Opener::direct_unsandboxed();
        o.add_fd(Some(0), raw_open(&p, libc::O_RDWR | libc::O_SYNC), None)
            .unwrap();
        assert!(o.open(&fdset(0), libc::O_RDWR | libc::O_SYNC, 0).is_ok());
        assert_eq!(errno(o.open(&fdset(0), libc::O_RDWR, 0)), libc::EINVAL);
    }

    #[test]
    fn remove_fd_closes_at_once_and_dups_keep_the_set() {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let o = Opener::direct_unsandboxed();
        let info = o.add_fd(None, w, Some("pipe".into())).unwrap();
        assert_eq!(info.fdset_id, 0);
        let dup = o.open(&fdset(0), libc::O_WRONLY, 0).unwrap();
        o.remove_fd(0, Some(i64::from(info.fd.0))).unwrap();
        // The member is closed at once; the dup still writes.
        (&*dup).write_all(b"z").unwrap();
        assert_eq!(
            serde_json::to_string(&o.query_fdsets()).unwrap(),
            r#"[{"fdset-id":0,"fds":[]}]"#
        );
        assert_eq!(errno(o.open(&fdset(0), libc::O_WRONLY, 0)), libc::EACCES);
        drop(dup);
        assert_eq!(serde_json::to_string(&o.query_fdsets()).unwrap(), "[]");
        // Every write end is closed now: the reader sees EOF after the byte.
        let mut b = [0u8; 2];
        assert_eq!(rustix::io::read(&r, &mut b).unwrap(), 1);
        assert_eq!(rustix::io::read(&r, &mut b).unwrap(), 0);
        assert_eq!(
            o.remove_fd(0, None).unwrap_err().to_string(),
            "File descriptor named 'fdset-id:0' not found"
        );
        let (_r2, w2) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        assert_eq!(o.add_fd(Some(-1), w2, None), Err(FdSetError::NegativeId));
    }

    #[test]
    fn add_fd_error_closes_the_fd() {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let o = Opener::direct_unsandboxed();
        assert!(o.add_fd(Some(-3), w, None).is_err());
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&r, &mut b).unwrap(), 0, "write end closed");
    }

    #[test]
    fn direct_route_opens_cloexec_and_hook_route_is_used() {
        let dir = disk_dir();
        let p = file_with(dir.path(), "plain", b"hi");
        let o = Opener::direct_unsandboxed();
        assert!(o.is_direct());
        let f = o.open(&p, libc::O_RDONLY, 0).unwrap();
        assert!(!f.is_fdset_dup());
        assert!(rustix::io::fcntl_getfd(&*f)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC));

        /// A real transport stand-in that records what it was asked and
        /// answers with a real fd (the wire client replaces it in main).
        struct Recorder(Mutex<Vec<(PathBuf, i32)>>, PathBuf);
        impl HookOpen for Recorder {
            fn open(&self, path: &Path, flags: i32, _mode: u32) -> io::Result<OwnedFd> {
                self.0.lock().unwrap().push((path.to_path_buf(), flags));
                if path == Path::new("/denied") {
                    return Err(io::Error::from_raw_os_error(libc::EACCES));
                }
                Ok(raw_open(&self.1, libc::O_RDONLY))
            }
        }
        let rec = Arc::new(Recorder(Mutex::new(Vec::new()), p.clone()));
        struct Shim(Arc<Recorder>);
        impl HookOpen for Shim {
            fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
                self.0.open(path, flags, mode)
            }
        }
        let o = Opener::for_config(Some(Box::new(Shim(rec.clone()))), SandboxSetting::On).unwrap();
        assert!(!o.is_direct());
        assert!(o.open(Path::new("/srv/x"), libc::O_RDWR, 0).is_ok());
        assert_eq!(
            errno(o.open(Path::new("/denied"), libc::O_RDONLY, 0)),
            libc::EACCES
        );
        // fd-set paths never reach the hook.
        assert_eq!(errno(o.open(&fdset(0), libc::O_RDONLY, 0)), libc::ENOENT);
        let calls = rec.0.lock().unwrap().clone();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].0, PathBuf::from("/srv/x"));
        assert_eq!(calls[0].1, libc::O_RDWR | libc::O_CLOEXEC);

        assert_eq!(
            Opener::for_config(None, SandboxSetting::On).err(),
            Some(OpenerError::NoHookInSandbox)
        );
        assert!(Opener::for_config(None, SandboxSetting::Off)
            .unwrap()
            .is_direct());
    }

    /// No emulator source outside this file opens a path: every file comes
    /// through the open hook, a declared fd or an fd set.
    /// Test modules (from the first `#[cfg(test)]` of a file) are skipped.
    #[test]
    fn no_other_module_opens_files() {
        const BANNED: &[&str] = &[
            "File::open",
            "File::create",
            "File::options",
            "OpenOptions",
            "openat",
            "libc::open",
            "rustix::fs::open",
            "nix::fcntl::open",
            "fs::read(",
            "fs::read_to_string",
            "fs::write(",
            "fs::read_dir",
            "Kvm::new(",
            "Kvm::open_with_cloexec",
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let this = root.join("fds").join("open.rs");
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && p != this {
                    files.push(p);
                }
            }
        }
        assert!(files.len() > 10, "found the sources");
        let mut offences = Vec::new();
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            for (i, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                let code = line.split("//").next().unwrap_or("");
                if bare_open_call(code) || BANNED.iter().any(|b| code.contains(b)) {
                    offences.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
        assert!(
            offences.is_empty(),
            "paths opened outside fds/open.rs:\n{}",
            offences.join("\n")
        );
    }

    /// The hook route end to end over a real socket pair, with the wire
    /// crate's server loop on the other side (a test broker that serves
    /// one file and denies everything else).
    #[test]
    fn hook_route_over_a_real_socket() {
        use openhook_wire::errno::Errno;
        use openhook_wire::hook::{Connection, Handler, OpenRequest};

        struct OneFile(PathBuf, Vec<(Vec<u8>, u32)>);
        impl Handler for OneFile {
            fn open(&mut self, r: &OpenRequest<'_>) -> Result<OwnedFd, Errno> {
                self.1.push((r.path.to_vec(), r.flags));
                if r.path == self.0.as_os_str().as_bytes() {
                    Ok(raw_open(&self.0, libc::O_RDONLY))
                } else {
                    Err(Errno::EACCES)
                }
            }
        }
        let dir = disk_dir();
        let p = file_with(dir.path(), "served", b"from the broker");
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let served = p.clone();
        let broker = std::thread::spawn(move || {
            let mut h = OneFile(served, Vec::new());
            Connection::new(theirs).serve(&mut h).unwrap();
            h.1
        });
        let o = Opener::with_hook_socket(ours);
        let f = o.open(&p, libc::O_RDONLY, 0).unwrap();
        let mut s = String::new();
        f.file().read_to_string(&mut s).unwrap();
        assert_eq!(s, "from the broker");
        assert!(rustix::io::fcntl_getfd(&*f)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC));
        assert_eq!(
            errno(o.open(Path::new("/etc/shadow"), libc::O_RDONLY, 0)),
            libc::EACCES
        );
        // fd-set paths are resolved locally and never sent.
        assert_eq!(errno(o.open(&fdset(5), libc::O_RDONLY, 0)), libc::ENOENT);
        drop(o);
        let seen = broker.join().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, p.as_os_str().as_bytes());
        assert_eq!(seen[1].0, b"/etc/shadow");
        let cloexec = u32::from_ne_bytes(libc::O_CLOEXEC.to_ne_bytes());
        assert_ne!(seen[0].1 & cloexec, 0);
    }

    #[test]
    fn handles_are_shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Opener>();
        send_sync::<OpenedFile>();
    }

    /// A call of a free function named `open` (not a method, not a definition).
    fn bare_open_call(code: &str) -> bool {
        code.match_indices("open(").any(|(at, _)| {
            let before = &code[..at];
            let prev = before.chars().last();
            !matches!(prev, Some(c) if c == '.' || c == '_' || c.is_alphanumeric())
                && !before.trim_end().ends_with("fn")
        })
    }

    #[test]
    fn the_grep_catches_what_it_should() {
        assert!(bare_open_call("let f = open(path, flags);"));
        assert!(bare_open_call("x(open(p))"));
        assert!(bare_open_call("fs::open(p)"));
        assert!(!bare_open_call("opener.open(path, 0, 0)"));
        assert!(!bare_open_call("pub fn open(&self) {}"));
        assert!(!bare_open_call("fdset_open(x)"));
    }
}
