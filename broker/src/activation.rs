//! systemd socket activation addressed to the broker (pure): when
//! `LISTEN_PID` is the broker's own pid — systemd started it, or an
//! `openhook-emulator` re-executed itself as the broker, keeping its pid —
//! the `LISTEN_FDS` listeners at 3.. are passed on to the emulator at the
//! same numbers, with `LISTEN_FDS`/`LISTEN_FDNAMES` as they were and
//! `LISTEN_PID` set to the emulator's own pid in the child after `fork`
//! (docs/decisions/direct-launch-reexec.md). The variables are parsed by
//! [`openhook_wire::activation`], the emulator's parser too; the broker
//! does not read the names, it hands them on.
#![forbid(unsafe_code)]

use std::ffi::OsString;

use openhook_wire::activation::{self as shared, ActivationEnv};
pub use openhook_wire::activation::{LISTEN_FDS_START, MAX_LISTEN_FDS};

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
    // Names are not parsed here: the launched program gets them as they are.
    let env = ActivationEnv {
        listen_pid,
        listen_fds,
        listen_fdnames: None,
    };
    let parsed = shared::parse(env, our_pid).map_err(|e| match e {
        shared::ActivationError::BadFds(text) => ActivationError::BadFds(Some(text)),
        shared::ActivationError::MissingFds | shared::ActivationError::TooManyNames { .. } => {
            ActivationError::BadFds(listen_fds.map(str::to_string))
        }
    })?;
    let Some(parsed) = parsed else {
        return Ok(None);
    };
    let count = i32::try_from(parsed.fds.len()).unwrap_or(MAX_LISTEN_FDS);
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
