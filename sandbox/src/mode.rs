//! How strictly the layers are demanded ([`Mode`]) and what each achieved
//! ([`LayerState`]): the vocabulary the layers (`caps`, `landlock`,
//! `broker`, `preexec`) and `profile::enter` share, kept apart so the
//! layers need not depend on the module that sequences them.

use std::fmt;
use std::str::FromStr;

use crate::error::SandboxError;

/// The environment variable through which a launcher (the broker) tells
/// the process it starts which mode its policy asks for: `require`,
/// `best-effort` or `off`. The emulator combines it with `-sandbox on|off`
/// (see docs/sandbox.md).
pub const MODE_ENV: &str = "OPENHOOK_SANDBOX_MODE";

/// How strictly the layers are demanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Refuse to start when any layer cannot be enforced (the default).
    #[default]
    Require,
    /// Start anyway and say on stderr what is missing.
    BestEffort,
    /// Apply nothing and say so loudly on stderr (debugging only).
    Off,
}

impl FromStr for Mode {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "require" => Ok(Self::Require),
            "best-effort" => Ok(Self::BestEffort),
            "off" => Ok(Self::Off),
            other => Err(SandboxError::PreExec(format!(
                "unknown sandbox mode `{other}` (expected require, best-effort or off)"
            ))),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Require => "require",
            Self::BestEffort => "best-effort",
            Self::Off => "off",
        })
    }
}

/// The outcome of one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerState {
    /// Fully in force; the text says how.
    Enforced(String),
    /// In force with gaps; the text names them.
    Partial(String),
    /// Not in force; the text says why.
    Missing(String),
    /// Not requested (mode off, or layer turned off in the profile).
    Skipped,
}
