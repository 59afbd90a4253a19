//! fd sets (docs/qmp.md): the rules on metadata only (pure core).
//!
//! The core knows each fd by its number ([`FdNum`], the number QMP reports
//! in `add-fd` and `query-fdsets`) and the status flags it had; the shell
//! (`fds::open`) owns the fds and does the dup/F_SETFL/truncate work.
//!
//! - `add`: without an id the lowest free id from 0; an existing id gains
//!   the fd; a negative id is an error.
//! - `remove`: one fd or the whole set; the shell closes what it returns.
//! - `query`: sets in descending id order, fds oldest first, `opaque`
//!   omitted when absent, `"fds": []` for a set kept alive by dups only.
//! - `choose` for `/dev/fdset/N` with flags F: newest fd first whose
//!   `flags & (O_ACCMODE|O_DIRECT)` equals F's; no match → EACCES, no
//!   such set → ENOENT; a malformed N → EINVAL ([`parse_fdset_path`]).
//! - Dups handed out are tracked; a set is freed when it has neither fds
//!   nor live dups. fds leave a set only by `remove`.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

/// The bits that must agree between a request and a set member.
pub const MATCH_MASK: i32 = libc::O_ACCMODE | libc::O_DIRECT;

/// The path prefix that names an fd set.
pub const FDSET_PREFIX: &str = "/dev/fdset/";

/// QMP text for a negative `fdset-id`.
pub const NEGATIVE_FDSET_ID: &str = "Parameter 'fdset-id' expects a non-negative value";

/// An fd number of this process, as reported over QMP. A label: the core
/// never performs I/O with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FdNum(pub i32);

/// `add-fd`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AddFdInfo {
    #[serde(rename = "fdset-id")]
    pub fdset_id: i64,
    pub fd: FdNum,
}

/// One entry of `query-fdsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FdSetInfo {
    #[serde(rename = "fdset-id")]
    pub fdset_id: i64,
    pub fds: Vec<FdInfo>,
}

/// One fd of a set in `query-fdsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FdInfo {
    pub fd: FdNum,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

/// Errors of `add-fd` / `remove-fd`; [`fmt::Display`] is QEMU's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdSetError {
    NegativeId,
    /// `remove-fd` with an fd that set does not hold (or no such set).
    FdNotFound {
        set: i64,
        fd: i64,
    },
    /// `remove-fd` without an fd on a set that does not exist.
    SetNotFound {
        set: i64,
    },
    /// The shell tried to register an fd number the table already holds
    /// (an internal invariant, never caused by a peer).
    AlreadyTracked(FdNum),
}

impl fmt::Display for FdSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdSetError::NegativeId => f.write_str(NEGATIVE_FDSET_ID),
            FdSetError::FdNotFound { set, fd } => {
                write!(
                    f,
                    "File descriptor named 'fdset-id:{set}, fd:{fd}' not found"
                )
            }
            FdSetError::SetNotFound { set } => {
                write!(f, "File descriptor named 'fdset-id:{set}' not found")
            }
            FdSetError::AlreadyTracked(FdNum(n)) => write!(f, "fd {n} is already tracked"),
        }
    }
}

impl std::error::Error for FdSetError {}

/// Why `/dev/fdset/N` could not be opened; maps to an errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdSetOpenError {
    /// N is not a non-negative decimal number.
    BadNumber,
    /// No set N.
    NoSuchSet,
    /// Set N has no fd with the requested access mode / O_DIRECT.
    NoMatch,
}

impl FdSetOpenError {
    pub fn errno(self) -> i32 {
        match self {
            FdSetOpenError::BadNumber => libc::EINVAL,
            FdSetOpenError::NoSuchSet => libc::ENOENT,
            FdSetOpenError::NoMatch => libc::EACCES,
        }
    }
}

/// `None` when `path` is not under `/dev/fdset/`; else the set id or
/// [`FdSetOpenError::BadNumber`].
pub fn parse_fdset_path(path: &[u8]) -> Option<Result<i64, FdSetOpenError>> {
    let rest = path.strip_prefix(FDSET_PREFIX.as_bytes())?;
    let ok = !rest.is_empty() && rest.iter().all(u8::is_ascii_digit);
    Some(
        std::str::from_utf8(rest)
            .ok()
            .filter(|_| ok)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(FdSetOpenError::BadNumber),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    fd: FdNum,
    flags: i32,
    opaque: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FdSet {
    /// Oldest first.
    fds: Vec<Member>,
    dups: BTreeSet<FdNum>,
}

/// All fd sets of the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdSets {
    sets: BTreeMap<i64, FdSet>,
}

impl FdSets {
    pub fn new() -> Self {
        Self::default()
    }

    fn tracks(&self, fd: FdNum) -> bool {
        self.sets
            .values()
            .any(|s| s.dups.contains(&fd) || s.fds.iter().any(|m| m.fd == fd))
    }

    /// `add-fd`: records `fd` (with its current status `flags`) in set `id`,
    /// or in the lowest free id when `id` is `None`.
    pub fn add(
        &mut self,
        id: Option<i64>,
        fd: FdNum,
        flags: i32,
        opaque: Option<String>,
    ) -> Result<AddFdInfo, FdSetError> {
        let id = match id {
            Some(i) if i < 0 => return Err(FdSetError::NegativeId),
            Some(i) => i,
            None => self.lowest_free_id(),
        };
        if self.tracks(fd) {
            return Err(FdSetError::AlreadyTracked(fd));
        }
        self.sets
            .entry(id)
            .or_default()
            .fds
            .push(Member { fd, flags, opaque });
        Ok(AddFdInfo { fdset_id: id, fd })
    }

    fn lowest_free_id(&self) -> i64 {
        let mut want = 0i64;
        for id in self.sets.keys() {
            if *id != want {
                break;
            }
            want += 1;
        }
        want
    }

    /// `remove-fd`: removes one fd or every fd of the set. Returns the fds
    /// the caller must close now.
    pub fn remove(&mut self, id: i64, fd: Option<i64>) -> Result<Vec<FdNum>, FdSetError> {
        let not_found = match fd {
            Some(fd) => FdSetError::FdNotFound { set: id, fd },
            None => FdSetError::SetNotFound { set: id },
        };
        let set = self.sets.get_mut(&id).ok_or(not_found)?;
        let removed = match fd {
            Some(n) => {
                let pos = set
                    .fds
                    .iter()
                    .position(|m| i64::from(m.fd.0) == n)
                    .ok_or(not_found)?;
                vec![set.fds.remove(pos).fd]
            }
            None => set.fds.drain(..).map(|m| m.fd).collect(),
        };
        self.free_if_unused(id);
        Ok(removed)
    }

    fn free_if_unused(&mut self, id: i64) {
        if self
            .sets
            .get(&id)
            .is_some_and(|s| s.fds.is_empty() && s.dups.is_empty())
        {
            self.sets.remove(&id);
        }
    }

    /// `query-fdsets`.
    pub fn query(&self) -> Vec<FdSetInfo> {
        self.sets
            .iter()
            .rev()
            .map(|(id, set)| FdSetInfo {
                fdset_id: *id,
                fds: set
                    .fds
                    .iter()
                    .map(|m| FdInfo {
                        fd: m.fd,
                        opaque: m.opaque.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The set's fds, oldest first (for the shell to refresh flags).
    pub fn members(&self, id: i64) -> Vec<FdNum> {
        self.sets
            .get(&id)
            .map(|s| s.fds.iter().map(|m| m.fd).collect())
            .unwrap_or_default()
    }

    /// Records `fd`'s current status flags (they change when a dup of the
    /// same open file description gets F_SETFL).
    pub fn set_flags(&mut self, fd: FdNum, flags: i32) {
        for set in self.sets.values_mut() {
            for m in set.fds.iter_mut().filter(|m| m.fd == fd) {
                m.flags = flags;
            }
        }
    }

    /// Which fd of set `id` serves an open with `flags`.
    pub fn choose(&self, id: i64, flags: i32) -> Result<FdNum, FdSetOpenError> {
        let set = self.sets.get(&id).ok_or(FdSetOpenError::NoSuchSet)?;
        set.fds
            .iter()
            .rev()
            .find(|m| m.flags & MATCH_MASK == flags & MATCH_MASK)
            .map(|m| m.fd)
            .ok_or(FdSetOpenError::NoMatch)
    }

    /// Tracks a dup handed out from set `id`.
    pub fn add_dup(&mut self, id: i64, dup: FdNum) -> Result<(), FdSetOpenError> {
        if self.tracks(dup) {
            return Err(FdSetOpenError::NoMatch);
        }
        let set = self.sets.get_mut(&id).ok_or(FdSetOpenError::NoSuchSet)?;
        set.dups.insert(dup);
        Ok(())
    }

    /// Forgets a dup that is being closed; frees its set when that was the
    /// last thing keeping it. Returns the set id it belonged to.
    pub fn remove_dup(&mut self, dup: FdNum) -> Option<i64> {
        let id = self
            .sets
            .iter_mut()
            .find_map(|(id, s)| s.dups.remove(&dup).then_some(*id))?;
        self.free_if_unused(id);
        Some(id)
    }

    /// Live dups of set `id` (for tests and diagnostics).
    pub fn dup_count(&self, id: i64) -> usize {
        self.sets.get(&id).map_or(0, |s| s.dups.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{O_DIRECT, O_RDONLY, O_RDWR, O_WRONLY};

    fn q(sets: &FdSets) -> String {
        serde_json::to_string(&sets.query()).unwrap()
    }

    /// iotest 045's layout: sets 2, 1, 0 (added in that order), opaque
    /// strings on some fds.
    fn iotest_045_sets() -> FdSets {
        let mut s = FdSets::new();
        s.add(Some(1), FdNum(10), O_RDWR, Some("image0:r".into()))
            .unwrap();
        s.add(Some(2), FdNum(11), O_RDONLY, Some("image1:w".into()))
            .unwrap();
        s.add(Some(2), FdNum(12), O_RDWR, Some("image2:r".into()))
            .unwrap();
        s.add(Some(0), FdNum(13), O_RDWR, Some("image3:r".into()))
            .unwrap();
        s.add(Some(1), FdNum(14), O_RDONLY, None).unwrap();
        s
    }

    #[test]
    fn iotest_045_query_order() {
        let s = iotest_045_sets();
        assert_eq!(
            q(&s),
            r#"[{"fdset-id":2,"fds":[{"fd":11,"opaque":"image1:w"},{"fd":12,"opaque":"image2:r"}]},{"fdset-id":1,"fds":[{"fd":10,"opaque":"image0:r"},{"fd":14}]},{"fdset-id":0,"fds":[{"fd":13,"opaque":"image3:r"}]}]"#
        );
    }

    #[test]
    fn iotest_045_remove_whole_set_and_one_fd() {
        let mut s = iotest_045_sets();
        assert_eq!(s.remove(2, None), Ok(vec![FdNum(11), FdNum(12)]));
        assert!(!q(&s).contains("\"fdset-id\":2"));
        assert_eq!(s.remove(1, Some(10)), Ok(vec![FdNum(10)]));
        assert_eq!(
            q(&s),
            r#"[{"fdset-id":1,"fds":[{"fd":14}]},{"fdset-id":0,"fds":[{"fd":13,"opaque":"image3:r"}]}]"#
        );
    }

    #[test]
    fn iotest_045_invalid_set_and_fd() {
        let mut s = iotest_045_sets();
        let e = s.remove(3, None).unwrap_err();
        assert_eq!(e, FdSetError::SetNotFound { set: 3 });
        assert_eq!(
            e.to_string(),
            "File descriptor named 'fdset-id:3' not found"
        );
        let e = s.remove(3, Some(10)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "File descriptor named 'fdset-id:3, fd:10' not found"
        );
        let e = s.remove(1, Some(11)).unwrap_err();
        assert_eq!(e, FdSetError::FdNotFound { set: 1, fd: 11 });
        assert_eq!(
            e.to_string(),
            "File descriptor named 'fdset-id:1, fd:11' not found"
        );
        let e = s.remove(1, Some(-5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "File descriptor named 'fdset-id:1, fd:-5' not found"
        );
        // Nothing changed.
        assert_eq!(s, iotest_045_sets());
    }

    #[test]
    fn iotest_045_drive_picks_matching_access_mode() {
        let s = iotest_045_sets();
        // -drive file=/dev/fdset/1 read-write picks the O_RDWR fd, read-only the O_RDONLY one.
        assert_eq!(s.choose(1, O_RDWR), Ok(FdNum(10)));
        assert_eq!(s.choose(1, O_RDONLY), Ok(FdNum(14)));
        assert_eq!(s.choose(1, O_WRONLY), Err(FdSetOpenError::NoMatch));
        assert_eq!(s.choose(7, O_RDWR), Err(FdSetOpenError::NoSuchSet));
        assert_eq!(FdSetOpenError::NoMatch.errno(), libc::EACCES);
        assert_eq!(FdSetOpenError::NoSuchSet.errno(), libc::ENOENT);
        assert_eq!(FdSetOpenError::BadNumber.errno(), libc::EINVAL);
    }

    #[test]
    fn add_ids() {
        let mut s = FdSets::new();
        assert_eq!(s.add(None, FdNum(3), O_RDWR, None).unwrap().fdset_id, 0);
        assert_eq!(s.add(None, FdNum(4), O_RDWR, None).unwrap().fdset_id, 1);
        assert_eq!(s.add(Some(5), FdNum(5), O_RDWR, None).unwrap().fdset_id, 5);
        assert_eq!(s.add(None, FdNum(6), O_RDWR, None).unwrap().fdset_id, 2);
        // An existing id gains the fd.
        assert_eq!(
            s.add(Some(0), FdNum(7), O_RDONLY, None),
            Ok(AddFdInfo {
                fdset_id: 0,
                fd: FdNum(7)
            })
        );
        assert_eq!(s.members(0), vec![FdNum(3), FdNum(7)]);
        s.remove(1, None).unwrap();
        assert_eq!(s.add(None, FdNum(8), O_RDWR, None).unwrap().fdset_id, 1);
        let e = s.add(Some(-1), FdNum(9), O_RDWR, None).unwrap_err();
        assert_eq!(e, FdSetError::NegativeId);
        assert_eq!(
            e.to_string(),
            "Parameter 'fdset-id' expects a non-negative value"
        );
        assert_eq!(
            s.add(Some(3), FdNum(8), O_RDWR, None),
            Err(FdSetError::AlreadyTracked(FdNum(8)))
        );
        assert_eq!(
            serde_json::to_string(&AddFdInfo {
                fdset_id: 1,
                fd: FdNum(8)
            })
            .unwrap(),
            r#"{"fdset-id":1,"fd":8}"#
        );
    }

    #[test]
    fn newest_first_and_o_direct() {
        let mut s = FdSets::new();
        s.add(Some(1), FdNum(3), O_RDWR, None).unwrap();
        s.add(Some(1), FdNum(4), O_RDWR, None).unwrap();
        s.add(Some(1), FdNum(5), O_RDWR | O_DIRECT, None).unwrap();
        assert_eq!(s.choose(1, O_RDWR), Ok(FdNum(4)), "newest matching first");
        assert_eq!(s.choose(1, O_RDWR | O_DIRECT), Ok(FdNum(5)));
        assert_eq!(
            s.choose(1, O_RDONLY | O_DIRECT),
            Err(FdSetOpenError::NoMatch)
        );
        // Other flags on either side do not matter.
        assert_eq!(
            s.choose(1, O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_SYNC),
            Ok(FdNum(4))
        );
        s.set_flags(FdNum(4), O_RDWR | O_DIRECT | libc::O_NONBLOCK);
        assert_eq!(s.choose(1, O_RDWR), Ok(FdNum(3)));
    }

    #[test]
    fn dups_keep_a_set_alive() {
        let mut s = FdSets::new();
        s.add(Some(0), FdNum(3), O_RDWR, None).unwrap();
        s.add_dup(0, FdNum(20)).unwrap();
        assert_eq!(s.remove(0, None), Ok(vec![FdNum(3)]));
        assert_eq!(q(&s), r#"[{"fdset-id":0,"fds":[]}]"#);
        assert_eq!(s.choose(0, O_RDWR), Err(FdSetOpenError::NoMatch));
        // A removed-but-alive set can still be named by remove-fd, which does nothing.
        assert_eq!(s.remove(0, None), Ok(vec![]));
        assert_eq!(s.dup_count(0), 1);
        assert_eq!(s.remove_dup(FdNum(20)), Some(0));
        assert_eq!(q(&s), "[]");
        assert_eq!(s.remove_dup(FdNum(20)), None);
        assert_eq!(s.add_dup(0, FdNum(21)), Err(FdSetOpenError::NoSuchSet));
        // A dup closing while fds remain leaves the set in place.
        s.add(Some(4), FdNum(3), O_RDWR, None).unwrap();
        s.add_dup(4, FdNum(22)).unwrap();
        assert_eq!(s.remove_dup(FdNum(22)), Some(4));
        assert_eq!(s.members(4), vec![FdNum(3)]);
    }

    #[test]
    fn fdset_paths() {
        assert_eq!(parse_fdset_path(b"/dev/fdset/0"), Some(Ok(0)));
        assert_eq!(parse_fdset_path(b"/dev/fdset/17"), Some(Ok(17)));
        for bad in [
            &b"/dev/fdset/"[..],
            b"/dev/fdset/-1",
            b"/dev/fdset/+1",
            b"/dev/fdset/1x",
            b"/dev/fdset/ 1",
            b"/dev/fdset/1/",
            b"/dev/fdset/99999999999999999999",
            b"/dev/fdset/\xff",
        ] {
            assert_eq!(
                parse_fdset_path(bad),
                Some(Err(FdSetOpenError::BadNumber)),
                "{bad:?}"
            );
        }
        assert_eq!(parse_fdset_path(b"/dev/fdset"), None);
        assert_eq!(parse_fdset_path(b"/srv/disk.img"), None);
        assert_eq!(parse_fdset_path(b"dev/fdset/1"), None);
    }

    // --- property: choice agrees with a naive model -------------------

    #[derive(Debug, Clone)]
    enum Op {
        Add(Option<i64>, i32, bool),
        Remove(i64, Option<u8>),
        Open(i64, i32, bool),
        CloseDup(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let acc = prop_oneof![Just(O_RDONLY), Just(O_WRONLY), Just(O_RDWR)];
        prop_oneof![
            (proptest::option::of(0i64..4), acc.clone(), any::<bool>())
                .prop_map(|(i, a, d)| Op::Add(i, a, d)),
            (0i64..4, proptest::option::of(0u8..12)).prop_map(|(i, f)| Op::Remove(i, f)),
            (0i64..4, acc, any::<bool>()).prop_map(|(i, a, d)| Op::Open(i, a, d)),
            (0u8..12).prop_map(Op::CloseDup),
        ]
    }

    /// The naive model: a flat list of (set, fd, flags, seq) and dups.
    #[derive(Default)]
    struct Naive {
        fds: Vec<(i64, i32, i32, u64)>,
        dups: Vec<(i64, i32)>,
        seq: u64,
    }

    impl Naive {
        fn exists(&self, id: i64) -> bool {
            self.fds.iter().any(|f| f.0 == id) || self.dups.iter().any(|d| d.0 == id)
        }
        fn choose(&self, id: i64, flags: i32) -> Result<i32, FdSetOpenError> {
            if !self.exists(id) {
                return Err(FdSetOpenError::NoSuchSet);
            }
            self.fds
                .iter()
                .filter(|f| f.0 == id && f.2 & MATCH_MASK == flags & MATCH_MASK)
                .max_by_key(|f| f.3)
                .map(|f| f.1)
                .ok_or(FdSetOpenError::NoMatch)
        }
    }

    proptest::proptest! {
        #[test]
        fn choice_agrees_with_naive_model(ops in proptest::collection::vec(op(), 1..60)) {
            let mut real = FdSets::new();
            let mut naive = Naive::default();
            let mut next_fd = 100i32;
            for op in ops {
                match op {
                    Op::Add(id, acc, direct) => {
                        let flags = acc | if direct { O_DIRECT } else { 0 };
                        next_fd += 1;
                        let got = real.add(id, FdNum(next_fd), flags, None).unwrap();
                        let want = id.unwrap_or_else(|| (0..).find(|i| !naive.exists(*i)).unwrap());
                        proptest::prop_assert_eq!(got.fdset_id, want);
                        naive.seq += 1;
                        naive.fds.push((want, next_fd, flags, naive.seq));
                    }
                    Op::Remove(id, fd) => {
                        // Pick an fd number near the ones handed out.
                        let fd = fd.map(|k| i64::from(next_fd) - i64::from(k));
                        let got = real.remove(id, fd);
                        let exists = naive.exists(id);
                        match fd {
                            Some(n) => {
                                let pos = naive.fds.iter().position(|f| f.0 == id && i64::from(f.1) == n);
                                match pos {
                                    Some(p) => {
                                        let f = naive.fds.remove(p);
                                        proptest::prop_assert_eq!(got, Ok(vec![FdNum(f.1)]));
                                    }
                                    None => proptest::prop_assert_eq!(got, Err(FdSetError::FdNotFound { set: id, fd: n })),
                                }
                            }
                            None if exists => {
                                let gone: Vec<FdNum> = naive.fds.iter().filter(|f| f.0 == id).map(|f| FdNum(f.1)).collect();
                                naive.fds.retain(|f| f.0 != id);
                                proptest::prop_assert_eq!(got, Ok(gone));
                            }
                            None => proptest::prop_assert_eq!(got, Err(FdSetError::SetNotFound { set: id })),
                        }
                    }
                    Op::Open(id, acc, direct) => {
                        let flags = acc | if direct { O_DIRECT } else { 0 };
                        let got = real.choose(id, flags);
                        let want = naive.choose(id, flags);
                        proptest::prop_assert_eq!(got.map(|f| f.0), want);
                        if got.is_ok() {
                            next_fd += 1;
                            real.add_dup(id, FdNum(next_fd)).unwrap();
                            naive.dups.push((id, next_fd));
                        }
                    }
                    Op::CloseDup(k) => {
                        if naive.dups.is_empty() { continue; }
                        let (id, fd) = naive.dups.remove(usize::from(k) % naive.dups.len());
                        proptest::prop_assert_eq!(real.remove_dup(FdNum(fd)), Some(id));
                    }
                }
                // Query agrees: ids descending, fds oldest first.
                let mut ids: Vec<i64> = naive.fds.iter().map(|f| f.0).chain(naive.dups.iter().map(|d| d.0)).collect();
                ids.sort_unstable();
                ids.dedup();
                ids.reverse();
                let want: Vec<FdSetInfo> = ids.iter().map(|id| FdSetInfo {
                    fdset_id: *id,
                    fds: naive.fds.iter().filter(|f| f.0 == *id).map(|f| FdInfo { fd: FdNum(f.1), opaque: None }).collect(),
                }).collect();
                proptest::prop_assert_eq!(real.query(), want);
            }
        }
    }
}
