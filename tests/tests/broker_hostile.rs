//! A hostile hook client (the test peer, run as the broker's child) sends
//! every bad input of docs/protocol.md. Each gets the specified reply or a closed
//! connection plus a log line; the broker survives, exits with the child's
//! status, and leaks no fd.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use openhook_tests::broker::{
    fd_count, fd_table, peer, run, wait_or_kill, Conversation, Finished, Setup,
};

fn hostile(s: &Setup, args: &[&str]) -> Finished {
    let f = run(s.broker(&peer(), args));
    assert_eq!(f.status.code(), Some(0), "peer failed: {}", f.stderr);
    f
}

/// The broker closed the connection and said why on stderr.
fn assert_closed(f: &Finished, why: &str) {
    assert_eq!(f.stdout, "eof\n", "stderr: {}", f.stderr);
    assert!(f.stderr.contains(why), "expected {why:?} in: {}", f.stderr);
    assert!(f.stderr.contains("connection closed"), "{}", f.stderr);
}

/// QEMU_OPEN frame for `path` as hex (little-endian host).
fn open_hex(path: &str) -> String {
    let f = openhook_wire::hook::frame::encode_open(0, 0, path.as_bytes()).unwrap();
    f.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn message_size_below_8() {
    let s = Setup::new("");
    assert_closed(
        &hostile(&s, &["raw", "07000000 01000000"]),
        "smaller than the 8-byte header",
    );
}

#[test]
fn message_size_over_the_limit() {
    let s = Setup::new("");
    assert_closed(
        &hostile(&s, &["raw", "09000100 02000000"]),
        "exceeds the limit",
    );
}

#[test]
fn filename_len_disagreeing_with_message_size() {
    let s = Setup::new("");
    let f = hostile(
        &s,
        &["raw", "14000000 01000000 00000000 00000000 0300 2f6162"],
    );
    assert_closed(&f, "disagrees with filename_len");
}

#[test]
fn truncated_frame_then_eof() {
    let s = Setup::new("");
    let full = open_hex(&s.path("srv/a.txt"));
    let f = hostile(&s, &["raw", &full[..full.len() - 2]]);
    assert_closed(&f, "end of stream in the middle of a frame");
}

#[test]
fn unknown_command_gets_enosys_and_the_connection_lives_on() {
    let s = Setup::new("");
    let f = hostile(
        &s,
        &[
            "raw-then-open",
            "0c000000 07000000 deadbeef",
            &s.path("srv/a.txt"),
        ],
    );
    assert_eq!(
        f.stdout, "reply 0c00000007000000daffffff\nreply 0c0000000100000000000000 fds=1\n",
        "{}",
        f.stderr
    );
}

#[test]
fn bad_names_get_einval_and_enametoolong() {
    let s = Setup::new("");
    let ok = s.path("srv/a.txt");
    // Empty name (message_size 18, filename_len 0).
    let f = hostile(
        &s,
        &[
            "raw-then-open",
            "12000000 01000000 00000000 00000000 0000",
            &ok,
        ],
    );
    assert!(
        f.stdout.starts_with("reply 0c00000001000000eaffffff\n"),
        "{}",
        f.stdout
    );
    // Embedded NUL.
    let f = hostile(
        &s,
        &[
            "raw-then-open",
            "15000000 01000000 00000000 00000000 0300 2f0062",
            &ok,
        ],
    );
    assert!(
        f.stdout.starts_with("reply 0c00000001000000eaffffff\n"),
        "{}",
        f.stdout
    );
    // 4096-byte name.
    let long = format!("/{}", "a".repeat(4095));
    let f = hostile(&s, &["raw-then-open", &open_hex(&long), &ok]);
    assert_eq!(
        f.stdout,
        "reply 0c00000001000000dcffffff\nreply 0c0000000100000000000000 fds=1\n"
    );
}

#[test]
fn request_carrying_fds_closes_the_connection() {
    let s = Setup::new("");
    let f = hostile(&s, &["with-fds", &s.path("srv/a.txt")]);
    assert_closed(&f, "request carried file descriptors");
}

#[test]
fn half_frame_then_silence_does_not_keep_the_broker() {
    // The child sends 5 header bytes, leaves a grandchild holding the hook
    // socket silently, and exits 0: the broker must reap it and exit 0.
    // Starting the grandchild needs execve, which the pre-exec sandbox
    // (rightly) refuses, so this one test runs the child unconfined.
    let s = Setup::new("[sandbox]\nmode = \"off\"\n");
    let f = run(s.broker(&peer(), &["half-then-exit"]));
    let grandchild: i32 = f
        .stdout
        .strip_prefix("grandchild ")
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no grandchild pid in {:?}", f.stdout));
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(grandchild).unwrap(),
        rustix::process::Signal::KILL,
    );
    assert_eq!(f.status.code(), Some(0), "{}", f.stderr);
}

#[test]
fn flood_of_pipelined_requests() {
    let s = Setup::new("");
    let f = hostile(&s, &["flood", "20000", &s.path("srv/a.txt"), "/etc/passwd"]);
    assert_eq!(f.stdout, "ok 10000 errno 10000 eof 0\n", "{}", f.stderr);
}

#[test]
fn broker_fd_count_is_stable_over_100000_mixed_requests() {
    let s = Setup::new("");
    let mut child = s
        .broker(
            &peer(),
            &["mixed", "100000", &s.path("srv/a.txt"), "/etc/passwd"],
        )
        .spawn()
        .unwrap();
    let mut conv = Conversation::new(&mut child);
    assert_eq!(conv.line(), "ready");
    let before = fd_count(child.id());
    let table_before = fd_table(child.id());
    conv.send("go");
    assert_eq!(conv.line(), "done ok 50000 denied 50000");
    let after = fd_count(child.id());
    let table_after = fd_table(child.id());
    conv.send("exit");
    let status = wait_or_kill(&mut child, Duration::from_secs(60));
    assert!(status.success());
    assert_eq!(
        before, after,
        "broker fds before/after 100,000 requests: {table_before:?} / {table_after:?}"
    );
}
