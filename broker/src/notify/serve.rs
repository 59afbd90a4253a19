//! Serving the listener: a few threads receive notifications and answer
//! each one completely (so a slow one never holds the others up; opens
//! are non-blocking in `resolve.rs`, so a FIFO or device cannot hang a
//! thread either).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use openhook_wire::Errno;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{AtFlags, ResolveFlags};

use super::call::{self, Call, Dir, StatKind};
use super::path::{self, Absolute, Scope};
use super::sys::{self, Notif};
use crate::judge::{Judge, Request};
use crate::policy::flags::{O_CLOEXEC, O_CREAT, O_RDONLY, O_RDWR};
use crate::resolve::Target;

/// Threads blocked in `SECCOMP_IOCTL_NOTIF_RECV`. One: every answer is
/// non-blocking (opens are `O_NONBLOCK` until the type check, a `connect`
/// runs on a thread of its own), and measured per open one serving thread
/// is ~15% faster than two (the same thread is woken every time instead of
/// the kernel alternating between two; docs/performance.md). A program
/// that stalls the one thread (a page fault it never resolves in the path
/// it passed) stalls only its own path calls.
const THREADS: usize = 1;

/// Connects in flight on their own threads, and their limit.
static CONNECTS: AtomicUsize = AtomicUsize::new(0);
const MAX_CONNECTS: usize = 64;

/// The serving threads still running, for interrupting them at the end.
struct Running {
    /// (threads in their loop, threads that have left it).
    threads: Mutex<(Vec<libc::pthread_t>, usize)>,
    done: AtomicBool,
}

/// Serves `listener` until no process uses the filter any more or `stop`
/// becomes readable (the launched child was reaped). The serving threads
/// block in the receive ioctl (one syscall per notification fewer than a
/// poll first); this thread watches `stop` and the listener's hang-up and
/// then interrupts them with a signal.
pub fn serve(listener: &OwnedFd, judge: &Judge<'_>, stop: BorrowedFd<'_>) {
    if let Err(e) = sys::set_sync_wakeup(listener.as_fd()) {
        tracing::debug!("seccomp listener: no synchronous wake-up ({e})");
    }
    if let Err(e) = sys::install_wake_handler() {
        tracing::error!("seccomp listener: cannot install the wake-up handler: {e}");
        return;
    }
    let threads = THREADS;
    let running = Running {
        threads: Mutex::new((Vec::with_capacity(threads), 0)),
        done: AtomicBool::new(false),
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                lock(&running.threads).0.push(sys::this_thread());
                serve_loop(listener.as_fd(), judge, &running.done);
                let me = sys::this_thread();
                let mut list = lock(&running.threads);
                list.0.retain(|&t| t != me);
                list.1 += 1;
            });
        }
        wait_for_end(listener.as_fd(), stop);
        running.done.store(true, Ordering::SeqCst);
        // A thread may be between its `done` check and the ioctl when the
        // first signal lands: repeat until every one has left.
        loop {
            {
                let list = lock(&running.threads);
                if list.1 == threads {
                    break;
                }
                for &t in &list.0 {
                    sys::wake(t);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Blocks until `stop` is readable or every process under the filter has
/// exited (the listener hangs up).
fn wait_for_end(listener: BorrowedFd<'_>, stop: BorrowedFd<'_>) {
    loop {
        let mut fds = [
            PollFd::new(&listener, PollFlags::empty()),
            PollFd::new(&stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::error!("seccomp listener: poll: {e}");
                return;
            }
        }
        let hup = PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
        if !fds[1].revents().is_empty() || fds[0].revents().intersects(hup) {
            return;
        }
    }
}

fn serve_loop(listener: BorrowedFd<'_>, judge: &Judge<'_>, done: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        match sys::recv(listener) {
            Ok(n) => handle(listener, judge, &n),
            // Interrupted (serving is ending, or a stray signal), or the
            // asking thread died before it was received.
            Err(Errno::EINTR) | Err(Errno::ENOENT) => {}
            Err(e) => {
                tracing::error!("seccomp listener: receive: {e}");
                return;
            }
        }
    }
}

/// Answers one notification. A reply that fails because the thread died
/// meanwhile is not an error.
fn handle(listener: BorrowedFd<'_>, judge: &Judge<'_>, n: &Notif) {
    // The filter kills every other architecture; this is belt and braces.
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let answer = match call::classify(n.nr, n.args) {
        Some(c) if n.arch == AUDIT_ARCH_X86_64 => Handler { listener, judge, n }.call(c),
        _ => Answer::Reply(Err(Errno::ENOSYS)),
    };
    match answer {
        Answer::Reply(r) => {
            let _ = sys::reply(listener, n.id, r);
        }
        Answer::Done | Answer::Gone => {}
    }
}

/// How a notification ended.
enum Answer {
    /// Reply with this result.
    Reply(Result<i64, Errno>),
    /// Already answered (an fd injected with the reply).
    Done,
    /// The notification is no longer valid: no reply.
    Gone,
}

impl From<Result<i64, Errno>> for Answer {
    fn from(r: Result<i64, Errno>) -> Self {
        Answer::Reply(r)
    }
}

struct Handler<'a> {
    listener: BorrowedFd<'a>,
    judge: &'a Judge<'a>,
    n: &'a Notif,
}

/// A path read from the target and made absolute, with what the request
/// is about.
struct Named {
    abs: Absolute,
    target: Target,
}

impl Handler<'_> {
    fn tid(&self) -> i32 {
        self.n.pid
    }

    fn call(&self, c: Call) -> Answer {
        match c {
            Call::Open {
                dir,
                path,
                flags,
                mode,
                how,
            } => self.open(dir, path, flags, mode, how),
            Call::Stat {
                dir,
                path,
                buf,
                at_flags,
                kind,
            } => self.stat(dir, path, buf, at_flags, kind),
            Call::Access {
                dir,
                path,
                mode,
                at_flags,
            } => self.access(dir, path, mode, at_flags),
            Call::Readlink {
                dir,
                path,
                buf,
                size,
            } => self.readlink(dir, path, buf, size),
            Call::Statfs { path, buf } => self.statfs(path, buf),
            Call::Socket {
                bind,
                fd,
                addr,
                len,
            } => self.socket(bind, fd, addr, len),
        }
    }

    /// Reads a NUL-terminated path (at most `PATH_MAX` bytes with the NUL).
    fn read_path(&self, addr: u64) -> Result<Vec<u8>, Errno> {
        if addr == 0 {
            return Err(Errno::EFAULT);
        }
        let mut buf = vec![0u8; libc::PATH_MAX.unsigned_abs() as usize];
        let got = sys::read_mem(self.tid(), addr, &mut buf)?;
        match buf[..got].iter().position(|&b| b == 0) {
            Some(end) => {
                buf.truncate(end);
                Ok(buf)
            }
            None if got == buf.len() => Err(Errno::ENAMETOOLONG),
            None => Err(Errno::EFAULT),
        }
    }

    /// The base directory of a relative path, as an absolute path.
    fn base(&self, dir: Dir) -> Result<Vec<u8>, Errno> {
        let link = match dir {
            Dir::Cwd => format!("/proc/{}/cwd", self.tid()),
            Dir::Fd(fd) if fd < 0 => return Err(Errno::EBADF),
            Dir::Fd(fd) => format!("/proc/{}/fd/{fd}", self.tid()),
        };
        let target = rustix::fs::readlink(&link, Vec::new()).map_err(|e| match e {
            rustix::io::Errno::NOENT if matches!(dir, Dir::Fd(_)) => Errno::EBADF,
            e => e.into(),
        })?;
        let base = path::usable_base(target.as_bytes())?.to_vec();
        if matches!(dir, Dir::Fd(_)) && !crate::resolve::proc_link_is_dir(&link)? {
            return Err(Errno::ENOTDIR);
        }
        Ok(base)
    }

    /// Reads and resolves the path of a request; `Err(None)` when the
    /// notification went away while reading.
    fn name(&self, dir: Dir, addr: u64, scope: Scope) -> Result<Named, Option<Errno>> {
        let raw = self.read_path(addr).map_err(Some)?;
        let needs_base = raw.first() != Some(&b'/') || scope == Scope::InRoot;
        let base = if needs_base && !raw.is_empty() {
            Some(self.base(dir).map_err(Some)?)
        } else {
            None
        };
        // Everything read from the target is in hand: is the request
        // still the one we read it for?
        if !sys::id_valid(self.listener, self.n.id) {
            return Err(None);
        }
        let mut abs = path::absolute(base.as_deref(), &raw, scope).map_err(Some)?;
        let target = self.target_for(&abs.path);
        abs.path = path::proc_self_alias(abs.path, target.tgid);
        Ok(Named { abs, target })
    }

    /// `/proc/self` is the asking thread's process; its tgid is read only
    /// for paths below `/proc`.
    fn target_for(&self, path: &[u8]) -> Target {
        let tid = self.tid();
        let tgid = if path.starts_with(b"/proc/") {
            crate::resolve::tgid_of(tid).unwrap_or(tid)
        } else {
            tid
        };
        Target { tgid, tid }
    }

    fn request<'p>(&self, named: &'p Named, flags: u32, mode: u32) -> Request<'p> {
        Request {
            pid: self.tid(),
            target: named.target,
            path: &named.abs.path,
            flags,
            mode,
            syscall: Some(openhook_sandbox::notify::syscall_name(self.n.nr)),
        }
    }

    fn open(&self, dir: Dir, addr: u64, flags: u64, mode: u32, how: Option<(u64, u64)>) -> Answer {
        let (flags, mode, resolve) = match how {
            None => (flags, mode, call::Resolve::default()),
            Some((at, size)) => match self.read_how(at, size) {
                Ok(v) => v,
                Err(e) => return Answer::Reply(Err(e)),
            },
        };
        let scope = if resolve.in_root {
            Scope::InRoot
        } else {
            Scope::Normal
        };
        let named = match self.name(dir, addr, scope) {
            Ok(n) => n,
            Err(None) => return Answer::Gone,
            Err(Some(e)) => return Answer::Reply(Err(e)),
        };
        if resolve.beneath && named.abs.escapes_base {
            return Answer::Reply(Err(Errno::EXDEV));
        }
        let flags = match call::open_flags(flags, named.abs.dir_only) {
            Ok(f) => f,
            Err(e) => return Answer::Reply(Err(e)),
        };
        let req = self.request(&named, flags, mode);
        let fd = if resolve.extra == 0 {
            self.judge.open(&req)
        } else {
            self.judge.open_stricter(
                &req,
                ResolveFlags::from_bits_retain(u64::from(
                    u32::try_from(resolve.extra).unwrap_or(0),
                )),
            )
        };
        let fd = match fd {
            Ok(fd) => fd,
            Err(e) => return Answer::Reply(Err(e)),
        };
        match sys::add_fd_and_reply(self.listener, self.n.id, fd.as_fd(), flags & O_CLOEXEC != 0) {
            Ok(_) => Answer::Done,
            // The thread died: nothing to answer.
            Err(Errno::ENOENT) => Answer::Gone,
            // Injection failed (EMFILE in the target, ...): an errno, never
            // a fall-back that lets the target open it itself.
            Err(e) => Answer::Reply(Err(e)),
        }
    }

    fn read_how(&self, at: u64, size: u64) -> Result<(u64, u32, call::Resolve), Errno> {
        let size = usize::try_from(size).map_err(|_| Errno::EINVAL)?;
        if size < call::OPEN_HOW_SIZE {
            return Err(Errno::EINVAL);
        }
        if size > call::OPEN_HOW_MAX {
            return Err(Errno::new(libc::E2BIG).unwrap_or(Errno::EINVAL));
        }
        let mut bytes = vec![0u8; size];
        if sys::read_mem(self.tid(), at, &mut bytes)? != size {
            return Err(Errno::EFAULT);
        }
        let how = call::open_how(&bytes)?;
        let mode = u32::try_from(how.mode).map_err(|_| Errno::EINVAL)?;
        Ok((how.flags, mode, call::resolve(how.resolve)?))
    }

    /// A metadata request on a path: judged, then `f` on the `O_PATH` fd.
    /// An empty path with `AT_EMPTY_PATH` means the fd itself: no path,
    /// no judgement (the target already holds it).
    fn on_path(
        &self,
        dir: Dir,
        addr: u64,
        at_flags: u32,
        flags: u32,
        f: impl FnOnce(BorrowedFd<'_>) -> Result<i64, Errno>,
    ) -> Answer {
        let empty_ok = at_flags & AtFlags::EMPTY_PATH.bits() != 0;
        if empty_ok {
            if let (Dir::Fd(fd), Ok(raw)) = (dir, self.read_path(addr)) {
                if raw.is_empty() {
                    if !sys::id_valid(self.listener, self.n.id) {
                        return Answer::Gone;
                    }
                    return match sys::target_fd(self.tid(), fd) {
                        Ok(own) => f(own.as_fd()).into(),
                        Err(_) => Answer::Reply(Err(Errno::EBADF)),
                    };
                }
            }
        }
        let named = match self.name(dir, addr, Scope::Normal) {
            Ok(n) => n,
            Err(None) => return Answer::Gone,
            Err(Some(Errno::ENOENT)) if empty_ok && dir == Dir::Cwd => {
                // AT_FDCWD with "": the working directory itself.
                match self.name_of_cwd() {
                    Ok(n) => n,
                    Err(e) => return Answer::Reply(Err(e)),
                }
            }
            Err(Some(e)) => return Answer::Reply(Err(e)),
        };
        let nofollow = at_flags & AtFlags::SYMLINK_NOFOLLOW.bits() != 0;
        let req = self.request(&named, flags, 0);
        match self.judge.probe(&req, nofollow) {
            Ok(fd) => f(fd.as_fd()).into(),
            Err(e) => Answer::Reply(Err(e)),
        }
    }

    fn name_of_cwd(&self) -> Result<Named, Errno> {
        let base = self.base(Dir::Cwd)?;
        let abs = path::absolute(Some(&base), b".", Scope::Normal)?;
        let target = self.target_for(&abs.path);
        Ok(Named { abs, target })
    }

    fn stat(&self, dir: Dir, addr: u64, buf: u64, at_flags: u32, kind: StatKind) -> Answer {
        let tid = self.tid();
        self.on_path(dir, addr, at_flags, O_RDONLY, |fd| {
            match kind {
                StatKind::Stat => sys::write_mem(tid, buf, &sys::stat_bytes(fd, at_flags)?)?,
                StatKind::Statx(mask) => {
                    sys::write_mem(tid, buf, &sys::statx_bytes(fd, at_flags, mask)?)?
                }
            }
            Ok(0)
        })
    }

    fn access(&self, dir: Dir, addr: u64, mode: u32, at_flags: u32) -> Answer {
        if mode & !0o7 != 0 {
            return Answer::Reply(Err(Errno::EINVAL));
        }
        self.on_path(dir, addr, at_flags, call::access_flags(mode), |fd| {
            sys::access_fd(fd, mode, at_flags & AtFlags::EACCESS.bits() != 0)?;
            Ok(0)
        })
    }

    fn readlink(&self, dir: Dir, addr: u64, buf: u64, size: u64) -> Answer {
        let Ok(size) = usize::try_from(size) else {
            return Answer::Reply(Err(Errno::EINVAL));
        };
        if size == 0 || size > i32::MAX as usize {
            return Answer::Reply(Err(Errno::EINVAL));
        }
        let tid = self.tid();
        let nofollow = AtFlags::SYMLINK_NOFOLLOW.bits();
        self.on_path(dir, addr, nofollow, O_RDONLY, |fd| {
            let target = rustix::fs::readlinkat(fd, "", Vec::new())?;
            let bytes = target.as_bytes();
            let n = bytes.len().min(size);
            sys::write_mem(tid, buf, &bytes[..n])?;
            Ok(i64::try_from(n).unwrap_or(0))
        })
    }

    fn statfs(&self, addr: u64, buf: u64) -> Answer {
        let tid = self.tid();
        self.on_path(Dir::Cwd, addr, 0, O_RDONLY, |fd| {
            sys::write_mem(tid, buf, &sys::statfs_bytes(fd)?)?;
            Ok(0)
        })
    }

    /// bind/connect. A pathname `AF_UNIX` address is judged as the socket
    /// file (`bind` creates it: the rule needs `create`; both need
    /// `types` to include `socket`) and performed by the broker on a copy
    /// of the target's socket, with the broker's copy of the address.
    /// Abstract and non-unix addresses are refused (the target's Landlock
    /// domain denies TCP and scopes abstract sockets; the broker does not
    /// perform them on its behalf).
    fn socket(&self, bind: bool, fd: i32, addr: u64, len: u64) -> Answer {
        let sun_max = std::mem::size_of::<libc::sockaddr_un>();
        let Ok(len) = usize::try_from(len) else {
            return Answer::Reply(Err(Errno::EINVAL));
        };
        if !(2..=128).contains(&len) {
            return Answer::Reply(Err(Errno::EINVAL));
        }
        let mut raw = vec![0u8; len];
        match sys::read_mem(self.tid(), addr, &mut raw) {
            Ok(n) if n == len => {}
            Ok(_) | Err(_) => return Answer::Reply(Err(Errno::EFAULT)),
        }
        if !sys::id_valid(self.listener, self.n.id) {
            return Answer::Gone;
        }
        let family = u16::from_ne_bytes([raw[0], raw[1]]);
        let sys_name = openhook_sandbox::notify::syscall_name(self.n.nr);
        let unix = u32::from(family) == libc::AF_UNIX.unsigned_abs();
        let sun_path = &raw[2..len.min(sun_max)];
        let name_end = sun_path
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(sun_path.len());
        if !unix || sun_path.is_empty() || name_end == 0 {
            let what = if unix {
                "abstract or unnamed unix address"
            } else {
                "non-unix address"
            };
            let req = Request {
                pid: self.tid(),
                target: Target {
                    tgid: self.tid(),
                    tid: self.tid(),
                },
                path: b"",
                flags: 0,
                mode: 0,
                syscall: Some(sys_name),
            };
            let e = self
                .judge
                .refuse(&req, Errno::EACCES, format!("{sys_name}: {what} refused"));
            return Answer::Reply(Err(e));
        }
        let raw_path = &sun_path[..name_end];
        let base = if raw_path[0] == b'/' {
            None
        } else {
            match self.base(Dir::Cwd) {
                Ok(b) => Some(b),
                Err(e) => return Answer::Reply(Err(e)),
            }
        };
        let abs = match path::absolute(base.as_deref(), raw_path, Scope::Normal) {
            Ok(a) => a,
            Err(e) => return Answer::Reply(Err(e)),
        };
        let target = self.target_for(&abs.path);
        let named = Named { abs, target };
        let sock = match sys::target_fd(self.tid(), fd) {
            Ok(s) => s,
            Err(_) => return Answer::Reply(Err(Errno::EBADF)),
        };
        let flags = if bind { O_RDWR | O_CREAT } else { O_RDWR };
        let req = self.request(&named, flags, 0o777);
        if bind {
            return Answer::Reply(self.judge.bind_socket(&req, sock.as_fd()).map(|()| 0));
        }
        match self.judge.socket_file(&req) {
            Ok(file) => self.connect_detached(sock, file),
            Err(e) => Answer::Reply(Err(e)),
        }
    }

    /// A connect may block (the peer's backlog full, a blocking socket):
    /// it runs on a detached thread of its own that answers the
    /// notification when it returns, so it never holds a serving thread,
    /// nor the broker's exit. At most [`MAX_CONNECTS`] at once (then
    /// `EAGAIN`, as a full backlog says for a non-blocking socket).
    fn connect_detached(&self, sock: OwnedFd, file: OwnedFd) -> Answer {
        if CONNECTS.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTS {
            CONNECTS.fetch_sub(1, Ordering::SeqCst);
            return Answer::Reply(Err(Errno::EAGAIN));
        }
        let listener = match self.listener.try_clone_to_owned() {
            Ok(l) => l,
            Err(_) => {
                CONNECTS.fetch_sub(1, Ordering::SeqCst);
                return Answer::Reply(Err(Errno::EAGAIN));
            }
        };
        let id = self.n.id;
        let spawned = std::thread::Builder::new()
            .name("connect".into())
            .spawn(move || {
                let r = crate::resolve::connect_through(sock.as_fd(), file.as_fd());
                let _ = sys::reply(listener.as_fd(), id, r.map(|()| 0));
                CONNECTS.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(_) => Answer::Done,
            Err(_) => {
                CONNECTS.fetch_sub(1, Ordering::SeqCst);
                Answer::Reply(Err(Errno::EAGAIN))
            }
        }
    }
}
