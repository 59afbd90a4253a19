//! QEMU iotest 045's fd-set and getfd cases (docs/testing.md), run through the
//! real commands over a real Unix socket against the emulator's real fd
//! store (`fds::open::Opener`) and `getfd` table (`fds::named`).
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openhook_emulator::fds::open::Opener;
use openhook_emulator::qmp::{server, Hub, HubParts, Monitor, Transport};
use openhook_wire::qmp::QmpClient;
use serde_json::{json, Value};

struct Vm {
    client: QmpClient,
    opener: Opener,
    _dir: tempfile::TempDir,
    images: Vec<std::path::PathBuf>,
}

fn desc(e: openhook_wire::qmp::ClientError) -> String {
    e.qmp().expect("a QMP error").desc.clone()
}

/// The emulator side (hub with the real fd store, one monitor on a
/// connected socket) and a negotiated client.
fn vm() -> Vm {
    let opener = Opener::direct_unsandboxed();
    let hub = Hub::new(HubParts {
        fdsets: Some(Arc::new(opener.clone())),
        ..HubParts::default()
    });
    let (ours, theirs) = UnixStream::pair().unwrap();
    server::spawn(hub, Monitor::new(), Transport::Connected(theirs.into())).unwrap();
    let mut client = QmpClient::handshake(ours).unwrap();
    client.set_timeout(Some(Duration::from_secs(20))).unwrap();
    client.negotiate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let images = (0..5)
        .map(|i| {
            let p = dir.path().join(format!("image{i}"));
            std::fs::write(&p, format!("image{i}")).unwrap();
            p
        })
        .collect();
    Vm {
        client,
        opener,
        _dir: dir,
        images,
    }
}

fn open(p: &Path, write: bool) -> OwnedFd {
    File::options()
        .read(true)
        .write(write)
        .open(p)
        .unwrap()
        .into()
}

/// `add-fd` with the fd attached to the command; returns the emulator's fd.
fn add_fd(vm: &mut Vm, set: i64, image: usize, write: bool, opaque: &str) -> i64 {
    let f = open(&vm.images[image], write);
    let r = vm
        .client
        .execute_with_fds(
            "add-fd",
            Some(json!({"fdset-id": set, "opaque": opaque})),
            &[f.as_fd()],
        )
        .unwrap();
    assert_eq!(r["fdset-id"], json!(set));
    r["fd"].as_i64().unwrap()
}

/// iotest 045 TestFdSets.setUp: image0 in set 1, image1 and image2 in
/// set 2, image3 in set 0, image4 in set 1 (added in that order).
fn fd_sets() -> (Vm, [i64; 5]) {
    let mut vm = vm();
    let f0 = add_fd(&mut vm, 1, 0, true, "image0:r");
    let f1 = add_fd(&mut vm, 2, 1, false, "image1:w");
    let f2 = add_fd(&mut vm, 2, 2, true, "image2:r");
    let f3 = add_fd(&mut vm, 0, 3, true, "image3:r");
    let f4 = add_fd(&mut vm, 1, 4, false, "image4:r");
    (vm, [f0, f1, f2, f3, f4])
}

fn query(vm: &mut Vm) -> Value {
    vm.client.execute("query-fdsets", None).unwrap()
}

fn set(id: i64, fds: &[(i64, &str)]) -> Value {
    json!({"fdset-id": id, "fds": fds.iter().map(|(fd, o)| json!({"fd": fd, "opaque": o})).collect::<Vec<_>>()})
}

/// The emulator's fd `n` refers to the same file as `path`.
fn is_file(n: i64, path: &Path) -> bool {
    let meta = std::fs::metadata(format!("/proc/self/fd/{n}")).unwrap();
    let want = std::fs::metadata(path).unwrap();
    (meta.dev(), meta.ino()) == (want.dev(), want.ino())
}

#[test]
fn query_fdset_orders_sets_2_1_0_and_fds_oldest_first() {
    let (mut vm, f) = fd_sets();
    assert_eq!(
        query(&mut vm),
        json!([
            set(2, &[(f[1], "image1:w"), (f[2], "image2:r")]),
            set(1, &[(f[0], "image0:r"), (f[4], "image4:r")]),
            set(0, &[(f[3], "image3:r")]),
        ])
    );
    // The numbers are the emulator's own fds for those files.
    for (i, n) in f.iter().enumerate() {
        assert!(is_file(*n, &vm.images[i]), "fd {n} is image{i}");
    }
    // And the store opens by access mode: set 1 read-only is image4.
    let ro = vm
        .opener
        .open(Path::new("/dev/fdset/1"), libc::O_RDONLY, 0)
        .unwrap();
    assert!(is_file(i64::from(ro.as_raw_fd()), &vm.images[4]));
    let rw = vm
        .opener
        .open(Path::new("/dev/fdset/1"), libc::O_RDWR, 0)
        .unwrap();
    assert!(is_file(i64::from(rw.as_raw_fd()), &vm.images[0]));
}

#[test]
fn remove_fdset_closes_every_fd_of_the_set() {
    let (mut vm, f) = fd_sets();
    vm.client
        .execute("remove-fd", Some(json!({"fdset-id": 2})))
        .unwrap();
    assert_eq!(
        query(&mut vm),
        json!([
            set(1, &[(f[0], "image0:r"), (f[4], "image4:r")]),
            set(0, &[(f[3], "image3:r")]),
        ])
    );
    // Closed at once: the numbers no longer name those files.
    assert!(
        !Path::new(&format!("/proc/self/fd/{}", f[1])).exists() || !is_file(f[1], &vm.images[1])
    );
    assert!(
        !Path::new(&format!("/proc/self/fd/{}", f[2])).exists() || !is_file(f[2], &vm.images[2])
    );
}

#[test]
fn remove_fd_removes_one_fd() {
    let (mut vm, f) = fd_sets();
    vm.client
        .execute("remove-fd", Some(json!({"fdset-id": 1, "fd": f[0]})))
        .unwrap();
    assert_eq!(
        query(&mut vm),
        json!([
            set(2, &[(f[1], "image1:w"), (f[2], "image2:r")]),
            set(1, &[(f[4], "image4:r")]),
            set(0, &[(f[3], "image3:r")]),
        ])
    );
}

#[test]
fn remove_fd_invalid_fdset_and_invalid_fd() {
    let (mut vm, f) = fd_sets();
    let before = query(&mut vm);
    let e = vm
        .client
        .execute("remove-fd", Some(json!({"fdset-id": 3, "fd": f[0]})))
        .unwrap_err();
    assert_eq!(
        desc(e),
        format!("File descriptor named 'fdset-id:3, fd:{}' not found", f[0])
    );
    let e = vm
        .client
        .execute("remove-fd", Some(json!({"fdset-id": 3})))
        .unwrap_err();
    assert_eq!(desc(e), "File descriptor named 'fdset-id:3' not found");
    let e = vm
        .client
        .execute("remove-fd", Some(json!({"fdset-id": 0, "fd": 999})))
        .unwrap_err();
    assert_eq!(
        desc(e),
        "File descriptor named 'fdset-id:0, fd:999' not found"
    );
    assert_eq!(query(&mut vm), before, "nothing changed");
}

#[test]
fn add_fd_without_an_fd_and_with_a_negative_set() {
    let (mut vm, _) = fd_sets();
    let before = query(&mut vm);
    let e = vm
        .client
        .execute("add-fd", Some(json!({"fdset-id": 2})))
        .unwrap_err();
    assert_eq!(desc(e), "No file descriptor supplied via SCM_RIGHTS");
    let f = open(&vm.images[0], false);
    let e = vm
        .client
        .execute_with_fds("add-fd", Some(json!({"fdset-id": -1})), &[f.as_fd()])
        .unwrap_err();
    assert_eq!(desc(e), "Parameter 'fdset-id' expects a non-negative value");
    assert_eq!(query(&mut vm), before);
    // Without an id: the lowest free one (3 here).
    let r = vm
        .client
        .execute_with_fds("add-fd", None, &[f.as_fd()])
        .unwrap();
    assert_eq!(r["fdset-id"], json!(3));
}

#[test]
fn getfd_getfd_digit_name_closefd_and_unknown_closefd() {
    let mut vm = vm();
    // TestSCMFd: getfd with a file.
    let f = open(&vm.images[0], true);
    vm.client
        .execute_with_fds("getfd", Some(json!({"fdname": "image0"})), &[f.as_fd()])
        .unwrap();
    // A name starting with a digit.
    let e = vm
        .client
        .execute_with_fds("getfd", Some(json!({"fdname": "1image0"})), &[f.as_fd()])
        .unwrap_err();
    assert_eq!(
        desc(e),
        "Parameter 'fdname' expects a name not starting with a digit"
    );
    // closefd, then closefd of a name that no longer exists.
    vm.client
        .execute("closefd", Some(json!({"fdname": "image0"})))
        .unwrap();
    let e = vm
        .client
        .execute("closefd", Some(json!({"fdname": "image0"})))
        .unwrap_err();
    assert_eq!(desc(e), "File descriptor named 'image0' not found");
    let e = vm
        .client
        .execute("closefd", Some(json!({"fdname": "nonexistent"})))
        .unwrap_err();
    assert_eq!(desc(e), "File descriptor named 'nonexistent' not found");
    // HMP spellings reach the same table.
    let out = vm
        .client
        .execute(
            "human-monitor-command",
            Some(json!({"command-line": "closefd image0"})),
        )
        .unwrap();
    assert_eq!(
        out,
        json!("Error: File descriptor named 'image0' not found\r\n")
    );
}
