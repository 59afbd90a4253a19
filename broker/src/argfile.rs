//! Argument files: `openhook-broker ... -- PROGRAM @/etc/openhook/vm1.args`
//! reads PROGRAM's arguments from a file, so a systemd unit (or any
//! launcher) keeps a VM's emulator command line in `/etc/openhook/` next to
//! its policy. The broker reads the file (`ambient::read_args_file`): the
//! emulator never opens a path.
//!
//! A word of PROGRAM's arguments is an argument file when it is `@`
//! followed by an absolute path (`@/...`); any other word, `@x` included,
//! is passed as it is. Files are not expanded recursively.
//!
//! File format: words separated by white space, any number per line. `#`
//! at the start of a word comments out the rest of the line. Single quotes
//! keep everything up to the next single quote; double quotes keep
//! everything up to the next double quote, where `\"` and `\\` stand for
//! `"` and `\`. So `-append "console=ttyS0 quiet"` is two words.
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// A malformed argument file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SplitError {
    pub line: usize,
    pub message: &'static str,
}

/// Splits an argument file's text into words.
pub fn split(text: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        // Between words.
        while let Some(&c) = chars.peek() {
            if c == '\n' {
                line += 1;
            } else if !c.is_whitespace() {
                break;
            }
            chars.next();
        }
        match chars.peek() {
            None => return Ok(words),
            Some('#') => {
                while chars.next_if(|&c| c != '\n').is_some() {}
                continue;
            }
            Some(_) => {}
        }
        let start = line;
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => {
                            line += usize::from(c == '\n');
                            word.push(c);
                        }
                        None => return Err(unterminated(start, "unterminated single quote")),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\')) => {
                            word.extend(chars.next());
                        }
                        Some(c) => {
                            line += usize::from(c == '\n');
                            word.push(c);
                        }
                        None => return Err(unterminated(start, "unterminated double quote")),
                    }
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

fn unterminated(line: usize, message: &'static str) -> SplitError {
    SplitError { line, message }
}

/// The argument file a word names, if it is one (`@/...`).
pub fn file_of(word: &OsStr) -> Option<&Path> {
    word.as_bytes()
        .strip_prefix(b"@")
        .filter(|p| p.starts_with(b"/"))
        .map(|p| Path::new(OsStr::from_bytes(p)))
}

/// `argv` with every argument file among PROGRAM's arguments (the words
/// after the first `--` and the program name) replaced by its words;
/// `read` reads a file's text. Errors name the file.
pub fn expand<R>(argv: Vec<OsString>, read: R) -> Result<Vec<OsString>, String>
where
    R: Fn(&Path) -> Result<String, String>,
{
    let Some(sep) = argv.iter().position(|w| w == "--") else {
        return Ok(argv);
    };
    let mut out = Vec::with_capacity(argv.len());
    for (i, word) in argv.into_iter().enumerate() {
        let Some(path) = file_of(&word).filter(|_| i > sep + 1) else {
            out.push(word);
            continue;
        };
        let text = read(path).map_err(|e| format!("argument file {}: {e}", path.display()))?;
        let words = split(&text).map_err(|e| format!("argument file {}: {e}", path.display()))?;
        out.extend(words.into_iter().map(OsString::from));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_and_comments() {
        let text = "# the VM's emulator arguments\n\
                    -M microvm -m 256   # RAM\n\
                    -append \"console=ttyS0 quiet\" -name 'vm one'\n\
                    -chardev socket,id=qmp,server=on,wait=off\n\
                    \"a\\\"b\\\\c\" x#y '' \n";
        assert_eq!(
            split(text).unwrap(),
            [
                "-M",
                "microvm",
                "-m",
                "256",
                "-append",
                "console=ttyS0 quiet",
                "-name",
                "vm one",
                "-chardev",
                "socket,id=qmp,server=on,wait=off",
                "a\"b\\c",
                "x#y",
                "",
            ]
        );
        assert_eq!(split("").unwrap(), Vec::<String>::new());
        assert_eq!(
            split("a\n\n'b").unwrap_err(),
            SplitError {
                line: 3,
                message: "unterminated single quote"
            }
        );
        assert_eq!(
            split("\"x\ny").unwrap_err().to_string(),
            "line 1: unterminated double quote"
        );
    }

    proptest::proptest! {
        /// Any text splits or is refused without a panic; any words,
        /// double-quoted with `\` and `"` escaped, split back to themselves.
        #[test]
        fn quoting_round_trips(text in ".*", words in proptest::collection::vec(".*", 0..6)) {
            let _ = split(&text);
            let quoted: Vec<String> = words
                .iter()
                .map(|w| format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            proptest::prop_assert_eq!(split(&quoted.join(" \n ")).unwrap(), words);
        }
    }

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_program_arguments_are_expanded() {
        let read = |p: &Path| match p.to_str() {
            Some("/etc/openhook/vm1.args") => Ok("-m 64 -S".to_string()),
            Some("/bad") => Ok("'".to_string()),
            _ => Err("No such file or directory".to_string()),
        };
        assert_eq!(
            expand(
                argv(&[
                    "b",
                    "--policy",
                    "@/p",
                    "--",
                    "emu",
                    "@/etc/openhook/vm1.args",
                    "-name",
                    "@x"
                ]),
                read
            )
            .unwrap(),
            argv(&["b", "--policy", "@/p", "--", "emu", "-m", "64", "-S", "-name", "@x"])
        );
        // The program itself and words before `--` are never files.
        assert_eq!(
            expand(argv(&["b", "--", "@/etc/openhook/vm1.args"]), read).unwrap(),
            argv(&["b", "--", "@/etc/openhook/vm1.args"])
        );
        assert_eq!(
            expand(argv(&["b", "check", "@/nope"]), read).unwrap(),
            argv(&["b", "check", "@/nope"])
        );
        assert_eq!(
            expand(argv(&["b", "--", "e", "@/nope"]), read).unwrap_err(),
            "argument file /nope: No such file or directory"
        );
        assert_eq!(
            expand(argv(&["b", "--", "e", "@/bad"]), read).unwrap_err(),
            "argument file /bad: line 1: unterminated single quote"
        );
    }
}
