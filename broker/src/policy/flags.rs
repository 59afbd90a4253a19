//! Open-flag classification: a Linux `O_*` word from the wire becomes
//! [`OpenFlags`] or a [`FlagError`]. Values are the kernel's (the wire
//! carries Linux flag words), taken from rustix's raw kernel constants so
//! `O_LARGEFILE` is the real bit and not glibc's 0.
#![forbid(unsafe_code)]

use rustix::fs::OFlags;

use super::model::Access;

/// `O_DSYNC` alone (rustix's `OFlags::DSYNC` is the full `O_SYNC`).
pub const O_DSYNC: u32 = 0o10_000;
/// `O_SYNC` (`__O_SYNC | O_DSYNC`).
pub const O_SYNC: u32 = OFlags::SYNC.bits();
pub const O_ACCMODE: u32 = OFlags::ACCMODE.bits();
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = OFlags::WRONLY.bits();
pub const O_RDWR: u32 = OFlags::RDWR.bits();
pub const O_APPEND: u32 = OFlags::APPEND.bits();
pub const O_ASYNC: u32 = OFlags::ASYNC.bits();
pub const O_CLOEXEC: u32 = OFlags::CLOEXEC.bits();
pub const O_CREAT: u32 = OFlags::CREATE.bits();
pub const O_DIRECT: u32 = OFlags::DIRECT.bits();
pub const O_DIRECTORY: u32 = OFlags::DIRECTORY.bits();
pub const O_EXCL: u32 = OFlags::EXCL.bits();
pub const O_LARGEFILE: u32 = OFlags::LARGEFILE.bits();
pub const O_NOATIME: u32 = OFlags::NOATIME.bits();
pub const O_NOCTTY: u32 = OFlags::NOCTTY.bits();
pub const O_NOFOLLOW: u32 = OFlags::NOFOLLOW.bits();
pub const O_NONBLOCK: u32 = OFlags::NONBLOCK.bits();
pub const O_TRUNC: u32 = OFlags::TRUNC.bits();
pub const O_PATH: u32 = OFlags::PATH.bits();
pub const O_TMPFILE: u32 = OFlags::TMPFILE.bits();

/// Every flag a request may carry besides the access mode (docs/policy.md).
/// `O_SYNC` contributes both of its bits, so `__O_SYNC` alone is accepted as
/// the kernel accepts it (it implies `O_DSYNC`).
pub const KNOWN: u32 = O_APPEND
    | O_ASYNC
    | O_CLOEXEC
    | O_CREAT
    | O_DIRECT
    | O_DIRECTORY
    | O_DSYNC
    | O_EXCL
    | O_LARGEFILE
    | O_NOATIME
    | O_NOCTTY
    | O_NOFOLLOW
    | O_NONBLOCK
    | O_SYNC
    | O_TRUNC;

/// Why a flag word is refused outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagError {
    /// `O_ACCMODE` bits both set (access mode 3).
    AccessMode3,
    /// Bits outside the known set (`O_PATH`, `O_TMPFILE`, unassigned bits).
    Unknown(u32),
}

/// A checked flag word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags {
    /// Requested access.
    pub access: Access,
    /// The whole word (access mode plus known flags only).
    pub bits: u32,
}

impl OpenFlags {
    /// `O_CREAT` requested.
    pub fn create(self) -> bool {
        self.bits & O_CREAT != 0
    }
    /// `O_TRUNC` requested.
    pub fn truncate(self) -> bool {
        self.bits & O_TRUNC != 0
    }
    /// `O_NONBLOCK` requested.
    pub fn nonblock(self) -> bool {
        self.bits & O_NONBLOCK != 0
    }
}

/// Classifies a request's flag word.
pub fn classify(flags: u32) -> Result<OpenFlags, FlagError> {
    let unknown = flags & !(KNOWN | O_ACCMODE);
    if unknown != 0 {
        return Err(FlagError::Unknown(unknown));
    }
    let access = match flags & O_ACCMODE {
        0 => Access::Read,
        O_WRONLY => Access::Write,
        O_RDWR => Access::ReadWrite,
        _ => return Err(FlagError::AccessMode3),
    };
    Ok(OpenFlags {
        access,
        bits: flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_values() {
        // Written out from include/uapi/asm-generic/fcntl.h (x86_64).
        assert_eq!(O_CREAT, 0o100);
        assert_eq!(O_EXCL, 0o200);
        assert_eq!(O_NOCTTY, 0o400);
        assert_eq!(O_TRUNC, 0o1000);
        assert_eq!(O_APPEND, 0o2000);
        assert_eq!(O_NONBLOCK, 0o4000);
        assert_eq!(O_DSYNC, 0o10000);
        assert_eq!(O_ASYNC, 0o20000);
        assert_eq!(O_DIRECT, 0o40000);
        assert_eq!(O_LARGEFILE, 0o100000);
        assert_eq!(O_DIRECTORY, 0o200000);
        assert_eq!(O_NOFOLLOW, 0o400000);
        assert_eq!(O_NOATIME, 0o1000000);
        assert_eq!(O_CLOEXEC, 0o2000000);
        assert_eq!(O_SYNC, 0o4010000);
        assert_eq!(O_PATH, 0o10000000);
        assert_eq!(O_TMPFILE, 0o20200000);
    }

    #[test]
    fn access_modes() {
        assert_eq!(classify(0).map(|f| f.access), Ok(Access::Read));
        assert_eq!(classify(1).map(|f| f.access), Ok(Access::Write));
        assert_eq!(classify(2).map(|f| f.access), Ok(Access::ReadWrite));
        assert_eq!(classify(3), Err(FlagError::AccessMode3));
    }

    #[test]
    fn every_bit() {
        for bit in 2..32 {
            let f = 1u32 << bit;
            let known = matches!(bit, 6..=20);
            assert_eq!(classify(f).is_ok(), known, "bit {bit}");
            if !known {
                assert_eq!(classify(f | O_RDWR), Err(FlagError::Unknown(f)));
            }
        }
        assert!(classify(O_PATH).is_err());
        assert!(classify(O_TMPFILE | O_RDWR).is_err());
    }
}
