//! Escapes from transparent mode (needs root, as CI runs it):
//! `tests/data/transparent/escape-probe.c`, built static with gcc into the
//! test's scratch directory (so the loader opens nothing and the policy
//! stays small: the scratch tree's `allowed/`, `ftree/`, `rw/`, `sockets/`
//! and `fsockets/` and two `/proc/self` files), attempts each way out
//! twice in the same run: unconfined, where it must reach the outside file
//! (or succeed), then under `openhook-broker --transparent`, where it must
//! be refused (an errno, or SIGSYS for the foreign ABIs) and never yield an
//! fd whose dev/ino is that of a file outside the policy. Positive controls
//! (allowed opens, served stats) keep a broker that refuses everything from
//! passing.
#![allow(clippy::disallowed_methods, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use openhook_tests::broker::wait_or_kill;
use openhook_tests::transparent::{self as tp, audit_lines, field};

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const ENOSYS: i32 = 38;
const SIGSYS: i32 = 31;

/// What one run of the probe came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// An fd, by its (dev, ino).
    Fd(u64, u64),
    /// Success; the rest of the `ok` line.
    Ok(String),
    Err(i32),
    Signal(i32),
    /// The `race` line.
    Race(String),
    /// Anything else: the run's stdout, stderr and status, for the message.
    Other(String),
}

impl Outcome {
    fn refused(&self) -> bool {
        matches!(self, Outcome::Err(_) | Outcome::Signal(_))
    }
}

fn parse(stdout: &str, stderr: &str, status: std::process::ExitStatus, confined: bool) -> Outcome {
    let line = stdout.lines().next().unwrap_or("").trim();
    let words: Vec<&str> = line.split_whitespace().collect();
    let signal = if confined {
        // The broker mirrors a killed child as 128 + signal.
        status.code().filter(|c| *c > 128).map(|c| c - 128)
    } else {
        status.signal()
    };
    match words.as_slice() {
        ["ok", "fd", d, i, ..] => Outcome::Fd(d.parse().unwrap(), i.parse().unwrap()),
        ["ok", rest @ ..] => Outcome::Ok(rest.join(" ")),
        // exec_sh: the shell's own output.
        ["exec-ok"] => Outcome::Ok("exec-ok".into()),
        ["race", ..] => Outcome::Race(line.to_string()),
        [e, n] if e.starts_with("err") => Outcome::Err(n.parse().unwrap()),
        [] if signal.is_some() => Outcome::Signal(signal.unwrap()),
        _ => Outcome::Other(format!(
            "stdout {stdout:?} stderr {stderr:?} status {status:?}"
        )),
    }
}

/// The scratch tree, the probe and the policy.
struct Fx {
    _dir: tempfile::TempDir,
    s: PathBuf,
    probe: PathBuf,
    policy: PathBuf,
    runs: std::cell::Cell<u32>,
}

fn id(p: &Path) -> (u64, u64) {
    let m = fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.dev(), m.ino())
}

/// How a run is set up besides its arguments.
#[derive(Default, Clone)]
struct Opts {
    cwd: Option<PathBuf>,
    /// Opened read-only (a directory too) and inherited at this fd number.
    fd7: Option<PathBuf>,
    /// The probe's stdin.
    stdin: Option<PathBuf>,
    /// Confined with `[sandbox] mode = "off"`: the filter and the broker
    /// alone, no Landlock behind them.
    sandbox_off: bool,
    /// Rules added to the policy for this run.
    extra_rules: Option<String>,
}

impl Fx {
    fn new() -> Fx {
        // The unconfined halves use root's powers (file handles, fsopen,
        // chroot, pidfd_getfd on the test process, chown): a non-root run
        // fails here rather than on a confusing half.
        assert_eq!(
            rustix::process::geteuid().as_raw(),
            0,
            "the transparent escape suite needs root: each attempt must be able to succeed unconfined"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let s = dir.path().to_path_buf();
        for d in [
            "allowed/sub",
            "ftree/sub",
            "sockets",
            "fsockets",
            "rw",
            "outside/dir",
            "outside/mirror",
        ] {
            fs::create_dir_all(s.join(d)).unwrap();
        }
        fs::write(s.join("allowed/file"), b"inside").unwrap();
        // Same length as outside/secret: the race flips between the two.
        fs::write(s.join("allowed/secret"), b"inside too").unwrap();
        fs::write(s.join("ftree/file"), b"inside").unwrap();
        fs::write(s.join("outside/secret"), b"secret").unwrap();
        symlink(s.join("outside/secret"), s.join("outside/link")).unwrap();
        for t in ["allowed", "ftree"] {
            symlink(s.join("outside/secret"), s.join(format!("{t}/link_abs"))).unwrap();
            symlink("../outside/secret", s.join(format!("{t}/link_rel"))).unwrap();
            symlink("../../outside/secret", s.join(format!("{t}/sub/link_rel2"))).unwrap();
            symlink("../outside", s.join(format!("{t}/dirlink"))).unwrap();
        }
        // outside/mirror/<S>/allowed/file: what RESOLVE_IN_ROOT beneath
        // outside/mirror reaches for the path "<S>/allowed/file".
        let mirror = s.join("outside/mirror").join(s.strip_prefix("/").unwrap());
        fs::create_dir_all(mirror.join("allowed")).unwrap();
        fs::write(mirror.join("allowed/file"), b"mirror").unwrap();

        let probe = s.join("escape-probe");
        tp::gcc(&tp::source("escape-probe.c"), &probe, &["-static"]);
        // A copy the policy lets it read (not execute).
        fs::copy(&probe, s.join("allowed/probe-copy")).unwrap();
        let policy = s.join("policy.toml");
        let d = s.display();
        fs::write(
            &policy,
            format!(
                "version = 1\ndeny_errno = \"EPERM\"\n\n\
                 [[allow]]\npath = \"{d}/allowed/\"\naccess = \"r\"\ntypes = [\"file\", \"dir\"]\n\n\
                 [[allow]]\npath = \"{d}/ftree/\"\naccess = \"r\"\ntypes = [\"file\", \"dir\"]\nfollow_symlinks = true\n\n\
                 [[allow]]\npath = \"{d}/rw/\"\naccess = \"rw\"\ncreate = true\n\n\
                 [[allow]]\npath = \"{d}/sockets/\"\naccess = \"rw\"\ntypes = [\"file\", \"socket\"]\ncreate = true\n\n\
                 [[allow]]\npath = \"{d}/fsockets/\"\naccess = \"rw\"\ntypes = [\"socket\"]\nfollow_symlinks = true\n\n\
                 [[allow]]\npath = \"/proc/self/status\"\naccess = \"r\"\n\n\
                 [[allow]]\npath = \"/proc/thread-self/status\"\naccess = \"r\"\n"
            ),
        )
        .unwrap();
        Fx {
            _dir: dir,
            s,
            probe,
            policy,
            runs: std::cell::Cell::new(0),
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.s.join(rel)
    }

    fn ps(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }

    /// The command, wrapped in `sh` when fd 7 must be inherited.
    fn spawn(&self, confined: bool, args: &[&str], o: &Opts, audit: &Path) -> Outcome {
        let mut cmd = if confined {
            let pass: &[i32] = if o.fd7.is_some() { &[7] } else { &[] };
            let policy = if o.sandbox_off || o.extra_rules.is_some() {
                let variant = self.s.join("policy-variant.toml");
                let mut text = fs::read_to_string(&self.policy).unwrap();
                if let Some(extra) = &o.extra_rules {
                    text.push_str(extra);
                }
                if o.sandbox_off {
                    text.push_str("\n[sandbox]\nmode = \"off\"\n");
                }
                fs::write(&variant, text).unwrap();
                variant
            } else {
                self.policy.clone()
            };
            tp::command(&policy, Some(audit), pass, &self.probe, args)
        } else {
            let mut c = Command::new(&self.probe);
            c.args(args);
            c
        };
        if let Some(dir) = &o.fd7 {
            // sh opens the directory at fd 7 and execs the real command.
            let mut wrapped = Command::new("/bin/sh");
            wrapped
                .arg("-c")
                .arg("exec 7<\"$0\"; exec \"$@\"")
                .arg(dir)
                .arg(cmd.get_program())
                .args(cmd.get_args());
            cmd = wrapped;
        }
        if let Some(c) = &o.cwd {
            cmd.current_dir(c);
        }
        cmd.stdin(match &o.stdin {
            Some(p) => Stdio::from(fs::File::open(p).unwrap()),
            None => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || std::io::read_to_string(out).unwrap());
        let t_err = std::thread::spawn(move || std::io::read_to_string(err).unwrap());
        let status = wait_or_kill(&mut child, Duration::from_secs(120));
        let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
        parse(&stdout, &stderr, status, confined)
    }

    /// Runs ARGS unconfined, then confined (fresh audit log); returns both
    /// outcomes and the confined run's audit lines.
    fn both(&self, args: &[&str], o: &Opts) -> (Outcome, Outcome, Vec<serde_json::Value>) {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let audit = self.s.join(format!("audit-{n}.jsonl"));
        let bare = self.spawn(false, args, o, &audit);
        let conf = self.spawn(true, args, o, &audit);
        (bare, conf, audit_lines(&audit))
    }

    /// The attempt reaches `outside` unconfined and is refused confined
    /// (with `errno` when given); returns the confined audit lines.
    fn escape(
        &self,
        args: &[&str],
        o: &Opts,
        outside: (u64, u64),
        errno: Option<i32>,
    ) -> Vec<serde_json::Value> {
        let (bare, conf, audit) = self.both(args, o);
        assert_eq!(
            bare,
            Outcome::Fd(outside.0, outside.1),
            "{args:?}: unconfined, the attempt must reach the outside file"
        );
        assert_ne!(
            conf,
            Outcome::Fd(outside.0, outside.1),
            "{args:?}: ESCAPED under --transparent"
        );
        match errno {
            Some(e) => assert_eq!(conf, Outcome::Err(e), "{args:?} confined"),
            None => assert!(conf.refused(), "{args:?} confined: {conf:?}"),
        }
        audit
    }

    /// The attempt succeeds unconfined (any `ok`) and is refused confined.
    fn refused(&self, args: &[&str], o: &Opts) -> Outcome {
        let (bare, conf, _) = self.both(args, o);
        assert!(
            matches!(bare, Outcome::Ok(_) | Outcome::Fd(..)),
            "{args:?}: unconfined, the attempt must succeed: {bare:?}"
        );
        assert!(conf.refused(), "{args:?}: not refused confined: {conf:?}");
        conf
    }

    /// Confined only: the outcome.
    fn confined(&self, args: &[&str], o: &Opts) -> (Outcome, Vec<serde_json::Value>) {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let audit = self.s.join(format!("audit-{n}.jsonl"));
        let c = self.spawn(true, args, o, &audit);
        (c, audit_lines(&audit))
    }
}

/// An audit line with this decision, syscall and path exists.
fn assert_audited(audit: &[serde_json::Value], decision: &str, syscall: &str, path: &str) {
    assert!(
        audit.iter().any(|l| field(l, "decision") == decision
            && field(l, "syscall") == syscall
            && field(l, "path") == path),
        "no audit line {{decision: {decision}, syscall: {syscall}, path: {path}}} in {audit:#?}"
    );
}

fn cwd(p: PathBuf) -> Opts {
    Opts {
        cwd: Some(p),
        ..Opts::default()
    }
}

#[test]
fn paths_outside_the_policy_are_refused() {
    let f = Fx::new();
    let none = Opts::default();
    let secret = id(&f.p("outside/secret"));
    let file = id(&f.p("allowed/file"));

    // Positive controls: the broker does hand out what the policy allows.
    let (c, audit) = f.confined(&["open", &f.ps("allowed/file")], &none);
    assert_eq!(c, Outcome::Fd(file.0, file.1), "allowed open");
    assert_audited(&audit, "allow", "openat", &f.ps("allowed/file"));
    let (c, _) = f.confined(&["creat", &f.ps("rw/created")], &none);
    assert!(matches!(c, Outcome::Fd(..)), "creat in rw/: {c:?}");
    assert!(f.p("rw/created").is_file());
    let (c, _) = f.confined(&["open", "file"], &cwd(f.p("allowed")));
    assert_eq!(c, Outcome::Fd(file.0, file.1), "relative open in allowed/");
    let (c, _) = f.confined(&["openat", &f.ps("allowed"), "file"], &none);
    assert_eq!(c, Outcome::Fd(file.0, file.1), "openat on an allowed dirfd");

    // The absolute path, through every open syscall.
    let audit = f.escape(
        &["open", &f.ps("outside/secret")],
        &none,
        secret,
        Some(EPERM),
    );
    assert_audited(&audit, "deny", "openat", &f.ps("outside/secret"));
    let audit = f.escape(
        &["sys_open", &f.ps("outside/secret")],
        &none,
        secret,
        Some(EPERM),
    );
    assert_audited(&audit, "deny", "open", &f.ps("outside/secret"));
    let audit = f.escape(
        &["openat2", "cwd", &f.ps("outside/secret"), "0"],
        &none,
        secret,
        Some(EPERM),
    );
    assert_audited(&audit, "deny", "openat2", &f.ps("outside/secret"));
    // creat: created unconfined, not confined.
    let (bare, conf, audit) = f.both(&["creat", &f.ps("outside/new")], &none);
    assert!(
        matches!(bare, Outcome::Fd(..)),
        "creat unconfined: {bare:?}"
    );
    fs::remove_file(f.p("outside/new")).unwrap();
    assert_eq!(conf, Outcome::Err(EPERM), "creat outside confined");
    assert!(
        !f.p("outside/new").exists(),
        "creat outside created the file"
    );
    assert_audited(&audit, "deny", "creat", &f.ps("outside/new"));

    // Relative to the cwd: the cwd outside, and `..` out of an allowed cwd.
    let audit = f.escape(
        &["open", "secret"],
        &cwd(f.p("outside")),
        secret,
        Some(EPERM),
    );
    assert_audited(&audit, "deny", "openat", &f.ps("outside/secret"));
    f.escape(
        &["open", "../outside/secret"],
        &cwd(f.p("allowed")),
        secret,
        Some(EPERM),
    );
    // A dirfd: `..` from an allowed directory; fchdir there first; an
    // inherited dirfd of the outside directory.
    f.escape(
        &["openat", &f.ps("allowed"), "../outside/secret"],
        &none,
        secret,
        Some(EPERM),
    );
    f.escape(
        &["fchdir", &f.ps("allowed/sub"), "../../outside/secret"],
        &none,
        secret,
        Some(EPERM),
    );
    let fd7 = Opts {
        fd7: Some(f.p("outside")),
        ..Opts::default()
    };
    let audit = f.escape(&["openat", "7", "secret"], &fd7, secret, Some(EPERM));
    assert_audited(&audit, "deny", "openat", &f.ps("outside/secret"));
    // `..` in an absolute path.
    f.escape(
        &["open", &f.ps("allowed/../outside/secret")],
        &none,
        secret,
        Some(EPERM),
    );
    f.escape(
        &["open", &f.ps("allowed/sub/../../outside/secret")],
        &none,
        secret,
        Some(EPERM),
    );
    // Symlinks planted inside allowed trees, refused or followed beneath.
    for t in ["allowed", "ftree"] {
        for l in ["link_abs", "link_rel", "sub/link_rel2", "dirlink/secret"] {
            f.escape(&["open", &f.ps(&format!("{t}/{l}"))], &none, secret, None);
        }
    }
    // Other tasks of the target inherit the filter: a thread, a fork, a
    // vfork-style clone (an allowed open from a fork still works).
    f.escape(
        &["thread_open", &f.ps("outside/secret")],
        &none,
        secret,
        Some(EPERM),
    );
    f.escape(
        &["fork_open", &f.ps("outside/secret")],
        &none,
        secret,
        Some(EPERM),
    );
    let (c, _) = f.confined(&["fork_open", &f.ps("allowed/file")], &none);
    assert_eq!(c, Outcome::Fd(file.0, file.1), "allowed open from a fork");
    let (bare, conf, _) = f.both(&["vfork_open", &f.ps("outside/secret")], &none);
    assert_eq!(
        bare,
        Outcome::Ok(format!("ino {}", secret.1)),
        "vfork unconfined"
    );
    assert_eq!(conf, Outcome::Err(EPERM), "vfork confined");
}

#[test]
fn proc_magic_links_do_not_lead_out() {
    let f = Fx::new();
    let none = Opts::default();
    let secret = id(&f.p("outside/secret"));
    let file = id(&f.p("allowed/file"));
    let via_root = format!("/proc/self/root{}", f.ps("outside/secret"));
    let audit = f.escape(&["open", &via_root], &none, secret, Some(EPERM));
    // Decided literally, as written.
    assert_audited(&audit, "deny", "openat", &via_root);
    f.escape(
        &[
            "open",
            &format!("/proc/thread-self/root{}", f.ps("outside/secret")),
        ],
        &none,
        secret,
        Some(EPERM),
    );
    f.escape(
        &["open", "/proc/self/cwd/../outside/secret"],
        &cwd(f.p("allowed")),
        secret,
        Some(EPERM),
    );
    // An fd the target was given (stdin: the outside file), re-opened by
    // its magic link.
    let stdin = Opts {
        stdin: Some(f.p("outside/secret")),
        ..Opts::default()
    };
    f.escape(&["open", "/proc/self/fd/0"], &stdin, secret, Some(EPERM));
    // An allowed read-only file re-opened read-write through /proc/self/fd.
    let (bare, conf, _) = f.both(&["reopen", &f.ps("allowed/file"), "rdonly", "rdwr"], &none);
    assert_eq!(bare, Outcome::Fd(file.0, file.1), "reopen rdwr unconfined");
    assert!(
        conf.refused(),
        "read-only file re-opened read-write: {conf:?}"
    );
    // The parent's /proc entries: the broker's, when confined.
    f.escape(
        &["ppid", &format!("/root{}", f.ps("outside/secret"))],
        &none,
        secret,
        Some(EPERM),
    );
    f.refused(&["ppid", "/environ"], &none);
    f.refused(&["ppid", "/cwd"], &none);
    f.refused(&["ppid_fds"], &none);
    // pidfd_getfd on the parent (the broker holds rule roots and the
    // listener): the kernel or the filter must refuse.
    f.refused(&["pidfd_getfd", "2"], &none);
    // Nor may it signal the broker (Landlock's signal scope).
    f.refused(&["signal_parent"], &none);
    // /proc/self and /proc/thread-self name the target, never the broker.
    for (attempt, path) in [
        ("readpid", "/proc/self/status"),
        ("thread_readpid", "/proc/thread-self/status"),
    ] {
        let (c, audit) = f.confined(&[attempt, path], &none);
        let Outcome::Ok(rest) = &c else {
            panic!("{attempt} {path}: {c:?}")
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(w.len(), 4, "{rest}");
        assert_eq!(
            w[1], w[3],
            "{path} read through the broker is another process's (Pid: {} but the reader is {})",
            w[1], w[3]
        );
        assert_audited(&audit, "allow", "openat", path);
    }
}

#[test]
fn a_proc_self_subtree_rule_grants_no_magic_links() {
    let f = Fx::new();
    let secret = id(&f.p("outside/secret"));
    // A rule a user might write to let a program read its own /proc.
    let o = Opts {
        extra_rules: Some(
            "\n[[allow]]\npath = \"/proc/self/\"\naccess = \"r\"\ntypes = [\"file\", \"dir\"]\n"
                .into(),
        ),
        ..Opts::default()
    };
    let out = f.ps("outside/secret");
    for path in [
        format!("/proc/self/root{out}"),
        format!("/proc/thread-self/root{out}"),
        format!("/proc/self/task/../../self/root{out}"),
        "/proc/self/fd/0".to_string(),
        "/proc/self/cwd/../outside/secret".to_string(),
    ] {
        let o = Opts {
            stdin: Some(f.p("outside/secret")),
            cwd: Some(f.p("allowed")),
            ..o.clone()
        };
        f.escape(&["open", &path], &o, secret, None);
    }
    // The parent's (the broker's) entries through `..` out of /proc/self.
    f.refused(&["self_ppid", "/environ"], &o);
    f.escape(&["self_ppid", &format!("/root{out}")], &o, secret, None);
    // What the rule is for still works: the program's own status.
    let (c, _) = f.confined(&["readpid", "/proc/self/status"], &o);
    let Outcome::Ok(rest) = &c else {
        panic!("/proc/self/status under a /proc/self/ rule: {c:?}")
    };
    let w: Vec<&str> = rest.split_whitespace().collect();
    assert_eq!(w[1], w[3], "{rest}");
}

#[test]
fn o_path_and_openat2_resolve_flags() {
    let f = Fx::new();
    let none = Opts::default();
    let secret = id(&f.p("outside/secret"));
    let file = id(&f.p("allowed/file"));
    // O_PATH becomes O_RDONLY under the same rules.
    let (c, _) = f.confined(&["open", &f.ps("allowed/file"), "path"], &none);
    assert_eq!(c, Outcome::Fd(file.0, file.1), "O_PATH of an allowed file");
    f.escape(
        &["open", &f.ps("outside/secret"), "path"],
        &none,
        secret,
        Some(EPERM),
    );
    // O_PATH, then a real open of its /proc/self/fd link.
    f.escape(
        &["reopen", &f.ps("outside/secret"), "path", "rdonly"],
        &none,
        secret,
        None,
    );
    let (bare, conf, _) = f.both(&["reopen", &f.ps("allowed/file"), "path", "rdwr"], &none);
    assert_eq!(bare, Outcome::Fd(file.0, file.1));
    assert!(conf.refused(), "O_PATH re-opened read-write: {conf:?}");

    // O_TMPFILE (an unnamed file in a directory) is not a flag the policy
    // grants, even in a create tree.
    let c = f.refused(&["open", &f.ps("rw"), "tmpfile,rdwr"], &none);
    assert_eq!(c, Outcome::Err(EPERM), "O_TMPFILE in rw/");
    for resolve in [
        "0",
        "no_symlinks,no_magiclinks",
        "no_xdev",
        "cached",
        "no_symlinks,no_magiclinks,no_xdev,cached",
    ] {
        f.escape(
            &["openat2", "cwd", &f.ps("outside/secret"), resolve],
            &none,
            secret,
            Some(EPERM),
        );
    }
    // RESOLVE_BENEATH and RESOLVE_IN_ROOT relative to an inherited dirfd
    // outside the policy.
    let fd7_s = Opts {
        fd7: Some(f.s.clone()),
        ..Opts::default()
    };
    f.escape(
        &["openat2", "7", "outside/secret", "beneath"],
        &fd7_s,
        secret,
        Some(EPERM),
    );
    // IN_ROOT beneath outside/mirror: "<S>/allowed/file" means
    // outside/mirror/<S>/allowed/file, not the allowed file.
    let mirror_file = f
        .p("outside/mirror")
        .join(f.s.strip_prefix("/").unwrap())
        .join("allowed/file");
    let fd7_m = Opts {
        fd7: Some(f.p("outside/mirror")),
        ..Opts::default()
    };
    f.escape(
        &["openat2", "7", &f.ps("allowed/file"), "in_root"],
        &fd7_m,
        id(&mirror_file),
        None,
    );
    // A larger, zero-padded struct open_how.
    f.escape(
        &["openat2_big", &f.ps("outside/secret")],
        &none,
        secret,
        None,
    );
    // The allowed file through openat2 still works.
    let (c, _) = f.confined(&["openat2", "cwd", &f.ps("allowed/file"), "0"], &none);
    assert_eq!(c, Outcome::Fd(file.0, file.1), "openat2 of an allowed file");
}

/// The unconfined half of a race: up to five runs until the flipping
/// reached `outside` (on a loaded machine one run of 10,000 may not).
fn bare_race(f: &Fx, args: &[&str], o: &Opts, outside: (u64, u64)) -> Vec<((u64, u64), u64)> {
    let mut last = Vec::new();
    for _ in 0..5 {
        last = race_counts(&f.spawn(false, args, o, &f.p("unused")));
        if last.iter().any(|(i, n)| *i == outside && *n > 0) {
            break;
        }
    }
    last
}

/// The (dev, ino) → count pairs of a `race` line.
/// A race's verdict: unconfined, `what` reached the outside file (the race
/// is real); confined, the allowed file was opened (the broker served) and
/// no fd went to any other file.
fn assert_race_held(
    what: &str,
    bare: &[((u64, u64), u64)],
    conf: &[((u64, u64), u64)],
    inside: (u64, u64),
    outside: (u64, u64),
) {
    assert!(
        bare.iter().any(|(i, n)| *i == outside && *n > 0),
        "unconfined, {what} never reached the outside file: {bare:?}"
    );
    assert!(
        conf.iter().any(|(i, n)| *i == inside && *n > 0),
        "confined, the allowed file was never opened: {conf:?}"
    );
    let bad: Vec<_> = conf.iter().filter(|(i, _)| *i != inside).collect();
    assert!(
        bad.is_empty(),
        "ESCAPED: fds to files outside the policy: {bad:?}"
    );
}

fn race_counts(o: &Outcome) -> Vec<((u64, u64), u64)> {
    let Outcome::Race(line) = o else {
        panic!("race: {o:?}")
    };
    line.split_whitespace()
        .skip(1)
        .filter(|w| !w.starts_with("err="))
        .map(|w| {
            let (di, n) = w.split_once('=').unwrap();
            let (d, i) = di.split_once(':').unwrap();
            ((d.parse().unwrap(), i.parse().unwrap()), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn path_rewritten_while_in_flight() {
    let f = Fx::new();
    let none = Opts::default();
    let inside = id(&f.p("allowed/secret"));
    let outside = id(&f.p("outside/secret"));
    let args = [
        "race",
        &f.ps("allowed/secret"),
        &f.ps("outside/secret"),
        "10000",
    ];
    let bare = bare_race(&f, &args, &none, outside);
    let (conf, audit) = f.confined(&args, &none);
    let conf = race_counts(&conf);
    eprintln!("race: unconfined {bare:?}, confined {conf:?}");
    // Landlock alone would refuse every open the kernel itself made (a
    // broker answering CONTINUE): with the sandbox off the broker's own
    // read-decide-open-inject is what is tested.
    let off = Opts {
        sandbox_off: true,
        ..Opts::default()
    };
    let (c, _) = f.confined(&args, &off);
    let conf_off = race_counts(&c);
    eprintln!("race, sandbox off: confined {conf_off:?}");
    let bad: Vec<_> = conf_off.iter().filter(|(i, _)| *i != inside).collect();
    assert!(bad.is_empty(), "ESCAPED (sandbox off): {bad:?}");
    assert!(
        conf_off.iter().any(|(i, n)| *i == inside && *n > 0),
        "sandbox off, the allowed file was never opened: {conf_off:?}"
    );
    assert_race_held("the flipping path", &bare, &conf, inside, outside);
    assert!(
        !audit
            .iter()
            .any(|l| field(l, "decision") == "allow" && field(l, "path") == f.ps("outside/secret")),
        "an allow line for the outside path"
    );
}

#[test]
fn cwd_flipped_while_in_flight() {
    let f = Fx::new();
    let inside = id(&f.p("allowed/secret"));
    let outside = id(&f.p("outside/secret"));
    // A thread flips the shared cwd between allowed/ and an inherited fd
    // of outside/ while the main thread opens "secret" relative to it.
    let fd7 = Opts {
        fd7: Some(f.p("outside")),
        ..Opts::default()
    };
    let args = ["cwd_race", &f.ps("allowed"), "7", "secret", "10000"];
    let bare = bare_race(&f, &args, &fd7, outside);
    let conf = race_counts(&f.confined(&args, &fd7).0);
    eprintln!("cwd race: unconfined {bare:?}, confined {conf:?}");
    assert_race_held("the flipping cwd", &bare, &conf, inside, outside);
}

#[test]
fn kernel_side_doors_are_closed() {
    let f = Fx::new();
    let none = Opts::default();
    let secret = id(&f.p("outside/secret"));
    let out = f.ps("outside/secret");
    // io_uring's openat does not pass through seccomp: setup is refused.
    f.escape(&["uring", &out], &none, secret, Some(ENOSYS));
    // File handles: made unconfined, used confined.
    let (bare, conf, _) = f.both(&["mkhandle", &out], &none);
    let Outcome::Ok(h) = bare else {
        panic!("name_to_handle_at unconfined: {bare:?}")
    };
    assert!(conf.refused(), "name_to_handle_at confined: {conf:?}");
    let h: Vec<&str> = h.split_whitespace().collect();
    assert_eq!(h[0], "handle");
    f.escape(
        &["byhandle", &f.ps("allowed"), h[1], h[2]],
        &none,
        secret,
        None,
    );
    // A detached mount of the outside tree; the mount API; chroot.
    f.escape(
        &["open_tree", &f.ps("outside"), "secret"],
        &none,
        secret,
        None,
    );
    f.refused(&["fsopen"], &none);
    f.refused(&["chroot", &f.ps("outside")], &none);
    // Watches on outside paths (their events name the files inside).
    f.refused(&["inotify", &f.ps("outside")], &none);
    f.refused(&["fanotify", &f.ps("outside")], &none);
    // A listener of its own would take precedence over the broker's.
    f.refused(&["listener"], &none);
    // Reaching into another process (a forked child of the probe).
    f.refused(&["ptrace"], &none);
    f.refused(&["vm_readv"], &none);
    f.refused(&["vm_writev"], &none);
    // execve of anything but the program.
    // Another binary the policy lets it read, run by its fd: Landlock
    // refuses the exec.
    let copy = f.ps("allowed/probe-copy");
    f.escape(&["execveat", &copy, "open", &out], &none, secret, None);
    // The same bytes from a memfd do run (memfds are not paths), but still
    // under the filter, the listener and the Landlock domain.
    f.escape(
        &["memfd_exec", &copy, "open", &out],
        &none,
        secret,
        Some(EPERM),
    );
    let (bare, conf, _) = f.both(&["exec_sh"], &none);
    assert_eq!(bare, Outcome::Ok("exec-ok".into()), "exec unconfined");
    assert!(conf.refused(), "execve /bin/sh confined: {conf:?}");
}

#[test]
fn foreign_syscall_abis_kill() {
    let f = Fx::new();
    let none = Opts::default();
    let secret = id(&f.p("outside/secret"));
    let out = f.ps("outside/secret");
    // i386 `int 0x80` open(2): works unconfined where the kernel has IA-32
    // emulation (this host: CONFIG_IA32_EMULATION, not disabled at boot;
    // without it the bare call dies of SIGSEGV), kills confined.
    let (bare, conf, _) = f.both(&["int80", &out], &none);
    let ia32 = std::fs::read_to_string("/proc/cmdline")
        .map(|c| !c.contains("ia32_emulation=0") && !c.contains("ia32_emulation=false"))
        .unwrap_or(true);
    if ia32 {
        assert_eq!(bare, Outcome::Fd(secret.0, secret.1), "int 0x80 unconfined");
    } else {
        eprintln!("ia32_emulation is off: int 0x80 cannot succeed unconfined here ({bare:?})");
    }
    assert_eq!(conf, Outcome::Signal(SIGSYS), "int 0x80 confined");
    // x32: most distribution kernels (this one too) lack CONFIG_X86_X32_ABI,
    // so unconfined the call fails with ENOSYS; the filter kills it before
    // the kernel's table is consulted either way.
    let (bare, conf, _) = f.both(&["x32", &out], &none);
    assert!(
        bare == Outcome::Err(ENOSYS) || bare == Outcome::Fd(secret.0, secret.1),
        "x32 unconfined: {bare:?}"
    );
    assert_eq!(conf, Outcome::Signal(SIGSYS), "x32 openat confined");
}

#[test]
fn file_system_changes_outside_are_refused() {
    let f = Fx::new();
    let none = Opts::default();
    let o = |r: &str| f.ps(&format!("outside/{r}"));
    let reset = || {
        let _ = fs::remove_dir(f.p("outside/newdir"));
        for n in ["victim", "renamed", "hardlink", "symlink", "fifo", "sock"] {
            let _ = fs::remove_file(f.p(&format!("outside/{n}")));
        }
        fs::write(f.p("outside/victim"), b"victim").unwrap();
        fs::write(f.p("outside/trunc"), b"keep me").unwrap();
        fs::set_permissions(f.p("outside/trunc"), fs::Permissions::from_mode(0o600)).unwrap();
    };
    let cases: Vec<Vec<String>> = vec![
        vec!["mkdir".into(), o("newdir")],
        vec!["unlink".into(), o("victim")],
        vec!["rename".into(), o("victim"), o("renamed")],
        vec!["truncate".into(), o("trunc")],
        vec!["link".into(), o("victim"), o("hardlink")],
        vec!["symlink".into(), "/etc/passwd".into(), o("symlink")],
        vec!["mknod".into(), o("fifo")],
        vec!["chmod".into(), o("trunc")],
        vec!["chown".into(), o("trunc")],
        vec!["utimes".into(), o("trunc")],
        vec!["setxattr".into(), o("trunc")],
        vec!["chdir".into(), o("dir")],
        vec!["bind".into(), o("sock")],
        // Inside the (read-only) allowed tree too.
        vec!["mkdir".into(), f.ps("allowed/newdir")],
        vec!["unlink".into(), f.ps("allowed/file")],
    ];
    for case in &cases {
        let args: Vec<&str> = case.iter().map(String::as_str).collect();
        reset();
        let bare = f.spawn(false, &args, &none, &f.p("unused"));
        assert!(
            matches!(bare, Outcome::Ok(_)),
            "{args:?}: unconfined, must succeed: {bare:?}"
        );
        if args[1].contains("/allowed/") {
            // Put the allowed tree back.
            let _ = fs::remove_dir(f.p("allowed/newdir"));
            fs::write(f.p("allowed/file"), b"inside").unwrap();
        }
        reset();
        let before = snapshot(&f.p("outside"));
        let allowed_before = snapshot(&f.p("allowed"));
        let (conf, audit) = f.confined(&args, &none);
        assert!(conf.refused(), "{args:?}: not refused confined: {conf:?}");
        assert_eq!(
            snapshot(&f.p("outside")),
            before,
            "{args:?} changed outside/"
        );
        assert_eq!(
            snapshot(&f.p("allowed")),
            allowed_before,
            "{args:?} changed allowed/"
        );
        if args[0] == "bind" {
            assert!(
                audit
                    .iter()
                    .any(|l| field(l, "decision") == "deny" && field(l, "path") == o("sock")),
                "the refused bind left no audit line: {audit:#?}"
            );
        }
    }
    // connect to a listening socket outside the policy.
    reset();
    let _l = std::os::unix::net::UnixListener::bind(f.p("outside/sock")).unwrap();
    f.refused(&["connect", &o("sock")], &none);
}

/// Names, sizes, modes, times and xattr-free contents of a tree (what the
/// refused calls would change).
fn snapshot(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            v.push(format!(
                "{} {:o} {} {}.{} {} {}",
                p.display(),
                m.mode(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.uid(),
                m.nlink()
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    v.sort();
    v
}

#[test]
fn stat_family_leaks_no_existence() {
    let f = Fx::new();
    let none = Opts::default();
    // user.openhook on the outside file and an allowed one, for getxattr.
    for p in [f.p("outside/secret"), f.p("allowed/file")] {
        let c = f.spawn(
            false,
            &["setxattr", &p.display().to_string()],
            &none,
            &f.p("x"),
        );
        assert_eq!(c, Outcome::Ok(String::new()), "setxattr {}", p.display());
    }
    let cases: &[(&str, &str, &str)] = &[
        ("stat", "outside/secret", "outside/missing"),
        ("lstat", "outside/link", "outside/missing"),
        ("newfstatat", "outside/secret", "outside/missing"),
        ("statx", "outside/secret", "outside/missing"),
        ("access", "outside/secret", "outside/missing"),
        ("faccessat2", "outside/secret", "outside/missing"),
        ("readlink", "outside/link", "outside/missing"),
        ("statfs", "outside/dir", "outside/missing"),
        ("getxattr", "outside/secret", "outside/missing"),
        ("listxattr", "outside/secret", "outside/missing"),
        ("stat", "outside/dir/../secret", "outside/dir/../missing"),
    ];
    for (call, present, missing) in cases {
        let (bp, cp, _) = f.both(&[call, &f.ps(present)], &none);
        let (bm, cm, _) = f.both(&[call, &f.ps(missing)], &none);
        assert!(
            matches!(bp, Outcome::Ok(_)),
            "{call} {present} unconfined: {bp:?}"
        );
        assert_eq!(bm, Outcome::Err(ENOENT), "{call} {missing} unconfined");
        assert!(cp.refused(), "{call} {present} confined: {cp:?}");
        assert_eq!(
            cp, cm,
            "{call}: confined, an existing and a missing file outside the policy differ"
        );
    }
    // Served inside the policy, with the real answers.
    let file = id(&f.p("allowed/file"));
    let (c, audit) = f.confined(&["stat_ino", &f.ps("allowed/file")], &none);
    assert_eq!(
        c,
        Outcome::Ok(format!("ino {}", file.1)),
        "stat of an allowed file"
    );
    assert_audited(&audit, "allow", "newfstatat", &f.ps("allowed/file"));
    let (c, _) = f.confined(&["stat", &f.ps("allowed/missing")], &none);
    assert_eq!(
        c,
        Outcome::Err(ENOENT),
        "stat of a missing file inside the policy"
    );
    let (c, _) = f.confined(&["access", &f.ps("allowed/file")], &none);
    assert_eq!(c, Outcome::Ok(String::new()), "access of an allowed file");
    let (c, _) = f.confined(&["readlink", &f.ps("allowed/link_rel")], &none);
    assert_eq!(c, Outcome::Ok(String::new()), "readlink inside the policy");
    // The denied stat is audited with its syscall.
    let (_, audit) = f.confined(&["newfstatat", &f.ps("outside/secret")], &none);
    assert_audited(&audit, "deny", "newfstatat", &f.ps("outside/secret"));
}

#[test]
fn unix_sockets_through_symlinks_stay_inside() {
    use std::os::unix::net::UnixListener;
    let f = Fx::new();
    let none = Opts::default();
    let outside = UnixListener::bind(f.p("outside/l.sock")).unwrap();
    let inside = UnixListener::bind(f.p("fsockets/in.sock")).unwrap();
    let _inside2 = UnixListener::bind(f.p("sockets/in.sock")).unwrap();
    for t in ["sockets", "fsockets"] {
        symlink(f.p("outside/l.sock"), f.p(&format!("{t}/link"))).unwrap();
        symlink("../outside", f.p(&format!("{t}/dirlink"))).unwrap();
    }
    symlink("in.sock", f.p("fsockets/inlink")).unwrap();
    // Positive controls: served connects inside the rules.
    let (c, audit) = f.confined(&["connect", &f.ps("sockets/in.sock")], &none);
    assert_eq!(c, Outcome::Ok(String::new()), "connect inside");
    assert_audited(&audit, "allow", "connect", &f.ps("sockets/in.sock"));
    let (c, _) = f.confined(&["connect", &f.ps("fsockets/inlink")], &none);
    assert_eq!(
        c,
        Outcome::Ok(String::new()),
        "connect through a symlink beneath"
    );
    inside.set_nonblocking(true).unwrap();
    assert!(
        inside.accept().is_ok(),
        "the followed symlink reached in.sock"
    );
    // Out through a final symlink or a directory symlink.
    let mut bare_connects = 0;
    for t in ["sockets", "fsockets"] {
        for l in ["link", "dirlink/l.sock"] {
            f.refused(&["connect", &f.ps(&format!("{t}/{l}"))], &none);
            bare_connects += 1;
        }
    }
    // The outside listener saw the unconfined connects only.
    outside.set_nonblocking(true).unwrap();
    let mut accepted = 0;
    while outside.accept().is_ok() {
        accepted += 1;
    }
    assert_eq!(
        accepted, bare_connects,
        "connections that reached outside/l.sock"
    );
    // bind through a directory symlink creates nothing outside.
    let (bare, conf, _) = f.both(&["bind", &f.ps("sockets/dirlink/new.sock")], &none);
    assert_eq!(bare, Outcome::Ok(String::new()), "bind unconfined");
    fs::remove_file(f.p("outside/new.sock")).unwrap();
    assert!(conf.refused(), "bind through a symlink confined: {conf:?}");
    assert!(
        !f.p("outside/new.sock").exists(),
        "a socket was bound outside"
    );
    // A served bind inside works.
    let (c, _) = f.confined(&["bind", &f.ps("sockets/new.sock")], &none);
    assert_eq!(c, Outcome::Ok(String::new()), "bind inside");
    assert!(fs::symlink_metadata(f.p("sockets/new.sock"))
        .unwrap()
        .file_type()
        .is_socket());
}
