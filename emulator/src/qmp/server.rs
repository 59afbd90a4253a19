//! The monitor's I/O shell: sockets, SCM_RIGHTS intake, events.
//!
//! - A listening monitor serves one client at a time (others wait in the
//!   backlog, as with QEMU's socket chardev); several monitors run at once,
//!   one thread each. A connected socket or stdio serves one conversation.
//! - Each connection gets the greeting, then a [`Session`] turns its bytes
//!   into replies; commands run through [`super::commands`].
//! - fds arriving with SCM_RIGHTS (alone with a whitespace byte, or with a
//!   command's bytes) become the connection's *pending batch*: a newer
//!   batch closes the older one, a command that takes an fd takes the
//!   first and closes the rest, and whatever is left when the client goes
//!   is closed (design §8).
//! - Events are queued per connection and written by the connection's own
//!   thread, so a client that stops reading stalls only itself; a queue
//!   over [`EVENT_QUEUE_MAX`] drops its oldest events.
//!
//! The monitor threads start after the sandbox is entered: they only use
//! fds they are given (a `[[listen]]` socket, `fd=N`, socket activation,
//! stdio).
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

use openhook_wire::qmp::{Event, Timestamp};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags};
use serde_json::Value;

use super::backend::{FdSets, Machine};
use super::commands::Ctx;
use super::session::{Effect, Output, Session};
use crate::chardev::Chardevs;
use crate::fds::named::NamedFds;

/// Most fds the kernel passes in one SCM_RIGHTS message (`SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;
/// Bytes read per `recvmsg`.
const READ_CHUNK: usize = 64 * 1024;
/// Events held for one slow client before the oldest are dropped.
pub const EVENT_QUEUE_MAX: usize = 1024;

/// Syscalls a monitor thread makes (for its seccomp list).
pub const SYSCALLS: &[i64] = &[
    libc::SYS_accept4,
    libc::SYS_recvmsg,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_sendto,
    libc::SYS_poll,
    libc::SYS_pipe2,
    libc::SYS_close,
    libc::SYS_fcntl,
    libc::SYS_getsockopt,
    libc::SYS_listen,
    libc::SYS_dup,
    libc::SYS_clock_gettime,
    libc::SYS_futex,
];

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connected client's event queue and the pipe that wakes its thread.
struct Subscriber {
    queue: Mutex<Outbox>,
    /// Signalled when the connection has written everything queued.
    written: Condvar,
    wake: OwnedFd,
}

#[derive(Default)]
struct Outbox {
    events: VecDeque<Event>,
    /// The connection thread is writing events it took from `events`.
    writing: bool,
}

/// What the monitors drive: the emulator's parts, each optional so a
/// monitor can run (and be tested) with only some of them.
#[derive(Default)]
pub struct HubParts {
    /// `-name`
    pub name: Option<String>,
    pub machine: Option<Arc<dyn Machine>>,
    pub fdsets: Option<Arc<dyn FdSets>>,
    pub chardevs: Option<Arc<Chardevs>>,
}

/// State shared by every monitor of the emulator.
pub struct Hub {
    name: Option<String>,
    machine: Option<Arc<dyn Machine>>,
    fdsets: Option<Arc<dyn FdSets>>,
    chardevs: Option<Arc<Chardevs>>,
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
}

impl Hub {
    pub fn new(parts: HubParts) -> Arc<Hub> {
        Arc::new(Hub {
            name: parts.name,
            machine: parts.machine,
            fdsets: parts.fdsets,
            chardevs: parts.chardevs,
            subscribers: Mutex::new(Vec::new()),
        })
    }

    /// `-name`
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn machine(&self) -> Option<&Arc<dyn Machine>> {
        self.machine.as_ref()
    }

    pub fn fdsets(&self) -> Option<&Arc<dyn FdSets>> {
        self.fdsets.as_ref()
    }

    pub fn chardevs(&self) -> Option<&Arc<Chardevs>> {
        self.chardevs.as_ref()
    }

    /// Broadcasts an event, stamped now, to every connected client (each
    /// prints it only once negotiated). Never blocks on a client.
    pub fn emit(&self, event: &str, data: Option<Value>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let e = Event {
            timestamp: Timestamp {
                seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                microseconds: i64::from(now.subsec_micros()),
            },
            event: event.to_string(),
            data,
        };
        for s in lock(&self.subscribers).iter() {
            let mut q = lock(&s.queue);
            if q.events.len() >= EVENT_QUEUE_MAX {
                q.events.pop_front();
            }
            q.events.push_back(e.clone());
            drop(q);
            // Non-blocking; a full pipe already means "wake up".
            let _ = rustix::io::write(&s.wake, &[1]);
        }
    }

    fn subscribe(&self) -> io::Result<(Arc<Subscriber>, OwnedFd)> {
        let (r, w) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        let s = Arc::new(Subscriber {
            queue: Mutex::new(Outbox::default()),
            written: Condvar::new(),
            wake: w,
        });
        lock(&self.subscribers).push(s.clone());
        Ok((s, r))
    }

    fn unsubscribe(&self, s: &Arc<Subscriber>) {
        lock(&self.subscribers).retain(|x| !Arc::ptr_eq(x, s));
        // Nothing will be written for it any more.
        let mut q = lock(&s.queue);
        q.events.clear();
        q.writing = false;
        s.written.notify_all();
    }

    /// Waits (at most `timeout` in all) until every connected client has
    /// been sent the events emitted so far; used before the emulator
    /// exits, so a `quit`'s SHUTDOWN reaches the clients as with QEMU. A
    /// client that does not read only costs the timeout.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let subs: Vec<Arc<Subscriber>> = lock(&self.subscribers).clone();
        for s in subs {
            let mut q = lock(&s.queue);
            while !q.events.is_empty() || q.writing {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                q = s
                    .written
                    .wait_timeout(q, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

/// Per-monitor state that outlives a connection: the `getfd` names.
#[derive(Default)]
pub struct Monitor {
    named: Mutex<NamedFds>,
}

impl Monitor {
    pub fn new() -> Arc<Monitor> {
        Arc::new(Monitor::default())
    }

    /// The name table (`getfd`, `closefd`, consumers).
    pub fn named(&self) -> MutexGuard<'_, NamedFds> {
        lock(&self.named)
    }
}

/// fds received and not yet claimed by a command.
#[derive(Debug, Default)]
pub struct FdBatch(Vec<OwnedFd>);

impl FdBatch {
    /// A new batch replaces (closes) the old one.
    pub fn replace(&mut self, fds: Vec<OwnedFd>) {
        self.0 = fds;
    }

    /// The first fd; the rest of the batch is closed.
    pub fn take_first(&mut self) -> Option<OwnedFd> {
        let mut fds = std::mem::take(&mut self.0).into_iter();
        fds.next()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a monitor talks.
pub enum Transport {
    /// A listening socket: accept clients one after another.
    Listener(OwnedFd),
    /// A listening socket whose first client was accepted before start-up
    /// went on (`wait=on`): serve it, then accept as [`Transport::Listener`].
    ListenerWithFirst { listener: OwnedFd, first: OwnedFd },
    /// One connected socket (client mode, or a socketpair end).
    Connected(OwnedFd),
    /// fd 0 in, fd 1 out.
    Stdio,
}

/// Starts a monitor thread.
pub fn spawn(
    hub: Arc<Hub>,
    monitor: Arc<Monitor>,
    transport: Transport,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("qmp".into())
        .spawn(move || run(&hub, &monitor, transport))
}

/// Runs a monitor on the calling thread until its transport ends.
pub fn run(hub: &Hub, monitor: &Monitor, transport: Transport) {
    match transport {
        Transport::ListenerWithFirst { listener, first } => {
            let _ = serve(hub, monitor, first.as_fd(), first.as_fd(), true);
            drop(first);
            run(hub, monitor, Transport::Listener(listener));
        }
        Transport::Listener(l) => loop {
            match rustix::net::accept_with(&l, SocketFlags::CLOEXEC) {
                Ok(conn) => {
                    let _ = serve(hub, monitor, conn.as_fd(), conn.as_fd(), true);
                }
                Err(Errno::INTR) | Err(Errno::CONNABORTED) => {}
                Err(e) => {
                    tracing::error!("QMP monitor: accept failed: {e}");
                    return;
                }
            }
        },
        Transport::Connected(c) => {
            let _ = serve(hub, monitor, c.as_fd(), c.as_fd(), true);
        }
        Transport::Stdio => {
            let _ = serve(
                hub,
                monitor,
                rustix::stdio::stdin(),
                rustix::stdio::stdout(),
                false,
            );
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut p = [PollFd::new(&fd, PollFlags::OUT)];
                rustix::event::poll(&mut p, None)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads what is there; fds that came along replace the pending batch.
/// Returns 0 at end of input.
fn receive(
    input: BorrowedFd<'_>,
    is_socket: bool,
    buf: &mut [u8],
    batch: &mut FdBatch,
) -> io::Result<usize> {
    if !is_socket {
        return loop {
            match rustix::io::read(input, &mut *buf) {
                Err(Errno::INTR) => {}
                r => break r.map_err(io::Error::from),
            }
        };
    }
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(SCM_MAX_FD))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match rustix::net::recvmsg(
            input,
            &mut [io::IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => {}
            r => break r?,
        }
    };
    // Own every fd before looking at anything else.
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if !fds.is_empty() {
        batch.replace(fds);
    }
    Ok(msg.bytes)
}

/// One conversation: greeting, then commands and events until EOF.
fn serve(
    hub: &Hub,
    monitor: &Monitor,
    input: BorrowedFd<'_>,
    output: BorrowedFd<'_>,
    is_socket: bool,
) -> io::Result<()> {
    let (sub, wake) = hub.subscribe()?;
    let result = converse(hub, monitor, input, output, is_socket, &sub, wake.as_fd());
    hub.unsubscribe(&sub);
    result
}

fn converse(
    hub: &Hub,
    monitor: &Monitor,
    input: BorrowedFd<'_>,
    output: BorrowedFd<'_>,
    is_socket: bool,
    sub: &Subscriber,
    wake: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut session = Session::default();
    let mut batch = FdBatch::default();
    let mut buf = vec![0u8; READ_CHUNK];
    write_all(output, &Session::greeting())?;
    loop {
        let mut polls = [
            PollFd::new(&input, PollFlags::IN),
            PollFd::new(&wake, PollFlags::IN),
        ];
        match rustix::event::poll(&mut polls, None) {
            Err(Errno::INTR) => continue,
            r => r?,
        };
        let input_ready = !polls[0].revents().is_empty();
        let wake_ready = !polls[1].revents().is_empty();
        if wake_ready {
            let mut drain = [0u8; 64];
            while matches!(rustix::io::read(wake, &mut drain), Ok(n) if n > 0) {}
            let events: Vec<Event> = {
                let mut q = lock(&sub.queue);
                q.writing = true;
                q.events.drain(..).collect()
            };
            let mut result = Ok(());
            for e in &events {
                if let Some(line) = session.event(e) {
                    result = write_all(output, &line);
                    if result.is_err() {
                        break;
                    }
                }
            }
            lock(&sub.queue).writing = false;
            sub.written.notify_all();
            result?;
        }
        if !input_ready {
            continue;
        }
        let n = receive(input, is_socket, &mut buf, &mut batch)?;
        if n == 0 {
            // End of input: the pending batch is closed as it drops.
            return Ok(());
        }
        let mut ctx = Ctx {
            hub,
            monitor,
            batch: &mut batch,
        };
        for out in session.feed(&buf[..n], &mut ctx) {
            match out {
                Output::Send(bytes) => write_all(output, &bytes)?,
                Output::Effect(Effect::Quit) => {
                    if let Some(m) = hub.machine() {
                        m.quit();
                    }
                }
            }
        }
    }
}

/// Blocks until a client connects to `listener` (`wait=on`).
pub fn accept_first(listener: &OwnedFd) -> io::Result<OwnedFd> {
    loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Err(Errno::INTR) | Err(Errno::CONNABORTED) => {}
            r => return r.map_err(io::Error::from),
        }
    }
}

/// `true` when `fd` is a socket (what `chardev-add` `fd` demands).
pub fn is_socket(fd: BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_type(fd).is_ok()
}
