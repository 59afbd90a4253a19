//! Seccomp layer: per-thread allow lists assembled from syscall lists
//! (`lists.rs`, plus what the emulator's modules export), compiled with
//! seccompiler and loaded on the calling thread (`install.rs`).

pub mod assemble;
pub mod install;
pub mod lists;

pub use assemble::{AllowList, DefaultAction, Needs, ThreadKind};
pub use install::ThreadFilter;
