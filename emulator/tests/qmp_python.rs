//! The real Python client `qemu.qmp` (pinned in scripts/setup-deps.sh)
//! against the monitor server: connect + negotiation, `send_fd_scm` (the fd
//! alone with one space byte) + `getfd`, errors as `ExecuteError`,
//! `closefd`, `query-commands`.
//!
//! The whole-emulator version (add-fd, chardev, dump, quit against a
//! running guest) belongs with the emulator's end-to-end tests.
//! Skipped when Python or qemu.qmp is missing, unless
//! `OPENHOOK_REQUIRE_QEMU=1`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use openhook_emulator::qmp::{server, Hub, HubParts, Monitor, Transport};

const SCRIPT: &str = r#"
import asyncio, sys
from qemu.qmp import QMPClient, ExecuteError

async def main(path, fd):
    qmp = QMPClient('openhook-test')
    await qmp.connect(path)
    assert qmp.greeting.QMP.version['qemu']['major'] == 7, qmp.greeting
    assert await qmp.execute('query-name') == {'name': 'pyvm'}
    names = [c['name'] for c in await qmp.execute('query-commands')]
    assert 'getfd' in names and 'add-fd' in names, names
    qmp.send_fd_scm(fd)
    assert await qmp.execute('getfd', {'fdname': 'pipe'}) == {}
    try:
        await qmp.execute('closefd', {'fdname': 'nope'})
        raise SystemExit('closefd of an unknown name succeeded')
    except ExecuteError as e:
        print('ERR', e.error.error.class_, e.error.error.desc)
    try:
        await qmp.execute('getfd', {'fdname': 'again'})
        raise SystemExit('getfd without an fd succeeded')
    except ExecuteError as e:
        print('ERR', e.error.error.class_, e.error.error.desc)
    print('OK')
    await qmp.disconnect()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"#;

fn python_with_qemu_qmp() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("OPENHOOK_REQUIRE_QEMU").as_deref() == Ok("1") {
        panic!(
            "python3 with qemu.qmp missing and OPENHOOK_REQUIRE_QEMU=1 (run scripts/setup-deps.sh)"
        );
    }
    ok
}

fn write_end_closed(reader: &OwnedFd) -> bool {
    rustix::fs::fcntl_setfl(reader, rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut b = [0u8; 1];
    matches!(rustix::io::read(reader, &mut b), Ok(0))
}

#[test]
fn qemu_qmp_python_client_passes_an_fd() {
    if !python_with_qemu_qmp() {
        eprintln!("skipped: python3 -c 'import qemu.qmp' failed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let hub = Hub::new(HubParts {
        name: Some("pyvm".into()),
        ..HubParts::default()
    });
    let monitor = Monitor::new();
    let _t = server::spawn(hub, monitor.clone(), Transport::Listener(listener.into())).unwrap();

    // The write end is inherited by Python (no CLOEXEC) and sent back.
    let (r, w) = rustix::pipe::pipe().unwrap();
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&path)
        .arg(w.as_raw_fd().to_string())
        .output()
        .unwrap();
    drop(w);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "ERR GenericError File descriptor named 'nope' not found\n\
         ERR GenericError No file descriptor supplied via SCM_RIGHTS\n\
         OK\n"
    );
    // The monitor holds the fd under its name after Python has gone.
    assert!(monitor.named().names() == ["pipe"]);
    assert!(!write_end_closed(&r));
    monitor.named().closefd("pipe").unwrap();
    assert!(write_end_closed(&r));
}
