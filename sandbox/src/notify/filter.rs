//! The target's seccomp program (pure: no syscalls). Assembled by hand
//! because seccompiler 0.5 has no user-notification action; the program is
//! small and linear:
//!
//! 1. any architecture but x86-64 (the i386 `int 0x80` entry) → kill;
//! 2. any number with the x32 bit (`nr ≥ 0x40000000`) → kill;
//! 3. the syscalls of [`NOTIFIED`] → `SECCOMP_RET_USER_NOTIF` (the broker
//!    decides and performs them);
//! 4. the syscalls of [`REFUSED`] → their errno;
//! 5. `seccomp(SET_MODE_FILTER)` with `NEW_LISTENER` → `EPERM` (a later
//!    listener would take precedence over the broker's);
//! 6. `utimensat` with a path → `EPERM` (`futimens` keeps working);
//! 7. everything else → allow (Landlock and the broker cover paths).
#![forbid(unsafe_code)]

use libc::sock_filter;

/// What the filter answers for a syscall number (for tests and docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sent to the broker.
    Notify,
    /// Fails with this errno.
    Errno(i32),
}

/// Syscalls the broker serves, with their names (the audit log's `syscall`).
pub const NOTIFIED: &[(i64, &str)] = &[
    (libc::SYS_open, "open"),
    (libc::SYS_openat, "openat"),
    (libc::SYS_openat2, "openat2"),
    (libc::SYS_creat, "creat"),
    (libc::SYS_stat, "stat"),
    (libc::SYS_lstat, "lstat"),
    (libc::SYS_newfstatat, "newfstatat"),
    (libc::SYS_statx, "statx"),
    (libc::SYS_access, "access"),
    (libc::SYS_faccessat, "faccessat"),
    (libc::SYS_faccessat2, "faccessat2"),
    (libc::SYS_readlink, "readlink"),
    (libc::SYS_readlinkat, "readlinkat"),
    (libc::SYS_statfs, "statfs"),
    (libc::SYS_bind, "bind"),
    (libc::SYS_connect, "connect"),
];

// Newer syscalls the libc crate may not name yet (x86-64 numbers).
const SYS_FCHMODAT2: i64 = 452;
const SYS_STATMOUNT: i64 = 457;
const SYS_LISTMOUNT: i64 = 458;
const SYS_SETXATTRAT: i64 = 463;
const SYS_GETXATTRAT: i64 = 464;
const SYS_LISTXATTRAT: i64 = 465;
const SYS_REMOVEXATTRAT: i64 = 466;
const SYS_OPEN_TREE_ATTR: i64 = 467;

/// Syscalls refused outright, with the errno the program sees.
pub const REFUSED: &[(i64, i32)] = &[
    // Opening by handle walks no path: nothing to check it against.
    (libc::SYS_open_by_handle_at, libc::EPERM),
    (libc::SYS_name_to_handle_at, libc::EPERM),
    // io_uring's IORING_OP_OPENAT never passes seccomp. ENOSYS: liburing
    // users (glib, QEMU) fall back to plain syscalls.
    (libc::SYS_io_uring_setup, libc::ENOSYS),
    (libc::SYS_io_uring_enter, libc::ENOSYS),
    (libc::SYS_io_uring_register, libc::ENOSYS),
    // The mount API and root changes.
    (libc::SYS_mount, libc::EPERM),
    (libc::SYS_umount2, libc::EPERM),
    (libc::SYS_fsopen, libc::EPERM),
    (libc::SYS_fsconfig, libc::EPERM),
    (libc::SYS_fsmount, libc::EPERM),
    (libc::SYS_fspick, libc::EPERM),
    (libc::SYS_move_mount, libc::EPERM),
    (libc::SYS_open_tree, libc::EPERM),
    (SYS_OPEN_TREE_ATTR, libc::EPERM),
    (libc::SYS_mount_setattr, libc::EPERM),
    (SYS_STATMOUNT, libc::EPERM),
    (SYS_LISTMOUNT, libc::EPERM),
    (libc::SYS_chroot, libc::EPERM),
    (libc::SYS_pivot_root, libc::EPERM),
    // Reaching into other processes (the broker among them).
    (libc::SYS_ptrace, libc::EPERM),
    (libc::SYS_process_vm_readv, libc::EPERM),
    (libc::SYS_process_vm_writev, libc::EPERM),
    // Path syscalls Landlock does not cover and the broker does not serve.
    (libc::SYS_chdir, libc::EACCES),
    (libc::SYS_chmod, libc::EPERM),
    (libc::SYS_fchmodat, libc::EPERM),
    (SYS_FCHMODAT2, libc::EPERM),
    (libc::SYS_chown, libc::EPERM),
    (libc::SYS_lchown, libc::EPERM),
    (libc::SYS_fchownat, libc::EPERM),
    (libc::SYS_utime, libc::EPERM),
    (libc::SYS_utimes, libc::EPERM),
    (libc::SYS_futimesat, libc::EPERM),
    (libc::SYS_inotify_add_watch, libc::EACCES),
    (libc::SYS_fanotify_mark, libc::EPERM),
    (libc::SYS_uselib, libc::EPERM),
    (libc::SYS_swapon, libc::EPERM),
    (libc::SYS_swapoff, libc::EPERM),
    (libc::SYS_acct, libc::EPERM),
    (libc::SYS_quotactl, libc::EPERM),
    // Extended attributes by path: "not supported" is what a program
    // expects from a filesystem without them. By fd they keep working.
    (libc::SYS_getxattr, libc::EOPNOTSUPP),
    (libc::SYS_lgetxattr, libc::EOPNOTSUPP),
    (libc::SYS_listxattr, libc::EOPNOTSUPP),
    (libc::SYS_llistxattr, libc::EOPNOTSUPP),
    (libc::SYS_setxattr, libc::EOPNOTSUPP),
    (libc::SYS_lsetxattr, libc::EOPNOTSUPP),
    (libc::SYS_removexattr, libc::EOPNOTSUPP),
    (libc::SYS_lremovexattr, libc::EOPNOTSUPP),
    (SYS_SETXATTRAT, libc::EOPNOTSUPP),
    (SYS_GETXATTRAT, libc::EOPNOTSUPP),
    (SYS_LISTXATTRAT, libc::EOPNOTSUPP),
    (SYS_REMOVEXATTRAT, libc::EOPNOTSUPP),
];

/// The name of a notified syscall (`"?"` for any other number).
pub fn syscall_name(nr: i64) -> &'static str {
    NOTIFIED
        .iter()
        .find(|&&(n, _)| n == nr)
        .map_or("?", |&(_, name)| name)
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const SECCOMP_SET_MODE_FILTER: u32 = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn off_arg_hi(i: u32) -> u32 {
    off_arg_lo(i) + 4
}

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn errno_ret(errno: i32) -> u32 {
    RET_ERRNO | (u32::try_from(errno).unwrap_or(1) & 0xffff)
}

fn nr(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The whole program, in the order of the module docs.
pub fn target_program() -> Vec<sock_filter> {
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, RET_KILL_PROCESS),
    ];
    let entries = NOTIFIED
        .iter()
        .map(|&(n, _)| (n, RET_USER_NOTIF))
        .chain(REFUSED.iter().map(|&(n, e)| (n, errno_ret(e))));
    for (n, ret) in entries {
        p.push(jump(JEQ_K, nr(n), 0, 1));
        p.push(stmt(RET_K, ret));
    }
    // seccomp(op, flags, args): op == SET_MODE_FILTER && flags & NEW_LISTENER.
    p.extend([
        jump(JEQ_K, nr(libc::SYS_seccomp), 0, 6),
        stmt(LD_W_ABS, off_arg_lo(0)),
        jump(JEQ_K, SECCOMP_SET_MODE_FILTER, 0, 2),
        stmt(LD_W_ABS, off_arg_lo(1)),
        jump(JSET_K, SECCOMP_FILTER_FLAG_NEW_LISTENER, 1, 0),
        stmt(RET_K, RET_ALLOW),
        stmt(RET_K, errno_ret(libc::EPERM)),
    ]);
    // utimensat(dirfd, path, times, flags): allowed only with path == NULL.
    p.extend([
        stmt(LD_W_ABS, OFF_NR),
        jump(JEQ_K, nr(libc::SYS_utimensat), 0, 5),
        stmt(LD_W_ABS, off_arg_lo(1)),
        jump(JEQ_K, 0, 0, 2),
        stmt(LD_W_ABS, off_arg_hi(1)),
        jump(JEQ_K, 0, 1, 0),
        stmt(RET_K, errno_ret(libc::EPERM)),
        stmt(RET_K, RET_ALLOW),
    ]);
    p
}

#[cfg(test)]
mod tests {
    //! A small classic-BPF interpreter runs the program on synthetic
    //! `seccomp_data`, so every verdict is checked without loading it.
    use super::*;

    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                LD_W_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().expect("4 bytes"));
                }
                RET_K => return ins.k,
                JEQ_K | JGE_K | JSET_K => {
                    let taken = match ins.code {
                        JEQ_K => acc == ins.k,
                        JGE_K => acc >= ins.k,
                        _ => acc & ins.k != 0,
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn verdict(nr: i64, args: [u64; 6]) -> u32 {
        run(&target_program(), AUDIT_ARCH_X86_64, super::nr(nr), args)
    }

    #[test]
    fn every_listed_syscall_gets_its_verdict() {
        for &(n, _) in NOTIFIED {
            assert_eq!(verdict(n, [0; 6]), RET_USER_NOTIF, "nr {n}");
        }
        for &(n, e) in REFUSED {
            assert_eq!(verdict(n, [0; 6]), errno_ret(e), "nr {n}");
        }
        for n in [
            libc::SYS_read,
            libc::SYS_ioctl,
            libc::SYS_mmap,
            libc::SYS_fstat,
        ] {
            assert_eq!(verdict(n, [0; 6]), RET_ALLOW, "nr {n}");
        }
    }

    #[test]
    fn other_abis_are_killed() {
        let prog = target_program();
        // i386: AUDIT_ARCH_I386, openat's i386 number (295).
        assert_eq!(run(&prog, 0x4000_0003, 295, [0; 6]), RET_KILL_PROCESS);
        // x32 openat: 257 | 0x40000000.
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, 257 | X32_SYSCALL_BIT, [0; 6]),
            RET_KILL_PROCESS
        );
    }

    #[test]
    fn only_listener_filters_are_refused() {
        let set = u64::from(SECCOMP_SET_MODE_FILTER);
        let listener = u64::from(SECCOMP_FILTER_FLAG_NEW_LISTENER);
        assert_eq!(
            verdict(libc::SYS_seccomp, [set, listener, 0, 0, 0, 0]),
            errno_ret(libc::EPERM)
        );
        assert_eq!(
            verdict(libc::SYS_seccomp, [set, listener | 1, 0, 0, 0, 0]),
            errno_ret(libc::EPERM)
        );
        assert_eq!(verdict(libc::SYS_seccomp, [set, 0, 0, 0, 0, 0]), RET_ALLOW);
        // SECCOMP_GET_ACTION_AVAIL (2) with the bit set in an unrelated word.
        assert_eq!(
            verdict(libc::SYS_seccomp, [2, listener, 0, 0, 0, 0]),
            RET_ALLOW
        );
    }

    #[test]
    fn utimensat_only_on_fds() {
        assert_eq!(verdict(libc::SYS_utimensat, [3, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            verdict(libc::SYS_utimensat, [3, 0x7fff_0000, 0, 0, 0, 0]),
            errno_ret(libc::EPERM)
        );
        assert_eq!(
            verdict(libc::SYS_utimensat, [3, 1 << 32, 0, 0, 0, 0]),
            errno_ret(libc::EPERM)
        );
    }

    #[test]
    fn program_fits_the_kernel_limit_and_names_are_unique() {
        assert!(target_program().len() < 4096);
        let mut nrs: Vec<i64> = NOTIFIED.iter().map(|&(n, _)| n).collect();
        nrs.extend(REFUSED.iter().map(|&(n, _)| n));
        let before = nrs.len();
        nrs.sort_unstable();
        nrs.dedup();
        assert_eq!(nrs.len(), before, "a syscall listed twice");
        assert_eq!(syscall_name(libc::SYS_openat), "openat");
        assert_eq!(syscall_name(libc::SYS_read), "?");
    }
}
