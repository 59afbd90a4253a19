//! `-drive` and `-device` (pure): what each says, before cross-checks.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use super::error::{CliError, Loc};
use super::qemu_opts;
use crate::vm_config::{CacheMode, DebugExitConfig};

/// `-drive if=`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// Creates its virtio-blk device implicitly.
    Virtio,
    /// Needs `-device virtio-blk-device,drive=ID`.
    None,
}

/// One `-drive`, validated on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveSpec {
    pub id: Option<String>,
    pub iface: Interface,
    pub path: PathBuf,
    pub readonly: bool,
    pub cache: CacheMode,
}

/// One `-device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    VirtioBlk { drive: String },
    DebugExit(DebugExitConfig),
}

/// QEMU's `id_wellformed`: a letter, then letters, digits, `-`, `.`, `_`.
pub fn id_wellformed(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Takes and checks an `id=` parameter.
pub fn take_id(r: &mut qemu_opts::OptsReader, loc: Loc<'_>) -> Result<Option<String>, CliError> {
    match r.take("id") {
        Some(id) if !id_wellformed(&id) => Err(loc.err("Parameter 'id' expects an identifier")),
        other => Ok(other),
    }
}

/// `-drive file=,format=raw,if=virtio|none,id=,readonly=on,cache=`.
pub fn drive(loc: Loc<'_>) -> Result<DriveSpec, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), None)
        .map_err(|e| loc.opts(e))?
        .reader();
    let id = take_id(&mut r, loc)?;
    let iface = match r.take("if").as_deref() {
        Some("virtio") => Interface::Virtio,
        Some("none") => Interface::None,
        Some(other @ ("ide" | "scsi" | "floppy" | "pflash" | "mtd" | "sd" | "xen")) => {
            return Err(loc.err(format!(
                "machine type does not support if={other} (use if=virtio or if=none)"
            )))
        }
        Some(other) => return Err(loc.err(format!("unsupported bus type '{other}'"))),
        None => {
            return Err(loc.err(
                "machine type does not support if=ide,bus=0,unit=0 (use if=virtio or if=none)",
            ))
        }
    };
    match r.take("format").as_deref() {
        // Without format= QEMU probes; we never probe and read the file raw.
        None | Some("raw") => {}
        Some(other) => {
            return Err(loc.err(format!(
                "Block format '{other}' is not supported (only 'raw')"
            )))
        }
    }
    match r.take("media").as_deref() {
        None | Some("disk") => {}
        Some(other) => return Err(loc.err(format!("'{other}' invalid media (only 'disk')"))),
    }
    // Only synchronous I/O exists; `aio=threads` is what it does.
    match r.take("aio").as_deref() {
        None | Some("threads") => {}
        Some(other) => return Err(loc.err(format!("invalid aio option '{other}'"))),
    }
    let readonly = r
        .take_bool("readonly")
        .map_err(|e| loc.opts(e))?
        .unwrap_or(false);
    let cache = match r.take("cache").as_deref() {
        None | Some("writeback") => CacheMode::Writeback,
        Some("none") | Some("off") => CacheMode::None,
        Some("writethrough") => CacheMode::Writethrough,
        Some("directsync") => CacheMode::Directsync,
        Some("unsafe") => CacheMode::Unsafe,
        Some(_) => return Err(loc.err("invalid cache option")),
    };
    let file = r.take("file");
    r.finish().map_err(|e| loc.opts(e))?;
    let path = match file {
        Some(f) if !f.is_empty() => PathBuf::from(f),
        _ => return Err(loc.err("Device needs media, but drive is empty (file= missing)")),
    };
    Ok(DriveSpec {
        id,
        iface,
        path,
        readonly,
        cache,
    })
}

/// `-device virtio-blk-device,drive=ID` | `-device isa-debug-exit,iobase=,iosize=`.
pub fn device(loc: Loc<'_>) -> Result<DeviceSpec, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("driver"))
        .map_err(|e| loc.opts(e))?
        .reader();
    let driver = r.require("driver").map_err(|e| loc.opts(e))?;
    take_id(&mut r, loc)?;
    let spec = match driver.as_str() {
        "virtio-blk-device" => {
            let drive = r
                .take("drive")
                .ok_or_else(|| loc.err("drive property not set"))?;
            DeviceSpec::VirtioBlk { drive }
        }
        "isa-debug-exit" => {
            // QEMU's defaults: iobase 0x501, iosize 0x02.
            let iobase = r
                .take_u64("iobase")
                .map_err(|e| loc.opts(e))?
                .unwrap_or(0x501);
            let iosize = r
                .take_u64("iosize")
                .map_err(|e| loc.opts(e))?
                .unwrap_or(0x02);
            let iobase = u16::try_from(iobase)
                .map_err(|_| loc.err(format!("iobase {iobase:#x} is not an I/O port")))?;
            let iosize = u16::try_from(iosize)
                .ok()
                .filter(|s| matches!(s, 1 | 2 | 4))
                .ok_or_else(|| loc.err(format!("iosize {iosize} must be 1, 2 or 4")))?;
            if u32::from(iobase) + u32::from(iosize) > 0x1_0000 {
                return Err(loc.err("iobase + iosize is beyond the I/O port space"));
            }
            DeviceSpec::DebugExit(DebugExitConfig { iobase, iosize })
        }
        "virtio-blk" | "virtio-blk-pci" => {
            return Err(loc.err(format!(
                "'{driver}' needs a PCI bus; on microvm use 'virtio-blk-device'"
            )))
        }
        other => return Err(loc.err(format!("'{other}' is not a valid device model name"))),
    };
    r.finish().map_err(|e| match e {
        qemu_opts::OptsError::Unknown { name } => {
            loc.err(format!("Property '{driver}.{name}' not found"))
        }
        other => loc.opts(other),
    })?;
    Ok(spec)
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
    fn ids() {
        for good in ["a", "d0", "drive-virtio-disk0", "x.y_z"] {
            assert!(id_wellformed(good), "{good}");
        }
        for bad in ["", "0d", "-a", "a b", "a,b", "é"] {
            assert!(!id_wellformed(bad), "{bad}");
        }
    }

    #[test]
    fn drive_qemu_spellings() {
        let d = drive(loc(
            "drive",
            "file=/srv/vm1/disk.img,format=raw,if=none,id=d0,readonly=on,cache=none",
        ))
        .unwrap();
        assert_eq!(
            d,
            DriveSpec {
                id: Some("d0".into()),
                iface: Interface::None,
                path: "/srv/vm1/disk.img".into(),
                readonly: true,
                cache: CacheMode::None,
            }
        );
        let d = drive(loc("drive", "if=virtio,file=a,,b.img")).unwrap();
        assert_eq!(d.path, PathBuf::from("a,b.img"));
        assert_eq!(d.iface, Interface::Virtio);
        assert!(!d.readonly);
        assert_eq!(d.cache, CacheMode::Writeback);
        let d = drive(loc(
            "drive",
            "file=/dev/fdset/1,if=none,id=x,cache=directsync",
        ))
        .unwrap();
        assert_eq!(d.cache, CacheMode::Directsync);
        assert!(d.cache.direct());
    }

    #[test]
    fn drive_errors() {
        let cases = [
            (
                "file=x",
                "-drive file=x: machine type does not support if=ide,bus=0,unit=0 \
                 (use if=virtio or if=none)",
            ),
            (
                "file=x,if=virtio,format=qcow2",
                "-drive file=x,if=virtio,format=qcow2: Block format 'qcow2' is not supported (only 'raw')",
            ),
            (
                "file=x,if=virtio,foo=bar",
                "-drive file=x,if=virtio,foo=bar: Invalid parameter 'foo'",
            ),
            (
                "file=x,if=virtio,readonly=maybe",
                "-drive file=x,if=virtio,readonly=maybe: Parameter 'readonly' expects 'on' or 'off'",
            ),
            (
                "file=x,if=virtio,cache=fast",
                "-drive file=x,if=virtio,cache=fast: invalid cache option",
            ),
            (
                "file=x,if=virtio,id=1x",
                "-drive file=x,if=virtio,id=1x: Parameter 'id' expects an identifier",
            ),
            (
                "if=virtio",
                "-drive if=virtio: Device needs media, but drive is empty (file= missing)",
            ),
        ];
        for (arg, want) in cases {
            assert_eq!(drive(loc("drive", arg)).unwrap_err().to_string(), want);
        }
        assert!(drive(loc("drive", "file=x,if=ide")).is_err());
        assert!(drive(loc("drive", "file=x,if=virtio,media=cdrom")).is_err());
    }

    #[test]
    fn devices() {
        assert_eq!(
            device(loc("device", "virtio-blk-device,drive=d0")),
            Ok(DeviceSpec::VirtioBlk { drive: "d0".into() })
        );
        assert_eq!(
            device(loc("device", "isa-debug-exit,iobase=0xf4,iosize=4")),
            Ok(DeviceSpec::DebugExit(DebugExitConfig {
                iobase: 0xf4,
                iosize: 4
            }))
        );
        assert_eq!(
            device(loc("device", "isa-debug-exit")),
            Ok(DeviceSpec::DebugExit(DebugExitConfig {
                iobase: 0x501,
                iosize: 2
            }))
        );
        assert_eq!(
            device(loc(
                "device",
                "driver=isa-debug-exit,iobase=244,iosize=0x04"
            )),
            Ok(DeviceSpec::DebugExit(DebugExitConfig {
                iobase: 0xf4,
                iosize: 4
            }))
        );
        assert_eq!(
            device(loc("device", "e1000")).unwrap_err().to_string(),
            "-device e1000: 'e1000' is not a valid device model name"
        );
        assert_eq!(
            device(loc("device", "virtio-blk-device"))
                .unwrap_err()
                .to_string(),
            "-device virtio-blk-device: drive property not set"
        );
        assert_eq!(
            device(loc("device", "virtio-blk-device,drive=d0,foo=1"))
                .unwrap_err()
                .to_string(),
            "-device virtio-blk-device,drive=d0,foo=1: Property 'virtio-blk-device.foo' not found"
        );
        assert!(device(loc("device", "isa-debug-exit,iobase=0x10000")).is_err());
        assert!(device(loc("device", "isa-debug-exit,iosize=3")).is_err());
        assert!(device(loc("device", "isa-debug-exit,iobase=0xffff,iosize=4")).is_err());
        assert!(device(loc("device", "virtio-blk,drive=d0")).is_err());
    }
}
