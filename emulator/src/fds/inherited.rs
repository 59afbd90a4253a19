//! Where the emulator's inherited fd numbers become fds: `-open-hook-fd N`,
//! `-add-fd fd=N`, chardev `fd=N`, systemd's `LISTEN_FDS`, and the
//! broker's `[[listen]]` sockets for `path=` server chardevs. Each number
//! is claimed through [`openhook_wire::inherited`], the workspace's one
//! claiming function (see its docs for why a claim is sound).
//!
//! A `-chardev socket,path=P,server=on` inside the sandbox cannot bind P
//! itself: the broker binds it (`[[listen]]`, docs/policy.md) and passes the
//! listening socket at a declared fd number. The emulator finds it by
//! asking the kernel, not a side channel: among the inherited fds (open,
//! not close-on-exec, above 2) it takes the one that is a listening
//! AF_UNIX stream socket whose `getsockname` is exactly P
//! ([`find_listener`]). Any launcher that passes a socket bound to P works
//! the same way, and the command line needs no change when a policy moves
//! the fd number.
//!
//! Standard streams 0–2 are never claimed: std keeps using them.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::FileType;

use crate::vm_config::{ChardevBackend, InheritedFd, MachineConfig, SocketAddrConfig};
use openhook_wire::activation::{self, ActivatedFd, Activation, ActivationEnv, ActivationError};
use openhook_wire::inherited;

/// QEMU's text for an `-add-fd` number that cannot be claimed; the
/// command line uses it too, for numbers out of range.
pub const ADD_FD_NOT_VALID: &str = "fd is not valid or already in use";

/// Why an inherited fd could not be claimed; one start-up error line.
#[derive(Debug, thiserror::Error)]
pub enum InheritedError {
    #[error("-open-hook-fd {fd}: fd {fd} is not valid or already in use: {source}")]
    Hook {
        fd: i32,
        #[source]
        source: io::Error,
    },
    #[error("-open-hook-fd {0}: fd {0} is not a socket")]
    HookNotSocket(i32),
    #[error("-add-fd fd={fd}: {ADD_FD_NOT_VALID}")]
    AddFd {
        fd: i32,
        #[source]
        source: io::Error,
    },
    #[error("-add-fd fd={fd}: error duplicating fd: {source}")]
    Dup {
        fd: i32,
        #[source]
        source: io::Error,
    },
    #[error("-chardev id={id}: fd {fd} is not valid or already in use: {source}")]
    Chardev {
        id: String,
        fd: i32,
        #[source]
        source: io::Error,
    },
    #[error("-chardev id={id}: File descriptor '{fd}' is not a socket")]
    NotSocket { id: String, fd: i32 },
    #[error("Socket activation failed: invalid file descriptor fd = {fd}: {source}")]
    Activation {
        fd: i32,
        #[source]
        source: io::Error,
    },
}

/// The claimed socket-activation listeners, close-on-exec.
#[derive(Debug, Default)]
pub struct ActivatedFds {
    fds: Vec<(ActivatedFd, OwnedFd)>,
}

impl ActivatedFds {
    /// Removes and returns the listener inherited as fd `n`.
    pub fn take(&mut self, n: i32) -> Option<OwnedFd> {
        let pos = self.fds.iter().position(|(a, _)| a.fd == n)?;
        Some(self.fds.remove(pos).1)
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}

/// One `-add-fd`, claimed: the close-on-exec copy to put in the fd set.
#[derive(Debug)]
pub struct ClaimedAddFd {
    pub set: u64,
    pub opaque: Option<String>,
    pub fd: OwnedFd,
}

/// Everything the command line handed over, owned.
#[derive(Debug, Default)]
pub struct InheritedFds {
    /// `-open-hook-fd N`, now close-on-exec.
    pub hook: Option<OwnedFd>,
    /// `-add-fd` entries in command-line order.
    pub add_fds: Vec<ClaimedAddFd>,
    /// Socket chardevs with `fd=N` or an activated listener, by chardev id.
    pub chardev_fds: Vec<(String, OwnedFd)>,
}

impl InheritedFds {
    /// Removes and returns the socket fd of chardev `id`.
    pub fn take_chardev(&mut self, id: &str) -> Option<OwnedFd> {
        let pos = self.chardev_fds.iter().position(|(c, _)| c == id)?;
        Some(self.chardev_fds.remove(pos).1)
    }
}

/// Claims inherited fd `n` and marks it close-on-exec
/// ([`openhook_wire::inherited::claim`]).
fn claim(n: i32) -> io::Result<OwnedFd> {
    inherited::claim(n).map_err(io::Error::from)
}

/// Reads `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` from the process
/// environment and parses them for this process's pid. Changes nothing:
/// a re-exec as the broker must still see them; [`claim_activation`] takes
/// the fds and unsets the variables.
pub fn read_activation() -> Result<Option<Activation>, ActivationError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    activation::parse(
        ActivationEnv {
            listen_pid: pid.as_deref(),
            listen_fds: fds.as_deref(),
            listen_fdnames: names.as_deref(),
        },
        std::process::id(),
    )
}

/// Claims the socket-activation fds (close-on-exec) and unsets
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`. An fd that is not open
/// is a fatal start-up error.
pub fn claim_activation(activation: &Activation) -> Result<ActivatedFds, InheritedError> {
    let mut out = ActivatedFds::default();
    for a in &activation.fds {
        let fd = claim(a.fd).map_err(|source| InheritedError::Activation { fd: a.fd, source })?;
        out.fds.push((a.clone(), fd));
    }
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    Ok(out)
}

fn is_socket(fd: impl AsFd) -> io::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::Socket)
}

/// Highest fd number [`find_listener`] looks at (bounded by RLIMIT_NOFILE).
const LISTENER_SCAN_MAX: u64 = 65_536;

/// Claims the inherited listening AF_UNIX stream socket bound to `path`
/// (a broker `[[listen]]` fd, or any launcher's), if there is one.
pub fn find_listener(path: &std::path::Path) -> Option<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(LISTENER_SCAN_MAX)
        .min(LISTENER_SCAN_MAX);
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    for n in 3..limit {
        // Looks without claiming: only the match is claimed.
        let matches = inherited::inspect(n, |fd| {
            let listening = rustix::net::sockopt::socket_acceptconn(fd).unwrap_or(false);
            let stream = rustix::net::sockopt::socket_type(fd)
                .is_ok_and(|t| t == rustix::net::SocketType::STREAM);
            if !listening || !stream {
                return false;
            }
            let bound = match rustix::net::getsockname(fd) {
                Ok(addr) => rustix::net::SocketAddrUnix::try_from(addr)
                    .ok()
                    .and_then(|u| u.path().map(|p| p.to_bytes().to_vec())),
                Err(_) => None,
            };
            bound.as_deref() == Some(path.as_os_str().as_bytes())
        });
        if matches == Some(true) {
            return claim(n).ok();
        }
    }
    None
}

/// Claims every fd `cfg` names. Activated listeners that a chardev uses
/// (by name, or by number with `fd=N`) move into `chardev_fds`; the rest
/// are closed.
pub fn claim_all(
    cfg: &MachineConfig,
    activated: ActivatedFds,
) -> Result<InheritedFds, InheritedError> {
    Ok(InheritedFds {
        hook: claim_hook(cfg)?,
        add_fds: claim_add_fds(cfg)?,
        chardev_fds: claim_chardev_fds(cfg, activated)?,
    })
}

/// `-open-hook-fd N`: must be a socket.
fn claim_hook(cfg: &MachineConfig) -> Result<Option<OwnedFd>, InheritedError> {
    let Some(InheritedFd(n)) = cfg.hook_fd else {
        return Ok(None);
    };
    let fd = claim(n).map_err(|source| InheritedError::Hook { fd: n, source })?;
    if !is_socket(&fd).unwrap_or(false) {
        return Err(InheritedError::HookNotSocket(n));
    }
    Ok(Some(fd))
}

/// `-add-fd`: claim each number once, give every entry its own
/// close-on-exec dup, then close the original (QEMU's parse_add_fd and
/// cleanup_add_fd).
fn claim_add_fds(cfg: &MachineConfig) -> Result<Vec<ClaimedAddFd>, InheritedError> {
    let mut add_fds = Vec::new();
    let mut originals: Vec<(i32, OwnedFd)> = Vec::new();
    for a in &cfg.add_fds {
        let n = a.fd.0;
        if !originals.iter().any(|(m, _)| *m == n) {
            let fd = claim(n).map_err(|source| InheritedError::AddFd { fd: n, source })?;
            originals.push((n, fd));
        }
    }
    for a in &cfg.add_fds {
        let n = a.fd.0;
        let Some((_, original)) = originals.iter().find(|(m, _)| *m == n) else {
            continue;
        };
        let dup =
            rustix::io::fcntl_dupfd_cloexec(original, 0).map_err(|e| InheritedError::Dup {
                fd: n,
                source: e.into(),
            })?;
        add_fds.push(ClaimedAddFd {
            set: a.set,
            opaque: a.opaque.clone(),
            fd: dup,
        });
    }
    drop(originals);
    Ok(add_fds)
}

/// Socket chardevs with `fd=N`, an activated listener, or an inherited
/// listener bound to their `path=` (server mode).
fn claim_chardev_fds(
    cfg: &MachineConfig,
    mut activated: ActivatedFds,
) -> Result<Vec<(String, OwnedFd)>, InheritedError> {
    let mut chardev_fds = Vec::new();
    for c in &cfg.chardevs {
        let ChardevBackend::Socket(s) = &c.backend else {
            continue;
        };
        let n = match &s.addr {
            SocketAddrConfig::Fd(InheritedFd(n)) | SocketAddrConfig::Activated(InheritedFd(n)) => {
                *n
            }
            SocketAddrConfig::Unix(path) => {
                // A server on a path: the inherited listener bound to it,
                // if any (the caller binds directly only without sandbox).
                if s.server {
                    if let Some(fd) = find_listener(path) {
                        chardev_fds.push((c.id.clone(), fd));
                    }
                }
                continue;
            }
        };
        let fd = match activated.take(n) {
            Some(fd) => fd,
            None => claim(n).map_err(|source| InheritedError::Chardev {
                id: c.id.clone(),
                fd: n,
                source,
            })?,
        };
        if !is_socket(&fd).unwrap_or(false) {
            // QEMU closes a non-socket fd it was given; dropping does that.
            return Err(InheritedError::NotSocket {
                id: c.id.clone(),
                fd: n,
            });
        }
        chardev_fds.push((c.id.clone(), fd));
    }
    Ok(chardev_fds)
}

#[cfg(test)]
// The tests make and close raw fd numbers the way a parent would.
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use crate::vm_config::{AddFdConfig, ChardevConfig, SocketChardev};
    use rustix::io::FdFlags;
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};

    /// A real inheritable fd (close-on-exec clear), as a parent would pass.
    /// Returns its number; ownership goes to the test's claim.
    fn inheritable_pipe_end() -> (OwnedFd, RawFd) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        rustix::io::fcntl_setfd(&w, FdFlags::empty()).unwrap();
        (r, w.into_raw_fd())
    }

    fn inheritable_socket() -> (OwnedFd, RawFd) {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::io::fcntl_setfd(&b, FdFlags::empty()).unwrap();
        (a, b.into_raw_fd())
    }

    fn cloexec(fd: &OwnedFd) -> bool {
        rustix::io::fcntl_getfd(fd)
            .unwrap()
            .contains(FdFlags::CLOEXEC)
    }

    /// Whether `n` is an open inheritable fd, i.e. one of ours from
    /// [`inheritable_pipe_end`] (other tests only create close-on-exec fds).
    fn inheritable_open(n: RawFd) -> bool {
        // SAFETY: F_GETFD on a number has no memory effects.
        let flags = unsafe { libc::fcntl(n, libc::F_GETFD) };
        flags != -1 && flags & libc::FD_CLOEXEC == 0
    }

    /// Tests here create inheritable fds and claim numbers; run them one
    /// at a time so one test never claims another's number.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn find_listener_takes_the_inherited_listener_bound_to_the_path() {
        let _g = serial();
        let dir = tempfile::tempdir().unwrap();
        let listening = dir.path().join("qmp.sock");
        let bound_only = dir.path().join("bound.sock");
        let mk = |p: &std::path::Path, listen: bool| {
            let fd = rustix::net::socket_with(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .unwrap();
            rustix::net::bind(&fd, &rustix::net::SocketAddrUnix::new(p).unwrap()).unwrap();
            if listen {
                rustix::net::listen(&fd, 1).unwrap();
            }
            fd
        };
        // Close-on-exec (our own, not inherited): never taken.
        let own = mk(&listening, true);
        assert!(find_listener(&listening).is_none());
        drop(own);
        std::fs::remove_file(&listening).unwrap();
        // Inherited (CLOEXEC clear) and listening on that path: taken once.
        let inh = mk(&listening, true);
        rustix::io::fcntl_setfd(&inh, FdFlags::empty()).unwrap();
        let n = inh.into_raw_fd();
        let not_listening = mk(&bound_only, false);
        rustix::io::fcntl_setfd(&not_listening, FdFlags::empty()).unwrap();
        assert!(
            find_listener(&bound_only).is_none(),
            "bound but not listening"
        );
        assert!(find_listener(&dir.path().join("other")).is_none());
        let got = find_listener(&listening).expect("found");
        assert_eq!(got.as_raw_fd(), n);
        assert!(cloexec(&got), "claimed fds become close-on-exec");
        assert!(find_listener(&listening).is_none(), "claimed once");
    }

    #[test]
    fn claim_requires_open_inheritable_and_claims_once() {
        let _g = serial();
        let (_r, n) = inheritable_pipe_end();
        let fd = claim(n).unwrap();
        assert_eq!(fd.as_raw_fd(), n);
        assert!(cloexec(&fd));
        // Claimed numbers are close-on-exec now: a second claim fails.
        assert!(claim(n).is_err());
        drop(fd);
        assert!(!inheritable_open(n));
        // Not open (or reused by another test's close-on-exec fd).
        assert!(claim(n).is_err());
        // Standard streams are never claimed.
        assert!(claim(0).is_err());
        assert!(claim(2).is_err());
        // An fd this process created itself (close-on-exec) is refused.
        let (own, _w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        assert!(claim(own.as_raw_fd()).is_err());
    }

    #[test]
    fn add_fd_keeps_cloexec_dups_and_closes_originals() {
        let _g = serial();
        let (r, n) = inheritable_pipe_end();
        let cfg = MachineConfig {
            add_fds: vec![
                AddFdConfig {
                    fd: InheritedFd(n),
                    set: 1,
                    opaque: Some("a".into()),
                },
                AddFdConfig {
                    fd: InheritedFd(n),
                    set: 2,
                    opaque: None,
                },
            ],
            ..MachineConfig::default()
        };
        let got = claim_all(&cfg, ActivatedFds::default()).unwrap();
        assert_eq!(got.add_fds.len(), 2);
        for a in &got.add_fds {
            assert!(cloexec(&a.fd));
            assert_ne!(a.fd.as_raw_fd(), n);
        }
        assert_eq!(got.add_fds[0].set, 1);
        assert_eq!(got.add_fds[1].opaque, None);
        // The original is closed (the number may be reused by a
        // close-on-exec fd, never left inheritable).
        assert!(!inheritable_open(n));
        // The dups are the same pipe: writing through one reaches the reader.
        rustix::io::write(&got.add_fds[0].fd, b"x").unwrap();
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&r, &mut b).unwrap(), 1);
    }

    #[test]
    fn add_fd_not_open_is_qemus_error() {
        let _g = serial();
        let (_r, n) = inheritable_pipe_end();
        // SAFETY: test closes its own inheritable fd to make the number invalid.
        drop(unsafe { OwnedFd::from_raw_fd(n) });
        let cfg = MachineConfig {
            add_fds: vec![AddFdConfig {
                fd: InheritedFd(n),
                set: 0,
                opaque: None,
            }],
            ..MachineConfig::default()
        };
        let e = claim_all(&cfg, ActivatedFds::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("-add-fd fd={n}: fd is not valid or already in use")
        );
    }

    fn socket_chardev(id: &str, addr: SocketAddrConfig) -> ChardevConfig {
        ChardevConfig {
            id: id.into(),
            backend: ChardevBackend::Socket(SocketChardev {
                addr,
                server: true,
                wait: false,
                tls_creds: None,
            }),
        }
    }

    #[test]
    fn hook_and_chardev_fds_must_be_sockets() {
        let _g = serial();
        let (_peer, s) = inheritable_socket();
        let (_peer2, hook) = inheritable_socket();
        let cfg = MachineConfig {
            hook_fd: Some(InheritedFd(hook)),
            chardevs: vec![socket_chardev("mon", SocketAddrConfig::Fd(InheritedFd(s)))],
            ..MachineConfig::default()
        };
        let mut got = claim_all(&cfg, ActivatedFds::default()).unwrap();
        assert_eq!(got.hook.as_ref().unwrap().as_raw_fd(), hook);
        let mon = got.take_chardev("mon").unwrap();
        assert_eq!(mon.as_raw_fd(), s);
        assert!(cloexec(&mon));

        let (_r, p) = inheritable_pipe_end();
        let cfg = MachineConfig {
            chardevs: vec![socket_chardev("mon", SocketAddrConfig::Fd(InheritedFd(p)))],
            ..MachineConfig::default()
        };
        let e = claim_all(&cfg, ActivatedFds::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("-chardev id=mon: File descriptor '{p}' is not a socket")
        );
        assert!(!inheritable_open(p), "a refused non-socket fd is closed");
    }

    #[test]
    fn same_number_for_two_owners_is_refused() {
        let _g = serial();
        let (_peer, s) = inheritable_socket();
        let cfg = MachineConfig {
            hook_fd: Some(InheritedFd(s)),
            chardevs: vec![socket_chardev("mon", SocketAddrConfig::Fd(InheritedFd(s)))],
            ..MachineConfig::default()
        };
        let e = claim_all(&cfg, ActivatedFds::default()).unwrap_err();
        assert!(matches!(e, InheritedError::Chardev { .. }), "{e}");
    }

    #[test]
    fn activation_claims_and_hands_listeners_to_chardevs() {
        let _g = serial();
        let (_p1, a) = inheritable_socket();
        let (_p2, b) = inheritable_socket();
        // Real activation starts at 3; here the numbers are whatever the
        // kernel gave us, which is all claim_activation looks at.
        let act = Activation {
            fds: vec![
                ActivatedFd {
                    fd: a,
                    name: Some("qmp".into()),
                },
                ActivatedFd { fd: b, name: None },
            ],
        };
        let claimed = claim_activation(&act).unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(std::env::var_os("LISTEN_FDS").is_none());
        let cfg = MachineConfig {
            chardevs: vec![
                socket_chardev("qmp", SocketAddrConfig::Activated(InheritedFd(a))),
                socket_chardev("other", SocketAddrConfig::Fd(InheritedFd(b))),
            ],
            ..MachineConfig::default()
        };
        let mut got = claim_all(&cfg, claimed).unwrap();
        assert_eq!(got.take_chardev("qmp").unwrap().as_raw_fd(), a);
        assert_eq!(got.take_chardev("other").unwrap().as_raw_fd(), b);

        // An activated number that is not open is fatal.
        let (_r, n) = inheritable_pipe_end();
        // SAFETY: the test closes its own fd to make the number invalid.
        drop(unsafe { OwnedFd::from_raw_fd(n) });
        let e = claim_activation(&Activation {
            fds: vec![ActivatedFd { fd: n, name: None }],
        })
        .unwrap_err();
        assert!(e.to_string().starts_with(&format!(
            "Socket activation failed: invalid file descriptor fd = {n}: "
        )));
    }

    #[test]
    fn read_activation_from_the_environment() {
        let _g = serial();
        std::env::set_var("LISTEN_PID", std::process::id().to_string());
        std::env::set_var("LISTEN_FDS", "2");
        std::env::set_var("LISTEN_FDNAMES", "qmp");
        let a = read_activation().unwrap().unwrap();
        assert_eq!(
            a.fds,
            vec![
                ActivatedFd {
                    fd: 3,
                    name: Some("qmp".into())
                },
                ActivatedFd { fd: 4, name: None }
            ]
        );
        // Reading leaves the variables for a re-exec.
        assert!(std::env::var_os("LISTEN_FDS").is_some());
        std::env::set_var("LISTEN_PID", "1");
        assert_eq!(read_activation().unwrap(), None);
        for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(v);
        }
        assert_eq!(read_activation().unwrap(), None);
    }
}
