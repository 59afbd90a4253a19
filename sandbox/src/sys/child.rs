//! Async-signal-safe steps run in the broker's child between fork and exec.
//!
//! Every function here is a raw syscall on data prepared before the fork:
//! no allocation, no locks, no logging, no glibc wrappers with hidden state
//! (glibc's `setresuid` would try to broadcast to threads the child does not
//! have). Each returns the raw errno on failure.
#![allow(unsafe_code)]

use std::ffi::CStr;

use rustix::io::Errno;

fn errno() -> Errno {
    // SAFETY: __errno_location returns this thread's errno slot, valid for
    // the thread's lifetime.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: `slot` points at this thread's errno; reading it is
    // async-signal-safe.
    Errno::from_raw_os_error(unsafe { *slot })
}

fn check(r: libc::c_long) -> Result<(), Errno> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `setrlimit(resource, {value, value})`.
pub fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> Result<(), Errno> {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: the kernel reads one rlimit from a live local.
    let r = unsafe { libc::setrlimit(resource, &lim) };
    check(r.into())
}

/// `unshare(flags)`.
pub fn unshare(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: integer-only syscall.
    let r = unsafe { libc::syscall(libc::SYS_unshare, flags) };
    check(r)
}

/// Drops every capability from the bounding set, from 0 until the kernel
/// says EINVAL (past its last capability). `Err(EPERM)` without CAP_SETPCAP.
pub fn drop_bounding_set() -> Result<(), Errno> {
    for cap in 0..64 as libc::c_ulong {
        // SAFETY: integer-only prctl.
        let r = unsafe { libc::syscall(libc::SYS_prctl, libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r < 0 {
            let e = errno();
            if e == Errno::INVAL && cap > 0 {
                return Ok(());
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Clears the ambient capability set.
pub fn clear_ambient() -> Result<(), Errno> {
    // SAFETY: integer-only prctl.
    let r = unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    check(r)
}

/// Clears the effective, permitted and inheritable sets (`capset` v3).
pub fn clear_capabilities() -> Result<(), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    let hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [0u32; 6];
    // SAFETY: the kernel reads a header and two 3×u32 records from live locals.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
    check(r)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub fn set_no_new_privs() -> Result<(), Errno> {
    // SAFETY: integer-only prctl.
    let r = unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(r)
}

/// `setgroups(0)`, `setresgid(gid×3)`, `setresuid(uid×3)`, as raw syscalls.
pub fn switch_user(uid: libc::uid_t, gid: libc::gid_t) -> Result<(), Errno> {
    // SAFETY: a zero-length group list with a null pointer reads nothing.
    check(unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) })?;
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    // SAFETY: integer-only syscall.
    check(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })
}

/// `prctl(PR_SET_DUMPABLE, 1)`: a uid change clears "dumpable", which makes
/// `/proc/self/*` root-owned and the user-namespace maps unwritable. The exec
/// that follows recomputes it anyway.
pub fn set_dumpable() -> Result<(), Errno> {
    // SAFETY: integer-only prctl.
    let r = unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    check(r)
}

/// Writes `data` to the file at `path` (used for `/proc/self/uid_map` and
/// friends): open, one write, close.
pub fn write_file(path: &CStr, data: &[u8]) -> Result<(), Errno> {
    // SAFETY: `path` is a live NUL-terminated string; the fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: writes from a live slice to the fd just opened.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let e = errno();
    // SAFETY: closes the fd this function opened.
    unsafe { libc::close(fd) };
    match usize::try_from(n) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(_) => Err(Errno::IO),
        Err(_) => Err(e),
    }
}

/// `mount(source, target, fstype, flags, data)` with optional strings.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), Errno> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a live NUL-terminated string.
    let r = unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data).cast::<libc::c_void>(),
        )
    };
    check(r.into())
}

/// `mkdir(path, mode)`; EEXIST is success.
pub fn mkdir(path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
    // SAFETY: `path` is a live NUL-terminated string.
    let r = unsafe { libc::mkdir(path.as_ptr(), mode) };
    if r < 0 && errno() != Errno::EXIST {
        return Err(errno());
    }
    Ok(())
}

/// Creates an empty file at `path` (a bind-mount point); EEXIST is success.
pub fn touch(path: &CStr) -> Result<(), Errno> {
    // SAFETY: `path` is a live NUL-terminated string; the fd is closed below.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
            0o400,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: closes the fd just opened.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Makes `new_root` the root: chdir, `pivot_root(".", ".")`, detach the old
/// root, chdir("/").
pub fn pivot_into(new_root: &CStr) -> Result<(), Errno> {
    // SAFETY: `new_root` is a live NUL-terminated string.
    check(unsafe { libc::chdir(new_root.as_ptr()) }.into())?;
    let dot = c".";
    // SAFETY: both arguments are live NUL-terminated strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })?;
    // SAFETY: `dot` is a live NUL-terminated string.
    check(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) }.into())?;
    // SAFETY: a static NUL-terminated string.
    check(unsafe { libc::chdir(c"/".as_ptr()) }.into())
}

/// `landlock_restrict_self(fd, 0)`.
pub fn landlock_restrict_self(fd: libc::c_int) -> Result<(), Errno> {
    // SAFETY: integer-only syscall on a ruleset fd prepared before the fork.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) };
    check(r)
}

/// Closes every fd in `first..=last`.
pub fn close_range(first: libc::c_uint, last: libc::c_uint) -> Result<(), Errno> {
    // SAFETY: integer-only syscall; the caller keeps no reference to these
    // fds (the child is about to exec).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    check(r)
}

/// Loads `prog` with `SECCOMP_FILTER_FLAG_NEW_LISTENER` and returns the
/// listener fd (close-on-exec, as the kernel creates it).
pub fn seccomp_with_listener(prog: &[libc::sock_filter]) -> Result<libc::c_int, Errno> {
    let len = u16::try_from(prog.len()).map_err(|_| Errno::TOOBIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` live `sock_filter`s that the kernel
    // copies before returning; nothing is retained.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    check(r)?;
    libc::c_int::try_from(r).map_err(|_| Errno::BADF)
}

/// Sends `fd` over the unix socket `sock` (one data byte, one
/// `SCM_RIGHTS` fd), without allocating.
pub fn send_fd(sock: libc::c_int, fd: libc::c_int) -> Result<(), Errno> {
    #[repr(C)]
    struct Cmsg {
        hdr: libc::cmsghdr,
        fd: libc::c_int,
        pad: libc::c_int,
    }
    let mut cmsg = Cmsg {
        hdr: libc::cmsghdr {
            // CMSG_LEN(sizeof(int)): the header plus the fd, unpadded.
            cmsg_len: std::mem::size_of::<libc::cmsghdr>() + std::mem::size_of::<libc::c_int>(),
            cmsg_level: libc::SOL_SOCKET,
            cmsg_type: libc::SCM_RIGHTS,
        },
        fd,
        pad: 0,
    };
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut cmsg as *mut Cmsg).cast();
    msg.msg_controllen = std::mem::size_of::<Cmsg>();
    // SAFETY: `msg` points at live locals (one iovec, one control message
    // of CMSG_SPACE(sizeof(int)) bytes) for the duration of the call.
    let r = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    check(r.try_into().unwrap_or(-1))
}

/// `close(fd)`, errors ignored (the fd is gone either way).
pub fn close(fd: libc::c_int) {
    // SAFETY: the caller owns `fd` and drops every use of it.
    unsafe { libc::close(fd) };
}
