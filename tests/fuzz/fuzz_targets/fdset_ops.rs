//! fd-set rules (`emulator/src/fds/fdset.rs`) as an operation stream
//! against a naive model written from docs/qmp.md (cf. Cloud Hypervisor's
//! serial target, input read as operations).
//!
//! Oracles, after every operation:
//! - each result (`add`, `remove`, `choose`, `add_dup`, `remove_dup`)
//!   equals the model's: lowest free id from 0, a negative id refused, an
//!   fd tracked twice refused, newest matching fd first on
//!   `(flags & (O_ACCMODE|O_DIRECT))`, ENOENT/EACCES/EINVAL cases;
//! - `query` equals the model's listing (ids descending, fds oldest first,
//!   opaque as given, a set kept alive by dups shows `fds: []`);
//! - a set exists exactly while it has fds or live dups;
//! - `parse_fdset_path` agrees with a naive reading of `/dev/fdset/N`.
//!
//! Input format (`Reader`): operations until the end, each `u8 tag % 8`:
//! 0 add (`u8 id`: 0xff none, 0xfe a raw `i64`, else `% 8`; `u8 fd`;
//! flags; `u8 has_opaque`, then a `u8`-length string), 1 remove (`id`,
//! `u8 has_fd`, `i64 fd`), 2 remove one (`id`, `u8 fd`), 3 open
//! `/dev/fdset/N` (`id`, flags, `u8 dup`), 4 close a dup (`u8 fd`),
//! 5 set flags (`u8 fd`, flags), 6 path (`u8`-length bytes), 7 path of a
//! number (`i64`). Flags: `u8 tag`, odd → raw `i32`, even → `u8 acc`,
//! `u8 direct`, `u16 other` status bits. fd numbers are `3 + fd % 32`
//! (dups: `% 48`).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use openhook_emulator::fds::fdset::{
    parse_fdset_path, AddFdInfo, FdInfo, FdNum, FdSetError, FdSetInfo, FdSetOpenError, FdSets,
};
use openhook_fuzz::reader::Reader;

const MASK: i32 = 0o3 | 0o40000; // O_ACCMODE | O_DIRECT (x86_64)

fn id(r: &mut Reader<'_>) -> Option<i64> {
    match r.u8() {
        0xff => None,
        0xfe => Some(r.i64()),
        n => Some(i64::from(n % 8)),
    }
}

fn flags(r: &mut Reader<'_>) -> i32 {
    if r.u8() & 1 == 1 {
        return r.u32() as i32;
    }
    let acc = i32::from(r.u8() % 4);
    let direct = if r.u8() & 1 == 1 { 0o40000 } else { 0 };
    acc | direct | ((i32::from(r.u16()) << 4) & !MASK)
}

fn fd(r: &mut Reader<'_>, m: u8) -> i32 {
    i32::from(r.u8() % m) + 3
}

#[derive(Default, Debug, Clone)]
struct ModelSet {
    fds: Vec<(i32, i32, Option<String>)>,
    dups: Vec<i32>,
}

#[derive(Default, Debug)]
struct Model {
    sets: BTreeMap<i64, ModelSet>,
}

impl Model {
    fn tracked(&self, fd: i32) -> bool {
        self.sets
            .values()
            .any(|s| s.dups.contains(&fd) || s.fds.iter().any(|m| m.0 == fd))
    }

    fn gc(&mut self, id: i64) {
        if self
            .sets
            .get(&id)
            .is_some_and(|s| s.fds.is_empty() && s.dups.is_empty())
        {
            self.sets.remove(&id);
        }
    }

    fn add(
        &mut self,
        id: Option<i64>,
        fd: i32,
        flags: i32,
        opaque: Option<String>,
    ) -> Result<AddFdInfo, FdSetError> {
        let id = match id {
            Some(i) if i < 0 => return Err(FdSetError::NegativeId),
            Some(i) => i,
            None => (0..)
                .find(|i| !self.sets.contains_key(i))
                .expect("a free id"),
        };
        if self.tracked(fd) {
            return Err(FdSetError::AlreadyTracked(FdNum(fd)));
        }
        self.sets
            .entry(id)
            .or_default()
            .fds
            .push((fd, flags, opaque));
        Ok(AddFdInfo {
            fdset_id: id,
            fd: FdNum(fd),
        })
    }

    fn remove(&mut self, id: i64, fd: Option<i64>) -> Result<Vec<FdNum>, FdSetError> {
        let err = match fd {
            Some(fd) => FdSetError::FdNotFound { set: id, fd },
            None => FdSetError::SetNotFound { set: id },
        };
        let set = self.sets.get_mut(&id).ok_or(err)?;
        let out = match fd {
            None => set.fds.drain(..).map(|m| FdNum(m.0)).collect(),
            Some(n) => {
                let i = set
                    .fds
                    .iter()
                    .position(|m| i64::from(m.0) == n)
                    .ok_or(err)?;
                vec![FdNum(set.fds.remove(i).0)]
            }
        };
        self.gc(id);
        Ok(out)
    }

    fn choose(&self, id: i64, flags: i32) -> Result<FdNum, FdSetOpenError> {
        let set = self.sets.get(&id).ok_or(FdSetOpenError::NoSuchSet)?;
        let mut newest_first = set.fds.clone();
        newest_first.reverse();
        newest_first
            .iter()
            .find(|m| m.1 & MASK == flags & MASK)
            .map(|m| FdNum(m.0))
            .ok_or(FdSetOpenError::NoMatch)
    }

    fn add_dup(&mut self, id: i64, dup: i32) -> Result<(), FdSetOpenError> {
        if self.tracked(dup) {
            return Err(FdSetOpenError::NoMatch);
        }
        self.sets
            .get_mut(&id)
            .ok_or(FdSetOpenError::NoSuchSet)?
            .dups
            .push(dup);
        Ok(())
    }

    fn remove_dup(&mut self, dup: i32) -> Option<i64> {
        let id = *self.sets.iter().find(|(_, s)| s.dups.contains(&dup))?.0;
        self.sets
            .get_mut(&id)
            .expect("set")
            .dups
            .retain(|d| *d != dup);
        self.gc(id);
        Some(id)
    }

    fn query(&self) -> Vec<FdSetInfo> {
        self.sets
            .iter()
            .rev()
            .map(|(id, s)| FdSetInfo {
                fdset_id: *id,
                fds: s
                    .fds
                    .iter()
                    .map(|m| FdInfo {
                        fd: FdNum(m.0),
                        opaque: m.2.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// `/dev/fdset/N`: N decimal digits only, fitting an i64.
fn naive_path(p: &[u8]) -> Option<Result<i64, FdSetOpenError>> {
    let prefix = b"/dev/fdset/";
    if p.len() < prefix.len() || &p[..prefix.len()] != prefix {
        return None;
    }
    let rest = &p[prefix.len()..];
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
        return Some(Err(FdSetOpenError::BadNumber));
    }
    let mut n: i64 = 0;
    for d in rest {
        match n
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
        {
            Some(v) => n = v,
            None => return Some(Err(FdSetOpenError::BadNumber)),
        }
    }
    Some(Ok(n))
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut real = FdSets::new();
    let mut model = Model::default();
    let mut steps = 0;
    while !r.is_empty() && steps < 256 {
        steps += 1;
        let op = r.u8() % 8;
        match op {
            0 => {
                let (id, fd, flags) = (id(&mut r), fd(&mut r, 32), flags(&mut r));
                let opaque = (r.u8() & 1 == 1)
                    .then(|| String::from_utf8_lossy(r.short_bytes()).into_owned());
                assert_eq!(
                    real.add(id, FdNum(fd), flags, opaque.clone()),
                    model.add(id, fd, flags, opaque.clone()),
                    "add {id:?} {fd} {flags:#o} {opaque:?}"
                );
            }
            1 | 2 => {
                let id = id(&mut r).unwrap_or(0);
                let fd = if op == 1 {
                    let has = r.u8() & 1 == 1;
                    let n = r.i64();
                    has.then_some(n)
                } else {
                    Some(i64::from(fd(&mut r, 32)))
                };
                assert_eq!(
                    real.remove(id, fd),
                    model.remove(id, fd),
                    "remove {id} {fd:?}"
                );
            }
            3 => {
                let (id, flags, dup) = (id(&mut r).unwrap_or(0), flags(&mut r), fd(&mut r, 48));
                let got = real.choose(id, flags);
                assert_eq!(got, model.choose(id, flags), "choose {id} {flags:#o}");
                if got.is_ok() {
                    assert_eq!(
                        real.add_dup(id, FdNum(dup)),
                        model.add_dup(id, dup),
                        "dup {dup}"
                    );
                }
            }
            4 => {
                let fd = fd(&mut r, 48);
                assert_eq!(
                    real.remove_dup(FdNum(fd)),
                    model.remove_dup(fd),
                    "close dup {fd}"
                );
            }
            5 => {
                let (fd, flags) = (fd(&mut r, 32), flags(&mut r));
                real.set_flags(FdNum(fd), flags);
                for s in model.sets.values_mut() {
                    for m in s.fds.iter_mut().filter(|m| m.0 == fd) {
                        m.1 = flags;
                    }
                }
            }
            6 => {
                let p = r.short_bytes();
                assert_eq!(parse_fdset_path(p), naive_path(p), "{p:?}");
                let mut full = b"/dev/fdset/".to_vec();
                full.extend_from_slice(p);
                assert_eq!(parse_fdset_path(&full), naive_path(&full), "{full:?}");
            }
            _ => {
                let n = r.i64();
                let p = format!("/dev/fdset/{n}");
                let want = if n >= 0 {
                    Some(Ok(n))
                } else {
                    Some(Err(FdSetOpenError::BadNumber))
                };
                assert_eq!(parse_fdset_path(p.as_bytes()), want, "{p}");
            }
        }
        // The whole state, after every operation.
        assert_eq!(real.query(), model.query(), "after op {op}");
        for id in 0..10 {
            let (m, d) = model.sets.get(&id).map_or((vec![], 0), |s| {
                (s.fds.iter().map(|m| FdNum(m.0)).collect(), s.dups.len())
            });
            assert_eq!(real.members(id), m);
            assert_eq!(real.dup_count(id), d);
        }
    }
});
