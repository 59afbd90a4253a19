//! The broker's inherited fd numbers: `--policy-fd N`, `--pass-fd N` and
//! socket-activation listeners (`LISTEN_FDS`) it inherited from its
//! launcher — in particular from an `openhook-emulator` that re-executed
//! itself as the broker (docs/decisions/direct-launch-reexec.md). Each is
//! claimed through [`openhook_wire::inherited`], the workspace's one
//! claiming function (its docs say why a claim is sound).
#![forbid(unsafe_code)]

use std::io::{self, Read as _};
use std::os::fd::{OwnedFd, RawFd};

use openhook_wire::inherited::{self, ClaimError};

/// Why an inherited fd number could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum InheritedError {
    /// Below 3, not open, or already owned (close-on-exec set).
    #[error("{what} {fd}: fd {fd} is not an open inherited descriptor{}", .source.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotInherited {
        /// The option or variable that named it.
        what: &'static str,
        /// The number.
        fd: RawFd,
        /// The failed fcntl, when there was one.
        source: Option<io::Error>,
    },
    /// Reading the policy from its fd failed.
    #[error("--policy-fd {fd}: {message}")]
    Read {
        /// The number.
        fd: RawFd,
        /// What went wrong.
        message: String,
    },
}

/// Claims inherited fd `fd` (named by `what` in errors) through
/// [`openhook_wire::inherited::claim`]: checks it is open and not
/// close-on-exec, then marks it close-on-exec and owns it.
pub fn claim(fd: RawFd, what: &'static str) -> Result<OwnedFd, InheritedError> {
    inherited::claim(fd).map_err(|e| {
        let source = match e {
            ClaimError::Stdio | ClaimError::CloseOnExec => None,
            ClaimError::NotOpen(_) | ClaimError::SetFlags(_) => Some(io::Error::from(e)),
        };
        InheritedError::NotInherited { what, fd, source }
    })
}

/// Reads the policy text from inherited fd `fd` (a memfd, pipe or file),
/// at most `limit` bytes, and closes it.
pub fn read_policy(fd: RawFd, limit: u64) -> Result<String, InheritedError> {
    let owned = claim(fd, "--policy-fd")?;
    let read = |message: String| InheritedError::Read { fd, message };
    let file = std::fs::File::from(owned);
    // A memfd's offset may be at its end (the writer's); read from 0.
    let mut bytes = Vec::new();
    let mut at = 0u64;
    loop {
        let mut buf = [0u8; 8192];
        let n = match rustix::io::pread(&file, &mut buf, at) {
            Ok(n) => n,
            // Not seekable (a pipe): read it as a stream.
            Err(rustix::io::Errno::SPIPE) => {
                let mut rest = Vec::new();
                (&file)
                    .take(limit.saturating_add(1))
                    .read_to_end(&mut rest)
                    .map_err(|e| read(e.to_string()))?;
                bytes.extend(rest);
                break;
            }
            Err(e) => return Err(read(e.to_string())),
        };
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        at = at.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        if at > limit {
            break;
        }
    }
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(read(format!("policy is larger than {limit} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| read(format!("policy is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::FdFlags;
    use std::io::Write as _;
    use std::os::fd::{AsRawFd, IntoRawFd};

    fn inheritable(text: &[u8]) -> RawFd {
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let mut f = std::fs::File::from(fd);
        f.write_all(text).unwrap();
        rustix::io::fcntl_setfd(&f, FdFlags::empty()).unwrap();
        f.into_raw_fd()
    }

    #[test]
    fn reads_a_memfd_from_the_start_and_claims_once() {
        let fd = inheritable(b"version = 1\n");
        assert_eq!(read_policy(fd, 100).unwrap(), "version = 1\n");
        // Closed after reading: the number is no longer a valid claim
        // (unless reused by a CLOEXEC fd, which is refused as well).
        assert!(claim(fd, "--pass-fd").is_err());
    }

    #[test]
    fn refuses_stdio_closed_and_owned_numbers() {
        assert!(claim(0, "--pass-fd").is_err());
        assert!(claim(2, "--pass-fd").is_err());
        let owned = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let e = claim(owned.as_raw_fd(), "--pass-fd").unwrap_err();
        assert!(
            e.to_string()
                .contains("is not an open inherited descriptor"),
            "{e}"
        );
        assert!(claim(100_000, "--pass-fd").is_err());
    }

    #[test]
    fn size_limit() {
        let fd = inheritable(&[b'#'; 300]);
        let e = read_policy(fd, 100).unwrap_err();
        assert!(e.to_string().contains("larger than 100"), "{e}");
    }
}
