//! `openhook-fw-disk PATH [SECTORS]`: writes a disk image laid out the way
//! the guest test firmware expects (see tests/firmware/README.md), for
//! the README demo and for trying the firmware by hand.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: openhook-fw-disk PATH [SECTORS]");
        return ExitCode::from(2);
    };
    let sectors = match args.next().map(|s| s.to_string_lossy().parse::<u64>()) {
        None => openhook_tests::fw::DISK_SECTORS,
        Some(Ok(n)) if n >= 16 => n,
        Some(_) => {
            eprintln!("openhook-fw-disk: SECTORS must be a number >= 16");
            return ExitCode::from(2);
        }
    };
    match openhook_tests::fw::prepare_disk(&path, sectors) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openhook-fw-disk: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}
