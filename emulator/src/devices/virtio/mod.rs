//! virtio-mmio devices: the transport register file (`mmio.rs`, pure), the
//! split ring (`queue.rs`) and the block device (`blk/`). This file glues a
//! transport to a backend and an interrupt line.

pub mod blk;
pub mod mmio;
pub mod queue;

use vm_memory::GuestMemoryMmap;

use self::mmio::{MmioEffect, MmioRegisters, QueueConfig};
use super::IrqLine;
use crate::devices::bus_device::{BusDevice, BusEffect};

/// A fault that leaves the device unable to go on: the transport sets
/// DEVICE_NEEDS_RESET (virtio 1.x §2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceFault {
    #[error("virtqueue: {0}")]
    Queue(#[from] queue::QueueError),
    #[error("virtio-blk: {0}")]
    Blk(#[from] blk::request::BlkError),
    #[error("status byte is not in guest RAM")]
    StatusNotInRam,
}

/// What a virtio device provides to its transport.
pub trait VirtioBackend: Send {
    fn device_id(&self) -> u32;
    /// Device features (VIRTIO_F_VERSION_1 is added by the transport).
    fn features(&self) -> u64;
    fn queue_max_sizes(&self) -> Vec<u16>;
    /// Device configuration space (read-only to the guest).
    fn config(&self) -> Vec<u8>;
    /// The driver notified queue `index`; `Ok(true)` when buffers were used.
    fn notify(
        &mut self,
        index: u16,
        cfg: &QueueConfig,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceFault>;
    /// Drop all queue state (driver or machine reset).
    fn reset(&mut self);
}

/// Work to do once, when a transport's driver first sets DRIVER_OK.
pub type OnLive = Box<dyn FnOnce() + Send>;

/// One virtio-mmio slot: a transport with or without a device behind it.
pub struct VirtioMmioDevice {
    regs: MmioRegisters,
    backend: Option<Box<dyn VirtioBackend>>,
    mem: GuestMemoryMmap,
    irq: IrqLine,
    last_fault: Option<DeviceFault>,
    /// Called once, when the driver first sets DRIVER_OK.
    on_live: Option<OnLive>,
}

impl VirtioMmioDevice {
    /// An empty slot (magic, version 2, device id 0).
    pub fn empty(mem: GuestMemoryMmap) -> Self {
        VirtioMmioDevice {
            regs: MmioRegisters::empty(),
            backend: None,
            mem,
            irq: IrqLine::none(),
            last_fault: None,
            on_live: None,
        }
    }

    pub fn new(backend: Box<dyn VirtioBackend>, mem: GuestMemoryMmap, irq: IrqLine) -> Self {
        let regs = MmioRegisters::new(
            backend.device_id(),
            backend.features(),
            &backend.queue_max_sizes(),
            backend.config(),
        );
        VirtioMmioDevice {
            regs,
            backend: Some(backend),
            mem,
            irq,
            last_fault: None,
            on_live: None,
        }
    }

    /// `f` runs once, when the driver first makes the device live
    /// (DRIVER_OK), on the thread that wrote the status: QEMU starts its
    /// ioeventfds at that point too.
    pub fn on_first_live(&mut self, f: OnLive) {
        self.on_live = Some(f);
    }

    /// The last fault that set DEVICE_NEEDS_RESET, for diagnostics.
    pub fn last_fault(&self) -> Option<DeviceFault> {
        self.last_fault
    }

    fn notify(&mut self, index: u16) {
        let (Some(backend), Some(cfg)) = (self.backend.as_mut(), self.regs.queue(index).copied())
        else {
            return;
        };
        match backend.notify(index, &cfg, &self.mem) {
            // As QEMU: with NO_INTERRUPT set neither the interrupt nor its
            // InterruptStatus bit, which a polling driver would only have
            // to read and acknowledge (two more exits per request).
            Ok(true) if queue::driver_wants_interrupt(&self.mem, &cfg) => {
                self.regs.signal_used();
                self.irq.trigger();
            }
            Ok(_) => {}
            Err(fault) => {
                self.last_fault = Some(fault);
                self.regs.set_needs_reset();
                self.irq.trigger();
            }
        }
    }
}

impl BusDevice for VirtioMmioDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.regs.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusEffect {
        match self.regs.write(offset, data) {
            MmioEffect::None => {}
            MmioEffect::Notify(q) => self.notify(q),
            MmioEffect::Reset => {
                if let Some(b) = self.backend.as_mut() {
                    b.reset();
                }
            }
        }
        if self.on_live.is_some() && self.regs.is_live() {
            if let Some(f) = self.on_live.take() {
                f();
            }
        }
        BusEffect::None
    }

    fn reset(&mut self) {
        self.regs.reset();
        if let Some(b) = self.backend.as_mut() {
            b.reset();
        }
    }
}
