//! The 8250 UART at 0x3f8 (vm-superio's `Serial`), adapted to the bus.
//! Output goes to the configured writer, flushed per byte so nothing is
//! lost when the emulator exits; the interrupt goes to IRQ 4. While the
//! writer cannot take a byte (a socket client that is not reading), the
//! line status shows the transmitter busy, so a guest that polls it waits
//! instead of losing output.
#![forbid(unsafe_code)]

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::Serial;

use super::IrqLine;
use crate::devices::bus_device::{BusDevice, BusEffect};

/// Where the UART's bytes go.
pub trait SerialOutput: Write + Send {
    /// Whether a byte written now would be taken. While false the UART's
    /// LSR has THRE and TEMT clear.
    fn ready(&self) -> bool {
        true
    }
}

impl SerialOutput for std::io::Sink {}

/// Line status register offset and its "transmitter holding register
/// empty" and "transmitter empty" bits.
const LSR: u8 = 5;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;

/// Writes through and flushes at once (the UART emits single bytes).
pub struct FlushingWriter(Box<dyn SerialOutput>);

impl Write for FlushingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        self.0.flush()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

pub struct SerialDevice {
    uart: Serial<IrqLine, NoEvents, FlushingWriter>,
}

impl SerialDevice {
    fn read_register(&mut self, offset: u8) -> u8 {
        let v = self.uart.read(offset);
        if offset == LSR && !self.uart.writer().0.ready() {
            v & !(LSR_THRE | LSR_TEMT)
        } else {
            v
        }
    }
}

impl SerialDevice {
    pub fn new(out: Box<dyn SerialOutput>, irq: IrqLine) -> Self {
        SerialDevice {
            uart: Serial::new(irq, FlushingWriter(out)),
        }
    }

    /// Queues bytes for the guest to read (input side of `-serial`).
    /// Returns how many fit in the FIFO.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        self.uart.enqueue_raw_bytes(bytes).unwrap_or(0)
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Byte registers; a wider access reads consecutive registers.
        for (i, b) in data.iter_mut().enumerate() {
            *b = match offset
                .checked_add(i as u64)
                .and_then(|o| u8::try_from(o).ok())
            {
                Some(o) if o < 8 => self.read_register(o),
                _ => 0xff,
            };
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusEffect {
        for (i, b) in data.iter().enumerate() {
            if let Some(o) = offset
                .checked_add(i as u64)
                .and_then(|o| u8::try_from(o).ok())
            {
                if o < 8 {
                    // An output error (closed pipe, full disk) drops the
                    // byte, as a real UART with nothing attached would.
                    let _ = self.uart.write(o, *b);
                }
            }
        }
        BusEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>, Arc<std::sync::atomic::AtomicBool>);
    impl SerialOutput for Sink {
        fn ready(&self) -> bool {
            !self.1.load(std::sync::atomic::Ordering::Relaxed)
        }
    }
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_output_shows_the_transmitter_busy() {
        let sink = Sink::default();
        let mut s = SerialDevice::new(Box::new(sink.clone()), IrqLine::none());
        let lsr = |s: &mut SerialDevice| {
            let mut b = [0u8];
            s.read(u64::from(LSR), &mut b);
            b[0]
        };
        assert_eq!(lsr(&mut s) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
        sink.1.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(lsr(&mut s) & (LSR_THRE | LSR_TEMT), 0);
        sink.1.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(lsr(&mut s) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
    }

    #[test]
    fn bytes_written_to_thr_come_out() {
        let sink = Sink::default();
        let mut s = SerialDevice::new(Box::new(sink.clone()), IrqLine::none());
        for b in b"hi\n" {
            s.write(0, &[*b]);
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"hi\n");
        // Line status: transmitter empty.
        let mut lsr = [0u8];
        s.read(5, &mut lsr);
        assert_ne!(lsr[0] & 0x60, 0);
        // Hostile offsets do nothing.
        s.write(u64::MAX, &[1, 2]);
        let mut v = [0u8; 2];
        s.read(u64::MAX, &mut v);
        assert_eq!(v, [0xff, 0xff]);
    }

    #[test]
    fn input_is_readable() {
        let mut s = SerialDevice::new(Box::new(std::io::sink()), IrqLine::none());
        assert_eq!(s.enqueue_input(b"x"), 1);
        let mut b = [0u8];
        s.read(0, &mut b);
        assert_eq!(b, [b'x']);
    }
}
