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
//!   is closed (docs/qmp.md).
//! - Events are queued per connection and written by the connection's own
//!   thread, so a client that stops reading stalls only itself; a queue
//!   over [`EVENT_QUEUE_MAX`](super::hub::EVENT_QUEUE_MAX) drops its oldest events.
//!
//! The monitor threads start after the sandbox is entered: they only use
//! fds they are given (a `[[listen]]` socket, `fd=N`, socket activation,
//! stdio).
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use openhook_wire::qmp::Event;
use openhook_wire::scm::{self, ScmError};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::SocketFlags;

use super::commands::Ctx;
use super::hub::{lock, FdBatch, Hub, Monitor, Subscriber};
use super::session::{Effect, Output, Session};

/// Bytes read per `recvmsg`.
const READ_CHUNK: usize = 64 * 1024;

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
    // Every fd arrives close-on-exec and owned; MSG_CTRUNC or an error
    // closes them all and ends the connection.
    let got = scm::recv_with_fds(input, buf, scm::MAX_FDS).map_err(|e| {
        if matches!(e, ScmError::Truncated { .. }) {
            tracing::warn!("QMP monitor: {e}; closing the connection");
        }
        io::Error::from(e)
    })?;
    if !got.fds.is_empty() {
        batch.replace(got.fds);
    }
    Ok(got.bytes)
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
