//! One `preadv`/`pwritev` per request, straight between the disk file and
//! guest RAM, as QEMU does: a 1 MiB request in four descriptors is one
//! syscall instead of an `lseek` and four `read`s.
//!
//! vm-memory has no vectored file I/O, so this is the one place that hands
//! raw guest addresses to the kernel. The iovecs are built from
//! `VolatileSlice`s (never Rust references into guest memory, which the
//! guest may change at any time) and live only for the call.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

use super::request::Segment;

/// At most this many iovecs per call (the kernel's UIO_MAXIOV).
const IOV_MAX: usize = 1024;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Disk → guest (VIRTIO_BLK_T_IN).
    Read,
    /// Guest → disk (VIRTIO_BLK_T_OUT).
    Write,
}

/// The guest ranges as volatile slices, or `None` when one of them is not
/// inside a single RAM region (the caller then moves it piecewise).
pub fn guest_slices<'m>(
    mem: &'m GuestMemoryMmap,
    data: &[Segment],
) -> Option<Vec<VolatileSlice<'m>>> {
    data.iter()
        .map(|s| {
            let len = usize::try_from(s.len).ok()?;
            mem.get_slice(GuestAddress(s.addr), len).ok()
        })
        .collect()
}

/// Moves every byte of `slices` from or to `file` at `offset`, retrying
/// short transfers and EINTR. A read that meets the end of the file is
/// `UnexpectedEof` (the file shrank under us; validation checked the size).
pub fn transfer(
    file: &File,
    slices: &[VolatileSlice<'_>],
    mut offset: u64,
    dir: Direction,
) -> io::Result<()> {
    let guards: Vec<_> = slices.iter().map(|s| s.ptr_guard_mut()).collect();
    let mut iov: Vec<libc::iovec> = guards
        .iter()
        .zip(slices)
        .filter(|(_, s)| !s.is_empty())
        .map(|(g, s)| libc::iovec {
            iov_base: g.as_ptr().cast(),
            iov_len: s.len(),
        })
        .collect();
    let mut first = 0usize;
    while first < iov.len() {
        let end = (first + IOV_MAX).min(iov.len());
        let batch = &iov[first..end];
        let count = i32::try_from(batch.len()).unwrap_or(i32::MAX);
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fd = file.as_raw_fd();
        // SAFETY (both arms): each iovec covers exactly one `VolatileSlice`
        // of guest RAM, whose mapping `slices` borrows for the whole call;
        // the kernel only writes (preadv) or reads (pwritev) those bytes,
        // which Rust code never holds a reference to. `batch` outlives the
        // call.
        let n = match dir {
            // SAFETY: see above.
            Direction::Read => unsafe { libc::preadv(fd, batch.as_ptr(), count, off) },
            // SAFETY: see above.
            Direction::Write => unsafe { libc::pwritev(fd, batch.as_ptr(), count, off) },
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut done = usize::try_from(n).unwrap_or(0);
        if done == 0 {
            return Err(match dir {
                Direction::Read => io::ErrorKind::UnexpectedEof.into(),
                Direction::Write => io::ErrorKind::WriteZero.into(),
            });
        }
        offset += done as u64;
        // Drop what is complete; shorten the iovec the transfer ended in.
        while done > 0 && first < iov.len() {
            let v = &mut iov[first];
            if done >= v.iov_len {
                done -= v.iov_len;
                first += 1;
            } else {
                // SAFETY: `done < iov_len`, so the new base stays inside
                // the same guest slice.
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(done).cast() };
                v.iov_len -= done;
                done = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)]
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};
    use vm_memory::Bytes;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x10000),
            (GuestAddress(0x20000), 0x10000),
        ])
        .unwrap()
    }

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_scatter_the_file_over_the_segments_in_order() {
        let m = mem();
        let disk: Vec<u8> = (0..8192u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let f = file(&disk);
        let segs = [
            Segment {
                addr: 0x3000,
                len: 512,
            },
            Segment {
                addr: 0x20100,
                len: 1024,
            },
            Segment {
                addr: 0x100,
                len: 512,
            },
        ];
        let s = guest_slices(&m, &segs).unwrap();
        transfer(&f, &s, 1024, Direction::Read).unwrap();
        let mut got = vec![0u8; 2048];
        m.read_slice(&mut got[..512], GuestAddress(0x3000)).unwrap();
        m.read_slice(&mut got[512..1536], GuestAddress(0x20100))
            .unwrap();
        m.read_slice(&mut got[1536..], GuestAddress(0x100)).unwrap();
        assert_eq!(got, disk[1024..3072]);
    }

    #[test]
    fn writes_gather_the_segments_into_the_file_and_touch_nothing_else() {
        let m = mem();
        m.write_slice(&[0xaa; 512], GuestAddress(0x1000)).unwrap();
        m.write_slice(&[0xbb; 1024], GuestAddress(0x20000)).unwrap();
        let mut f = file(&[0u8; 4096]);
        let segs = [
            Segment {
                addr: 0x1000,
                len: 512,
            },
            Segment {
                addr: 0x20000,
                len: 1024,
            },
        ];
        let s = guest_slices(&m, &segs).unwrap();
        transfer(&f, &s, 512, Direction::Write).unwrap();
        let mut all = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut all).unwrap();
        assert!(all[..512].iter().all(|&b| b == 0));
        assert!(all[512..1024].iter().all(|&b| b == 0xaa));
        assert!(all[1024..2048].iter().all(|&b| b == 0xbb));
        assert!(all[2048..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_read_past_the_end_of_the_file_is_an_error() {
        let m = mem();
        let f = file(&[1u8; 1024]);
        let s = guest_slices(&m, &[Segment { addr: 0, len: 2048 }]).unwrap();
        let e = transfer(&f, &s, 0, Direction::Read).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_segment_across_regions_or_outside_ram_has_no_slice() {
        let m = mem();
        assert!(guest_slices(
            &m,
            &[Segment {
                addr: 0xff00,
                len: 0x200
            }]
        )
        .is_none());
        assert!(guest_slices(
            &m,
            &[Segment {
                addr: 0x50000,
                len: 512
            }]
        )
        .is_none());
        assert!(guest_slices(
            &m,
            &[Segment {
                addr: 0x20000,
                len: 512
            }]
        )
        .is_some());
    }

    #[test]
    fn many_segments_go_in_batches_of_iov_max() {
        let m = mem();
        let disk: Vec<u8> = (0..(u32::try_from(IOV_MAX).unwrap() + 10) * 16)
            .map(|i| u8::try_from(i % 253).unwrap())
            .collect();
        let f = file(&disk);
        // IOV_MAX + 10 segments of 16 bytes, laid out back to back.
        let segs: Vec<Segment> = (0..u64::try_from(IOV_MAX).unwrap() + 10)
            .map(|i| Segment {
                addr: i * 16,
                len: 16,
            })
            .collect();
        let s = guest_slices(&m, &segs).unwrap();
        transfer(&f, &s, 0, Direction::Read).unwrap();
        let mut got = vec![0u8; disk.len()];
        m.read_slice(&mut got, GuestAddress(0)).unwrap();
        assert_eq!(got, disk);
    }
}
