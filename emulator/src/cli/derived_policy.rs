//! The broker policy an emulator derives from its own command line when it
//! is started without `-open-hook-fd` and with the sandbox on
//! (docs/decisions/direct-launch-reexec.md; the format is docs/policy.md's).
//! Pure: the re-exec
//! as `openhook-broker` is done by `main.rs`.
//!
//! Rules, all exact files (no directory rules):
//! - `/dev/kvm`: `rw`, types `["char"]`;
//! - `-bios`, `-kernel`, `-initrd`: `r`;
//! - each `-drive`: `r` when `readonly=on`, else `rw`; types file or block;
//! - file chardevs and `-serial file:`: `w` with `create = true`, types
//!   file, char or fifo (`/dev/null`, a tty, a pipe also work);
//! - `/dev/fdset/N` paths are skipped: they never reach the broker.
//!
//! The same path named twice gets one rule with the union of the rights.
//! Paths must already be absolute (`cli::paths::absolutize`).
//!
//! Server-mode unix socket chardevs (`path=P,server=on`) become `[[listen]]`
//! entries; [`DerivedPolicy::listens`] says which fd each will arrive on, so
//! the re-exec can hand the chardev `fd=N` instead of `path=P`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::CliError;
use crate::fds::fdset::FDSET_PREFIX;
use crate::vm_config::{
    ChardevBackend, InheritedFd, MachineConfig, SerialConfig, SocketAddrConfig,
};

/// Lowest fd number given to a derived `[[listen]]` socket.
pub const FIRST_LISTEN_FD: i32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    R,
    W,
    Rw,
}

impl Access {
    fn union(self, other: Access) -> Access {
        if self == other {
            self
        } else {
            Access::Rw
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Access::R => "r",
            Access::W => "w",
            Access::Rw => "rw",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    path: PathBuf,
    access: Access,
    create: bool,
    types: Vec<&'static str>,
}

/// A `[[listen]]` the derived policy asks the broker to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedListen {
    pub chardev: String,
    pub path: PathBuf,
    pub fd: i32,
}

/// The derived policy text and what the re-exec must know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedPolicy {
    pub toml: String,
    pub listens: Vec<DerivedListen>,
}

/// Every fd number the command line names (`-add-fd fd=N`, chardev
/// `fd=N`, activated listeners): the re-exec passes them through at the
/// same numbers.
pub fn passthrough_fds(cfg: &MachineConfig) -> Vec<i32> {
    let mut fds: Vec<i32> = cfg.add_fds.iter().map(|a| a.fd.0).collect();
    for c in &cfg.chardevs {
        if let ChardevBackend::Socket(s) = &c.backend {
            if let SocketAddrConfig::Fd(InheritedFd(n))
            | SocketAddrConfig::Activated(InheritedFd(n)) = s.addr
            {
                fds.push(n);
            }
        }
    }
    fds.sort_unstable();
    fds.dedup();
    fds
}

fn is_fdset(p: &Path) -> bool {
    p.as_os_str()
        .as_encoded_bytes()
        .starts_with(FDSET_PREFIX.as_bytes())
}

/// Builds the policy for `cfg` (paths already absolute).
pub fn derive(cfg: &MachineConfig) -> Result<DerivedPolicy, CliError> {
    let rules = file_rules(cfg);
    let listens = derived_listens(cfg)?;
    let toml = render(&rules, &listens)?;
    Ok(DerivedPolicy { toml, listens })
}

/// One exact-file rule per file the command line names (fd-set paths
/// skipped), rights merged when a path comes twice.
fn file_rules(cfg: &MachineConfig) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut add = |path: &Path, access: Access, create: bool, types: &[&'static str]| {
        if is_fdset(path) {
            return;
        }
        match rules.iter_mut().find(|r| r.path == path) {
            Some(r) => {
                r.access = r.access.union(access);
                r.create |= create;
                for t in types {
                    if !r.types.contains(t) {
                        r.types.push(t);
                    }
                }
            }
            None => rules.push(Rule {
                path: path.to_path_buf(),
                access,
                create,
                types: types.to_vec(),
            }),
        }
    };
    const FILE: &[&str] = &["file"];
    const DISK: &[&str] = &["file", "block"];
    const OUTPUT: &[&str] = &["file", "char", "fifo"];

    add(Path::new("/dev/kvm"), Access::Rw, false, &["char"]);
    if let Some(f) = &cfg.firmware {
        add(f, Access::R, false, FILE);
    }
    if let Some(k) = &cfg.kernel {
        add(&k.kernel, Access::R, false, FILE);
        if let Some(i) = &k.initrd {
            add(i, Access::R, false, FILE);
        }
    }
    for d in &cfg.drives {
        let access = if d.readonly { Access::R } else { Access::Rw };
        add(&d.path, access, false, DISK);
    }
    if let SerialConfig::File(p) = &cfg.serial {
        add(p, Access::W, true, OUTPUT);
    }
    for c in &cfg.chardevs {
        if let ChardevBackend::File { path } = &c.backend {
            add(path, Access::W, true, OUTPUT);
        }
    }
    rules
}

/// A `[[listen]]` per server-mode unix socket chardev, at fd numbers above
/// every passed-through one.
fn derived_listens(cfg: &MachineConfig) -> Result<Vec<DerivedListen>, CliError> {
    let mut next_fd = passthrough_fds(cfg)
        .last()
        .map_or(FIRST_LISTEN_FD, |m| (m + 1).max(FIRST_LISTEN_FD));
    let mut listens = Vec::new();
    for c in &cfg.chardevs {
        if let ChardevBackend::Socket(s) = &c.backend {
            if let (SocketAddrConfig::Unix(p), true) = (&s.addr, s.server) {
                // Paths are normalised, so only `/` itself can name a
                // directory here; the broker would refuse the listener.
                if p == Path::new("/") {
                    return Err(CliError::global(format!(
                        "chardev '{}': /: names the root directory, not a socket path",
                        c.id
                    )));
                }
                listens.push(DerivedListen {
                    chardev: c.id.clone(),
                    path: p.clone(),
                    fd: next_fd,
                });
                next_fd += 1;
            }
        }
    }
    Ok(listens)
}

/// The policy text.
fn render(rules: &[Rule], listens: &[DerivedListen]) -> Result<String, CliError> {
    let mut allow = Vec::with_capacity(rules.len());
    for r in rules {
        // A policy rule for `/` covers the whole tree (docs/policy.md), so
        // a file option naming `/` would grant every file.
        if r.path == Path::new("/") {
            return Err(CliError::global(
                "/: names the root directory, not a file (the derived policy grants named files only)",
            ));
        }
        allow.push(AllowEntry {
            path: policy_path(&r.path)?,
            access: r.access.as_str(),
            create: r.create,
            types: (r.types != ["file"]).then(|| r.types.clone()),
        });
    }
    let listen = listens
        .iter()
        .map(|l| {
            Ok(ListenEntry {
                path: policy_path(&l.path)?,
                fd: l.fd,
            })
        })
        .collect::<Result<_, CliError>>()?;
    let doc = PolicyDocument {
        version: 1,
        deny_errno: "EACCES",
        allow,
        listen,
        sandbox: SandboxTable { mode: "require" },
    };
    let body = toml::to_string(&doc)
        .map_err(|e| CliError::global(format!("writing the derived policy: {e}")))?;
    Ok(format!(
        "# Derived by openhook-emulator from its own command line.\n{body}"
    ))
}

/// The policy file's shape, as far as a derived policy uses it
/// (docs/policy.md); serialised with the `toml` crate.
#[derive(Serialize)]
struct PolicyDocument {
    version: i64,
    deny_errno: &'static str,
    allow: Vec<AllowEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    listen: Vec<ListenEntry>,
    sandbox: SandboxTable,
}

#[derive(Serialize)]
struct AllowEntry {
    path: String,
    access: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    create: bool,
    /// Omitted for the default, `["file"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    types: Option<Vec<&'static str>>,
}

#[derive(Serialize)]
struct ListenEntry {
    path: String,
    fd: i32,
}

#[derive(Serialize)]
struct SandboxTable {
    mode: &'static str,
}

/// `path` as policy text: absolute and UTF-8, or an error naming it.
fn policy_path(path: &Path) -> Result<String, CliError> {
    let text = path
        .to_str()
        .ok_or_else(|| CliError::global(format!("{}: path is not valid UTF-8", path.display())))?;
    if !path.is_absolute() {
        return Err(CliError::global(format!("{text}: path is not absolute")));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_command_line, paths};

    fn cfg(words: &[&str]) -> MachineConfig {
        let mut c = parse_command_line(words.iter().map(std::ffi::OsString::from), &[]).unwrap();
        paths::absolutize(&mut c, Path::new("/work")).unwrap();
        c
    }

    #[test]
    fn issue_5_example() {
        let c = cfg(&[
            "-bios",
            "fw.bin",
            "-kernel",
            "/boot/vmlinuz",
            "-initrd",
            "/boot/initrd.img",
            "-drive",
            "file=/srv/vm1/disk.img,if=virtio",
            "-drive",
            "file=/srv/vm1/base.img,if=virtio,readonly=on",
            "-drive",
            "file=/dev/fdset/1,if=virtio",
            "-serial",
            "file:/var/log/vm1/serial.log",
            "-chardev",
            "file,id=dbg,path=/var/log/vm1/debug.log",
            "-chardev",
            "socket,id=mon,fd=3,server,nowait",
            "-mon",
            "mon,mode=control",
            "-add-fd",
            "fd=12,set=1",
            "-qmp",
            "unix:/run/vm1/qmp.sock,server=on,wait=off",
        ]);
        let d = derive(&c).unwrap();
        assert_eq!(
            d.toml,
            r#"# Derived by openhook-emulator from its own command line.
version = 1
deny_errno = "EACCES"

[[allow]]
path = "/dev/kvm"
access = "rw"
types = ["char"]

[[allow]]
path = "/work/fw.bin"
access = "r"

[[allow]]
path = "/boot/vmlinuz"
access = "r"

[[allow]]
path = "/boot/initrd.img"
access = "r"

[[allow]]
path = "/srv/vm1/disk.img"
access = "rw"
types = ["file", "block"]

[[allow]]
path = "/srv/vm1/base.img"
access = "r"
types = ["file", "block"]

[[allow]]
path = "/var/log/vm1/serial.log"
access = "w"
create = true
types = ["file", "char", "fifo"]

[[allow]]
path = "/var/log/vm1/debug.log"
access = "w"
create = true
types = ["file", "char", "fifo"]

[[listen]]
path = "/run/vm1/qmp.sock"
fd = 13

[sandbox]
mode = "require"
"#
        );
        assert_eq!(
            d.listens,
            vec![DerivedListen {
                chardev: "compat_monitor0".into(),
                path: "/run/vm1/qmp.sock".into(),
                fd: 13
            }]
        );
        assert_eq!(passthrough_fds(&c), vec![3, 12]);
        // The text is valid TOML of the shape docs/policy.md describes.
        let v: toml::Value = toml::from_str(&d.toml).unwrap();
        assert_eq!(v["version"].as_integer(), Some(1));
        assert_eq!(v["allow"].as_array().unwrap().len(), 8);
        assert!(!d.toml.contains("fdset"));
    }

    #[test]
    fn same_path_merges_rights() {
        let c = cfg(&[
            "-drive",
            "file=/d.img,if=none,id=a,readonly=on",
            "-device",
            "virtio-blk-device,drive=a",
            "-drive",
            "file=/d.img,if=virtio",
            "-serial",
            "file:/d.img",
        ]);
        let d = derive(&c).unwrap();
        assert_eq!(d.toml.matches("path = \"/d.img\"").count(), 1);
        assert!(d.toml.contains(
            "path = \"/d.img\"\naccess = \"rw\"\ncreate = true\ntypes = [\"file\", \"block\", \"char\", \"fifo\"]\n"
        ));
    }

    #[test]
    fn minimal_and_escaping() {
        let d = derive(&MachineConfig::default()).unwrap();
        let v: toml::Value = toml::from_str(&d.toml).unwrap();
        assert_eq!(v["allow"].as_array().unwrap().len(), 1);
        assert_eq!(v["allow"][0]["path"].as_str(), Some("/dev/kvm"));
        assert_eq!(v["sandbox"]["mode"].as_str(), Some("require"));
        let c = cfg(&["-bios", "/a \"b\"\\c\u{7}.bin"]);
        let d = derive(&c).unwrap();
        let v: toml::Value = toml::from_str(&d.toml).unwrap();
        assert_eq!(v["allow"][1]["path"].as_str(), Some("/a \"b\"\\c\u{7}.bin"));
        let rel = MachineConfig {
            firmware: Some("fw.bin".into()),
            ..MachineConfig::default()
        };
        assert!(derive(&rel).is_err());
    }

    /// Found by the `qemu_opts` fuzz target: `-bios /` derived the rule
    /// `path = "/"`, which the broker reads as the whole tree.
    #[test]
    fn the_root_directory_is_never_a_derived_rule() {
        for words in [
            &["-bios", "/"][..],
            &["-drive", "file=/,if=virtio"],
            &["-serial", "file:/"],
            &["-kernel", "/", "-initrd", "/boot/initrd.img"],
            // Found by the qemu_opts fuzz target (CI, 2026-12-02): the
            // broker refused the derived `[[listen]] path = "/"`.
            &["-qmp", "unix:/,server,nowait"],
            &["-chardev", "socket,id=m,path=/,server=on,wait=off"],
        ] {
            let err = derive(&cfg(words)).expect_err("refused");
            assert!(
                err.to_string().contains("names the root directory"),
                "{err}"
            );
        }
    }
}
