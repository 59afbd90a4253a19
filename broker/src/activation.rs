//! systemd socket activation addressed to the broker (pure): when
//! `LISTEN_PID` is the broker's own pid — systemd started it, or an
//! `openhook-emulator` re-executed itself as the broker, keeping its pid —
//! the `LISTEN_FDS` listeners at 3.. are passed on to the emulator at the
//! same numbers, with `LISTEN_FDS`/`LISTEN_FDNAMES` as they were and
//! `LISTEN_PID` set to the emulator's own pid in the child after `fork`
//! (design §8; issue 5 must-haves 6 and 7).
#![forbid(unsafe_code)]

use std::ffi::OsString;

/// First activated fd (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;
/// Upper bound on `LISTEN_FDS` (the emulator's too).
pub const MAX_LISTEN_FDS: i32 = 4096;

/// An activation to hand on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// `LISTEN_FDS`: the fds are `3 .. 3 + count`.
    pub count: i32,
    /// `LISTEN_FDNAMES`, unchanged, when set.
    pub names: Option<OsString>,
}

impl Activation {
    /// The fd numbers, ascending.
    pub fn fds(&self) -> impl Iterator<Item = i32> {
        LISTEN_FDS_START..LISTEN_FDS_START + self.count
    }
}

/// Malformed variables addressed to us.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    /// `LISTEN_PID` is ours but `LISTEN_FDS` is missing or not a count.
    #[error("socket activation: LISTEN_FDS={0:?} is not a number from 0 to 4096")]
    BadFds(Option<String>),
}

/// `Ok(None)` unless `listen_pid` is `our_pid`.
pub fn parse(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<OsString>,
    our_pid: u32,
) -> Result<Option<Activation>, ActivationError> {
    if listen_pid.and_then(|p| p.parse::<u32>().ok()) != Some(our_pid) {
        return Ok(None);
    }
    let count = listen_fds
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| (0..=MAX_LISTEN_FDS).contains(n))
        .ok_or_else(|| ActivationError::BadFds(listen_fds.map(str::to_string)))?;
    Ok(Some(Activation {
        count,
        names: listen_fdnames,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_for_our_pid() {
        assert_eq!(parse(None, Some("1"), None, 7), Ok(None));
        assert_eq!(parse(Some("8"), Some("1"), None, 7), Ok(None));
        assert_eq!(parse(Some("x"), Some("1"), None, 7), Ok(None));
        let a = parse(Some("7"), Some("2"), Some("mon:qmp".into()), 7)
            .unwrap()
            .unwrap();
        assert_eq!(a.fds().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(a.names, Some("mon:qmp".into()));
    }

    #[test]
    fn bad_counts() {
        for n in [None, Some("-1"), Some("4097"), Some("two")] {
            assert!(parse(Some("7"), n, None, 7).is_err(), "{n:?}");
        }
    }
}
