//! A blocking `-open-hook-fd` client, safe to share between threads.
//!
//! Requests are serialised by a mutex: strictly one request in flight per
//! connection (docs/protocol.md). Any protocol violation by the broker (a reply
//! with the wrong command, a success without an fd, an fd with a failure,
//! more than one fd, a bad reply size) closes every fd that came with the
//! reply, fails the call and marks the connection broken: later calls fail
//! at once, since the stream can no longer be trusted to be in step.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

use crate::hook::frame::{self, FrameError, REPLY_LEN};
use crate::scm::{self, ScmError};

/// Why a call failed for a reason other than the broker's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Sending or receiving failed.
    #[error(transparent)]
    Scm(#[from] ScmError),
    /// The reply frame is malformed.
    #[error("bad reply from broker: {0}")]
    Frame(#[from] FrameError),
    /// The broker closed the connection before (or while) replying.
    #[error("broker closed the connection")]
    Closed,
    /// The reply echoes another command.
    #[error("reply for command {got}, expected {expected}")]
    WrongCommand {
        /// Command of our request.
        expected: u32,
        /// Command in the reply.
        got: u32,
    },
    /// `result == 0` without an fd.
    #[error("success reply carries no fd")]
    MissingFd,
    /// An fd came with a failure reply (it was closed).
    #[error("failure reply carries an fd")]
    UnexpectedFd,
    /// An earlier protocol error left the connection unusable.
    #[error("hook connection is broken by an earlier error")]
    Broken,
}

impl From<ClientError> for io::Error {
    fn from(e: ClientError) -> io::Error {
        match e {
            ClientError::Scm(ScmError::Io { errno, .. }) => io::Error::from(errno),
            ClientError::Closed => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            ClientError::Broken => io::Error::new(io::ErrorKind::NotConnected, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

struct State {
    sock: OwnedFd,
    broken: bool,
    frame: Vec<u8>,
}

/// A connection to the broker.
pub struct HookClient {
    state: Mutex<State>,
}

impl HookClient {
    /// Wrap the connected stream socket (the `-open-hook-fd` fd).
    pub fn new(sock: OwnedFd) -> HookClient {
        HookClient {
            state: Mutex::new(State {
                sock,
                broken: false,
                frame: Vec::with_capacity(frame::OPEN_FIXED_LEN + frame::MAX_FILENAME),
            }),
        }
    }

    /// Ask the broker to open `path`. `flags` are Linux `O_*` flags (the
    /// bits travel unchanged), `mode` the creation mode. A broker refusal is
    /// `io::Error::from_raw_os_error(errno)`. Names that the protocol
    /// rejects (empty, embedded NUL, longer than 4095 bytes) fail locally
    /// with the errno the broker would give (`EINVAL`, `ENAMETOOLONG`).
    pub fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        self.open_bytes(
            path.as_os_str().as_bytes(),
            u32::from_ne_bytes(flags.to_ne_bytes()),
            mode,
        )
    }

    /// [`HookClient::open`] with the raw filename bytes and flag word.
    pub fn open_bytes(&self, path: &[u8], flags: u32, mode: u32) -> io::Result<OwnedFd> {
        if let Err(e) = frame::check_path(path) {
            return Err(e.errno().to_io_error());
        }
        // A poisoned lock only means another thread panicked mid-call; the
        // `broken` flag already tells whether the stream is in step.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.broken {
            return Err(ClientError::Broken.into());
        }
        match round_trip(&mut state, path, flags, mode) {
            Ok(Ok(fd)) => Ok(fd),
            Ok(Err(errno)) => Err(errno.to_io_error()),
            Err(e) => {
                state.broken = true;
                Err(e.into())
            }
        }
    }

    /// The socket, e.g. to poll it or to hand it on.
    pub fn socket(&self) -> io::Result<OwnedFd> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.sock.try_clone()
    }
}

/// One request and its reply. The outer error is a protocol/transport
/// failure; the inner one is the broker's answer.
fn round_trip(
    state: &mut State,
    path: &[u8],
    flags: u32,
    mode: u32,
) -> Result<Result<OwnedFd, crate::Errno>, ClientError> {
    let State { sock, frame, .. } = state;
    frame.clear();
    frame::encode_open_into(frame, flags, mode, path)?;
    scm::send_all_with_fds(&*sock, frame, &[])?;

    let mut reply = [0u8; REPLY_LEN];
    let mut got = 0;
    let mut fd: Option<OwnedFd> = None;
    while got < REPLY_LEN {
        let max_fds = usize::from(fd.is_none());
        let r = scm::recv_with_fds(&*sock, &mut reply[got..], max_fds)?;
        if r.bytes == 0 {
            return Err(ClientError::Closed);
        }
        got += r.bytes;
        if let Some(f) = r.fds.into_iter().next() {
            fd = Some(f);
        }
    }
    let reply = frame::decode_reply(&reply)?;
    if reply.command != frame::QEMU_OPEN {
        return Err(ClientError::WrongCommand {
            expected: frame::QEMU_OPEN,
            got: reply.command,
        });
    }
    match (reply.result, fd) {
        (Ok(()), Some(fd)) => Ok(Ok(fd)),
        (Ok(()), None) => Err(ClientError::MissingFd),
        (Err(_), Some(_)) => Err(ClientError::UnexpectedFd),
        (Err(errno), None) => Ok(Err(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::frame::{encode_reply, QEMU_OPEN};
    use crate::testutil::LeakProbe;
    use crate::Errno;
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    use std::os::fd::{AsFd, BorrowedFd};

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    /// Plays a broker that reads one request and answers with `reply`
    /// bytes and `fds`, in a thread.
    fn one_reply(
        server: OwnedFd,
        reply: Vec<u8>,
        fds: Vec<OwnedFd>,
    ) -> std::thread::JoinHandle<(Vec<u8>, Option<OwnedFd>)> {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            let mut have = 0;
            loop {
                let r = scm::recv_with_fds(&server, &mut buf[have..], 0).unwrap();
                have += r.bytes;
                if let Ok(frame::Decoded::Complete(_, used)) = frame::decode_request(&buf[..have]) {
                    assert_eq!(used, have);
                    break;
                }
                assert!(r.bytes > 0, "client hung up early");
            }
            let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
            scm::send_all_with_fds(&server, &reply, &borrowed).unwrap();
            buf.truncate(have);
            // Hang up after a short reply, so the client sees EOF.
            let keep = reply.len() >= REPLY_LEN;
            (buf, keep.then_some(server))
        })
    }

    #[test]
    fn success_returns_the_fd_and_sends_the_exact_frame() {
        let (c, s) = pair();
        let probe = LeakProbe::new();
        let dup = probe.fd().try_clone_to_owned().unwrap();
        let t = one_reply(s, encode_reply(QEMU_OPEN, Ok(())).to_vec(), vec![dup]);
        let client = HookClient::new(c);
        let fd = client
            .open(Path::new("/x"), libc::O_RDWR | libc::O_CREAT, 0o640)
            .unwrap();
        let (sent, _server) = t.join().unwrap();
        let flags = u32::try_from(libc::O_RDWR | libc::O_CREAT).unwrap();
        assert_eq!(sent, frame::encode_open(flags, 0o640, b"/x").unwrap());
        assert!(rustix::io::fcntl_getfd(&fd)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC));
        drop(fd);
        probe.assert_no_copy_left();
    }

    #[test]
    fn errno_reply_is_raw_os_error_and_connection_stays_usable() {
        let (c, s) = pair();
        let client = HookClient::new(c);
        let t = one_reply(
            s,
            [
                encode_reply(QEMU_OPEN, Err(Errno::EACCES)),
                encode_reply(QEMU_OPEN, Err(Errno::ENOENT)),
            ]
            .concat(),
            vec![],
        );
        let e = client.open(Path::new("/etc/shadow"), 0, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        let _server = t.join().unwrap();
        // The second reply was pipelined into the socket already.
        let e = client.open(Path::new("/nope"), 0, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn local_name_checks() {
        let (c, _s) = pair();
        let client = HookClient::new(c);
        let e = client.open_bytes(b"", 0, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let e = client.open_bytes(b"/a\0b", 0, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let e = client.open_bytes(&[b'a'; 4096], 0, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    }

    fn expect_violation(reply: Vec<u8>, nfds: usize, want: ClientError) {
        let (c, s) = pair();
        let probe = LeakProbe::new();
        let fds = (0..nfds)
            .map(|_| probe.fd().try_clone_to_owned().unwrap())
            .collect();
        let t = one_reply(s, reply, fds);
        let client = HookClient::new(c);
        let e = client.open(Path::new("/x"), 0, 0).unwrap_err();
        let inner = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<ClientError>())
            .copied();
        assert_eq!(inner, Some(want), "{e}");
        t.join().unwrap();
        probe.assert_no_copy_left();
        let e = client.open(Path::new("/x"), 0, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotConnected);
    }

    #[test]
    fn protocol_violations_close_fds_and_break_the_connection() {
        let ok = encode_reply(QEMU_OPEN, Ok(())).to_vec();
        expect_violation(ok.clone(), 0, ClientError::MissingFd);
        expect_violation(
            encode_reply(2, Ok(())).to_vec(),
            1,
            ClientError::WrongCommand {
                expected: 1,
                got: 2,
            },
        );
        expect_violation(
            encode_reply(QEMU_OPEN, Err(Errno::EACCES)).to_vec(),
            1,
            ClientError::UnexpectedFd,
        );
        expect_violation(
            ok.clone(),
            2,
            ClientError::Scm(ScmError::TooManyFds { count: 2, max: 1 }),
        );
        let mut bad_size = ok.clone();
        bad_size[0] = 13;
        expect_violation(
            bad_size,
            1,
            ClientError::Frame(FrameError::ReplySize { size: 13 }),
        );
        let mut positive = ok.clone();
        positive[8] = 5;
        expect_violation(
            positive,
            1,
            ClientError::Frame(FrameError::ReplyResult { result: 5 }),
        );
        expect_violation(ok[..7].to_vec(), 1, ClientError::Closed);
    }

    #[test]
    fn broker_gone_is_an_error_not_sigpipe() {
        let (c, s) = pair();
        drop(s);
        let client = HookClient::new(c);
        let e = client.open(Path::new("/x"), 0, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    }
}
