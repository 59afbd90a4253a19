//! `-machine`/`-M`, `-accel`, `-cpu`, `-m`, `-smp` (pure).
//!
//! The emulator has one machine, a QEMU `microvm` lookalike, one
//! accelerator (KVM) and passes the host CPU model through, so most of
//! these options only need to be accepted when they ask for what we are.
//! Accepted-and-ignored sub-options are listed in `docs/user-guide.md`.
#![forbid(unsafe_code)]

use super::error::{CliError, Loc};
use super::qemu_opts;
use super::scalar;
use crate::vm_config::{KernelIrqchip, OnOffAuto};

/// The `-machine` sub-options that change the machine (the last one of
/// each wins).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MachineProps {
    pub pit: Option<OnOffAuto>,
    pub pic: Option<OnOffAuto>,
    pub kernel_irqchip: Option<KernelIrqchip>,
}

fn on_off_auto(loc: Loc<'_>, name: &str, v: Option<String>) -> Result<Option<OnOffAuto>, CliError> {
    Ok(match v.as_deref() {
        None => None,
        Some("auto") => Some(OnOffAuto::Auto),
        Some(v) => match scalar::parse_bool(v) {
            Some(true) => Some(OnOffAuto::On),
            Some(false) => Some(OnOffAuto::Off),
            None => {
                return Err(loc.err(format!(
                    "Parameter '{name}' does not accept value '{v}' (on, off or auto)"
                )))
            }
        },
    })
}

fn kernel_irqchip(loc: Loc<'_>, v: Option<String>) -> Result<Option<KernelIrqchip>, CliError> {
    Ok(match v.as_deref() {
        None => None,
        Some("split") => Some(KernelIrqchip::Split),
        Some(v) => match scalar::parse_bool(v) {
            Some(true) => Some(KernelIrqchip::On),
            Some(false) => Some(KernelIrqchip::Off),
            None => {
                return Err(loc.err(format!(
                    "Parameter 'kernel-irqchip' does not accept value '{v}' (on, off or split)"
                )))
            }
        },
    })
}

/// `-machine` sub-options QEMU's microvm has that describe its fixed
/// layout or host tuning; we accept them and ignore their values.
pub const IGNORED_MACHINE_PROPS: &[&str] = &[
    "x-option-roms",
    "rtc",
    "isa-serial",
    "auto-kernel-cmdline",
    "acpi",
    "pcie",
    "usb",
    "graphics",
    "dump-guest-core",
    "mem-merge",
    "x-machine-cpu-hotplug",
];

/// Checks `-machine [type=]microvm[,accel=kvm][,pit=on|off|auto]
/// [,pic=on|off|auto][,ioapic2=off][,kernel-irqchip=on|off|split]
/// [,<ignored>=...]`.
pub fn machine(loc: Loc<'_>) -> Result<MachineProps, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("type"))
        .map_err(|e| loc.opts(e))?
        .reader();
    if let Some(ty) = r.take("type") {
        if ty != "microvm" {
            return Err(loc.err(format!(
                "unsupported machine type '{ty}' (openhook-emulator only has 'microvm')"
            )));
        }
    }
    if let Some(accel) = r.take("accel") {
        check_accel(loc, &accel)?;
    }
    let props = MachineProps {
        pit: on_off_auto(loc, "pit", r.take("pit"))?,
        pic: on_off_auto(loc, "pic", r.take("pic"))?,
        kernel_irqchip: kernel_irqchip(loc, r.take("kernel-irqchip"))?,
    };
    // One IOAPIC: its 24 pins carry the UART and the virtio lines.
    if on_off_auto(loc, "ioapic2", r.take("ioapic2"))? == Some(OnOffAuto::On) {
        return Err(loc.err(
            "ioapic2=on is not supported (the machine has one IOAPIC; its pins 5-23 carry the virtio-mmio lines)",
        ));
    }
    for prop in IGNORED_MACHINE_PROPS {
        r.ignore(prop);
    }
    r.finish().map_err(|e| match e {
        qemu_opts::OptsError::Unknown { name } => {
            loc.err(format!("Property 'microvm-machine.{name}' not found"))
        }
        other => loc.opts(other),
    })?;
    Ok(props)
}

fn check_accel(loc: Loc<'_>, accel: &str) -> Result<(), CliError> {
    // QEMU allows a fallback list "kvm:tcg"; only KVM can be honoured.
    if accel.split(':').any(|a| a == "kvm") {
        Ok(())
    } else {
        Err(loc.err(format!(
            "invalid accelerator {accel} (openhook-emulator only supports kvm)"
        )))
    }
}

/// Checks `-accel kvm[,kernel-irqchip=on|off|split]`; returns
/// `kernel-irqchip` when given.
pub fn accel(loc: Loc<'_>) -> Result<Option<KernelIrqchip>, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("accel"))
        .map_err(|e| loc.opts(e))?
        .reader();
    let accel = r.require("accel").map_err(|e| loc.opts(e))?;
    if accel != "kvm" {
        return Err(loc.err(format!(
            "invalid accelerator {accel} (openhook-emulator only supports kvm)"
        )));
    }
    let chip = kernel_irqchip(loc, r.take("kernel-irqchip"))?;
    r.finish().map_err(|e| loc.opts(e))?;
    Ok(chip)
}

/// Checks `-cpu host[,feature...]` (also `max`). The vCPU gets the host's
/// supported CPUID; feature flags such as `-arch-capabilities` are accepted
/// and ignored because the emulator never copies host MSRs blindly.
pub fn cpu(loc: Loc<'_>) -> Result<(), CliError> {
    let arg = loc.arg.unwrap_or("");
    let model = arg.split(',').next().unwrap_or("");
    match model {
        "host" | "max" => Ok(()),
        other => Err(loc.err(format!("unable to find CPU model '{other}'"))),
    }
}

/// What a `-global` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// A setting that restates what the machine is.
    Nothing,
    /// `virtio-mmio.ioeventfd`: queue notifications through KVM ioeventfds
    /// to an I/O thread (on, QEMU's default) or on the vCPU thread (off).
    Ioeventfd(bool),
}

/// `-global DRIVER.PROP=VALUE`: `virtio-mmio.ioeventfd=on|off` (as QEMU's
/// virtio-mmio property), and `virtio-mmio.force-legacy=false`, which only
/// restates what this machine is (our transports are always virtio 1.x,
/// which QEMU needs this to match).
pub fn global(loc: Loc<'_>) -> Result<Global, CliError> {
    let arg = loc.arg.unwrap_or("");
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| loc.err("Invalid -global: expected DRIVER.PROPERTY=VALUE"))?;
    match name {
        "virtio-mmio.ioeventfd" => scalar::parse_bool(value)
            .map(Global::Ioeventfd)
            .ok_or_else(|| {
                loc.err(format!(
                    "Parameter 'ioeventfd' expects 'on' or 'off' (got '{value}')"
                ))
            }),
        "virtio-mmio.force-legacy" => match scalar::parse_bool(value) {
            Some(false) => Ok(Global::Nothing),
            Some(true) => Err(loc
                .err("virtio-mmio.force-legacy=true is not supported: transports are virtio 1.x")),
            None => Err(loc.err(format!(
                "Parameter 'force-legacy' expects 'on' or 'off' (got '{value}')"
            ))),
        },
        other => Err(loc.err(format!(
            "-global {other}: not supported (only virtio-mmio.ioeventfd and virtio-mmio.force-legacy=false)"
        ))),
    }
}

/// `-m [size=]megs` (suffixes as QEMU, a bare number is MiB) → MiB.
pub fn memory_mib(loc: Loc<'_>) -> Result<u64, CliError> {
    const MIB: u64 = 1 << 20;
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("size"))
        .map_err(|e| loc.opts(e))?
        .reader();
    let bytes = r
        .take_size("size", MIB)
        .map_err(|e| loc.opts(e))?
        .ok_or_else(|| loc.err("missing 'size' option value"))?;
    for hotplug in ["slots", "maxmem"] {
        if r.take(hotplug).is_some() {
            return Err(loc.err(format!(
                "'{hotplug}': memory hotplug is not supported by openhook-emulator"
            )));
        }
    }
    r.finish().map_err(|e| loc.opts(e))?;
    if bytes == 0 {
        return Err(loc.err("memory size must not be zero"));
    }
    if bytes % MIB != 0 {
        return Err(loc.err(format!(
            "memory size must be a multiple of 1 MiB (got {bytes} bytes)"
        )));
    }
    Ok(bytes / MIB)
}

/// `-smp [cpus=]n[,maxcpus=n][,sockets=,dies=,clusters=,cores=,threads=]`.
pub fn smp(loc: Loc<'_>) -> Result<u8, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("cpus"))
        .map_err(|e| loc.opts(e))?
        .reader();
    let cpus = r.take_u64("cpus").map_err(|e| loc.opts(e))?;
    let maxcpus = r.take_u64("maxcpus").map_err(|e| loc.opts(e))?;
    let mut product: Option<u64> = None;
    for level in ["sockets", "dies", "clusters", "cores", "threads"] {
        if let Some(n) = r.take_u64(level).map_err(|e| loc.opts(e))? {
            if n == 0 {
                return Err(loc.err(format!("Invalid CPU topology: {level} must be at least 1")));
            }
            product = Some(product.unwrap_or(1).saturating_mul(n));
        }
    }
    r.finish().map_err(|e| loc.opts(e))?;
    let cpus = match (cpus, maxcpus, product) {
        (Some(c), _, _) => c,
        (None, Some(m), _) => m,
        (None, None, Some(p)) => p,
        (None, None, None) => 1,
    };
    let maxcpus = maxcpus.unwrap_or(cpus);
    if let Some(p) = product {
        if p != maxcpus {
            return Err(loc.err(format!(
                "Invalid CPU topology: product of the hierarchy must match maxcpus: \
                 product {p} != maxcpus {maxcpus}"
            )));
        }
    }
    if maxcpus != cpus {
        return Err(loc.err("CPU hotplug is not supported: maxcpus must equal cpus"));
    }
    if cpus == 0 {
        return Err(loc.err("Invalid SMP CPUs 0"));
    }
    u8::try_from(cpus).map_err(|_| {
        loc.err(format!(
            "Invalid SMP CPUs {cpus}. The max CPUs supported by machine 'microvm' is 255"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc<'a>(option: &'a str, arg: &'a str) -> Loc<'a> {
        Loc {
            option,
            arg: Some(arg),
        }
    }

    #[test]
    fn machine_microvm_with_qemu_sub_options() {
        let none = MachineProps::default();
        let pit = |v| MachineProps {
            pit: Some(v),
            ..none
        };
        assert_eq!(machine(loc("M", "microvm")), Ok(none));
        assert_eq!(
            machine(loc(
                "machine",
                "microvm,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on,accel=kvm"
            )),
            Ok(MachineProps {
                pit: Some(OnOffAuto::Off),
                pic: Some(OnOffAuto::Off),
                kernel_irqchip: None,
            })
        );
        assert_eq!(
            machine(loc("machine", "type=microvm,accel=kvm:tcg")),
            Ok(none)
        );
        assert_eq!(machine(loc("machine", "accel=kvm")), Ok(none));
        assert_eq!(
            machine(loc("M", "microvm,pit=on,pit=auto")),
            Ok(pit(OnOffAuto::Auto))
        );
        assert_eq!(machine(loc("M", "microvm,pit=yes")), Ok(pit(OnOffAuto::On)));
        assert_eq!(
            machine(loc("M", "microvm,pit=maybe"))
                .unwrap_err()
                .to_string(),
            "-M microvm,pit=maybe: Parameter 'pit' does not accept value 'maybe' (on, off or auto)"
        );
        assert_eq!(
            machine(loc("M", "microvm,kernel-irqchip=split,ioapic2=off")),
            Ok(MachineProps {
                kernel_irqchip: Some(KernelIrqchip::Split),
                ..none
            })
        );
        assert!(machine(loc("M", "microvm,ioapic2=on")).is_err());
        assert!(machine(loc("M", "microvm,kernel-irqchip=half")).is_err());
        assert_eq!(
            machine(loc("M", "pc")).unwrap_err().to_string(),
            "-M pc: unsupported machine type 'pc' (openhook-emulator only has 'microvm')"
        );
        assert_eq!(
            machine(loc("M", "microvm,foo=1")).unwrap_err().to_string(),
            "-M microvm,foo=1: Property 'microvm-machine.foo' not found"
        );
        assert!(machine(loc("M", "microvm,accel=tcg")).is_err());
    }

    #[test]
    fn accel_and_cpu() {
        assert_eq!(accel(loc("accel", "kvm")), Ok(None));
        assert_eq!(
            accel(loc("accel", "kvm,kernel-irqchip=split")),
            Ok(Some(KernelIrqchip::Split))
        );
        assert_eq!(
            accel(loc("accel", "kvm,kernel-irqchip=on")),
            Ok(Some(KernelIrqchip::On))
        );
        assert_eq!(
            accel(loc("accel", "kvm,kernel-irqchip=off")),
            Ok(Some(KernelIrqchip::Off))
        );
        assert!(accel(loc("accel", "kvm,kernel-irqchip=maybe")).is_err());
        assert_eq!(
            accel(loc("accel", "tcg")).unwrap_err().to_string(),
            "-accel tcg: invalid accelerator tcg (openhook-emulator only supports kvm)"
        );
        assert_eq!(cpu(loc("cpu", "host")), Ok(()));
        assert_eq!(cpu(loc("cpu", "host,-arch-capabilities")), Ok(()));
        assert_eq!(cpu(loc("cpu", "max")), Ok(()));
        assert_eq!(
            cpu(loc("cpu", "qemu64")).unwrap_err().to_string(),
            "-cpu qemu64: unable to find CPU model 'qemu64'"
        );
    }

    #[test]
    fn global_restating_modern_virtio_mmio() {
        assert_eq!(
            global(loc("global", "virtio-mmio.force-legacy=false")),
            Ok(Global::Nothing)
        );
        assert_eq!(
            global(loc("global", "virtio-mmio.force-legacy=off")),
            Ok(Global::Nothing)
        );
        assert_eq!(
            global(loc("global", "virtio-mmio.ioeventfd=off")),
            Ok(Global::Ioeventfd(false))
        );
        assert_eq!(
            global(loc("global", "virtio-mmio.ioeventfd=on")),
            Ok(Global::Ioeventfd(true))
        );
        assert!(global(loc("global", "virtio-mmio.ioeventfd=maybe")).is_err());
        assert!(global(loc("global", "virtio-mmio.force-legacy=true")).is_err());
        assert!(global(loc("global", "virtio-mmio.force-legacy=x")).is_err());
        assert!(global(loc("global", "kvm-pit.lost_tick_policy=discard")).is_err());
        assert!(global(loc("global", "nonsense")).is_err());
    }

    #[test]
    fn memory_in_qemu_syntax() {
        assert_eq!(memory_mib(loc("m", "128")), Ok(128));
        assert_eq!(memory_mib(loc("m", "128M")), Ok(128));
        assert_eq!(memory_mib(loc("m", "1G")), Ok(1024));
        assert_eq!(memory_mib(loc("m", "size=512M")), Ok(512));
        assert_eq!(memory_mib(loc("m", "size=2g")), Ok(2048));
        assert_eq!(memory_mib(loc("m", "0.5G")), Ok(512));
        assert_eq!(
            memory_mib(loc("m", "12x")).unwrap_err().to_string(),
            "-m 12x: Parameter 'size' expects a non-negative number below 2^64"
        );
        assert_eq!(
            memory_mib(loc("m", "1000K")).unwrap_err().to_string(),
            "-m 1000K: memory size must be a multiple of 1 MiB (got 1024000 bytes)"
        );
        assert!(memory_mib(loc("m", "0")).is_err());
        assert!(memory_mib(loc("m", "1G,maxmem=4G")).is_err());
        assert!(memory_mib(loc("m", "1G,foo=1")).is_err());
    }

    #[test]
    fn smp_forms() {
        assert_eq!(smp(loc("smp", "1")), Ok(1));
        assert_eq!(smp(loc("smp", "cpus=4")), Ok(4));
        assert_eq!(smp(loc("smp", "2,sockets=1,cores=2,threads=1")), Ok(2));
        assert_eq!(smp(loc("smp", "sockets=2,cores=2")), Ok(4));
        assert_eq!(smp(loc("smp", "4,maxcpus=4")), Ok(4));
        assert!(smp(loc("smp", "2,maxcpus=4")).is_err());
        assert!(smp(loc("smp", "3,sockets=2,cores=2")).is_err());
        assert!(smp(loc("smp", "0")).is_err());
        assert_eq!(
            smp(loc("smp", "256")).unwrap_err().to_string(),
            "-smp 256: Invalid SMP CPUs 256. The max CPUs supported by machine 'microvm' is 255"
        );
        assert!(smp(loc("smp", "x")).is_err());
    }
}
