//! Compiles the assembled filters and loads them on the calling thread.
//!
//! Order matters: the two errno filters first, the allow list last, because
//! once the allow list is in place only `seccomp(SET_MODE_FILTER, 0)` is
//! still permitted (which is all a vCPU thread needs to narrow itself).

use seccompiler::BpfProgram;

use super::assemble::{self, AllowList, DefaultAction, Needs, ProcessFacts, ThreadKind};
use crate::error::SandboxError;
use crate::sys;

/// A compiled filter stack for one thread kind, cheap to clone into the
/// thread that will load it.
#[derive(Clone, Debug)]
pub struct ThreadFilter {
    kind: ThreadKind,
    /// Empty when the sandbox is off (loading is then a no-op).
    programs: Vec<BpfProgram>,
    default: DefaultAction,
}

impl ThreadFilter {
    /// Compiles the filters for `kind`.
    pub fn compile(
        kind: ThreadKind,
        main: &Needs,
        vcpu: &Needs,
        default: DefaultAction,
    ) -> Result<Self, SandboxError> {
        Self::compile_with_peer(kind, main, vcpu, default, None)
    }

    /// [`Self::compile`], also letting `kill` reach `peer` (the broker's
    /// child).
    pub fn compile_with_peer(
        kind: ThreadKind,
        main: &Needs,
        vcpu: &Needs,
        default: DefaultAction,
        peer: Option<u32>,
    ) -> Result<Self, SandboxError> {
        let list: AllowList = assemble::allow_list(kind, main, vcpu);
        let facts = ProcessFacts {
            pid: std::process::id(),
            peer,
        };
        let f = assemble::filters(&list, default, facts)?;
        let mut programs = Vec::with_capacity(3);
        for filter in [f.enosys, f.open_eacces, f.allow] {
            programs.push(BpfProgram::try_from(filter)?);
        }
        Ok(Self {
            kind,
            programs,
            default,
        })
    }

    /// A filter that loads nothing (sandbox off).
    pub fn disabled(kind: ThreadKind) -> Self {
        Self {
            kind,
            programs: Vec::new(),
            default: DefaultAction::KillProcess,
        }
    }

    /// The thread kind this filter is for.
    pub fn kind(&self) -> ThreadKind {
        self.kind
    }

    /// Whether loading does anything.
    pub fn is_enabled(&self) -> bool {
        !self.programs.is_empty()
    }

    /// Loads the filters on the calling thread. Call it first thing in the
    /// new thread (a vCPU thread: before touching its vCPU fd).
    pub fn load(&self) -> Result<(), SandboxError> {
        if self.default == DefaultAction::Trap && self.is_enabled() {
            sys::sigsys::install_handler().map_err(|errno| SandboxError::Apply {
                layer: "seccomp",
                errno,
            })?;
        }
        for prog in &self.programs {
            sys::seccomp::load(prog).map_err(|errno| SandboxError::Apply {
                layer: "seccomp",
                errno,
            })?;
        }
        Ok(())
    }
}

/// Reads the development switch `OPENHOOK_SECCOMP`: `log` (allow and let the
/// kernel log the syscall) or `trap` (print it and fail it with ENOSYS).
/// Anything else, or unset, is the production `KillProcess`.
pub fn default_action_from_env() -> DefaultAction {
    match std::env::var("OPENHOOK_SECCOMP").as_deref() {
        Ok("log") => DefaultAction::Log,
        Ok("trap") => DefaultAction::Trap,
        _ => DefaultAction::KillProcess,
    }
}

/// Whether the kernel can load filters with the actions we use.
pub fn support() -> Result<(), String> {
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    for (name, action) in [("KILL_PROCESS", RET_KILL_PROCESS), ("ERRNO", RET_ERRNO)] {
        sys::probe::seccomp_action_available(action)
            .map_err(|e| format!("seccomp action {name} unavailable: {e}"))?;
    }
    Ok(())
}
