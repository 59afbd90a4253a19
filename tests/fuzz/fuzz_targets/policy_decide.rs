//! The policy decision (`broker/src/policy/decide.rs`) against a naive model.
//!
//! The input is a rule set over a small path alphabet plus a batch of
//! requests (well- and ill-formed names, any flag word, any mode). The
//! rules are written out as a policy file and parsed by the real parser.
//!
//! Input format (`Reader`: little-endian, zeros past the end):
//! `u16 deny_errno`, `u8 n_rules` (mod 13), then per rule `u8 bits`
//! (allow 1, subtree 2, create 4, follow 8, access `(bits >> 4) % 3`:
//! r/w/rw), `u8 n` (mod 5) and `n` name indices (`NAMES`), `u16 mode`,
//! `u8 types` (bit i = `FileType::ALL[i]`); then requests until the end:
//! `u8 base` (`0xff`: none, else the path of rule `base % n_rules`),
//! `u8 n` (mod 17) tokens (`u8 tag % 7`: slash, name (`u8` index), `.`,
//! `..`, NUL, a raw `u8`, `u16 % 4200` × `a`), flags (`u8 tag % 3`: listed
//! — `u8 accmode`, `u16 pick` of `LISTED`; one extra bit — the same plus
//! `u8 bit`; raw — `u32`), `u32 mode`.
//!
//! Oracles:
//! - the parser accepts the rules exactly when the model says they are
//!   valid (duplicates and deny-under-follow_symlinks are refused);
//! - every answer of `decide` equals the model's (`policy_model::decide`):
//!   deny wins, the longest allow wins, exact beats subtree, no match gives
//!   the deny errno, then access, `O_TRUNC`, `O_CREAT` checks in order;
//!   for an allowed request the root, relative path, flags and mode too;
//! - whatever the rules, nothing allowed carries `O_PATH`, `O_TMPFILE`,
//!   access mode 3 or an unlisted bit, lies under a deny rule, or has a
//!   relative path that could climb out of its root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openhook_broker::policy::{parse, Access, FileType, FileTypes};
use openhook_fuzz::policy_model::{self as model, ModelRule, LISTED};
use openhook_fuzz::reader::Reader;

const NAMES: [&str; 8] = ["a", "b", "srv", "vm1", "disk.img", "..x", "a b", "\u{e9}"];

fn name(r: &mut Reader<'_>) -> &'static str {
    NAMES[usize::from(r.u8()) % NAMES.len()]
}

fn rule(r: &mut Reader<'_>) -> ModelRule {
    let bits = r.u8();
    let allow = bits & 1 != 0;
    let n = r.u8() % 5;
    let comps: Vec<&str> = (0..n).map(|_| name(r)).collect();
    let mode = u32::from(r.u16()) & 0o777;
    let type_bits = r.u8();
    let path = format!("/{}", comps.join("/"));
    let subtree = bits & 2 != 0 || path == "/";
    let access = match (bits >> 4) % 3 {
        0 => Access::Read,
        1 => Access::Write,
        _ => Access::ReadWrite,
    };
    let mut types: FileTypes = FileType::ALL
        .iter()
        .enumerate()
        .filter(|(i, _)| type_bits & (1 << i) != 0)
        .map(|(_, t)| *t)
        .collect();
    if types.is_empty() {
        types = FileTypes::FILE_ONLY;
    }
    let create = allow && bits & 4 != 0 && access != Access::Read && types.contains(FileType::File);
    ModelRule {
        allow,
        path,
        subtree,
        access: if allow { access } else { Access::Read },
        create,
        mode: if create { mode } else { 0 },
        types: if allow { types } else { FileTypes::default() },
        follow: allow && bits & 8 != 0,
    }
}

fn flags(r: &mut Reader<'_>) -> u32 {
    let listed = |pick: u16| {
        LISTED
            .iter()
            .enumerate()
            .filter(|(i, _)| pick & (1 << i) != 0)
            .fold(0, |a, (_, f)| a | f)
    };
    match r.u8() % 3 {
        0 => u32::from(r.u8() % 4) | listed(r.u16()),
        1 => u32::from(r.u8() % 4) | listed(r.u16()) | (1u32 << (r.u8() % 32)),
        _ => r.u32(),
    }
}

fn request_path(rules: &[ModelRule], r: &mut Reader<'_>) -> Vec<u8> {
    let base = r.u8();
    let mut p = if base != 0xff && !rules.is_empty() {
        rules[usize::from(base) % rules.len()]
            .path
            .as_bytes()
            .to_vec()
    } else {
        Vec::new()
    };
    for _ in 0..r.u8() % 17 {
        match r.u8() % 7 {
            0 => p.push(b'/'),
            1 => p.extend_from_slice(name(r).as_bytes()),
            2 => p.push(b'.'),
            3 => p.extend_from_slice(b".."),
            4 => p.push(0),
            5 => p.push(r.u8()),
            _ => p.extend(std::iter::repeat_n(b'a', usize::from(r.u16()) % 4200)),
        }
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let errno = i32::from(r.u16() % 4095) + 1;
    let n = r.u8() % 13;
    let rules: Vec<ModelRule> = (0..n).map(|_| rule(&mut r)).collect();
    let text = format!(
        "version = 1\ndeny_errno = {errno}\n{}",
        model::rules_toml(&rules)
    );
    let valid = model::rules_valid(&rules);
    let policy = match parse(&text, "fuzz.toml") {
        Ok(p) => {
            assert!(valid, "parser accepted rules the model refuses:\n{text}");
            p
        }
        Err(e) => {
            assert!(!valid, "parser refused valid rules: {e}\n{text}");
            return;
        }
    };
    assert_eq!(
        model::from_policy(&policy),
        rules,
        "parsed rules differ:\n{text}"
    );

    let mut count = 0;
    while !r.is_empty() && count < 32 {
        let path = request_path(&rules, &mut r);
        let f = flags(&mut r);
        let mode = r.u32();
        model::check_decision(&policy, &rules, &path, f, mode);
        count += 1;
    }
    // Every rule's own path and a name below it.
    for rule in &rules {
        let below = format!("{}/x", if rule.path == "/" { "" } else { &rule.path });
        for flags in [
            0,
            model::O_RDWR | model::O_CREAT,
            model::O_WRONLY | model::O_TRUNC,
        ] {
            model::check_decision(&policy, &rules, rule.path.as_bytes(), flags, 0o666);
            model::check_decision(&policy, &rules, below.as_bytes(), flags, 0o666);
        }
    }
});
