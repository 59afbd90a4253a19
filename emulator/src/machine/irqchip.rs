//! Where the interrupt controllers live, and the userspace IOAPIC of a
//! split irqchip: the pure model (`devices::ioapic`) plus the thin layer
//! that hands its messages to KVM (`KVM_SIGNAL_MSI`) and tells KVM which
//! vectors are level-triggered, so that their EOIs come back to us
//! (`KVM_SET_GSI_ROUTING`, `KVM_EXIT_IOAPIC_EOI`).
#![forbid(unsafe_code)]
// An MSI address is split into its 32-bit halves for KVM.
#![allow(clippy::cast_possible_truncation)]

use std::sync::{Arc, Mutex, MutexGuard};

use kvm_bindings::{
    kvm_enable_cap, kvm_irq_routing_entry, kvm_msi, kvm_pit_config, KvmIrqRouting,
    KVM_CAP_SPLIT_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_PIT_SPEAKER_DUMMY,
};

use super::kvm::KvmVm;
use super::BuildError;
use crate::devices::bus_device::{BusDevice, BusEffect};
use crate::devices::ioapic::{self, Ioapic, Msi};
use crate::vm_config::{KernelIrqchip, MachineConfig, OnOffAuto};

/// What the machine has, once the host has been asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqchipKind {
    /// PIC, IOAPIC and LAPIC in KVM (and the PIT when wanted).
    Kernel,
    /// LAPIC in KVM, IOAPIC here.
    Split,
    /// No interrupt controller: guests poll.
    None,
}

impl IrqchipKind {
    /// Whether the vCPUs have an in-kernel local APIC.
    pub fn has_lapic(self) -> bool {
        self != IrqchipKind::None
    }

    /// QEMU's spelling (`kernel-irqchip=`).
    pub fn as_str(self) -> &'static str {
        match self {
            IrqchipKind::Kernel => "on",
            IrqchipKind::Split => "split",
            IrqchipKind::None => "off",
        }
    }
}

/// The placement asked for: explicit, or the machine's choice. A `-kernel`
/// boot (Linux may calibrate with the PIT and look for the PIC) and
/// `pit=on`/`pic=on` get everything in the kernel, KVM having no PIT or PIC
/// without its IOAPIC; a firmware gets QEMU microvm's default, split, whose
/// teardown has no I/O-bus devices to wait for (docs/performance.md).
pub fn wanted(config: &MachineConfig) -> KernelIrqchip {
    config.kernel_irqchip.unwrap_or(
        if config.kernel.is_some() || config.pit == OnOffAuto::On || config.pic == OnOffAuto::On {
            KernelIrqchip::On
        } else {
            KernelIrqchip::Split
        },
    )
}

/// Creates the interrupt controllers (after every memory slot, before any
/// vCPU) and, with the in-kernel irqchip, the PIT when wanted.
pub fn create(vm: &KvmVm, config: &MachineConfig) -> Result<IrqchipKind, BuildError> {
    let mode = wanted(config);
    if mode != KernelIrqchip::On && (config.pit == OnOffAuto::On || config.pic == OnOffAuto::On) {
        return Err(BuildError::NeedsKernelIrqchip);
    }
    match mode {
        KernelIrqchip::Off => Ok(IrqchipKind::None),
        KernelIrqchip::Split => {
            let mut cap = kvm_enable_cap {
                cap: KVM_CAP_SPLIT_IRQCHIP,
                ..Default::default()
            };
            cap.args[0] = ioapic::PINS as u64;
            match vm.fd().enable_cap(&cap) {
                Ok(()) => Ok(IrqchipKind::Split),
                // An explicit request fails; the default falls back.
                Err(e) if config.kernel_irqchip.is_some() => {
                    Err(BuildError::Kvm("KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)", e))
                }
                Err(_) => Ok(kernel_irqchip(vm, config)),
            }
        }
        KernelIrqchip::On => Ok(kernel_irqchip(vm, config)),
    }
}

fn kernel_irqchip(vm: &KvmVm, config: &MachineConfig) -> IrqchipKind {
    // Creating it registers the PIC/IOAPIC on KVM's I/O bus, which leaves
    // an SRCU grace period in flight: a memory-slot change waits it out,
    // and so does the VM's teardown if it comes first (docs/performance.md).
    if vm.fd().create_irq_chip().is_err() {
        return IrqchipKind::None;
    }
    // QEMU's microvm defaults to a PIT; ours creates the in-kernel one
    // only for a Linux boot (it may calibrate with it) unless `pit=on`: a
    // firmware here polls, and tearing the in-kernel PIT down at exit
    // costs ~15 ms on the dev hosts.
    let want_pit = match config.pit {
        OnOffAuto::On => true,
        OnOffAuto::Off => false,
        OnOffAuto::Auto => config.kernel.is_some(),
    };
    if want_pit {
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        let _ = vm.fd().create_pit2(pit);
    }
    IrqchipKind::Kernel
}

/// The userspace IOAPIC of a split irqchip.
pub struct UserIoapic {
    vm: Arc<KvmVm>,
    state: Mutex<State>,
}

struct State {
    ioapic: Ioapic,
    /// The level-triggered routes KVM was last given.
    routes: Vec<(u32, Msi)>,
}

impl UserIoapic {
    pub fn new(vm: Arc<KvmVm>) -> Arc<Self> {
        Arc::new(UserIoapic {
            vm,
            state: Mutex::new(State {
                ioapic: Ioapic::new(),
                routes: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, msi: Msi) {
        let m = kvm_msi {
            address_lo: msi.address as u32,
            address_hi: (msi.address >> 32) as u32,
            data: msi.data,
            ..Default::default()
        };
        if let Err(e) = self.vm.fd().signal_msi(m) {
            tracing::debug!("KVM_SIGNAL_MSI {msi:?} failed: {e}");
        }
    }

    /// An edge on `pin` (a device's interrupt).
    pub fn pulse(&self, pin: usize) {
        let msi = self.lock().ioapic.pulse(pin);
        if let Some(msi) = msi {
            self.deliver(msi);
        }
    }

    /// The local APIC's EOI of a level-triggered `vector`.
    pub fn eoi(&self, vector: u8) {
        let out = self.lock().ioapic.eoi(vector);
        for msi in out {
            self.deliver(msi);
        }
    }

    /// Tells KVM the current level-triggered routes when they changed.
    fn sync_routes(&self, state: &mut State) {
        let routes = state.ioapic.level_routes();
        if routes == state.routes {
            return;
        }
        let entries: Vec<kvm_irq_routing_entry> = routes
            .iter()
            .map(|(pin, msi)| {
                let mut e = kvm_irq_routing_entry {
                    gsi: *pin,
                    type_: KVM_IRQ_ROUTING_MSI,
                    ..Default::default()
                };
                e.u.msi.address_lo = msi.address as u32;
                e.u.msi.address_hi = (msi.address >> 32) as u32;
                e.u.msi.data = msi.data;
                e
            })
            .collect();
        match KvmIrqRouting::from_entries(&entries) {
            Ok(table) => {
                if let Err(e) = self.vm.fd().set_gsi_routing(&table) {
                    tracing::debug!("KVM_SET_GSI_ROUTING failed: {e}");
                }
            }
            Err(e) => tracing::debug!("GSI routing table: {e:?}"),
        }
        state.routes = routes;
    }
}

/// The IOAPIC's register window on the MMIO bus.
pub struct IoapicMmio(pub Arc<UserIoapic>);

impl BusDevice for IoapicMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.lock().ioapic.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusEffect {
        let out = {
            let mut s = self.0.lock();
            let out = s.ioapic.write(offset, data);
            self.0.sync_routes(&mut s);
            out
        };
        for msi in out {
            self.0.deliver(msi);
        }
        BusEffect::None
    }

    fn reset(&mut self) {
        let mut s = self.0.lock();
        s.ioapic.reset();
        self.0.sync_routes(&mut s);
    }
}

/// Guest-physical window of the IOAPIC.
pub const IOAPIC_WINDOW: (u64, u64) = (ioapic::BASE, ioapic::SIZE);
