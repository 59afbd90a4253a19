//! The monitor server over real Unix sockets with real fds: protocol,
//! SCM_RIGHTS intake (docs/qmp.md), getfd/closefd, named fds surviving a
//! reconnect, events, hostile input. Client side: openhook-wire's client.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use openhook_emulator::qmp::{server, Hub, HubParts, Monitor, Transport};
use openhook_wire::qmp::{ErrorClass, QmpClient};
use serde_json::{json, Value};

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

/// Whether every copy of the pipe's write end is closed.
fn write_end_closed(reader: &OwnedFd) -> bool {
    rustix::fs::fcntl_setfl(reader, rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut b = [0u8; 1];
    matches!(rustix::io::read(reader, &mut b), Ok(0))
}

/// A monitor serving one connected socket on its own thread.
fn connected(hub: &Arc<Hub>) -> (UnixStream, JoinHandle<()>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let t = server::spawn(
        hub.clone(),
        Monitor::new(),
        Transport::Connected(theirs.into()),
    )
    .unwrap();
    (ours, t)
}

fn client(sock: UnixStream) -> QmpClient {
    let c = QmpClient::handshake(sock).unwrap();
    c.set_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn desc(e: openhook_wire::qmp::ClientError) -> String {
    e.qmp().expect("a QMP error").desc.clone()
}

#[test]
fn greeting_negotiation_and_malformed_input_over_a_socket() {
    let hub = Hub::new(HubParts {
        name: Some("vm1".into()),
        ..HubParts::default()
    });
    let (mut sock, t) = connected(&hub);
    let mut greeting = [0u8; 512];
    let n = sock.read(&mut greeting).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&greeting[..n]),
        format!(
            "{{\"QMP\": {{\"version\": {{\"qemu\": {{\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"package\": \"openhook-emulator {}\"}}, \"capabilities\": []}}}}\r\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    sock.write_all(b"{\"execute\": \"query-name\"}\r\n")
        .unwrap();
    let n = sock.read(&mut greeting).unwrap();
    assert_eq!(
        &greeting[..n],
        b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n"
    );
    sock.write_all(b"{\"execute\": \"qmp_capabilities\"}{\"execute\": \"query-name\", \"id\": 3}")
        .unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\"id\": 3}\r\n") {
        let n = sock.read(&mut greeting).unwrap();
        got.extend_from_slice(&greeting[..n]);
    }
    assert_eq!(
        got,
        b"{\"return\": {}}\r\n{\"return\": {\"name\": \"vm1\"}, \"id\": 3}\r\n"
    );

    // Malformed input, then a good command on the same connection.
    let mut c = QmpClient::from_negotiated(sock);
    for bad in [
        &b"{]"[..],
        b"{\xff",
        b"{\x01",
        b"{\"execute\": \"a\nb\"}",
        b"[1]",
        b"{}",
    ] {
        c.send_raw(bad, &[]).unwrap();
        c.send_raw(b"\n", &[]).unwrap();
        let e = c.wait_response(&Value::Null).unwrap_err();
        assert_eq!(e.qmp().unwrap().class, ErrorClass::GenericError);
        // Drain any second error the input caused, then check recovery.
        let v = loop {
            match c.execute("query-name", None) {
                Ok(v) => break v,
                Err(e) if e.qmp().is_some() => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(v, json!({"name": "vm1"}));
    }
    drop(c);
    t.join().unwrap();
}

#[test]
fn getfd_with_fd_alone_or_with_command_and_batch_rules() {
    let hub = Hub::new(HubParts::default());
    let (sock, t) = connected(&hub);
    let mut c = client(sock);
    c.negotiate().unwrap();

    // No fd.
    let e = c
        .execute("getfd", Some(json!({"fdname": "a"})))
        .unwrap_err();
    assert_eq!(desc(e), "No file descriptor supplied via SCM_RIGHTS");

    // fd alone with one space byte (qemu.qmp's way), then the command.
    let (r1, w1) = pipe();
    c.send_raw(b" ", &[w1.as_fd()]).unwrap();
    drop(w1);
    c.execute("getfd", Some(json!({"fdname": "a"}))).unwrap();
    assert!(!write_end_closed(&r1), "named fd is held");

    // A newer batch closes the older unclaimed one.
    let (r2, w2) = pipe();
    let (r3, w3) = pipe();
    c.send_raw(b" ", &[w2.as_fd()]).unwrap();
    drop(w2);
    c.send_raw(b" ", &[w3.as_fd()]).unwrap();
    drop(w3);
    c.execute("query-name", None).unwrap();
    assert!(write_end_closed(&r2), "superseded batch closed");
    assert!(!write_end_closed(&r3));

    // fds with the command bytes: the first is taken, the rest closed.
    let (r4, w4) = pipe();
    let (r5, w5) = pipe();
    c.execute_with_fds(
        "getfd",
        Some(json!({"fdname": "b"})),
        &[w4.as_fd(), w5.as_fd()],
    )
    .unwrap();
    drop((w4, w5));
    assert!(!write_end_closed(&r4));
    assert!(write_end_closed(&r5), "extra fd closed");
    assert!(
        write_end_closed(&r3),
        "the older pending batch was replaced"
    );

    // Replacing a name closes the old fd; digit names refuse and close.
    let (r6, w6) = pipe();
    c.execute_with_fds("getfd", Some(json!({"fdname": "a"})), &[w6.as_fd()])
        .unwrap();
    drop(w6);
    assert!(write_end_closed(&r1), "replaced name's fd closed");
    let (r7, w7) = pipe();
    let e = c
        .execute_with_fds("getfd", Some(json!({"fdname": "1x"})), &[w7.as_fd()])
        .unwrap_err();
    drop(w7);
    assert_eq!(
        desc(e),
        "Parameter 'fdname' expects a name not starting with a digit"
    );
    assert!(write_end_closed(&r7));

    // closefd.
    c.execute("closefd", Some(json!({"fdname": "a"}))).unwrap();
    assert!(write_end_closed(&r6));
    let e = c
        .execute("closefd", Some(json!({"fdname": "a"})))
        .unwrap_err();
    assert_eq!(desc(e), "File descriptor named 'a' not found");

    // Leftovers are closed when the client goes.
    let (r8, w8) = pipe();
    c.send_raw(b" ", &[w8.as_fd()]).unwrap();
    drop(w8);
    c.execute("query-name", None).unwrap();
    assert!(!write_end_closed(&r8));
    drop(c);
    t.join().unwrap();
    assert!(
        write_end_closed(&r8),
        "unclaimed batch closed at disconnect"
    );
    // The monitor itself is gone with its thread here (Connected transport),
    // and with it the name table.
    assert!(write_end_closed(&r4));
}

#[test]
fn named_fds_survive_a_reconnect_and_clients_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let hub = Hub::new(HubParts::default());
    let _t = server::spawn(
        hub.clone(),
        Monitor::new(),
        Transport::Listener(listener.into()),
    )
    .unwrap();

    let (r, w) = pipe();
    let mut c1 = client(UnixStream::connect(&path).unwrap());
    c1.negotiate().unwrap();
    c1.execute_with_fds("getfd", Some(json!({"fdname": "keep"})), &[w.as_fd()])
        .unwrap();
    drop(w);
    // A second client waits in the backlog until the first leaves.
    let second = UnixStream::connect(&path).unwrap();
    drop(c1);
    let mut c2 = client(second);
    c2.negotiate().unwrap();
    assert!(!write_end_closed(&r));
    c2.execute("closefd", Some(json!({"fdname": "keep"})))
        .unwrap();
    assert!(write_end_closed(&r));
}

#[test]
fn events_are_broadcast_after_negotiation_only() {
    let hub = Hub::new(HubParts::default());
    let (s1, _t1) = connected(&hub);
    let (s2, _t2) = connected(&hub);
    let mut a = client(s1);
    let mut b = client(s2);
    a.negotiate().unwrap();
    hub.emit("POWERDOWN", None);
    b.negotiate().unwrap();
    hub.emit("STOP", None);
    let e = a.wait_event("POWERDOWN").unwrap();
    assert!(e.timestamp.seconds > 1_600_000_000);
    a.wait_event("STOP").unwrap();
    // b was not negotiated when POWERDOWN went out: the first event it
    // sees is STOP.
    match b.recv().unwrap() {
        openhook_wire::qmp::ServerMessage::Event(e) => assert_eq!(e.event, "STOP"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_input_is_answered_and_bounded() {
    let hub = Hub::new(HubParts::default());
    let (sock, t) = connected(&hub);
    let mut c = client(sock);
    c.negotiate().unwrap();

    // A 1 MiB string, 10,000-deep nesting: errors, and the connection
    // still works.
    let mut big = b"{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1 << 20));
    big.extend_from_slice(b"\"}}\n");
    c.send_raw(&big, &[]).unwrap();
    let e = c.wait_response(&Value::Null).unwrap_err();
    assert_eq!(desc(e), "JSON token size limit exceeded");
    // The string's closing `}}` are stray after recovery: two more errors.
    for _ in 0..2 {
        let e = c.wait_response(&Value::Null).unwrap_err();
        assert_eq!(desc(e), "JSON parse error, expecting value");
    }
    let mut deep = vec![b'['; 10_000];
    deep.push(b'\n');
    c.send_raw(&deep, &[]).unwrap();
    let e = c.wait_response(&Value::Null).unwrap_err();
    assert_eq!(desc(e), "JSON nesting depth limit exceeded");
    // 775 brackets are still open; 0xFF forces the parser back to a known
    // state (QMP spec, "Forcing the JSON parser into known-good state").
    c.send_raw(b"\xff\n", &[]).unwrap();
    let v = loop {
        match c.execute("query-name", None) {
            Ok(v) => break v,
            Err(e) if e.qmp().is_some() => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(v, json!({}));

    // 100 fds in one message with no command: all closed at disconnect.
    let (readers, writers): (Vec<OwnedFd>, Vec<OwnedFd>) = (0..100).map(|_| pipe()).unzip();
    let ws: Vec<_> = writers.iter().map(|w| w.as_fd()).collect();
    c.send_raw(b" ", &ws).unwrap();
    drop(ws);
    drop(writers);
    c.execute("query-name", None).unwrap();
    // A client disconnecting mid-command.
    c.send_raw(b"{\"execute\": \"getfd\", \"argu", &[]).unwrap();
    drop(c);
    t.join().unwrap();
    assert!(readers.iter().all(write_end_closed), "every fd closed");
}
