//! Devices of the machine. Each is a state machine behind the
//! [`BusDevice`](bus_device::BusDevice) interface: it takes
//! `(offset, bytes)` accesses, treats width and offset as hostile, and
//! reports what the machine must do as a [`BusEffect`](bus_device::BusEffect)
//! rather than acting on the machine itself. Devices depend on nothing in
//! `machine`; the machine places them on its buses.

pub mod bus_device;
pub mod debug_exit;
pub mod ioapic;
pub mod serial;
pub mod virtio;

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

/// Raises one interrupt line of a userspace interrupt controller.
pub type PulseFn = Arc<dyn Fn() + Send + Sync>;

/// An interrupt line. With the in-kernel irqchip it is an eventfd
/// registered as an irqfd; with a split irqchip a pin of the userspace
/// IOAPIC; without an irqchip it does nothing (guests poll).
#[derive(Clone, Default)]
pub struct IrqLine(Line);

#[derive(Clone, Default)]
enum Line {
    #[default]
    None,
    Eventfd(Arc<EventFd>),
    Pulse(PulseFn),
}

impl std::fmt::Debug for IrqLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Line::None => "IrqLine(none)",
            Line::Eventfd(_) => "IrqLine(irqfd)",
            Line::Pulse(_) => "IrqLine(userspace)",
        })
    }
}

impl IrqLine {
    /// A line that goes nowhere.
    pub fn none() -> Self {
        IrqLine(Line::None)
    }

    /// A line backed by an irqfd-registered eventfd.
    pub fn eventfd(fd: Arc<EventFd>) -> Self {
        IrqLine(Line::Eventfd(fd))
    }

    /// A line that calls `pulse` (a pin of a userspace controller).
    pub fn pulse(pulse: PulseFn) -> Self {
        IrqLine(Line::Pulse(pulse))
    }

    /// Raises the line (edge). A failure to signal is ignored: the guest
    /// can still poll.
    pub fn trigger(&self) {
        match &self.0 {
            Line::None => {}
            Line::Eventfd(fd) => {
                let _ = fd.write(1);
            }
            Line::Pulse(pulse) => pulse(),
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
