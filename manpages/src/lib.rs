//! The man pages and shell completions of openhook's binaries, generated
//! at build time (see `build.rs`) from the command-line definitions the
//! binaries parse with. [`FILES`] holds them; [`install`] writes them out.
#![forbid(unsafe_code)]

use std::io;
use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/files.rs"));

/// Writes every file of [`FILES`] below `root` (`man/openhook-qmp.1`,
/// `completions/bash/openhook-qmp`, ...), creating directories.
// An installer: writing files by path is its job.
#[allow(clippy::disallowed_methods)]
pub fn install(root: &Path) -> io::Result<()> {
    for (rel, bytes) in FILES {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, bytes)?;
    }
    Ok(())
}
