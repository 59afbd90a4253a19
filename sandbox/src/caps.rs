//! Capabilities layer: every set cleared — bounding and ambient first (they
//! need CAP_SETPCAP, which clearing the others removes), then inheritable,
//! permitted and effective.

use caps::CapSet;

use crate::error::SandboxError;
use crate::mode::{LayerState, Mode};
use crate::sys;

/// Capability number of CAP_SETPCAP (needed to shrink the bounding set).
pub const CAP_SETPCAP: u32 = 8;

/// Clears every capability set of the calling thread and reports what is
/// left. The bounding set can only be emptied with CAP_SETPCAP; without it
/// (an unprivileged start) it stays, which no_new_privs makes unreachable:
/// that is reported as partial and accepted even in `require` mode, because
/// an unprivileged process cannot do better (see docs/threat-model.md).
pub fn clear_all(mode: Mode) -> Result<LayerState, SandboxError> {
    let bounding_before = sys::probe::bounding_set();
    let bounding_result = if bounding_before == 0 {
        Ok(())
    } else {
        caps::clear(None, CapSet::Bounding)
    };
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::clear(None, CapSet::Permitted)?;
    caps::clear(None, CapSet::Effective)?;

    let sets = sys::probe::capability_sets().map_err(|errno| SandboxError::Apply {
        layer: "capabilities",
        errno,
    })?;
    let ambient = sys::probe::ambient_set();
    if sets.iter().any(|&s| s != 0) || ambient != 0 {
        return Err(SandboxError::LayerUnavailable {
            layer: "capabilities",
            why: format!(
                "sets still hold effective={:#x} permitted={:#x} inheritable={:#x} ambient={ambient:#x}",
                sets[0], sets[1], sets[2]
            ),
        });
    }
    let bounding = sys::probe::bounding_set();
    if bounding == 0 {
        return Ok(LayerState::Enforced(
            "all sets empty, bounding and ambient included".into(),
        ));
    }
    let cleared_ok = bounding_result.is_ok();
    let why = match bounding_result {
        Err(e) => format!("bounding set {bounding:#x} kept: {e}"),
        Ok(()) => {
            format!("bounding set {bounding:#x} kept (capabilities unknown to the caps crate)")
        }
    };
    match mode {
        // Without CAP_SETPCAP nothing can empty it; no_new_privs keeps it
        // unreachable. With CAP_SETPCAP a leftover is a real failure.
        Mode::Require if bounding_before != 0 && cleared_ok => {
            Err(SandboxError::LayerUnavailable {
                layer: "capabilities",
                why,
            })
        }
        _ => Ok(LayerState::Partial(why)),
    }
}
