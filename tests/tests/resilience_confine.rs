//! Broker self-confinement: the kernel layer alone stops an out-of-policy
//! open. A separate build of the broker with the test-only feature
//! `test-skip-matcher` (its `decide` allows everything, beneath `/`) is made
//! into its own target dir, so the workspace's binaries never contain it.
//! Through it an out-of-policy open is still refused with EACCES by the
//! broker's Landlock domain; with `[sandbox] mode = "off"` (no broker
//! confinement) the same open succeeds. The real broker refuses it too
//! (matcher), and the confined broker keeps serving in-policy opens.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use openhook_tests::bin;

/// Builds `openhook-broker --features test-skip-matcher` (debug) into
/// `target/skip-matcher/` once per test process.
fn skip_matcher_broker() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = openhook_tests::bin_dir()
                .parent()
                .expect("target dir")
                .join("skip-matcher");
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let st = Command::new(cargo)
                .args(["build", "--quiet", "-p", "openhook-broker", "--bin"])
                .arg("openhook-broker")
                .args(["--features", "test-skip-matcher", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target)
                .env_remove("CARGO_TARGET_DIR")
                .status()
                .expect("run cargo build");
            assert!(st.success(), "building the test-skip-matcher broker failed");
            target.join("debug/openhook-broker")
        })
        .clone()
}

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("ok")).expect("mkdir");
        fs::create_dir(dir.path().join("secret")).expect("mkdir");
        fs::write(dir.path().join("ok/a"), b"in policy").expect("write");
        fs::write(dir.path().join("secret/b"), b"out of policy").expect("write");
        Tree { dir }
    }
    fn p(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir.path().display())
    }
    fn policy(&self, mode: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{mode}.toml"));
        let text = format!(
            "version = 1\n[[allow]]\npath = \"{}/\"\naccess = \"r\"\n[sandbox]\nmode = \"{mode}\"\n",
            self.p("ok")
        );
        fs::write(&path, text).expect("policy");
        path
    }
}

/// Runs `broker --policy P --audit-log A -- openhook-open [--flags F] PATHS`;
/// returns (exit code, stdout lines, audit lines).
fn open_through(
    broker: &Path,
    tree: &Tree,
    mode: &str,
    flags: &str,
    paths: &[String],
) -> (i32, Vec<String>, Vec<serde_json::Value>) {
    let audit = tree.dir.path().join(format!("audit-{mode}-{flags}.log"));
    let _ = fs::remove_file(&audit);
    let out = Command::new(broker)
        .arg("--policy")
        .arg(tree.policy(mode))
        .arg("--audit-log")
        .arg(&audit)
        .arg("--")
        .arg(bin("openhook-open"))
        .args(["--flags", flags])
        .args(paths)
        .output()
        .expect("run broker");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let audit = fs::read_to_string(&audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line parses"))
        .collect();
    (out.status.code().unwrap_or(-1), lines, audit)
}

#[test]
fn kernel_layer_alone_refuses_out_of_policy_opens() {
    let tree = Tree::new();
    let skip = skip_matcher_broker();
    let secret = tree.p("secret/b");
    let ok = tree.p("ok/a");

    // Matcher skipped, broker confined: Landlock refuses the read outside
    // the rule root and the write inside a read-only root; the audit line
    // shows the matcher allowed it and the open itself failed.
    let (code, lines, audit) = open_through(
        &skip,
        &tree,
        "require",
        "rdonly",
        &[ok.clone(), secret.clone()],
    );
    assert!(lines[0].starts_with(&format!("{ok} ok fd=")), "{lines:?}");
    assert_eq!(lines[1], format!("{secret} errno=EACCES"), "{lines:?}");
    assert_eq!(code, 1);
    assert_eq!(audit[1]["decision"], "error", "{audit:?}");
    assert_eq!(audit[1]["errno"], libc::EACCES, "{audit:?}");
    let (_, lines, _) = open_through(&skip, &tree, "require", "rdwr", std::slice::from_ref(&ok));
    assert_eq!(lines, vec![format!("{ok} errno=EACCES")]);

    // Same build, confinement off: both opens succeed — nothing but the
    // kernel layer stood in the way above.
    let (code, lines, audit) =
        open_through(&skip, &tree, "off", "rdonly", &[ok.clone(), secret.clone()]);
    assert_eq!(code, 0, "{lines:?}");
    assert!(
        lines[1].starts_with(&format!("{secret} ok fd=")),
        "{lines:?}"
    );
    assert_eq!(audit[1]["decision"], "allow");
    let (code, _, _) = open_through(&skip, &tree, "off", "rdwr", std::slice::from_ref(&ok));
    assert_eq!(code, 0);

    // The real broker (matcher and kernel layer): in-policy served, the
    // out-of-policy open denied by the matcher (decision "deny").
    let (code, lines, audit) = open_through(
        &bin("openhook-broker"),
        &tree,
        "require",
        "rdonly",
        &[ok.clone(), secret.clone()],
    );
    assert_eq!(code, 1);
    assert!(lines[0].starts_with(&format!("{ok} ok fd=")), "{lines:?}");
    assert_eq!(lines[1], format!("{secret} errno=EACCES"));
    assert_eq!(audit[1]["decision"], "deny");
}

#[test]
fn confined_broker_shows_seccomp_and_no_new_privs() {
    let tree = Tree::new();
    let mut child = Command::new(bin("openhook-broker"))
        .arg("--policy")
        .arg(tree.policy("require"))
        .arg("--")
        .arg(bin("openhook-test-peer"))
        .args(["mixed", "10"])
        .arg(tree.p("ok/a"))
        .arg(tree.p("secret/b"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    assert_eq!(line.trim(), "ready");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"go\n").expect("go");
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).expect("read");
    assert_eq!(line.trim(), "done ok 5 denied 5");
    // Every broker thread (main and serve) is confined.
    let tasks = fs::read_dir(format!("/proc/{}/task", child.id())).expect("tasks");
    let mut n = 0;
    for t in tasks {
        let status = fs::read_to_string(t.expect("task").path().join("status")).expect("status");
        assert!(status.contains("NoNewPrivs:\t1"), "{status}");
        assert!(status.contains("Seccomp:\t2"), "{status}");
        n += 1;
    }
    assert_eq!(n, 2, "main and serve thread");
    std::io::Write::write_all(&mut stdin, b"go\n").expect("go");
    drop(stdin);
    assert!(child.wait().expect("wait").success());
}
