//! The QMP client library and the `openhook-qmp` CLI against Debian's real
//! QEMU: greeting, negotiation, query-version, add-fd with an fd sent over
//! SCM_RIGHTS, query-fdsets, getfd/closefd and error replies.
//!
//! Needs `qemu-system-x86_64`; skipped without it unless
//! `OPENHOOK_REQUIRE_QEMU=1`, which makes a missing QEMU a failure.
#![allow(clippy::disallowed_methods)]

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use openhook_wire::qmp::{ErrorClass, QmpClient};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use serde_json::{json, Value};

fn qemu_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("qemu-system-x86_64"))
            .find(|p| p.exists())
    });
    if found.is_none() && std::env::var("OPENHOOK_REQUIRE_QEMU").as_deref() == Ok("1") {
        panic!(
            "qemu-system-x86_64 not found and OPENHOOK_REQUIRE_QEMU=1 (run scripts/setup-deps.sh)"
        );
    }
    found
}

struct Qemu {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts QEMU paused on a monitor socket we bind and listen on first and
/// hand over as `fd=N` (as a QEMU-style launcher does), so connecting needs no retry.
fn start_qemu(qemu: &Path) -> Qemu {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qmp.sock");
    // Not CLOEXEC: the child must inherit it.
    let listener: OwnedFd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::empty(),
        None,
    )
    .unwrap();
    rustix::net::bind(&listener, &SocketAddrUnix::new(&sock).unwrap()).unwrap();
    rustix::net::listen(&listener, 1).unwrap();
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let (accel, cpu) = if kvm {
        ("kvm", "host,-arch-capabilities")
    } else {
        ("tcg", "max")
    };
    let child = Command::new(qemu)
        .args(["-M", "microvm", "-accel", accel, "-cpu", cpu])
        .args(["-nodefaults", "-nographic", "-S"])
        .arg("-chardev")
        .arg(format!(
            "socket,fd={},server=on,wait=off,id=mon",
            listener.as_raw_fd()
        ))
        .args(["-mon", "chardev=mon,mode=control"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    drop(listener);
    Qemu {
        child,
        sock,
        _dir: dir,
    }
}

#[test]
fn client_library_against_qemu() {
    let Some(qemu) = qemu_binary() else {
        eprintln!("skipped: no qemu-system-x86_64");
        return;
    };
    let q = start_qemu(&qemu);
    let mut c = QmpClient::handshake(UnixStream::connect(&q.sock).unwrap()).unwrap();
    c.set_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    assert_eq!(c.greeting().qmp.version.qemu.major, 7);

    // Before negotiation QEMU refuses everything else.
    let e = c.execute("query-version", None).unwrap_err();
    let body = e.qmp().unwrap();
    assert_eq!(body.class, ErrorClass::CommandNotFound);
    assert_eq!(
        body.desc,
        "Expecting capabilities negotiation with 'qmp_capabilities'"
    );
    c.negotiate().unwrap();

    let v = c.execute("query-version", None).unwrap();
    assert_eq!(v["qemu"]["major"], json!(7));
    assert_eq!(
        c.execute("query-status", None).unwrap()["status"],
        json!("prelaunch")
    );

    // add-fd: the fd travels with the command's bytes.
    let dir = tempfile::tempdir().unwrap();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("disk"))
        .unwrap();
    let added = c
        .execute_with_fds(
            "add-fd",
            Some(json!({"fdset-id": 3, "opaque": "disk"})),
            &[file.as_fd()],
        )
        .unwrap();
    assert_eq!(added["fdset-id"], json!(3));
    let fd = added["fd"].as_i64().unwrap();
    assert!(fd > 2);
    let sets = c.execute("query-fdsets", None).unwrap();
    assert_eq!(
        sets,
        json!([{"fdset-id": 3, "fds": [{"fd": fd, "opaque": "disk"}]}])
    );

    // add-fd with no fd, a negative id: QEMU's texts.
    let e = c.execute("add-fd", None).unwrap_err();
    assert_eq!(
        e.qmp().unwrap().desc,
        "No file descriptor supplied via SCM_RIGHTS"
    );
    let e = c
        .execute_with_fds("add-fd", Some(json!({"fdset-id": -1})), &[file.as_fd()])
        .unwrap_err();
    assert_eq!(
        e.qmp().unwrap().desc,
        "Parameter 'fdset-id' expects a non-negative value"
    );

    // getfd / closefd.
    c.execute_with_fds("getfd", Some(json!({"fdname": "f"})), &[file.as_fd()])
        .unwrap();
    c.execute("closefd", Some(json!({"fdname": "f"}))).unwrap();
    let e = c
        .execute("closefd", Some(json!({"fdname": "f"})))
        .unwrap_err();
    assert_eq!(e.qmp().unwrap().desc, "File descriptor named 'f' not found");

    // A command with a parse error in between: the client gets the error
    // for the id-less reply, then carries on.
    c.send_raw(b"{]\r\n", &[]).unwrap();
    let e = c.wait_response(&Value::Null).unwrap_err();
    assert_eq!(e.qmp().unwrap().desc, "JSON parse error, expecting value");

    c.execute("cont", None).unwrap();
    let ev = c.wait_event("RESUME").unwrap();
    assert!(ev.timestamp.seconds > 0);
    c.execute("quit", None).unwrap();
}

#[test]
fn cli_against_qemu() {
    let Some(qemu) = qemu_binary() else {
        eprintln!("skipped: no qemu-system-x86_64");
        return;
    };
    let q = start_qemu(&qemu);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let bin = env!("CARGO_BIN_EXE_openhook-qmp");
    let out = Command::new(bin)
        .arg(&q.sock)
        .args(["add-fd", r#"{"fdset-id": 1}"#])
        .arg("--fd")
        .arg(format!("{}:w", path.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["return"]["fdset-id"], json!(1));
    assert_eq!(line["id"], json!("openhook-qmp"));
    assert!(path.exists(), "the CLI opened (created) the file itself");

    let out = Command::new(bin)
        .arg(&q.sock)
        .arg(r#"{"execute": "query-fdsets", "id": 7}"#)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["id"], json!(7));
    assert_eq!(line["return"][0]["fdset-id"], json!(1));

    let out = Command::new(bin)
        .arg(&q.sock)
        .args(["closefd", r#"{"fdname": "nope"}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"File descriptor named 'nope' not found\"}, \"id\": \"openhook-qmp\"}\n"
    );
}
