//! The guest-physical map of the machine, compatible with QEMU's `microvm`
//! (docs/machine.md). Pure: addresses and sizes only, no KVM, no memory.
//!
//! ```text
//! 0x0000_0000 ..                RAM (low part)
//! 1 MiB - mirror .. 1 MiB       last ≤128 KiB of the firmware, read-only (only with -bios)
//! 1 MiB .. LOW_RAM_END          RAM (rest of the low part)
//! 0xfeb0_0000 .. +24*0x200      virtio-mmio transports (slot 23 holds the first drive)
//! 4 GiB - fw .. 4 GiB           firmware (-bios), read-only, ≤ 16 MiB
//! 4 GiB ..                      RAM above LOW_RAM_END, if any
//! ```
//!
//! Port I/O: 8250 UART at 0x3f8 (IRQ 4); isa-debug-exit where configured.
#![forbid(unsafe_code)]

/// 1 MiB.
pub const MIB: u64 = 1 << 20;
/// 4 GiB: the firmware ends here; RAM that does not fit below
/// [`LOW_RAM_END`] continues here.
pub const FOUR_GIB: u64 = 1 << 32;
/// Highest end of RAM below 4 GiB (QEMU microvm keeps RAM below 3.5 GiB).
pub const LOW_RAM_END: u64 = 0xe000_0000;
/// Largest firmware image accepted (QEMU's pflash/bios limit on microvm).
pub const FIRMWARE_MAX: u64 = 16 * MIB;
/// How much of the firmware's end is mirrored below 1 MiB (the ISA BIOS area).
pub const FIRMWARE_MIRROR_MAX: u64 = 128 * 1024;
/// KVM memory slots are page granular.
pub const PAGE: u64 = 4096;

/// 8250 UART (COM1).
pub const SERIAL_PORT: u16 = 0x3f8;
/// The UART's eight registers.
pub const SERIAL_PORT_LEN: u16 = 8;
/// COM1's ISA interrupt line.
pub const SERIAL_IRQ: u32 = 4;

/// First virtio-mmio transport.
pub const VIRTIO_MMIO_BASE: u64 = 0xfeb0_0000;
/// Bytes per virtio-mmio transport.
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
/// Number of virtio-mmio transports (QEMU microvm: 24).
pub const VIRTIO_MMIO_SLOTS: usize = 24;
/// Guest interrupt line of slot 0; slot `i` uses `VIRTIO_IRQ_BASE + i % 19`
/// so every line fits the in-kernel IOAPIC's 24 pins (lines may be shared;
/// the transport's InterruptStatus register tells them apart).
pub const VIRTIO_IRQ_BASE: u32 = 5;

/// A guest-physical range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub len: u64,
}

impl Range {
    /// One past the last byte (saturating; ranges here never reach 2^64).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("memory size {mib} MiB is too small (at least 2 MiB)")]
    MemoryTooSmall { mib: u64 },
    #[error("memory size {mib} MiB is too large")]
    MemoryTooLarge { mib: u64 },
    #[error("firmware image is empty")]
    FirmwareEmpty,
    #[error("firmware image is {size} bytes; at most 16 MiB is supported")]
    FirmwareTooLarge { size: u64 },
}

/// Where RAM and firmware go for one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLayout {
    /// RAM regions, ascending, non-overlapping.
    pub ram: Vec<Range>,
    /// The firmware mapping (page-rounded; the image is placed at its end).
    pub firmware: Option<Range>,
    /// The firmware mirror below 1 MiB: the last `len` bytes of `firmware`.
    pub firmware_mirror: Option<Range>,
}

/// Page-rounded size of a firmware image of `size` bytes.
pub fn firmware_mapping_len(size: u64) -> Result<u64, LayoutError> {
    if size == 0 {
        return Err(LayoutError::FirmwareEmpty);
    }
    if size > FIRMWARE_MAX {
        return Err(LayoutError::FirmwareTooLarge { size });
    }
    Ok(size.div_ceil(PAGE) * PAGE)
}

impl MemoryLayout {
    /// Lays out `memory_mib` of RAM and, when given, a firmware image of
    /// `firmware_size` bytes.
    pub fn new(memory_mib: u64, firmware_size: Option<u64>) -> Result<Self, LayoutError> {
        if memory_mib < 2 {
            return Err(LayoutError::MemoryTooSmall { mib: memory_mib });
        }
        // 1 TiB is far beyond anything this machine is for; it also keeps
        // every sum below from overflowing.
        if memory_mib > 1 << 20 {
            return Err(LayoutError::MemoryTooLarge { mib: memory_mib });
        }
        let ram_size = memory_mib * MIB;
        let fw_len = firmware_size.map(firmware_mapping_len).transpose()?;
        let firmware = fw_len.map(|len| Range {
            start: FOUR_GIB - len,
            len,
        });
        let firmware_mirror = fw_len.map(|len| {
            let mlen = len.min(FIRMWARE_MIRROR_MAX);
            Range {
                start: MIB - mlen,
                len: mlen,
            }
        });

        let low = ram_size.min(LOW_RAM_END);
        let mut ram = Vec::new();
        match firmware_mirror {
            // RAM below the mirror, then from 1 MiB; the mirrored bytes of
            // RAM are shadowed, as on a PC.
            Some(m) => {
                ram.push(Range {
                    start: 0,
                    len: m.start,
                });
                ram.push(Range {
                    start: MIB,
                    len: low - MIB,
                });
            }
            None => ram.push(Range { start: 0, len: low }),
        }
        if ram_size > low {
            ram.push(Range {
                start: FOUR_GIB,
                len: ram_size - low,
            });
        }
        Ok(MemoryLayout {
            ram,
            firmware,
            firmware_mirror,
        })
    }
}

/// Guest-physical base of virtio-mmio slot `slot`.
pub fn virtio_mmio_base(slot: usize) -> u64 {
    // slot < 24, so this cannot overflow.
    VIRTIO_MMIO_BASE + (slot as u64) * VIRTIO_MMIO_STRIDE
}

/// The slot the `n`-th virtio device (command-line order) occupies: QEMU
/// fills from the top, so the first device is slot 23.
pub fn slot_for_device(n: usize) -> Option<usize> {
    VIRTIO_MMIO_SLOTS.checked_sub(n.checked_add(1)?)
}

/// Interrupt line (GSI) of virtio-mmio slot `slot`.
pub fn virtio_irq(slot: usize) -> u32 {
    // slot % 19 < 19 fits any integer type.
    VIRTIO_IRQ_BASE + u32::try_from(slot % 19).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_ends_at_4g_and_mirror_below_1m() {
        let l = MemoryLayout::new(128, Some(64 * 1024)).unwrap();
        assert_eq!(
            l.firmware,
            Some(Range {
                start: 0xffff_0000,
                len: 0x10000
            })
        );
        assert_eq!(
            l.firmware_mirror,
            Some(Range {
                start: 0xf_0000,
                len: 0x10000
            })
        );
        assert_eq!(
            l.ram,
            vec![
                Range {
                    start: 0,
                    len: 0xf_0000
                },
                Range {
                    start: MIB,
                    len: 127 * MIB
                }
            ]
        );

        let l = MemoryLayout::new(128, Some(2 * MIB)).unwrap();
        assert_eq!(
            l.firmware,
            Some(Range {
                start: FOUR_GIB - 2 * MIB,
                len: 2 * MIB
            })
        );
        assert_eq!(
            l.firmware_mirror,
            Some(Range {
                start: 0xe_0000,
                len: 0x2_0000
            })
        );
        assert_eq!(
            l.ram[0],
            Range {
                start: 0,
                len: 0xe_0000
            }
        );
    }

    #[test]
    fn odd_firmware_sizes_round_to_pages() {
        let l = MemoryLayout::new(16, Some(100)).unwrap();
        assert_eq!(
            l.firmware,
            Some(Range {
                start: FOUR_GIB - PAGE,
                len: PAGE
            })
        );
        assert_eq!(
            l.firmware_mirror,
            Some(Range {
                start: MIB - PAGE,
                len: PAGE
            })
        );
        assert_eq!(
            MemoryLayout::new(16, Some(0)),
            Err(LayoutError::FirmwareEmpty)
        );
        assert_eq!(
            MemoryLayout::new(16, Some(16 * MIB + 1)),
            Err(LayoutError::FirmwareTooLarge { size: 16 * MIB + 1 })
        );
        assert!(MemoryLayout::new(16, Some(16 * MIB)).is_ok());
    }

    #[test]
    fn ram_without_firmware_is_one_block_and_splits_above_low_end() {
        let l = MemoryLayout::new(64, None).unwrap();
        assert_eq!(
            l.ram,
            vec![Range {
                start: 0,
                len: 64 * MIB
            }]
        );
        let l = MemoryLayout::new(4096, None).unwrap();
        assert_eq!(
            l.ram,
            vec![
                Range {
                    start: 0,
                    len: LOW_RAM_END
                },
                Range {
                    start: FOUR_GIB,
                    len: 4096 * MIB - LOW_RAM_END
                }
            ]
        );
        assert_eq!(
            MemoryLayout::new(1, None),
            Err(LayoutError::MemoryTooSmall { mib: 1 })
        );
    }

    #[test]
    fn nothing_overlaps_mmio_or_firmware() {
        for mib in [2, 128, 3584, 3585, 8192] {
            let l = MemoryLayout::new(mib, Some(16 * MIB)).unwrap();
            let mmio = Range {
                start: VIRTIO_MMIO_BASE,
                len: VIRTIO_MMIO_STRIDE * VIRTIO_MMIO_SLOTS as u64,
            };
            let mut all = l.ram.clone();
            all.push(l.firmware.unwrap());
            all.push(l.firmware_mirror.unwrap());
            all.push(mmio);
            for (i, a) in all.iter().enumerate() {
                for b in &all[i + 1..] {
                    assert!(
                        a.end() <= b.start || b.end() <= a.start,
                        "{a:?} overlaps {b:?}"
                    );
                }
            }
            let total: u64 = l.ram.iter().map(|r| r.len).sum();
            assert_eq!(total + l.firmware_mirror.unwrap().len, mib * MIB);
        }
    }

    #[test]
    fn slots_fill_from_the_top() {
        assert_eq!(slot_for_device(0), Some(23));
        assert_eq!(slot_for_device(2), Some(21));
        assert_eq!(slot_for_device(23), Some(0));
        assert_eq!(slot_for_device(24), None);
        assert_eq!(virtio_mmio_base(23), 0xfeb0_2e00);
        for s in 0..VIRTIO_MMIO_SLOTS {
            assert!((5..24).contains(&virtio_irq(s)));
        }
    }
}
