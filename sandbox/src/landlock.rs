//! Landlock layer: the emulator's zero-rule domain and the pre-exec domain
//! that lets the child exec the emulator and nothing else.
//!
//! Both handle every filesystem right of the best ABI the kernel offers, TCP
//! bind/connect (ABI ≥ 4), and scope abstract unix sockets and signals
//! (ABI ≥ 6). In `require` mode the crate runs with
//! `CompatLevel::HardRequirement` and anything below ABI 6 is refused by
//! name; in `best-effort` mode whatever the kernel has is applied.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use crate::error::SandboxError;
use crate::mode::{LayerState, Mode};
use crate::sys;

/// The lowest ABI that has every feature the design asks for (TCP since 4,
/// scopes since 6).
pub const REQUIRED_ABI: i32 = 6;

/// What the kernel offers, as found by a version query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Support {
    /// Kernel ABI version (`None`: Landlock missing or disabled).
    pub kernel_abi: Option<i32>,
}

impl Support {
    /// Asks the kernel.
    pub fn probe() -> Self {
        Self {
            kernel_abi: sys::probe::landlock_abi().ok(),
        }
    }

    /// The crate's ABI value for this kernel (the crate caps at the newest it
    /// knows).
    pub fn abi(self) -> ABI {
        ABI::from(self.kernel_abi.unwrap_or(0))
    }

    /// Filesystem rights this kernel handles.
    pub fn fs_rights(self) -> BitFlags<AccessFs> {
        AccessFs::from_all(self.abi())
    }

    /// What is missing compared with the design (empty when complete).
    pub fn missing(self) -> Vec<String> {
        let mut v = Vec::new();
        match self.kernel_abi {
            None => {
                v.push("Landlock is not available (kernel built without it or disabled)".into())
            }
            Some(n) if n < REQUIRED_ABI => {
                if n < 4 {
                    v.push(format!("TCP bind/connect rules need ABI 4, kernel has {n}"));
                }
                v.push(format!(
                    "abstract-socket and signal scopes need ABI 6, kernel has {n}"
                ));
            }
            Some(_) => {}
        }
        v
    }
}

fn ruleset(mode: Mode, support: Support) -> Result<Ruleset, SandboxError> {
    let abi = support.abi();
    let level = match mode {
        Mode::Require => CompatLevel::HardRequirement,
        Mode::BestEffort | Mode::Off => CompatLevel::BestEffort,
    };
    let mut rs = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(abi))?;
    if !AccessNet::from_all(abi).is_empty() {
        rs = rs.handle_access(AccessNet::from_all(abi))?;
    }
    if !Scope::from_all(abi).is_empty() {
        rs = rs.scope(Scope::from_all(abi))?;
    }
    Ok(rs)
}

/// Applies the emulator's domain: every right handled, zero rules.
pub fn confine_zero_rules(mode: Mode) -> Result<LayerState, SandboxError> {
    let support = Support::probe();
    let missing = support.missing();
    if mode == Mode::Require && !missing.is_empty() {
        return Err(SandboxError::LayerUnavailable {
            layer: "landlock",
            why: missing.join("; "),
        });
    }
    if support.kernel_abi.is_none() {
        return Ok(LayerState::Missing(missing.join("; ")));
    }
    let status = ruleset(mode, support)?.create()?.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced if missing.is_empty() => {
            LayerState::Enforced(format!("ABI {}, zero rules", support.abi()))
        }
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => {
            LayerState::Partial(format!(
                "ABI {}, zero rules; missing: {}",
                support.abi(),
                missing.join("; ")
            ))
        }
        RulesetStatus::NotEnforced => LayerState::Missing("ruleset not enforced".into()),
    })
}

/// Directories the dynamic loader reads libraries from.
pub const LIBRARY_DIRS: &[&str] = &["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib"];

/// Files the dynamic loader reads.
pub const LOADER_FILES: &[&str] = &["/etc/ld.so.cache"];

/// What the exec needs: the program (read + execute), library directories
/// (read + execute: the ELF interpreter lives there), the loader cache
/// (read). Paths that do not exist on this host are skipped.
pub fn exec_paths(program: &Path) -> Vec<(PathBuf, bool)> {
    let mut v = vec![(program.to_path_buf(), true)];
    v.extend(LIBRARY_DIRS.iter().map(|d| (PathBuf::from(d), true)));
    v.extend(LOADER_FILES.iter().map(|f| (PathBuf::from(f), false)));
    v.retain(|(p, _)| p.exists());
    v
}

/// What a transparent-mode exec needs: the program and its ELF interpreter
/// (read + execute), nothing else. The kernel opens both for `execve`; every
/// later open of the program (the loader's libraries included) goes to the
/// broker.
pub fn transparent_exec_paths(program: &Path, interpreter: Option<&Path>) -> Vec<(PathBuf, bool)> {
    let mut v = vec![(program.to_path_buf(), true)];
    v.extend(interpreter.map(|i| (i.to_path_buf(), true)));
    v
}

/// Builds (before fork) the pre-exec domain: every right handled, read (+
/// execute where flagged) rules for `paths` only — [`exec_paths`] for the
/// emulator, [`transparent_exec_paths`] for an unmodified program. Returns
/// the ruleset fd for `landlock_restrict_self` in the child, or `None` when
/// Landlock is missing and the mode allows it.
pub fn exec_ruleset_for(
    mode: Mode,
    paths: &[(PathBuf, bool)],
) -> Result<Option<OwnedFd>, SandboxError> {
    let support = Support::probe();
    let missing = support.missing();
    if mode == Mode::Require && !missing.is_empty() {
        return Err(SandboxError::LayerUnavailable {
            layer: "landlock",
            why: missing.join("; "),
        });
    }
    if support.kernel_abi.is_none() || mode == Mode::Off {
        return Ok(None);
    }
    let abi = support.abi();
    let read_exec = AccessFs::ReadFile | AccessFs::Execute;
    let mut created: RulesetCreated = ruleset(mode, support)?.create()?;
    for (path, exec) in paths {
        let fd = PathFd::new(path).map_err(|source| SandboxError::LandlockPath {
            path: path.display().to_string(),
            source,
        })?;
        let rights = if *exec {
            read_exec
        } else {
            BitFlags::from(AccessFs::ReadFile)
        };
        created = created.add_rule(PathBeneath::new(fd, rights & AccessFs::from_all(abi)))?;
    }
    Ok(created.into())
}
