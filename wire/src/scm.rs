//! SCM_RIGHTS over Unix stream sockets, via rustix: `BorrowedFd` out,
//! `OwnedFd` in.
//!
//! Sending uses `MSG_NOSIGNAL` (a dead peer is `EPIPE`, never SIGPIPE).
//! Receiving uses `MSG_CMSG_CLOEXEC`, so every fd that arrives is
//! close-on-exec from its first instant, and holds each as an `OwnedFd`
//! before looking at anything else. `MSG_CTRUNC`, or more fds than the
//! caller accepts, closes every fd that arrived and is an error.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno as RustixErrno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The kernel's per-message limit on SCM_RIGHTS fds (`SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// Control-buffer room for [`MAX_FDS`] fds plus alignment slack.
const CONTROL_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS));

/// What went wrong moving bytes and fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScmError {
    /// The system call failed.
    #[error("socket {op}: {errno}")]
    Io {
        /// `"sendmsg"` or `"recvmsg"`.
        op: &'static str,
        /// The error.
        errno: RustixErrno,
    },
    /// The kernel truncated the control data (`MSG_CTRUNC`): fds were lost.
    /// Every fd that did arrive has been closed.
    #[error("control data truncated (MSG_CTRUNC); {closed} received fd(s) closed")]
    Truncated {
        /// How many fds arrived and were closed.
        closed: usize,
    },
    /// More fds arrived than the caller accepts; all of them were closed.
    #[error("{count} fd(s) received where at most {max} are accepted; all closed")]
    TooManyFds {
        /// How many arrived.
        count: usize,
        /// How many the caller accepts.
        max: usize,
    },
}

impl ScmError {
    /// The errno closest to this error, for `io::Error` conversion.
    pub fn errno(self) -> crate::Errno {
        match self {
            ScmError::Io { errno, .. } => errno.into(),
            ScmError::Truncated { .. } | ScmError::TooManyFds { .. } => crate::Errno::EPROTO,
        }
    }
}

impl From<ScmError> for std::io::Error {
    fn from(e: ScmError) -> std::io::Error {
        match e {
            ScmError::Io { errno, .. } => std::io::Error::from(errno),
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}

/// One `sendmsg` of `bytes` with `fds` attached, `MSG_NOSIGNAL`, retried on
/// `EINTR`. Returns the bytes sent (a stream socket may send fewer).
pub fn send_with_fds(
    sock: impl AsFd,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, ScmError> {
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let used = rustix::cmsg_space!(ScmRights(fds.len()));
    let mut control = SendAncillaryBuffer::new(&mut space[..used.min(CONTROL_SPACE)]);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(ScmError::TooManyFds {
            count: fds.len(),
            max: MAX_FDS,
        });
    }
    let iov = [IoSlice::new(bytes)];
    loop {
        match rustix::net::sendmsg(sock.as_fd(), &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(RustixErrno::INTR) => continue,
            Err(errno) => {
                return Err(ScmError::Io {
                    op: "sendmsg",
                    errno,
                })
            }
            Ok(n) => return Ok(n),
        }
    }
}

/// Send all of `bytes`, with `fds` attached to the first chunk.
pub fn send_all_with_fds(
    sock: impl AsFd,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), ScmError> {
    let sock = sock.as_fd();
    let mut sent = send_with_fds(sock, bytes, fds)?;
    while sent < bytes.len() {
        let more = send_with_fds(sock, &bytes[sent..], &[])?;
        if more == 0 {
            return Err(ScmError::Io {
                op: "sendmsg",
                errno: RustixErrno::PIPE,
            });
        }
        sent += more;
    }
    Ok(())
}

/// The result of one [`recv_with_fds`].
#[derive(Debug)]
pub struct Received {
    /// Bytes read into the buffer; 0 means end of stream.
    pub bytes: usize,
    /// The fds that came with them (at most the caller's `max_fds`).
    pub fds: Vec<OwnedFd>,
}

/// One `recvmsg` into `buf` with `MSG_CMSG_CLOEXEC`, retried on `EINTR`.
/// Accepts up to `max_fds` fds; more, or `MSG_CTRUNC`, closes all that
/// arrived and fails. Does not allocate unless fds arrive.
pub fn recv_with_fds(
    sock: impl AsFd,
    buf: &mut [u8],
    max_fds: usize,
) -> Result<Received, ScmError> {
    // Room for one fd more than accepted, so an extra fd shows up as
    // `TooManyFds` rather than as truncation; capped at the kernel's limit.
    let room = max_fds.saturating_add(1).min(MAX_FDS);
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let used = rustix::cmsg_space!(ScmRights(room)).min(CONTROL_SPACE);
    let mut control = RecvAncillaryBuffer::new(&mut space[..used]);
    let msg = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match rustix::net::recvmsg(
            sock.as_fd(),
            &mut iov,
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(RustixErrno::INTR) => continue,
            Err(errno) => {
                return Err(ScmError::Io {
                    op: "recvmsg",
                    errno,
                })
            }
            Ok(msg) => break msg,
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(arrived) = message {
            fds.extend(arrived);
        }
    }
    if msg.flags.contains(ReturnFlags::CTRUNC) {
        let closed = fds.len();
        drop(fds);
        return Err(ScmError::Truncated { closed });
    }
    if fds.len() > max_fds {
        let count = fds.len();
        drop(fds);
        return Err(ScmError::TooManyFds {
            count,
            max: max_fds,
        });
    }
    Ok(Received {
        bytes: msg.bytes,
        fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::LeakProbe;
    use rustix::io::{fcntl_getfd, FdFlags};
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap()
    }

    #[test]
    fn one_fd_arrives_cloexec_and_refers_to_the_same_file() {
        let (a, b) = pair();
        let (p, _q) = pair();
        send_all_with_fds(&a, b"hi", &[p.as_fd()]).unwrap();
        let mut buf = [0u8; 8];
        let got = recv_with_fds(&b, &mut buf, 1).unwrap();
        assert_eq!(&buf[..got.bytes], b"hi");
        assert_eq!(got.fds.len(), 1);
        assert!(fcntl_getfd(&got.fds[0]).unwrap().contains(FdFlags::CLOEXEC));
        let st1 = rustix::fs::fstat(&p).unwrap();
        let st2 = rustix::fs::fstat(&got.fds[0]).unwrap();
        assert_eq!((st1.st_dev, st1.st_ino), (st2.st_dev, st2.st_ino));
    }

    #[test]
    fn extra_and_truncated_fds_are_all_closed() {
        let (a, b) = pair();
        let mut buf = [0u8; 8];

        let probe = LeakProbe::new();
        send_all_with_fds(&a, b"x", &[probe.fd(), probe.fd()]).unwrap();
        assert_eq!(
            recv_with_fds(&b, &mut buf, 1).unwrap_err(),
            ScmError::TooManyFds { count: 2, max: 1 }
        );
        probe.assert_no_copy_left();

        let probe = LeakProbe::new();
        let many = [probe.fd(); 20];
        send_all_with_fds(&a, b"y", &many).unwrap();
        // Room for max_fds + 1 (rounded up by alignment): the kernel truncates.
        let e = recv_with_fds(&b, &mut buf, 1).unwrap_err();
        assert!(
            matches!(e, ScmError::Truncated { closed } if (2..20).contains(&closed)),
            "{e:?}"
        );
        probe.assert_no_copy_left();

        let probe = LeakProbe::new();
        send_all_with_fds(&a, b"z", &[probe.fd()]).unwrap();
        assert_eq!(
            recv_with_fds(&b, &mut buf, 0).unwrap_err(),
            ScmError::TooManyFds { count: 1, max: 0 }
        );
        probe.assert_no_copy_left();
    }

    #[test]
    fn dead_peer_is_epipe_not_sigpipe() {
        let (a, b) = pair();
        drop(b);
        assert_eq!(
            send_all_with_fds(&a, b"x", &[]).unwrap_err(),
            ScmError::Io {
                op: "sendmsg",
                errno: RustixErrno::PIPE
            }
        );
        let mut buf = [0u8; 4];
        assert_eq!(recv_with_fds(&a, &mut buf, 1).unwrap().bytes, 0);
    }
}
