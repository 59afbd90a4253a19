//! The rename race: a thread swaps a directory inside an allowed tree for a
//! symlink to `/` 10,000 times (atomic `RENAME_EXCHANGE`) while requests open
//! a file through it. No fd may ever land outside the tree: every fd the
//! broker hands out is checked with `fstat` against the inside file's
//! (dev, ino). Requests go through the real `HookClient` and serve loop.
#![allow(clippy::disallowed_methods)]

mod inproc;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, MetadataExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use inproc::InProc;
use openhook_broker::ambient::Ambient;
use openhook_broker::policy;
use rustix::fs::{renameat_with, RenameFlags, CWD};

const SWAPS: usize = 10_000;

fn race(follow: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path();
    // tree/sw/etc/passwd is the inside file; tree/swlink -> / the outside.
    fs::create_dir_all(base.join("tree/sw/etc")).expect("mkdir");
    fs::write(base.join("tree/sw/etc/passwd"), b"inside").expect("write");
    symlink("/", base.join("tree/swlink")).expect("symlink");
    let inside = fs::metadata(base.join("tree/sw/etc/passwd")).expect("stat");
    let inside_id = (inside.dev(), inside.ino());
    let outside = fs::metadata("/etc/passwd").expect("stat /etc/passwd");
    assert_ne!((outside.dev(), outside.ino()), inside_id);

    let text = format!(
        "version = 1\n[[allow]]\npath = \"{}/tree/\"\nfollow_symlinks = {follow}\n",
        base.display()
    );
    let policy = policy::parse(&text, "race.toml").expect("parses");
    let ambient = Ambient::open(&policy).expect("opens");
    let broker = InProc::start(Arc::new(policy), Arc::new(ambient), None);
    let request = format!("{}/tree/sw/etc/passwd", base.display());

    let done = Arc::new(AtomicBool::new(false));
    let swapper = {
        let done = Arc::clone(&done);
        let a = base.join("tree/sw");
        let b = base.join("tree/swlink");
        std::thread::spawn(move || {
            for _ in 0..SWAPS {
                renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).expect("exchange");
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let (mut opened, mut refused, mut plain_escapes, mut rounds) = (0usize, 0usize, 0usize, 0usize);
    while !done.load(Ordering::SeqCst) {
        rounds += 1;
        match broker.open(request.as_bytes(), 0, 0) {
            Ok(fd) => {
                let st = rustix::fs::fstat(fd.as_fd()).expect("fstat");
                assert_eq!(
                    (st.st_dev, st.st_ino),
                    inside_id,
                    "fd outside the allowed tree after {rounds} requests"
                );
                opened += 1;
            }
            Err(_) => refused += 1,
        }
        // Control: an unconfined open of the same path escapes whenever it
        // catches the symlink in place.
        if let Ok(f) = fs::File::open(&request) {
            let m = f.metadata().expect("fstat");
            if (m.dev(), m.ino()) != inside_id {
                plain_escapes += 1;
            }
        }
    }
    swapper.join().expect("swapper");
    println!(
        "follow_symlinks={follow}: {SWAPS} swaps, {rounds} brokered requests: {opened} inside, {refused} refused, 0 outside; unconfined opens that escaped: {plain_escapes}"
    );
    assert!(
        opened > 0,
        "the race never let an open through; test is vacuous"
    );
    // SWAPS is even, so the directory is back in place; one more exchange
    // puts the symlink there, and the unconfined open then escapes
    // deterministically while the brokered one is refused.
    renameat_with(
        CWD,
        base.join("tree/sw"),
        CWD,
        base.join("tree/swlink"),
        RenameFlags::EXCHANGE,
    )
    .expect("exchange");
    let f = fs::File::open(&request).expect("unconfined open");
    assert_eq!(
        (
            f.metadata().expect("stat").dev(),
            f.metadata().expect("stat").ino()
        ),
        (outside.dev(), outside.ino())
    );
    assert_eq!(
        broker.open(request.as_bytes(), 0, 0).err(),
        Some(if follow {
            openhook_wire::Errno::EXDEV
        } else {
            openhook_wire::Errno::ELOOP
        })
    );
    broker.finish();
}

#[test]
fn swap_dir_for_symlink_to_root_no_follow() {
    race(false);
}

#[test]
fn swap_dir_for_symlink_to_root_follow() {
    race(true);
}
