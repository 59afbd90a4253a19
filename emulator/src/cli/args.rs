//! argv → a list of recognised options with their arguments (syntax only).
//!
//! Options are spelled as QEMU spells them, with one or two leading dashes
//! (`-m 128`, `--m 128`). An unknown option, a missing argument or a
//! non-option word is an error naming it.
#![forbid(unsafe_code)]

use std::ffi::OsString;

use super::error::CliError;

/// Every option the emulator understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
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

/// Spelling, meaning, and whether the option takes an argument.
const TABLE: &[(&str, Opt, bool)] = &[
    ("machine", Opt::Machine, true),
    ("M", Opt::Machine, true),
    ("accel", Opt::Accel, true),
    ("enable-kvm", Opt::EnableKvm, false),
    ("cpu", Opt::Cpu, true),
    ("m", Opt::Memory, true),
    ("smp", Opt::Smp, true),
    ("bios", Opt::Bios, true),
    ("kernel", Opt::Kernel, true),
    ("initrd", Opt::Initrd, true),
    ("append", Opt::Append, true),
    ("drive", Opt::Drive, true),
    ("device", Opt::Device, true),
    ("chardev", Opt::Chardev, true),
    ("serial", Opt::Serial, true),
    ("mon", Opt::Mon, true),
    ("qmp", Opt::Qmp, true),
    ("monitor", Opt::Monitor, true),
    ("nographic", Opt::Nographic, false),
    ("display", Opt::Display, true),
    ("vga", Opt::Vga, true),
    ("net", Opt::Net, true),
    ("nic", Opt::Nic, true),
    ("parallel", Opt::Parallel, true),
    ("nodefaults", Opt::Nodefaults, false),
    ("no-user-config", Opt::NoUserConfig, false),
    ("name", Opt::Name, true),
    ("no-reboot", Opt::NoReboot, false),
    ("S", Opt::Paused, false),
    ("open-hook-fd", Opt::OpenHookFd, true),
    ("add-fd", Opt::AddFd, true),
    ("sandbox", Opt::Sandbox, true),
    ("global", Opt::Global, true),
];

/// One option as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    pub opt: Opt,
    /// The spelling used, without dashes (`M` or `machine`).
    pub name: &'static str,
    pub arg: Option<String>,
}

impl RawOption {
    /// The argument of an option that takes one (empty if absent).
    pub fn arg(&self) -> &str {
        self.arg.as_deref().unwrap_or("")
    }
}

/// Splits the arguments after the program name.
pub fn split_args<I>(args: I) -> Result<Vec<RawOption>, CliError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(word) = it.next() {
        let word = into_utf8(word, None)?;
        let Some(name) = word
            .strip_prefix("--")
            .or_else(|| word.strip_prefix('-'))
            .filter(|n| !n.is_empty())
        else {
            return Err(CliError::global(format!(
                "{word}: unexpected argument (disk images are given with -drive)"
            )));
        };
        let Some(&(spelling, opt, has_arg)) = TABLE.iter().find(|(s, _, _)| *s == name) else {
            return Err(CliError::at(name, None, "invalid option"));
        };
        let arg = if has_arg {
            match it.next() {
                Some(a) => Some(into_utf8(a, Some(spelling))?),
                None => return Err(CliError::at(spelling, None, "requires an argument")),
            }
        } else {
            None
        };
        out.push(RawOption {
            opt,
            name: spelling,
            arg,
        });
    }
    Ok(out)
}

fn into_utf8(word: OsString, option: Option<&str>) -> Result<String, CliError> {
    word.into_string().map_err(|w| {
        let shown = w.to_string_lossy().into_owned();
        match option {
            Some(o) => CliError::at(o, Some(&shown), "argument is not valid UTF-8"),
            None => CliError::global(format!("{shown}: argument is not valid UTF-8")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(words: &[&str]) -> Result<Vec<RawOption>, CliError> {
        split_args(words.iter().map(OsString::from))
    }

    #[test]
    fn qemu_spellings_split() {
        let o = split(&[
            "-M",
            "microvm",
            "--machine",
            "microvm",
            "-nographic",
            "-m",
            "128",
            "-S",
        ])
        .unwrap();
        assert_eq!(o.len(), 5);
        assert_eq!(o[0].opt, Opt::Machine);
        assert_eq!(o[0].name, "M");
        assert_eq!(o[1].name, "machine");
        assert_eq!(o[2].opt, Opt::Nographic);
        assert_eq!(o[2].arg, None);
        assert_eq!(o[3].arg.as_deref(), Some("128"));
        assert_eq!(o[4].opt, Opt::Paused);
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(
            split(&["-foo"]).unwrap_err().to_string(),
            "-foo: invalid option"
        );
        assert_eq!(
            split(&["-m"]).unwrap_err().to_string(),
            "-m: requires an argument"
        );
        assert_eq!(
            split(&["disk.img"]).unwrap_err().to_string(),
            "disk.img: unexpected argument (disk images are given with -drive)"
        );
        assert!(split(&["-"]).unwrap_err().to_string().starts_with("-:"));
        // An option's argument may itself start with a dash.
        let o = split(&["-append", "-v"]).unwrap();
        assert_eq!(o[0].arg.as_deref(), Some("-v"));
    }

    #[test]
    fn non_utf8_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'/', 0xff]);
        let err = split_args(vec![OsString::from("-bios"), bad]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "-bios /\u{fffd}: argument is not valid UTF-8"
        );
    }
}
