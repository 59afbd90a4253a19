//! The only place in this crate with `unsafe`: thin wrappers over syscalls
//! that neither rustix nor the caps/landlock/seccompiler crates expose in
//! the form we need (async-signal-safe, or raw for a pre-built program).
//! Inventory in `docs/sandbox.md`.

pub mod child;
pub mod probe;
pub mod seccomp;
pub mod sigsys;
pub mod user;
