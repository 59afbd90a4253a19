//! Recognised options → the validated [`MachineConfig`] (pure).
//!
//! Per-option syntax lives in the sibling modules; this file applies
//! defaults and the checks that span options: drive ids and references,
//! chardev ids and their single frontend, stdio used once, `-kernel`
//! companions, defaults of `-nographic`/`-nodefaults`.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use super::args::{Opt, RawOption};
use super::block::{self, DeviceSpec, DriveSpec, Interface};
use super::chardev;
use super::error::{CliError, Loc};
use super::machine_opts;
use super::process_opts;
use crate::fds::activation::ActivatedFd;
use crate::vm_config::{
    ChardevBackend, DriveConfig, KernelConfig, MachineConfig, MonitorMode, SerialConfig,
};

/// A virtio-blk device in command-line order.
enum BlkSlot {
    /// `-drive if=virtio`: index into the drive list.
    Implicit(usize),
    /// `-device virtio-blk-device,drive=ID` with the option's text.
    Explicit { drive: String, location: String },
}

/// Builds the machine model from split options. `activated` are the
/// socket-activation listeners (empty without activation).
pub fn build(options: &[RawOption], activated: &[ActivatedFd]) -> Result<MachineConfig, CliError> {
    let mut b = Builder::default();
    for o in options {
        b.apply(o, activated)?;
    }
    b.finish()
}

/// What the options said so far; [`Builder::finish`] applies the
/// defaults and the checks that span options.
#[derive(Default)]
struct Builder {
    cfg: MachineConfig,
    drives: Vec<DriveSpec>,
    slots: Vec<BlkSlot>,
    serial: Option<(SerialConfig, String)>,
    nographic: bool,
    nodefaults: bool,
    kernel: Option<std::path::PathBuf>,
    initrd: Option<(std::path::PathBuf, String)>,
    append: Option<(String, String)>,
    compat_monitors: usize,
    /// Automatic drive ids handed out so far: `virtioN`, `noneN`.
    if_units: [usize; 2],
}

impl Builder {
    /// Applies one option, in command-line order.
    fn apply(&mut self, o: &RawOption, activated: &[ActivatedFd]) -> Result<(), CliError> {
        let loc = Loc {
            option: o.name,
            arg: o.arg.as_deref(),
        };
        let cfg = &mut self.cfg;
        match o.opt {
            Opt::Machine => {
                let props = machine_opts::machine(loc)?;
                cfg.pit = props.pit.unwrap_or(cfg.pit);
                cfg.pic = props.pic.unwrap_or(cfg.pic);
                cfg.kernel_irqchip = props.kernel_irqchip.or(cfg.kernel_irqchip);
            }
            // Acted on before parsing (`args::info_request`).
            Opt::Help | Opt::Version => {}
            Opt::Accel => {
                if let Some(chip) = machine_opts::accel(loc)? {
                    cfg.kernel_irqchip = Some(chip);
                }
            }
            Opt::EnableKvm => {}
            Opt::Cpu => machine_opts::cpu(loc)?,
            Opt::Memory => cfg.memory_mib = machine_opts::memory_mib(loc)?,
            Opt::Smp => cfg.vcpus = machine_opts::smp(loc)?,
            Opt::Bios => cfg.firmware = Some(non_empty_path(loc)?),
            Opt::Kernel => self.kernel = Some(non_empty_path(loc)?),
            Opt::Initrd => self.initrd = Some((non_empty_path(loc)?, location(o))),
            Opt::Append => self.append = Some((o.arg().to_string(), location(o))),
            Opt::Drive => self.drive(loc)?,
            Opt::Device => self.device(loc, o)?,
            Opt::Chardev => {
                let c = chardev::chardev(loc, activated)?;
                if cfg.chardevs.iter().any(|x| x.id == c.id) {
                    return Err(loc.err(format!("Duplicate ID '{}' for chardev", c.id)));
                }
                cfg.chardevs.push(c);
            }
            Opt::Serial => {
                if self.serial.is_some() {
                    return Err(loc
                        .err("only one -serial is supported (the machine has one UART at 0x3f8)"));
                }
                self.serial = Some((chardev::serial(loc)?, location(o)));
            }
            Opt::Mon => cfg.monitors.push(chardev::mon(loc)?),
            Opt::Qmp => self.legacy_monitor(loc, MonitorMode::Control, activated)?,
            Opt::Monitor => self.legacy_monitor(loc, MonitorMode::Readline, activated)?,
            Opt::Nographic => self.nographic = true,
            Opt::Display => only_none(loc, "display")?,
            Opt::Vga | Opt::Net | Opt::Nic | Opt::Parallel => only_none(loc, o.name)?,
            Opt::Nodefaults => self.nodefaults = true,
            Opt::NoUserConfig => {}
            Opt::Name => cfg.name = Some(process_opts::name(loc)?),
            Opt::NoReboot => cfg.no_reboot = true,
            Opt::Paused => cfg.start_paused = true,
            Opt::OpenHookFd => {
                if cfg.hook_fd.is_some() {
                    return Err(loc.err("-open-hook-fd given more than once"));
                }
                cfg.hook_fd = Some(process_opts::open_hook_fd(loc)?);
            }
            Opt::AddFd => cfg.add_fds.push(process_opts::add_fd(loc)?),
            Opt::Sandbox => cfg.sandbox = process_opts::sandbox(loc)?,
            Opt::Global => match machine_opts::global(loc)? {
                machine_opts::Global::Nothing => {}
                machine_opts::Global::Ioeventfd(on) => cfg.ioeventfd = on,
            },
        }
        Ok(())
    }

    /// `-drive`: QEMU's automatic id when none is given, unique ids, and
    /// an `if=virtio` drive takes the next virtio-mmio slot.
    fn drive(&mut self, loc: Loc<'_>) -> Result<(), CliError> {
        let mut d = block::drive(loc)?;
        let (unit, prefix) = match d.iface {
            Interface::Virtio => (&mut self.if_units[0], "virtio"),
            Interface::None => (&mut self.if_units[1], "none"),
        };
        if d.id.is_none() {
            d.id = Some(format!("{prefix}{unit}"));
        }
        *unit += 1;
        if self.drives.iter().any(|x| x.id == d.id) {
            return Err(loc.err(format!(
                "Duplicate ID '{}' for drive",
                d.id.as_deref().unwrap_or("")
            )));
        }
        if d.iface == Interface::Virtio {
            self.slots.push(BlkSlot::Implicit(self.drives.len()));
        }
        self.drives.push(d);
        Ok(())
    }

    /// `-device`: a virtio-blk device takes the next slot; one
    /// isa-debug-exit at most.
    fn device(&mut self, loc: Loc<'_>, o: &RawOption) -> Result<(), CliError> {
        match block::device(loc)? {
            DeviceSpec::VirtioBlk { drive } => self.slots.push(BlkSlot::Explicit {
                drive,
                location: location(o),
            }),
            DeviceSpec::DebugExit(d) => {
                if self.cfg.debug_exit.is_some() {
                    return Err(loc.err("only one isa-debug-exit device is supported"));
                }
                self.cfg.debug_exit = Some(d);
            }
        }
        Ok(())
    }

    /// `-qmp`/`-monitor`: a chardev `compat_monitorN` plus its monitor,
    /// as QEMU creates them (nothing for `none`).
    fn legacy_monitor(
        &mut self,
        loc: Loc<'_>,
        mode: MonitorMode,
        activated: &[ActivatedFd],
    ) -> Result<(), CliError> {
        let id = format!("compat_monitor{}", self.compat_monitors);
        if let Some((c, m)) = chardev::legacy_monitor(loc, &id, mode, activated)? {
            self.compat_monitors += 1;
            if self.cfg.chardevs.iter().any(|x| x.id == c.id) {
                return Err(loc.err(format!("Duplicate ID '{}' for chardev", c.id)));
            }
            self.cfg.chardevs.push(c);
            self.cfg.monitors.push(m);
        }
        Ok(())
    }

    /// Defaults and the checks that span options.
    fn finish(self) -> Result<MachineConfig, CliError> {
        let mut cfg = self.cfg;
        cfg.kernel = kernel_config(self.kernel, self.initrd, self.append)?;
        cfg.drives = resolve_slots(&self.drives, self.slots)?;
        cfg.serial = match self.serial {
            // `-serial chardev:ID` may name an ID no -chardev defines (unlike
            // QEMU): the UART's output is discarded until a monitor's
            // `chardev-add` creates ID (docs/qmp.md, "late binding"); start-up
            // says so on stderr.
            Some((s, _)) => s,
            // QEMU: -nographic puts the first serial port on stdio; otherwise
            // it would be a graphical console, which this emulator does not
            // have, so the UART's output goes nowhere.
            None if self.nographic && !self.nodefaults => SerialConfig::Stdio,
            None => SerialConfig::None,
        };
        check_frontends(&cfg)?;
        Ok(cfg)
    }
}

/// `-kernel` with its companions; `-initrd`/`-append` without it are
/// QEMU's errors.
fn kernel_config(
    kernel: Option<std::path::PathBuf>,
    initrd: Option<(std::path::PathBuf, String)>,
    append: Option<(String, String)>,
) -> Result<Option<KernelConfig>, CliError> {
    match (kernel, initrd, append) {
        (Some(kernel), initrd, append) => Ok(Some(KernelConfig {
            kernel,
            initrd: initrd.map(|(p, _)| p),
            cmdline: append.map(|(a, _)| a).unwrap_or_default(),
        })),
        (None, Some((_, l)), _) => Err(located(l, "-initrd only allowed with -kernel option")),
        (None, None, Some((_, l))) => Err(located(l, "-append only allowed with -kernel option")),
        (None, None, None) => Ok(None),
    }
}

fn location(o: &RawOption) -> String {
    match &o.arg {
        Some(a) => format!("-{} {a}", o.name),
        None => format!("-{}", o.name),
    }
}

fn located(location: String, message: impl Into<String>) -> CliError {
    CliError {
        location: Some(location),
        message: message.into(),
    }
}

fn non_empty_path(loc: Loc<'_>) -> Result<std::path::PathBuf, CliError> {
    match loc.arg {
        Some(a) if !a.is_empty() => Ok(a.into()),
        _ => Err(loc.err("empty file name")),
    }
}

fn only_none(loc: Loc<'_>, what: &str) -> Result<(), CliError> {
    if loc.arg == Some("none") {
        Ok(())
    } else {
        Err(loc.err(format!(
            "{what} '{}' is not supported (only 'none')",
            loc.arg.unwrap_or("")
        )))
    }
}

/// Orders the virtio-blk devices as given and checks drive references.
fn resolve_slots(drives: &[DriveSpec], slots: Vec<BlkSlot>) -> Result<Vec<DriveConfig>, CliError> {
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for slot in slots {
        let index = match slot {
            BlkSlot::Implicit(i) => i,
            BlkSlot::Explicit { drive, location } => {
                let Some(i) = drives
                    .iter()
                    .position(|d| d.id.as_deref() == Some(drive.as_str()))
                else {
                    return Err(located(
                        location,
                        format!("Property 'virtio-blk-device.drive' can't find value '{drive}'"),
                    ));
                };
                if drives[i].iface == Interface::Virtio || used.contains(&i) {
                    return Err(located(
                        location,
                        format!("Drive '{drive}' is already in use by another device"),
                    ));
                }
                i
            }
        };
        used.insert(index);
        let d = &drives[index];
        out.push(DriveConfig {
            id: d.id.clone().unwrap_or_default(),
            path: d.path.clone(),
            readonly: d.readonly,
            cache: d.cache,
        });
    }
    Ok(out)
}

/// Every chardev has at most one frontend, monitors name existing
/// chardevs, and stdio is used by one chardev at most.
fn check_frontends(cfg: &MachineConfig) -> Result<(), CliError> {
    let mut users: Vec<&str> = Vec::new();
    if let SerialConfig::Chardev(id) = &cfg.serial {
        users.push(id);
    }
    for m in &cfg.monitors {
        if !cfg.chardevs.iter().any(|c| c.id == m.chardev) {
            return Err(CliError::at(
                "mon",
                Some(&format!("chardev={}", m.chardev)),
                format!("chardev \"{}\" not found", m.chardev),
            ));
        }
        users.push(&m.chardev);
    }
    let mut seen = BTreeSet::new();
    for id in users {
        if !seen.insert(id) {
            return Err(CliError::global(format!("Device '{id}' is in use")));
        }
    }
    let stdio_chardevs = cfg
        .chardevs
        .iter()
        .filter(|c| c.backend == ChardevBackend::Stdio)
        .count();
    let stdio_serial = usize::from(cfg.serial == SerialConfig::Stdio);
    if stdio_chardevs + stdio_serial > 1 {
        return Err(CliError::global(
            "cannot use stdio by multiple character devices",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_command_line;
    use crate::vm_config::{
        AddFdConfig, CacheMode, ChardevConfig, DebugExitConfig, InheritedFd, MonitorConfig,
        SandboxSetting, SocketAddrConfig, SocketChardev,
    };

    fn parse(words: &[&str]) -> Result<MachineConfig, CliError> {
        parse_command_line(words.iter().map(std::ffi::OsString::from), &[])
    }

    fn err(words: &[&str]) -> String {
        parse(words).unwrap_err().to_string()
    }

    /// Every name `-machine help`, `-accel help`, `-cpu help` and
    /// `-device help` list is one the parser accepts.
    #[test]
    fn listed_names_are_accepted() {
        use crate::cli::options::{ACCELS, CPUS, DEVICES, MACHINES};
        for (m, _) in MACHINES {
            parse(&["-M", m]).unwrap();
        }
        for a in ACCELS {
            parse(&["-accel", a]).unwrap();
        }
        for (c, _) in CPUS {
            parse(&["-cpu", c]).unwrap();
        }
        for (_, d, _) in DEVICES {
            let dev = if *d == "virtio-blk-device" {
                format!("{d},drive=d0")
            } else {
                d.to_string()
            };
            parse(&["-drive", "file=/x,if=none,id=d0", "-device", &dev]).unwrap();
        }
        assert!(parse(&["-M", "pc"]).is_err());
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, MachineConfig::default());
        assert_eq!(c.memory_mib, 128);
        assert_eq!(c.sandbox, SandboxSetting::On);
    }

    #[test]
    fn qemu_microvm_test_command_line() {
        // The command line the firmware test runs on QEMU (docs/machine.md), plus ours.
        let c = parse(&[
            "-M",
            "microvm,x-option-roms=off,pit=off,pic=off,rtc=off",
            "-accel",
            "kvm",
            "-cpu",
            "host,-arch-capabilities",
            "-m",
            "64",
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-display",
            "none",
            "-bios",
            "fw.bin",
            "-serial",
            "file:/srv/vm1/log/serial.log",
            "-drive",
            "file=/srv/vm1/disk.img,format=raw,if=none,id=d0,cache=none",
            "-device",
            "virtio-blk-device,drive=d0",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
            "-no-reboot",
            "-name",
            "vm1",
            "-open-hook-fd",
            "9",
        ])
        .unwrap();
        assert_eq!(c.memory_mib, 64);
        assert_eq!(c.vcpus, 1);
        assert_eq!(c.firmware, Some("fw.bin".into()));
        assert_eq!(
            c.serial,
            SerialConfig::File("/srv/vm1/log/serial.log".into())
        );
        assert_eq!(
            c.drives,
            vec![DriveConfig {
                id: "d0".into(),
                path: "/srv/vm1/disk.img".into(),
                readonly: false,
                cache: CacheMode::None,
            }]
        );
        assert_eq!(
            c.debug_exit,
            Some(DebugExitConfig {
                iobase: 0xf4,
                iosize: 4
            })
        );
        assert!(c.no_reboot);
        assert!(!c.start_paused);
        assert_eq!(c.name.as_deref(), Some("vm1"));
        assert_eq!(c.hook_fd, Some(InheritedFd(9)));
    }

    /// The exact argument list `tests/src/fw.rs` gives QEMU
    /// (`QEMU_MACHINE_ARGS` + `FwMachine::args`) parses here too.
    #[test]
    fn firmware_test_qemu_command_line() {
        let c = parse(&[
            "-M",
            "microvm",
            "-accel",
            "kvm",
            "-cpu",
            "host,-arch-capabilities",
            "-global",
            "virtio-mmio.force-legacy=false",
            "-m",
            "128",
            "-nodefaults",
            "-nographic",
            "-no-reboot",
            "-bios",
            "/tmp/fw.bin",
            "-serial",
            "file:/tmp/serial.txt",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
            "-drive",
            "id=d0,file=/tmp/disk.img,format=raw,if=none",
            "-device",
            "virtio-blk-device,drive=d0",
            "-drive",
            "id=d1,file=/tmp/ro.img,format=raw,if=none,readonly=on",
            "-device",
            "virtio-blk-device,drive=d1",
        ])
        .unwrap();
        assert_eq!(c.drives.len(), 2);
        assert!(c.drives[1].readonly);
        assert_eq!(c.serial, SerialConfig::File("/tmp/serial.txt".into()));
        assert!(c.no_reboot);
    }

    #[test]
    fn device_order_is_command_line_order() {
        let c = parse(&[
            "-drive",
            "file=a.img,if=virtio",
            "-device",
            "virtio-blk-device,drive=late",
            "-drive",
            "file=b.img,if=virtio,readonly=on",
            "-drive",
            "file=c.img,if=none,id=late",
        ])
        .unwrap();
        let ids: Vec<&str> = c.drives.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["virtio0", "late", "virtio1"]);
        assert!(c.drives[2].readonly);
        // An if=none drive without a device is not a device.
        let c = parse(&["-drive", "file=x,if=none,id=d0"]).unwrap();
        assert!(c.drives.is_empty());
    }

    #[test]
    fn drive_reference_errors() {
        assert_eq!(
            err(&["-device", "virtio-blk-device,drive=nope"]),
            "-device virtio-blk-device,drive=nope: \
             Property 'virtio-blk-device.drive' can't find value 'nope'"
        );
        assert_eq!(
            err(&[
                "-drive",
                "file=x,if=none,id=d0",
                "-device",
                "virtio-blk-device,drive=d0",
                "-device",
                "virtio-blk-device,drive=d0"
            ]),
            "-device virtio-blk-device,drive=d0: Drive 'd0' is already in use by another device"
        );
        assert_eq!(
            err(&[
                "-drive",
                "file=x,if=virtio,id=d0",
                "-device",
                "virtio-blk-device,drive=d0"
            ]),
            "-device virtio-blk-device,drive=d0: Drive 'd0' is already in use by another device"
        );
        assert_eq!(
            err(&[
                "-drive",
                "file=x,if=none,id=d0",
                "-drive",
                "file=y,if=none,id=d0"
            ]),
            "-drive file=y,if=none,id=d0: Duplicate ID 'd0' for drive"
        );
    }

    #[test]
    fn seed_000_launcher_and_qmp() {
        let c = parse(&[
            "-chardev",
            "socket,fd=3,server,nowait,id=mon",
            "-mon",
            "chardev=mon,mode=control",
            "-qmp",
            "unix:/run/vm1/qmp.sock,server=on,wait=off",
        ])
        .unwrap();
        assert_eq!(
            c.chardevs,
            vec![
                ChardevConfig {
                    id: "mon".into(),
                    backend: ChardevBackend::Socket(SocketChardev {
                        addr: SocketAddrConfig::Fd(InheritedFd(3)),
                        server: true,
                        wait: false,
                        tls_creds: None
                    })
                },
                ChardevConfig {
                    id: "compat_monitor0".into(),
                    backend: ChardevBackend::Socket(SocketChardev {
                        addr: SocketAddrConfig::Unix("/run/vm1/qmp.sock".into()),
                        server: true,
                        wait: false,
                        tls_creds: None
                    })
                }
            ]
        );
        assert_eq!(
            c.monitors,
            vec![
                MonitorConfig {
                    chardev: "mon".into(),
                    mode: MonitorMode::Control
                },
                MonitorConfig {
                    chardev: "compat_monitor0".into(),
                    mode: MonitorMode::Control
                }
            ]
        );
    }

    #[test]
    fn socket_activation_by_name() {
        let act = [ActivatedFd {
            fd: 3,
            name: Some("qmp".into()),
        }];
        let c = parse_command_line(
            [
                "-chardev",
                "socket,id=qmp,server=on,wait=off",
                "-mon",
                "qmp,mode=control",
            ]
            .iter()
            .map(std::ffi::OsString::from),
            &act,
        )
        .unwrap();
        let ChardevBackend::Socket(s) = &c.chardevs[0].backend else {
            panic!()
        };
        assert_eq!(s.addr, SocketAddrConfig::Activated(InheritedFd(3)));
    }

    #[test]
    fn stdio_and_frontends() {
        let c = parse(&["-nographic"]).unwrap();
        assert_eq!(c.serial, SerialConfig::Stdio);
        let c = parse(&["-nographic", "-nodefaults"]).unwrap();
        assert_eq!(c.serial, SerialConfig::None);
        assert_eq!(
            err(&["-nographic", "-qmp", "stdio"]),
            "cannot use stdio by multiple character devices"
        );
        assert!(parse(&["-nographic", "-serial", "none", "-qmp", "stdio"]).is_ok());
        // Late binding: an undefined id waits for `chardev-add`.
        assert_eq!(
            parse(&["-serial", "chardev:s"]).unwrap().serial,
            SerialConfig::Chardev("s".into())
        );
        assert_eq!(
            err(&[
                "-chardev",
                "stdio,id=s",
                "-serial",
                "chardev:s",
                "-mon",
                "s"
            ]),
            "Device 's' is in use"
        );
        assert_eq!(
            err(&["-mon", "chardev=nope,mode=control"]),
            "-mon chardev=nope: chardev \"nope\" not found"
        );
        assert_eq!(
            err(&["-serial", "stdio", "-serial", "none"]),
            "-serial none: only one -serial is supported (the machine has one UART at 0x3f8)"
        );
        assert_eq!(
            err(&["-chardev", "stdio,id=a", "-chardev", "stdio,id=a"]),
            "-chardev stdio,id=a: Duplicate ID 'a' for chardev"
        );
    }

    #[test]
    fn drive_open_flags() {
        let c = parse(&[
            "-drive",
            "file=a,if=virtio,readonly=on",
            "-drive",
            "file=b,if=virtio,cache=none",
            "-drive",
            "file=c,if=virtio,cache=writethrough",
        ])
        .unwrap();
        assert_eq!(c.drives[0].open_flags(), libc::O_RDONLY);
        assert_eq!(c.drives[1].open_flags(), libc::O_RDWR | libc::O_DIRECT);
        assert_eq!(c.drives[2].open_flags(), libc::O_RDWR);
    }

    #[test]
    fn kernel_companions() {
        let c = parse(&[
            "-kernel",
            "bzImage",
            "-initrd",
            "initrd.img",
            "-append",
            "console=ttyS0 earlyprintk=ttyS0",
        ])
        .unwrap();
        assert_eq!(
            c.kernel,
            Some(KernelConfig {
                kernel: "bzImage".into(),
                initrd: Some("initrd.img".into()),
                cmdline: "console=ttyS0 earlyprintk=ttyS0".into()
            })
        );
        assert_eq!(
            err(&["-initrd", "i"]),
            "-initrd i: -initrd only allowed with -kernel option"
        );
        assert_eq!(
            err(&["-append", "x"]),
            "-append x: -append only allowed with -kernel option"
        );
    }

    #[test]
    fn misc_options() {
        let c = parse(&[
            "-S",
            "-sandbox",
            "off",
            "-add-fd",
            "fd=3,set=2,opaque=rdonly:/path/to/file",
            "-add-fd",
            "fd=4,set=2",
            "-enable-kvm",
            "-vga",
            "none",
            "-net",
            "none",
        ])
        .unwrap();
        assert!(c.start_paused);
        assert_eq!(c.sandbox, SandboxSetting::Off);
        assert_eq!(
            c.add_fds,
            vec![
                AddFdConfig {
                    fd: InheritedFd(3),
                    set: 2,
                    opaque: Some("rdonly:/path/to/file".into())
                },
                AddFdConfig {
                    fd: InheritedFd(4),
                    set: 2,
                    opaque: None
                }
            ]
        );
        assert_eq!(
            err(&["-display", "gtk"]),
            "-display gtk: display 'gtk' is not supported (only 'none')"
        );
        assert_eq!(
            err(&["-open-hook-fd", "3", "-open-hook-fd", "4"]),
            "-open-hook-fd 4: -open-hook-fd given more than once"
        );
        assert_eq!(err(&["-hda", "x"]), "-hda: invalid option");
        assert_eq!(err(&["-bios", ""]), "-bios : empty file name");
        // Last -m wins, as in QEMU.
        assert_eq!(parse(&["-m", "64", "-m", "256"]).unwrap().memory_mib, 256);
    }
}
