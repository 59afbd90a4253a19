//! Opens everything the machine needs through the emulator's single open
//! entry ([`Opener::open`]): `/dev/kvm`, firmware, kernel, initrd, drives.
//! The serial output is the chardev registry's writer
//! (`qmp::startup::prepare`). The machine itself never sees a path.
#![forbid(unsafe_code)]

use std::fs::File;
use std::path::Path;

use crate::fds::open::{OpenedFile, Opener};
use crate::machine::MachineFiles;
use crate::vm_config::MachineConfig;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{what} '{path}': {source}")]
    Open {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Files that must stay open while the machine runs: an fd-set dup is
/// tracked until its [`OpenedFile`] drops, so the machine gets a clone and
/// the original lives here.
pub struct KeepOpen(#[allow(dead_code)] Vec<OpenedFile>);

const CREATE_MODE: u32 = 0o666;

fn obtain(
    opener: &Opener,
    keep: &mut Vec<OpenedFile>,
    what: &'static str,
    path: &Path,
    flags: i32,
) -> Result<File, FilesError> {
    let err = |source| FilesError::Open {
        what,
        path: path.display().to_string(),
        source,
    };
    let opened = opener
        .open(path, flags | libc::O_CLOEXEC, CREATE_MODE)
        .map_err(err)?;
    let file = opened.file().try_clone().map_err(err)?;
    keep.push(opened);
    Ok(file)
}

/// Opens the machine's files in a fixed order: kvm, firmware, kernel,
/// initrd, drives (config order), serial.
pub fn open_machine_files(
    opener: &Opener,
    cfg: &MachineConfig,
    serial: Box<dyn crate::devices::serial::SerialOutput>,
) -> Result<(MachineFiles, KeepOpen), FilesError> {
    let mut keep = Vec::new();
    let kvm = obtain(
        opener,
        &mut keep,
        "KVM device",
        Path::new("/dev/kvm"),
        libc::O_RDWR,
    )?;
    let firmware = cfg
        .firmware
        .as_ref()
        .map(|p| obtain(opener, &mut keep, "firmware", p, libc::O_RDONLY))
        .transpose()?;
    let kernel = cfg
        .kernel
        .as_ref()
        .map(|k| obtain(opener, &mut keep, "kernel", &k.kernel, libc::O_RDONLY))
        .transpose()?;
    let initrd = cfg
        .kernel
        .as_ref()
        .and_then(|k| k.initrd.as_ref())
        .map(|p| obtain(opener, &mut keep, "initrd", p, libc::O_RDONLY))
        .transpose()?;
    let mut drives = Vec::new();
    for d in &cfg.drives {
        let access = if d.readonly {
            libc::O_RDONLY
        } else {
            libc::O_RDWR
        };
        let direct = if d.cache.direct() { libc::O_DIRECT } else { 0 };
        drives.push(obtain(
            opener,
            &mut keep,
            "drive",
            &d.path,
            access | direct,
        )?);
    }
    let files = MachineFiles {
        kvm: kvm.into(),
        firmware,
        kernel,
        initrd,
        drives,
        serial,
    };
    Ok((files, KeepOpen(keep)))
}
