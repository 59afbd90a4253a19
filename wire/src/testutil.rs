//! Helpers for tests here and in `openhook-tests` (feature `test-utils`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;

/// Detects leaked copies of an fd without counting the fd table (which
/// other threads change): the write end of a pipe is handed around; once
/// the probe drops its own copy, the read end sees EOF only if no copy of
/// the write end is left open anywhere.
pub struct LeakProbe {
    read: OwnedFd,
    write: OwnedFd,
}

impl LeakProbe {
    /// A fresh pipe; the read end is non-blocking.
    pub fn new() -> LeakProbe {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        rustix::fs::fcntl_setfl(&read, rustix::fs::OFlags::NONBLOCK).unwrap();
        LeakProbe { read, write }
    }

    /// The fd to pass around (the pipe's write end).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }

    /// Whether some copy of the write end other than ours is still open.
    pub fn copies_left(self) -> bool {
        drop(self.write);
        let mut b = [0u8; 1];
        match rustix::io::read(&self.read, &mut b) {
            Ok(0) => false,
            Err(Errno::AGAIN) => true,
            other => panic!("unexpected read on leak probe: {other:?}"),
        }
    }

    /// Panics if a copy of the write end is still open.
    pub fn assert_no_copy_left(self) {
        assert!(!self.copies_left(), "a copy of the probe fd leaked");
    }
}

impl Default for LeakProbe {
    fn default() -> Self {
        Self::new()
    }
}
