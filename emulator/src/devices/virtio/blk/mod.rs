//! virtio-blk (device id 2): one request queue, read / write / flush /
//! get-id, capacity in config space, `readonly` offered as VIRTIO_BLK_F_RO
//! and enforced (writes end with IOERR). Requests are handled synchronously
//! when the driver notifies, so a polling guest sees the used ring updated
//! by the time its QueueNotify write completes.

pub mod io;
pub mod request;
pub mod vectored;

use std::fs::File;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use self::io::Disk;
use self::request::{BlkHeader, DiskInfo, Segment, HEADER_LEN};
use super::mmio::QueueConfig;
use super::queue::{Descriptor, SplitQueue};
use super::{DeviceFault, VirtioBackend};
use crate::vm_config::CacheMode;

pub const DEVICE_ID: u32 = 2;
/// Largest queue the device offers (QueueNumMax).
pub const QUEUE_MAX: u16 = 256;

pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_RO: u64 = 1 << 5;
pub const F_FLUSH: u64 = 1 << 9;

/// Syscalls the block device makes while the guest runs (each module lists its own; docs/sandbox.md).
pub const SYSCALLS: &[i64] = &[
    libc::SYS_lseek,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_fdatasync,
];

pub struct BlockDevice {
    disk: Disk,
    queue: Option<SplitQueue>,
}

impl BlockDevice {
    /// A block device over an open disk file. `id` is what GET_ID returns
    /// (QEMU without `serial=`: all zeros).
    pub fn new(
        file: File,
        readonly: bool,
        cache: CacheMode,
        id: [u8; 20],
    ) -> std::io::Result<Self> {
        Ok(BlockDevice {
            disk: Disk::new(file, readonly, cache, id)?,
            queue: None,
        })
    }

    pub fn sectors(&self) -> u64 {
        self.disk.sectors()
    }
}

/// Handles one chain; `Ok(len)` is the used length, `Err` a fault that
/// leaves no way to report a status.
fn handle(
    disk: &mut Disk,
    mem: &GuestMemoryMmap,
    chain: &[Descriptor],
) -> Result<u32, DeviceFault> {
    let split = request::split_chain(chain).map_err(DeviceFault::Blk)?;
    let mut raw = [0u8; 16];
    let mut got = 0usize;
    let mut header_ok = true;
    for Segment { addr, len } in &split.header {
        let n = usize::try_from(*len).unwrap_or(0);
        let end = got + n;
        if end > raw.len()
            || mem
                .read_slice(&mut raw[got..end], GuestAddress(*addr))
                .is_err()
        {
            header_ok = false;
            break;
        }
        got = end;
    }
    let hdr = BlkHeader::from_bytes(raw);
    let info = DiskInfo {
        sectors: disk.sectors(),
        readonly: disk.readonly(),
    };
    let (status, written) = if !header_ok || (got as u64) < HEADER_LEN {
        (request::S_IOERR, 0)
    } else {
        match request::validate(&split, &hdr, info) {
            Err(e) => (e.status().unwrap_or(request::S_IOERR), 0),
            Ok(req) => match disk.execute(mem, &req) {
                Ok(n) => (request::S_OK, n),
                Err(_) => (request::S_IOERR, 0),
            },
        }
    };
    mem.write_obj(status, GuestAddress(split.status))
        .map_err(|_| DeviceFault::StatusNotInRam)?;
    Ok(u32::try_from(written.saturating_add(1)).unwrap_or(u32::MAX))
}

impl VirtioBackend for BlockDevice {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        let ro = if self.disk.readonly() { F_RO } else { 0 };
        F_SEG_MAX | F_FLUSH | ro
    }

    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![QUEUE_MAX]
    }

    /// `struct virtio_blk_config`: capacity (u64 sectors), size_max (u32,
    /// unused), seg_max (u32).
    fn config(&self) -> Vec<u8> {
        let mut c = Vec::with_capacity(16);
        c.extend_from_slice(&self.disk.sectors().to_le_bytes());
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&u32::from(QUEUE_MAX - 2).to_le_bytes());
        c
    }

    fn notify(
        &mut self,
        index: u16,
        cfg: &QueueConfig,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, DeviceFault> {
        if index != 0 {
            return Ok(false);
        }
        if self.queue.is_none() {
            self.queue = Some(SplitQueue::new(cfg, mem).map_err(DeviceFault::Queue)?);
        }
        let Some(queue) = self.queue.as_mut() else {
            return Ok(false);
        };
        let mut used = false;
        // At most `size` chains per notify: the avail index cannot run more
        // than that ahead, so the loop is bounded even against a guest that
        // keeps adding buffers; the rest waits for the next notify.
        for _ in 0..queue.size() {
            let Some(chain) = queue.pop(mem).map_err(DeviceFault::Queue)? else {
                break;
            };
            let len = handle(&mut self.disk, mem, &chain.descriptors)?;
            queue
                .add_used(mem, chain.head, len)
                .map_err(DeviceFault::Queue)?;
            used = true;
        }
        Ok(used)
    }

    fn reset(&mut self) {
        self.queue = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use proptest::prelude::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;

    fn disk(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn contents(f: &mut File) -> Vec<u8> {
        let mut v = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// A hostile driver writes arbitrary bytes over the descriptor table,
        /// the available ring and the headers, then notifies: the device
        /// answers (or faults) without panicking, never grows the disk, and
        /// never writes a read-only disk.
        #[test]
        fn arbitrary_rings_never_panic_or_touch_a_readonly_disk(
            descs in prop::collection::vec(any::<u8>(), 16 * 8),
            avail in prop::collection::vec(any::<u8>(), 4 + 2 * 8),
            headers in prop::collection::vec(any::<u8>(), 64),
            small_addrs in any::<bool>(),
            readonly in any::<bool>(),
        ) {
            let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000), (GuestAddress(0x20000), 0x1000)]).unwrap();
            let mut descs = descs;
            if small_addrs {
                // Keep addresses mostly inside RAM so deeper paths run.
                for d in descs.chunks_mut(16) {
                    d[2..8].fill(0);
                    d[1] &= 0x0f;
                    d[9..12].fill(0);
                    d[14] &= 7;
                    d[15] = 0;
                }
            }
            mem.write_slice(&descs, GuestAddress(DESC)).unwrap();
            mem.write_slice(&avail, GuestAddress(AVAIL)).unwrap();
            mem.write_slice(&headers, GuestAddress(0)).unwrap();
            let original: Vec<u8> = (0..8192u32).map(|i| u8::try_from(i % 253).unwrap()).collect();
            let file = disk(&original);
            let mut check = file.try_clone().unwrap();
            let mut dev = BlockDevice::new(file, readonly, CacheMode::Writeback, [0; 20]).unwrap();
            let cfg = QueueConfig { max_size: 256, size: 8, ready: true, desc: DESC, driver: AVAIL, device: USED };
            let _ = dev.notify(0, &cfg, &mem);
            let _ = dev.notify(0, &cfg, &mem);
            let after = contents(&mut check);
            prop_assert_eq!(after.len(), original.len());
            if readonly {
                prop_assert!(after == original);
            }
        }
    }

    #[test]
    fn config_space_has_capacity_and_seg_max() {
        let dev = BlockDevice::new(
            disk(&[0u8; 4096 + 100]),
            true,
            CacheMode::Writeback,
            [0; 20],
        )
        .unwrap();
        let c = dev.config();
        assert_eq!(u64::from_le_bytes(c[0..8].try_into().unwrap()), 8);
        assert_eq!(u32::from_le_bytes(c[12..16].try_into().unwrap()), 254);
        assert_eq!(dev.features(), F_SEG_MAX | F_FLUSH | F_RO);
    }
}
