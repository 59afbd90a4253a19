//! Making a target's path absolute (pure): join with the base directory
//! (the target's cwd or dirfd, as the broker read them), then normalise
//! lexically — `//` and `.` dropped, `..` removes the previous component
//! and stops at `/`. The result is what the policy decides on and what is
//! resolved beneath the rule root, so a `..` can never reach past what the
//! normalised path names. (A `..` after a symlink therefore means the
//! lexical parent, not the link target's; see docs/transparent.md.)
#![forbid(unsafe_code)]

use openhook_wire::Errno;

use crate::policy::decide::MAX_PATH;

/// A path made absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Absolute {
    /// Normalised, absolute, at most `MAX_PATH` bytes.
    pub path: Vec<u8>,
    /// The name must be a directory (trailing `/`, or ending in `.`/`..`).
    pub dir_only: bool,
    /// A relative path climbed above its base, or the path was absolute
    /// (what `RESOLVE_BENEATH` refuses).
    pub escapes_base: bool,
}

/// How `..` and absolute paths behave (`openat2`'s resolve flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scope {
    /// Ordinary lookup.
    #[default]
    Normal,
    /// `RESOLVE_IN_ROOT`: the base is `/` for this lookup (absolute paths
    /// start there, `..` stops there).
    InRoot,
}

/// Joins `path` to `base` (used when `path` is relative, or always under
/// [`Scope::InRoot`]) and normalises. `base` must be absolute.
pub fn absolute(base: Option<&[u8]>, path: &[u8], scope: Scope) -> Result<Absolute, Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.contains(&0) {
        return Err(Errno::EINVAL);
    }
    let relative = path[0] != b'/' || scope == Scope::InRoot;
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut floor = 0;
    if relative {
        let base = base.ok_or(Errno::ENOTDIR)?;
        if base.first() != Some(&b'/') || base.contains(&0) {
            return Err(Errno::ENOTDIR);
        }
        push_components(&mut parts, base);
        floor = parts.len();
    }
    let clamp = if scope == Scope::InRoot { floor } else { 0 };
    let mut escapes_base = !relative;
    let mut last_dot = false;
    for comp in path.split(|&b| b == b'/') {
        last_dot = false;
        match comp {
            b"" => {}
            b"." => last_dot = true,
            b".." => {
                last_dot = true;
                if parts.len() <= floor {
                    escapes_base = true;
                }
                if parts.len() > clamp {
                    parts.pop();
                }
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len() + base.map_or(0, <[u8]>::len) + 1);
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    if out.len() > MAX_PATH {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(Absolute {
        path: out,
        dir_only: path.ends_with(b"/") || last_dot,
        escapes_base,
    })
}

fn push_components<'a>(parts: &mut Vec<&'a [u8]>, path: &'a [u8]) {
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
}

/// `/proc/<tgid>` of the asking process itself is decided as `/proc/self`
/// (so a policy need not name a pid, and `learn` writes `/proc/self`).
pub fn proc_self_alias(path: Vec<u8>, tgid: i32) -> Vec<u8> {
    let own = format!("/proc/{tgid}");
    match path.strip_prefix(own.as_bytes()) {
        Some(rest) if rest.is_empty() || rest.starts_with(b"/") => {
            let mut out = b"/proc/self".to_vec();
            out.extend_from_slice(rest);
            out
        }
        _ => path,
    }
}

/// A base directory as `/proc/<pid>/cwd` or `/proc/<pid>/fd/<n>` reads:
/// usable only when absolute and not deleted.
pub fn usable_base(link: &[u8]) -> Result<&[u8], Errno> {
    if link.first() != Some(&b'/') {
        return Err(Errno::ENOTDIR);
    }
    if link.ends_with(b" (deleted)") {
        return Err(Errno::ENOENT);
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abs(base: &str, path: &str) -> Result<Absolute, Errno> {
        absolute(Some(base.as_bytes()), path.as_bytes(), Scope::Normal)
    }

    fn p(base: &str, path: &str) -> String {
        String::from_utf8(abs(base, path).expect("absolute").path).expect("utf8")
    }

    #[test]
    fn joins_and_normalises() {
        assert_eq!(p("/srv/vm", "disk.img"), "/srv/vm/disk.img");
        assert_eq!(p("/srv/vm", "/etc//passwd"), "/etc/passwd");
        assert_eq!(p("/srv/vm", "./a/./b"), "/srv/vm/a/b");
        assert_eq!(p("/srv/vm", "../../../etc/passwd"), "/etc/passwd");
        assert_eq!(p("/srv/vm", ".."), "/srv");
        assert_eq!(p("/", "."), "/");
        assert_eq!(p("/", "/"), "/");
        assert_eq!(p("/srv", "a/b/"), "/srv/a/b");
    }

    #[test]
    fn marks_directory_only_and_escapes() {
        assert!(abs("/srv", "a/").expect("ok").dir_only);
        assert!(abs("/srv", "a/..").expect("ok").dir_only);
        assert!(!abs("/srv", "a").expect("ok").dir_only);
        assert!(abs("/srv/vm", "../x").expect("ok").escapes_base);
        assert!(abs("/srv/vm", "/srv/vm/x").expect("ok").escapes_base);
        assert!(!abs("/srv/vm", "a/../b").expect("ok").escapes_base);
    }

    #[test]
    fn in_root_clamps_at_the_base() {
        let a = absolute(Some(b"/srv/vm"), b"/../../etc/passwd", Scope::InRoot).expect("ok");
        assert_eq!(a.path, b"/srv/vm/etc/passwd");
        let a = absolute(Some(b"/srv/vm"), b"x/../../y", Scope::InRoot).expect("ok");
        assert_eq!(a.path, b"/srv/vm/y");
    }

    #[test]
    fn own_proc_dir_is_self() {
        assert_eq!(
            proc_self_alias(b"/proc/42/status".to_vec(), 42),
            b"/proc/self/status"
        );
        assert_eq!(proc_self_alias(b"/proc/42".to_vec(), 42), b"/proc/self");
        assert_eq!(
            proc_self_alias(b"/proc/421/status".to_vec(), 42),
            b"/proc/421/status"
        );
        assert_eq!(
            proc_self_alias(b"/proc/1/status".to_vec(), 42),
            b"/proc/1/status"
        );
    }

    #[test]
    fn bad_names() {
        assert_eq!(abs("/srv", ""), Err(Errno::ENOENT));
        assert_eq!(abs("/srv", "a\0b"), Err(Errno::EINVAL));
        assert_eq!(absolute(None, b"rel", Scope::Normal), Err(Errno::ENOTDIR));
        assert_eq!(abs("pipe:[12]", "x"), Err(Errno::ENOTDIR));
        assert_eq!(abs("/a\0b", "x"), Err(Errno::ENOTDIR));
        let long = "a/".repeat(3000);
        assert_eq!(abs("/srv", &long), Err(Errno::ENAMETOOLONG));
        assert_eq!(usable_base(b"/srv (deleted)"), Err(Errno::ENOENT));
        assert_eq!(usable_base(b"anon_inode:[eventfd]"), Err(Errno::ENOTDIR));
        assert_eq!(usable_base(b"/srv"), Ok(&b"/srv"[..]));
    }
}
