//! The one error type of the command line: a location (the option and its
//! argument, as QEMU prints them) and a message.

use super::qemu_opts::OptsError;

/// `-drive foo=bar: Invalid parameter 'foo'` — printed after the program
/// name, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location_prefix(.location))]
pub struct CliError {
    /// `-drive foo=bar` (option and argument as written), or `None` for
    /// errors about the command line as a whole.
    pub location: Option<String>,
    pub message: String,
}

fn location_prefix(location: &Option<String>) -> String {
    match location {
        Some(l) => format!("{l}: "),
        None => String::new(),
    }
}

impl CliError {
    /// An error about the whole command line.
    pub fn global(message: impl Into<String>) -> Self {
        CliError {
            location: None,
            message: message.into(),
        }
    }

    /// An error about one option; `arg` is its argument, if it takes one.
    pub fn at(option: &str, arg: Option<&str>, message: impl Into<String>) -> Self {
        let location = match arg {
            Some(a) => format!("-{option} {a}"),
            None => format!("-{option}"),
        };
        CliError {
            location: Some(location),
            message: message.into(),
        }
    }
}

/// Attaches a location to the errors of one option's parser.
#[derive(Debug, Clone, Copy)]
pub struct Loc<'a> {
    pub option: &'a str,
    pub arg: Option<&'a str>,
}

impl Loc<'_> {
    pub fn err(&self, message: impl Into<String>) -> CliError {
        CliError::at(self.option, self.arg, message)
    }

    pub fn opts(&self, e: OptsError) -> CliError {
        self.err(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_location() {
        let e = CliError::at("drive", Some("foo=bar"), "Invalid parameter 'foo'");
        assert_eq!(e.to_string(), "-drive foo=bar: Invalid parameter 'foo'");
        let e = CliError::at("foo", None, "invalid option");
        assert_eq!(e.to_string(), "-foo: invalid option");
        let e = CliError::global("cannot use stdio by multiple character devices");
        assert_eq!(
            e.to_string(),
            "cannot use stdio by multiple character devices"
        );
    }
}
