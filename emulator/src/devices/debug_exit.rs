//! QEMU's `isa-debug-exit`: a guest write of `v` ends the emulator with
//! exit status `(v << 1) | 1`. The device only reports the value; the
//! machine stops and maps it to the status.
#![forbid(unsafe_code)]

use crate::devices::bus_device::{BusDevice, BusEffect};

#[derive(Debug, Default)]
pub struct DebugExit;

impl BusDevice for DebugExit {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) -> BusEffect {
        // Little-endian value of the access, as wide as the access (≤ 8).
        let mut v = [0u8; 8];
        let n = data.len().min(8);
        v[..n].copy_from_slice(&data[..n]);
        BusEffect::DebugExit(u64::from_le_bytes(v))
    }
}

/// The process exit status QEMU uses for a debug-exit write of `value`.
pub fn exit_status(value: u64) -> i32 {
    i32::from(u8::try_from(((value << 1) | 1) & 0xff).unwrap_or(u8::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_qemu() {
        assert_eq!(exit_status(0), 1);
        assert_eq!(exit_status(0x10), 0x21);
        assert_eq!(exit_status(0x7f), 0xff);
        assert_eq!(exit_status(0x80), 1); // truncated to 8 bits by the OS
        let mut d = DebugExit;
        assert_eq!(d.write(0, &[0x31]), BusEffect::DebugExit(0x31));
        assert_eq!(d.write(2, &[1, 2, 0, 0]), BusEffect::DebugExit(0x201));
        assert_eq!(d.write(0, &[]), BusEffect::DebugExit(0));
    }
}
