//! The serve loop with a real client: FIFOs and devices cannot stall it,
//! every decision leaves one parseable audit line written before the reply,
//! protocol-level refusals are audited too. (fd hygiene is in
//! `policy_fd_hygiene.rs`, alone in its process so the count is exact.)
#![allow(clippy::disallowed_methods)]

mod inproc;

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use inproc::InProc;
use openhook_broker::ambient::{self, Ambient};
use openhook_broker::audit::unescape_path;
use openhook_broker::policy;
use openhook_wire::hook::frame::{decode_reply, encode_open, REPLY_LEN};
use openhook_wire::Errno;

const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;
const O_CREAT: u32 = 0o100;
const O_NONBLOCK: u32 = 0o4000;
const O_PATH: u32 = 0o10000000;

struct Setup {
    dir: tempfile::TempDir,
    policy: Arc<policy::Policy>,
    ambient: Arc<Ambient>,
    audit_path: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    fs::create_dir(dir.path().join("vm")).expect("mkdir");
    fs::write(dir.path().join("vm/disk.img"), b"disk").expect("write");
    for name in ["vm/fifo", "fifo_rw"] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join(name),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
    }
    let text = format!(
        "version = 1\n\
         [[allow]]\npath = \"{d}/vm/\"\naccess = \"rw\"\ncreate = true\n\
         [[allow]]\npath = \"{d}/fifo_rw\"\naccess = \"rw\"\ntypes = [\"fifo\"]\n\
         [[allow]]\npath = \"/dev/null\"\naccess = \"rw\"\ntypes = [\"char\"]\n\
         [[allow]]\npath = \"/dev/zero\"\naccess = \"r\"\ntypes = [\"char\"]\n\
         [[deny]]\npath = \"{d}/vm/secret/\"\n"
    );
    let policy = policy::parse(&text, "serve.toml").expect("parses");
    let ambient = Ambient::open(&policy).expect("opens");
    let audit_path = dir.path().join("audit.log");
    Setup {
        dir,
        policy: Arc::new(policy),
        ambient: Arc::new(ambient),
        audit_path,
    }
}

impl Setup {
    fn p(&self, rel: &str) -> Vec<u8> {
        format!("{}/{rel}", self.dir.path().display()).into_bytes()
    }
    fn start(&self) -> InProc {
        let log = ambient::open_audit_log(&self.audit_path).expect("audit log");
        InProc::start(
            Arc::clone(&self.policy),
            Arc::clone(&self.ambient),
            Some(Arc::new(log)),
        )
    }
    fn audit_lines(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(&self.audit_path)
            .expect("read audit")
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

#[test]
fn fifos_and_devices_cannot_stall_the_broker() {
    let s = setup();
    let b = s.start();
    // A FIFO without a writer under a file-only rule: denied at once.
    assert_eq!(
        b.open(&s.p("vm/fifo"), O_RDONLY, 0).err(),
        Some(Errno::EACCES)
    );
    // A FIFO allowed by type: the read side opens at once without a writer;
    // the write side without a reader is the kernel's ENXIO, not a hang.
    let r = b
        .open(&s.p("fifo_rw"), O_RDONLY, 0)
        .expect("fifo read side");
    drop(r);
    assert_eq!(
        b.open(&s.p("fifo_rw"), O_WRONLY, 0).err(),
        Some(Errno::ENXIO)
    );
    // With a reader held, the write side opens, in the blocking mode asked.
    let r = b
        .open(&s.p("fifo_rw"), O_RDONLY | O_NONBLOCK, 0)
        .expect("read side");
    let w = b.open(&s.p("fifo_rw"), O_WRONLY, 0).expect("write side");
    let fl = rustix::fs::fcntl_getfl(&w).expect("getfl");
    assert!(!fl.contains(rustix::fs::OFlags::NONBLOCK));
    let fl = rustix::fs::fcntl_getfl(&r).expect("getfl");
    assert!(fl.contains(rustix::fs::OFlags::NONBLOCK));
    rustix::io::write(&w, b"x").expect("write through the fifo");
    let mut buf = [0u8; 1];
    assert_eq!(rustix::io::read(&r, &mut buf).expect("read"), 1);
    // Char devices: allowed by type and access; /dev/zero is read-only.
    let null = b.open(b"/dev/null", O_RDWR, 0).expect("/dev/null");
    assert_eq!(rustix::io::write(&null, b"abc").expect("write"), 3);
    let zero = b.open(b"/dev/zero", O_RDONLY, 0).expect("/dev/zero");
    assert_eq!(rustix::io::read(&zero, &mut buf).expect("read"), 1);
    assert_eq!(buf, [0]);
    assert_eq!(b.open(b"/dev/zero", O_RDWR, 0).err(), Some(Errno::EACCES));
    // The broker is still answering ordinary requests.
    b.open(&s.p("vm/disk.img"), O_RDONLY, 0)
        .expect("still responsive");
    b.finish();
}

#[test]
fn every_decision_is_audited_before_the_reply() {
    let s = setup();
    let b = s.start();
    let weird = {
        let mut p = s.p("vm/we\\ird-");
        p.extend_from_slice(b"\xff\xfe\"\n");
        p
    };
    let requests: Vec<(Vec<u8>, u32, &str, i64)> = vec![
        (s.p("vm/disk.img"), O_RDWR, "allow", 0),
        (s.p("vm/missing"), O_RDONLY, "error", 2),
        (s.p("vm/secret/key"), O_RDONLY, "deny", 13),
        (b"/etc/passwd".to_vec(), O_RDONLY, "deny", 13),
        (s.p("vm/disk.img"), O_PATH, "deny", 13),
        (s.p("vm/new"), O_RDWR | O_CREAT, "allow", 0),
        (weird.clone(), O_RDONLY, "error", 2),
    ];
    for (i, (path, flags, decision, errno)) in requests.iter().enumerate() {
        let got = b.open(path, *flags, 0o644);
        // Written before the reply: the line is there as soon as we have it.
        let lines = s.audit_lines();
        assert_eq!(lines.len(), i + 1, "one line per decision");
        let v = &lines[i];
        for k in [
            "ts", "pid", "path", "flags", "mode", "decision", "errno", "rule",
        ] {
            assert!(v.get(k).is_some(), "field {k} missing in {v}");
        }
        assert_eq!(v["decision"], *decision, "{v}");
        assert_eq!(v["errno"], *errno, "{v}");
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["flags"], *flags);
        assert_eq!(v["mode"], 0o644);
        assert_eq!(got.is_ok(), *decision == "allow");
        let logged = unescape_path(v["path"].as_str().expect("path string"));
        assert_eq!(logged.as_deref(), Some(&path[..]), "path recoverable");
    }
    let lines = s.audit_lines();
    assert!(lines[0]["rule"]
        .as_str()
        .expect("rule")
        .starts_with("allow[0] "));
    assert!(lines[2]["rule"]
        .as_str()
        .expect("rule")
        .starts_with("deny[0] "));
    assert_eq!(lines[3]["rule"], serde_json::Value::Null);
    b.finish();
}

#[test]
fn protocol_rejections_are_audited_and_answered() {
    let s = setup();
    let log = ambient::open_audit_log(&s.audit_path).expect("audit log");
    let (ours, theirs) = UnixStream::pair().expect("pair");
    let policy = Arc::clone(&s.policy);
    let amb = Arc::clone(&s.ambient);
    let t = std::thread::spawn(move || {
        openhook_broker::serve::serve(OwnedFd::from(theirs), &policy, &amb, Some(&log), 7)
    });
    let mut sock = ours;
    let mut long = s.p("vm/");
    long.resize(4096, b'a');
    for (path, errno) in [
        (&b"/a\0b"[..], Errno::EINVAL),
        (&long[..], Errno::ENAMETOOLONG),
        (b"relative/path", Errno::EACCES),
    ] {
        let frame = encode_open(O_RDONLY, 0, path).expect("encode");
        sock.write_all(&frame).expect("send");
        let mut reply = [0u8; REPLY_LEN];
        sock.read_exact(&mut reply).expect("reply");
        let r = decode_reply(&reply).expect("reply decodes");
        assert_eq!(r.result, Err(errno), "{:?}", String::from_utf8_lossy(path));
    }
    drop(sock);
    t.join().expect("thread").expect("clean EOF");
    let lines = s.audit_lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["errno"], 22);
    assert_eq!(lines[1]["errno"], 36);
    assert_eq!(lines[2]["errno"], 13);
    for l in &lines {
        assert_eq!(l["decision"], "deny");
        assert_eq!(l["pid"], 7);
    }
    assert_eq!(
        unescape_path(lines[0]["path"].as_str().expect("path")).as_deref(),
        Some(&b"/a\0b"[..])
    );
}
