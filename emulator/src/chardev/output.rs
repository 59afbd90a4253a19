//! What a chardev does with the bytes its user writes.
//!
//! - A file: an [`OpenedFile`] from the single open entry (a hook-opened
//!   path or a tracked `/dev/fdset/N` dup), or any writable fd.
//! - stdout.
//! - A socket: a connected one (client mode), or a listening one (server
//!   mode) served by a small accept thread; the newest client gets the
//!   output, and while nobody is connected output is dropped, as QEMU's
//!   socket chardev does. Sends never block the writer (the vCPU): what
//!   the kernel does not take is held (up to [`MAX_PENDING`] bytes) and
//!   sent first next time, and while bytes are held
//!   [`ChardevOutput::ready`] is false, so the UART shows its transmitter
//!   busy and a guest that polls the line status waits for a slow client
//!   (QEMU's serial likewise retries a full socket). Only bytes beyond the
//!   held maximum are dropped.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{SendFlags, SocketFlags};

use crate::fds::open::OpenedFile;

/// Syscalls of a chardev's writer (the vCPU thread running the UART, a
/// monitor thread): file and socket output, the port's lock.
pub const SYSCALLS: &[i64] = &[libc::SYS_write, libc::SYS_sendto, libc::SYS_futex];

/// Most bytes a socket chardev holds for a client that is not reading.
pub const MAX_PENDING: usize = 64 * 1024;

/// Syscalls of a listening chardev's accept thread (started from a
/// monitor thread by `chardev-add`).
pub const ACCEPT_SYSCALLS: &[i64] = &[
    libc::SYS_accept4,
    libc::SYS_poll,
    libc::SYS_pipe2,
    libc::SYS_close,
    libc::SYS_listen,
    libc::SYS_clone3,
    libc::SYS_clone,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_madvise,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_getaffinity,
    libc::SYS_prctl,
    libc::SYS_exit,
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A chardev backend's output side.
pub enum ChardevOutput {
    /// `file` with `out` opened through `fds::open` (path or fd set).
    File(OpenedFile),
    /// Any writable fd the emulator owns (e.g. a pipe).
    Fd(OwnedFd),
    /// `stdio`: fd 1.
    Stdout,
    /// `socket`.
    Socket(Arc<SocketOutput>),
    /// A chardev a QMP monitor serves on; it has no output of its own.
    Monitor,
    /// `null`: output is discarded.
    Null,
}

fn write_all(fd: BorrowedFd<'_>, mut b: &[u8]) -> io::Result<()> {
    while !b.is_empty() {
        match rustix::io::write(fd, b) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => b = &b[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl ChardevOutput {
    /// Writes all of `buf` (a socket may drop it; see the module docs).
    pub fn write_bytes(&self, buf: &[u8]) -> io::Result<()> {
        match self {
            ChardevOutput::File(f) => write_all(f.as_fd(), buf),
            ChardevOutput::Fd(fd) => write_all(fd.as_fd(), buf),
            ChardevOutput::Stdout => write_all(rustix::stdio::stdout(), buf),
            ChardevOutput::Socket(s) => {
                s.send(buf);
                Ok(())
            }
            ChardevOutput::Monitor | ChardevOutput::Null => Ok(()),
        }
    }

    /// Whether a byte written now would go out at once: false only while a
    /// socket holds bytes its client has no room for (files and pipes block
    /// instead; without a client bytes are dropped either way).
    pub fn ready(&self) -> bool {
        match self {
            ChardevOutput::Socket(s) => s.ready(),
            _ => true,
        }
    }

    /// The QAPI backend name (`query-chardev`'s `filename` prefix).
    pub fn kind(&self) -> &'static str {
        match self {
            ChardevOutput::File(_) | ChardevOutput::Fd(_) => "file",
            ChardevOutput::Stdout => "stdio",
            ChardevOutput::Socket(_) => "socket",
            ChardevOutput::Monitor => "monitor",
            ChardevOutput::Null => "null",
        }
    }

    /// Stops what runs on the chardev's behalf (a listener's thread); fds
    /// close when the last handle drops.
    pub fn close(&self) {
        if let ChardevOutput::Socket(s) = self {
            s.close();
        }
    }
}

/// A socket chardev's connection and (in server mode) its accept thread.
pub struct SocketOutput {
    conn: Arc<Mutex<Option<Conn>>>,
    /// Dropping this write end stops the accept thread.
    stop: Mutex<Option<OwnedFd>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SocketOutput {
    /// Client mode: `fd` is a connected socket.
    pub fn connected(fd: OwnedFd) -> Arc<SocketOutput> {
        Arc::new(SocketOutput {
            conn: Arc::new(Mutex::new(Some(Conn::new(fd)))),
            stop: Mutex::new(None),
            thread: Mutex::new(None),
        })
    }

    /// Server mode on a socket already in the listening state. With
    /// `wait`, blocks until the first client connects (QEMU's `wait=on`).
    pub fn listening(listener: OwnedFd, wait: bool) -> io::Result<Arc<SocketOutput>> {
        let conn = Arc::new(Mutex::new(None));
        if wait {
            *lock(&conn) = Some(Conn::new(accept(&listener)?));
        }
        let (stop_r, stop_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let c = conn.clone();
        let thread = std::thread::Builder::new()
            .name("chardev-accept".into())
            .spawn(move || accept_loop(&listener, &stop_r, &c))?;
        Ok(Arc::new(SocketOutput {
            conn,
            stop: Mutex::new(Some(stop_w)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Whether a peer is connected now.
    pub fn is_connected(&self) -> bool {
        lock(&self.conn).is_some()
    }

    /// Nothing held back, or nobody to send to.
    fn ready(&self) -> bool {
        let mut conn = lock(&self.conn);
        match conn.as_mut().map(Conn::flush) {
            None | Some(Flushed::Done) => true,
            Some(Flushed::Held) => false,
            Some(Flushed::Gone) => {
                *conn = None;
                true
            }
        }
    }

    fn send(&self, buf: &[u8]) {
        let mut conn = lock(&self.conn);
        let Some(c) = conn.as_mut() else {
            return;
        };
        // Held bytes go first, so the client sees them in order; past the
        // maximum new bytes are dropped (as a UART overrun loses them).
        let room = MAX_PENDING.saturating_sub(c.pending.len());
        c.pending.extend(&buf[..buf.len().min(room)]);
        if c.flush() == Flushed::Gone {
            *conn = None;
        }
    }

    fn close(&self) {
        drop(lock(&self.stop).take());
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        *lock(&self.conn) = None;
    }
}

impl Drop for SocketOutput {
    fn drop(&mut self) {
        self.close();
    }
}

fn accept(listener: &OwnedFd) -> io::Result<OwnedFd> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Err(Errno::INTR) | Err(Errno::CONNABORTED) => {}
            r => return r.map_err(io::Error::from),
        }
    }
}

/// A connected client and the bytes it has not had room for yet.
struct Conn {
    fd: OwnedFd,
    pending: std::collections::VecDeque<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Flushed {
    /// Everything is out.
    Done,
    /// The client has no room; bytes are held.
    Held,
    /// The peer went away.
    Gone,
}

impl Conn {
    fn new(fd: OwnedFd) -> Conn {
        Conn {
            fd,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// Sends held bytes without blocking.
    fn flush(&mut self) -> Flushed {
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            match rustix::net::send(&self.fd, front, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Ok(n) => drop(self.pending.drain(..n)),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Flushed::Held,
                Err(_) => return Flushed::Gone,
            }
        }
        Flushed::Done
    }
}

fn accept_loop(listener: &OwnedFd, stop: &OwnedFd, conn: &Mutex<Option<Conn>>) {
    loop {
        let mut polls = [
            PollFd::new(listener, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        match rustix::event::poll(&mut polls, None) {
            Err(Errno::INTR) => continue,
            Err(_) => return,
            Ok(_) => {}
        }
        if !polls[1].revents().is_empty() {
            return;
        }
        if !polls[0].revents().is_empty() {
            match accept(listener) {
                // The newest client gets the output.
                Ok(c) => *lock(conn) = Some(Conn::new(c)),
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn listening_socket_serves_the_newest_client_and_stops_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = UnixListener::bind(&path).unwrap();
        let out = ChardevOutput::Socket(SocketOutput::listening(l.into(), false).unwrap());
        // Nobody connected: dropped, no error.
        out.write_bytes(b"nobody").unwrap();
        let mut c = UnixStream::connect(&path).unwrap();
        let ChardevOutput::Socket(s) = &out else {
            unreachable!()
        };
        while !s.is_connected() {
            std::thread::yield_now();
        }
        out.write_bytes(b"hello").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        out.close();
        // The connection is closed: EOF.
        assert_eq!(c.read(&mut b).unwrap(), 0);
    }

    #[test]
    fn wait_blocks_until_a_client_connects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let l = UnixListener::bind(&path).unwrap();
        let p = path.clone();
        let t = std::thread::spawn(move || UnixStream::connect(p).unwrap());
        let s = SocketOutput::listening(l.into(), true).unwrap();
        assert!(s.is_connected(), "wait=on returns with a client");
        let mut c = t.join().unwrap();
        ChardevOutput::Socket(s).write_bytes(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }
}
