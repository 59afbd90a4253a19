//! Read-only questions to the kernel: thread count, Landlock ABI, seccomp
//! action availability, capability bounding set.
#![allow(unsafe_code)]

use rustix::io::Errno;

fn last_errno() -> Errno {
    Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// `Ok(())` when the calling process has exactly one thread (and shares its
/// memory with no other process). Uses `unshare(CLONE_THREAD | CLONE_SIGHAND
/// | CLONE_VM)`, which the kernel accepts as a no-op only for a
/// single-threaded process and refuses with EINVAL otherwise; it touches no
/// path, so it also works in an empty mount namespace.
pub fn single_threaded() -> Result<(), Errno> {
    let flags = libc::CLONE_THREAD | libc::CLONE_SIGHAND | libc::CLONE_VM;
    // SAFETY: unshare with these flags changes nothing when it succeeds (the
    // process is already alone) and has no memory arguments.
    let r = unsafe { libc::unshare(flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// The kernel's Landlock ABI version, or the errno (ENOSYS: not built in,
/// EOPNOTSUPP: disabled at boot).
pub fn landlock_abi() -> Result<i32, Errno> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the
    // syscall only returns a number; no memory is read or written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        i32::try_from(r).map_err(|_| Errno::RANGE)
    }
}

/// Whether the kernel supports the seccomp return action `action`
/// (`SECCOMP_GET_ACTION_AVAIL`).
pub fn seccomp_action_available(action: u32) -> Result<(), Errno> {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;
    let a: u32 = action;
    // SAFETY: the kernel reads one u32 from a pointer to a live local.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &a as *const u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// Capability numbers still in the bounding set (queried one by one with
/// `PR_CAPBSET_READ` until the kernel says EINVAL: no cap list needed).
pub fn bounding_set() -> u64 {
    let mut set = 0u64;
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ takes an integer and returns 0/1 or -1.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
        match r {
            1 => set |= 1 << cap,
            0 => {}
            _ => break,
        }
    }
    set
}

/// Effective, permitted and inheritable capability sets (`capget`).
pub fn capability_sets() -> Result<[u64; 3], Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget v3 writes two `Data` entries into the live local array.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if r != 0 {
        return Err(last_errno());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok([
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ])
}

/// Ambient set, as a mask (`PR_CAP_AMBIENT_IS_SET` per capability).
pub fn ambient_set() -> u64 {
    let mut set = 0u64;
    for cap in 0..64u32 {
        // SAFETY: integer-only prctl; returns 0/1 or -1 past the last cap.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_IS_SET,
                libc::c_ulong::from(cap),
                0,
                0,
            )
        };
        match r {
            1 => set |= 1 << cap,
            0 => {}
            _ => break,
        }
    }
    set
}
