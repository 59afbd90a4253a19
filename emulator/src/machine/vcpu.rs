//! One virtual CPU: its KVM fd, its reset state, and the run loop that
//! dispatches port I/O and MMIO exits to the buses.
#![forbid(unsafe_code)]

use std::sync::Arc;

use kvm_bindings::{
    kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_regs, kvm_sregs, CpuId, KVM_SYSTEM_EVENT_CRASH,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd};

use super::bus::{Bus, BusEffect};
use super::control::{ExitReason, Gate, Shared, ShutdownCause};
use super::irqchip::UserIoapic;
use super::kvm::{internal_error_suberror, KvmVm};

/// The machine's two address spaces.
#[derive(Default)]
pub struct Buses {
    pub pio: Bus,
    pub mmio: Bus,
    /// The userspace IOAPIC of a split irqchip (its EOIs).
    pub ioapic: Option<Arc<UserIoapic>>,
}

pub use super::error::VcpuError;

/// Architectural state restored on reset.
#[derive(Clone)]
pub(crate) struct VcpuState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    fpu: kvm_fpu,
    lapic: Option<kvm_lapic_state>,
    mp_state: kvm_mp_state,
}

/// Outcome of one `KVM_RUN`.
enum Step {
    Continue,
    /// HLT reached user space (no in-kernel irqchip): nothing will wake it.
    Halted,
    GuestReset,
    Exit(ExitReason),
}

pub struct Vcpu {
    // Declared before `vm`: the vCPU fd closes before the VM and its memory.
    fd: VcpuFd,
    _vm: Arc<KvmVm>,
    id: u8,
    irqchip: bool,
    reset_state: VcpuState,
    /// The boot CPU's first exit is still to come (a start-up mark).
    first_exit: bool,
}

impl Vcpu {
    /// Creates vCPU `id` with the host-supported CPUID (APIC id patched) in
    /// its architectural reset state: real mode at the reset vector,
    /// CS base 0xffff0000, IP 0xfff0.
    pub fn new(vm: &Arc<KvmVm>, id: u8, cpuid: &CpuId, irqchip: bool) -> Result<Self, VcpuError> {
        let err = |what| move |source| VcpuError { id, what, source };
        let fd = vm
            .fd()
            .create_vcpu(u64::from(id))
            .map_err(err("KVM_CREATE_VCPU"))?;
        let mut cpuid = cpuid.clone();
        for e in cpuid.as_mut_slice() {
            match e.function {
                // Initial APIC id in EBX[31:24].
                1 => e.ebx = (e.ebx & 0x00ff_ffff) | (u32::from(id) << 24),
                // x2APIC id.
                0xb | 0x1f => e.edx = u32::from(id),
                _ => {}
            }
        }
        fd.set_cpuid2(&cpuid).map_err(err("KVM_SET_CPUID2"))?;
        let mut vcpu = Vcpu {
            reset_state: capture(&fd, id, irqchip)?,
            fd,
            _vm: vm.clone(),
            id,
            irqchip,
            first_exit: id == 0,
        };
        // KVM creates vCPUs in this state already; set it explicitly so the
        // machine does not depend on that.
        let s = &mut vcpu.reset_state;
        s.sregs.cs.selector = 0xf000;
        s.sregs.cs.base = 0xffff_0000;
        s.sregs.cs.limit = 0xffff;
        s.regs.rip = 0xfff0;
        s.regs.rflags = 0x2;
        vcpu.load_reset_state()?;
        Ok(vcpu)
    }

    fn err(&self, what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VcpuError {
        let id = self.id;
        move |source| VcpuError { id, what, source }
    }

    /// Current general and segment registers.
    pub(crate) fn registers(&self) -> Result<(kvm_regs, kvm_sregs), VcpuError> {
        Ok((
            self.fd.get_regs().map_err(self.err("KVM_GET_REGS"))?,
            self.fd.get_sregs().map_err(self.err("KVM_GET_SREGS"))?,
        ))
    }

    /// Replaces the boot/reset registers (direct kernel boot) and loads them.
    pub(crate) fn set_boot_registers(
        &mut self,
        regs: kvm_regs,
        sregs: kvm_sregs,
    ) -> Result<(), VcpuError> {
        self.reset_state.regs = regs;
        self.reset_state.sregs = sregs;
        self.load_reset_state()
    }

    fn load_reset_state(&self) -> Result<(), VcpuError> {
        let s = &self.reset_state;
        self.fd
            .set_sregs(&s.sregs)
            .map_err(self.err("KVM_SET_SREGS"))?;
        self.fd
            .set_regs(&s.regs)
            .map_err(self.err("KVM_SET_REGS"))?;
        self.fd.set_fpu(&s.fpu).map_err(self.err("KVM_SET_FPU"))?;
        if let Some(l) = &s.lapic {
            self.fd.set_lapic(l).map_err(self.err("KVM_SET_LAPIC"))?;
        }
        if self.irqchip {
            self.fd
                .set_mp_state(s.mp_state)
                .map_err(self.err("KVM_SET_MP_STATE"))?;
        }
        Ok(())
    }

    /// The vCPU thread: runs until the machine ends.
    pub(crate) fn run(mut self, shared: Arc<Shared>, buses: Arc<Buses>) {
        let mut generation = 0u64;
        loop {
            match shared.gate(&mut generation) {
                Gate::Exit => return,
                Gate::Run { reset: false } => {}
                Gate::Run { reset: true } => {
                    if let Err(e) = self.load_reset_state() {
                        shared.request_exit(ExitReason::HostError(e.into()));
                        return;
                    }
                }
            }
            match self.step(&buses) {
                Step::Continue => {}
                Step::Halted => shared.wait_halted(generation),
                Step::GuestReset => {
                    shared.request_guest_reset();
                    // Never re-enter a guest that has shut down: wait for
                    // the reset (or the end).
                    shared.wait_halted(generation);
                }
                Step::Exit(reason) => shared.request_exit(reason),
            }
        }
    }

    fn step(&mut self, buses: &Buses) -> Step {
        let exit = match self.fd.run() {
            Ok(exit) if self.first_exit => {
                crate::boot_time::mark("first-exit");
                self.first_exit = false;
                exit
            }
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                return Step::Continue
            }
            Err(e) => {
                return Step::Exit(ExitReason::HostError(
                    VcpuError {
                        id: self.id,
                        what: "KVM_RUN",
                        source: e,
                    }
                    .into(),
                ))
            }
        };
        let effect = match exit {
            VcpuExit::IoOut(port, data) => buses.pio.write(u64::from(port), data),
            VcpuExit::IoIn(port, data) => {
                if !buses.pio.read(u64::from(port), data) {
                    data.fill(0xff);
                }
                BusEffect::None
            }
            VcpuExit::MmioRead(addr, data) => {
                if !buses.mmio.read(addr, data) {
                    data.fill(0);
                }
                BusEffect::None
            }
            VcpuExit::MmioWrite(addr, data) => buses.mmio.write(addr, data),
            VcpuExit::Hlt => return Step::Halted,
            VcpuExit::Shutdown => return Step::GuestReset,
            VcpuExit::Intr => BusEffect::None,
            VcpuExit::IoapicEoi(vector) => {
                if let Some(ioapic) = &buses.ioapic {
                    ioapic.eoi(vector);
                }
                BusEffect::None
            }
            VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_RESET, _) => return Step::GuestReset,
            VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_SHUTDOWN, _) => {
                return Step::Exit(ExitReason::Quit(ShutdownCause::GuestShutdown))
            }
            VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_CRASH, _) => {
                return Step::Exit(ExitReason::GuestCrash(format!(
                    "vCPU {}: guest reported a crash",
                    self.id
                )))
            }
            VcpuExit::InternalError => {
                let sub = internal_error_suberror(&mut self.fd).unwrap_or(0);
                let what = if sub == 1 { " (emulation failure)" } else { "" };
                return Step::Exit(ExitReason::GuestCrash(format!(
                    "vCPU {}: KVM internal error, suberror {sub}{what}",
                    self.id
                )));
            }
            VcpuExit::FailEntry(reason, cpu) => {
                return Step::Exit(ExitReason::GuestCrash(format!(
                    "vCPU {}: KVM entry failed, hardware reason {reason:#x} (host cpu {cpu})",
                    self.id
                )))
            }
            other => {
                return Step::Exit(ExitReason::GuestCrash(format!(
                    "vCPU {}: unexpected KVM exit {other:?}",
                    self.id
                )))
            }
        };
        match effect {
            BusEffect::None => Step::Continue,
            BusEffect::DebugExit(v) => Step::Exit(ExitReason::DebugExit(v)),
        }
    }
}

fn capture(fd: &VcpuFd, id: u8, irqchip: bool) -> Result<VcpuState, VcpuError> {
    let err = |what| move |source| VcpuError { id, what, source };
    Ok(VcpuState {
        regs: fd.get_regs().map_err(err("KVM_GET_REGS"))?,
        sregs: fd.get_sregs().map_err(err("KVM_GET_SREGS"))?,
        fpu: fd.get_fpu().map_err(err("KVM_GET_FPU"))?,
        lapic: if irqchip {
            Some(fd.get_lapic().map_err(err("KVM_GET_LAPIC"))?)
        } else {
            None
        },
        mp_state: if irqchip {
            fd.get_mp_state().map_err(err("KVM_GET_MP_STATE"))?
        } else {
            kvm_mp_state::default()
        },
    })
}
