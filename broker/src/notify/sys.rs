//! The seccomp listener and the target's memory: thin wrappers over the
//! `SECCOMP_IOCTL_NOTIF_*` ioctls, `process_vm_readv`/`writev` and the raw
//! stat calls whose kernel structs are written back as bytes. rustix has
//! none of the ioctls; libc has their numbers and structs.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use openhook_wire::Errno;

fn last_errno() -> Errno {
    Errno::new(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
    .unwrap_or(Errno::EIO)
}

/// One notification.
#[derive(Clone, Copy, Debug)]
pub struct Notif {
    pub id: u64,
    /// The asking thread (in the broker's pid namespace).
    pub pid: i32,
    pub nr: i64,
    pub arch: u32,
    pub args: [u64; 6],
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: blocks until a notification arrives.
/// `ENOENT`: the target died before it could be received.
pub fn recv(listener: BorrowedFd<'_>) -> Result<Notif, Errno> {
    // The kernel requires a zeroed struct.
    let mut n = MaybeUninit::<libc::seccomp_notif>::zeroed();
    // SAFETY: the ioctl writes one `seccomp_notif` into the zeroed local
    // `n`, whose size the request number encodes.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            n.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    // SAFETY: zeroed is a valid `seccomp_notif` and the kernel filled it.
    let n = unsafe { n.assume_init() };
    Ok(Notif {
        id: n.id,
        pid: i32::try_from(n.pid).unwrap_or(0),
        nr: i64::from(n.data.nr),
        arch: n.data.arch,
        args: n.data.args,
    })
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: the notification is still pending (its
/// thread alive and waiting). Checked after reading target memory.
pub fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 from the live local `id`.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        )
    };
    r == 0
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: the syscall returns `val` (`errno` 0) or
/// fails with `errno`. Never `CONTINUE`.
pub fn reply(listener: BorrowedFd<'_>, id: u64, result: Result<i64, Errno>) -> Result<(), Errno> {
    let (val, error) = match result {
        Ok(v) => (v, 0),
        Err(e) => (0, -e.get()),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags: 0,
    };
    // SAFETY: the ioctl reads one `seccomp_notif_resp` from the live local.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` with `SECCOMP_ADDFD_FLAG_SEND`: installs a
/// copy of `fd` in the target and answers the notification with its number
/// in one step. `cloexec` sets `O_CLOEXEC` on the target's copy.
pub fn add_fd_and_reply(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    cloexec: bool,
) -> Result<i32, Errno> {
    let add = libc::seccomp_notif_addfd {
        id,
        flags: u32::try_from(libc::SECCOMP_ADDFD_FLAG_SEND).unwrap_or(2),
        srcfd: u32::try_from(fd.as_raw_fd()).map_err(|_| Errno::EBADF)?,
        newfd: 0,
        newfd_flags: if cloexec {
            libc::O_CLOEXEC.unsigned_abs()
        } else {
            0
        },
    };
    // SAFETY: the ioctl reads one `seccomp_notif_addfd` from the live
    // local; `srcfd` is open for the duration of the call (borrowed).
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ADDFD,
            &add as *const libc::seccomp_notif_addfd,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

const PAGE: u64 = 4096;

/// A target address as the pointer type iovecs carry (never dereferenced
/// here: the kernel checks it against the target's memory).
fn remote_ptr(addr: u64) -> Result<*mut libc::c_void, Errno> {
    Ok(std::ptr::null_mut::<u8>()
        .wrapping_add(usize::try_from(addr).map_err(|_| Errno::EFAULT)?)
        .cast())
}

/// Reads target memory at `addr` into `buf`, one iovec per page so that a
/// string ending before an unmapped page still reads. Returns the bytes
/// read (short when a later page is unmapped); `EFAULT` when none.
pub fn read_mem(pid: i32, addr: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    if buf.is_empty() {
        return Ok(0);
    }
    let mut remote: Vec<libc::iovec> = Vec::with_capacity(buf.len() / 4096 + 2);
    let mut at = addr;
    let end = addr.checked_add(buf.len() as u64).ok_or(Errno::EFAULT)?;
    while at < end {
        let next = ((at / PAGE) + 1) * PAGE;
        let len = next.min(end) - at;
        remote.push(libc::iovec {
            iov_base: remote_ptr(at)?,
            iov_len: usize::try_from(len).map_err(|_| Errno::EFAULT)?,
        });
        at += len;
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `local` covers exactly `buf`, writable for the call; the
    // remote iovecs name target addresses, which the kernel checks.
    let r = unsafe {
        libc::process_vm_readv(
            pid,
            &local,
            1,
            remote.as_ptr(),
            libc::c_ulong::try_from(remote.len()).unwrap_or(0),
            0,
        )
    };
    match usize::try_from(r) {
        Ok(0) => Err(Errno::EFAULT),
        Ok(n) => Ok(n),
        Err(_) => Err(last_errno()),
    }
}

/// Writes `data` to target memory at `addr` (all of it, or `EFAULT`).
pub fn write_mem(pid: i32, addr: u64, data: &[u8]) -> Result<(), Errno> {
    let local = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: remote_ptr(addr)?,
        iov_len: data.len(),
    };
    // SAFETY: `local` covers exactly `data`, which the kernel only reads;
    // the remote address is the target's, checked by the kernel.
    let r = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    match usize::try_from(r) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(_) => Err(Errno::EFAULT),
        Err(_) => Err(last_errno()),
    }
}

/// `struct stat` of `fd` as the kernel writes it (`newfstatat(fd, "",
/// AT_EMPTY_PATH | at_flags)`).
pub fn stat_bytes(fd: BorrowedFd<'_>, at_flags: u32) -> Result<[u8; 144], Errno> {
    let mut buf = [0u8; 144];
    const _: () = assert!(std::mem::size_of::<libc::stat>() == 144);
    // SAFETY: the kernel writes one 144-byte `struct stat` into `buf`; the
    // path is a static empty C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr(),
            libc::AT_EMPTY_PATH | (at_flags & libc::AT_SYMLINK_NOFOLLOW.unsigned_abs()) as i32,
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(buf)
}

/// `struct statx` of `fd` (`statx(fd, "", AT_EMPTY_PATH | flags, mask)`).
pub fn statx_bytes(fd: BorrowedFd<'_>, at_flags: u32, mask: u32) -> Result<[u8; 256], Errno> {
    let mut buf = [0u8; 256];
    const _: () = assert!(std::mem::size_of::<libc::statx>() == 256);
    let keep = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_TYPE | libc::AT_NO_AUTOMOUNT;
    let flags = libc::AT_EMPTY_PATH | (at_flags & keep.unsigned_abs()) as i32;
    // SAFETY: the kernel writes one 256-byte `struct statx` into `buf`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            mask,
            buf.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(buf)
}

/// `struct statfs` of `fd`.
pub fn statfs_bytes(fd: BorrowedFd<'_>) -> Result<[u8; 120], Errno> {
    let mut buf = [0u8; 120];
    const _: () = assert!(std::mem::size_of::<libc::statfs>() == 120);
    // SAFETY: the kernel writes one 120-byte `struct statfs` into `buf`.
    let r = unsafe { libc::syscall(libc::SYS_fstatfs, fd.as_raw_fd(), buf.as_mut_ptr()) };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(buf)
}

/// A copy of the target thread's fd `n` (`pidfd_open(tid, PIDFD_THREAD)`
/// + `pidfd_getfd`).
pub fn target_fd(tid: i32, n: i32) -> Result<OwnedFd, Errno> {
    const PIDFD_THREAD: libc::c_uint = libc::O_EXCL.unsigned_abs();
    // SAFETY: integer-only syscall.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    if pidfd < 0 {
        return Err(last_errno());
    }
    let pidfd = i32::try_from(pidfd).map_err(|_| Errno::EBADF)?;
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // SAFETY: integer-only syscall on the pidfd owned above.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), n, 0u32) };
    if fd < 0 {
        return Err(last_errno());
    }
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: pidfd_getfd returned a new (close-on-exec) fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `faccessat2(fd, "", mode, AT_EMPTY_PATH | eaccess)` on an `O_PATH` fd
/// (rustix refuses `AT_EMPTY_PATH` here).
pub fn access_fd(fd: BorrowedFd<'_>, mode: u32, eaccess: bool) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH;
    if eaccess {
        flags |= libc::AT_EACCESS;
    }
    // SAFETY: the path is a static empty C string; the rest are integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            flags,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the kernel hands a
/// notification to a waiting serving thread, and the reply back, on the
/// current CPU — the target and the broker run as one synchronous pair
/// instead of two scheduler wake-ups per call. `EINVAL` on older kernels
/// (then the default asynchronous wake-up stays).
pub fn set_sync_wakeup(listener: BorrowedFd<'_>) -> Result<(), Errno> {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
    // SAFETY: integer-only ioctl (the flags word is passed by value).
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// The signal that interrupts a serving thread blocked in
/// `SECCOMP_IOCTL_NOTIF_RECV` when serving ends: `SIGURG`, ignored by
/// default, so one sent from outside changes nothing either.
const WAKE: libc::c_int = libc::SIGURG;

extern "C" fn on_wake(_: libc::c_int) {}

/// Installs a no-op `SIGURG` handler without `SA_RESTART`, so the signal
/// makes a blocked receive return `EINTR`.
pub fn install_wake_handler() -> Result<(), Errno> {
    // SAFETY: an all-zero sigaction is valid (empty mask, no flags).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_wake as *const () as usize;
    // SAFETY: installs a handler that does nothing (async-signal-safe);
    // the old action is not needed.
    let r = unsafe { libc::sigaction(WAKE, &sa, std::ptr::null_mut()) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// This thread, for [`wake`].
pub fn this_thread() -> libc::pthread_t {
    // SAFETY: no preconditions.
    unsafe { libc::pthread_self() }
}

/// Interrupts `thread`'s blocking receive. The caller guarantees the
/// thread is still running (it removes itself from the caller's list,
/// under the caller's lock, before it ends).
pub fn wake(thread: libc::pthread_t) {
    // SAFETY: `thread` is a live thread of this process (see above).
    unsafe { libc::pthread_kill(thread, WAKE) };
}
