//! Harness for openhook's end-to-end tests: locating the built binaries,
//! temp trees, fd counting.

use std::path::PathBuf;

pub mod broker;
pub mod fw;

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
