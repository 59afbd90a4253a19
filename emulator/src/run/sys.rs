//! Taking termination signals synchronously: `sigwait` on a dedicated
//! thread, with the signals blocked in every thread (blocked in the main
//! thread before any other thread exists, so all inherit the mask).
#![allow(unsafe_code)]

use std::io;

/// The signals that end the emulator cleanly (QEMU: "terminating on
/// signal N", SHUTDOWN with reason `host-signal`).
pub const TERMINATION_SIGNALS: &[i32] = &[libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Blocks `signals` in the calling thread (and threads it creates later).
pub fn block(signals: &[i32]) -> io::Result<()> {
    for &s in signals {
        vmm_sys_util::signal::block_signal(s).map_err(|e| io::Error::other(e.to_string()))?;
    }
    Ok(())
}

/// Waits until one of `signals` (blocked with [`block`]) is pending and
/// takes it.
pub fn wait(signals: &[i32]) -> io::Result<i32> {
    let set = vmm_sys_util::signal::create_sigset(signals)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is an initialised sigset_t and `sig` a valid
    // out-pointer for the duration of the call; sigwait has no other
    // memory effects.
    let r = unsafe { libc::sigwait(&set, &mut sig) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(sig)
}
