//! The option table: every option `openhook-emulator` accepts, with its
//! spellings, whether it takes an argument, the argument's syntax and a
//! line of help. The parser (`args.rs`) looks options up here, `-help`
//! prints this table, and the build of the man page and the shell
//! completions (`manpages/build.rs`, which includes this file by path)
//! renders it, so the three cannot disagree.
//!
//! Standard library only, no `crate::` paths: a build script compiles it.
#![forbid(unsafe_code)]

/// Every option the emulator understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Help,
    Version,
    Machine,
    Accel,
    EnableKvm,
    Cpu,
    Memory,
    Smp,
    Bios,
    Kernel,
    Initrd,
    Append,
    Drive,
    Device,
    Chardev,
    Serial,
    Mon,
    Qmp,
    Monitor,
    Nographic,
    Display,
    Vga,
    Net,
    Nic,
    Parallel,
    Nodefaults,
    NoUserConfig,
    Name,
    NoReboot,
    Paused,
    OpenHookFd,
    AddFd,
    Sandbox,
    Global,
}

/// The groups of `-help`, in QEMU's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Standard,
    Block,
    Chardev,
    Boot,
    Display,
    Debug,
    Openhook,
}

impl Section {
    /// Every section, in the order `-help` lists them.
    pub const ALL: [Section; 7] = [
        Section::Standard,
        Section::Block,
        Section::Chardev,
        Section::Boot,
        Section::Display,
        Section::Debug,
        Section::Openhook,
    ];

    /// The heading, as QEMU words its own.
    pub fn title(self) -> &'static str {
        match self {
            Section::Standard => "Standard options",
            Section::Block => "Block device options",
            Section::Chardev => "Character device and monitor options",
            Section::Boot => "Boot options",
            Section::Display => "Display and other device options",
            Section::Debug => "Debug/Expert options",
            Section::Openhook => "openhook options",
        }
    }
}

/// One option of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// Spellings without dashes, the main one first (`machine`, `M`).
    pub names: &'static [&'static str],
    pub opt: Opt,
    /// The argument's syntax; `None` for an option without argument.
    pub arg: Option<&'static str>,
    pub help: &'static str,
    pub section: Section,
}

impl OptionSpec {
    /// True when the option consumes the next word.
    pub fn takes_arg(&self) -> bool {
        self.arg.is_some()
    }
}

/// The QEMU release whose command line and QMP this emulator follows.
pub const QEMU_MAJOR: u32 = 7;
pub const QEMU_MINOR: u32 = 2;

/// The program's version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const fn spec(
    names: &'static [&'static str],
    opt: Opt,
    arg: Option<&'static str>,
    help: &'static str,
    section: Section,
) -> OptionSpec {
    OptionSpec {
        names,
        opt,
        arg,
        help,
        section,
    }
}

/// Every option, in `-help` order within each section.
pub const OPTIONS: &[OptionSpec] = &[
    spec(&["h", "help"], Opt::Help, None, "display this help and exit", Section::Standard),
    spec(&["version"], Opt::Version, None, "display version information and exit", Section::Standard),
    spec(
        &["machine", "M"],
        Opt::Machine,
        Some("[type=]microvm[,pit=on|off|auto][,...]"),
        "selects the emulated machine: microvm only ('-machine help' lists it; QEMU microvm's fixed-layout properties are accepted and ignored)",
        Section::Standard,
    ),
    spec(&["accel"], Opt::Accel, Some("kvm[,kernel-irqchip=...]"), "selects the accelerator: KVM only ('-accel help')", Section::Standard),
    spec(&["enable-kvm"], Opt::EnableKvm, None, "enable KVM (the only accelerator; always on)", Section::Standard),
    spec(
        &["cpu"],
        Opt::Cpu,
        Some("host[,+feature|-feature...]|max"),
        "CPU model ('-cpu help'): accepted; the vCPU gets KVM's supported CPUID",
        Section::Standard,
    ),
    spec(&["m"], Opt::Memory, Some("[size=]N[BKMGTPE]"), "guest RAM (default 128 MiB; a bare number is MiB)", Section::Standard),
    spec(
        &["smp"],
        Opt::Smp,
        Some("[cpus=]N[,maxcpus=N][,sockets=N][,dies=N][,clusters=N][,cores=N][,threads=N]"),
        "number of vCPUs, 1 to 255 (no CPU hotplug)",
        Section::Standard,
    ),
    spec(
        &["name"],
        Opt::Name,
        Some("[guest=]NAME[,process=NAME][,debug-threads=on|off]"),
        "names the guest (query-name); process and debug-threads are ignored",
        Section::Standard,
    ),
    spec(
        &["global"],
        Opt::Global,
        Some("virtio-mmio.ioeventfd=on|off|virtio-mmio.force-legacy=false"),
        "virtio-mmio properties: ioeventfd (default on) serves disk requests on an I/O thread",
        Section::Standard,
    ),
    spec(&["no-user-config"], Opt::NoUserConfig, None, "accepted: there is no default configuration file", Section::Standard),
    spec(&["nodefaults"], Opt::Nodefaults, None, "no default devices (-nographic then leaves the serial port unconnected)", Section::Standard),
    spec(
        &["drive"],
        Opt::Drive,
        Some("file=FILE,if=virtio|none[,format=raw][,id=ID][,readonly=on|off][,cache=writeback|none|writethrough|directsync|unsafe][,media=disk][,aio=threads]"),
        "a raw disk; file=/dev/fdset/N takes it from an fd set (-add-fd, QMP add-fd)",
        Section::Block,
    ),
    spec(
        &["device"],
        Opt::Device,
        Some("virtio-blk-device,drive=ID[,id=ID]|isa-debug-exit[,iobase=N][,iosize=N]"),
        "adds a virtio-blk device for an if=none drive, or the isa-debug-exit port ('-device help')",
        Section::Block,
    ),
    spec(
        &["chardev"],
        Opt::Chardev,
        Some("stdio,id=ID|file,id=ID,path=PATH|socket,id=ID,path=PATH|fd=N[,server=on|off][,wait=on|off]"),
        "a character device (unix sockets only)",
        Section::Chardev,
    ),
    spec(
        &["serial"],
        Opt::Serial,
        Some("stdio|file:PATH|chardev:ID|mon:stdio|none"),
        "connects the UART at 0x3f8 (one)",
        Section::Chardev,
    ),
    spec(
        &["mon"],
        Opt::Mon,
        Some("[chardev=]ID[,mode=control|readline][,pretty=on|off]"),
        "a monitor on chardev ID",
        Section::Chardev,
    ),
    spec(
        &["qmp"],
        Opt::Qmp,
        Some("stdio|unix:PATH[,server=on|off][,wait=on|off]|none"),
        "a QMP monitor (creates chardev compat_monitorN)",
        Section::Chardev,
    ),
    spec(
        &["monitor"],
        Opt::Monitor,
        Some("stdio|unix:PATH[,server=on|off][,wait=on|off]|none"),
        "a monitor in readline mode (creates chardev compat_monitorN)",
        Section::Chardev,
    ),
    spec(&["bios"], Opt::Bios, Some("FILE"), "firmware image (at most 16 MiB), mapped to end at 4 GiB", Section::Boot),
    spec(&["kernel"], Opt::Kernel, Some("FILE"), "Linux kernel (bzImage or ELF vmlinux)", Section::Boot),
    spec(&["initrd"], Opt::Initrd, Some("FILE"), "initial RAM disk (needs -kernel)", Section::Boot),
    spec(&["append"], Opt::Append, Some("CMDLINE"), "kernel command line (needs -kernel)", Section::Boot),
    spec(&["nographic"], Opt::Nographic, None, "no graphical output: the serial port goes to stdio", Section::Display),
    spec(&["display"], Opt::Display, Some("none"), "display backend: none only", Section::Display),
    spec(&["vga"], Opt::Vga, Some("none"), "VGA card: none only", Section::Display),
    spec(&["net"], Opt::Net, Some("none"), "network: none only", Section::Display),
    spec(&["nic"], Opt::Nic, Some("none"), "network card: none only", Section::Display),
    spec(&["parallel"], Opt::Parallel, Some("none"), "parallel port: none only", Section::Display),
    spec(&["no-reboot"], Opt::NoReboot, None, "exit instead of rebooting", Section::Debug),
    spec(&["S"], Opt::Paused, None, "do not start the vCPU at start-up (QMP 'cont' starts it)", Section::Debug),
    spec(
        &["sandbox"],
        Opt::Sandbox,
        Some("on|off[,obsolete=deny][,elevateprivileges=deny|children][,spawn=deny][,resourcecontrol=deny]"),
        "the openhook sandbox: seccomp, Landlock, no capabilities (default on)",
        Section::Debug,
    ),
    spec(
        &["open-hook-fd"],
        Opt::OpenHookFd,
        Some("N"),
        "the broker's hook socket, inherited at fd N (openhook-broker appends it)",
        Section::Openhook,
    ),
    spec(
        &["add-fd"],
        Opt::AddFd,
        Some("fd=N,set=M[,opaque=TEXT]"),
        "adds inherited fd N to fd set M (/dev/fdset/M)",
        Section::Openhook,
    ),
];

/// The table entry for a spelling (without dashes) and the spelling as it
/// appears in the table.
pub fn lookup(name: &str) -> Option<(&'static OptionSpec, &'static str)> {
    OPTIONS
        .iter()
        .find_map(|s| s.names.iter().find(|n| **n == name).map(|&n| (s, n)))
}

/// `-version`'s text.
pub fn version_text() -> String {
    format!(
        "openhook-emulator version {VERSION} (QEMU {QEMU_MAJOR}.{QEMU_MINOR} command line and QMP, -M microvm)\n"
    )
}

/// Machine types `-machine` accepts, with QEMU's description.
pub const MACHINES: &[(&str, &str)] = &[("microvm", "microvm (i386)")];
/// Accelerators `-accel` accepts.
pub const ACCELS: &[&str] = &["kvm"];
/// CPU models `-cpu` accepts, with QEMU's description.
pub const CPUS: &[(&str, &str)] = &[
    ("host", "KVM processor with all supported host features"),
    (
        "max",
        "Enables all features supported by the accelerator in the current host",
    ),
];
/// Devices `-device` accepts: (category, driver, bus), QEMU's grouping.
pub const DEVICES: &[(&str, &str, &str)] = &[
    ("Storage devices", "virtio-blk-device", "virtio-bus"),
    ("Misc devices", "isa-debug-exit", "ISA"),
];

/// What `-OPTION help` prints, in QEMU's words, for the options with a
/// list; `None` for the others.
pub fn list_text(opt: Opt) -> Option<String> {
    let mut out = String::new();
    match opt {
        Opt::Machine => {
            out.push_str("Supported machines are:\n");
            for (name, desc) in MACHINES {
                out.push_str(&format!("{name:<20} {desc}\n"));
            }
        }
        Opt::Accel => {
            out.push_str("Accelerators supported in openhook-emulator:\n");
            for name in ACCELS {
                out.push_str(&format!("{name}\n"));
            }
        }
        Opt::Cpu => {
            out.push_str("Available CPUs:\n");
            for (name, desc) in CPUS {
                out.push_str(&format!("  {name:<6} {desc}\n"));
            }
        }
        Opt::Device => {
            let mut last = "";
            for (category, name, bus) in DEVICES {
                if *category != last {
                    if !last.is_empty() {
                        out.push('\n');
                    }
                    out.push_str(&format!("{category}:\n"));
                    last = category;
                }
                out.push_str(&format!("name \"{name}\", bus {bus}\n"));
            }
        }
        _ => return None,
    }
    Some(out)
}

/// The synopsis of one option as `-help` shows it: `-h or -help`,
/// `-m [size=]N[BKMGTPE]`.
pub fn synopsis(spec: &OptionSpec) -> String {
    let names: Vec<String> = spec.names.iter().map(|n| format!("-{n}")).collect();
    let mut s = names.join(" or ");
    if let Some(arg) = spec.arg {
        s.push(' ');
        s.push_str(arg);
    }
    s
}

/// Column of the help text, as in QEMU's `-help`.
const HELP_COLUMN: usize = 16;

/// `-help`'s text: QEMU's layout, every option of [`OPTIONS`].
pub fn help_text() -> String {
    let mut out = version_text();
    out.push_str("usage: openhook-emulator [options]\n");
    out.push_str("       openhook-emulator --print-derived-policy [options]\n");
    for section in Section::ALL {
        out.push('\n');
        out.push_str(section.title());
        out.push_str(":\n");
        for spec in OPTIONS.iter().filter(|s| s.section == section) {
            let syn = synopsis(spec);
            out.push_str(&syn);
            if syn.len() < HELP_COLUMN {
                out.push_str(&" ".repeat(HELP_COLUMN - syn.len()));
            } else {
                out.push('\n');
                out.push_str(&" ".repeat(HELP_COLUMN));
            }
            out.push_str(spec.help);
            out.push('\n');
        }
    }
    out.push_str(
        "\nOptions may be written with one or two dashes. --print-derived-policy, as the\n\
         first argument, prints the policy a directly launched emulator would run under.\n\
         See openhook-emulator(1) and docs/command-line.md.\n",
    );
    out
}
