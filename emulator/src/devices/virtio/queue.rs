//! A split virtqueue (virtio 1.x §2.7) over guest RAM, device side.
//!
//! Hostile-guest rules (docs/machine.md): every ring field is copied out of guest
//! memory once (`read_obj`/`load`), validated on the copy and never re-read;
//! no Rust reference into guest RAM exists; indices are taken modulo the
//! queue size only after being checked; a chain has at most `size`
//! descriptors, so a looping chain ends; ring areas must lie wholly in RAM
//! (the firmware and MMIO holes are not RAM). Indirect descriptors are not
//! offered, so a descriptor flagged INDIRECT is an error.
#![forbid(unsafe_code)]

use std::sync::atomic::{fence, Ordering};

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::mmio::QueueConfig;

pub const VIRTQ_DESC_F_NEXT: u16 = 1;
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// In the available ring's flags: the driver asks not to be interrupted
/// when buffers are used (virtio 1.x §2.7.7).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Whether the driver of the queue `cfg` wants an interrupt for buffers the
/// device has just used (no VIRTIO_F_EVENT_IDX here: only the available
/// ring's NO_INTERRUPT flag counts). Call after publishing the used index:
/// the fence orders that store before this load (§2.7.7.2). An unreadable
/// flag (rings are checked to be in RAM, so only a bug) means yes.
pub fn driver_wants_interrupt(mem: &GuestMemoryMmap, cfg: &QueueConfig) -> bool {
    fence(Ordering::SeqCst);
    mem.load::<u16>(GuestAddress(cfg.driver), Ordering::Acquire)
        .map_or(true, |flags| {
            u16::from_le(flags) & VIRTQ_AVAIL_F_NO_INTERRUPT == 0
        })
}

/// Structural errors: the queue cannot be processed any further and the
/// device must be marked DEVICE_NEEDS_RESET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("virtqueue ring areas are not inside guest RAM")]
    RingOutsideMemory,
    #[error("available index {avail} is more than the queue size ahead of {next}")]
    AvailIndexJump { avail: u16, next: u16 },
    #[error("descriptor index {0} is outside the queue")]
    IndexOutOfRange(u16),
    #[error("descriptor chain longer than the queue (a loop?)")]
    ChainTooLong,
    #[error("indirect descriptors were not negotiated")]
    Indirect,
    #[error("guest memory access to the rings failed")]
    RingAccess,
}

/// A descriptor as copied out of guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

impl Descriptor {
    pub fn is_write_only(&self) -> bool {
        self.flags & VIRTQ_DESC_F_WRITE != 0
    }
}

/// A validated, copied chain: the head index and its descriptors in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub head: u16,
    pub descriptors: Vec<Descriptor>,
}

/// Device-side state of one split queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitQueue {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    next_avail: u16,
    next_used: u16,
}

fn area(base: u64, fixed: u64, per_entry: u64, size: u16) -> Option<(GuestAddress, usize)> {
    let len = per_entry.checked_mul(u64::from(size))?.checked_add(fixed)?;
    base.checked_add(len)?;
    Some((GuestAddress(base), usize::try_from(len).ok()?))
}

impl SplitQueue {
    /// Takes over a queue the driver made ready. The ring areas must lie in
    /// RAM; sizes and alignment were checked by the transport.
    pub fn new(cfg: &QueueConfig, mem: &GuestMemoryMmap) -> Result<Self, QueueError> {
        if !cfg.is_valid() {
            return Err(QueueError::RingOutsideMemory);
        }
        let areas = [
            area(cfg.desc, 0, 16, cfg.size),
            area(cfg.driver, 6, 2, cfg.size),
            area(cfg.device, 6, 8, cfg.size),
        ];
        for a in areas {
            let (addr, len) = a.ok_or(QueueError::RingOutsideMemory)?;
            if !GuestMemoryBackend::check_range(mem, addr, len) {
                return Err(QueueError::RingOutsideMemory);
            }
        }
        Ok(SplitQueue {
            size: cfg.size,
            desc: cfg.desc,
            avail: cfg.driver,
            used: cfg.device,
            next_avail: 0,
            next_used: 0,
        })
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    // Offsets below are within areas checked in `new` (index < size).
    fn desc_addr(&self, index: u16) -> GuestAddress {
        GuestAddress(self.desc + 16 * u64::from(index))
    }

    fn read_descriptor(&self, mem: &GuestMemoryMmap, index: u16) -> Result<Descriptor, QueueError> {
        if index >= self.size {
            return Err(QueueError::IndexOutOfRange(index));
        }
        let mut raw = [0u8; 16];
        mem.read_slice(&mut raw, self.desc_addr(index))
            .map_err(|_| QueueError::RingAccess)?;
        let [a0, a1, a2, a3, a4, a5, a6, a7, l0, l1, l2, l3, f0, f1, n0, n1] = raw;
        Ok(Descriptor {
            addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            flags: u16::from_le_bytes([f0, f1]),
            next: u16::from_le_bytes([n0, n1]),
        })
    }

    /// The next available chain, copied and validated, or `None` when the
    /// driver has made nothing new available.
    pub fn pop(&mut self, mem: &GuestMemoryMmap) -> Result<Option<Chain>, QueueError> {
        let avail_idx: u16 = mem
            .load(GuestAddress(self.avail + 2), Ordering::Acquire)
            .map(u16::from_le)
            .map_err(|_| QueueError::RingAccess)?;
        let pending = avail_idx.wrapping_sub(self.next_avail);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.size {
            return Err(QueueError::AvailIndexJump {
                avail: avail_idx,
                next: self.next_avail,
            });
        }
        let slot = self.next_avail % self.size;
        let head: u16 = mem
            .read_obj(GuestAddress(self.avail + 4 + 2 * u64::from(slot)))
            .map(u16::from_le)
            .map_err(|_| QueueError::RingAccess)?;
        let chain = self.walk(mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    fn walk(&self, mem: &GuestMemoryMmap, head: u16) -> Result<Chain, QueueError> {
        let mut descriptors = Vec::new();
        let mut index = head;
        loop {
            // At most `size` descriptors: a chain that revisits an index
            // (a loop) is longer than that and ends here.
            if descriptors.len() >= usize::from(self.size) {
                return Err(QueueError::ChainTooLong);
            }
            let d = self.read_descriptor(mem, index)?;
            if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                return Err(QueueError::Indirect);
            }
            descriptors.push(d);
            if d.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(Chain { head, descriptors });
            }
            index = d.next;
        }
    }

    /// Returns chain `head` to the driver with `len` bytes written.
    pub fn add_used(
        &mut self,
        mem: &GuestMemoryMmap,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        let slot = self.next_used % self.size;
        let elem = self.used + 4 + 8 * u64::from(slot);
        let mut raw = [0u8; 8];
        raw[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        raw[4..].copy_from_slice(&len.to_le_bytes());
        mem.write_slice(&raw, GuestAddress(elem))
            .map_err(|_| QueueError::RingAccess)?;
        self.next_used = self.next_used.wrapping_add(1);
        // Release: the element is visible before the index that publishes it.
        mem.store(
            self.next_used.to_le(),
            GuestAddress(self.used + 2),
            Ordering::Release,
        )
        .map_err(|_| QueueError::RingAccess)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000), (GuestAddress(0x20000), 0x1000)])
            .unwrap()
    }

    fn cfg(size: u16) -> QueueConfig {
        QueueConfig {
            max_size: 256,
            size,
            ready: true,
            desc: DESC,
            driver: AVAIL,
            device: USED,
        }
    }

    fn put_desc(m: &GuestMemoryMmap, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let base = GuestAddress(DESC + 16 * u64::from(i));
        m.write_obj(addr, base).unwrap();
        m.write_obj(len, GuestAddress(base.0 + 8)).unwrap();
        m.write_obj(flags, GuestAddress(base.0 + 12)).unwrap();
        m.write_obj(next, GuestAddress(base.0 + 14)).unwrap();
    }

    fn offer(m: &GuestMemoryMmap, slot: u16, head: u16, idx: u16) {
        m.write_obj(head, GuestAddress(AVAIL + 4 + 2 * u64::from(slot)))
            .unwrap();
        m.write_obj(idx, GuestAddress(AVAIL + 2)).unwrap();
    }

    #[test]
    fn pops_a_chain_and_publishes_used() {
        let m = mem();
        let mut q = SplitQueue::new(&cfg(8), &m).unwrap();
        assert_eq!(q.pop(&m).unwrap(), None);
        put_desc(&m, 3, 0x8000, 16, VIRTQ_DESC_F_NEXT, 5);
        put_desc(&m, 5, 0x9000, 1, VIRTQ_DESC_F_WRITE, 0);
        offer(&m, 0, 3, 1);
        let c = q.pop(&m).unwrap().unwrap();
        assert_eq!(c.head, 3);
        assert_eq!(c.descriptors.len(), 2);
        assert!(c.descriptors[1].is_write_only());
        assert_eq!(q.pop(&m).unwrap(), None);
        q.add_used(&m, 3, 1).unwrap();
        assert_eq!(m.read_obj::<u16>(GuestAddress(USED + 2)).unwrap(), 1);
        assert_eq!(m.read_obj::<u32>(GuestAddress(USED + 4)).unwrap(), 3);
        assert_eq!(m.read_obj::<u32>(GuestAddress(USED + 8)).unwrap(), 1);
    }

    #[test]
    fn indices_wrap_around_u16() {
        let m = mem();
        let mut q = SplitQueue::new(&cfg(4), &m).unwrap();
        put_desc(&m, 0, 0x8000, 1, VIRTQ_DESC_F_WRITE, 0);
        for n in 1..=70_000u32 {
            let idx = u16::try_from(n % 65536).unwrap();
            offer(&m, idx.wrapping_sub(1) % 4, 0, idx);
            assert_eq!(q.pop(&m).unwrap().unwrap().head, 0);
            q.add_used(&m, 0, 1).unwrap();
        }
    }

    #[test]
    fn a_looping_chain_ends_with_an_error() {
        let m = mem();
        let mut q = SplitQueue::new(&cfg(8), &m).unwrap();
        put_desc(&m, 0, 0x8000, 1, VIRTQ_DESC_F_NEXT, 1);
        put_desc(&m, 1, 0x8000, 1, VIRTQ_DESC_F_NEXT, 0);
        offer(&m, 0, 0, 1);
        assert_eq!(q.pop(&m), Err(QueueError::ChainTooLong));
        // A self-loop too.
        let mut q = SplitQueue::new(&cfg(8), &m).unwrap();
        put_desc(&m, 0, 0x8000, 1, VIRTQ_DESC_F_NEXT, 0);
        assert_eq!(q.pop(&m), Err(QueueError::ChainTooLong));
    }

    #[test]
    fn a_chain_of_exactly_queue_size_is_fine() {
        let m = mem();
        let mut q = SplitQueue::new(&cfg(8), &m).unwrap();
        for i in 0..7 {
            put_desc(&m, i, 0x8000, 1, VIRTQ_DESC_F_NEXT, i + 1);
        }
        put_desc(&m, 7, 0x8000, 1, VIRTQ_DESC_F_WRITE, 0);
        offer(&m, 0, 0, 1);
        assert_eq!(q.pop(&m).unwrap().unwrap().descriptors.len(), 8);
    }

    #[test]
    fn indices_outside_the_queue_are_errors() {
        let m = mem();
        let mut q = SplitQueue::new(&cfg(8), &m).unwrap();
        offer(&m, 0, 8, 1);
        assert_eq!(q.pop(&m), Err(QueueError::IndexOutOfRange(8)));
        let mut q = SplitQueue::new(&cfg(8), &m).unwrap();
        put_desc(&m, 0, 0x8000, 1, VIRTQ_DESC_F_NEXT, 0xffff);
        offer(&m, 0, 0, 1);
        assert_eq!(q.pop(&m), Err(QueueError::IndexOutOfRange(0xffff)));
    }

    #[test]
    fn avail_index_jumping_past_the_size_is_an_error() {
        let m = mem();
        let mut q = SplitQueue::new(&cfg(8), &m).unwrap();
        offer(&m, 0, 0, 9);
        assert_eq!(
            q.pop(&m),
            Err(QueueError::AvailIndexJump { avail: 9, next: 0 })
        );
    }

    #[test]
    fn indirect_is_refused() {
        let m = mem();
        let mut q = SplitQueue::new(&cfg(8), &m).unwrap();
        put_desc(&m, 0, 0x8000, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(&m, 0, 0, 1);
        assert_eq!(q.pop(&m), Err(QueueError::Indirect));
    }

    #[test]
    fn rings_outside_ram_are_refused() {
        let m = mem();
        // Used ring runs off the end of the first region into the hole.
        let c = QueueConfig {
            device: 0xfffc,
            ..cfg(8)
        };
        assert_eq!(SplitQueue::new(&c, &m), Err(QueueError::RingOutsideMemory));
        let c = QueueConfig {
            desc: 0x4000_0000,
            ..cfg(8)
        };
        assert_eq!(SplitQueue::new(&c, &m), Err(QueueError::RingOutsideMemory));
        let c = QueueConfig {
            driver: u64::MAX - 1,
            ..cfg(8)
        };
        assert_eq!(SplitQueue::new(&c, &m), Err(QueueError::RingOutsideMemory));
        // Wholly inside the second region is fine.
        let c = QueueConfig {
            desc: 0x20000,
            driver: 0x20400,
            device: 0x20800,
            ..cfg(8)
        };
        assert!(SplitQueue::new(&c, &m).is_ok());
    }
}
