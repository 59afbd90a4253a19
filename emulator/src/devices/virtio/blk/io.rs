//! virtio-blk request execution: moves validated ranges between the disk
//! file and guest RAM. Bulk data goes through `VolatileSlice`
//! (`read_exact_volatile_from` / `write_all_volatile_to`), never through a
//! Rust reference into guest memory (docs/machine.md); a request whose ranges
//! each lie in one RAM region (all of them, in practice) is one
//! `preadv`/`pwritev` (`vectored.rs`). Every range is checked
//! to lie in RAM before any byte moves, so a bad request changes nothing.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::request::{BlkKind, BlkRequest, Segment, ID_BYTES, SECTOR_SIZE};
use super::vectored::{self, Direction};
use crate::vm_config::CacheMode;

/// Bounce-buffer chunk for O_DIRECT files with unaligned guest buffers.
const BOUNCE_CHUNK: usize = 256 * 1024;
/// O_DIRECT alignment used for bounce buffers (covers 512 and 4K devices).
const DIRECT_ALIGN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("data buffer at {addr:#x}+{len} is not in guest RAM")]
    NotInRam { addr: u64, len: u64 },
    #[error("disk I/O failed: {0}")]
    Disk(#[source] std::io::Error),
    #[error("guest memory access failed: {0}")]
    Memory(String),
}

/// A disk image behind a virtio-blk device.
#[derive(Debug)]
pub struct Disk {
    file: File,
    sectors: u64,
    readonly: bool,
    cache: CacheMode,
    id: [u8; 20],
}

impl Disk {
    /// Wraps an open disk file; its size (rounded down to sectors) is the
    /// capacity. Block devices are measured by seeking to their end.
    pub fn new(
        mut file: File,
        readonly: bool,
        cache: CacheMode,
        id: [u8; 20],
    ) -> std::io::Result<Disk> {
        let bytes = file.seek(SeekFrom::End(0))?;
        Ok(Disk {
            file,
            sectors: bytes / SECTOR_SIZE,
            readonly,
            cache,
            id,
        })
    }

    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    pub fn readonly(&self) -> bool {
        self.readonly
    }

    fn offset(sector: u64) -> u64 {
        // validate() checked sector + count <= sectors, and sectors * 512
        // is a file size, so this does not overflow.
        sector.saturating_mul(SECTOR_SIZE)
    }

    /// Executes `req`; returns how many bytes were written into guest
    /// memory (not counting the status byte).
    pub fn execute(&mut self, mem: &GuestMemoryMmap, req: &BlkRequest) -> Result<u64, IoError> {
        for s in &req.data {
            let len = usize::try_from(s.len).map_err(|_| IoError::NotInRam {
                addr: s.addr,
                len: s.len,
            })?;
            if !GuestMemoryBackend::check_range(mem, GuestAddress(s.addr), len) {
                return Err(IoError::NotInRam {
                    addr: s.addr,
                    len: s.len,
                });
            }
        }
        match req.kind {
            BlkKind::Read => {
                self.read(mem, Self::offset(req.sector), &req.data)?;
                Ok(req.data_len)
            }
            BlkKind::Write => {
                self.write(mem, Self::offset(req.sector), &req.data)?;
                if matches!(self.cache, CacheMode::Writethrough | CacheMode::Directsync) {
                    self.file.sync_data().map_err(IoError::Disk)?;
                }
                Ok(0)
            }
            BlkKind::Flush => {
                if self.cache != CacheMode::Unsafe {
                    self.file.sync_data().map_err(IoError::Disk)?;
                }
                Ok(0)
            }
            BlkKind::GetId => {
                let mut left = &self.id[..];
                for s in &req.data {
                    let n = usize::try_from(s.len).unwrap_or(usize::MAX).min(left.len());
                    mem.write_slice(&left[..n], GuestAddress(s.addr))
                        .map_err(|e| IoError::Memory(e.to_string()))?;
                    left = &left[n..];
                }
                Ok(req.data_len.min(ID_BYTES))
            }
        }
    }

    fn needs_bounce(&self, data: &[Segment]) -> bool {
        self.cache.direct()
            && data
                .iter()
                .any(|s| s.addr % SECTOR_SIZE != 0 || s.len % SECTOR_SIZE != 0)
    }

    fn read(
        &mut self,
        mem: &GuestMemoryMmap,
        offset: u64,
        data: &[Segment],
    ) -> Result<(), IoError> {
        if self.needs_bounce(data) {
            return self.bounce(mem, offset, data, false);
        }
        if let Some(slices) = vectored::guest_slices(mem, data) {
            return vectored::transfer(&self.file, &slices, offset, Direction::Read)
                .map_err(IoError::Disk);
        }
        // A range across two RAM regions: one read per region piece.
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(IoError::Disk)?;
        for s in data {
            let len = usize::try_from(s.len).unwrap_or(0);
            mem.read_exact_volatile_from(GuestAddress(s.addr), &mut self.file, len)
                .map_err(|e| IoError::Memory(e.to_string()))?;
        }
        Ok(())
    }

    fn write(
        &mut self,
        mem: &GuestMemoryMmap,
        offset: u64,
        data: &[Segment],
    ) -> Result<(), IoError> {
        if self.needs_bounce(data) {
            return self.bounce(mem, offset, data, true);
        }
        if let Some(slices) = vectored::guest_slices(mem, data) {
            return vectored::transfer(&self.file, &slices, offset, Direction::Write)
                .map_err(IoError::Disk);
        }
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(IoError::Disk)?;
        for s in data {
            let len = usize::try_from(s.len).unwrap_or(0);
            mem.write_all_volatile_to(GuestAddress(s.addr), &mut self.file, len)
                .map_err(|e| IoError::Memory(e.to_string()))?;
        }
        self.file.flush().map_err(IoError::Disk)
    }

    /// O_DIRECT with guest buffers that are not sector aligned: go through
    /// an aligned bounce buffer, chunk by chunk (bounded memory).
    fn bounce(
        &mut self,
        mem: &GuestMemoryMmap,
        offset: u64,
        data: &[Segment],
        to_disk: bool,
    ) -> Result<(), IoError> {
        let mut storage = vec![0u8; BOUNCE_CHUNK + DIRECT_ALIGN];
        let skew = storage.as_ptr().align_offset(DIRECT_ALIGN);
        let buf = storage
            .get_mut(skew..skew + BOUNCE_CHUNK)
            .ok_or_else(|| IoError::Memory("bounce buffer".into()))?;
        // Flatten the guest ranges into a byte stream and move it chunkwise.
        let total: u64 = data.iter().map(|s| s.len).sum();
        let mut done = 0u64;
        let mut seg = 0usize;
        let mut seg_off = 0u64;
        while done < total {
            let chunk =
                usize::try_from((total - done).min(BOUNCE_CHUNK as u64)).unwrap_or(BOUNCE_CHUNK);
            let chunk_buf = &mut buf[..chunk];
            let disk_off = offset + done;
            if !to_disk {
                self.file
                    .read_exact_at(chunk_buf, disk_off)
                    .map_err(IoError::Disk)?;
            }
            // Copy between the chunk and the guest segments.
            let mut pos = 0usize;
            let (mut s_i, mut s_off) = (seg, seg_off);
            while pos < chunk {
                let s = data[s_i];
                let n = usize::try_from((s.len - s_off).min((chunk - pos) as u64)).unwrap_or(0);
                let addr = GuestAddress(s.addr + s_off);
                let part = &mut chunk_buf[pos..pos + n];
                if to_disk {
                    mem.read_slice(part, addr)
                        .map_err(|e| IoError::Memory(e.to_string()))?;
                } else {
                    mem.write_slice(part, addr)
                        .map_err(|e| IoError::Memory(e.to_string()))?;
                }
                pos += n;
                s_off += n as u64;
                if s_off == s.len {
                    s_i += 1;
                    s_off = 0;
                }
            }
            if to_disk {
                self.file
                    .write_all_at(chunk_buf, disk_off)
                    .map_err(IoError::Disk)?;
            }
            seg = s_i;
            seg_off = s_off;
            done += chunk as u64;
        }
        Ok(())
    }
}
