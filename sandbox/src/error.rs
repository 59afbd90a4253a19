//! The crate's one error type.

use rustix::io::Errno;

/// Why the sandbox could not be prepared or entered.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `enter` was called with more than one thread in the process: seccomp,
    /// Landlock and capabilities would confine only the calling thread.
    #[error("the sandbox must be entered before any thread exists ({0})")]
    ThreadsExist(String),
    /// A layer cannot be enforced on this kernel and the mode is `require`.
    #[error("sandbox mode is `require` but layer {layer} cannot be enforced here: {why}")]
    LayerUnavailable {
        /// The layer's name (`no_new_privs`, `capabilities`, `landlock`, `seccomp`).
        layer: &'static str,
        /// What is missing.
        why: String,
    },
    /// A syscall applying a layer failed.
    #[error("applying {layer} failed: {errno}")]
    Apply {
        /// The layer's name.
        layer: &'static str,
        /// The errno.
        errno: Errno,
    },
    /// The capabilities crate reported an error.
    #[error("capabilities: {0}")]
    Caps(#[from] caps::errors::CapsError),
    /// The landlock crate reported an error.
    #[error("landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    /// A path needed by the pre-exec Landlock ruleset could not be opened.
    #[error("landlock: cannot open {path} for the exec ruleset: {source}")]
    LandlockPath {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: landlock::PathFdError,
    },
    /// seccompiler refused a filter.
    #[error("seccomp filter: {0}")]
    Seccomp(#[from] seccompiler::BackendError),
    /// seccompiler could not load a filter.
    #[error("seccomp install: {0}")]
    SeccompInstall(#[from] seccompiler::Error),
    /// The pre-exec configuration is invalid (unknown user, bad env name, …).
    #[error("pre-exec: {0}")]
    PreExec(String),
}
