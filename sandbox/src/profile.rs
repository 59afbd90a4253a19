//! `enter(&Profile)`: the emulator's full confinement, applied in a fixed
//! order — single-thread check, no_new_privs, capabilities, Landlock,
//! seccomp — under one of three modes.

use crate::error::SandboxError;
use crate::mode::{LayerState, Mode};
use crate::seccomp::{install, DefaultAction, Needs, ThreadFilter, ThreadKind};
use crate::{caps, landlock, sys};

/// Which layers `enter` applies. All on in production; the escape tests turn
/// single layers on to show that each one stops what it claims on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layers {
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// Every capability set cleared.
    pub capabilities: bool,
    /// Zero-rule Landlock domain.
    pub landlock: bool,
    /// Seccomp allow list.
    pub seccomp: bool,
}

impl Layers {
    /// Every layer.
    pub const ALL: Self = Self {
        no_new_privs: true,
        capabilities: true,
        landlock: true,
        seccomp: true,
    };
    /// No layer.
    pub const NONE: Self = Self {
        no_new_privs: false,
        capabilities: false,
        landlock: false,
        seccomp: false,
    };
}

impl Default for Layers {
    fn default() -> Self {
        Self::ALL
    }
}

/// What to apply.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Strictness.
    pub mode: Mode,
    /// Layers to apply (all by default).
    pub layers: Layers,
    /// Extra needs of the main and monitor threads.
    pub main: Needs,
    /// Needs of vCPU threads (also admitted by the main filter, which they inherit).
    pub vcpu: Needs,
    /// Default seccomp action (`KillProcess` unless debugging).
    pub seccomp_default: DefaultAction,
}

impl Profile {
    /// A profile for `mode` with every layer, the seccomp debug switch read
    /// from `OPENHOOK_SECCOMP` (see docs/sandbox.md).
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            seccomp_default: install::default_action_from_env(),
            ..Self::default()
        }
    }
}

/// What `enter` did, and the filters later threads must load.
#[derive(Debug)]
pub struct Report {
    /// The mode entered.
    pub mode: Mode,
    /// (layer name, outcome) in application order.
    pub layers: Vec<(&'static str, LayerState)>,
    vcpu_filter: ThreadFilter,
}

impl Report {
    /// The filter a vCPU thread loads first thing (a no-op when off).
    pub fn thread_filter(&self, kind: ThreadKind) -> ThreadFilter {
        match kind {
            ThreadKind::Vcpu => self.vcpu_filter.clone(),
            // The main filter is inherited; monitor threads add nothing.
            ThreadKind::Main | ThreadKind::Broker | ThreadKind::TransparentBroker => {
                ThreadFilter::disabled(kind)
            }
        }
    }

    /// Layers not fully in force, as text.
    pub fn gaps(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter_map(|(name, st)| match st {
                LayerState::Partial(w) | LayerState::Missing(w) => Some(format!("{name}: {w}")),
                _ => None,
            })
            .collect()
    }
}

/// Enters the emulator's sandbox. Call at the top of `main`, after argument
/// parsing and before any thread is created or any path is touched.
///
/// In `require` mode an error names the first layer that cannot be
/// enforced; in `best-effort` mode missing layers are printed to stderr; in
/// `off` mode a warning is printed and nothing is applied.
pub fn enter(profile: &Profile) -> Result<Report, SandboxError> {
    let mode = profile.mode;
    if mode == Mode::Off {
        eprintln!(
            "openhook-sandbox: WARNING: sandbox is OFF — this process runs with the full \
             authority of its user (no seccomp, no Landlock, capabilities kept). Debugging only."
        );
        return Ok(Report {
            mode,
            layers: ["no_new_privs", "capabilities", "landlock", "seccomp"]
                .into_iter()
                .map(|l| (l, LayerState::Skipped))
                .collect(),
            vcpu_filter: ThreadFilter::disabled(ThreadKind::Vcpu),
        });
    }
    sys::probe::single_threaded().map_err(|e| {
        SandboxError::ThreadsExist(format!("unshare(CLONE_THREAD|CLONE_VM) says {e}"))
    })?;
    if mode == Mode::Require {
        check_required_layers(profile.layers)?;
    }
    // Compile before confining (allocation and /proc-free, but cheaper to
    // fail early).
    let (main_filter, vcpu_filter) = compile_filters(profile)?;
    let layers = apply_layers(profile, &main_filter)?;
    let report = Report {
        mode,
        layers,
        vcpu_filter,
    };
    if mode == Mode::BestEffort {
        for gap in report.gaps() {
            eprintln!("openhook-sandbox: best-effort: not fully enforced: {gap}");
        }
    }
    if profile.seccomp_default != DefaultAction::KillProcess && profile.layers.seccomp {
        eprintln!(
            "openhook-sandbox: WARNING: seccomp debug mode ({:?}) — unlisted syscalls are not killed",
            profile.seccomp_default
        );
    }
    Ok(report)
}

/// `require`: checks every requested layer before applying any, so the
/// error names what is missing without leaving a half-confined process.
fn check_required_layers(l: Layers) -> Result<(), SandboxError> {
    if l.landlock {
        let missing = landlock::Support::probe().missing();
        if !missing.is_empty() {
            return Err(SandboxError::LayerUnavailable {
                layer: "landlock",
                why: missing.join("; "),
            });
        }
    }
    if l.seccomp {
        install::support().map_err(|why| SandboxError::LayerUnavailable {
            layer: "seccomp",
            why,
        })?;
    }
    Ok(())
}

/// The main and vCPU thread filters (disabled ones without seccomp).
fn compile_filters(profile: &Profile) -> Result<(ThreadFilter, ThreadFilter), SandboxError> {
    if !profile.layers.seccomp {
        return Ok((
            ThreadFilter::disabled(ThreadKind::Main),
            ThreadFilter::disabled(ThreadKind::Vcpu),
        ));
    }
    let compile =
        |kind| ThreadFilter::compile(kind, &profile.main, &profile.vcpu, profile.seccomp_default);
    Ok((compile(ThreadKind::Main)?, compile(ThreadKind::Vcpu)?))
}

/// Applies the layers in their fixed order; each outcome, by name.
fn apply_layers(
    profile: &Profile,
    main_filter: &ThreadFilter,
) -> Result<Vec<(&'static str, LayerState)>, SandboxError> {
    let (mode, l) = (profile.mode, profile.layers);
    let mut layers = Vec::with_capacity(4);
    layers.push((
        "no_new_privs",
        if l.no_new_privs {
            rustix::thread::set_no_new_privs(true).map_err(|errno| SandboxError::Apply {
                layer: "no_new_privs",
                errno,
            })?;
            LayerState::Enforced("set".into())
        } else {
            LayerState::Skipped
        },
    ));
    layers.push((
        "capabilities",
        if l.capabilities {
            caps::clear_all(mode)?
        } else {
            LayerState::Skipped
        },
    ));
    layers.push((
        "landlock",
        if l.landlock {
            landlock::confine_zero_rules(mode)?
        } else {
            LayerState::Skipped
        },
    ));
    layers.push((
        "seccomp",
        if l.seccomp {
            match main_filter.load() {
                Ok(()) => LayerState::Enforced(match profile.seccomp_default {
                    DefaultAction::KillProcess => "allow list, default kill-process".into(),
                    DefaultAction::Log => "allow list, DEBUG default log".into(),
                    DefaultAction::Trap => "allow list, DEBUG default trap".into(),
                }),
                Err(e) if mode == Mode::Require => return Err(e),
                Err(e) => LayerState::Missing(e.to_string()),
            }
        } else {
            LayerState::Skipped
        },
    ));
    Ok(layers)
}
