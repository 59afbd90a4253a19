//! The KVM micro-VM: a QEMU `microvm`-compatible machine (docs/machine.md).
//!
//! The machine never opens a path: [`Machine::build`] takes a validated
//! [`MachineConfig`] and the files it names, already open, as
//! [`MachineFiles`]. [`Machine::run`] runs the vCPUs until the machine ends
//! and returns why; a [`MachineControl`] (from [`Machine::control`]) lets a
//! monitor pause, resume, reset or stop it meanwhile and watch its events.
//!
//! ```text
//! layout.rs   guest-physical map (pure)        bus.rs     address-range routing
//! kvm.rs      /dev/kvm fd, memory slots (unsafe) vcpu.rs  vCPU state + run loop
//! builder.rs  assembly from config + files      boot.rs    direct Linux boot
//! control.rs  run state, pause/reset/quit, events, guest-memory reads
//! io_thread.rs  virtio queues served off the vCPU (ioeventfd)
//! syscalls.rs what the machine's threads need from seccomp
//! ```

mod boot;
mod builder;
pub mod bus;
pub mod control;
pub mod error;
mod io_thread;
pub mod irqchip;
pub mod kvm;
pub mod layout;
pub mod syscalls;
pub mod vcpu;

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use libc::{c_int, c_void, siginfo_t};

pub use self::boot::KernelError;
use self::control::Shared;
pub use self::control::{ExitReason, MachineControl, MachineEvent, RunState, ShutdownCause};
pub use self::error::HostError;
use self::kvm::KvmVm;
use self::vcpu::{Buses, Vcpu};
use crate::vm_config::MachineConfig;

/// Everything the machine reads or writes, already open (by `fds::open`,
/// from the broker, or from a monitor). Order and presence must match the
/// [`MachineConfig`]: `firmware` iff `config.firmware`, `kernel` iff
/// `config.kernel`, `drives[i]` is `config.drives[i]`.
pub struct MachineFiles {
    /// `/dev/kvm`, read-write (brokered).
    pub kvm: OwnedFd,
    /// `-bios`, readable.
    pub firmware: Option<File>,
    /// `-kernel`, readable.
    pub kernel: Option<File>,
    /// `-initrd`, readable.
    pub initrd: Option<File>,
    /// One per drive, in config order; read-write unless the drive is
    /// read-only.
    pub drives: Vec<File>,
    /// Where the UART's output goes (`std::io::sink()` for `-serial none`).
    pub serial: Box<dyn crate::devices::serial::SerialOutput>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("machine files do not match the configuration ({0})")]
    FilesMismatch(&'static str),
    #[error("nothing to boot: give -bios or -kernel")]
    NothingToBoot,
    #[error("too many virtio devices ({0}; the machine has 24 transports)")]
    TooManyDevices(usize),
    #[error("at least one vCPU is needed")]
    NoVcpus,
    #[error("more than one vCPU needs an in-kernel local APIC (kernel-irqchip=on or split), which this machine does not have")]
    SmpNeedsIrqchip,
    #[error("pit=on and pic=on need kernel-irqchip=on (the PIT and PIC exist only in the kernel)")]
    NeedsKernelIrqchip,
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error(transparent)]
    KvmFd(#[from] kvm::KvmError),
    #[error("{0} failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    #[error(transparent)]
    Vcpu(#[from] vcpu::VcpuError),
    #[error("reading the firmware failed: {0}")]
    Firmware(#[source] std::io::Error),
    #[error("guest memory: {0}")]
    Memory(#[from] MemoryError),
    #[error("eventfd: {0}")]
    EventFd(#[source] std::io::Error),
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    #[error("drive '{id}': {source}")]
    Disk {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel: {0}")]
    Kernel(#[from] KernelError),
    #[error("starting a vCPU thread failed: {0}")]
    Thread(#[source] std::io::Error),
}

/// Why guest memory (RAM or the firmware window) could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("RAM too large")]
    RamTooLarge,
    /// The firmware window does not fit the host's address space.
    #[error("firmware")]
    FirmwareTooLarge,
    #[error("{0}")]
    Map(#[from] vm_memory::mmap::FromRangesError),
    #[error("{0}")]
    Write(#[from] vm_memory::GuestMemoryError),
}

/// Facts about the built machine that depend on the host.
#[derive(Debug, Clone)]
pub struct MachineInfo {
    /// The vCPUs have a local APIC (in-kernel or split irqchip): UART and
    /// virtio interrupts are live.
    pub irqchip: bool,
    /// Where the controllers are, in QEMU's words: "on", "split" or "off".
    pub kernel_irqchip: &'static str,
    /// The firmware is mapped read-only (KVM_CAP_READONLY_MEM).
    pub readonly_rom: bool,
    /// virtio queues notified through a KVM ioeventfd and served by an
    /// I/O thread (0 with `-global virtio-mmio.ioeventfd=off`, or when
    /// the host refused the ioeventfd).
    pub ioeventfd_queues: usize,
    pub layout: layout::MemoryLayout,
}

/// Code each vCPU and I/O thread runs first (e.g. loading its seccomp
/// filter); an error ends the machine before the guest runs.
pub type VcpuThreadInit = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

pub struct Machine {
    vcpus: Vec<Vcpu>,
    io_queues: Vec<io_thread::IoQueue>,
    thread_init: Option<VcpuThreadInit>,
    buses: Arc<Buses>,
    shared: Arc<Shared>,
    no_reboot: bool,
    serial_input: SerialInput,
    info: MachineInfo,
    _vm: Arc<KvmVm>,
}

/// The input side of the UART at 0x3f8: bytes for the guest to read.
#[derive(Clone)]
pub struct SerialInput(pub(crate) Arc<std::sync::Mutex<crate::devices::serial::SerialDevice>>);

impl SerialInput {
    /// Queues as much of `bytes` as the UART's receive FIFO takes (it
    /// raises the receive interrupt if the guest enabled it); returns how
    /// many bytes that was, 0 while the FIFO is full.
    pub fn feed(&self, bytes: &[u8]) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .enqueue_input(bytes)
    }
}

/// What a machine thread (vCPU or I/O) runs once set up.
type ThreadBody = Box<dyn FnOnce(Arc<Shared>) + Send>;

/// The kick signal's handler: its only job is to exist, so the signal
/// interrupts `KVM_RUN` (EINTR) instead of killing the process.
extern "C" fn kick_handler(_: c_int, _: *mut siginfo_t, _: *mut c_void) {}

impl Machine {
    /// Creates the VM, its memory, devices and vCPUs. Nothing runs yet.
    pub fn build(config: &MachineConfig, files: MachineFiles) -> Result<Machine, BuildError> {
        builder::build(config, files)
    }

    /// A handle for the monitor; valid before and during [`run`](Self::run).
    pub fn control(&self) -> MachineControl {
        MachineControl::new(self.shared.clone())
    }

    /// A handle that feeds the UART's input (valid while the machine runs).
    pub fn serial_input(&self) -> SerialInput {
        self.serial_input.clone()
    }

    pub fn info(&self) -> &MachineInfo {
        &self.info
    }

    /// Sets what every vCPU thread runs before its first `KVM_RUN`, and
    /// every I/O thread before it serves a request.
    pub fn set_vcpu_thread_init(&mut self, init: VcpuThreadInit) {
        self.thread_init = Some(init);
    }

    /// Runs the machine on one thread per vCPU until it ends; the calling
    /// thread supervises (guest resets) and collects the vCPU threads.
    /// With `start_paused` the vCPUs wait for [`MachineControl::resume`].
    pub fn run(self) -> ExitReason {
        if let Err(e) = vmm_sys_util::signal::register_signal_handler(
            vmm_sys_util::signal::SIGRTMIN(),
            kick_handler,
        ) {
            return ExitReason::HostError(HostError::KickHandler(e));
        }
        let mut threads: Vec<(&str, ThreadBody)> = Vec::new();
        for vcpu in self.vcpus {
            let buses = self.buses.clone();
            threads.push(("vcpu", Box::new(move |shared| vcpu.run(shared, buses))));
        }
        for q in self.io_queues {
            threads.push(("virtio-blk", Box::new(move |shared| q.run(shared))));
        }
        for (name, body) in threads {
            let shared = self.shared.clone();
            let init = self.thread_init.clone();
            let spawned = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let _done = control::ThreadDone(shared.clone());
                    if let Some(init) = init {
                        if let Err(e) = init() {
                            shared.request_exit(ExitReason::HostError(HostError::ThreadSetup {
                                thread: name,
                                reason: e,
                            }));
                            return;
                        }
                    }
                    body(shared)
                });
            match spawned {
                Ok(t) => self.shared.add_thread(t),
                Err(e) => {
                    self.shared
                        .request_exit(ExitReason::HostError(HostError::ThreadSpawn(e.into())));
                    break;
                }
            }
        }
        let reason = self.shared.supervise(self.no_reboot);
        self.shared.join_all();
        reason
    }
}
