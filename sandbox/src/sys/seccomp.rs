//! Loading a compiled BPF program as a seccomp filter on the calling thread,
//! without seccompiler's `prctl(PR_SET_NO_NEW_PRIVS)` (which a vCPU thread's
//! inherited filter does not allow; no_new_privs is set once in `enter`).
#![allow(unsafe_code)]

use rustix::io::Errno;
use seccompiler::BpfProgram;

/// Loads `prog` on the calling thread (flags 0: no TSYNC, no listener).
pub fn load(prog: &BpfProgram) -> Result<(), Errno> {
    let len = u16::try_from(prog.len()).map_err(|_| Errno::TOOBIG)?;
    if len == 0 {
        return Err(Errno::INVAL);
    }
    #[repr(C)]
    struct Fprog {
        len: u16,
        filter: *const seccompiler::sock_filter,
    }
    let fprog = Fprog {
        len,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `len` live, `repr(C)` `sock_filter`s that the
    // kernel copies before returning; nothing is retained.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_ulong,
            &fprog as *const Fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    }
}
