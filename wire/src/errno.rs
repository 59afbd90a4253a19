//! `Errno`: a positive Linux errno value, with names ⇄ numbers for the
//! errnos a policy file or a hook reply is likely to mention.
//!
//! On the wire a failed open is `result = -errno`; [`Errno::to_result`] and
//! [`Errno::from_result`] convert between the two forms.

use std::fmt;
use std::io;

/// A Linux errno value, always in `1..=MAX` (the kernel's `MAX_ERRNO`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(i32);

/// Names and numbers of the errnos we know by name (Linux, x86-64 and
/// aarch64 share these values).
const TABLE: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("ESRCH", libc::ESRCH),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("ENXIO", libc::ENXIO),
    ("E2BIG", libc::E2BIG),
    ("ENOEXEC", libc::ENOEXEC),
    ("EBADF", libc::EBADF),
    ("ECHILD", libc::ECHILD),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("EXDEV", libc::EXDEV),
    ("ENODEV", libc::ENODEV),
    ("ENOTDIR", libc::ENOTDIR),
    ("EISDIR", libc::EISDIR),
    ("EINVAL", libc::EINVAL),
    ("ENFILE", libc::ENFILE),
    ("EMFILE", libc::EMFILE),
    ("ENOTTY", libc::ENOTTY),
    ("ETXTBSY", libc::ETXTBSY),
    ("EFBIG", libc::EFBIG),
    ("ENOSPC", libc::ENOSPC),
    ("ESPIPE", libc::ESPIPE),
    ("EROFS", libc::EROFS),
    ("EMLINK", libc::EMLINK),
    ("EPIPE", libc::EPIPE),
    ("ERANGE", libc::ERANGE),
    ("EDEADLK", libc::EDEADLK),
    ("ENAMETOOLONG", libc::ENAMETOOLONG),
    ("ENOLCK", libc::ENOLCK),
    ("ENOSYS", libc::ENOSYS),
    ("ENOTEMPTY", libc::ENOTEMPTY),
    ("ELOOP", libc::ELOOP),
    ("ENOMSG", libc::ENOMSG),
    ("ENODATA", libc::ENODATA),
    ("EPROTO", libc::EPROTO),
    ("EOVERFLOW", libc::EOVERFLOW),
    ("EBADMSG", libc::EBADMSG),
    ("ENOTSOCK", libc::ENOTSOCK),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("ECONNREFUSED", libc::ECONNREFUSED),
    ("ECONNRESET", libc::ECONNRESET),
    ("ENOTCONN", libc::ENOTCONN),
    ("ETIMEDOUT", libc::ETIMEDOUT),
    ("EADDRINUSE", libc::EADDRINUSE),
    ("ESTALE", libc::ESTALE),
    ("EDQUOT", libc::EDQUOT),
    ("ECANCELED", libc::ECANCELED),
    ("EOWNERDEAD", libc::EOWNERDEAD),
    ("ENOTRECOVERABLE", libc::ENOTRECOVERABLE),
];

/// Accepted spellings that are aliases of a name in [`TABLE`]
/// (the number's canonical name stays the first one).
const ALIASES: &[(&str, i32)] = &[
    ("EWOULDBLOCK", libc::EWOULDBLOCK),
    ("EDEADLOCK", libc::EDEADLOCK),
    ("ENOTSUP", libc::ENOTSUP),
];

macro_rules! consts {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), "`")]
            pub const $name: Errno = Errno(libc::$name);
        )*
    };
}

impl Errno {
    /// The largest errno value the kernel uses (`MAX_ERRNO`).
    pub const MAX: i32 = 4095;

    consts!(
        EPERM,
        ENOENT,
        EINTR,
        EIO,
        ENXIO,
        EBADF,
        EAGAIN,
        ENOMEM,
        EACCES,
        EFAULT,
        EBUSY,
        EEXIST,
        EXDEV,
        ENODEV,
        ENOTDIR,
        EISDIR,
        EINVAL,
        ENFILE,
        EMFILE,
        ETXTBSY,
        EFBIG,
        ENOSPC,
        EROFS,
        EPIPE,
        ENAMETOOLONG,
        ENOSYS,
        ELOOP,
        EPROTO,
        EOVERFLOW,
        EOPNOTSUPP,
        ECONNRESET,
    );

    /// An errno from its number; `None` unless `1 <= n <= Errno::MAX`.
    pub const fn new(n: i32) -> Option<Errno> {
        if n >= 1 && n <= Self::MAX {
            Some(Errno(n))
        } else {
            None
        }
    }

    /// The errno called `name` (`"EACCES"`; upper case, as in `errno.h`).
    pub fn from_name(name: &str) -> Option<Errno> {
        TABLE
            .iter()
            .chain(ALIASES)
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| Errno(v))
    }

    /// A name (`"EACCES"`) or a decimal number (`"13"`), as a policy file
    /// may write it.
    pub fn parse(text: &str) -> Option<Errno> {
        if let Some(e) = Self::from_name(text) {
            return Some(e);
        }
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<i32>().ok().and_then(Errno::new)
    }

    /// The positive number.
    pub const fn get(self) -> i32 {
        self.0
    }

    /// The canonical name, when we know one.
    pub fn name(self) -> Option<&'static str> {
        TABLE.iter().find(|&&(_, v)| v == self.0).map(|&(n, _)| n)
    }

    /// The wire form of a failure: `-errno`.
    pub const fn to_result(self) -> i32 {
        -self.0
    }

    /// The errno carried by a negative wire result; `None` for `result >= 0`
    /// or a value below `-MAX`.
    pub const fn from_result(result: i32) -> Option<Errno> {
        if result < 0 && result >= -Self::MAX {
            Some(Errno(-result))
        } else {
            None
        }
    }

    /// The errno of an `io::Error`, when it has one.
    pub fn from_io_error(err: &io::Error) -> Option<Errno> {
        err.raw_os_error().and_then(Errno::new)
    }

    /// An `io::Error` carrying this errno.
    pub fn to_io_error(self) -> io::Error {
        io::Error::from_raw_os_error(self.0)
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Errno {
        // rustix errnos are always in 1..=4095; EIO is a safe stand-in
        // should that ever change.
        Errno::new(e.raw_os_error()).unwrap_or(Errno::EIO)
    }
}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        e.to_io_error()
    }
}

impl fmt::Display for Errno {
    /// `EACCES`, or the number for an errno we have no name for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "Errno({n}={})", self.0),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_agree_with_errno_h() {
        assert_eq!(Errno::from_name("EACCES"), Some(Errno::EACCES));
        assert_eq!(Errno::EACCES.get(), 13);
        assert_eq!(Errno::EPERM.get(), 1);
        assert_eq!(Errno::ENOENT.get(), 2);
        assert_eq!(Errno::EINVAL.get(), 22);
        assert_eq!(Errno::ENAMETOOLONG.get(), 36);
        assert_eq!(Errno::ENOSYS.get(), 38);
        assert_eq!(Errno::ELOOP.get(), 40);
        assert_eq!(Errno::EXDEV.get(), 18);
        assert_eq!(Errno::from_name("EWOULDBLOCK"), Some(Errno::EAGAIN));
        assert_eq!(Errno::EAGAIN.name(), Some("EAGAIN"));
    }

    #[test]
    fn every_table_name_round_trips() {
        for &(name, n) in TABLE {
            let e = Errno::from_name(name).unwrap();
            assert_eq!(e.get(), n);
            assert_eq!(e.name(), Some(name), "{name} must be the canonical name");
            assert_eq!(e.to_string(), name);
        }
    }

    #[test]
    fn numbers_are_unique_in_table() {
        let mut seen: Vec<i32> = TABLE.iter().map(|&(_, v)| v).collect();
        seen.sort_unstable();
        let len = seen.len();
        seen.dedup();
        assert_eq!(seen.len(), len);
    }

    #[test]
    fn parse_accepts_names_and_numbers_only() {
        assert_eq!(Errno::parse("EACCES"), Some(Errno::EACCES));
        assert_eq!(Errno::parse("13"), Some(Errno::EACCES));
        assert_eq!(Errno::parse("4095").map(Errno::get), Some(4095));
        for bad in [
            "", "eacces", "EFOO", "0", "-13", "+13", "4096", " 13", "13 ", "1e3",
        ] {
            assert_eq!(Errno::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn range_and_wire_form() {
        assert_eq!(Errno::new(0), None);
        assert_eq!(Errno::new(-1), None);
        assert_eq!(Errno::new(4096), None);
        assert_eq!(Errno::EACCES.to_result(), -13);
        assert_eq!(Errno::from_result(-13), Some(Errno::EACCES));
        assert_eq!(Errno::from_result(0), None);
        assert_eq!(Errno::from_result(5), None);
        assert_eq!(Errno::from_result(-4096), None);
        assert_eq!(Errno::from_result(i32::MIN), None);
    }

    #[test]
    fn display_unknown_number_and_io_error() {
        let e = Errno::new(4000).unwrap();
        assert_eq!(e.name(), None);
        assert_eq!(e.to_string(), "4000");
        let io = Errno::ENOENT.to_io_error();
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
        assert_eq!(Errno::from_io_error(&io), Some(Errno::ENOENT));
        assert_eq!(Errno::from(rustix::io::Errno::ACCESS), Errno::EACCES);
    }
}
