//! `dump-guest-memory` with protocol `fd:NAME`: raw guest RAM.
//!
//! Format (docs/qmp.md): a flat image of guest-physical memory from
//! address 0 (or `begin`) up to the end of the highest RAM region (or
//! `begin + length`): file offset N holds guest-physical address N (or
//! `begin + N`). RAM bytes are copied; gaps between RAM regions (the
//! firmware mirror below 1 MiB, the hole below 4 GiB) are written as
//! zeros. No header. The vCPUs are
//! paused for the copy and resumed afterwards if they were running;
//! `DUMP_COMPLETED` is emitted when done.
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};

use serde_json::{json, Value};

use super::getfd::take_named;
use super::{empty, Ctx};
use crate::qmp::args::Args;
use crate::qmp::backend::MachineBackend;
use crate::qmp::error::QmpError;

const CHUNK: usize = 1 << 20;

/// The guest-physical pieces to copy: each region clipped to the range.
pub fn plan(map: &[(u64, u64)], begin: u64, end: u64) -> Vec<(u64, u64)> {
    map.iter()
        .filter_map(|&(start, len)| {
            let s = start.max(begin);
            let e = start.saturating_add(len).min(end);
            (s < e).then(|| (s, e - s))
        })
        .collect()
}

fn write_all(fd: &OwnedFd, mut b: &[u8]) -> std::io::Result<()> {
    while !b.is_empty() {
        match rustix::io::write(fd.as_fd(), b) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => b = &b[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn zeros(out: &OwnedFd, mut len: u64, buf: &mut [u8]) -> std::io::Result<()> {
    buf.fill(0);
    while len > 0 {
        let n = usize::try_from(len.min(buf.len() as u64)).unwrap_or(buf.len());
        write_all(out, &buf[..n])?;
        len -= n as u64;
    }
    Ok(())
}

fn copy(
    m: &dyn MachineBackend,
    begin: u64,
    pieces: &[(u64, u64)],
    out: &OwnedFd,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    let mut at = begin;
    for &(start, len) in pieces {
        // Keep file offset == address - begin across gaps.
        zeros(out, start - at, &mut buf)?;
        total += start - at;
        at = start + len;
        let mut done = 0u64;
        while done < len {
            let n = usize::try_from((len - done).min(CHUNK as u64)).unwrap_or(CHUNK);
            m.read_memory(start + done, &mut buf[..n])?;
            write_all(out, &buf[..n])?;
            done += n as u64;
        }
        total += len;
    }
    Ok(total)
}

pub fn dump_guest_memory(ctx: &mut Ctx<'_>, mut args: Args) -> Result<Value, QmpError> {
    let paging = args.bool("paging")?;
    let protocol = args.str("protocol")?;
    let _detach = args.opt_bool("detach")?;
    let begin = args.opt_i64("begin")?;
    let length = args.opt_i64("length")?;
    let format = args.opt_str("format")?;
    args.finish()?;
    if paging {
        return Err(QmpError::generic(
            "dump-guest-memory: paging is not supported (raw RAM dumps only)",
        ));
    }
    if let Some(f) = format {
        return Err(QmpError::generic(format!(
            "dump-guest-memory: format '{f}' is not supported (omit 'format' for a raw RAM dump)"
        )));
    }
    let (begin, end) = match (begin, length) {
        (None, None) => (0, u64::MAX),
        (Some(_), None) => return Err(QmpError::missing("length")),
        (None, Some(_)) => return Err(QmpError::missing("begin")),
        (Some(b), Some(l)) => {
            let b = u64::try_from(b).map_err(|_| QmpError::invalid_parameter("begin"))?;
            let l = u64::try_from(l).map_err(|_| QmpError::invalid_parameter("length"))?;
            (
                b,
                b.checked_add(l)
                    .ok_or_else(|| QmpError::invalid_parameter("length"))?,
            )
        }
    };
    let name = protocol
        .strip_prefix("fd:")
        .ok_or_else(|| QmpError::invalid_parameter("protocol"))?;
    let out = take_named(ctx, name)?;
    let m = ctx.machine()?.clone();
    let pieces = plan(&m.memory_map(), begin, end);
    let was_running = m.status().running;
    if was_running {
        m.pause();
    }
    let result = copy(m.as_ref(), begin, &pieces, &out);
    if was_running {
        m.resume();
    }
    drop(out);
    let total =
        result.map_err(|e| QmpError::generic(format!("dump: failed to save memory: {e}")))?;
    ctx.hub.emit(
        "DUMP_COMPLETED",
        Some(json!({"result": {"total": total, "status": "completed", "completed": total}})),
    );
    Ok(empty())
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn plan_clips_regions_to_the_range() {
        let map = [(0, 0x1000), (0x10_0000, 0x2000)];
        assert_eq!(
            plan(&map, 0, u64::MAX),
            vec![(0, 0x1000), (0x10_0000, 0x2000)]
        );
        assert_eq!(
            plan(&map, 0x800, 0x10_0800),
            vec![(0x800, 0x800), (0x10_0000, 0x800)]
        );
        assert_eq!(plan(&map, 0x2000, 0x3000), vec![]);
    }
}
