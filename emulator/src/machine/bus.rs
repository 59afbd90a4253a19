//! Routing of port I/O and MMIO accesses to devices by address range.
#![forbid(unsafe_code)]

use std::sync::MutexGuard;

pub use crate::devices::bus_device::{BusDevice, BusEffect, SharedDevice};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("device range {base:#x}+{len:#x} overlaps another device or is empty")]
    Overlap { base: u64, len: u64 },
}

struct Entry {
    base: u64,
    len: u64,
    dev: SharedDevice,
}

/// An address space (port I/O or MMIO) of non-overlapping device ranges.
#[derive(Default)]
pub struct Bus {
    entries: Vec<Entry>,
}

fn lock(dev: &SharedDevice) -> MutexGuard<'_, dyn BusDevice + 'static> {
    // panic = "abort": a poisoned lock cannot be observed; take it anyway.
    dev.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bus {
    pub fn new() -> Self {
        Bus::default()
    }

    /// Adds `dev` at `[base, base + len)`.
    pub fn insert(&mut self, base: u64, len: u64, dev: SharedDevice) -> Result<(), BusError> {
        let overlap = BusError::Overlap { base, len };
        let end = base.checked_add(len).filter(|_| len > 0).ok_or(overlap)?;
        if self
            .entries
            .iter()
            .any(|e| base < e.base + e.len && e.base < end)
        {
            return Err(overlap);
        }
        let at = self.entries.partition_point(|e| e.base < base);
        self.entries.insert(at, Entry { base, len, dev });
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(&Entry, u64)> {
        let i = self
            .entries
            .partition_point(|e| e.base <= addr)
            .checked_sub(1)?;
        let e = &self.entries[i];
        let off = addr - e.base;
        (off < e.len).then_some((e, off))
    }

    /// A read; `false` when no device is there (the caller decides what
    /// an unassigned read returns).
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((e, off)) => {
                lock(&e.dev).read(off, data);
                true
            }
            None => false,
        }
    }

    /// A write; unassigned writes are ignored.
    pub fn write(&self, addr: u64, data: &[u8]) -> BusEffect {
        match self.find(addr) {
            Some((e, off)) => lock(&e.dev).write(off, data),
            None => BusEffect::None,
        }
    }

    /// Resets every device (machine reset).
    pub fn reset(&self) {
        for e in &self.entries {
            lock(&e.dev).reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Echo(u8);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0.wrapping_add(u8::try_from(offset).unwrap_or(0)));
        }
        fn write(&mut self, offset: u64, _data: &[u8]) -> BusEffect {
            BusEffect::DebugExit(offset)
        }
    }

    #[test]
    fn routes_by_range_and_refuses_overlap() {
        let mut bus = Bus::new();
        bus.insert(0x3f8, 8, Arc::new(Mutex::new(Echo(10))))
            .unwrap();
        bus.insert(0xf4, 4, Arc::new(Mutex::new(Echo(20)))).unwrap();
        assert_eq!(
            bus.insert(0x3fc, 8, Arc::new(Mutex::new(Echo(0)))),
            Err(BusError::Overlap {
                base: 0x3fc,
                len: 8
            })
        );
        assert_eq!(
            bus.insert(0x3f0, 9, Arc::new(Mutex::new(Echo(0)))),
            Err(BusError::Overlap {
                base: 0x3f0,
                len: 9
            })
        );
        assert!(bus.insert(0, 0, Arc::new(Mutex::new(Echo(0)))).is_err());
        assert!(bus
            .insert(u64::MAX, 2, Arc::new(Mutex::new(Echo(0))))
            .is_err());
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fa, &mut b));
        assert_eq!(b, [12]);
        assert!(bus.read(0xf7, &mut b));
        assert_eq!(b, [23]);
        assert!(!bus.read(0xf8, &mut b));
        assert!(!bus.read(0x3f7, &mut b));
        assert!(!bus.read(0x400, &mut b));
        assert_eq!(bus.write(0x3ff, &[0]), BusEffect::DebugExit(7));
        assert_eq!(bus.write(0x400, &[0]), BusEffect::None);
        assert_eq!(bus.write(u64::MAX, &[0]), BusEffect::None);
    }
}
