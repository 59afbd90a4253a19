//! The broker side of one hook connection: a reader over a stream socket
//! with a bounded buffer (one maximal frame, `8 + 64 KiB`), yielding
//! decoded requests, and the reply sender.
//!
//! Decisions (`docs/protocol.md`):
//! - A framing error, EOF in the middle of a frame, or a request carrying
//!   fds of its own ends the connection: [`Connection::next`] returns the
//!   error (and keeps returning it); the fds have already been closed. The
//!   caller logs it and drops the connection. Nothing else is affected.
//! - An unknown command with sane framing is yielded as
//!   [`Request::Unknown`] with its payload skipped; [`Connection::serve`]
//!   answers it `{12, command, -ENOSYS}`.
//! - Filenames that fail [`check_path`](crate::hook::frame::check_path)
//!   (empty, embedded NUL, over 4095 bytes) are answered `-EINVAL` /
//!   `-ENAMETOOLONG` by [`Connection::serve`] without reaching the handler's
//!   `open`.
//! - Pipelined requests (a client that does not wait for replies) are read
//!   and answered in order; memory stays bounded by the one buffer, and the
//!   socket's own buffers push back on the sender.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::errno::Errno;
use crate::hook::frame::{self, Decoded, FrameError, OpenRequest, PathError, Request};
use crate::scm::{self, ScmError};

/// Why a connection ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// The peer's framing is broken.
    #[error("protocol error: {0}")]
    Frame(#[from] FrameError),
    /// The peer hung up in the middle of a frame.
    #[error("end of stream in the middle of a frame ({buffered} bytes buffered)")]
    EofMidFrame {
        /// Bytes of the incomplete frame that had arrived.
        buffered: usize,
    },
    /// The peer sent fds with a request; they were closed unread.
    #[error("request carried file descriptors (all closed)")]
    CarriedFds,
    /// A socket call failed.
    #[error(transparent)]
    Scm(ScmError),
}

/// What a connection's owner does with requests (used by
/// [`Connection::serve`]).
pub trait Handler {
    /// Answer a QEMU_OPEN whose filename passed the protocol checks:
    /// the fd to send, or the errno to reply.
    fn open(&mut self, request: &OpenRequest<'_>) -> Result<OwnedFd, Errno>;

    /// A QEMU_OPEN refused by the protocol checks (it is answered with
    /// `error.errno()`); e.g. to write an audit record. Default: nothing.
    fn rejected(&mut self, request: &OpenRequest<'_>, error: PathError) {
        let _ = (request, error);
    }

    /// An unknown command (answered `-ENOSYS`). Default: nothing.
    fn unknown(&mut self, command: u32) {
        let _ = command;
    }
}

/// The broker end of one hook connection.
pub struct Connection {
    sock: OwnedFd,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Length of the frame last returned by `next`, dropped on the next call.
    consumed: usize,
    failed: Option<ServerError>,
}

impl Connection {
    /// Serve requests arriving on `sock` (a connected stream socket).
    pub fn new(sock: OwnedFd) -> Connection {
        Connection {
            sock,
            buf: vec![0u8; frame::MAX_MESSAGE].into_boxed_slice(),
            start: 0,
            end: 0,
            consumed: 0,
            failed: None,
        }
    }

    /// The next request: `Ok(None)` at a clean end of stream (between
    /// frames). Blocks until a whole frame has arrived. After an error every
    /// later call returns the same error.
    // A lending iterator: each request borrows the buffer, so this cannot
    // be `Iterator::next`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Request<'_>>, ServerError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        self.start += self.consumed;
        self.consumed = 0;
        let used = loop {
            match frame::decode_request(&self.buf[self.start..self.end]) {
                Err(e) => return Err(self.fail(ServerError::Frame(e))),
                Ok(Decoded::Complete(_, used)) => break used,
                Ok(Decoded::Partial { .. }) => {}
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let received = match scm::recv_with_fds(&self.sock, &mut self.buf[self.end..], 0) {
                Ok(r) => r.bytes,
                Err(ScmError::TooManyFds { .. } | ScmError::Truncated { .. }) => {
                    return Err(self.fail(ServerError::CarriedFds))
                }
                Err(e) => return Err(self.fail(ServerError::Scm(e))),
            };
            if received == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                let buffered = self.end - self.start;
                return Err(self.fail(ServerError::EofMidFrame { buffered }));
            }
            self.end += received;
        };
        self.consumed = used;
        match frame::decode_request(&self.buf[self.start..self.start + used]) {
            Ok(Decoded::Complete(request, _)) => Ok(Some(request)),
            // The same bytes decoded as complete a moment ago.
            Ok(Decoded::Partial { .. }) => Err(ServerError::EofMidFrame { buffered: used }),
            Err(e) => Err(ServerError::Frame(e)),
        }
    }

    fn fail(&mut self, e: ServerError) -> ServerError {
        self.failed = Some(e);
        e
    }

    /// Send the reply to a request with `command`: an fd (`result = 0`) or
    /// `-errno`.
    pub fn reply(
        &mut self,
        command: u32,
        result: Result<BorrowedFd<'_>, Errno>,
    ) -> Result<(), ServerError> {
        let (bytes, fd) = match result {
            Ok(fd) => (frame::encode_reply(command, Ok(())), Some(fd)),
            Err(e) => (frame::encode_reply(command, Err(e)), None),
        };
        let fds: &[BorrowedFd<'_>] = match &fd {
            Some(fd) => std::slice::from_ref(fd),
            None => &[],
        };
        scm::send_all_with_fds(&self.sock, &bytes, fds).map_err(|e| self.fail(ServerError::Scm(e)))
    }

    /// Serve until the peer hangs up (`Ok`) or breaks the protocol (`Err`):
    /// protocol-level name checks and `-ENOSYS` here, everything else by
    /// `handler`. Each fd is closed once sent.
    pub fn serve<H: Handler + ?Sized>(&mut self, handler: &mut H) -> Result<(), ServerError> {
        loop {
            let Some(request) = self.next()? else {
                return Ok(());
            };
            let command = request.command();
            let result = match request {
                Request::Open(open) => match open.check_path() {
                    Ok(()) => handler.open(&open),
                    Err(e) => {
                        handler.rejected(&open, e);
                        Err(e.errno())
                    }
                },
                Request::Unknown { command } => {
                    handler.unknown(command);
                    Err(Errno::ENOSYS)
                }
            };
            self.reply(
                command,
                result.as_ref().map(|fd| fd.as_fd()).map_err(|e| *e),
            )?;
        }
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::client::HookClient;
    use crate::hook::frame::{encode_frame, encode_open, QEMU_OPEN, REPLY_LEN};
    use crate::testutil::LeakProbe;
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    use std::path::Path;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    /// A handler that answers with a dup of `probe`'s fd for paths starting
    /// with `/ok`, EACCES otherwise, and records what it saw.
    struct Probe<'a> {
        fd: BorrowedFd<'a>,
        seen: Vec<(Vec<u8>, u32, u32)>,
        rejected: Vec<PathError>,
        unknown: Vec<u32>,
    }

    impl Handler for Probe<'_> {
        fn open(&mut self, r: &OpenRequest<'_>) -> Result<OwnedFd, Errno> {
            self.seen.push((r.path.to_vec(), r.flags, r.mode));
            if r.path.starts_with(b"/ok") {
                Ok(self.fd.try_clone_to_owned().unwrap())
            } else {
                Err(Errno::EACCES)
            }
        }
        fn rejected(&mut self, _: &OpenRequest<'_>, e: PathError) {
            self.rejected.push(e);
        }
        fn unknown(&mut self, command: u32) {
            self.unknown.push(command);
        }
    }

    fn read_reply(sock: &OwnedFd) -> ([u8; REPLY_LEN], Vec<OwnedFd>) {
        let mut buf = [0u8; REPLY_LEN];
        let mut got = 0;
        let mut fds = Vec::new();
        while got < REPLY_LEN {
            let r = scm::recv_with_fds(sock, &mut buf[got..], 4).unwrap();
            assert!(r.bytes > 0, "server hung up");
            got += r.bytes;
            fds.extend(r.fds);
        }
        (buf, fds)
    }

    #[test]
    fn client_and_server_agree_and_no_fd_leaks() {
        let (c, s) = pair();
        let probe = LeakProbe::new();
        let fd = probe.fd();
        std::thread::scope(|scope| {
            let server = scope.spawn(move || {
                let mut h = Probe {
                    fd,
                    seen: vec![],
                    rejected: vec![],
                    unknown: vec![],
                };
                let r = Connection::new(s).serve(&mut h);
                (r, h.seen, h.rejected)
            });
            let client = HookClient::new(c);
            for i in 0..200 {
                let got = client.open(Path::new("/ok/file"), libc::O_RDONLY, i);
                let fd = got.unwrap();
                assert!(rustix::io::fcntl_getfd(&fd)
                    .unwrap()
                    .contains(rustix::io::FdFlags::CLOEXEC));
                let e = client.open(Path::new("/no"), libc::O_RDWR, 0).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EACCES));
            }
            drop(client);
            let (r, seen, rejected) = server.join().unwrap();
            assert_eq!(r, Ok(()));
            assert_eq!(seen.len(), 400);
            assert_eq!(seen[2], (b"/ok/file".to_vec(), 0, 1));
            assert!(rejected.is_empty());
        });
        probe.assert_no_copy_left();
    }

    type ServerOutcome = (Result<(), ServerError>, Vec<PathError>, Vec<u32>);

    fn run_server(s: OwnedFd) -> std::thread::JoinHandle<ServerOutcome> {
        std::thread::spawn(move || {
            let probe = LeakProbe::new();
            let mut h = Probe {
                fd: probe.fd(),
                seen: vec![],
                rejected: vec![],
                unknown: vec![],
            };
            let r = Connection::new(s).serve(&mut h);
            (r, h.rejected, h.unknown)
        })
    }

    #[test]
    fn unknown_command_gets_enosys_echo_and_the_connection_lives_on() {
        let (c, s) = pair();
        let t = run_server(s);
        let f = encode_frame(7, &[0xAA; 100]).unwrap();
        scm::send_all_with_fds(&c, &f, &[]).unwrap();
        let (reply, fds) = read_reply(&c);
        assert!(fds.is_empty());
        assert_eq!(reply, frame::encode_reply(7, Err(Errno::ENOSYS)));
        let f = encode_open(0, 0, b"/no").unwrap();
        scm::send_all_with_fds(&c, &f, &[]).unwrap();
        assert_eq!(
            read_reply(&c).0,
            frame::encode_reply(QEMU_OPEN, Err(Errno::EACCES))
        );
        drop(c);
        let (r, _, unknown) = t.join().unwrap();
        assert_eq!(r, Ok(()));
        assert_eq!(unknown, vec![7]);
    }

    #[test]
    fn bad_names_are_answered_without_the_handler() {
        let (c, s) = pair();
        let t = run_server(s);
        let cases: [(&[u8], Errno); 3] = [
            (b"", Errno::EINVAL),
            (b"/ok\0x", Errno::EINVAL),
            (&[b'/'; 4096], Errno::ENAMETOOLONG),
        ];
        for (name, errno) in cases {
            scm::send_all_with_fds(&c, &encode_open(0, 0, name).unwrap(), &[]).unwrap();
            let (reply, fds) = read_reply(&c);
            assert!(fds.is_empty());
            assert_eq!(reply, frame::encode_reply(QEMU_OPEN, Err(errno)));
        }
        // 4095 bytes passes the protocol checks and reaches the handler.
        let mut long = b"/ok".to_vec();
        long.resize(4095, b'a');
        scm::send_all_with_fds(&c, &encode_open(0, 0, &long).unwrap(), &[]).unwrap();
        let (reply, fds) = read_reply(&c);
        assert_eq!(reply, frame::encode_reply(QEMU_OPEN, Ok(())));
        assert_eq!(fds.len(), 1);
        drop(c);
        let (r, rejected, _) = t.join().unwrap();
        assert_eq!(r, Ok(()));
        assert_eq!(
            rejected,
            vec![
                PathError::Empty,
                PathError::EmbeddedNul { at: 3 },
                PathError::TooLong { len: 4096 }
            ]
        );
    }

    fn expect_close(bytes: &[u8], want: ServerError) {
        let (c, s) = pair();
        let t = run_server(s);
        scm::send_all_with_fds(&c, bytes, &[]).unwrap();
        // Half-close so a truncated frame is followed by EOF.
        rustix::net::shutdown(&c, rustix::net::Shutdown::Write).unwrap();
        let (r, _, _) = t.join().unwrap();
        assert_eq!(r, Err(want));
        // The server dropped its end: we read EOF, not a reply.
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&c, &mut b), Ok(0));
    }

    #[test]
    fn framing_errors_close_the_connection() {
        let mut small = 7u32.to_ne_bytes().to_vec();
        small.extend_from_slice(&1u32.to_ne_bytes());
        expect_close(&small, ServerError::Frame(FrameError::TooSmall { size: 7 }));
        let mut big = 65545u32.to_ne_bytes().to_vec();
        big.extend_from_slice(&9u32.to_ne_bytes());
        expect_close(
            &big,
            ServerError::Frame(FrameError::TooLarge { size: 65545 }),
        );
        let mut mismatch = encode_open(0, 0, b"/abc").unwrap();
        mismatch[16] = 5;
        expect_close(
            &mismatch,
            ServerError::Frame(FrameError::OpenLengthMismatch {
                size: 22,
                filename_len: 5,
            }),
        );
        let f = encode_open(0, 0, b"/abc").unwrap();
        expect_close(&f[..f.len() - 1], ServerError::EofMidFrame { buffered: 21 });
        expect_close(&f[..3], ServerError::EofMidFrame { buffered: 3 });
    }

    #[test]
    fn request_with_fds_closes_them_and_the_connection() {
        let (c, s) = pair();
        let t = run_server(s);
        let probe = LeakProbe::new();
        let f = encode_open(0, 0, b"/ok").unwrap();
        scm::send_all_with_fds(&c, &f, &[probe.fd(), probe.fd()]).unwrap();
        let (r, _, _) = t.join().unwrap();
        assert_eq!(r, Err(ServerError::CarriedFds));
        probe.assert_no_copy_left();
    }

    #[test]
    fn pipelined_flood_is_answered_in_order() {
        let (c, s) = pair();
        let t = run_server(s);
        let n = 5000;
        let reader = {
            let c = c.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut fds = 0;
                for i in 0..n {
                    let (reply, got) = read_reply(&c);
                    let want = if i % 2 == 0 {
                        Ok(())
                    } else {
                        Err(Errno::EACCES)
                    };
                    assert_eq!(reply, frame::encode_reply(QEMU_OPEN, want), "reply {i}");
                    fds += got.len();
                }
                fds
            })
        };
        let mut all = Vec::new();
        for i in 0..n {
            let name: &[u8] = if i % 2 == 0 { b"/ok" } else { b"/no" };
            all.extend(encode_open(0, 0, name).unwrap());
        }
        scm::send_all_with_fds(&c, &all, &[]).unwrap();
        assert_eq!(reader.join().unwrap(), n / 2);
        drop(c);
        assert_eq!(t.join().unwrap().0, Ok(()));
    }
}
