//! The policy: TOML text → validated [`Policy`] (`parse`, `model`), open
//! flags (`flags`), and the pure request decision (`decide`).
//! The reference for users is `docs/policy.md`.

pub mod decide;
pub mod flags;
pub mod model;
pub mod parse;

use std::path::Path;

use rustix::io::Errno;

pub use decide::{decide, Allowed, Denial, DenyReason};
pub use model::{
    Access, FileType, FileTypes, Listen, Namespace, Policy, Preopen, RootId, Rule, RuleId,
    RuleKind, SandboxMode, SandboxPolicy,
};
pub use parse::{parse, PolicyError};

/// Reads and validates a policy file. Read errors are reported as
/// `file:1:1: message` so every load failure has one shape.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let name = path.display().to_string();
    let text = crate::ambient::read_policy_file(path).map_err(|e| PolicyError {
        file: name.clone(),
        line: e.line,
        col: e.col,
        message: e.message,
    })?;
    parse(&text, &name)
}

/// Errno names a policy may use for `deny_errno`.
const ERRNO_NAMES: &[(&str, Errno)] = &[
    ("EPERM", Errno::PERM),
    ("ENOENT", Errno::NOENT),
    ("EIO", Errno::IO),
    ("ENXIO", Errno::NXIO),
    ("EBADF", Errno::BADF),
    ("EAGAIN", Errno::AGAIN),
    ("ENOMEM", Errno::NOMEM),
    ("EACCES", Errno::ACCESS),
    ("EBUSY", Errno::BUSY),
    ("EEXIST", Errno::EXIST),
    ("ENODEV", Errno::NODEV),
    ("ENOTDIR", Errno::NOTDIR),
    ("EISDIR", Errno::ISDIR),
    ("EINVAL", Errno::INVAL),
    ("ENFILE", Errno::NFILE),
    ("EMFILE", Errno::MFILE),
    ("ETXTBSY", Errno::TXTBSY),
    ("ENOSPC", Errno::NOSPC),
    ("EROFS", Errno::ROFS),
    ("ENAMETOOLONG", Errno::NAMETOOLONG),
    ("ENOSYS", Errno::NOSYS),
    ("ELOOP", Errno::LOOP),
    ("ENOTSUP", Errno::NOTSUP),
    ("EOPNOTSUPP", Errno::OPNOTSUPP),
    ("EXDEV", Errno::XDEV),
    ("ENOMEDIUM", Errno::NOMEDIUM),
];

/// The errno for a name such as `"EACCES"`.
pub fn errno_from_name(name: &str) -> Option<Errno> {
    ERRNO_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, e)| *e)
}

/// The name of an errno, when it has one in the table.
pub fn errno_name(errno: Errno) -> Option<&'static str> {
    ERRNO_NAMES
        .iter()
        .find(|(_, e)| *e == errno)
        .map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_round_trip() {
        for (name, e) in ERRNO_NAMES {
            assert_eq!(errno_from_name(name), Some(*e));
        }
        assert_eq!(
            errno_from_name("EACCES").map(|e| e.raw_os_error()),
            Some(13)
        );
        assert_eq!(errno_from_name("eacces"), None);
        assert_eq!(errno_name(Errno::PERM), Some("EPERM"));
    }
}
