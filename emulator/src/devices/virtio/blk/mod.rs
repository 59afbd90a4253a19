//! virtio-blk (device id 2): one request queue, read / write / flush /
//! get-id, capacity in config space, `readonly` offered as VIRTIO_BLK_F_RO
//! and enforced (writes end with IOERR). Requests are handled synchronously
//! when the driver notifies, so a polling guest sees the used ring updated
//! by the time its QueueNotify write completes.

pub mod io;
pub mod request;

use std::fs::File;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use self::io::Disk;
use self::request::{BlkHeader, DiskInfo, Segment, HEADER_LEN};
use super::mmio::QueueConfig;
use super::queue::{Descriptor, SplitQueue};
use super::{DeviceFault, VirtioBackend};
use crate::config::CacheMode;

pub const DEVICE_ID: u32 = 2;
/// Largest queue the device offers (QueueNumMax).
pub const QUEUE_MAX: u16 = 256;

pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_RO: u64 = 1 << 5;
pub const F_FLUSH: u64 = 1 << 9;

/// Syscalls the block device makes while the guest runs (style §11).
pub const SYSCALLS: &[i64] = &[
    libc::SYS_lseek,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
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
