//! Resolution: performs what `policy::decide` allowed, with `openat2`
//! beneath the rule root. One of the two places that open paths (style
//! R3.6); there is no fallback resolver (without openat2 the broker refuses
//! to start, see [`probe_openat2`]).
//!
//! The open uses `O_NONBLOCK | O_NOCTTY` so a FIFO without a writer or a
//! device cannot hang the broker; the type is checked with `fstat` before
//! anything else happens to the file, then `O_TRUNC` is applied (regular
//! files only, as the kernel does) and the requested `O_NONBLOCK` state
//! restored.

#![allow(clippy::disallowed_methods)] // one of the two modules that open paths

use std::io;
use std::os::fd::OwnedFd;

use openhook_wire::Errno;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::ambient::RuleRoot;
use crate::policy::{Allowed, FileType};

/// Why an allowed request produced no fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// The file's type is not in the rule's `types`: a policy denial (the
    /// caller replies with the deny errno). `None` for an unknown type.
    TypeMismatch(Option<FileType>),
    /// A syscall failed; inside an allowed tree its errno is the reply.
    Sys(Errno),
}

impl From<rustix::io::Errno> for ResolveError {
    fn from(e: rustix::io::Errno) -> Self {
        ResolveError::Sys(e.into())
    }
}

/// Opens `allowed.rel` beneath `root`.
pub fn open_beneath(root: &RuleRoot, allowed: &Allowed<'_>) -> Result<OwnedFd, ResolveError> {
    let fd = rustix::fs::openat2(
        root.as_fd(),
        allowed.rel,
        OFlags::from_bits_retain(allowed.oflags),
        Mode::from_raw_mode(allowed.mode),
        allowed.resolve,
    )?;
    let st = rustix::fs::fstat(&fd)?;
    let ftype = FileType::from_st_mode(st.st_mode);
    if !allowed.permits_type(ftype) {
        return Err(ResolveError::TypeMismatch(ftype));
    }
    if allowed.truncate && ftype == Some(FileType::File) {
        rustix::fs::ftruncate(&fd, 0)?;
    }
    if !allowed.nonblock {
        let fl = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, fl - OFlags::NONBLOCK)?;
    }
    Ok(fd)
}

/// Checks that `openat2` with `RESOLVE_BENEATH` works, from `root`.
pub fn probe_openat2(root: &RuleRoot) -> io::Result<()> {
    rustix::fs::openat2(
        root.as_fd(),
        ".",
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .map(drop)
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    //! Real files in a temp tree; the escape and race tests through the
    //! broker live in `tests/tests/`.
    #![allow(clippy::disallowed_methods)]

    use super::*;
    use crate::ambient::Ambient;
    use crate::policy::{decide, flags::*, parse, Policy};
    use std::os::unix::fs::symlink;

    struct Tree {
        dir: tempfile::TempDir,
        policy: Policy,
        ambient: Ambient,
    }

    fn tree(extra: &str) -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join("vm")).expect("mkdir");
        for sub in ["vm/sub", "f", "dev"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dir.path().join("vm/disk.img"), b"disk").expect("write");
        std::fs::write(dir.path().join("outside"), b"outside").expect("write");
        let text = format!(
            "version = 1\ndeny_errno = \"EPERM\"\n[[allow]]\npath = \"{d}/vm/\"\naccess = \"rw\"\ncreate = true\nmode = 0o640\n{}",
            extra.replace("{d}", &d)
        );
        let policy = parse(&text, "t.toml").expect("parses");
        let ambient = Ambient::open(&policy).expect("opens");
        Tree {
            dir,
            policy,
            ambient,
        }
    }

    impl Tree {
        fn path(&self, rel: &str) -> String {
            format!("{}/{rel}", self.dir.path().display())
        }
        fn open(&self, rel: &str, flags: u32, mode: u32) -> Result<OwnedFd, Errno> {
            let p = self.path(rel);
            let a = decide(&self.policy, p.as_bytes(), flags, mode).map_err(|d| d.errno())?;
            let root = self.ambient.root(a.root).expect("root");
            open_beneath(root, &a).map_err(|e| match e {
                ResolveError::TypeMismatch(_) => self.policy.deny_errno,
                ResolveError::Sys(e) => e,
            })
        }
    }

    #[test]
    fn opens_inside_and_passes_real_errnos() {
        let t = tree("");
        let fd = t.open("vm/disk.img", O_RDWR, 0).expect("opens");
        let fl = rustix::fs::fcntl_getfl(&fd).expect("getfl");
        assert!(!fl.contains(OFlags::NONBLOCK), "O_NONBLOCK restored");
        assert!(fl.contains(OFlags::RDWR));
        let fdfl = rustix::io::fcntl_getfd(&fd).expect("getfd");
        assert!(fdfl.contains(rustix::io::FdFlags::CLOEXEC));
        let fd = t
            .open("vm/disk.img", O_RDONLY | O_NONBLOCK, 0)
            .expect("opens");
        let fl = rustix::fs::fcntl_getfl(&fd).expect("getfl");
        assert!(fl.contains(OFlags::NONBLOCK), "requested O_NONBLOCK kept");
        // Real errnos inside the tree.
        assert_eq!(t.open("vm/none", O_RDONLY, 0).err(), Some(Errno::ENOENT));
        assert_eq!(t.open("vm/sub", O_RDWR, 0).err(), Some(Errno::EISDIR));
        assert_eq!(
            t.open("vm/disk.img", O_RDONLY | O_CREAT | O_EXCL, 0o600)
                .err(),
            Some(Errno::EEXIST)
        );
        assert_eq!(
            t.open("vm/disk.img/x", O_RDONLY, 0).err(),
            Some(Errno::ENOTDIR)
        );
        // Outside: the deny errno whether the file exists or not.
        assert_eq!(t.open("outside", O_RDONLY, 0).err(), Some(Errno::EPERM));
        assert_eq!(t.open("nothing", O_RDONLY, 0).err(), Some(Errno::EPERM));
        // The directory itself is not a file.
        assert_eq!(
            t.open("vm", O_RDONLY | O_DIRECTORY, 0).err(),
            Some(Errno::EPERM)
        );
    }

    #[test]
    fn create_clamps_mode_and_truncate_applies() {
        let t = tree("");
        let old = rustix::process::umask(Mode::empty());
        let fd = t.open("vm/new", O_RDWR | O_CREAT, 0o666);
        rustix::process::umask(old);
        let st = rustix::fs::fstat(fd.expect("created")).expect("fstat");
        assert_eq!(st.st_mode & 0o7777, 0o640);
        let fd = t.open("vm/disk.img", O_WRONLY | O_TRUNC, 0).expect("opens");
        assert_eq!(rustix::fs::fstat(&fd).expect("fstat").st_size, 0);
    }

    #[test]
    fn types_are_enforced_without_side_effects() {
        let t = tree("[[allow]]\npath = \"{d}/dev/\"\naccess = \"rw\"\ntypes = [\"char\"]\n");
        std::fs::write(t.dir.path().join("dev/file"), b"data").expect("write");
        // A regular file under a char-only rule: denied, and not truncated.
        assert_eq!(
            t.open("dev/file", O_RDWR | O_TRUNC, 0).err(),
            Some(Errno::EPERM)
        );
        assert_eq!(
            std::fs::read(t.dir.path().join("dev/file")).expect("read"),
            b"data"
        );
    }

    #[test]
    fn fifo_without_writer_does_not_block() {
        let t = tree("[[allow]]\npath = \"{d}/fifo\"\naccess = \"rw\"\ntypes = [\"fifo\"]\n");
        let fifo = t.dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        // Returns at once although no writer exists.
        let fd = t.open("fifo", O_RDONLY, 0).expect("opens");
        let fl = rustix::fs::fcntl_getfl(&fd).expect("getfl");
        assert!(!fl.contains(OFlags::NONBLOCK));
        drop(fd);
        // A FIFO under a file-only rule is a policy denial.
        std::fs::create_dir(t.dir.path().join("vm/p")).expect("mkdir");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            t.dir.path().join("vm/p/fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        assert_eq!(t.open("vm/p/fifo", O_RDONLY, 0).err(), Some(Errno::EPERM));
        // Write side with no reader: the kernel's ENXIO, not a hang.
        assert_eq!(t.open("fifo", O_WRONLY, 0).err(), Some(Errno::ENXIO));
    }

    #[test]
    fn symlinks_refused_unless_followed_and_never_out() {
        let t = tree("[[allow]]\npath = \"{d}/f/\"\nfollow_symlinks = true\n");
        let vm = t.dir.path().join("vm");
        let f = t.dir.path().join("f");
        std::fs::write(f.join("target"), b"t").expect("write");
        symlink("disk.img", vm.join("rel")).expect("symlink");
        symlink("target", f.join("rel")).expect("symlink");
        symlink(t.path("outside"), vm.join("abs_out")).expect("symlink");
        symlink(t.path("outside"), f.join("abs_out")).expect("symlink");
        symlink("../outside", f.join("rel_out")).expect("symlink");
        symlink("..", f.join("up")).expect("symlink");
        symlink("/proc/self/root", f.join("magic")).expect("symlink");
        // No-follow rule: any symlink is ELOOP.
        assert_eq!(t.open("vm/rel", O_RDONLY, 0).err(), Some(Errno::ELOOP));
        assert_eq!(t.open("vm/abs_out", O_RDONLY, 0).err(), Some(Errno::ELOOP));
        // Follow rule: inside fine, out of the root never.
        let fd = t
            .open("f/rel", O_RDONLY, 0)
            .expect("inside symlink followed");
        drop(fd);
        for out in [
            "f/abs_out",
            "f/rel_out",
            "f/up/outside",
            "f/magic/etc/passwd",
        ] {
            assert_eq!(t.open(out, O_RDONLY, 0).err(), Some(Errno::EXDEV), "{out}");
        }
    }

    #[test]
    fn probe_works_here() {
        let t = tree("");
        probe_openat2(t.ambient.root(crate::policy::RootId(0)).expect("root")).expect("openat2");
    }
}
