//! What a notification asks for (pure): the syscall number and raw
//! arguments become a [`Call`]; open flags and `openat2` resolve flags are
//! translated to what the policy decides on. Pointers stay target
//! addresses here; `serve.rs` reads them.
#![forbid(unsafe_code)]

use openhook_wire::Errno;

use crate::policy::flags::{
    O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_NOFOLLOW, O_PATH, O_RDONLY, O_RDWR, O_TRUNC,
    O_WRONLY,
};

/// The directory a relative path starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `AT_FDCWD`: the target's working directory.
    Cwd,
    /// One of the target's fds.
    Fd(i32),
}

/// Which stat the target wants written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatKind {
    /// `struct stat` (stat, lstat, newfstatat).
    Stat,
    /// `struct statx` with this mask.
    Statx(u32),
}

/// A notified syscall, its arguments decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// open, openat, creat: flags and mode given; openat2: `how` is the
    /// address and size of its `struct open_how`.
    Open {
        dir: Dir,
        path: u64,
        flags: u64,
        mode: u32,
        how: Option<(u64, u64)>,
    },
    /// stat family: write the result to `buf`.
    Stat {
        dir: Dir,
        path: u64,
        buf: u64,
        at_flags: u32,
        kind: StatKind,
    },
    /// access family.
    Access {
        dir: Dir,
        path: u64,
        mode: u32,
        at_flags: u32,
    },
    /// readlink family.
    Readlink {
        dir: Dir,
        path: u64,
        buf: u64,
        size: u64,
    },
    /// statfs.
    Statfs { path: u64, buf: u64 },
    /// bind or connect on the target's socket `fd`.
    Socket {
        bind: bool,
        fd: i32,
        addr: u64,
        len: u64,
    },
}

fn dir(arg: u64) -> Dir {
    // The kernel reads dirfd as an int.
    let fd = int(arg);
    if fd == libc::AT_FDCWD {
        Dir::Cwd
    } else {
        Dir::Fd(fd)
    }
}

/// An `int` argument: the kernel reads the low 32 bits of the register.
fn int(arg: u64) -> i32 {
    i32::from_ne_bytes(word(arg).to_ne_bytes())
}

/// An `unsigned int` argument: the low 32 bits.
fn word(arg: u64) -> u32 {
    u32::try_from(arg & 0xffff_ffff).unwrap_or(0)
}

/// Decodes a notification; `None` for a syscall the filter never notifies.
pub fn classify(nr: i64, a: [u64; 6]) -> Option<Call> {
    let stat = |dir, path, buf, at_flags, kind| Call::Stat {
        dir,
        path,
        buf,
        at_flags,
        kind,
    };
    Some(match nr {
        libc::SYS_open => Call::Open {
            dir: Dir::Cwd,
            path: a[0],
            flags: u64::from(word(a[1])),
            mode: word(a[2]),
            how: None,
        },
        libc::SYS_creat => Call::Open {
            dir: Dir::Cwd,
            path: a[0],
            flags: u64::from(O_CREAT | O_WRONLY | O_TRUNC),
            mode: word(a[1]),
            how: None,
        },
        libc::SYS_openat => Call::Open {
            dir: dir(a[0]),
            path: a[1],
            flags: u64::from(word(a[2])),
            mode: word(a[3]),
            how: None,
        },
        libc::SYS_openat2 => Call::Open {
            dir: dir(a[0]),
            path: a[1],
            flags: 0,
            mode: 0,
            how: Some((a[2], a[3])),
        },
        libc::SYS_stat => stat(Dir::Cwd, a[0], a[1], 0, StatKind::Stat),
        libc::SYS_lstat => stat(
            Dir::Cwd,
            a[0],
            a[1],
            libc::AT_SYMLINK_NOFOLLOW as u32,
            StatKind::Stat,
        ),
        libc::SYS_newfstatat => stat(dir(a[0]), a[1], a[2], word(a[3]), StatKind::Stat),
        libc::SYS_statx => stat(
            dir(a[0]),
            a[1],
            a[4],
            word(a[2]),
            StatKind::Statx(word(a[3])),
        ),
        _ => return classify_path_query(nr, a),
    })
}

/// The metadata and socket syscalls of [`classify`].
fn classify_path_query(nr: i64, a: [u64; 6]) -> Option<Call> {
    Some(match nr {
        libc::SYS_access => Call::Access {
            dir: Dir::Cwd,
            path: a[0],
            mode: word(a[1]),
            at_flags: 0,
        },
        libc::SYS_faccessat => Call::Access {
            dir: dir(a[0]),
            path: a[1],
            mode: word(a[2]),
            at_flags: 0,
        },
        libc::SYS_faccessat2 => Call::Access {
            dir: dir(a[0]),
            path: a[1],
            mode: word(a[2]),
            at_flags: word(a[3]),
        },
        libc::SYS_readlink => Call::Readlink {
            dir: Dir::Cwd,
            path: a[0],
            buf: a[1],
            size: a[2],
        },
        libc::SYS_readlinkat => Call::Readlink {
            dir: dir(a[0]),
            path: a[1],
            buf: a[2],
            size: a[3],
        },
        libc::SYS_statfs => Call::Statfs {
            path: a[0],
            buf: a[1],
        },
        libc::SYS_bind | libc::SYS_connect => Call::Socket {
            bind: nr == libc::SYS_bind,
            fd: int(a[0]),
            addr: a[1],
            len: u64::from(word(a[2])),
        },
        _ => return None,
    })
}

/// `struct open_how` as `openat2` reads it (the first 24 bytes; a larger
/// size is accepted when the rest is zero, as the kernel does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OpenHow {
    pub flags: u64,
    pub mode: u64,
    pub resolve: u64,
}

/// Smallest `open_how` (`OPEN_HOW_SIZE_VER0`).
pub const OPEN_HOW_SIZE: usize = 24;
/// Largest `open_how` the broker reads; bigger is `E2BIG`, like a kernel
/// that does not know the extension.
pub const OPEN_HOW_MAX: usize = 4096;

/// Parses `struct open_how` bytes (`bytes.len()` is the size the target
/// passed, already bounded).
pub fn open_how(bytes: &[u8]) -> Result<OpenHow, Errno> {
    if bytes.len() < OPEN_HOW_SIZE {
        return Err(Errno::EINVAL);
    }
    if bytes[OPEN_HOW_SIZE..].iter().any(|&b| b != 0) {
        return Err(Errno::new(libc::E2BIG).unwrap_or(Errno::EINVAL));
    }
    let u = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    Ok(OpenHow {
        flags: u(0),
        mode: u(8),
        resolve: u(16),
    })
}

/// `openat2` resolve flags (`linux/openat2.h`).
pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_CACHED: u64 = 0x20;

/// What the target's `resolve` asks beyond the broker's own resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Resolve {
    /// `RESOLVE_BENEATH`: a path that leaves its base is `EXDEV`.
    pub beneath: bool,
    /// `RESOLVE_IN_ROOT`.
    pub in_root: bool,
    /// Extra `RESOLVE_*` bits to add to the broker's (stricter only).
    pub extra: u64,
}

/// Checks the target's resolve word: unknown bits `EINVAL`, `BENEATH` with
/// `IN_ROOT` `EINVAL` (the kernel's answers).
pub fn resolve(word: u64) -> Result<Resolve, Errno> {
    let known = RESOLVE_NO_XDEV
        | RESOLVE_NO_MAGICLINKS
        | RESOLVE_NO_SYMLINKS
        | RESOLVE_BENEATH
        | RESOLVE_IN_ROOT
        | RESOLVE_CACHED;
    if word & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let beneath = word & RESOLVE_BENEATH != 0;
    let in_root = word & RESOLVE_IN_ROOT != 0;
    if beneath && in_root {
        return Err(Errno::EINVAL);
    }
    Ok(Resolve {
        beneath,
        in_root,
        extra: word & (RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS),
    })
}

/// The open flags the policy decides on. Flags above 32 bits are
/// `EINVAL` (`openat2` checks them; `open` truncates). `O_PATH` becomes a
/// read-only open of the same file (an `O_PATH` fd cannot be handed over
/// usefully), keeping `O_DIRECTORY`, `O_NOFOLLOW` and `O_CLOEXEC`. A name
/// that must be a directory gains `O_DIRECTORY`.
pub fn open_flags(flags: u64, dir_only: bool) -> Result<u32, Errno> {
    let mut f = u32::try_from(flags).map_err(|_| Errno::EINVAL)?;
    if f & O_PATH != 0 {
        f = O_RDONLY | (f & (O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    }
    if dir_only {
        if f & O_CREAT != 0 {
            return Err(Errno::EISDIR);
        }
        f |= O_DIRECTORY;
    }
    Ok(f)
}

/// The open flags a metadata request is decided with: read access (write
/// or read-write for `access` with `W_OK`).
pub fn access_flags(mode: u32) -> u32 {
    let w = mode & libc::W_OK as u32 != 0;
    let r = mode & libc::R_OK as u32 != 0;
    match (r, w) {
        (true, true) => O_RDWR,
        (false, true) => O_WRONLY,
        _ => O_RDONLY,
    }
}

/// The access mode of a flag word (for tests and `learn`).
pub fn accmode(flags: u32) -> u32 {
    flags & O_ACCMODE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_dirfds_and_flags() {
        let at = u64::from(libc::AT_FDCWD.cast_unsigned());
        assert_eq!(
            classify(libc::SYS_openat, [at, 0x1000, 2, 0o600, 0, 0]),
            Some(Call::Open {
                dir: Dir::Cwd,
                path: 0x1000,
                flags: 2,
                mode: 0o600,
                how: None
            })
        );
        // The upper half of a dirfd register is ignored, as the kernel does.
        assert!(matches!(
            classify(libc::SYS_openat, [0xffff_ffff_0000_0005, 0, 0, 0, 0, 0]),
            Some(Call::Open {
                dir: Dir::Fd(5),
                ..
            })
        ));
        assert!(matches!(
            classify(libc::SYS_creat, [1, 0o644, 0, 0, 0, 0]),
            Some(Call::Open { flags, .. }) if flags == u64::from(O_CREAT | O_WRONLY | O_TRUNC)
        ));
        assert!(matches!(
            classify(libc::SYS_lstat, [1, 2, 0, 0, 0, 0]),
            Some(Call::Stat { at_flags, .. }) if at_flags == libc::AT_SYMLINK_NOFOLLOW as u32
        ));
        assert_eq!(classify(libc::SYS_read, [0; 6]), None);
    }

    #[test]
    fn open_how_bounds() {
        let mut b = vec![0u8; 32];
        b[0] = 2;
        b[16..24].copy_from_slice(&RESOLVE_BENEATH.to_ne_bytes());
        let how = open_how(&b).expect("ok");
        assert_eq!((how.flags, how.resolve), (2, RESOLVE_BENEATH));
        assert_eq!(open_how(&b[..8]), Err(Errno::EINVAL));
        b[30] = 1;
        assert_eq!(open_how(&b), Err(Errno::new(libc::E2BIG).expect("E2BIG")));
    }

    #[test]
    fn resolve_words() {
        assert_eq!(resolve(0x40), Err(Errno::EINVAL));
        assert_eq!(
            resolve(RESOLVE_BENEATH | RESOLVE_IN_ROOT),
            Err(Errno::EINVAL)
        );
        let r = resolve(RESOLVE_NO_SYMLINKS | RESOLVE_CACHED).expect("ok");
        assert_eq!(r.extra, RESOLVE_NO_SYMLINKS);
    }

    #[test]
    fn flag_translation() {
        assert_eq!(open_flags(1 << 33, false), Err(Errno::EINVAL));
        assert_eq!(
            open_flags(u64::from(O_PATH | O_NOFOLLOW | O_RDWR), false),
            Ok(O_RDONLY | O_NOFOLLOW)
        );
        assert_eq!(open_flags(u64::from(O_RDONLY), true), Ok(O_DIRECTORY));
        assert_eq!(open_flags(u64::from(O_CREAT), true), Err(Errno::EISDIR));
        assert_eq!(access_flags(libc::R_OK as u32), O_RDONLY);
        assert_eq!(access_flags(libc::W_OK as u32), O_WRONLY);
        assert_eq!(access_flags((libc::R_OK | libc::W_OK) as u32), O_RDWR);
        assert_eq!(access_flags(libc::F_OK as u32), O_RDONLY);
    }
}
