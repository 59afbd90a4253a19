//! Harness for openhook's end-to-end tests: locating the built binaries,
//! temp trees, fd counting.

use std::path::PathBuf;

pub mod broker;
pub mod fw;
pub mod transparent;

/// Directory holding the workspace's built binaries (`target/<profile>`),
/// derived from the test executable's location (`target/<profile>/deps/…`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Path of a workspace binary, e.g. `bin("openhook-broker")`.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// `true` when `/dev/kvm` exists. Otherwise the test is skipped — unless
/// `OPENHOOK_REQUIRE_KVM=1` (CI), where a missing `/dev/kvm` fails it.
pub fn kvm_or_skip(test: &str) -> bool {
    if std::path::Path::new("/dev/kvm").exists() {
        return true;
    }
    assert!(
        std::env::var("OPENHOOK_REQUIRE_KVM").as_deref() != Ok("1"),
        "{test}: /dev/kvm is missing and OPENHOOK_REQUIRE_KVM=1"
    );
    eprintln!("skipping {test}: /dev/kvm is missing");
    false
}

/// A child process killed and reaped when the test lets go of it, so a
/// failing assertion never leaves an emulator running.
pub struct Reaper(pub std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads QMP lines (JSON objects) until `want` holds for one; returns all
/// of them, that one last. EOF first fails the test with what was seen.
/// Spawns `cmd` with stderr piped and reads its stderr up to a line that
/// contains `needle` (a launcher's "Listening on", the emulator's "waiting
/// for a connection"). Returns the child, killed and reaped on drop, and
/// the rest of its stderr.
pub fn spawn_until_stderr(
    cmd: &mut std::process::Command,
    needle: &str,
) -> (Reaper, std::io::BufReader<std::process::ChildStderr>) {
    use std::io::BufRead;
    let child = cmd
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = Reaper(child);
    let mut err = std::io::BufReader::new(child.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains(needle) {
        line.clear();
        let n = err.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "stderr ended before {needle:?}");
    }
    (child, err)
}

/// Everything `child` writes to its (piped) stderr until it closes it.
pub fn stderr_text(child: &mut std::process::Child) -> String {
    use std::io::Read;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).expect("read stderr");
    }
    err
}

pub fn read_until(
    r: &mut impl std::io::BufRead,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("qmp read");
        assert!(n > 0, "EOF before the expected message; saw {seen:?}");
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("qmp json");
        let done = want(&v);
        seen.push(v);
        if done {
            return seen;
        }
    }
}

/// The path of host tool `name` (man, groff, zsh, systemd-analyze, ...),
/// or None with a one-line note when the test should skip it: a missing
/// tool fails the test instead when `OPENHOOK_REQUIRE_TOOLS` is set, as
/// `scripts/test.sh` does after `scripts/setup-deps.sh` installed them.
pub fn tool_or_skip(test: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let require =
            std::env::var_os("OPENHOOK_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty() && v != "0");
        assert!(
            !require,
            "{test}: {name} not found on PATH and OPENHOOK_REQUIRE_TOOLS is set (scripts/setup-deps.sh installs it)"
        );
        eprintln!("skipping {test} ({name}): {name} not found (scripts/setup-deps.sh installs it)");
    }
    found
}
