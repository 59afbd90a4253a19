//! Errors of a running machine, apart from the modules that raise them so
//! that `control` (which reports them) and `vcpu` (which raises most) do
//! not depend on each other.
#![forbid(unsafe_code)]

/// A vCPU ioctl failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("vCPU {id}: {what} failed: {source}")]
pub struct VcpuError {
    pub id: u8,
    pub what: &'static str,
    #[source]
    pub source: kvm_ioctls::Error,
}

/// A host-side failure while the machine runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("installing the vCPU kick signal handler failed: {0}")]
    KickHandler(vmm_sys_util::errno::Error),
    /// A thread's set-up hook (the sandbox's per-thread filter) failed;
    /// `reason` is the hook's own message.
    #[error("{thread} thread set-up: {reason}")]
    ThreadSetup {
        thread: &'static str,
        reason: String,
    },
    #[error("starting a vCPU thread failed: {0}")]
    ThreadSpawn(vmm_sys_util::errno::Error),
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
}
