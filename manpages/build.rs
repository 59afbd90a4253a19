//! Builds the man pages and shell completions into `OUT_DIR` from the
//! definitions the binaries parse their command lines with, included here
//! by path so nothing is copied:
//!
//! - `openhook-qmp`: its clap `Cli` (`wire/src/qmp/cli.rs`) → clap_mangen,
//!   clap_complete;
//! - `openhook-broker`: its clap `Cli` (`broker/src/cli.rs`), the same way,
//!   one page per subcommand too;
//! - `openhook-emulator`: the option table its parser looks options up in
//!   (`emulator/src/cli/options.rs`) → a QEMU-style page written here, and
//!   completions from a clap command made from the table;
//! - `openhook-policy(5)`: `manpages/openhook-policy.5`, kept in the repo.
//!
//! `OUT_DIR/files.rs` lists every file for the library (`FILES`).

// Build tooling: reads the definitions and writes OUT_DIR by path.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
#[path = "../wire/src/qmp/cli.rs"]
mod qmp_cli;

#[allow(dead_code)]
#[path = "../broker/src/cli.rs"]
mod broker_cli;

#[allow(dead_code)]
#[path = "../emulator/src/cli/options.rs"]
mod emulator_options;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command, CommandFactory, ValueHint};
use clap_complete::Shell;
use emulator_options::{OptionSpec, Section, OPTIONS};

const SOURCES: &[&str] = &[
    "../wire/src/qmp/cli.rs",
    "../broker/src/cli.rs",
    "../emulator/src/cli/options.rs",
    "openhook-policy.5",
    "build.rs",
];

fn main() {
    for s in SOURCES {
        println!("cargo:rerun-if-changed={s}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let man = out.join("man");
    let comp = out.join("completions");
    for d in [&man, &comp] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).expect("create output dir");
    }
    let mut files: Vec<String> = Vec::new();

    clap_docs(qmp_cli::Cli::command(), &man, &comp);
    clap_docs(broker_cli::Cli::command(), &man, &comp);
    write(&man.join("openhook-emulator.1"), &emulator_page());
    completions(emulator_command(), &comp);
    let policy = std::fs::read_to_string("openhook-policy.5").expect("openhook-policy.5");
    write(
        &man.join("openhook-policy.5"),
        &policy.replace("@VERSION@", env!("CARGO_PKG_VERSION")),
    );

    collect(&out, &man, &mut files);
    collect(&out, &comp, &mut files);
    files.sort();
    let mut list = String::from("/// Every generated file: its path below the output root, its bytes.\npub const FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let _ = writeln!(
            list,
            "    ({f:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{f}\"))),"
        );
    }
    list.push_str("];\n");
    write(&out.join("files.rs"), &list);
}

/// The man page(s) (one per subcommand too) and completions of a clap
/// command.
fn clap_docs(cmd: Command, man: &Path, comp: &Path) {
    let cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    clap_mangen::generate_to(cmd.clone(), man).expect("man page");
    completions(cmd, comp);
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Relative paths of the files below `dir`, recursively.
fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("below root");
            files.push(rel.to_string_lossy().into_owned());
        }
    }
}

/// bash, zsh and fish completions, in `completions/<shell>/` under the
/// names each shell's completion directory expects.
fn completions(mut cmd: Command, dir: &Path) {
    let name = cmd.get_name().to_string();
    for (shell, sub) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).expect("completion dir");
        let path = clap_complete::generate_to(shell, &mut cmd, &name, &d).expect("completion");
        // bash-completion looks a command up by its own name.
        if shell == Shell::Bash {
            std::fs::rename(&path, d.join(&name)).expect("rename");
        }
    }
}

/// A clap command with the emulator's table, for the completion
/// generators only (the emulator does not parse with clap: QEMU spells
/// long options with one dash). One-letter names become short options,
/// the others long ones, which the emulator accepts with two dashes.
fn emulator_command() -> Command {
    let mut cmd = Command::new("openhook-emulator")
        .about("Sandboxed KVM micro-VM with a QEMU-compatible command line")
        .disable_help_flag(true)
        .disable_version_flag(true);
    for spec in OPTIONS {
        let mut arg = Arg::new(spec.names[0]).help(spec.help);
        let mut long = false;
        for name in spec.names {
            let mut chars = name.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => arg = arg.short(c),
                _ if !long => {
                    arg = arg.long(*name);
                    long = true;
                }
                _ => arg = arg.visible_alias(*name),
            }
        }
        arg = match spec.arg {
            Some("FILE") => arg
                .value_name("FILE")
                .value_hint(ValueHint::FilePath)
                .action(ArgAction::Append),
            Some(_) => arg.value_name("OPTS").action(ArgAction::Append),
            None => arg.action(ArgAction::Count),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Escapes text for roff: backslashes, dashes (so they render as the
/// ASCII hyphen-minus a user types), and a leading `.` or `'`.
fn roff(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn synopsis_roff(spec: &OptionSpec) -> String {
    let names: Vec<String> = spec
        .names
        .iter()
        .map(|n| format!("\\fB{}\\fR", roff(&format!("-{n}"))))
        .collect();
    let mut s = names.join(", ");
    if let Some(arg) = spec.arg {
        // Break points after `,` and `|` for the long sub-option lists.
        let arg = roff(arg).replace(',', ",\\:").replace('|', "|\\:");
        let _ = write!(s, " \\fI{arg}\\fR");
    }
    s
}

/// openhook-emulator(1), QEMU's layout: the table's sections and options.
fn emulator_page() -> String {
    let v = env!("CARGO_PKG_VERSION");
    let mut p = String::new();
    let _ = writeln!(
        p,
        ".TH OPENHOOK-EMULATOR 1 \"\" \"openhook {v}\" \"User Commands\""
    );
    p.push_str(
        // Left-adjusted, unhyphenated: option syntax is what a user types.
        ".ad l\n.nh\n.SH NAME\nopenhook\\-emulator \\- sandboxed KVM micro\\-VM with a QEMU\\-compatible command line\n\
         .SH SYNOPSIS\n.B openhook\\-emulator\n.RI [ options ]\n.br\n\
         .B openhook\\-emulator \\-\\-print\\-derived\\-policy\n.RI [ options ]\n\
         .SH DESCRIPTION\n\
         A KVM micro\\-VM laid out like QEMU's microvm machine (8250 UART, virtio\\-mmio block \
         devices, isa\\-debug\\-exit), with QEMU's command line and QMP monitor. \
         It never opens a path itself: files come from \\fBopenhook\\-broker\\fR(1) over the \
         inherited \\fB\\-open\\-hook\\-fd\\fR socket, under a policy (\\fBopenhook\\-policy\\fR(5)), \
         or as descriptors passed over QMP (\\fBgetfd\\fR, \\fBadd\\-fd\\fR, \\fI/dev/fdset/N\\fR). \
         It confines itself (seccomp, Landlock, no capabilities) before it creates a thread.\n\
         .PP\n\
         Launched without \\fB\\-open\\-hook\\-fd\\fR and with the sandbox on, it re\\-executes \
         itself as \\fBopenhook\\-broker\\fR with a policy derived from its command line; \
         \\fB\\-\\-print\\-derived\\-policy\\fR, as the first argument, prints that policy.\n\
         .PP\n\
         Options may be written with one or two dashes. Sub\\-options are QEMU's \
         \\fIkey\\fR=\\fIvalue\\fR,... syntax (\\fB,,\\fR is a literal comma).\n\
         .SH OPTIONS\n",
    );
    for section in Section::ALL {
        let _ = writeln!(p, ".SS {}", roff(section.title()));
        for spec in OPTIONS.iter().filter(|s| s.section == section) {
            let _ = writeln!(p, ".TP\n{}\n{}", synopsis_roff(spec), roff(spec.help));
        }
    }
    p.push_str(
        ".SH EXAMPLES\n\
         Under the broker, with a policy:\n\
         .PP\n.nf\n\
         openhook\\-broker \\-\\-policy vm.toml \\-\\-audit\\-log audit.jsonl \\-\\- \\e\n\
         \\ \\ openhook\\-emulator \\-M microvm \\-m 64 \\-nodefaults \\-no\\-reboot \\e\n\
         \\ \\ \\ \\ \\-bios firmware.bin \\-serial file:/srv/vm1/logs/serial.txt \\e\n\
         \\ \\ \\ \\ \\-drive id=d0,file=/srv/vm1/disk.img,format=raw,if=none \\e\n\
         \\ \\ \\ \\ \\-device virtio\\-blk\\-device,drive=d0\n\
         .fi\n\
         .PP\n\
         As a service: \\fBsystemctl start openhook\\-vm@vm1\\fR runs the arguments in \
         \\fI/etc/openhook/vm1.args\\fR under the policy \\fI/etc/openhook/vm1.toml\\fR \
         (docs/systemd.md).\n\
         .SH EXIT STATUS\n\
         The guest's status when it exits through isa\\-debug\\-exit (\\fI(v << 1) | 1\\fR), \
         0 after a QMP \\fBquit\\fR or a shutdown, 1 when start\\-up fails.\n\
         .SH ENVIRONMENT\n\
         .TP\n.B LISTEN_PID\\fR, \\fBLISTEN_FDS\\fR, \\fBLISTEN_FDNAMES\n\
         systemd socket activation: listeners for socket chardevs (named by chardev id).\n\
         .TP\n.B OPENHOOK_LOG\n\
         log filter (tracing's syntax), default warn.\n\
         .SH SEE ALSO\n\
         .BR openhook\\-broker (1),\n.BR openhook\\-qmp (1),\n.BR openhook\\-policy (5),\n\
         .BR qemu\\-system\\-x86_64 (1)\n",
    );
    p
}
