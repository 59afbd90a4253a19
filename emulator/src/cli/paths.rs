//! Makes the paths of a configuration absolute (pure): the broker refuses
//! relative paths and `.`/`..` components, while QEMU users write
//! `-bios fw.bin`. Relative paths are joined to the start-up directory and
//! `.` components dropped (a no-op for the kernel too); `..` is refused
//! rather than resolved lexically, which symlinks would make wrong.
//! `/dev/fdset/N` names are left alone.
#![forbid(unsafe_code)]

use std::path::{Component, Path, PathBuf};

use super::error::CliError;
use crate::fds::fdset::FDSET_PREFIX;
use crate::vm_config::{ChardevBackend, MachineConfig, SerialConfig, SocketAddrConfig};

/// `path` made absolute against `cwd` (itself absolute); `/dev/fdset/N`
/// names are left alone.
pub fn absolute(cwd: &Path, path: &Path) -> Result<PathBuf, CliError> {
    if path
        .as_os_str()
        .as_encoded_bytes()
        .starts_with(FDSET_PREFIX.as_bytes())
    {
        return Ok(path.to_path_buf());
    }
    normalise(cwd, path)
}

/// `path` made absolute against `cwd`, with no exception: for unix socket
/// paths, which are bound or connected, never looked up in an fd set.
fn normalise(cwd: &Path, path: &Path) -> Result<PathBuf, CliError> {
    let joined = cwd.join(path);
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(CliError::global(format!(
                    "{}: paths with '..' are not supported (the broker resolves \
                     paths beneath its rules); give the path without '..'",
                    path.display()
                )))
            }
            Component::Prefix(_) => {
                return Err(CliError::global(format!(
                    "{}: unsupported path",
                    path.display()
                )))
            }
        }
    }
    if !joined.has_root() {
        return Err(CliError::global(format!(
            "{}: the current directory is not absolute",
            path.display()
        )));
    }
    Ok(out)
}

/// Rewrites every file path in `cfg` with [`absolute`].
pub fn absolutize(cfg: &mut MachineConfig, cwd: &Path) -> Result<(), CliError> {
    let fix = |p: &mut PathBuf| -> Result<(), CliError> {
        *p = absolute(cwd, p)?;
        Ok(())
    };
    if let Some(f) = &mut cfg.firmware {
        fix(f)?;
    }
    if let Some(k) = &mut cfg.kernel {
        fix(&mut k.kernel)?;
        if let Some(i) = &mut k.initrd {
            fix(i)?;
        }
    }
    for d in &mut cfg.drives {
        fix(&mut d.path)?;
    }
    if let SerialConfig::File(p) = &mut cfg.serial {
        fix(p)?;
    }
    for c in &mut cfg.chardevs {
        match &mut c.backend {
            ChardevBackend::File { path } => fix(path)?,
            ChardevBackend::Socket(s) => {
                if let SocketAddrConfig::Unix(p) = &mut s.addr {
                    *p = normalise(cwd, p)?;
                }
            }
            ChardevBackend::Stdio => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_cleans() {
        let cwd = Path::new("/home/u/vm");
        let a = |p: &str| absolute(cwd, Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(a("fw.bin").unwrap(), "/home/u/vm/fw.bin");
        assert_eq!(a("./fw.bin").unwrap(), "/home/u/vm/fw.bin");
        assert_eq!(a("img/./disk.img").unwrap(), "/home/u/vm/img/disk.img");
        assert_eq!(a("/srv//vm1/disk.img").unwrap(), "/srv/vm1/disk.img");
        assert_eq!(a("/dev/fdset/3").unwrap(), "/dev/fdset/3");
        assert!(a("../fw.bin").is_err());
        assert!(a("/srv/../etc/passwd").is_err());
        assert!(absolute(Path::new("rel"), Path::new("x")).is_err());
    }

    /// Found by the `qemu_opts` fuzz target: a socket path under
    /// `/dev/fdset/` kept its `//`, so the derived policy's `[[listen]]`
    /// was refused by the broker. Socket paths are never fd-set names.
    #[test]
    fn socket_paths_under_dev_fdset_are_normalised() {
        let mut cfg = crate::cli::parse_command_line(
            ["-qmp", "unix:/dev/fdset//run/vm1/qmp.sock,server,nowait"]
                .iter()
                .map(std::ffi::OsString::from),
            &[],
        )
        .unwrap();
        absolutize(&mut cfg, Path::new("/w")).unwrap();
        let ChardevBackend::Socket(s) = &cfg.chardevs[0].backend else {
            panic!("a socket chardev")
        };
        assert_eq!(
            s.addr,
            SocketAddrConfig::Unix("/dev/fdset/run/vm1/qmp.sock".into())
        );
    }

    #[test]
    fn rewrites_every_path() {
        let mut cfg = crate::cli::parse_command_line(
            [
                "-bios",
                "fw.bin",
                "-kernel",
                "k",
                "-initrd",
                "i",
                "-drive",
                "file=d.img,if=virtio",
                "-serial",
                "file:s.log",
                "-chardev",
                "file,id=f,path=f.log",
                "-chardev",
                "socket,id=q,path=q.sock,server,nowait",
                "-drive",
                "file=/dev/fdset/1,if=virtio",
            ]
            .iter()
            .map(std::ffi::OsString::from),
            &[],
        )
        .unwrap();
        absolutize(&mut cfg, Path::new("/w")).unwrap();
        assert_eq!(cfg.firmware, Some("/w/fw.bin".into()));
        let k = cfg.kernel.as_ref().unwrap();
        assert_eq!(k.kernel, PathBuf::from("/w/k"));
        assert_eq!(k.initrd, Some("/w/i".into()));
        assert_eq!(cfg.drives[0].path, PathBuf::from("/w/d.img"));
        assert_eq!(cfg.drives[1].path, PathBuf::from("/dev/fdset/1"));
        assert_eq!(cfg.serial, SerialConfig::File("/w/s.log".into()));
        assert_eq!(
            cfg.chardevs[0].backend,
            ChardevBackend::File {
                path: "/w/f.log".into()
            }
        );
        let ChardevBackend::Socket(s) = &cfg.chardevs[1].backend else {
            panic!()
        };
        assert_eq!(s.addr, SocketAddrConfig::Unix("/w/q.sock".into()));
    }
}
