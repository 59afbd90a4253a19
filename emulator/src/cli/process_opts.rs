//! `-name`, `-sandbox`, `-open-hook-fd`, `-add-fd` (pure).
#![forbid(unsafe_code)]

use super::error::{CliError, Loc};
use super::qemu_opts;
use crate::vm_config::{AddFdConfig, InheritedFd, SandboxSetting};

pub const ADD_FD_FD_REQUIRED: &str = "fd option is required and must be non-negative";
pub const ADD_FD_STDIO: &str = "fd cannot be a standard I/O stream";
pub const ADD_FD_SET_REQUIRED: &str = "set option is required and must be non-negative";
pub use crate::fds::inherited::ADD_FD_NOT_VALID;

/// `-name [guest=]NAME[,process=P][,debug-threads=on|off]`. `process` and
/// `debug-threads` are accepted and ignored (thread and process names are
/// not changed).
pub fn name(loc: Loc<'_>) -> Result<String, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("guest"))
        .map_err(|e| loc.opts(e))?
        .reader();
    let guest = r.take("guest").unwrap_or_default();
    r.ignore("process");
    r.take_bool("debug-threads").map_err(|e| loc.opts(e))?;
    r.finish().map_err(|e| loc.opts(e))?;
    Ok(guest)
}

/// `-sandbox on|off[,obsolete=deny][,elevateprivileges=deny|children]
/// [,spawn=deny][,resourcecontrol=deny]`. The openhook sandbox always denies
/// all four, so their `deny` values are accepted and `allow` is refused
/// while the sandbox is on.
pub fn sandbox(loc: Loc<'_>) -> Result<SandboxSetting, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), Some("enable"))
        .map_err(|e| loc.opts(e))?
        .reader();
    let on = r
        .take_bool("enable")
        .map_err(|e| loc.opts(e))?
        .ok_or_else(|| loc.err("Parameter 'enable' is missing"))?;
    for key in ["obsolete", "elevateprivileges", "spawn", "resourcecontrol"] {
        let Some(value) = r.take(key) else { continue };
        let known = match key {
            "elevateprivileges" => matches!(value.as_str(), "allow" | "deny" | "children"),
            _ => matches!(value.as_str(), "allow" | "deny"),
        };
        if !known {
            return Err(loc.err(format!("invalid argument for {key}")));
        }
        if on && value == "allow" {
            return Err(loc.err(format!(
                "{key}=allow is not supported: the openhook sandbox always denies it"
            )));
        }
    }
    r.finish().map_err(|e| loc.opts(e))?;
    Ok(if on {
        SandboxSetting::On
    } else {
        SandboxSetting::Off
    })
}

/// `-open-hook-fd N` (a decimal fd number).
pub fn open_hook_fd(loc: Loc<'_>) -> Result<InheritedFd, CliError> {
    let text = loc.arg.unwrap_or("");
    text.parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .map(InheritedFd)
        .ok_or_else(|| loc.err(format!("'{text}' is not a valid file descriptor number")))
}

/// `-add-fd fd=N,set=M[,opaque=S]`, with QEMU's checks in QEMU's order;
/// whether N is open and inheritable is checked when it is claimed.
pub fn add_fd(loc: Loc<'_>) -> Result<AddFdConfig, CliError> {
    let mut r = qemu_opts::parse(loc.arg.unwrap_or(""), None)
        .map_err(|e| loc.opts(e))?
        .reader();
    let fd = r.take_i64("fd").map_err(|e| loc.opts(e))?;
    let set = r.take_i64("set").map_err(|e| loc.opts(e))?;
    let opaque = r.take("opaque");
    r.finish().map_err(|e| loc.opts(e))?;
    let fd = match fd {
        Some(n) if n >= 0 => n,
        _ => return Err(loc.err(ADD_FD_FD_REQUIRED)),
    };
    if fd <= 2 {
        return Err(loc.err(ADD_FD_STDIO));
    }
    // Beyond any fd table: it cannot be open.
    let fd = i32::try_from(fd).map_err(|_| loc.err(ADD_FD_NOT_VALID))?;
    let set = match set {
        Some(n) if n >= 0 => n.unsigned_abs(),
        _ => return Err(loc.err(ADD_FD_SET_REQUIRED)),
    };
    Ok(AddFdConfig {
        fd: InheritedFd(fd),
        set,
        opaque,
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
    fn add_fd_qemu_checks() {
        assert_eq!(
            add_fd(loc("add-fd", "fd=3,set=2,opaque=rdonly:/path/to/file")),
            Ok(AddFdConfig {
                fd: InheritedFd(3),
                set: 2,
                opaque: Some("rdonly:/path/to/file".into())
            })
        );
        assert_eq!(
            add_fd(loc("add-fd", "set=1,fd=11")),
            Ok(AddFdConfig {
                fd: InheritedFd(11),
                set: 1,
                opaque: None
            })
        );
        let msg = |arg: &str| add_fd(loc("add-fd", arg)).unwrap_err().message;
        assert_eq!(msg("set=1"), ADD_FD_FD_REQUIRED);
        assert_eq!(msg("fd=-1,set=1"), ADD_FD_FD_REQUIRED);
        assert_eq!(msg("fd=2,set=1"), ADD_FD_STDIO);
        assert_eq!(msg("fd=0,set=1"), ADD_FD_STDIO);
        assert_eq!(msg("fd=3"), ADD_FD_SET_REQUIRED);
        assert_eq!(msg("fd=3,set=-2"), ADD_FD_SET_REQUIRED);
        // fd checks come before set checks, as in QEMU.
        assert_eq!(msg("fd=1"), ADD_FD_STDIO);
        assert_eq!(msg("fd=4294967299,set=0"), ADD_FD_NOT_VALID);
        assert_eq!(msg("fd=x,set=0"), "Parameter 'fd' expects a number");
        assert_eq!(msg("fd=3,set=0,foo=1"), "Invalid parameter 'foo'");
        assert_eq!(
            add_fd(loc("add-fd", "fd=2,set=1")).unwrap_err().to_string(),
            "-add-fd fd=2,set=1: fd cannot be a standard I/O stream"
        );
    }

    #[test]
    fn sandbox_forms() {
        assert_eq!(sandbox(loc("sandbox", "on")), Ok(SandboxSetting::On));
        assert_eq!(sandbox(loc("sandbox", "off")), Ok(SandboxSetting::Off));
        assert_eq!(
            sandbox(loc(
                "sandbox",
                "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
            )),
            Ok(SandboxSetting::On)
        );
        assert!(sandbox(loc("sandbox", "on,spawn=allow")).is_err());
        assert_eq!(
            sandbox(loc("sandbox", "off,spawn=allow")),
            Ok(SandboxSetting::Off)
        );
        assert!(sandbox(loc("sandbox", "on,spawn=maybe")).is_err());
        assert!(sandbox(loc("sandbox", "maybe")).is_err());
        assert!(sandbox(loc("sandbox", "")).is_err());
    }

    #[test]
    fn hook_fd_and_name() {
        assert_eq!(open_hook_fd(loc("open-hook-fd", "5")), Ok(InheritedFd(5)));
        assert_eq!(
            open_hook_fd(loc("open-hook-fd", "five"))
                .unwrap_err()
                .to_string(),
            "-open-hook-fd five: 'five' is not a valid file descriptor number"
        );
        assert!(open_hook_fd(loc("open-hook-fd", "-1")).is_err());
        assert_eq!(name(loc("name", "vm1")), Ok("vm1".into()));
        assert_eq!(
            name(loc("name", "guest=vm1,debug-threads=on")),
            Ok("vm1".into())
        );
        assert_eq!(name(loc("name", "vm,,1")), Ok("vm,1".into()));
        assert!(name(loc("name", "vm1,foo=bar")).is_err());
    }
}
