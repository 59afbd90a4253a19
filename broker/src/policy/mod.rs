//! The policy: TOML text → validated [`Policy`] (`parse`, `model`), open
//! flags (`flags`), and the pure request decision (`decide`).
//! The reference for users is `docs/policy.md`.

pub mod decide;
pub mod flags;
pub mod model;
pub mod parse;
pub mod sections;

use openhook_wire::Errno;

pub use decide::{decide, decide_traced, Allowed, Denial, DenyReason, Lost, Trace};
pub use model::{
    Access, FileType, FileTypes, Listen, Namespace, Policy, Preopen, RootId, Rule, RuleId,
    RuleKind, SandboxMode, SandboxPolicy,
};
pub use parse::{parse, PolicyError};

/// The errno for a name such as `"EACCES"` (the wire crate's table).
pub fn errno_from_name(name: &str) -> Option<Errno> {
    Errno::from_name(name)
}

/// The name of an errno, when the wire crate's table has one.
pub fn errno_name(errno: Errno) -> Option<&'static str> {
    errno.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(errno_from_name("EACCES").map(Errno::get), Some(13));
        assert_eq!(errno_from_name("ENOENT").map(Errno::get), Some(2));
        assert_eq!(errno_from_name("eacces"), None);
        assert_eq!(errno_name(Errno::EPERM), Some("EPERM"));
    }
}
