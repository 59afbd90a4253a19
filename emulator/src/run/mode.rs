//! The sandbox mode the emulator enters: `-sandbox on|off` combined with
//! the mode its launcher's policy asks for ([`openhook_sandbox::MODE_ENV`],
//! set by the broker). Pure; `run` reads the variable.
#![forbid(unsafe_code)]

use openhook_sandbox::Mode;

use crate::vm_config::SandboxSetting;

/// Why the mode could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// The variable holds something other than a mode name.
    #[error("{var}={value:?} is not a sandbox mode (require, best-effort, off)")]
    BadValue {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `-sandbox off` while the launcher's policy asks for confinement.
    #[error(
        "-sandbox off conflicts with the launcher's policy ([sandbox] mode = \"{0}\"); \
         set mode = \"off\" in the policy to debug without the sandbox"
    )]
    OffAgainstPolicy(Mode),
}

/// `-sandbox on` (the default) enters the launcher's mode, or `require`
/// when started without one; `-sandbox off` is off, refused when the
/// launcher's policy asks for `require` or `best-effort`.
pub fn effective_mode(setting: SandboxSetting, launcher: Option<&str>) -> Result<Mode, ModeError> {
    let launcher = launcher
        .map(|v| {
            v.parse::<Mode>().map_err(|_| ModeError::BadValue {
                var: openhook_sandbox::MODE_ENV,
                value: v.to_string(),
            })
        })
        .transpose()?;
    match (setting, launcher) {
        (SandboxSetting::On, None) => Ok(Mode::Require),
        (SandboxSetting::On, Some(m)) => Ok(m),
        (SandboxSetting::Off, None | Some(Mode::Off)) => Ok(Mode::Off),
        (SandboxSetting::Off, Some(m)) => Err(ModeError::OffAgainstPolicy(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination() {
        use SandboxSetting::{Off, On};
        let cases: [(SandboxSetting, Option<&str>, Result<Mode, ModeError>); 8] = [
            (On, None, Ok(Mode::Require)),
            (On, Some("require"), Ok(Mode::Require)),
            (On, Some("best-effort"), Ok(Mode::BestEffort)),
            (On, Some("off"), Ok(Mode::Off)),
            (Off, None, Ok(Mode::Off)),
            (Off, Some("off"), Ok(Mode::Off)),
            (
                Off,
                Some("require"),
                Err(ModeError::OffAgainstPolicy(Mode::Require)),
            ),
            (
                Off,
                Some("best-effort"),
                Err(ModeError::OffAgainstPolicy(Mode::BestEffort)),
            ),
        ];
        for (setting, env, want) in cases {
            assert_eq!(effective_mode(setting, env), want, "{setting:?} {env:?}");
        }
    }

    #[test]
    fn a_bad_value_is_an_error_not_a_default() {
        for v in ["", "on", "REQUIRE", "none"] {
            assert!(
                matches!(
                    effective_mode(SandboxSetting::On, Some(v)),
                    Err(ModeError::BadValue { .. })
                ),
                "{v:?}"
            );
        }
    }
}
