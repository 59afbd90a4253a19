//! Escapes through the broker (policy → decide → openat2 beneath the rule
//! root), on real files in a temp tree, each request sent by the real
//! `HookClient` to the real serve loop (see `inproc`). Each case shows the
//! plain, unconfined open reaches the outside file, and the brokered open
//! does not.
#![allow(clippy::disallowed_methods)]

mod inproc;

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use inproc::InProc;
use openhook_broker::ambient::Ambient;
use openhook_broker::policy;
use openhook_wire::Errno;

const O_RDONLY: u32 = 0;
const DENY: Errno = Errno::EPERM;

struct Fixture {
    base: PathBuf,
    broker: InProc,
    _dir: tempfile::TempDir,
}

/// `tree/` (rw, symlinks refused), `ftree/` (symlinks followed beneath),
/// `outside/secret` outside every rule.
fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().to_path_buf();
    for d in ["tree/sub", "ftree/sub", "outside"] {
        fs::create_dir_all(base.join(d)).expect("mkdir");
    }
    fs::write(base.join("tree/file"), b"inside").expect("write");
    fs::write(base.join("ftree/file"), b"inside").expect("write");
    fs::write(base.join("outside/secret"), b"secret").expect("write");
    let b = base.display();
    let text = format!(
        "version = 1\ndeny_errno = \"EPERM\"\n\
         [[allow]]\npath = \"{b}/tree/\"\naccess = \"rw\"\n\
         [[allow]]\npath = \"{b}/ftree/\"\naccess = \"rw\"\nfollow_symlinks = true\n{extra}"
    );
    let policy = policy::parse(&text, "escape.toml").expect("policy parses");
    let ambient = Ambient::open(&policy).expect("ambient opens");
    Fixture {
        base,
        // In process, the requesting process is this one: `/proc/self` in
        // a request means the test process (the broker never resolves it
        // to its own pid otherwise).
        broker: InProc::start_as(
            Arc::new(policy),
            Arc::new(ambient),
            None,
            i32::try_from(std::process::id()).expect("pid"),
        ),
        _dir: dir,
    }
}

impl Fixture {
    fn p(&self, rel: &str) -> PathBuf {
        self.base.join(rel)
    }

    fn broker_open(&self, path: &Path) -> Result<OwnedFd, Errno> {
        use std::os::unix::ffi::OsStrExt;
        self.broker.open(path.as_os_str().as_bytes(), O_RDONLY, 0)
    }
}

fn dev_ino(fd: impl AsFd) -> (u64, u64) {
    let st = rustix::fs::fstat(fd).expect("fstat");
    (st.st_dev, st.st_ino)
}

fn meta_id(path: &Path) -> (u64, u64) {
    let m = fs::metadata(path).expect("stat");
    (m.dev(), m.ino())
}

/// The unconfined open of `path` reaches `outside` (so the case is a real
/// escape attempt) and the brokered open fails with one of `errnos`.
fn assert_escape_refused(f: &Fixture, path: &Path, outside: &Path, errnos: &[Errno]) {
    let plain = fs::File::open(path).expect("unconfined open works");
    assert_eq!(
        dev_ino(&plain),
        meta_id(outside),
        "{} reaches the outside file unconfined",
        path.display()
    );
    match f.broker_open(path) {
        Ok(fd) => panic!(
            "{} escaped through the broker: got {:?}",
            path.display(),
            dev_ino(&fd)
        ),
        Err(e) => assert!(errnos.contains(&e), "{}: {e:?}", path.display()),
    }
}

#[test]
fn absolute_and_relative_symlinks_out_of_a_subtree() {
    let f = fixture("");
    let secret = f.p("outside/secret");
    for tree in ["tree", "ftree"] {
        symlink(&secret, f.p(&format!("{tree}/abs"))).expect("symlink");
        symlink("../outside/secret", f.p(&format!("{tree}/rel"))).expect("symlink");
        symlink("../../outside/secret", f.p(&format!("{tree}/sub/rel2"))).expect("symlink");
        symlink(f.p("outside"), f.p(&format!("{tree}/absdir"))).expect("symlink");
    }
    for tree in ["tree", "ftree"] {
        // Refused: ELOOP where symlinks are refused, EXDEV where they are
        // followed but would leave the root.
        let errs = if tree == "tree" {
            [Errno::ELOOP]
        } else {
            [Errno::EXDEV]
        };
        assert_escape_refused(&f, &f.p(&format!("{tree}/abs")), &secret, &errs);
        assert_escape_refused(&f, &f.p(&format!("{tree}/rel")), &secret, &errs);
        assert_escape_refused(&f, &f.p(&format!("{tree}/sub/rel2")), &secret, &errs);
        assert_escape_refused(&f, &f.p(&format!("{tree}/absdir/secret")), &secret, &errs);
    }
    // And the outside file itself is simply not in the policy.
    assert_eq!(f.broker_open(&secret).err(), Some(DENY));
}

#[test]
fn dot_dot_through_a_symlink() {
    let f = fixture("");
    let secret = f.p("outside/secret");
    symlink("..", f.p("tree/up")).expect("symlink");
    symlink("..", f.p("ftree/up")).expect("symlink");
    symlink("../..", f.p("ftree/sub/upup")).expect("symlink");
    assert_escape_refused(&f, &f.p("tree/up/outside/secret"), &secret, &[Errno::ELOOP]);
    assert_escape_refused(
        &f,
        &f.p("ftree/up/outside/secret"),
        &secret,
        &[Errno::EXDEV],
    );
    assert_escape_refused(
        &f,
        &f.p("ftree/sub/upup/outside/secret"),
        &secret,
        &[Errno::EXDEV],
    );
    // A literal `..` never reaches resolution.
    let lit = format!("{}/tree/../outside/secret", f.base.display());
    assert_eq!(f.broker_open(Path::new(&lit)).err(), Some(DENY));
    // `..` that stays inside a followed tree is fine.
    symlink("../file", f.p("ftree/sub/back")).expect("symlink");
    let fd = f.broker_open(&f.p("ftree/sub/back")).expect("inside");
    assert_eq!(dev_ino(&fd), meta_id(&f.p("ftree/file")));
}

#[test]
fn magic_links_are_refused_even_inside_an_allowed_tree() {
    // The broker's own /proc/self: /proc/self/fd/N and /proc/self/root are
    // magic links, refused by RESOLVE_NO_MAGICLINKS although the rule
    // allows the tree and follows symlinks.
    let f = fixture(
        "[[allow]]\npath = \"/proc/self/\"\nfollow_symlinks = true\ntypes = [\"file\", \"dir\"]\n",
    );
    let secret = f.p("outside/secret");
    let held = fs::File::open(&secret).expect("open secret");
    let n = std::os::fd::AsRawFd::as_raw_fd(&held);
    let fdlink = PathBuf::from(format!("/proc/self/fd/{n}"));
    assert_escape_refused(&f, &fdlink, &secret, &[Errno::ELOOP]);
    let rootlink = PathBuf::from(format!("/proc/self/root{}", secret.display()));
    assert_escape_refused(&f, &rootlink, &secret, &[Errno::ELOOP]);
    // Ordinary files in the same tree still open: the tree is really allowed.
    let fd = f
        .broker_open(Path::new("/proc/self/status"))
        .expect("plain file in the allowed tree");
    drop(fd);
    // Magic links reached through a symlink in a followed tree: the
    // absolute target leaves the root first.
    symlink(&fdlink, f.p("ftree/fdlink")).expect("symlink");
    assert_escape_refused(&f, &f.p("ftree/fdlink"), &secret, &[Errno::EXDEV]);
    symlink("/proc/self/root", f.p("ftree/root")).expect("symlink");
    let via_root = f.p(&format!("ftree/root{}", secret.display()));
    assert_escape_refused(&f, &via_root, &secret, &[Errno::EXDEV]);
    drop(held);
}

#[test]
fn hard_links_fine_only_inside() {
    let f = fixture("");
    // A hard link inside the tree to a file inside: the same inode, allowed.
    fs::hard_link(f.p("tree/file"), f.p("tree/sub/hl")).expect("link");
    let fd = f
        .broker_open(&f.p("tree/sub/hl"))
        .expect("inside link opens");
    assert_eq!(dev_ino(&fd), meta_id(&f.p("tree/file")));
    // A hard link outside the tree to an inside file: refused, it is not
    // in the policy (the unconfined open works).
    fs::hard_link(f.p("tree/file"), f.p("outside/hl")).expect("link");
    fs::File::open(f.p("outside/hl")).expect("unconfined open works");
    assert_eq!(f.broker_open(&f.p("outside/hl")).err(), Some(DENY));
}

#[test]
fn no_match_never_leaks_existence() {
    let f = fixture("");
    assert_eq!(f.broker_open(&f.p("outside/secret")).err(), Some(DENY));
    assert_eq!(f.broker_open(&f.p("outside/missing")).err(), Some(DENY));
    assert_eq!(f.broker_open(Path::new("/etc/passwd")).err(), Some(DENY));
    assert_eq!(f.broker_open(Path::new("/nonexistent/x")).err(), Some(DENY));
    // Inside the tree the real errno passes.
    assert_eq!(
        f.broker_open(&f.p("tree/missing")).err(),
        Some(Errno::ENOENT)
    );
}

#[test]
fn fifo_and_char_devices_type_checked_without_blocking() {
    let f = fixture(
        "[[allow]]\npath = \"/dev/null\"\naccess = \"rw\"\ntypes = [\"char\"]\n\
         [[allow]]\npath = \"/dev/zero\"\n",
    );
    let fifo = f.p("tree/fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    // A FIFO under a file-only rule: denied at once (an unconfined
    // O_RDONLY open would block forever without a writer).
    assert_eq!(f.broker_open(&fifo).err(), Some(DENY));
    // /dev/null allowed as a char device, with blocking mode restored.
    let fd = f.broker_open(Path::new("/dev/null")).expect("/dev/null");
    let fl = rustix::fs::fcntl_getfl(&fd).expect("getfl");
    assert!(!fl.contains(rustix::fs::OFlags::NONBLOCK));
    // /dev/zero under a rule with the default types ["file"]: denied.
    assert_eq!(f.broker_open(Path::new("/dev/zero")).err(), Some(DENY));
}
