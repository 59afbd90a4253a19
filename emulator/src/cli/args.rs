//! argv → a list of recognised options with their arguments (syntax only).
//!
//! Options are spelled as QEMU spells them, with one or two leading dashes
//! (`-m 128`, `--m 128`), and looked up in the option table
//! (`options.rs`, which `-help` and the man page are made from). An unknown
//! option, a missing argument or a non-option word is an error naming it.
#![forbid(unsafe_code)]

use std::ffi::OsString;

use super::error::CliError;
use super::options;

pub use super::options::Opt;

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
        let Some((spec, spelling)) = options::lookup(name) else {
            return Err(CliError::at(name, None, "invalid option"));
        };
        let opt = spec.opt;
        let arg = if spec.takes_arg() {
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

/// What `-help`/`-version` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoRequest {
    Help,
    Version,
    /// `-machine help`, `-cpu help`, `-accel help`, `-device help` (or
    /// `?`): what the option accepts ([`options::list_text`]).
    List(Opt),
}

/// The first `-h`/`-help`/`-version` of the command line, as QEMU acts on
/// it: when reached in order, before any option after it is looked at.
/// `None` when there is none, or when a word before it is not a valid
/// option (the full parse then reports that error).
pub fn info_request(args: &[OsString]) -> Option<InfoRequest> {
    let mut it = args.iter();
    while let Some(word) = it.next() {
        let word = word.to_str()?;
        let name = word
            .strip_prefix("--")
            .or_else(|| word.strip_prefix('-'))
            .filter(|n| !n.is_empty())?;
        let (spec, _) = options::lookup(name)?;
        match spec.opt {
            Opt::Help => return Some(InfoRequest::Help),
            Opt::Version => return Some(InfoRequest::Version),
            _ if spec.takes_arg() => {
                let arg = it.next()?;
                if (arg == "help" || arg == "?") && options::list_text(spec.opt).is_some() {
                    return Some(InfoRequest::List(spec.opt));
                }
            }
            _ => {}
        }
    }
    None
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
    fn help_and_version_are_found_in_order() {
        let req = |w: &[&str]| info_request(&w.iter().map(OsString::from).collect::<Vec<_>>());
        for w in ["-h", "-help", "--help", "--h"] {
            assert_eq!(req(&[w]), Some(InfoRequest::Help), "{w}");
        }
        for w in ["-version", "--version"] {
            assert_eq!(req(&[w]), Some(InfoRequest::Version), "{w}");
        }
        assert_eq!(
            req(&["-m", "128", "-version", "-foo"]),
            Some(InfoRequest::Version)
        );
        // An argument that looks like -help is the option's argument.
        assert_eq!(req(&["-append", "-help"]), None);
        assert_eq!(req(&["-foo", "-help"]), None);
        assert_eq!(req(&["-m", "128"]), None);
        for (w, opt) in [
            ("-M", Opt::Machine),
            ("-machine", Opt::Machine),
            ("-cpu", Opt::Cpu),
            ("-accel", Opt::Accel),
            ("-device", Opt::Device),
        ] {
            assert_eq!(req(&[w, "help"]), Some(InfoRequest::List(opt)), "{w}");
            assert_eq!(req(&[w, "?"]), Some(InfoRequest::List(opt)), "{w}");
        }
        // Options without a list take "help" as a plain argument.
        assert_eq!(req(&["-name", "help"]), None);
        assert_eq!(req(&[]), None);
    }

    /// Every spelling of the table is an option the parser takes, with an
    /// argument exactly when the table says so.
    #[test]
    fn every_table_entry_parses() {
        for spec in options::OPTIONS {
            for name in spec.names {
                let mut words = vec![format!("-{name}")];
                if spec.takes_arg() {
                    words.push("x".into());
                }
                let o = split_args(words.into_iter().map(OsString::from)).unwrap();
                assert_eq!(o.len(), 1);
                assert_eq!((o[0].opt, o[0].name), (spec.opt, *name));
                assert_eq!(o[0].arg.is_some(), spec.takes_arg());
            }
        }
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
