//! The QemuOpts parser (`emulator/src/cli/qemu_opts.rs`) and the whole
//! command line (`cli/args.rs` → `cli/config.rs` → `cli/paths.rs` →
//! `cli/derived_policy.rs`).
//!
//! The input is one option text, or (when it holds NUL bytes) an argv
//! split at the NULs.
//!
//! Oracles:
//! - QemuOpts: offsets strictly increase and point at the pair as written;
//!   printing the pairs back (`,` doubled in values) and parsing again
//!   gives the same names and values; the last value of a name is what
//!   `get` and `OptsReader::take` return; `finish` names a leftover;
//! - argv: a command line the emulator accepts has at most 24 drives; its
//!   paths, made absolute, have no `.`/`..` component; the policy the
//!   emulator derives from it (for the re-exec as the broker, docs/decisions/direct-launch-reexec.md) is
//!   accepted by the broker's own parser, has only exact-file rules (never
//!   a directory tree), and grants each derived rule's access on its path — unless a path is over the 4095-byte (rule) or
//!   107-byte (socket) limits, which the broker must then name.
#![no_main]

use std::ffi::OsString;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use openhook_broker::policy;
use openhook_emulator::cli::qemu_opts::{parse, OptsError, QemuOpts};
use openhook_emulator::cli::{derived_policy, parse_command_line, paths};
use openhook_emulator::vm_config::{ChardevBackend, SerialConfig};

fn escape(v: &str) -> String {
    v.replace(',', ",,")
}

/// The pairs written back as option text.
fn print(o: &QemuOpts) -> String {
    let parts: Vec<String> = o
        .pairs
        .iter()
        .map(|p| {
            if p.implied && !p.value.is_empty() {
                escape(&p.value)
            } else {
                format!("{}={}", p.name, escape(&p.value))
            }
        })
        .collect();
    parts.join(",")
}

fn kv(o: &QemuOpts) -> Vec<(String, String)> {
    o.pairs
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect()
}

fn check_opts(text: &str, implied: Option<&str>) {
    let o = match parse(text, implied) {
        Ok(o) => o,
        Err(OptsError::EmptyName { offset }) => {
            assert!(offset <= text.len());
            return;
        }
        Err(e) => panic!("the lexer returned a lookup error: {e}"),
    };
    let mut last = None;
    for (i, p) in o.pairs.iter().enumerate() {
        assert!(last.is_none_or(|l| p.offset > l), "offsets not increasing");
        last = Some(p.offset);
        assert!(p.offset < text.len() || (p.implied && p.value.is_empty()));
        assert!(
            !p.name.is_empty() && !p.name.contains(['=', ',']),
            "name {:?}",
            p.name
        );
        assert_eq!(
            p.implied,
            i == 0 && implied.is_some() && p.name == implied.unwrap_or("") && p.implied
        );
        let at = &text[p.offset..];
        if p.short_form {
            assert!(p.value == "on" || p.value == "off");
            let spelled = if p.value == "off" {
                format!("no{}", p.name)
            } else {
                p.name.clone()
            };
            assert!(at.starts_with(&spelled), "{at:?} vs {spelled:?}");
        } else if !p.implied {
            assert!(at.starts_with(&format!("{}=", p.name)), "{at:?}");
        }
    }
    // Print and parse again.
    let printed = print(&o);
    let again =
        parse(&printed, implied).unwrap_or_else(|e| panic!("reprint {printed:?} refused: {e}"));
    assert_eq!(kv(&again), kv(&o), "reprint {printed:?}");
    // The last value wins, for get and for the reader.
    if let Some(p) = o.pairs.first() {
        let name = p.name.clone();
        let want = o
            .pairs
            .iter()
            .rev()
            .find(|q| q.name == name)
            .map(|q| q.value.clone());
        assert_eq!(o.get(&name).map(str::to_string), want);
        let mut r = o.clone().reader();
        assert_eq!(r.take(&name), want);
        match o.pairs.iter().find(|q| q.name != name) {
            Some(q) => assert_eq!(
                r.finish(),
                Err(OptsError::Unknown {
                    name: q.name.clone()
                })
            ),
            None => assert_eq!(r.finish(), Ok(())),
        }
    }
}

fn check_argv(words: Vec<&str>) {
    let argv: Vec<OsString> = words.iter().map(OsString::from).collect();
    let Ok(mut cfg) = parse_command_line(argv, &[]) else {
        return;
    };
    assert!(cfg.drives.len() <= 24, "{} drives", cfg.drives.len());
    if paths::absolutize(&mut cfg, Path::new("/work/vm")).is_err() {
        return;
    }
    let mut named: Vec<&Path> = Vec::new();
    named.extend(cfg.firmware.as_deref());
    if let Some(k) = &cfg.kernel {
        named.push(&k.kernel);
        named.extend(k.initrd.as_deref());
    }
    named.extend(cfg.drives.iter().map(|d| d.path.as_path()));
    if let SerialConfig::File(p) = &cfg.serial {
        named.push(p);
    }
    for c in &cfg.chardevs {
        if let ChardevBackend::File { path } = &c.backend {
            named.push(path);
        }
    }
    for p in &named {
        let b = p.as_os_str().as_encoded_bytes();
        if b.starts_with(b"/dev/fdset/") {
            continue;
        }
        assert!(b.starts_with(b"/"), "{p:?} not absolute");
        assert!(
            !b[1..]
                .split(|&c| c == b'/')
                .any(|c| c == b"." || c == b".."),
            "{p:?}"
        );
    }
    let Ok(derived) = derived_policy::derive(&cfg) else {
        return;
    };
    let parsed = match policy::parse(&derived.toml, "derived.toml") {
        Ok(p) => p,
        Err(e) => {
            let too_long = named.iter().any(|p| p.as_os_str().len() > 4095)
                || derived
                    .listens
                    .iter()
                    .any(|l| l.path.as_os_str().len() > 107);
            assert!(
                too_long,
                "the broker refuses the derived policy: {e}\n{}",
                derived.toml
            );
            assert!(e.message.contains("longer than"), "{e}");
            return;
        }
    };
    for r in &parsed.rules {
        // derived_policy.rs: "all exact files (no directory rules)".
        assert!(
            !r.subtree,
            "derived rule {} covers a whole tree\n{}",
            r.path, derived.toml
        );
        let flags = match r.access {
            policy::Access::Read => 0,
            policy::Access::Write => 1,
            policy::Access::ReadWrite => 2,
        };
        let got = policy::decide(&parsed, r.path.as_bytes(), flags, 0);
        assert!(
            got.is_ok(),
            "derived rule {} refuses its own path: {got:?}",
            r.path
        );
    }
    assert_eq!(parsed.listen.len(), derived.listens.len());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains('\0') {
        let words: Vec<&str> = text.split('\0').take(64).collect();
        for w in &words {
            check_opts(w, Some("implied"));
        }
        check_argv(words);
    } else {
        check_opts(text, None);
        check_opts(text, Some("implied"));
        check_argv(text.split_whitespace().take(64).collect());
    }
});
