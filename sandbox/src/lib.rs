//! openhook-sandbox: layered confinement (pre-exec hardening, capabilities,
//! Landlock, seccomp) in a fixed order (docs/sandbox.md).
//!
//! - [`enter`] — the emulator's full confinement, at the top of `main`.
//! - [`PreExec`] — prepared in the broker before fork, applied in the child
//!   with [`PreExec::apply_in_child`] (async-signal-safe).
//! - [`report`] — what this kernel offers, for `openhook-broker check --sandbox`.
//!
//! See `docs/sandbox.md` and `docs/threat-model.md`.

pub mod broker;
pub mod caps;
pub mod error;
pub mod landlock;
pub mod mode;
pub mod notify;
pub mod preexec;
pub mod profile;
mod report;
pub mod seccomp;
mod sys;

pub use error::SandboxError;
pub use mode::{LayerState, Mode, MODE_ENV};
pub use preexec::{ChildError, ChildStep, Namespace, PreExec, SandboxPolicy};
pub use profile::{enter, Layers, Profile, Report};
pub use report::{report, require_gaps};
pub use seccomp::{DefaultAction, Needs, ThreadFilter, ThreadKind};
