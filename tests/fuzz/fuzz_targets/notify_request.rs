//! What turns a seccomp notification into a decision
//! (`broker/src/notify/{call,path}.rs`): syscall decoding, `open_how` and
//! resolve-word bounds, flag translation, joining a relative path to its
//! base and normalising it, the `/proc/<own pid>` alias — then the real
//! policy decision on the result.
//!
//! Input format (`Reader`: little-endian, zeros past the end): `u8 nr`
//! (index into the notified syscalls, or a raw number past them), six
//! `u64` args, `u8 base_len` + base bytes (`0xff` length: no base), `u16
//! path_len % 4200` + path bytes, `u8 scope` (odd: `RESOLVE_IN_ROOT`),
//! `u16 how_len % 200` + `open_how` bytes, `u64 resolve`, `u64 flags`,
//! `u32 tgid`.
//!
//! Oracles:
//! - nothing panics; a notified syscall always decodes;
//! - a made-absolute path is absolute, at most 4095 bytes, has no empty,
//!   `.` or `..` component, no trailing `/` (but `/` itself), no NUL —
//!   exactly what the policy's own path check accepts (`decide` never
//!   refuses it for its shape);
//! - a relative path that did not climb above its base (or any path under
//!   `RESOLVE_IN_ROOT`) stays under the normalised base;
//! - the `/proc/self` alias is idempotent and leaves no `/proc/<tgid>/`;
//! - translated open flags never carry `O_PATH`; from `O_PATH` they are
//!   read-only; `open_how` shorter than 24 bytes is `EINVAL`; the resolve
//!   word is accepted only without unknown bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openhook_broker::notify::call::{self, Call};
use openhook_broker::notify::path::{self, Scope};
use openhook_broker::policy::{decide, parse, DenyReason};
use openhook_fuzz::reader::Reader;

const NRS: [i64; 16] = [
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_creat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_statfs,
    libc::SYS_bind,
    libc::SYS_connect,
];

const O_PATH: u32 = libc::O_PATH.unsigned_abs();
const O_ACCMODE: u32 = libc::O_ACCMODE.unsigned_abs();

fn well_formed(p: &[u8]) -> bool {
    if p == b"/" {
        return true;
    }
    p.first() == Some(&b'/')
        && !p.ends_with(b"/")
        && !p.contains(&0)
        && p.len() <= 4095
        && p[1..]
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

fn normalised(base: &[u8]) -> Vec<u8> {
    path::absolute(None, base, Scope::Normal)
        .map(|a| a.path)
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let pick = r.u8();
    let nr = NRS
        .get(usize::from(pick))
        .copied()
        .unwrap_or(i64::from(pick) * 3);
    let mut args = [0u64; 6];
    for a in &mut args {
        *a = r.u64();
    }
    let decoded = call::classify(nr, args);
    assert_eq!(decoded.is_some(), NRS.contains(&nr), "nr {nr}");
    if let Some(Call::Open { flags, .. }) = decoded {
        if nr != libc::SYS_openat2 {
            assert!(flags <= u64::from(u32::MAX));
        }
    }

    let base_len = r.u8();
    let base = (base_len != 0xff).then(|| r.bytes(usize::from(base_len)).to_vec());
    let path_len = usize::from(r.u16() % 4200);
    let raw = r.bytes(path_len).to_vec();
    let scope = if r.u8() & 1 == 1 {
        Scope::InRoot
    } else {
        Scope::Normal
    };
    let how_len = usize::from(r.u16() % 200);
    let how = r.bytes(how_len).to_vec();
    let resolve_word = r.u64();
    let flags = r.u64();
    let tgid = i32::try_from(r.u32() % 100_000).unwrap_or(1);

    match call::open_how(&how) {
        Ok(_) => assert!(how.len() >= call::OPEN_HOW_SIZE),
        Err(_) => {}
    }
    if how.len() < call::OPEN_HOW_SIZE {
        assert!(call::open_how(&how).is_err());
    }
    if let Ok(res) = call::resolve(resolve_word) {
        assert_eq!(resolve_word & !0x3f, 0, "unknown resolve bits accepted");
        assert!(!(res.beneath && res.in_root));
    }

    let Ok(abs) = path::absolute(base.as_deref(), &raw, scope) else {
        return;
    };
    assert!(well_formed(&abs.path), "{:?} -> {:?}", raw, abs.path);
    let relative = raw.first() != Some(&b'/') || scope == Scope::InRoot;
    if relative && (!abs.escapes_base || scope == Scope::InRoot) {
        let b = normalised(base.as_deref().unwrap_or(b"/"));
        let under = b == b"/"
            || abs.path == b
            || (abs.path.starts_with(&b) && abs.path.get(b.len()) == Some(&b'/'));
        assert!(under, "{:?} + {:?} -> {:?} left the base", base, raw, abs.path);
    }
    let aliased = path::proc_self_alias(abs.path.clone(), tgid);
    assert_eq!(path::proc_self_alias(aliased.clone(), tgid), aliased);
    let own = format!("/proc/{tgid}/");
    assert!(!aliased.starts_with(own.as_bytes()));
    assert!(well_formed(&aliased));

    if let Ok(f) = call::open_flags(flags, abs.dir_only) {
        assert_eq!(f & O_PATH, 0, "O_PATH survived");
        if flags & u64::from(O_PATH) != 0 {
            assert_eq!(f & O_ACCMODE, 0, "O_PATH became a write open");
        }
        let policy = parse(
            "version = 1\n[[allow]]\npath = \"/\"\naccess = \"rw\"\ncreate = true\n",
            "fuzz",
        )
        .expect("policy parses");
        if let Err(d) = decide(&policy, &aliased, f, 0) {
            assert!(
                !matches!(
                    d.reason,
                    DenyReason::NotAbsolute
                        | DenyReason::DotComponent
                        | DenyReason::EmptyComponent
                        | DenyReason::TrailingSlash
                        | DenyReason::EmptyPath
                        | DenyReason::EmbeddedNul
                        | DenyReason::NameTooLong
                ),
                "{:?} refused for its shape: {:?}",
                aliased,
                d.reason
            );
        }
    }
});
