//! virtio-blk over guest-controlled descriptor chains: the split ring
//! (`emulator/src/devices/virtio/queue.rs`), the request parser
//! (`devices/virtio/blk/request.rs`) and the disk shell (`blk/io.rs`,
//! `blk/mod.rs`), with descriptors, rings and headers laid out by the
//! input in a real `GuestMemoryMmap` (two RAM regions with a hole between
//! them) and a real disk file (a memfd).
//!
//! Oracles, step by step (pop → split → validate → execute):
//! - `SplitQueue::new` refuses exactly the ring layouts that are not wholly
//!   in RAM;
//! - `pop` agrees with a naive reading of virtio 1.x §2.7 (same chain, or
//!   the same structural error: index jump, index out of range, a chain
//!   longer than the queue, an indirect descriptor);
//! - `split_chain` conserves bytes (header + data + status byte = the
//!   chain's bytes) and puts the status byte in the last descriptor, which
//!   is device-writable;
//! - `validate` only returns data ranges that lie inside the chain's
//!   descriptors of the right direction, whole sectors inside the disk,
//!   no write to a read-only disk;
//! - `execute` changes guest memory only inside the chain's device-writable
//!   buffers, and the disk only inside the request's sectors and only for
//!   a write; a request with any range outside guest RAM fails and changes
//!   nothing; a read copies the disk's bytes, a write the guest's;
//! - the disk never changes size, a read-only disk never changes;
//! - the whole device (`BlockDevice::notify`) on the same layout: writes
//!   guest memory only inside device-writable buffers and the used ring.
//!
//! Input format (`Reader`): `u8 size_log` (queue size `1 << (n % 9)`),
//! `u8 bits` (1: read-only disk, 2: ring addresses follow), `u8 cache`,
//! `u8 sectors` (disk size, mod 64), `u8 fill` (RAM pattern), `u16 avail_idx`,
//! [3 addresses: descriptor table, available ring, used ring], then
//! records until the end, `u8 tag % 3`: 0 the next descriptor (address,
//! length, `u8 flags` (& 7), `u16 next`), 1 the next available-ring entry
//! (`u16`), 2 a request header poked into RAM (address, `u8 kind % 5`:
//! in/out/flush/get-id/other with a `u32` type, `u64 sector`).
//! Address: `u8 tag % 3`: 0 `u16` offset in the low region, 1 `u16`
//! offset (mod 0x1100, so it may run off the end) in the high region,
//! 2 a raw `u64`. Length: `u8 tag % 3`: 0 a `u8`, 1 `u8 % 16` sectors,
//! 2 a raw `u32`. Headers are written first, then descriptors and rings.
#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;

use libfuzzer_sys::fuzz_target;
use openhook_emulator::vm_config::CacheMode;
use openhook_emulator::devices::virtio::blk::io::Disk;
use openhook_emulator::devices::virtio::blk::request::{
    split_chain, total_len, validate, BlkHeader, BlkKind, DiskInfo, HEADER_LEN, SECTOR_SIZE,
    T_FLUSH, T_GET_ID, T_IN, T_OUT,
};
use openhook_emulator::devices::virtio::blk::BlockDevice;
use openhook_emulator::devices::virtio::mmio::QueueConfig;
use openhook_emulator::devices::virtio::queue::{
    Descriptor, QueueError, SplitQueue, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT,
};
use openhook_emulator::devices::virtio::VirtioBackend;
use openhook_fuzz::reader::Reader;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest RAM: 64 KiB at 0, a hole, 4 KiB at 128 KiB.
const REGIONS: [(u64, u64); 2] = [(0, 0x1_0000), (0x2_0000, 0x1000)];
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x1400;
const ID: [u8; 20] = *b"openhook-fuzz-disk-0";

#[derive(Debug, Clone, Copy)]
enum Addr {
    Low(u16),
    High(u16),
    Raw(u64),
}

impl Addr {
    fn read(r: &mut Reader<'_>) -> Self {
        match r.u8() % 3 {
            0 => Addr::Low(r.u16()),
            1 => Addr::High(r.u16()),
            _ => Addr::Raw(r.u64()),
        }
    }

    fn gpa(self) -> u64 {
        match self {
            Addr::Low(o) => u64::from(o),
            Addr::High(o) => REGIONS[1].0 + u64::from(o % 0x1100),
            Addr::Raw(a) => a,
        }
    }
}

fn len(r: &mut Reader<'_>) -> u32 {
    match r.u8() % 3 {
        0 => u32::from(r.u8()),
        1 => u32::from(r.u8() % 16) * 512,
        _ => r.u32(),
    }
}

#[derive(Debug)]
struct Desc {
    addr: Addr,
    len: u32,
    flags: u8,
    next: u16,
}

#[derive(Debug)]
struct Header {
    at: Addr,
    request_type: u32,
    sector: u64,
}

#[derive(Debug)]
struct Input {
    size_log: u8,
    /// Ring addresses other than the usual ones (may be bad).
    rings: Option<(Addr, Addr, Addr)>,
    readonly: bool,
    cache: u8,
    sectors: u8,
    fill: u8,
    avail_idx: u16,
    descs: Vec<Desc>,
    avail: Vec<u16>,
    headers: Vec<Header>,
}

impl Input {
    fn read(data: &[u8]) -> Input {
        let mut r = Reader::new(data);
        let size_log = r.u8();
        let bits = r.u8();
        let mut input = Input {
            size_log,
            rings: None,
            readonly: bits & 1 != 0,
            cache: r.u8(),
            sectors: r.u8() % 64,
            fill: r.u8(),
            avail_idx: r.u16(),
            descs: Vec::new(),
            avail: Vec::new(),
            headers: Vec::new(),
        };
        if bits & 2 != 0 {
            input.rings = Some((Addr::read(&mut r), Addr::read(&mut r), Addr::read(&mut r)));
        }
        while !r.is_empty() {
            match r.u8() % 3 {
                0 => input.descs.push(Desc {
                    addr: Addr::read(&mut r),
                    len: len(&mut r),
                    flags: r.u8(),
                    next: r.u16(),
                }),
                1 => input.avail.push(r.u16()),
                _ => {
                    let at = Addr::read(&mut r);
                    let request_type = match r.u8() % 5 {
                        0 => T_IN,
                        1 => T_OUT,
                        2 => T_FLUSH,
                        3 => T_GET_ID,
                        _ => r.u32(),
                    };
                    input.headers.push(Header {
                        at,
                        request_type,
                        sector: r.u64(),
                    });
                }
            }
        }
        input
    }
}

fn in_ram(addr: u64, len: u64) -> bool {
    REGIONS
        .iter()
        .any(|&(s, l)| addr >= s && addr.checked_add(len).is_some_and(|e| e <= s + l))
}

fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

fn snapshot(mem: &GuestMemoryMmap) -> Vec<Vec<u8>> {
    REGIONS
        .iter()
        .map(|&(s, l)| {
            let mut v = vec![0u8; l as usize];
            mem.read_slice(&mut v, GuestAddress(s)).expect("RAM");
            v
        })
        .collect()
}

/// Guest addresses whose bytes differ.
fn changed(before: &[Vec<u8>], after: &[Vec<u8>]) -> Vec<u64> {
    let mut out = Vec::new();
    for ((b, a), &(base, _)) in before.iter().zip(after).zip(&REGIONS) {
        for (i, (x, y)) in b.iter().zip(a).enumerate() {
            if x != y {
                out.push(base + i as u64);
            }
        }
    }
    out
}

fn read_disk(f: &File) -> Vec<u8> {
    let len = f.metadata().expect("fstat").len() as usize;
    let mut v = vec![0u8; len];
    f.read_exact_at(&mut v, 0).expect("read disk");
    v
}

fn cache(n: u8) -> CacheMode {
    match n % 5 {
        0 => CacheMode::Writeback,
        1 => CacheMode::None,
        2 => CacheMode::Writethrough,
        3 => CacheMode::Directsync,
        _ => CacheMode::Unsafe,
    }
}

fn queue_config(input: &Input) -> QueueConfig {
    let size = 1u16 << (input.size_log % 9);
    let (desc, driver, device) = match input.rings {
        None => (DESC, AVAIL, USED),
        Some((d, a, u)) => (d.gpa() & !15, a.gpa() & !1, u.gpa() & !3),
    };
    QueueConfig {
        max_size: 256,
        size,
        ready: true,
        desc,
        driver,
        device,
    }
}

/// Lays the input out in fresh guest memory; returns it and the disk.
fn build(input: &Input, cfg: &QueueConfig) -> (GuestMemoryMmap, File) {
    let ranges: Vec<(GuestAddress, usize)> = REGIONS
        .iter()
        .map(|&(s, l)| (GuestAddress(s), l as usize))
        .collect();
    let mem = GuestMemoryMmap::from_ranges(&ranges).expect("guest memory");
    for &(s, l) in &REGIONS {
        let pattern: Vec<u8> = (0..l)
            .map(|i| (i as u8).wrapping_mul(31) ^ input.fill)
            .collect();
        mem.write_slice(&pattern, GuestAddress(s)).expect("fill");
    }
    for h in input.headers.iter().take(16) {
        let t = h.request_type;
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&t.to_le_bytes());
        b[8..].copy_from_slice(&h.sector.to_le_bytes());
        let _ = mem.write_slice(&b, GuestAddress(h.at.gpa()));
    }
    for (i, d) in input.descs.iter().take(usize::from(cfg.size)).enumerate() {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&d.addr.gpa().to_le_bytes());
        b[8..12].copy_from_slice(&d.len.to_le_bytes());
        b[12..14].copy_from_slice(&u16::from(d.flags & 7).to_le_bytes());
        b[14..].copy_from_slice(&d.next.to_le_bytes());
        let _ = mem.write_slice(&b, GuestAddress(cfg.desc.wrapping_add(16 * i as u64)));
    }
    let _ = mem.write_slice(&0u16.to_le_bytes(), GuestAddress(cfg.driver));
    for (i, head) in input.avail.iter().take(usize::from(cfg.size)).enumerate() {
        let _ = mem.write_slice(
            &head.to_le_bytes(),
            GuestAddress(cfg.driver.wrapping_add(4 + 2 * i as u64)),
        );
    }
    let _ = mem.write_slice(
        &input.avail_idx.to_le_bytes(),
        GuestAddress(cfg.driver.wrapping_add(2)),
    );

    let fd = rustix::fs::memfd_create("blk-fuzz", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd");
    let disk = File::from(fd);
    let bytes: Vec<u8> = (0..u64::from(input.sectors) * SECTOR_SIZE)
        .map(|i| (i % 251) as u8)
        .collect();
    disk.write_all_at(&bytes, 0).expect("disk");
    (mem, disk)
}

fn read_u16(mem: &[Vec<u8>], gpa: u64) -> Option<u16> {
    let mut b = [0u8; 2];
    read(mem, gpa, &mut b)?;
    Some(u16::from_le_bytes(b))
}

fn read(mem: &[Vec<u8>], gpa: u64, out: &mut [u8]) -> Option<()> {
    let (i, &(base, len)) = REGIONS
        .iter()
        .enumerate()
        .find(|(_, &(s, l))| gpa >= s && gpa < s + l)?;
    let off = (gpa - base) as usize;
    if off + out.len() > len as usize {
        return None;
    }
    out.copy_from_slice(&mem[i][off..off + out.len()]);
    Some(())
}

/// virtio 1.x §2.7, read naively from a snapshot: the next chain.
fn naive_pop(
    mem: &[Vec<u8>],
    cfg: &QueueConfig,
    next: u16,
) -> Result<Option<Vec<Descriptor>>, QueueError> {
    let idx = read_u16(mem, cfg.driver + 2).ok_or(QueueError::RingAccess)?;
    let pending = idx.wrapping_sub(next);
    if pending == 0 {
        return Ok(None);
    }
    if pending > cfg.size {
        return Err(QueueError::AvailIndexJump { avail: idx, next });
    }
    let mut i = read_u16(mem, cfg.driver + 4 + 2 * u64::from(next % cfg.size))
        .ok_or(QueueError::RingAccess)?;
    let mut chain = Vec::new();
    loop {
        if chain.len() == usize::from(cfg.size) {
            return Err(QueueError::ChainTooLong);
        }
        if i >= cfg.size {
            return Err(QueueError::IndexOutOfRange(i));
        }
        let mut b = [0u8; 16];
        read(mem, cfg.desc + 16 * u64::from(i), &mut b).ok_or(QueueError::RingAccess)?;
        let d = Descriptor {
            addr: u64::from_le_bytes(b[..8].try_into().expect("8")),
            len: u32::from_le_bytes(b[8..12].try_into().expect("4")),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        };
        if d.flags & VIRTQ_DESC_F_INDIRECT != 0 {
            return Err(QueueError::Indirect);
        }
        chain.push(d);
        if d.flags & VIRTQ_DESC_F_NEXT == 0 {
            return Ok(Some(chain));
        }
        i = d.next;
    }
}

/// `seg` lies inside one of `descs` with the given direction.
fn inside(addr: u64, len: u64, descs: &[Descriptor], writable: bool) -> bool {
    descs.iter().any(|d| {
        d.is_write_only() == writable
            && addr >= d.addr
            && d.addr
                .checked_add(u64::from(d.len))
                .is_some_and(|e| addr + len <= e)
    })
}

fn step_by_step(input: &Input) {
    let cfg = queue_config(input);
    let (mem, disk_file) = build(input, &cfg);
    let rings_in_ram = in_ram(cfg.desc, 16 * u64::from(cfg.size))
        && in_ram(cfg.driver, 6 + 2 * u64::from(cfg.size))
        && in_ram(cfg.device, 6 + 8 * u64::from(cfg.size));
    let mut q = match SplitQueue::new(&cfg, &mem) {
        Ok(q) => {
            assert!(rings_in_ram, "rings outside RAM accepted: {cfg:?}");
            q
        }
        Err(e) => {
            assert_eq!(e, QueueError::RingOutsideMemory);
            assert!(!rings_in_ram, "rings in RAM refused: {cfg:?}");
            return;
        }
    };
    let disk_len = disk_file.metadata().expect("fstat").len();
    let mut disk = Disk::new(
        disk_file.try_clone().expect("dup"),
        input.readonly,
        cache(input.cache),
        ID,
    )
    .expect("disk");
    let info = DiskInfo {
        sectors: disk.sectors(),
        readonly: input.readonly,
    };
    assert_eq!(info.sectors, u64::from(input.sectors));
    let original = read_disk(&disk_file);
    let mut next = 0u16;

    for _ in 0..=cfg.size {
        let before = snapshot(&mem);
        let want = naive_pop(&before, &cfg, next);
        let got = q.pop(&mem).map(|c| c.map(|c| (c.head, c.descriptors)));
        match (&got, &want) {
            (Ok(None), Ok(None)) => break,
            (Ok(Some((_, g))), Ok(Some(w))) => assert_eq!(g, w),
            (Err(g), Err(w)) => {
                assert_eq!(g, w);
                break;
            }
            _ => panic!("pop {got:?}, naive {want:?}"),
        }
        next = next.wrapping_add(1);
        let Ok(Some((head, chain))) = got else {
            unreachable!()
        };
        assert!(!chain.is_empty() && chain.len() <= usize::from(cfg.size));

        let split = match split_chain(&chain) {
            Ok(s) => s,
            Err(_) => {
                // No status byte: the last non-empty descriptor is not a
                // usable device-writable one.
                let last = chain.iter().rev().find(|d| d.len != 0);
                assert!(last.is_none_or(
                    |d| !d.is_write_only() || d.addr.checked_add(u64::from(d.len)).is_none()
                ));
                break;
            }
        };
        // Bytes are conserved when no descriptor overflows.
        if !split.bad_address {
            let all: u64 = chain.iter().map(|d| u64::from(d.len)).sum();
            let parts = total_len(&split.header)
                + total_len(&split.out_data)
                + total_len(&split.in_data)
                + 1;
            assert_eq!(parts, all, "split loses bytes");
        }
        let last = chain
            .iter()
            .rev()
            .find(|d| d.len != 0)
            .expect("status descriptor");
        assert!(last.is_write_only() && split.status == last.addr + u64::from(last.len) - 1);
        for s in &split.in_data {
            assert!(inside(s.addr, s.len, &chain, true));
        }
        for s in split.header.iter().chain(&split.out_data) {
            assert!(inside(s.addr, s.len, &chain, false));
        }

        // The header, copied once.
        let mut raw = [0u8; 16];
        let mut got_bytes = 0usize;
        let mut header_ok = true;
        for s in &split.header {
            let end = got_bytes + s.len as usize;
            if end > 16
                || mem
                    .read_slice(&mut raw[got_bytes..end], GuestAddress(s.addr))
                    .is_err()
            {
                header_ok = false;
                break;
            }
            got_bytes = end;
        }
        if header_ok && got_bytes as u64 == HEADER_LEN {
            let hdr = BlkHeader::from_bytes(raw);
            if let Ok(req) = validate(&split, &hdr, info) {
                check_request(&mem, &mut disk, &disk_file, &chain, &hdr, info, &req);
            }
        }
        q.add_used(&mem, head, 1).expect("used ring is in RAM");
    }
    let after = read_disk(&disk_file);
    assert_eq!(after.len() as u64, disk_len, "the disk changed size");
    if input.readonly {
        assert!(after == original, "a read-only disk changed");
    }
}

fn check_request(
    mem: &GuestMemoryMmap,
    disk: &mut Disk,
    disk_file: &File,
    chain: &[Descriptor],
    hdr: &BlkHeader,
    info: DiskInfo,
    req: &openhook_emulator::devices::virtio::blk::request::BlkRequest,
) {
    assert_eq!(req.sector, hdr.sector);
    assert_eq!(req.data_len, total_len(&req.data));
    match req.kind {
        BlkKind::Read | BlkKind::Write => {
            assert_eq!(req.data_len % SECTOR_SIZE, 0);
            assert!(req
                .sector
                .checked_add(req.data_len / SECTOR_SIZE)
                .is_some_and(|e| e <= info.sectors));
        }
        BlkKind::Flush => assert!(req.data.is_empty()),
        BlkKind::GetId => assert!(req.data_len <= 20),
    }
    if req.kind == BlkKind::Write {
        assert!(!info.readonly, "write validated on a read-only disk");
    }
    let writable = matches!(req.kind, BlkKind::Read | BlkKind::GetId);
    for s in &req.data {
        assert!(
            inside(s.addr, s.len, chain, writable),
            "data range {s:?} outside the chain"
        );
    }

    let mem_before = snapshot(mem);
    let disk_before = read_disk(disk_file);
    let all_in_ram = req.data.iter().all(|s| in_ram(s.addr, s.len));
    let result = disk.execute(mem, req);
    let mem_after = snapshot(mem);
    let disk_after = read_disk(disk_file);
    if !all_in_ram {
        assert!(result.is_err(), "a range outside RAM was accepted: {req:?}");
        assert!(
            mem_after == mem_before && disk_after == disk_before,
            "a refused request changed something"
        );
        return;
    }
    // Memory: only the chain's device-writable buffers, and only for reads.
    for gpa in changed(&mem_before, &mem_after) {
        assert!(writable, "{:?} changed guest memory at {gpa:#x}", req.kind);
        assert!(
            inside(gpa, 1, chain, true),
            "write outside device-writable buffers at {gpa:#x}"
        );
    }
    // Disk: only the request's sectors, and only for a write.
    // (Flush and get-id carry any sector: it is not checked, nor used.)
    let start = req.sector.saturating_mul(SECTOR_SIZE) as usize;
    let end = start.saturating_add(req.data_len as usize);
    for (i, (a, b)) in disk_before.iter().zip(&disk_after).enumerate() {
        if a != b {
            assert_eq!(
                req.kind,
                BlkKind::Write,
                "disk byte {i} changed by {:?}",
                req.kind
            );
            assert!(
                (start..end).contains(&i),
                "disk byte {i} outside sectors {start}..{end}"
            );
        }
    }
    let Ok(_) = result else { return };
    // The bytes moved are the right ones.
    let mut flat = Vec::new();
    for s in &req.data {
        let mut v = vec![0u8; s.len as usize];
        mem.read_slice(&mut v, GuestAddress(s.addr))
            .expect("in RAM");
        flat.extend(v);
    }
    match req.kind {
        BlkKind::Write => assert!(
            disk_after[start..end] == flat[..],
            "disk differs from the guest buffer"
        ),
        BlkKind::Read => {
            // Overlapping guest buffers: later segments win; check when
            // they are disjoint.
            let disjoint = req.data.iter().enumerate().all(|(i, a)| {
                req.data[i + 1..]
                    .iter()
                    .all(|b| !overlaps(a.addr, a.len, b.addr, b.len))
            });
            if disjoint {
                assert!(
                    flat[..] == disk_before[start..end],
                    "guest buffer differs from the disk"
                );
            }
        }
        BlkKind::GetId => {
            if req.data.iter().enumerate().all(|(i, a)| {
                req.data[i + 1..]
                    .iter()
                    .all(|b| !overlaps(a.addr, a.len, b.addr, b.len))
            }) {
                assert!(flat[..] == ID[..flat.len()]);
            }
        }
        BlkKind::Flush => {}
    }
}

/// The whole device on the same layout.
fn whole_device(input: &Input) {
    let cfg = queue_config(input);
    if !cfg.is_valid() {
        return;
    }
    let (mem, disk_file) = build(input, &cfg);
    let before = snapshot(&mem);
    let original = read_disk(&disk_file);
    let mut dev = BlockDevice::new(
        disk_file.try_clone().expect("dup"),
        input.readonly,
        cache(input.cache),
        ID,
    )
    .expect("device");
    let _ = dev.notify(0, &cfg, &mem);
    let _ = dev.notify(0, &cfg, &mem);
    let after = snapshot(&mem);
    let disk = read_disk(&disk_file);
    assert_eq!(disk.len(), original.len(), "the disk changed size");
    if input.readonly {
        assert!(disk == original, "a read-only disk changed");
    }
    // Writable buffers as the driver laid them out. If one overlaps the
    // descriptor table or the available ring, the device may (legitimately)
    // rewrite what it reads next; then only the checks above apply.
    let size = u64::from(cfg.size);
    let table: Vec<Descriptor> = (0..size)
        .filter_map(|i| {
            let mut b = [0u8; 16];
            read(&before, cfg.desc.checked_add(16 * i)?, &mut b)?;
            Some(Descriptor {
                addr: u64::from_le_bytes(b[..8].try_into().expect("8")),
                len: u32::from_le_bytes(b[8..12].try_into().expect("4")),
                flags: u16::from_le_bytes([b[12], b[13]]),
                next: 0,
            })
        })
        .filter(Descriptor::is_write_only)
        .collect();
    let self_modifying = table.iter().any(|d| {
        overlaps(d.addr, u64::from(d.len), cfg.desc, 16 * size)
            || overlaps(d.addr, u64::from(d.len), cfg.driver, 6 + 2 * size)
    });
    if self_modifying {
        return;
    }
    for gpa in changed(&before, &after) {
        let in_used = gpa >= cfg.device && gpa - cfg.device < 6 + 8 * size;
        assert!(
            in_used || inside(gpa, 1, &table, true),
            "device wrote guest memory at {gpa:#x} outside its buffers"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::read(data);
    step_by_step(&input);
    whole_device(&input);
});
