//! Syscall and ioctl lists: what a Rust std + KVM VMM needs, grouped by
//! concern, plus the lists that must never be allowed.
//!
//! Modules of the emulator export their own needs the same way
//! (`pub const SYSCALLS: &[i64]`, `pub const IOCTLS: &[u64]`) and hand them to
//! [`crate::Needs`]; `assemble.rs` builds one allow list per thread kind.
//! Syscalls that take arguments worth filtering (`ioctl`, `socket`, `clone`,
//! `mmap`, …) are listed in [`ARG_FILTERED`] and get their conditions in
//! `assemble.rs`; everything else here is allowed unconditionally.
#![forbid(unsafe_code)]

use libc::*;

/// The Rust std / glibc runtime of any thread: memory, futexes, signals,
/// time, thread exit. Needed by every thread kind.
pub const RUNTIME: &[i64] = &[
    SYS_brk,
    SYS_mmap, // PROT_EXEC refused in assemble.rs
    SYS_munmap,
    SYS_mprotect, // PROT_EXEC refused in assemble.rs
    SYS_madvise,
    SYS_mremap,
    SYS_futex,
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_sigaltstack,
    SYS_restart_syscall,
    SYS_exit,
    SYS_exit_group,
    SYS_getrandom,
    SYS_clock_gettime,
    SYS_clock_getres,
    SYS_gettimeofday,
    SYS_nanosleep,
    SYS_clock_nanosleep,
    SYS_sched_yield,
    SYS_sched_getaffinity,
    SYS_gettid,
    SYS_getpid,
    SYS_getuid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getegid,
    SYS_rseq,
    SYS_set_robust_list,
    SYS_set_tid_address,
    SYS_prlimit64, // read by glibc for stack sizes; raising a hard limit needs a capability
    SYS_tgkill,    // own process only: assemble.rs pins the tgid
    SYS_kill,      // own process only: assemble.rs pins the pid
    SYS_prctl,     // PR_SET_NAME / PR_GET_NAME only
    SYS_write,     // stderr diagnostics, eventfd signalling
    SYS_read,
    SYS_close,
];

/// File-descriptor I/O on fds the process already holds (hook fd, declared
/// fds, fds received over SCM_RIGHTS). None of these takes a path.
pub const FD_IO: &[i64] = &[
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_preadv,
    SYS_pwritev,
    SYS_preadv2,
    SYS_pwritev2,
    SYS_lseek,
    SYS_fcntl,
    SYS_fstat,
    SYS_newfstatat, // AT_EMPTY_PATH only (glibc's fstat); see assemble.rs
    SYS_fsync,
    SYS_fdatasync,
    SYS_fallocate,
    SYS_ftruncate,
    SYS_dup,
    SYS_dup3,
    SYS_pipe2,
    SYS_close_range,
    SYS_ioctl, // request numbers filtered in assemble.rs
];

/// Event loops, timers, eventfds.
pub const EVENTS: &[i64] = &[
    SYS_poll,
    SYS_ppoll,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_wait,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_eventfd2,
    SYS_timerfd_create,
    SYS_timerfd_settime,
    SYS_timerfd_gettime,
];

/// Unix-domain sockets the process holds (monitor, hook). `socket` and
/// `socketpair` are limited to AF_UNIX in assemble.rs; there is no
/// `connect` and no `bind`: every socket arrives ready-made.
pub const UNIX_SOCKETS: &[i64] = &[
    SYS_socket,
    SYS_socketpair,
    SYS_recvmsg,
    SYS_sendmsg,
    SYS_recvfrom,
    SYS_sendto,
    SYS_accept4,
    SYS_listen,
    SYS_getsockopt,
    SYS_setsockopt,
    SYS_getsockname,
    SYS_getpeername,
    SYS_shutdown,
];

/// Thread creation (main thread only; flags checked in assemble.rs) and the
/// `seccomp` call a new thread uses to narrow its own filter.
pub const THREADS: &[i64] = &[SYS_clone, SYS_seccomp];

/// What the broker needs once serving on top of the `Main` lists: the
/// resolver (`openat2`, the one open-family call it keeps) and reaping /
/// taking signals synchronously in the main thread.
pub const BROKER: &[i64] = &[
    SYS_openat2,
    SYS_wait4,
    SYS_waitid,
    SYS_rt_sigtimedwait,
    SYS_fstatfs,
];

/// What the broker needs on top of [`BROKER`] to serve a transparent-mode
/// child's seccomp listener: the target's memory (`process_vm_*`: paths in,
/// stat results out), copies of its fds (`pidfd_*`), its cwd and dirfd
/// paths (`readlinkat` on `/proc/<tid>/...`), `statx` on an `O_PATH` fd,
/// and `bind`/`connect` of a copy of its socket to a policy-allowed path.
/// These are on the kill list of every other kind.
pub const TRANSPARENT_BROKER: &[i64] = &[
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_pidfd_open,
    SYS_pidfd_getfd,
    SYS_readlinkat,
    SYS_statx,
    SYS_faccessat2,
    SYS_bind,
    SYS_connect,
];

/// Syscalls whose allowance depends on their arguments; assemble.rs must have
/// a condition for each one of these that appears in an allow list.
pub const ARG_FILTERED: &[i64] = &[
    SYS_ioctl,
    SYS_socket,
    SYS_socketpair,
    SYS_clone,
    SYS_mmap,
    SYS_mprotect,
    SYS_prctl,
    SYS_kill,
    SYS_tgkill,
    SYS_newfstatat,
    SYS_seccomp,
];

/// Everything that opens a path or a handle: answered with EACCES (so that
/// std and glibc, which open `/proc/self/maps` or `/dev/urandom` behind your
/// back, get an error instead of a kill). Never in an allow list.
pub const OPEN_FAMILY: &[i64] = &[
    SYS_open,
    SYS_openat,
    SYS_openat2,
    SYS_creat,
    SYS_open_by_handle_at,
    SYS_name_to_handle_at,
];

/// Other calls that take a path: answered with EACCES like the open family
/// (std's `Path::exists`, `current_exe` and friends fail soft instead of
/// killing the process; `stat`/`access` cannot probe for existence).
/// Never in an allow list.
pub const PATH_FAMILY: &[i64] = &[
    SYS_stat,
    SYS_lstat,
    SYS_access,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_readlink,
    SYS_readlinkat,
    SYS_statfs,
    SYS_truncate,
    SYS_chdir,
    SYS_mkdir,
    SYS_mkdirat,
    SYS_rmdir,
    SYS_unlink,
    SYS_unlinkat,
    SYS_rename,
    SYS_renameat,
    SYS_renameat2,
    SYS_link,
    SYS_linkat,
    SYS_symlink,
    SYS_symlinkat,
    SYS_chmod,
    SYS_fchmodat,
    SYS_chown,
    SYS_lchown,
    SYS_fchownat,
    SYS_utimensat,
    SYS_mknod,
    SYS_mknodat,
    SYS_getxattr,
    SYS_lgetxattr,
    SYS_setxattr,
    SYS_lsetxattr,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_removexattr,
    SYS_lremovexattr,
    SYS_inotify_add_watch,
];

/// Answered with ENOSYS so that the caller falls back to a filterable form:
/// glibc's `pthread_create` retries `clone3` as `clone` (whose flags seccomp
/// can see); Rust std's `statx` falls back to `fstat`.
pub const ENOSYS_FAMILY: &[i64] = &[SYS_clone3, SYS_statx];

/// Syscalls that must kill the process. Nothing here may ever appear in an
/// allow list (a unit test checks); the kill itself comes from the allow
/// list's default action, this list documents intent and feeds the tests.
pub const KILL: &[i64] = &[
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_execve,
    SYS_execveat,
    SYS_ptrace,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_move_mount,
    SYS_open_tree,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
    SYS_mount_setattr,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_keyctl,
    SYS_add_key,
    SYS_request_key,
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_unshare,
    SYS_setns,
    SYS_userfaultfd,
    SYS_connect,
    SYS_bind,
    SYS_setuid,
    SYS_setgid,
    SYS_setreuid,
    SYS_setresuid,
    SYS_setgroups,
    SYS_capset,
    SYS_chroot,
    SYS_fork,
    SYS_vfork,
    SYS_pidfd_open,
    SYS_pidfd_getfd,
    SYS_memfd_secret,
    SYS_landlock_create_ruleset,
    SYS_landlock_add_rule,
    SYS_landlock_restrict_self,
];

/// Terminal ioctls std and a serial console use: `isatty`, raw mode, window
/// size, non-blocking and close-on-exec toggles. Deliberately absent:
/// `TIOCSTI` (type into the controlling terminal), `TIOCSETD`, `TIOCCONS`.
pub const TERMINAL_IOCTLS: &[u64] = &[
    TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, FIONBIO, FIOCLEX, FIONCLEX,
];
