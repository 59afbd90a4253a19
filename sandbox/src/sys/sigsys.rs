//! The SIGSYS handler of the `trap` debugging mode: prints the refused
//! syscall's number to stderr and makes the call return `-ENOSYS`, so one
//! run lists every missing syscall instead of dying at the first.
#![allow(unsafe_code)]

use rustix::io::Errno;

/// The start of `siginfo_t` as the kernel fills it for a seccomp SIGSYS
/// (`_sigsys` member of the union, x86_64 layout).
#[repr(C)]
#[allow(dead_code)] // mirrors the kernel layout; only `syscall` is read
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: usize,
    syscall: i32,
    arch: u32,
}

/// Formats `n` into `buf` and returns the digits (async-signal-safe).
fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    &buf[i..]
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: write(2) on fd 2 from a live slice; async-signal-safe.
    let _ = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; for
    // SIGSYS its layout starts like `SigsysInfo`.
    let nr = unsafe { (*info.cast::<SigsysInfo>()).syscall };
    let mut buf = [0u8; 20];
    write_stderr(b"openhook-sandbox: seccomp refused syscall ");
    write_stderr(fmt_u64(u64::from(nr.unsigned_abs()), &mut buf));
    write_stderr(b" (trap mode: returning ENOSYS)\n");
    let uc = ctx.cast::<libc::ucontext_t>();
    let rax = usize::try_from(libc::REG_RAX).unwrap_or(13);
    // SAFETY: `ctx` is the live ucontext the kernel saved for this signal;
    // writing RAX sets the interrupted syscall's return value on sigreturn.
    unsafe { (*uc).uc_mcontext.gregs[rax] = -i64::from(libc::ENOSYS) };
}

/// Installs the SIGSYS handler for the calling process.
pub fn install_handler() -> Result<(), Errno> {
    // SAFETY: an all-zero sigaction is a valid starting value.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_sigsys;
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: installs a handler that only calls async-signal-safe write(2)
    // and edits its own ucontext; `sa` is a live local.
    let r = unsafe { libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) };
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    }
}
