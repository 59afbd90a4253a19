//! `chardev-add` / `chardev-remove` / `chardev-change` and HMP
//! `chardev-add` over a real socket, with real files, fd sets and sockets;
//! the serial port's writer stands in for the UART (the end-to-end test
//! with a guest is in tests/tests/emulator_qmp.rs).
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use openhook_emulator::chardev::Chardevs;
use openhook_emulator::fds::open::Opener;
use openhook_emulator::qmp::{server, Hub, HubParts, Monitor, Transport};
use openhook_wire::qmp::QmpClient;
use serde_json::json;

struct Vm {
    client: QmpClient,
    chardevs: Arc<Chardevs>,
    dir: tempfile::TempDir,
}

fn vm() -> Vm {
    let opener = Opener::direct_unsandboxed();
    let chardevs = Chardevs::new();
    let hub = Hub::new(HubParts {
        fdsets: Some(Arc::new(opener)),
        chardevs: Some(chardevs.clone()),
        ..HubParts::default()
    });
    let (ours, theirs) = UnixStream::pair().unwrap();
    server::spawn(hub, Monitor::new(), Transport::Connected(theirs.into())).unwrap();
    let mut client = QmpClient::handshake(ours).unwrap();
    client.set_timeout(Some(Duration::from_secs(20))).unwrap();
    client.negotiate().unwrap();
    Vm {
        client,
        chardevs,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn desc(e: openhook_wire::qmp::ClientError) -> String {
    e.qmp().expect("a QMP error").desc.clone()
}

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

fn write_end_closed(reader: &OwnedFd) -> bool {
    rustix::fs::fcntl_setfl(reader, rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut b = [0u8; 1];
    matches!(rustix::io::read(reader, &mut b), Ok(0))
}

#[test]
fn file_chardev_on_an_fdset_receives_serial_output_added_at_runtime() {
    let mut vm = vm();
    // The UART follows chardev "ser", which does not exist yet.
    let mut uart = vm.chardevs.serial_port("ser");
    uart.write_all(b"before ").unwrap();

    let log = vm.dir.path().join("serial.log");
    std::fs::write(&log, b"old contents to be truncated").unwrap();
    let wo = File::options().write(true).open(&log).unwrap();
    let ro = File::open(&log).unwrap();
    // A read-only and a write-only fd: the write-only one must be picked.
    vm.client
        .execute_with_fds("add-fd", Some(json!({"fdset-id": 4})), &[ro.as_fd()])
        .unwrap();
    vm.client
        .execute_with_fds("add-fd", Some(json!({"fdset-id": 4})), &[wo.as_fd()])
        .unwrap();
    drop((ro, wo));
    vm.client
        .execute(
            "chardev-add",
            Some(
                json!({"id": "ser", "backend": {"type": "file", "data": {"out": "/dev/fdset/4"}}}),
            ),
        )
        .unwrap();
    uart.write_all(b"hello from the guest\n").unwrap();
    assert_eq!(std::fs::read(&log).unwrap(), b"hello from the guest\n");

    // The serial uses it: busy.
    let e = vm
        .client
        .execute("chardev-remove", Some(json!({"id": "ser"})))
        .unwrap_err();
    assert_eq!(desc(e), "Chardev 'ser' is busy");

    // chardev-change moves the serial to another file (a hook/direct path).
    let log2 = vm.dir.path().join("serial2.log");
    vm.client
        .execute(
            "chardev-change",
            Some(json!({"id": "ser", "backend": {"type": "file", "data": {"out": log2.to_str().unwrap()}}})),
        )
        .unwrap();
    uart.write_all(b"second").unwrap();
    assert_eq!(std::fs::read(&log2).unwrap(), b"second");
    assert_eq!(std::fs::read(&log).unwrap(), b"hello from the guest\n");
    // The fd set's dup was released when the old backend went.
    let q = vm.client.execute("query-fdsets", None).unwrap();
    assert_eq!(q[0]["fds"].as_array().unwrap().len(), 2);
}

#[test]
fn file_chardev_errors() {
    let mut vm = vm();
    let add = |vm: &mut Vm, id: &str, out: &str| {
        vm.client.execute(
            "chardev-add",
            Some(json!({"id": id, "backend": {"type": "file", "data": {"out": out}}})),
        )
    };
    assert_eq!(
        desc(add(&mut vm, "a", "/dev/fdset/9").unwrap_err()),
        "Could not open '/dev/fdset/9': No such file or directory"
    );
    // A set without a write-only fd: EACCES.
    let log = vm.dir.path().join("ro");
    std::fs::write(&log, b"").unwrap();
    let ro = File::open(&log).unwrap();
    vm.client
        .execute_with_fds("add-fd", Some(json!({"fdset-id": 1})), &[ro.as_fd()])
        .unwrap();
    assert_eq!(
        desc(add(&mut vm, "a", "/dev/fdset/1").unwrap_err()),
        "Could not open '/dev/fdset/1': Permission denied"
    );
    let ok = vm.dir.path().join("ok");
    add(&mut vm, "a", ok.to_str().unwrap()).unwrap();
    assert_eq!(
        desc(add(&mut vm, "a", ok.to_str().unwrap()).unwrap_err()),
        "attempt to add duplicate property 'a' to object (type 'container')"
    );
    vm.client
        .execute("chardev-remove", Some(json!({"id": "a"})))
        .unwrap();
    assert_eq!(
        desc(
            vm.client
                .execute("chardev-remove", Some(json!({"id": "a"})))
                .unwrap_err()
        ),
        "Chardev 'a' not found"
    );
    assert_eq!(
        desc(
            vm.client
                .execute(
                    "chardev-change",
                    Some(json!({"id": "zz", "backend": {"type": "null", "data": {}}}))
                )
                .unwrap_err()
        ),
        "Chardev 'zz' does not exist"
    );
}

#[test]
fn socket_chardev_with_a_getfd_fd() {
    let mut vm = vm();
    let sock = |name: &str, extra: serde_json::Value| {
        let mut data = json!({"addr": {"type": "fd", "data": {"str": name}}});
        for (k, v) in extra.as_object().unwrap() {
            data[k] = v.clone();
        }
        json!({"id": name, "backend": {"type": "socket", "data": data}})
    };

    // Not a socket: refused and the fd closed.
    let (r, w) = pipe();
    vm.client
        .execute_with_fds("getfd", Some(json!({"fdname": "p"})), &[w.as_fd()])
        .unwrap();
    drop(w);
    let e = vm
        .client
        .execute("chardev-add", Some(sock("p", json!({}))))
        .unwrap_err();
    assert_eq!(desc(e), "File descriptor 'p' is not a socket");
    assert!(write_end_closed(&r), "the non-socket fd was closed");
    // Its name is gone too (taken by the consumer).
    let e = vm
        .client
        .execute("chardev-add", Some(sock("p", json!({}))))
        .unwrap_err();
    assert_eq!(desc(e), "File descriptor named 'p' has not been found");

    // TLS with an fd as client: QEMU's text.
    let e = vm
        .client
        .execute(
            "chardev-add",
            Some(sock("t", json!({"server": false, "tls-creds": "tls0"}))),
        )
        .unwrap_err();
    assert_eq!(
        desc(e),
        "'tls_creds' option is incompatible with 'fd' address type as client"
    );

    // Server mode (the QMP default) on an unlistened bound socket: the
    // emulator calls listen(); wait defaults to off, so the command
    // returns at once. The serial output then reaches the client.
    let path = vm.dir.path().join("ser.sock");
    let bound = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::bind(&bound, &rustix::net::SocketAddrUnix::new(&path).unwrap()).unwrap();
    let mut uart = vm.chardevs.serial_port("srv");
    vm.client
        .execute_with_fds("getfd", Some(json!({"fdname": "srv"})), &[bound.as_fd()])
        .unwrap();
    drop(bound);
    vm.client
        .execute("chardev-add", Some(sock("srv", json!({}))))
        .unwrap();
    let mut c = UnixStream::connect(&path).expect("the emulator listens");
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Until the accept thread has taken the client, output is dropped:
    // write until something arrives.
    let mut got = [0u8; 1];
    let reader = std::thread::spawn(move || {
        c.read_exact(&mut got).unwrap();
        got
    });
    while !reader.is_finished() {
        uart.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(&reader.join().unwrap(), b"x");

    // Client mode on a connected socket; HMP spelling.
    let (mine, theirs) = UnixStream::pair().unwrap();
    vm.client
        .execute_with_fds("getfd", Some(json!({"fdname": "cli"})), &[theirs.as_fd()])
        .unwrap();
    drop(theirs);
    let out = vm
        .client
        .execute(
            "human-monitor-command",
            Some(json!({"command-line": "chardev-add socket,id=cli,fd=cli"})),
        )
        .unwrap();
    assert_eq!(out, json!(""));
    let ids = vm.client.execute("query-chardev", None).unwrap();
    assert_eq!(ids.as_array().unwrap().len(), 2, "{ids}");
    // The HMP client socket gets output once a serial follows it.
    let mut uart2 = vm.chardevs.serial_port("cli");
    uart2.write_all(b"hmp").unwrap();
    let mut b = [0u8; 3];
    let mut mine = mine;
    mine.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"hmp");
    let out = vm
        .client
        .execute(
            "human-monitor-command",
            Some(json!({"command-line": "chardev-add socket,id=x,fd=nope,server=on,wait=off"})),
        )
        .unwrap();
    assert_eq!(
        out,
        json!("Error: File descriptor named 'nope' has not been found\r\n")
    );
}
