//! virtio-blk request parsing and validation (virtio 1.x §5.2.6), pure.
//!
//! Input: the copied descriptor chain (see `queue.rs`), the copied 16-byte
//! header, and the disk's size. Output: a [`BlkRequest`] naming exactly
//! which guest ranges to move and where the status byte goes, or a
//! [`BlkError`] that maps to a virtio status (or, when there is nowhere to
//! put a status, to DEVICE_NEEDS_RESET). Any framing of header, data and
//! status across descriptors is accepted, as the spec requires.
#![forbid(unsafe_code)]

use crate::devices::virtio::queue::Descriptor;

pub const SECTOR_SIZE: u64 = 512;
/// Bytes of `struct virtio_blk_req`'s header: type, reserved, sector.
pub const HEADER_LEN: u64 = 16;
/// Bytes of a device id (VIRTIO_BLK_T_GET_ID).
pub const ID_BYTES: u64 = 20;

pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;

pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// A guest-physical byte range; `addr + len` does not overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub len: u64,
}

/// The chain cut into header, data and status by direction and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSplit {
    /// Where the 16 header bytes are (possibly fewer if the chain is short).
    pub header: Vec<Segment>,
    /// Device-readable bytes after the header (write payload).
    pub out_data: Vec<Segment>,
    /// Device-writable bytes before the status byte (read payload, id).
    pub in_data: Vec<Segment>,
    /// Guest address of the status byte: the chain's last byte.
    pub status: u64,
    /// A device-readable descriptor followed a device-writable one.
    pub misordered: bool,
    /// A descriptor's `addr + len` overflowed.
    pub bad_address: bool,
}

/// The header as copied out of guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkHeader {
    pub request_type: u32,
    pub sector: u64,
}

impl BlkHeader {
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = b;
        BlkHeader {
            request_type: u32::from_le_bytes([t0, t1, t2, t3]),
            sector: u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]),
        }
    }
}

/// What the disk looks like to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskInfo {
    pub sectors: u64,
    pub readonly: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkKind {
    Read,
    Write,
    Flush,
    GetId,
}

/// A validated request: the I/O shell moves `data` (in guest order) to or
/// from the disk at `sector`, then writes the status byte at `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlkRequest {
    pub kind: BlkKind,
    pub sector: u64,
    pub data: Vec<Segment>,
    pub data_len: u64,
    pub status: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlkError {
    #[error("chain has no device-writable status byte")]
    NoStatusByte,
    #[error("request header shorter than 16 bytes")]
    HeaderTooShort,
    #[error("device-readable descriptor after a device-writable one")]
    Misordered,
    #[error("descriptor address range overflows")]
    BadAddress,
    #[error("data length {len} is not a multiple of 512")]
    NotSectorMultiple { len: u64 },
    #[error("sectors {sector}+{count} past the end of a {sectors}-sector disk")]
    PastEnd {
        sector: u64,
        count: u64,
        sectors: u64,
    },
    #[error("write to a read-only disk")]
    ReadOnly,
    #[error("unsupported request type {0}")]
    Unsupported(u32),
}

impl BlkError {
    /// The virtio status to report, or `None` when no status can be
    /// written (the device then needs a reset).
    pub fn status(self) -> Option<u8> {
        match self {
            BlkError::NoStatusByte => None,
            BlkError::Unsupported(_) => Some(S_UNSUPP),
            _ => Some(S_IOERR),
        }
    }
}

/// Splits `segs` after `n` bytes.
fn split_at(segs: &[Segment], n: u64) -> (Vec<Segment>, Vec<Segment>) {
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let mut left = n;
    for s in segs {
        if left == 0 {
            tail.push(*s);
        } else if s.len <= left {
            head.push(*s);
            left -= s.len;
        } else {
            head.push(Segment {
                addr: s.addr,
                len: left,
            });
            // s.addr + s.len does not overflow, so neither does this.
            tail.push(Segment {
                addr: s.addr + left,
                len: s.len - left,
            });
            left = 0;
        }
    }
    (head, tail)
}

/// Total bytes of `segs` (at most 65536 × u32::MAX, so no overflow in u64).
pub fn total_len(segs: &[Segment]) -> u64 {
    segs.iter().map(|s| s.len).sum()
}

/// Cuts a chain into header / data / status. Fails only when there is no
/// status byte to report through.
pub fn split_chain(descs: &[Descriptor]) -> Result<ChainSplit, BlkError> {
    let mut readable = Vec::new();
    let mut writable = Vec::new();
    let mut misordered = false;
    let mut bad_address = false;
    for d in descs {
        let len = u64::from(d.len);
        if d.addr.checked_add(len).is_none() {
            bad_address = true;
            continue;
        }
        if len == 0 {
            continue;
        }
        let seg = Segment { addr: d.addr, len };
        if d.is_write_only() {
            writable.push(seg);
        } else {
            if !writable.is_empty() {
                misordered = true;
            }
            readable.push(seg);
        }
    }
    // The status byte is the last byte of the chain, which must be writable.
    let last_is_writable = descs
        .iter()
        .rev()
        .find(|d| d.len != 0)
        .is_some_and(|d| d.is_write_only() && d.addr.checked_add(u64::from(d.len)).is_some());
    let Some(last) = writable.last_mut().filter(|_| last_is_writable) else {
        return Err(BlkError::NoStatusByte);
    };
    last.len -= 1;
    let status = last.addr + last.len;
    if last.len == 0 {
        writable.pop();
    }
    let (header, out_data) = split_at(&readable, HEADER_LEN);
    Ok(ChainSplit {
        header,
        out_data,
        in_data: writable,
        status,
        misordered,
        bad_address,
    })
}

fn check_range(sector: u64, len: u64, disk: DiskInfo) -> Result<(), BlkError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(BlkError::NotSectorMultiple { len });
    }
    let count = len / SECTOR_SIZE;
    let past_end = BlkError::PastEnd {
        sector,
        count,
        sectors: disk.sectors,
    };
    match sector.checked_add(count) {
        Some(end) if end <= disk.sectors => Ok(()),
        _ => Err(past_end),
    }
}

/// Validates a request from its split chain and copied header.
pub fn validate(
    split: &ChainSplit,
    hdr: &BlkHeader,
    disk: DiskInfo,
) -> Result<BlkRequest, BlkError> {
    if split.bad_address {
        return Err(BlkError::BadAddress);
    }
    if split.misordered {
        return Err(BlkError::Misordered);
    }
    if total_len(&split.header) < HEADER_LEN {
        return Err(BlkError::HeaderTooShort);
    }
    let (kind, data) = match hdr.request_type {
        T_IN => {
            let data = split.in_data.clone();
            check_range(hdr.sector, total_len(&data), disk)?;
            (BlkKind::Read, data)
        }
        T_OUT => {
            if disk.readonly {
                return Err(BlkError::ReadOnly);
            }
            let data = split.out_data.clone();
            check_range(hdr.sector, total_len(&data), disk)?;
            (BlkKind::Write, data)
        }
        T_FLUSH => (BlkKind::Flush, Vec::new()),
        T_GET_ID => (BlkKind::GetId, split_at(&split.in_data, ID_BYTES).0),
        other => return Err(BlkError::Unsupported(other)),
    };
    let data_len = total_len(&data);
    Ok(BlkRequest {
        kind,
        sector: hdr.sector,
        data,
        data_len,
        status: split.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
    use proptest::prelude::*;

    const DISK: DiskInfo = DiskInfo {
        sectors: 100,
        readonly: false,
    };

    fn r(addr: u64, len: u32) -> Descriptor {
        Descriptor {
            addr,
            len,
            flags: VIRTQ_DESC_F_NEXT,
            next: 0,
        }
    }
    fn w(addr: u64, len: u32) -> Descriptor {
        Descriptor {
            addr,
            len,
            flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
            next: 0,
        }
    }
    fn hdr(request_type: u32, sector: u64) -> BlkHeader {
        BlkHeader {
            request_type,
            sector,
        }
    }
    fn parse(descs: &[Descriptor], h: BlkHeader, disk: DiskInfo) -> Result<BlkRequest, BlkError> {
        validate(&split_chain(descs)?, &h, disk)
    }

    #[test]
    fn classic_three_descriptor_read() {
        let req = parse(
            &[r(0x1000, 16), w(0x2000, 1024), w(0x3000, 1)],
            hdr(T_IN, 7),
            DISK,
        )
        .unwrap();
        assert_eq!(req.kind, BlkKind::Read);
        assert_eq!(req.sector, 7);
        assert_eq!(
            req.data,
            vec![Segment {
                addr: 0x2000,
                len: 1024
            }]
        );
        assert_eq!(req.data_len, 1024);
        assert_eq!(req.status, 0x3000);
    }

    #[test]
    fn any_framing_is_accepted() {
        // Header split over two descriptors, data and status in one.
        let split = split_chain(&[r(0x1000, 10), r(0x5000, 6 + 512), w(0x2000, 513)]).unwrap();
        assert_eq!(
            split.header,
            vec![
                Segment {
                    addr: 0x1000,
                    len: 10
                },
                Segment {
                    addr: 0x5000,
                    len: 6
                }
            ]
        );
        assert_eq!(
            split.out_data,
            vec![Segment {
                addr: 0x5006,
                len: 512
            }]
        );
        assert_eq!(
            split.in_data,
            vec![Segment {
                addr: 0x2000,
                len: 512
            }]
        );
        assert_eq!(split.status, 0x2200);
        let req = validate(&split, &hdr(T_OUT, 0), DISK).unwrap();
        assert_eq!(req.kind, BlkKind::Write);
        assert_eq!(
            req.data,
            vec![Segment {
                addr: 0x5006,
                len: 512
            }]
        );
    }

    #[test]
    fn no_writable_status_means_needs_reset() {
        assert_eq!(split_chain(&[r(0x1000, 16)]), Err(BlkError::NoStatusByte));
        assert_eq!(split_chain(&[]), Err(BlkError::NoStatusByte));
        // Last descriptor readable, even with writable ones before it.
        assert_eq!(
            split_chain(&[r(0x1000, 16), w(0x2000, 1), r(0x3000, 1)]),
            Err(BlkError::NoStatusByte)
        );
        assert_eq!(BlkError::NoStatusByte.status(), None);
        // Zero-length trailing descriptors are skipped.
        assert!(split_chain(&[r(0x1000, 16), w(0x2000, 1), w(0x3000, 0)]).is_ok());
        // A status byte whose range overflows is no status byte.
        assert_eq!(
            split_chain(&[r(0x1000, 16), w(u64::MAX, 1)]),
            Err(BlkError::NoStatusByte)
        );
    }

    #[test]
    fn errors_with_a_status_byte() {
        let cases: &[(&[Descriptor], BlkHeader, DiskInfo, BlkError)] = &[
            (
                &[r(0, 8), w(0x2000, 1)],
                hdr(T_IN, 0),
                DISK,
                BlkError::HeaderTooShort,
            ),
            (
                &[r(0, 16), w(0x2000, 100), w(0x3000, 1)],
                hdr(T_IN, 0),
                DISK,
                BlkError::NotSectorMultiple { len: 100 },
            ),
            (
                &[r(0, 16), w(0x2000, 1024), w(0x3000, 1)],
                hdr(T_IN, 99),
                DISK,
                BlkError::PastEnd {
                    sector: 99,
                    count: 2,
                    sectors: 100,
                },
            ),
            (
                &[r(0, 16), w(0x2000, 512), w(0x3000, 1)],
                hdr(T_IN, u64::MAX),
                DISK,
                BlkError::PastEnd {
                    sector: u64::MAX,
                    count: 1,
                    sectors: 100,
                },
            ),
            (
                &[r(0, 16), r(0x2000, 512), w(0x3000, 1)],
                hdr(T_OUT, 0),
                DiskInfo {
                    readonly: true,
                    ..DISK
                },
                BlkError::ReadOnly,
            ),
            (
                &[r(0, 16), w(0x3000, 1)],
                hdr(11, 0),
                DISK,
                BlkError::Unsupported(11),
            ),
            (
                &[r(0, 16), w(0x3000, 1), r(0x2000, 512), w(0x4000, 1)],
                hdr(T_OUT, 0),
                DISK,
                BlkError::Misordered,
            ),
            (
                &[r(0, 16), r(u64::MAX - 3, 512), w(0x3000, 1)],
                hdr(T_OUT, 0),
                DISK,
                BlkError::BadAddress,
            ),
        ];
        for (i, (descs, h, disk, want)) in cases.iter().enumerate() {
            assert_eq!(parse(descs, *h, *disk), Err(*want), "case {i}");
            assert!(want.status().is_some());
        }
        assert_eq!(BlkError::Unsupported(11).status(), Some(S_UNSUPP));
        assert_eq!(BlkError::ReadOnly.status(), Some(S_IOERR));
    }

    #[test]
    fn last_sector_exactly_is_fine_and_flush_ignores_sector() {
        let req = parse(
            &[r(0, 16), w(0x2000, 512), w(0x3000, 1)],
            hdr(T_IN, 99),
            DISK,
        )
        .unwrap();
        assert_eq!(req.data_len, 512);
        let req = parse(&[r(0, 16), w(0x3000, 1)], hdr(T_FLUSH, u64::MAX), DISK).unwrap();
        assert_eq!(req.kind, BlkKind::Flush);
        let ro = DiskInfo {
            readonly: true,
            ..DISK
        };
        assert!(parse(&[r(0, 16), w(0x3000, 1)], hdr(T_FLUSH, 0), ro).is_ok());
        assert!(parse(&[r(0, 16), w(0x2000, 512), w(0x3000, 1)], hdr(T_IN, 0), ro).is_ok());
    }

    #[test]
    fn get_id_takes_at_most_20_bytes() {
        let req = parse(
            &[r(0, 16), w(0x2000, 64), w(0x3000, 1)],
            hdr(T_GET_ID, 0),
            DISK,
        )
        .unwrap();
        assert_eq!(req.kind, BlkKind::GetId);
        assert_eq!(
            req.data,
            vec![Segment {
                addr: 0x2000,
                len: 20
            }]
        );
        let req = parse(&[r(0, 16), w(0x2000, 9)], hdr(T_GET_ID, 0), DISK).unwrap();
        assert_eq!(
            req.data,
            vec![Segment {
                addr: 0x2000,
                len: 8
            }]
        );
        assert_eq!(req.status, 0x2008);
    }

    fn arb_desc() -> impl Strategy<Value = Descriptor> {
        (
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(addr, len, wr, small)| {
                let (addr, len) = if small {
                    (addr % 0x10000, len % 2048)
                } else {
                    (addr, len)
                };
                Descriptor {
                    addr,
                    len,
                    flags: if wr { VIRTQ_DESC_F_WRITE } else { 0 },
                    next: 0,
                }
            })
    }

    fn within_some_descriptor(seg: &Segment, descs: &[Descriptor]) -> bool {
        descs.iter().any(|d| {
            seg.addr >= d.addr
                && seg
                    .addr
                    .checked_add(seg.len)
                    .is_some_and(|e| e <= d.addr.saturating_add(u64::from(d.len)))
        })
    }

    proptest! {
        /// Arbitrary chains and headers never panic, and whatever is
        /// accepted stays inside the guest's own descriptors and the disk.
        #[test]
        fn arbitrary_chains_are_safe(
            descs in prop::collection::vec(arb_desc(), 0..12),
            t in prop_oneof![Just(T_IN), Just(T_OUT), Just(T_FLUSH), Just(T_GET_ID), any::<u32>()],
            sector in prop_oneof![0u64..200, any::<u64>()],
            sectors in 0u64..200,
            readonly in any::<bool>(),
        ) {
            let disk = DiskInfo { sectors, readonly };
            match split_chain(&descs) {
                Err(e) => prop_assert_eq!(e, BlkError::NoStatusByte),
                Ok(split) => {
                    let status = Segment { addr: split.status, len: 1 };
                    prop_assert!(within_some_descriptor(&status, &descs));
                    if let Ok(req) = validate(&split, &hdr(t, sector), disk) {
                        prop_assert_eq!(req.data_len, total_len(&req.data));
                        for s in &req.data {
                            prop_assert!(within_some_descriptor(s, &descs));
                        }
                        match req.kind {
                            BlkKind::Read | BlkKind::Write => {
                                prop_assert_eq!(req.data_len % SECTOR_SIZE, 0);
                                prop_assert!(sector + req.data_len / SECTOR_SIZE <= sectors);
                                prop_assert!(!(readonly && req.kind == BlkKind::Write));
                            }
                            BlkKind::GetId => prop_assert!(req.data_len <= ID_BYTES),
                            BlkKind::Flush => prop_assert_eq!(req.data_len, 0),
                        }
                    }
                }
            }
        }

        /// A well-formed chain gives exactly the request it was built for.
        #[test]
        fn well_formed_chains_parse_to_their_model(
            hdr_cut in 1u32..16,
            data_parts in prop::collection::vec(1u32..4, 0..4),
            write in any::<bool>(),
            sector in 0u64..50,
        ) {
            let mut descs = vec![r(0x1000, hdr_cut), r(0x1000 + u64::from(hdr_cut), 16 - hdr_cut)];
            let mut addr = 0x10_0000u64;
            let mut want = Vec::new();
            for p in &data_parts {
                let len = p * 512;
                descs.push(if write { r(addr, len) } else { w(addr, len) });
                want.push(Segment { addr, len: u64::from(len) });
                addr += 0x10000;
            }
            descs.push(w(0x9000, 1));
            let t = if write { T_OUT } else { T_IN };
            let req = parse(&descs, hdr(t, sector), DiskInfo { sectors: 100, readonly: false }).unwrap();
            prop_assert_eq!(req.kind, if write { BlkKind::Write } else { BlkKind::Read });
            prop_assert_eq!(req.data, want);
            prop_assert_eq!(req.status, 0x9000);
            prop_assert_eq!(req.sector, sector);
        }
    }
}
