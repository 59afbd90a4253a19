//! An 82093AA-style I/O APIC (version 0x20, 24 pins) as a pure state
//! machine: register reads and writes, line changes and EOIs in, MSI
//! messages out. It owns no fd and no thread; the machine delivers what it
//! returns (with a split irqchip the local APICs are KVM's, and a message
//! goes to them as an MSI, as QEMU's userspace IOAPIC does).
#![forbid(unsafe_code)]
// Registers are 32-bit halves of 64-bit entries and pin numbers are below
// 24: every narrowing below is of a masked or bounded value.
#![allow(clippy::cast_possible_truncation)]

/// Number of redirection entries (pins).
pub const PINS: usize = 24;
/// Guest-physical base of the register window, as on a PC.
pub const BASE: u64 = 0xfec0_0000;
/// Size of the register window.
pub const SIZE: u64 = 0x1000;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
/// Version 0x20 has a directed-EOI register.
const IOEOI: u64 = 0x40;

const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_ARB: u32 = 0x02;
const REG_REDIR: u32 = 0x10;
const VERSION: u32 = 0x20;

const RTE_VECTOR: u64 = 0xff;
const RTE_DELIVERY_MODE_SHIFT: u32 = 8;
const RTE_DEST_MODE: u64 = 1 << 11;
const RTE_REMOTE_IRR: u64 = 1 << 14;
const RTE_LEVEL: u64 = 1 << 15;
const RTE_MASKED: u64 = 1 << 16;
const RTE_DEST_SHIFT: u32 = 56;
/// Bits the guest cannot write: delivery status (12) and remote IRR (14).
const RTE_READ_ONLY: u64 = (1 << 12) | RTE_REMOTE_IRR;

/// An interrupt message for the local APICs (the MSI format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msi {
    pub address: u64,
    pub data: u32,
}

/// The I/O APIC's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ioapic {
    id: u32,
    select: u32,
    redir: [u64; PINS],
    /// Input line levels (a pulse leaves it low).
    lines: [bool; PINS],
}

impl Default for Ioapic {
    fn default() -> Self {
        Self::new()
    }
}

impl Ioapic {
    /// Power-on state: id 0, every pin masked, edge-triggered, vector 0.
    pub fn new() -> Self {
        Ioapic {
            id: 0,
            select: 0,
            redir: [RTE_MASKED; PINS],
            lines: [false; PINS],
        }
    }

    /// Back to the power-on state (machine reset).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// A read of the register window at `offset` (any width; hostile).
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        let value = match offset {
            IOREGSEL => self.select,
            IOWIN => self.read_register(self.select),
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }

    /// A write to the register window; returns the messages it causes
    /// (unmasking a pin whose level-triggered line is up, an EOI).
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Vec<Msi> {
        let mut bytes = [0u8; 4];
        for (b, d) in bytes.iter_mut().zip(data) {
            *b = *d;
        }
        let value = u32::from_le_bytes(bytes);
        match offset {
            IOREGSEL => {
                self.select = value & 0xff;
                Vec::new()
            }
            IOWIN => self.write_register(self.select, value),
            IOEOI => self.eoi((value & 0xff) as u8),
            _ => Vec::new(),
        }
    }

    fn read_register(&self, index: u32) -> u32 {
        match index {
            REG_ID | REG_ARB => self.id << 24,
            REG_VERSION => ((PINS as u32 - 1) << 16) | VERSION,
            i if (REG_REDIR..REG_REDIR + 2 * PINS as u32).contains(&i) => {
                let entry = self.redir[((i - REG_REDIR) / 2) as usize];
                if (i - REG_REDIR).is_multiple_of(2) {
                    entry as u32
                } else {
                    (entry >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, index: u32, value: u32) -> Vec<Msi> {
        match index {
            REG_ID => self.id = (value >> 24) & 0xf,
            i if (REG_REDIR..REG_REDIR + 2 * PINS as u32).contains(&i) => {
                let pin = ((i - REG_REDIR) / 2) as usize;
                let old = self.redir[pin];
                let new = if (i - REG_REDIR).is_multiple_of(2) {
                    (old & 0xffff_ffff_0000_0000) | u64::from(value)
                } else {
                    (old & 0xffff_ffff) | (u64::from(value) << 32)
                };
                self.redir[pin] = (new & !RTE_READ_ONLY) | (old & RTE_READ_ONLY);
                if self.redir[pin] & RTE_LEVEL == 0 {
                    self.redir[pin] &= !RTE_REMOTE_IRR;
                }
                return self.service(pin).into_iter().collect();
            }
            _ => {}
        }
        Vec::new()
    }

    /// Sets input `pin` to `level`; the message it causes, if any.
    /// Out-of-range pins are ignored.
    pub fn set_irq(&mut self, pin: usize, level: bool) -> Option<Msi> {
        let was = *self.lines.get(pin)?;
        let rising = level && !was;
        self.lines[pin] = level;
        let entry = self.redir[pin];
        if entry & RTE_LEVEL != 0 {
            self.service(pin)
        } else if rising && entry & RTE_MASKED == 0 {
            Some(message(entry))
        } else {
            None
        }
    }

    /// Raises and lowers `pin` (an edge; on a level-triggered pin one
    /// delivery, as KVM's irqfd does).
    pub fn pulse(&mut self, pin: usize) -> Option<Msi> {
        let msi = self.set_irq(pin, true);
        self.set_irq(pin, false);
        msi
    }

    /// The local APIC signalled end of interrupt for `vector`: level pins
    /// waiting on it are released, and those whose line is still up are
    /// delivered again.
    pub fn eoi(&mut self, vector: u8) -> Vec<Msi> {
        let mut out = Vec::new();
        for pin in 0..PINS {
            let entry = self.redir[pin];
            if entry & RTE_REMOTE_IRR != 0 && (entry & RTE_VECTOR) as u8 == vector {
                self.redir[pin] &= !RTE_REMOTE_IRR;
                out.extend(self.service(pin));
            }
        }
        out
    }

    /// Delivers a level-triggered pin whose line is up, unmasked and not
    /// waiting for an EOI.
    fn service(&mut self, pin: usize) -> Option<Msi> {
        let entry = self.redir[pin];
        let ready =
            entry & RTE_LEVEL != 0 && self.lines[pin] && entry & (RTE_MASKED | RTE_REMOTE_IRR) == 0;
        if !ready {
            return None;
        }
        self.redir[pin] |= RTE_REMOTE_IRR;
        Some(message(entry))
    }

    /// The message of every unmasked level-triggered pin, by pin: KVM must
    /// know these vectors to report their EOIs (`KVM_EXIT_IOAPIC_EOI`).
    pub fn level_routes(&self) -> Vec<(u32, Msi)> {
        (0..PINS)
            .filter(|&p| self.redir[p] & (RTE_LEVEL | RTE_MASKED) == RTE_LEVEL)
            .map(|p| (p as u32, message(self.redir[p])))
            .collect()
    }

    /// The redirection entry of `pin` (for tests and inspection).
    pub fn entry(&self, pin: usize) -> Option<u64> {
        self.redir.get(pin).copied()
    }
}

/// The MSI a redirection entry sends: destination and destination mode in
/// the address, vector, delivery mode and trigger mode in the data.
fn message(entry: u64) -> Msi {
    let dest = (entry >> RTE_DEST_SHIFT) & 0xff;
    let logical = u64::from(entry & RTE_DEST_MODE != 0);
    let delivery_mode = ((entry >> RTE_DELIVERY_MODE_SHIFT) & 0x7) as u32;
    let level = entry & RTE_LEVEL != 0;
    let mut data = (entry & RTE_VECTOR) as u32 | (delivery_mode << 8);
    if level {
        // Trigger mode level, asserted.
        data |= (1 << 15) | (1 << 14);
    }
    Msi {
        address: 0xfee0_0000 | (dest << 12) | (logical << 2),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_reg(io: &mut Ioapic, index: u32, value: u32) -> Vec<Msi> {
        io.write(IOREGSEL, &index.to_le_bytes());
        io.write(IOWIN, &value.to_le_bytes())
    }

    fn read_reg(io: &mut Ioapic, index: u32) -> u32 {
        io.write(IOREGSEL, &index.to_le_bytes());
        let mut b = [0u8; 4];
        io.read(IOWIN, &mut b);
        u32::from_le_bytes(b)
    }

    fn program(io: &mut Ioapic, pin: u32, low: u32, dest: u8) {
        write_reg(io, REG_REDIR + 2 * pin + 1, u32::from(dest) << 24);
        write_reg(io, REG_REDIR + 2 * pin, low);
    }

    #[test]
    fn power_on_state_masks_every_pin_and_reports_version_and_pins() {
        let mut io = Ioapic::new();
        assert_eq!(read_reg(&mut io, REG_VERSION), 0x0017_0020);
        for pin in 0..PINS as u32 {
            assert_eq!(read_reg(&mut io, REG_REDIR + 2 * pin), 1 << 16);
            assert_eq!(read_reg(&mut io, REG_REDIR + 2 * pin + 1), 0);
        }
        assert_eq!(io.pulse(4), None, "a masked pin delivers nothing");
    }

    #[test]
    fn edge_pin_delivers_once_per_rising_edge() {
        let mut io = Ioapic::new();
        program(&mut io, 4, 0x34, 1);
        let m = io.pulse(4).unwrap();
        assert_eq!(m.address, 0xfee0_1000);
        assert_eq!(m.data, 0x34);
        assert_eq!(io.set_irq(4, true), Some(m));
        assert_eq!(io.set_irq(4, true), None, "no edge while the line stays up");
        io.set_irq(4, false);
        assert_eq!(io.set_irq(4, true), Some(m));
    }

    #[test]
    fn level_pin_waits_for_eoi_and_redelivers_while_up() {
        let mut io = Ioapic::new();
        program(&mut io, 9, 0x35 | (1 << 15) | (1 << 11), 3);
        let m = io.set_irq(9, true).unwrap();
        assert_eq!(m.address, 0xfee0_3004, "logical destination mode");
        assert_eq!(m.data, 0x35 | (1 << 15) | (1 << 14));
        assert_ne!(io.entry(9).unwrap() & RTE_REMOTE_IRR, 0);
        assert_eq!(
            io.set_irq(9, true),
            None,
            "remote IRR holds further deliveries"
        );
        assert_eq!(io.eoi(0x36), vec![], "another vector's EOI");
        assert_eq!(io.eoi(0x35), vec![m], "still up: delivered again");
        io.set_irq(9, false);
        assert!(io.eoi(0x35).is_empty());
        assert_eq!(io.entry(9).unwrap() & RTE_REMOTE_IRR, 0);
        // The directed-EOI register does the same.
        io.set_irq(9, true);
        assert_eq!(io.write(IOEOI, &[0x35, 0, 0, 0]), vec![m]);
    }

    #[test]
    fn unmasking_a_raised_level_pin_delivers_and_the_guest_cannot_set_remote_irr() {
        let mut io = Ioapic::new();
        program(&mut io, 5, 0x40 | (1 << 15) | (1 << 16), 0);
        assert_eq!(io.set_irq(5, true), None);
        assert_eq!(io.level_routes(), vec![]);
        let out = write_reg(&mut io, REG_REDIR + 10, 0x40 | (1 << 15));
        assert_eq!(out.len(), 1);
        assert_eq!(io.level_routes(), vec![(5, out[0])]);
        let entry = read_reg(&mut io, REG_REDIR + 10);
        assert_ne!(entry & (1 << 14), 0);
        // Writing 0 to remote IRR does not clear it; switching to edge does.
        write_reg(&mut io, REG_REDIR + 10, 0x40 | (1 << 15) | (1 << 16));
        assert_ne!(read_reg(&mut io, REG_REDIR + 10) & (1 << 14), 0);
        write_reg(&mut io, REG_REDIR + 10, 0x40 | (1 << 16));
        assert_eq!(read_reg(&mut io, REG_REDIR + 10) & (1 << 14), 0);
    }

    #[test]
    fn reset_returns_to_power_on_state() {
        let mut io = Ioapic::new();
        write_reg(&mut io, REG_ID, 7 << 24);
        program(&mut io, 1, 0x21 | (1 << 15), 1);
        io.set_irq(1, true);
        io.reset();
        assert_eq!(io, Ioapic::new());
        assert_eq!(read_reg(&mut io, REG_ID), 0);
    }

    #[test]
    fn hostile_accesses_are_harmless() {
        let mut io = Ioapic::new();
        assert_eq!(io.set_irq(PINS, true), None);
        assert_eq!(io.pulse(usize::MAX), None);
        io.write(IOREGSEL, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let mut big = [0xaau8; 8];
        io.read(IOWIN, &mut big);
        assert_eq!(big, [0; 8]);
        assert!(io.write(IOWIN, &[1]).is_empty());
        assert!(io.write(0x800, &[1, 2, 3]).is_empty());
        let mut one = [0u8; 1];
        io.read(0xfff, &mut one);
    }
}
