//! Devices of the machine. Each is a state machine behind the
//! [`BusDevice`](bus_device::BusDevice) interface: it takes
//! `(offset, bytes)` accesses, treats width and offset as hostile, and
//! reports what the machine must do as a [`BusEffect`](bus_device::BusEffect)
//! rather than acting on the machine itself. Devices depend on nothing in
//! `machine`; the machine places them on its buses.

pub mod bus_device;
pub mod debug_exit;
pub mod serial;
pub mod virtio;

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

/// An interrupt line. With the in-kernel irqchip it is an eventfd
/// registered as an irqfd; without one it does nothing (guests poll).
#[derive(Clone, Debug, Default)]
pub struct IrqLine(Option<Arc<EventFd>>);

impl IrqLine {
    /// A line that goes nowhere.
    pub fn none() -> Self {
        IrqLine(None)
    }

    /// A line backed by an irqfd-registered eventfd.
    pub fn eventfd(fd: Arc<EventFd>) -> Self {
        IrqLine(Some(fd))
    }

    /// Raises the line (edge). A failure to signal is ignored: the guest
    /// can still poll.
    pub fn trigger(&self) {
        if let Some(fd) = &self.0 {
            let _ = fd.write(1);
        }
    }
}

impl vm_superio::Trigger for IrqLine {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        IrqLine::trigger(self);
        Ok(())
    }
}
