//! Transparent mode, target side: the seccomp filter that turns an
//! unmodified program's path syscalls into user notifications for the
//! broker (`filter`), and the ELF interpreter its exec needs (`elf`).
//! The child installs the filter last, after Landlock, and hands the
//! listener fd to the broker before `execve` ([`crate::PreExec::transparent`]).
//! What each syscall gets is listed in `docs/transparent.md`.

pub mod elf;
pub mod filter;

pub use filter::{syscall_name, target_program, Verdict, NOTIFIED, REFUSED};
