//! The `getfd`/`closefd` name table (docs/qmp.md). It owns the fds; dropping
//! an entry closes it. Named fds belong to the monitor, not to a client
//! connection, so they survive reconnects.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

/// QEMU's texts, byte for byte.
pub const NO_FD_SUPPLIED: &str = "No file descriptor supplied via SCM_RIGHTS";
pub const NAME_STARTS_WITH_DIGIT: &str =
    "Parameter 'fdname' expects a name not starting with a digit";

/// Errors of the table; `Display` is QEMU's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamedFdError {
    #[error("No file descriptor supplied via SCM_RIGHTS")]
    NoFdSupplied,
    #[error("Parameter 'fdname' expects a name not starting with a digit")]
    NameStartsWithDigit,
    /// `closefd` of an unknown name.
    #[error("File descriptor named '{0}' not found")]
    NotFound(String),
    /// A consumer (`fd=NAME`, `fd:NAME`) named an unknown fd.
    #[error("File descriptor named '{0}' has not been found")]
    ConsumerNotFound(String),
}

/// Named fds of one monitor set-up.
#[derive(Debug, Default)]
pub struct NamedFds {
    fds: BTreeMap<String, OwnedFd>,
}

impl NamedFds {
    pub fn new() -> Self {
        Self::default()
    }

    /// `getfd`: stores `fd` under `name`, closing any fd the name held.
    /// A name starting with a digit is refused and `fd` closed.
    pub fn getfd(&mut self, name: &str, fd: Option<OwnedFd>) -> Result<(), NamedFdError> {
        let fd = fd.ok_or(NamedFdError::NoFdSupplied)?;
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            drop(fd);
            return Err(NamedFdError::NameStartsWithDigit);
        }
        // `insert` returns the old fd, which closes as it drops.
        drop(self.fds.insert(name.to_string(), fd));
        Ok(())
    }

    /// `closefd`: closes and forgets `name`.
    pub fn closefd(&mut self, name: &str) -> Result<(), NamedFdError> {
        self.fds
            .remove(name)
            .map(drop)
            .ok_or_else(|| NamedFdError::NotFound(name.to_string()))
    }

    /// A consumer takes the fd; the name disappears.
    pub fn take(&mut self, name: &str) -> Result<OwnedFd, NamedFdError> {
        self.fds
            .remove(name)
            .ok_or_else(|| NamedFdError::ConsumerNotFound(name.to_string()))
    }

    /// Names currently held, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.fds.keys().map(String::as_str).collect()
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};

    /// A real fd whose closing we can observe: the write end of a pipe
    /// (reading the other end returns EOF once every write end is closed).
    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
    }

    fn closed(reader: &OwnedFd) -> bool {
        rustix::fs::fcntl_setfl(reader, rustix::fs::OFlags::NONBLOCK).unwrap();
        let mut b = [0u8; 1];
        matches!(rustix::io::read(reader, &mut b), Ok(0))
    }

    #[test]
    fn iotest_045_getfd_closefd() {
        let mut t = NamedFds::new();
        let (r, w) = pipe();
        t.getfd("fd-file", Some(w)).unwrap();
        assert_eq!(t.names(), vec!["fd-file"]);
        assert!(!closed(&r));
        t.closefd("fd-file").unwrap();
        assert!(closed(&r));
        let e = t.closefd("fd-file").unwrap_err();
        assert_eq!(e.to_string(), "File descriptor named 'fd-file' not found");
    }

    #[test]
    fn getfd_errors_and_digit_names_close_the_fd() {
        let mut t = NamedFds::new();
        let e = t.getfd("x", None).unwrap_err();
        assert_eq!(e, NamedFdError::NoFdSupplied);
        assert_eq!(e.to_string(), NO_FD_SUPPLIED);
        let (r, w) = pipe();
        let e = t.getfd("1abc", Some(w)).unwrap_err();
        assert_eq!(e.to_string(), NAME_STARTS_WITH_DIGIT);
        assert!(closed(&r), "refused fd is closed");
        assert!(t.is_empty());
    }

    #[test]
    fn replacing_closes_the_old_fd_and_take_removes_the_name() {
        let mut t = NamedFds::new();
        let (r1, w1) = pipe();
        let (r2, w2) = pipe();
        let w2_raw = w2.as_raw_fd();
        t.getfd("mon", Some(w1)).unwrap();
        t.getfd("mon", Some(w2)).unwrap();
        assert!(closed(&r1));
        assert!(!closed(&r2));
        let got = t.take("mon").unwrap();
        assert_eq!(got.as_fd().as_raw_fd(), w2_raw);
        assert_eq!(t.len(), 0);
        assert_eq!(
            t.take("mon").unwrap_err().to_string(),
            "File descriptor named 'mon' has not been found"
        );
        drop(got);
        assert!(closed(&r2));
    }
}
