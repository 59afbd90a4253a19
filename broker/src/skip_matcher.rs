//! TEST ONLY (`--features test-skip-matcher`): a `decide` that allows every
//! well-formed request, resolved beneath an extra `/` root. With it the
//! broker's kernel layer (its Landlock domain, `sandbox::broker`) is the
//! only thing between a request and the filesystem, which is what
//! `tests/tests/resilience_confine.rs` shows refusing out-of-policy opens.
#![forbid(unsafe_code)]

#[cfg(not(debug_assertions))]
compile_error!("the test-skip-matcher feature must never be in a release build");

use rustix::fs::ResolveFlags;

use crate::policy::flags::{O_CLOEXEC, O_CREAT, O_NOCTTY, O_TMPFILE};
use crate::policy::{Allowed, Denial, DenyReason, FileTypes, Policy, RootId, RuleId};

/// The extra root `Ambient::open` adds in this build: `/`, after the
/// policy's roots.
pub fn root_id(policy: &Policy) -> RootId {
    RootId(policy.roots.len())
}

/// Allows `path` (absolute) with the request's flags, beneath `/`.
pub fn decide<'a>(
    policy: &Policy,
    path: &'a [u8],
    flags: u32,
    mode: u32,
) -> Result<Allowed<'a>, Denial> {
    let Some(rel) = path.strip_prefix(b"/").filter(|r| !r.is_empty()) else {
        return Err(Denial {
            errno: policy.deny_errno,
            reason: DenyReason::NotAbsolute,
            rule: None,
        });
    };
    Ok(Allowed {
        root: root_id(policy),
        rel,
        oflags: flags | O_CLOEXEC | O_NOCTTY,
        nonblock: false,
        truncate: false,
        // openat2 refuses a mode without O_CREAT/O_TMPFILE.
        mode: if flags & (O_CREAT | O_TMPFILE) != 0 {
            mode
        } else {
            0
        },
        resolve: ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        types: FileTypes::FILE_ONLY,
        rule: RuleId(0),
    })
}
