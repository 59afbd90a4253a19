//! The serve loop holds no fds after many mixed requests (allowed, denied,
//! failed, type-refused). Alone in its test binary: it counts this
//! process's `/proc/self/fd`.
#![allow(clippy::disallowed_methods)]

mod inproc;

use std::fs;
use std::os::fd::AsFd;
use std::sync::Arc;

use inproc::InProc;
use openhook_broker::ambient::{self, Ambient};
use openhook_broker::policy;

const O_RDONLY: u32 = 0;

fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd").expect("fd dir").count()
}

#[test]
fn no_fd_growth_over_many_mixed_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    fs::create_dir(dir.path().join("vm")).expect("mkdir");
    fs::write(dir.path().join("vm/disk.img"), b"disk").expect("write");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("vm/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let text = format!(
        "version = 1\n[[allow]]\npath = \"{d}/vm/\"\n[[deny]]\npath = \"{d}/vm/secret/\"\n"
    );
    let policy = policy::parse(&text, "fd.toml").expect("parses");
    let amb = Ambient::open(&policy).expect("opens");
    let log = ambient::open_audit_log(&dir.path().join("audit.log")).expect("audit");
    let b = InProc::start(Arc::new(policy), Arc::new(amb), Some(Arc::new(log)));
    let p = |rel: &str| format!("{d}/{rel}").into_bytes();
    // Warm up (lazy allocations, the audit file).
    for _ in 0..10 {
        let _ = b.open(&p("vm/disk.img"), O_RDONLY, 0);
    }
    // The serve loop closes a sent fd before it reads the next request, so
    // the reply to a denied request means every earlier fd is closed there.
    assert!(b.open(&p("vm/secret/x"), O_RDONLY, 0).is_err());
    let before = fd_count();
    let paths = [
        p("vm/disk.img"),
        p("vm/missing"),
        p("vm/secret/x"),
        b"/etc/passwd".to_vec(),
        p("vm/fifo"),
    ];
    let mut allowed = 0;
    // The last request (vm/fifo, 20,000 % 5 == 0) is denied: the same barrier.
    for i in 0..20_000 {
        let p = &paths[i % paths.len()];
        if let Ok(fd) = b.open(p, O_RDONLY, 0) {
            rustix::fs::fstat(fd.as_fd()).expect("a live fd");
            allowed += 1;
        }
    }
    assert_eq!(allowed, 4_000);
    assert_eq!(fd_count(), before, "no fd leaked over 20,000 requests");
    b.finish();
}
