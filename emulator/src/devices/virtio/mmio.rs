//! The virtio-mmio transport's register file (virtio 1.x "modern", version
//! 2), as a pure state machine: `read(offset, data)` / `write(offset, data)
//! -> MmioEffect`. No guest memory, no fds; the device shell in
//! `virtio/mod.rs` acts on the effects. Width and offset are hostile:
//! unknown registers ignore writes and read zeros.
//!
//! Width and offset are treated as hostile: registers need aligned 32-bit
//! accesses; anything else reads zeros and ignores writes, as QEMU does.
#![forbid(unsafe_code)]

/// "virt", little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// Modern virtio-mmio.
pub const VERSION: u32 = 2;
/// QEMU's vendor id ("QEMU"), which empty slots report too.
pub const VENDOR_ID: u32 = 0x554d_4551;

pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
}

/// InterruptStatus bits.
pub const INT_USED_RING: u32 = 1;
pub const INT_CONFIG: u32 = 2;

/// VIRTIO_F_VERSION_1: required of every driver (no legacy interface).
pub const F_VERSION_1: u64 = 1 << 32;

/// What the device shell must do after a register write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioEffect {
    None,
    /// The driver notified queue `n` (ready, device live).
    Notify(u16),
    /// The driver reset the device (status 0): drop in-flight state.
    Reset,
}

/// A queue's driver-supplied configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    pub max_size: u16,
    pub size: u16,
    pub ready: bool,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
}

impl QueueConfig {
    fn new(max_size: u16) -> Self {
        QueueConfig {
            max_size,
            size: max_size,
            ready: false,
            desc: 0,
            driver: 0,
            device: 0,
        }
    }

    /// Size and alignment rules of a split queue (virtio 1.x §2.7):
    /// size a power of two within max, descriptor table 16-byte aligned,
    /// driver area 2-byte, device area 4-byte.
    pub fn is_valid(&self) -> bool {
        self.size != 0
            && self.size <= self.max_size
            && self.size.is_power_of_two()
            && self.desc.is_multiple_of(16)
            && self.driver.is_multiple_of(2)
            && self.device.is_multiple_of(4)
    }
}

/// The register file of one transport.
#[derive(Debug, Clone)]
pub struct MmioRegisters {
    /// `None`: an empty slot.
    device_id: Option<u32>,
    device_features: u64,
    config: Vec<u8>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<QueueConfig>,
    status: u32,
    interrupt_status: u32,
    config_generation: u32,
}

fn set_half(word: &mut u64, high: bool, value: u32) {
    if high {
        *word = (*word & 0xffff_ffff) | (u64::from(value) << 32);
    } else {
        *word = (*word & !0xffff_ffff) | u64::from(value);
    }
}

fn half(word: u64, high: bool) -> u32 {
    let v = if high { word >> 32 } else { word & 0xffff_ffff };
    u32::try_from(v).unwrap_or(0)
}

impl MmioRegisters {
    /// A transport with a device behind it. `F_VERSION_1` is always offered.
    pub fn new(device_id: u32, device_features: u64, queue_max: &[u16], config: Vec<u8>) -> Self {
        MmioRegisters {
            device_id: Some(device_id),
            device_features: device_features | F_VERSION_1,
            config,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: queue_max.iter().map(|&m| QueueConfig::new(m)).collect(),
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
        }
    }

    /// An empty slot: magic, version and vendor only; writes are ignored.
    pub fn empty() -> Self {
        MmioRegisters {
            device_id: None,
            device_features: 0,
            config: Vec::new(),
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: Vec::new(),
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
        }
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// Negotiated features (only meaningful once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    pub fn queue(&self, index: u16) -> Option<&QueueConfig> {
        self.queues.get(usize::from(index))
    }

    /// Whether queues may be processed: DRIVER_OK set, not broken.
    pub fn is_live(&self) -> bool {
        self.status & status::DRIVER_OK != 0 && self.status & status::DEVICE_NEEDS_RESET == 0
    }

    /// The device used a buffer: raise the used-ring interrupt bit.
    pub fn signal_used(&mut self) {
        self.interrupt_status |= INT_USED_RING;
    }

    /// The device hit an error it cannot report per request: set
    /// DEVICE_NEEDS_RESET and raise a configuration interrupt (virtio 1.x
    /// §2.1.2). Queues stop until the driver resets the device.
    pub fn set_needs_reset(&mut self) {
        if self.device_id.is_some() {
            self.status |= status::DEVICE_NEEDS_RESET;
            self.interrupt_status |= INT_CONFIG;
        }
    }

    /// Back to the power-on state (device reset by the driver or the machine).
    pub fn reset(&mut self) {
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        for q in &mut self.queues {
            *q = QueueConfig::new(q.max_size);
        }
        self.status = 0;
        self.interrupt_status = 0;
    }

    fn selected(&self) -> Option<&QueueConfig> {
        self.queues.get(usize::try_from(self.queue_sel).ok()?)
    }

    fn selected_mut(&mut self) -> Option<&mut QueueConfig> {
        self.queues.get_mut(usize::try_from(self.queue_sel).ok()?)
    }

    fn read_reg(&self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC => return MAGIC,
            reg::VERSION => return VERSION,
            reg::VENDOR_ID => return VENDOR_ID,
            _ => {}
        }
        let Some(device_id) = self.device_id else {
            return 0;
        };
        match offset {
            reg::DEVICE_ID => device_id,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => half(self.device_features, false),
                1 => half(self.device_features, true),
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected().map_or(0, |q| u32::from(q.max_size)),
            reg::QUEUE_READY => self.selected().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            reg::QUEUE_DESC_LOW => self.selected().map_or(0, |q| half(q.desc, false)),
            reg::QUEUE_DESC_HIGH => self.selected().map_or(0, |q| half(q.desc, true)),
            reg::QUEUE_DRIVER_LOW => self.selected().map_or(0, |q| half(q.driver, false)),
            reg::QUEUE_DRIVER_HIGH => self.selected().map_or(0, |q| half(q.driver, true)),
            reg::QUEUE_DEVICE_LOW => self.selected().map_or(0, |q| half(q.device, false)),
            reg::QUEUE_DEVICE_HIGH => self.selected().map_or(0, |q| half(q.device, true)),
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    /// A guest read of `data.len()` bytes at `offset` within the transport.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= reg::CONFIG {
            if self.device_id.is_none() {
                return;
            }
            let Ok(start) = usize::try_from(offset - reg::CONFIG) else {
                return;
            };
            for (i, b) in data.iter_mut().enumerate() {
                if let Some(v) = start.checked_add(i).and_then(|j| self.config.get(j)) {
                    *b = *v;
                }
            }
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            return;
        }
        data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
    }

    /// A guest write at `offset`; returns what the shell must do.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> MmioEffect {
        if self.device_id.is_none() || offset >= reg::CONFIG {
            // Empty slot; or device config space, which is read-only for
            // the devices here (no writable config features offered).
            return MmioEffect::None;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return MmioEffect::None;
        };
        if !offset.is_multiple_of(4) {
            return MmioEffect::None;
        }
        let v = u32::from_le_bytes(bytes);
        // Queue layout may change only while the queue is not ready.
        let queue_writable = self.selected().is_some_and(|q| !q.ready);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::DRIVER_FEATURES
                // Only before FEATURES_OK (virtio 1.x §3.1.1).
                if self.status & status::FEATURES_OK == 0 => {
                    match self.driver_features_sel {
                        0 => set_half(&mut self.driver_features, false, v),
                        1 => set_half(&mut self.driver_features, true, v),
                        _ => {}
                    }
                }
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM if queue_writable => {
                if let Some(q) = self.selected_mut() {
                    q.size = u16::try_from(v).unwrap_or(0);
                }
            }
            reg::QUEUE_READY => return self.write_queue_ready(v),
            reg::QUEUE_NOTIFY
                if self.is_live() => {
                    if let Ok(n) = u16::try_from(v) {
                        if self.queue(n).is_some_and(|q| q.ready) {
                            return MmioEffect::Notify(n);
                        }
                    }
                }
            reg::INTERRUPT_ACK => self.interrupt_status &= !v,
            reg::STATUS => return self.write_status(v),
            reg::QUEUE_DESC_LOW if queue_writable => {
                self.with_queue(|q| set_half(&mut q.desc, false, v))
            }
            reg::QUEUE_DESC_HIGH if queue_writable => {
                self.with_queue(|q| set_half(&mut q.desc, true, v))
            }
            reg::QUEUE_DRIVER_LOW if queue_writable => {
                self.with_queue(|q| set_half(&mut q.driver, false, v))
            }
            reg::QUEUE_DRIVER_HIGH if queue_writable => {
                self.with_queue(|q| set_half(&mut q.driver, true, v))
            }
            reg::QUEUE_DEVICE_LOW if queue_writable => {
                self.with_queue(|q| set_half(&mut q.device, false, v))
            }
            reg::QUEUE_DEVICE_HIGH if queue_writable => {
                self.with_queue(|q| set_half(&mut q.device, true, v))
            }
            _ => {}
        }
        MmioEffect::None
    }

    fn with_queue(&mut self, f: impl FnOnce(&mut QueueConfig)) {
        if let Some(q) = self.selected_mut() {
            f(q);
        }
    }

    fn write_queue_ready(&mut self, v: u32) -> MmioEffect {
        let Some(q) = self.selected_mut() else {
            return MmioEffect::None;
        };
        if v == 0 {
            q.ready = false;
            return MmioEffect::None;
        }
        if q.is_valid() {
            q.ready = true;
        } else {
            // A queue size above QueueNumMax (or otherwise unusable ring
            // layout) is refused: the queue stays off and the device
            // reports that it needs a reset.
            self.set_needs_reset();
        }
        MmioEffect::None
    }

    fn write_status(&mut self, v: u32) -> MmioEffect {
        if v == 0 {
            self.reset();
            return MmioEffect::Reset;
        }
        let mut new = v & !status::DEVICE_NEEDS_RESET;
        let setting_features_ok =
            new & status::FEATURES_OK != 0 && self.status & status::FEATURES_OK == 0;
        if setting_features_ok {
            let unknown = self.driver_features & !self.device_features;
            if unknown != 0 || self.driver_features & F_VERSION_1 == 0 {
                // Not accepted: FEATURES_OK stays clear (virtio 1.x §3.1.1).
                new &= !status::FEATURES_OK;
            }
        }
        // DRIVER_OK without FEATURES_OK is not a live device.
        if new & status::FEATURES_OK == 0 {
            new &= !status::DRIVER_OK;
        }
        self.status = new | (self.status & status::DEVICE_NEEDS_RESET);
        MmioEffect::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(r: &MmioRegisters, off: u64) -> u32 {
        let mut b = [0u8; 4];
        r.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn wr(r: &mut MmioRegisters, off: u64, v: u32) -> MmioEffect {
        r.write(off, &v.to_le_bytes())
    }

    fn blk() -> MmioRegisters {
        MmioRegisters::new(2, 1 << 9, &[256], vec![1, 2, 3, 4, 5, 6, 7, 8])
    }

    /// Drive the standard init sequence up to DRIVER_OK with one queue.
    fn bring_up(r: &mut MmioRegisters) {
        wr(r, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        wr(r, reg::DRIVER_FEATURES_SEL, 1);
        wr(r, reg::DRIVER_FEATURES, 1);
        wr(r, reg::DRIVER_FEATURES_SEL, 0);
        wr(r, reg::DRIVER_FEATURES, 1 << 9);
        wr(
            r,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_ne!(rd(r, reg::STATUS) & status::FEATURES_OK, 0);
        wr(r, reg::QUEUE_SEL, 0);
        wr(r, reg::QUEUE_NUM, 16);
        wr(r, reg::QUEUE_DESC_LOW, 0x1000);
        wr(r, reg::QUEUE_DRIVER_LOW, 0x2000);
        wr(r, reg::QUEUE_DEVICE_LOW, 0x3000);
        wr(r, reg::QUEUE_READY, 1);
        wr(r, reg::STATUS, 0xf);
    }

    #[test]
    fn every_register_offset_of_an_empty_slot() {
        let mut r = MmioRegisters::empty();
        for off in (0..0x200u64).step_by(4) {
            assert_eq!(wr(&mut r, off, 0xffff_ffff), MmioEffect::None);
            let want = match off {
                reg::MAGIC => MAGIC,
                reg::VERSION => 2,
                reg::VENDOR_ID => VENDOR_ID,
                _ => 0,
            };
            assert_eq!(rd(&r, off), want, "offset {off:#x}");
        }
    }

    #[test]
    fn every_register_offset_of_a_fresh_device() {
        let r = blk();
        for off in (0..0x100u64).step_by(4) {
            let want = match off {
                reg::MAGIC => MAGIC,
                reg::VERSION => 2,
                reg::DEVICE_ID => 2,
                reg::VENDOR_ID => VENDOR_ID,
                reg::DEVICE_FEATURES => 1 << 9,
                reg::QUEUE_NUM_MAX => 256,
                _ => 0,
            };
            assert_eq!(rd(&r, off), want, "offset {off:#x}");
        }
        assert_eq!(rd(&r, reg::CONFIG), 0x0403_0201);
        assert_eq!(rd(&r, reg::CONFIG + 4), 0x0807_0605);
        assert_eq!(rd(&r, reg::CONFIG + 8), 0);
        let mut b = [0u8; 1];
        r.read(reg::CONFIG + 7, &mut b);
        assert_eq!(b, [8]);
        let mut b = [0u8; 8];
        r.read(u64::MAX, &mut b);
        assert_eq!(b, [0; 8]);
    }

    #[test]
    fn features_high_word_has_version_1() {
        let mut r = blk();
        wr(&mut r, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(rd(&r, reg::DEVICE_FEATURES), 1);
        wr(&mut r, reg::DEVICE_FEATURES_SEL, 2);
        assert_eq!(rd(&r, reg::DEVICE_FEATURES), 0);
    }

    #[test]
    fn odd_widths_and_offsets_are_ignored() {
        let mut r = blk();
        let mut b = [0xffu8; 2];
        r.read(reg::MAGIC, &mut b);
        assert_eq!(b, [0, 0]);
        let mut b = [0xffu8; 4];
        r.read(reg::MAGIC + 1, &mut b);
        assert_eq!(b, [0; 4]);
        assert_eq!(r.write(reg::STATUS, &[1]), MmioEffect::None);
        assert_eq!(r.write(reg::STATUS + 1, &[1, 0, 0, 0]), MmioEffect::None);
        assert_eq!(rd(&r, reg::STATUS), 0);
    }

    #[test]
    fn legacy_driver_without_version_1_is_refused() {
        let mut r = blk();
        wr(&mut r, reg::STATUS, 3);
        wr(&mut r, reg::DRIVER_FEATURES, 1 << 9);
        wr(&mut r, reg::STATUS, 3 | status::FEATURES_OK);
        assert_eq!(rd(&r, reg::STATUS), 3);
        wr(&mut r, reg::STATUS, 0xf);
        assert!(!r.is_live());
    }

    #[test]
    fn unknown_features_are_refused() {
        let mut r = blk();
        wr(&mut r, reg::DRIVER_FEATURES_SEL, 1);
        wr(&mut r, reg::DRIVER_FEATURES, 1);
        wr(&mut r, reg::DRIVER_FEATURES_SEL, 0);
        wr(&mut r, reg::DRIVER_FEATURES, 1 << 28); // INDIRECT_DESC, not offered
        wr(&mut r, reg::STATUS, 0xb);
        assert_eq!(rd(&r, reg::STATUS) & status::FEATURES_OK, 0);
    }

    #[test]
    fn notify_only_when_live_and_ready() {
        let mut r = blk();
        assert_eq!(wr(&mut r, reg::QUEUE_NOTIFY, 0), MmioEffect::None);
        bring_up(&mut r);
        assert!(r.is_live());
        assert_eq!(wr(&mut r, reg::QUEUE_NOTIFY, 0), MmioEffect::Notify(0));
        assert_eq!(wr(&mut r, reg::QUEUE_NOTIFY, 1), MmioEffect::None);
        assert_eq!(wr(&mut r, reg::QUEUE_NOTIFY, 0x1_0000), MmioEffect::None);
        let q = *r.queue(0).unwrap();
        assert_eq!(
            (q.size, q.desc, q.driver, q.device, q.ready),
            (16, 0x1000, 0x2000, 0x3000, true)
        );
        // Layout registers are frozen while ready.
        wr(&mut r, reg::QUEUE_DESC_LOW, 0x5000);
        assert_eq!(r.queue(0).unwrap().desc, 0x1000);
        assert_eq!(rd(&r, reg::QUEUE_DESC_LOW), 0x1000);
    }

    #[test]
    fn queue_size_above_max_is_refused_with_needs_reset() {
        for bad in [0u32, 3, 512, 0x1_0000] {
            let mut r = blk();
            wr(&mut r, reg::QUEUE_NUM, bad);
            wr(&mut r, reg::QUEUE_READY, 1);
            assert_eq!(rd(&r, reg::QUEUE_READY), 0, "size {bad}");
            assert_ne!(rd(&r, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
            assert_ne!(rd(&r, reg::INTERRUPT_STATUS) & INT_CONFIG, 0);
        }
        let mut r = blk();
        wr(&mut r, reg::QUEUE_DESC_LOW, 0x1008);
        wr(&mut r, reg::QUEUE_READY, 1);
        assert_eq!(rd(&r, reg::QUEUE_READY), 0);
    }

    #[test]
    fn needs_reset_stops_queues_until_reset() {
        let mut r = blk();
        bring_up(&mut r);
        r.set_needs_reset();
        assert!(!r.is_live());
        assert_eq!(wr(&mut r, reg::QUEUE_NOTIFY, 0), MmioEffect::None);
        // The driver cannot clear the bit by writing status...
        wr(&mut r, reg::STATUS, 0xf);
        assert_ne!(rd(&r, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        // ...only by a reset.
        assert_eq!(wr(&mut r, reg::STATUS, 0), MmioEffect::Reset);
        assert_eq!(rd(&r, reg::STATUS), 0);
        assert_eq!(rd(&r, reg::QUEUE_READY), 0);
        bring_up(&mut r);
        assert!(r.is_live());
    }

    #[test]
    fn interrupt_ack_clears_bits() {
        let mut r = blk();
        r.signal_used();
        r.set_needs_reset();
        assert_eq!(rd(&r, reg::INTERRUPT_STATUS), 3);
        wr(&mut r, reg::INTERRUPT_ACK, 1);
        assert_eq!(rd(&r, reg::INTERRUPT_STATUS), 2);
    }
}
