//! The interface every device implements and the machine's buses route
//! to ([`crate::machine::bus`]). It lives with the devices so that they
//! need nothing from the machine.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

/// What a device asks of the machine after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusEffect {
    None,
    /// isa-debug-exit was written with this value.
    DebugExit(u64),
}

/// A device on a bus. Offsets are relative to the device's base; width and
/// offset come from the guest and are hostile: an unknown register
/// ignores writes and reads zeros.
pub trait BusDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]) -> BusEffect;
    /// Machine reset.
    fn reset(&mut self) {}
}

pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;
