//! systemd socket activation: `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`
//! (pure parse; the one parser of these variables, used by the emulator
//! and the broker; docs/user-guide.md describes activation).
//!
//! - Only when `LISTEN_PID` equals our pid (otherwise the variables belong
//!   to someone else and are left alone).
//! - `LISTEN_FDS` fds start at 3 (`SD_LISTEN_FDS_START`).
//! - `LISTEN_FDNAMES` is a colon-separated list; name *i* belongs to fd
//!   3 + *i*, and a chardev whose id equals a name uses that fd. Fewer
//!   names than fds leaves the rest unnamed; more names is an error.
//!
//! The emulator's glue (`fds::inherited::claim_activation`) claims the fds
//! through [`crate::inherited`], fails start-up if one is not open, and
//! unsets the three variables. The broker only counts the fds (it passes
//! the names on untouched to the program it launches).
#![forbid(unsafe_code)]

/// First activated fd (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;
/// Upper bound on `LISTEN_FDS`; systemd's own limit is far below.
pub const MAX_LISTEN_FDS: i32 = 4096;

/// One inherited listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivatedFd {
    pub fd: i32,
    pub name: Option<String>,
}

/// The activation meant for this process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Activation {
    pub fds: Vec<ActivatedFd>,
}

/// Malformed variables addressed to us; start-up fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("Socket activation failed: LISTEN_FDS is missing")]
    MissingFds,
    #[error("Socket activation failed: LISTEN_FDS='{0}' is not a number from 0 to 4096")]
    BadFds(String),
    #[error("Socket activation failed: LISTEN_FDNAMES names {names} fds but LISTEN_FDS is {fds}")]
    TooManyNames { names: usize, fds: i32 },
}

/// The environment's three variables, as read.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivationEnv<'a> {
    pub listen_pid: Option<&'a str>,
    pub listen_fds: Option<&'a str>,
    pub listen_fdnames: Option<&'a str>,
}

/// `Ok(None)` when there is no activation for `our_pid`.
pub fn parse(env: ActivationEnv<'_>, our_pid: u32) -> Result<Option<Activation>, ActivationError> {
    let Some(pid) = env.listen_pid else {
        return Ok(None);
    };
    if pid.parse::<u32>().ok() != Some(our_pid) {
        return Ok(None);
    }
    let fds_text = env.listen_fds.ok_or(ActivationError::MissingFds)?;
    let count = fds_text
        .parse::<i32>()
        .ok()
        .filter(|n| (0..=MAX_LISTEN_FDS).contains(n))
        .ok_or_else(|| ActivationError::BadFds(fds_text.to_string()))?;
    let names: Vec<&str> = match env.listen_fdnames {
        Some("") | None => Vec::new(),
        Some(list) => list.split(':').collect(),
    };
    if names.len() > usize::try_from(count).unwrap_or(0) {
        return Err(ActivationError::TooManyNames {
            names: names.len(),
            fds: count,
        });
    }
    let fds = (0..count)
        .map(|i| ActivatedFd {
            fd: LISTEN_FDS_START + i,
            name: usize::try_from(i)
                .ok()
                .and_then(|i| names.get(i))
                .filter(|n| !n.is_empty())
                .map(|n| n.to_string()),
        })
        .collect();
    Ok(Some(Activation { fds }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(
        pid: Option<&'a str>,
        fds: Option<&'a str>,
        names: Option<&'a str>,
    ) -> ActivationEnv<'a> {
        ActivationEnv {
            listen_pid: pid,
            listen_fds: fds,
            listen_fdnames: names,
        }
    }

    #[test]
    fn only_for_our_pid() {
        assert_eq!(parse(env(None, Some("1"), None), 42), Ok(None));
        assert_eq!(parse(env(Some("41"), Some("1"), None), 42), Ok(None));
        assert_eq!(parse(env(Some("x"), Some("1"), None), 42), Ok(None));
        assert_eq!(
            parse(env(Some("42"), Some("2"), None), 42),
            Ok(Some(Activation {
                fds: vec![
                    ActivatedFd { fd: 3, name: None },
                    ActivatedFd { fd: 4, name: None }
                ]
            }))
        );
    }

    #[test]
    fn names_map_to_fds_from_3() {
        let a = parse(env(Some("7"), Some("3"), Some("qmp:mon2")), 7)
            .unwrap()
            .unwrap();
        assert_eq!(
            a.fds,
            vec![
                ActivatedFd {
                    fd: 3,
                    name: Some("qmp".into())
                },
                ActivatedFd {
                    fd: 4,
                    name: Some("mon2".into())
                },
                ActivatedFd { fd: 5, name: None },
            ]
        );
        // systemd-socket-activate -l PATH sets no names (or empty).
        let a = parse(env(Some("7"), Some("1"), Some("")), 7)
            .unwrap()
            .unwrap();
        assert_eq!(a.fds, vec![ActivatedFd { fd: 3, name: None }]);
    }

    #[test]
    fn malformed_is_an_error_when_addressed_to_us() {
        assert_eq!(
            parse(env(Some("7"), None, None), 7),
            Err(ActivationError::MissingFds)
        );
        for bad in ["", "x", "-1", "4097", "99999999999"] {
            assert_eq!(
                parse(env(Some("7"), Some(bad), None), 7),
                Err(ActivationError::BadFds(bad.into()))
            );
        }
        assert_eq!(
            parse(env(Some("7"), Some("1"), Some("a:b")), 7),
            Err(ActivationError::TooManyNames { names: 2, fds: 1 })
        );
        assert_eq!(
            parse(env(Some("7"), Some("0"), None), 7),
            Ok(Some(Activation::default()))
        );
    }
}
