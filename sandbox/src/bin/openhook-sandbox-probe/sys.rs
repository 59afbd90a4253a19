//! The probe's attempted actions: raw syscalls, one per escape route.
//!
//! Actions: open, openat, openat2, creat, io_uring, execve, ptrace (ARG pid),
//! process_vm_readv, tcp (ARG port on 127.0.0.1), abstract (ARG socket
//! name), kill-parent, mount (ARG dir), unshare, bpf, open_by_handle_at,
//! name_to_handle_at, setuid0, raise-cap, status-wait, thread-then-enter.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::Read;

type R = Result<(), i32>;

const CAP_SYS_ADMIN: u32 = 21;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn ret(r: libc::c_long) -> R {
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Data prepared before confinement.
#[derive(Default)]
pub struct Prepared {
    path: Option<CString>,
    handle: Vec<u8>,
    mount_fd: i32,
}

/// RLIMIT_CORE = 0 so SIGSYS kills leave no core files.
pub fn no_core_dumps() {
    let lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads one live local.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) };
}

pub fn prepare(action: &str, arg: &str) -> Result<Prepared, String> {
    let mut p = Prepared {
        path: CString::new(arg).ok(),
        ..Default::default()
    };
    match action {
        "open_by_handle_at" => {
            let path = p.path.clone().ok_or("path")?;
            // struct file_handle: u32 handle_bytes, i32 handle_type, bytes.
            let mut buf = vec![0u8; 8 + 128];
            buf[..4].copy_from_slice(&128u32.to_ne_bytes());
            let mut mount_id: libc::c_int = 0;
            // SAFETY: buf holds a file_handle with room for 128 bytes.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_name_to_handle_at,
                    libc::AT_FDCWD,
                    path.as_ptr(),
                    buf.as_mut_ptr(),
                    &mut mount_id,
                    0,
                )
            };
            if r < 0 {
                return Err(format!("name_to_handle_at: errno {}", errno()));
            }
            p.handle = buf;
            // A directory fd on the same mount (O_PATH is refused as mount_fd).
            let dir = std::path::Path::new(arg).parent().ok_or("parent")?;
            let dir = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| "nul")?;
            // SAFETY: `dir` is a live C string; the fd is kept for the action.
            p.mount_fd = unsafe { libc::open(dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
            if p.mount_fd < 0 {
                return Err(format!("open /: errno {}", errno()));
            }
        }
        "raise-cap" => {
            // Lower CAP_SYS_ADMIN from the effective set, keep it permitted:
            // the action then tries to raise it again.
            let (mut hdr, mut data) = cap_get()?;
            data[0].effective &= !(1 << CAP_SYS_ADMIN);
            cap_set(&mut hdr, &data).map_err(|e| format!("capset: errno {e}"))?;
        }
        "thread-then-enter" => {
            std::thread::spawn(|| loop {
                std::thread::park();
            });
        }
        _ => {}
    }
    Ok(p)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn cap_get() -> Result<(CapHeader, [CapData; 2]), String> {
    let mut hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget v3 fills two records of a live local array.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if r < 0 {
        return Err(format!("capget: errno {}", errno()));
    }
    Ok((hdr, data))
}

fn cap_set(hdr: &mut CapHeader, data: &[CapData; 2]) -> R {
    // SAFETY: capset v3 reads a header and two records from live locals.
    ret(unsafe { libc::syscall(libc::SYS_capset, hdr as *mut CapHeader, data.as_ptr()) })
}

fn sockaddr_un(name: &[u8], abstract_ns: bool) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: all-zero sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::sa_family_t::try_from(libc::AF_UNIX).unwrap_or(1);
    let off = usize::from(abstract_ns);
    for (i, b) in name.iter().enumerate().take(100) {
        sa.sun_path[i + off] = libc::c_char::from_ne_bytes([*b]);
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + off + name.len().min(100);
    (sa, libc::socklen_t::try_from(len).unwrap_or(0))
}

pub fn act(action: &str, arg: &str, p: &Prepared) -> R {
    let path = || p.path.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    match action {
        // SAFETY: path is null or a live C string owned by `p`.
        "open" => ret(unsafe { libc::syscall(libc::SYS_open, path(), libc::O_RDONLY) }),
        "openat" => {
            // SAFETY: path is null or a live C string owned by `p`.
            ret(unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path(), libc::O_RDONLY) })
        }
        "openat2" => {
            let how = [u64::try_from(libc::O_RDONLY).unwrap_or(0), 0u64, 0u64];
            // SAFETY: open_how is three u64s, passed with its size.
            ret(unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    libc::AT_FDCWD,
                    path(),
                    how.as_ptr(),
                    24usize,
                )
            })
        }
        "stat" => {
            // SAFETY: all-zero struct stat is a valid out-parameter.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: path is a live C string, `st` a live out-parameter.
            ret(unsafe { libc::syscall(libc::SYS_stat, path(), &mut st) })
        }
        // SAFETY: path is a live C string.
        "creat" => ret(unsafe { libc::syscall(libc::SYS_creat, path(), 0o600) }),
        "name_to_handle_at" => {
            let mut buf = vec![0u8; 8 + 128];
            buf[..4].copy_from_slice(&128u32.to_ne_bytes());
            let mut mount_id: libc::c_int = 0;
            // SAFETY: buf holds a file_handle with room for 128 bytes.
            ret(unsafe {
                libc::syscall(
                    libc::SYS_name_to_handle_at,
                    libc::AT_FDCWD,
                    path(),
                    buf.as_mut_ptr(),
                    &mut mount_id,
                    0,
                )
            })
        }
        "open_by_handle_at" => {
            // SAFETY: handle buffer and mount fd prepared before entry.
            ret(unsafe {
                libc::syscall(
                    libc::SYS_open_by_handle_at,
                    p.mount_fd,
                    p.handle.as_ptr(),
                    libc::O_RDONLY,
                )
            })
        }
        "io_uring" => io_uring_openat(p.path.as_ref().ok_or(libc::EINVAL)?),
        "execve" => {
            let prog = c"/bin/echo";
            let argv = [prog.as_ptr(), c"ok".as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null::<libc::c_char>()];
            // SAFETY: NULL-terminated argv/envp arrays of live C strings.
            ret(unsafe {
                libc::syscall(
                    libc::SYS_execve,
                    prog.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                )
            })
        }
        "ptrace" => {
            let pid: libc::pid_t = arg.parse().map_err(|_| libc::EINVAL)?;
            // SAFETY: integer-only request.
            ret(unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_SEIZE, pid, 0, 0) })
        }
        "process_vm_readv" => {
            let src = [0x5au8; 16];
            let mut dst = [0u8; 16];
            let local = libc::iovec {
                iov_base: dst.as_mut_ptr().cast(),
                iov_len: 16,
            };
            let remote = libc::iovec {
                iov_base: src.as_ptr() as *mut libc::c_void,
                iov_len: 16,
            };
            let pid = libc::c_long::from(std::process::id());
            // Every argument is passed as a full 64-bit word: the sixth
            // (`flags`) goes on the stack, where an `i32` literal leaves the
            // upper half of its slot undefined and the kernel then refuses
            // the call with EINVAL.
            let one: libc::c_ulong = 1;
            let flags: libc::c_ulong = 0;
            // SAFETY: both iovecs describe live 16-byte buffers of this process.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_process_vm_readv,
                    pid,
                    &local as *const libc::iovec,
                    one,
                    &remote as *const libc::iovec,
                    one,
                    flags,
                )
            };
            ret(r)?;
            if dst == src {
                Ok(())
            } else {
                Err(libc::EIO)
            }
        }
        "tcp" => {
            let port: u16 = arg.parse().map_err(|_| libc::EINVAL)?;
            // SAFETY: integer-only syscall.
            let fd =
                unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
            ret(fd)?;
            // SAFETY: all-zero sockaddr_in is valid.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(2);
            sa.sin_port = port.to_be();
            sa.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>();
            // SAFETY: sa is a live sockaddr_in of `len` bytes.
            ret(unsafe { libc::syscall(libc::SYS_connect, fd, &sa, len) })
        }
        "abstract" => {
            // SAFETY: integer-only syscall.
            let fd =
                unsafe { libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0) };
            ret(fd)?;
            let (sa, len) = sockaddr_un(arg.as_bytes(), true);
            // SAFETY: sa is a live sockaddr_un of `len` bytes.
            ret(unsafe { libc::syscall(libc::SYS_connect, fd, &sa, len) })
        }
        "kill-parent" => {
            let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
            // SAFETY: integer-only syscall; SIGCONT to a running process is harmless.
            ret(unsafe { libc::syscall(libc::SYS_kill, ppid, libc::SIGCONT) })
        }
        "mount" => {
            // SAFETY: path is a live C string; a bind of a directory onto
            // itself, detached again right away.
            ret(unsafe {
                libc::syscall(
                    libc::SYS_mount,
                    path(),
                    path(),
                    std::ptr::null::<libc::c_char>(),
                    libc::MS_BIND,
                    std::ptr::null::<libc::c_void>(),
                )
            })?;
            // SAFETY: path is a live C string.
            ret(unsafe { libc::syscall(libc::SYS_umount2, path(), libc::MNT_DETACH) })
        }
        // SAFETY: integer-only syscall; affects only this process.
        "unshare" => ret(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS) }),
        "bpf" => {
            // union bpf_attr for BPF_MAP_CREATE: map_type, key_size,
            // value_size, max_entries (then zeros).
            let mut attr = [0u32; 32];
            attr[0] = 2; // BPF_MAP_TYPE_ARRAY
            attr[1] = 4;
            attr[2] = 4;
            attr[3] = 1;
            // SAFETY: attr is a live, zero-padded bpf_attr of the given size.
            ret(unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), 128usize) })
        }
        // SAFETY: integer-only syscall.
        "setuid0" => ret(unsafe { libc::syscall(libc::SYS_setuid, 0) }),
        "raise-cap" => {
            let (mut hdr, mut data) = cap_get().map_err(|_| libc::EIO)?;
            data[0].effective |= 1 << CAP_SYS_ADMIN;
            cap_set(&mut hdr, &data)
        }
        "status-wait" => {
            println!("ready");
            let mut buf = [0u8; 1];
            let _ = std::io::stdin().read(&mut buf);
            Ok(())
        }
        "thread-then-enter" | "nothing" => Ok(()),
        _ => Err(libc::ENOSYS),
    }
}

/// io_uring_setup, then one IORING_OP_OPENAT through the ring; `Ok` when
/// the completion carries an fd.
fn io_uring_openat(path: &CString) -> R {
    // struct io_uring_params: 120 bytes; offsets below from linux/io_uring.h.
    let mut params = [0u32; 30];
    // SAFETY: params is a live, zeroed io_uring_params.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    ret(fd)?;
    let fd = i32::try_from(fd).map_err(|_| libc::EIO)?;
    let sq_entries = params[0] as usize;
    let cq_entries = params[1] as usize;
    // sq_off at byte 40: head, tail, ring_mask, ring_entries, flags, dropped, array
    let sq = |i: usize| params[10 + i] as usize;
    // cq_off at byte 80: head, tail, ring_mask, ring_entries, overflow, cqes
    let cq = |i: usize| params[20 + i] as usize;
    let ring_len = (sq(6) + sq_entries * 4).max(cq(5) + cq_entries * 16);
    let map = |len: usize, off: i64| {
        // SAFETY: maps the ring region of the io_uring fd.
        unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                off,
            )
        }
    };
    let ring = map(ring_len, 0);
    let sqes = map(sq_entries * 64, 0x1000_0000);
    if ring == libc::MAP_FAILED || sqes == libc::MAP_FAILED {
        return Err(errno());
    }
    let ring = ring.cast::<u8>();
    let at = |off: usize| -> *mut u32 {
        // SAFETY: offsets come from the kernel's params and lie within the ring.
        unsafe { ring.add(off).cast::<u32>() }
    };
    let sqe = sqes.cast::<u8>();
    let mut e = [0u8; 64];
    e[0] = 18; // IORING_OP_OPENAT
    e[4..8].copy_from_slice(&libc::AT_FDCWD.to_ne_bytes());
    e[16..24].copy_from_slice(&(path.as_ptr() as u64).to_ne_bytes());
    e[28..32].copy_from_slice(&u32::try_from(libc::O_RDONLY).unwrap_or(0).to_ne_bytes());
    // SAFETY: the SQE array holds at least one 64-byte entry.
    unsafe { std::ptr::copy_nonoverlapping(e.as_ptr(), sqe, 64) };
    // SAFETY: array slot 0 of the SQ ring.
    unsafe { at(sq(6)).write_volatile(0) };
    // SAFETY: SQ tail; the kernel reads it after io_uring_enter.
    unsafe { at(sq(1)).write_volatile(1) };
    // SAFETY: integer-only syscall on the ring fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            1u32,
            1u32,
            1u32,
            0usize,
            0usize,
        )
    };
    ret(r)?;
    // SAFETY: first CQE: u64 user_data, i32 res.
    let res = unsafe { at(cq(5) + 8).read_volatile() } as i32;
    if res >= 0 {
        Ok(())
    } else {
        Err(-res)
    }
}

/// Opens `/dev/null` without close-on-exec and returns the fd: an fd the
/// parent holds that a careless exec would pass on.
pub fn leak_fd() -> i32 {
    // SAFETY: static path; the fd is deliberately left open and inheritable.
    unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) }
}

/// `dup2(from, to)` without close-on-exec (a declared fd).
pub fn declare_fd(from: i32, to: i32) -> i32 {
    // SAFETY: integer-only syscall.
    unsafe { libc::dup2(from, to) }
}

/// Spawns `cmd` with the sandbox's pre-exec steps in the child.
pub fn spawn_hardened(
    cmd: &mut std::process::Command,
    pre: std::sync::Arc<openhook_sandbox::PreExec>,
) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls
    // `apply_in_child`, which is async-signal-safe (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            pre.apply_in_child()
                .map_err(|e| std::io::Error::from_raw_os_error(e.errno.raw_os_error()))
        })
    };
    cmd.spawn()
}
