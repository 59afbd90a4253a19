//! The seccomp door (transparent mode): an unmodified program's path
//! syscalls arrive as user notifications on the listener its filter
//! created (`openhook_sandbox::notify`); each is decoded (`call`), its
//! path read from the target and made absolute (`path`), judged by the same
//! [`crate::judge::Judge`] as the hook door, performed by the broker and
//! answered — an fd injected with `SECCOMP_IOCTL_NOTIF_ADDFD` +
//! `SECCOMP_ADDFD_FLAG_SEND`, a stat written back, or an errno. Never
//! `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the target could change its memory
//! between the broker's read and the kernel's.
//!
//! `docs/transparent.md` lists what each syscall gets.

pub mod call;
pub mod path;
mod serve;
mod sys;

pub use serve::serve;
