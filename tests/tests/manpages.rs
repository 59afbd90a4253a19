//! The generated man pages and shell completions (`openhook-manpages`):
//! each page renders with `man -l` without a warning; the options a page
//! lists are exactly the ones the binary's parser accepts (the emulator's
//! option table, openhook-qmp's and openhook-broker's clap definitions) and
//! the ones its `--help` prints; openhook-policy(5) documents every key the
//! policy parser accepts; the completions complete those options in bash
//! and fish and parse in zsh.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use openhook_emulator::cli::options::OPTIONS;
use openhook_tests::{bin, tool_or_skip};

/// The generated files, written out to a temp dir.
fn generated() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    openhook_manpages::install(dir.path()).expect("install");
    let root = dir.path().to_path_buf();
    (dir, root)
}

/// `man -l PAGE` as a user sees it (ASCII, wide enough that no option line
/// wraps); fails on any warning man or groff prints.
fn render(man: &Path, page: &Path) -> String {
    let out = Command::new(man)
        .args(["--warnings=w", "-l", "-P", "cat"])
        .arg(page)
        .env("LC_ALL", "C")
        .env("MANWIDTH", "250")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .output()
        .expect("run man");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l {}: {stderr}", page.display());
    assert!(
        stderr.trim().is_empty(),
        "man -l {}: {stderr}",
        page.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The body of section `title` (up to the next unindented heading).
fn section<'a>(page: &'a str, title: &str) -> Vec<&'a str> {
    page.lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

/// Option names on the tag lines of an OPTIONS section: `-m`, `--fd`,
/// `-machine` from `-machine, -M [type=]...` or `--fd <PATH>`.
fn tagged_options(lines: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in lines {
        // Tags sit at the section's indent (7); descriptions deeper.
        let Some(tag) = l.strip_prefix("       ").filter(|t| t.starts_with('-')) else {
            continue;
        };
        for part in tag.split(", ") {
            let name: String = part.chars().take_while(|c| !c.is_whitespace()).collect();
            if name.starts_with('-') {
                names.insert(name);
            }
        }
    }
    names
}

/// The emulator's table, as QEMU spells options: `-machine`, `-M`.
fn emulator_table() -> BTreeSet<String> {
    OPTIONS
        .iter()
        .flat_map(|s| s.names.iter().map(|n| format!("-{n}")))
        .collect()
}

/// The short and long options of a clap command, `--help`/`--version`
/// included.
fn clap_options(mut cmd: clap::Command) -> BTreeSet<String> {
    cmd.build();
    let mut names = BTreeSet::new();
    for a in cmd.get_arguments().filter(|a| !a.is_positional()) {
        if let Some(s) = a.get_short() {
            names.insert(format!("-{s}"));
        }
        if let Some(l) = a.get_long() {
            names.insert(format!("--{l}"));
        }
    }
    names
}

/// Options listed by a clap `--help` (`  -h, --help`, `      --fd <PATH>`).
fn clap_help_options(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in text.lines().filter(|l| l.trim_start().starts_with('-')) {
        let tag = l.trim_start().split("  ").next().unwrap_or("");
        for part in tag.split(", ") {
            let name: String = part.chars().take_while(|c| !c.is_whitespace()).collect();
            names.insert(name);
        }
    }
    names
}

fn stdout_of(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn emulator_page_help_and_parser_list_the_same_options() {
    let Some(man) = tool_or_skip("emulator_page", "man") else {
        return;
    };
    let (_dir, root) = generated();
    let page = render(&man, &root.join("man/openhook-emulator.1"));
    let table = emulator_table();
    assert_eq!(tagged_options(&section(&page, "OPTIONS")), table, "{page}");

    // -h, -help, --help print the same listing, made from the same table.
    let help = stdout_of(&bin("openhook-emulator"), &["-help"]);
    for spelling in ["-h", "--help"] {
        assert_eq!(stdout_of(&bin("openhook-emulator"), &[spelling]), help);
    }
    let listed: BTreeSet<String> = help
        .lines()
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            // `-machine or -M [type=]...`, `-m [size=]N...   guest RAM`
            let mut names = Vec::new();
            let mut words = l.split_whitespace().peekable();
            while let Some(w) = words.next() {
                names.push(w.to_string());
                if words.peek() != Some(&"or") {
                    break;
                }
                words.next();
            }
            names
        })
        .collect();
    assert_eq!(listed, table, "{help}");
    // Every listed option is one the parser takes (the emulator exits at
    // -version, after looking the options before it up).
    for spec in OPTIONS {
        for name in spec.names {
            let mut args = vec![format!("-{name}")];
            if spec.arg.is_some() {
                args.push("x".into());
            }
            args.push("-version".into());
            let out = Command::new(bin("openhook-emulator"))
                .args(&args)
                .output()
                .expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("invalid option"), "{args:?}: {stderr}");
        }
    }
    let version = stdout_of(&bin("openhook-emulator"), &["-version"]);
    assert_eq!(
        version,
        stdout_of(&bin("openhook-emulator"), &["--version"])
    );
    assert!(
        version.starts_with(&format!(
            "openhook-emulator version {} (QEMU 7.2 ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
}

#[test]
fn clap_pages_list_the_parsers_options() {
    let Some(man) = tool_or_skip("clap_pages", "man") else {
        return;
    };
    let (_dir, root) = generated();
    let qmp = openhook_wire::qmp::cli::Cli::command();
    let page = render(&man, &root.join("man/openhook-qmp.1"));
    let expected = clap_options(qmp);
    assert_eq!(
        tagged_options(&section(&page, "OPTIONS")),
        expected,
        "{page}"
    );
    let help = stdout_of(&bin("openhook-qmp"), &["--help"]);
    assert_eq!(clap_help_options(&help), expected, "{help}");
    let version = stdout_of(&bin("openhook-qmp"), &["--version"]);
    assert_eq!(
        version,
        format!("openhook-qmp {}\n", env!("CARGO_PKG_VERSION"))
    );

    // The broker: its page and one page per subcommand.
    let broker = openhook_broker::cli::Cli::command();
    let mut pages = vec![("openhook-broker".to_string(), broker.clone(), vec![])];
    for sub in broker.get_subcommands() {
        let name = sub.get_name().to_string();
        pages.push((format!("openhook-broker-{name}"), sub.clone(), vec![name]));
    }
    assert!(pages.len() >= 3, "check and learn pages");
    for (page_name, cmd, args) in pages {
        let page = render(&man, &root.join(format!("man/{page_name}.1")));
        let expected = clap_options(cmd);
        assert_eq!(
            tagged_options(&section(&page, "OPTIONS")),
            expected,
            "{page_name}: {page}"
        );
        let mut help_args: Vec<&str> = args.iter().map(String::as_str).collect();
        help_args.push("--help");
        let help = stdout_of(&bin("openhook-broker"), &help_args);
        assert_eq!(clap_help_options(&help), expected, "{help}");
    }
    let version = stdout_of(&bin("openhook-broker"), &["--version"]);
    assert_eq!(
        version,
        format!("openhook-broker {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Each field list the parser reports for an unknown key in `context`.
fn accepted_keys(context: &str) -> Vec<String> {
    let text = format!("version = 1\n{context}zz_unknown = 1\n");
    let err = openhook_broker::policy::parse(&text, "k.toml")
        .expect_err("unknown key refused")
        .to_string();
    // serde's wording: "expected `a`", "expected `a` or `b`",
    // "expected one of `a`, `b`, `c`".
    let list = err
        .split_once("expected ")
        .unwrap_or_else(|| panic!("{context:?}: {err}"))
        .1;
    let list = list.strip_prefix("one of ").unwrap_or(list);
    list.split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim_matches('`').to_string())
        .collect()
}

#[test]
fn policy_page_documents_every_key_the_parser_accepts() {
    let Some(man) = tool_or_skip("policy_page", "man") else {
        return;
    };
    let (_dir, root) = generated();
    let page = render(&man, &root.join("man/openhook-policy.5"));
    let contexts = [
        ("", "TOP-LEVEL KEYS"),
        ("[[allow]]\npath = \"/a\"\n", "ALLOW RULES"),
        ("[[deny]]\npath = \"/a\"\n", "DENY RULES"),
        ("[[listen]]\npath = \"/a\"\nfd = 10\n", "LISTEN"),
        ("[[preopen]]\npath = \"/a\"\nfd = 10\n", "PREOPEN"),
        ("[sandbox]\n", "SANDBOX"),
    ];
    let mut checked = 0;
    for (context, title) in contexts {
        let body = section(&page, title);
        assert!(!body.is_empty(), "no {title} section in\n{page}");
        for key in accepted_keys(context) {
            // Tables appear as [[allow]] / [sandbox] in the top-level list.
            let tagged = body.iter().any(|l| {
                l.strip_prefix("       ")
                    .filter(|t| !t.starts_with(' '))
                    .is_some_and(|t| {
                        let word = t.split_whitespace().next().unwrap_or("");
                        word.trim_matches(|c| c == '[' || c == ']') == key
                    })
            });
            assert!(tagged, "openhook-policy(5) {title}: no entry for `{key}`");
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} keys");
}

#[test]
fn bash_and_fish_complete_the_options_and_zsh_parses() {
    let (_dir, root) = generated();
    // The completion view of the emulator's table: one-letter names are
    // short options, the others long ones (the emulator takes both dashes).
    let emulator: BTreeSet<String> = OPTIONS
        .iter()
        .flat_map(|s| s.names.iter())
        .map(|n| {
            if n.len() == 1 {
                format!("-{n}")
            } else {
                format!("--{n}")
            }
        })
        .collect();
    let qmp = clap_options(openhook_wire::qmp::cli::Cli::command());
    let broker = clap_options(openhook_broker::cli::Cli::command());
    let cases = [
        ("openhook-emulator", emulator),
        ("openhook-qmp", qmp),
        ("openhook-broker", broker),
    ];
    if let Some(bash) = tool_or_skip("bash_completion", "bash") {
        for (name, expected) in &cases {
            let script = root.join("completions/bash").join(name);
            let func = format!("_{}", name.replace('-', "__"));
            let out = Command::new(&bash)
                .arg("-c")
                .arg(format!(
                    "source {s} && COMP_WORDS=({name} -) && COMP_CWORD=1 && \
                     COMP_LINE='{name} -' && COMP_POINT=${{#COMP_LINE}} && \
                     {func} {name} - {name} && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                    s = script.display()
                ))
                .output()
                .expect("bash");
            // Options only (the broker's subcommands are offered too).
            let got: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|w| w.starts_with('-'))
                .map(str::to_string)
                .collect();
            assert_eq!(
                &got,
                expected,
                "bash {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if let Some(fish) = tool_or_skip("fish_completion", "fish") {
        for (name, expected) in &cases {
            let script = root.join(format!("completions/fish/{name}.fish"));
            let out = Command::new(&fish)
                .arg("--no-config")
                .arg("-c")
                .arg(format!(
                    "source {}; complete -C '{name} -'",
                    script.display()
                ))
                .output()
                .expect("fish");
            let got: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.split('\t').next().unwrap_or("").to_string())
                .filter(|o| o.starts_with('-'))
                .collect();
            // fish offers -h and -help style shorts and longs alike.
            assert_eq!(
                &got,
                expected,
                "fish {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if let Some(zsh) = tool_or_skip("zsh_completion", "zsh") {
        for (name, _) in &cases {
            let script = root.join(format!("completions/zsh/_{name}"));
            let out = Command::new(&zsh)
                .arg("-n")
                .arg(&script)
                .output()
                .expect("zsh");
            assert!(
                out.status.success(),
                "zsh -n {}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Every binary an operator runs answers `--help` and `--version` with
/// status 0, its version on stdout.
#[test]
fn every_binary_has_help_and_version() {
    let version = env!("CARGO_PKG_VERSION");
    for name in [
        "openhook-broker",
        "openhook-emulator",
        "openhook-qmp",
        "openhook-open",
    ] {
        let help = stdout_of(&bin(name), &["--help"]);
        assert!(help.contains("sage"), "{name} --help: {help}");
        let v = stdout_of(&bin(name), &["--version"]);
        assert!(
            v.starts_with(&format!("{name} ")) && v.contains(version),
            "{name} --version: {v}"
        );
    }
}
