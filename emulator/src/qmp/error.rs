//! `QmpError { class, desc }` and the QEMU texts clients match on. This is
//! the one mapping from internal errors to what a QMP client sees
//! (and the only one); the constants are tested byte for byte.
#![forbid(unsafe_code)]

use openhook_wire::qmp::{ErrorBody, ErrorClass, JsonError};

/// Fixed QEMU error texts.
pub mod desc {
    pub const NEEDS_NEGOTIATION: &str =
        "Expecting capabilities negotiation with 'qmp_capabilities'";
    pub const ALREADY_NEGOTIATED: &str =
        "Capabilities negotiation is already complete, command ignored";
    pub const NOT_AN_OBJECT: &str = "QMP input must be a JSON object";
    pub const LACKS_EXECUTE: &str = "QMP input lacks member 'execute'";
    pub const ARGUMENTS_NOT_OBJECT: &str = "QMP input member 'arguments' must be an object";
    // The fd texts live beside the code that decides them.
    pub use crate::cli::chardev::TLS_FD_CLIENT as TLS_WITH_FD_CLIENT;
    pub use crate::fds::fdset::NEGATIVE_FDSET_ID as FDSET_ID_NEGATIVE;
    pub use crate::fds::named::{
        NAME_STARTS_WITH_DIGIT as FDNAME_STARTS_WITH_DIGIT, NO_FD_SUPPLIED,
    };
}

/// An error as a QMP client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{desc}")]
pub struct QmpError {
    pub class: ErrorClass,
    pub desc: String,
}

impl QmpError {
    pub fn generic(desc: impl Into<String>) -> Self {
        QmpError {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    pub fn command_not_found(desc: impl Into<String>) -> Self {
        QmpError {
            class: ErrorClass::CommandNotFound,
            desc: desc.into(),
        }
    }

    /// "The command X has not been found"
    pub fn unknown_command(name: &str) -> Self {
        Self::command_not_found(format!("The command {name} has not been found"))
    }

    /// "QMP input member 'X' is unexpected"
    pub fn member_unexpected(name: &str) -> Self {
        Self::generic(format!("QMP input member '{name}' is unexpected"))
    }

    /// "QMP input member 'X' must be a string"
    pub fn member_not_string(name: &str) -> Self {
        Self::generic(format!("QMP input member '{name}' must be a string"))
    }

    /// "Parameter 'X' is missing"
    pub fn missing(param: &str) -> Self {
        Self::generic(format!("Parameter '{param}' is missing"))
    }

    /// "Parameter 'X' is unexpected"
    pub fn unexpected(param: &str) -> Self {
        Self::generic(format!("Parameter '{param}' is unexpected"))
    }

    /// "Invalid parameter type for 'X', expected: T"
    pub fn wrong_type(param: &str, expected: &str) -> Self {
        Self::generic(format!(
            "Invalid parameter type for '{param}', expected: {expected}"
        ))
    }

    /// "Parameter 'X' does not accept value 'V'"
    pub fn bad_value(param: &str, value: &str) -> Self {
        Self::generic(format!(
            "Parameter '{param}' does not accept value '{value}'"
        ))
    }

    /// "Invalid parameter 'X'"
    pub fn invalid_parameter(param: &str) -> Self {
        Self::generic(format!("Invalid parameter '{param}'"))
    }

    /// The error body on the wire.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            class: self.class,
            desc: self.desc.clone(),
        }
    }
}

impl From<crate::fds::fdset::FdSetError> for QmpError {
    fn from(e: crate::fds::fdset::FdSetError) -> Self {
        QmpError::generic(e.to_string())
    }
}

impl From<crate::fds::named::NamedFdError> for QmpError {
    fn from(e: crate::fds::named::NamedFdError) -> Self {
        QmpError::generic(e.to_string())
    }
}

impl From<JsonError> for QmpError {
    fn from(e: JsonError) -> Self {
        QmpError::generic(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts as QEMU 7.2 sends them (captured from Debian's
    /// qemu-system-x86_64 with `scripts/qmp-probe` style sessions).
    #[test]
    fn texts_byte_for_byte() {
        assert_eq!(
            desc::NEEDS_NEGOTIATION.as_bytes(),
            b"Expecting capabilities negotiation with 'qmp_capabilities'"
        );
        assert_eq!(
            desc::ALREADY_NEGOTIATED.as_bytes(),
            b"Capabilities negotiation is already complete, command ignored"
        );
        assert_eq!(
            desc::NOT_AN_OBJECT.as_bytes(),
            b"QMP input must be a JSON object"
        );
        assert_eq!(
            desc::LACKS_EXECUTE.as_bytes(),
            b"QMP input lacks member 'execute'"
        );
        assert_eq!(
            desc::ARGUMENTS_NOT_OBJECT.as_bytes(),
            b"QMP input member 'arguments' must be an object"
        );
        assert_eq!(
            desc::NO_FD_SUPPLIED.as_bytes(),
            b"No file descriptor supplied via SCM_RIGHTS"
        );
        assert_eq!(
            desc::FDNAME_STARTS_WITH_DIGIT.as_bytes(),
            b"Parameter 'fdname' expects a name not starting with a digit"
        );
        assert_eq!(
            desc::FDSET_ID_NEGATIVE.as_bytes(),
            b"Parameter 'fdset-id' expects a non-negative value"
        );
        assert_eq!(
            desc::TLS_WITH_FD_CLIENT.as_bytes(),
            b"'tls_creds' option is incompatible with 'fd' address type as client"
        );
        assert_eq!(
            QmpError::unknown_command("nope").desc.as_bytes(),
            b"The command nope has not been found"
        );
        assert_eq!(
            QmpError::unknown_command("x").class,
            ErrorClass::CommandNotFound
        );
        assert_eq!(
            QmpError::member_unexpected("extra").desc.as_bytes(),
            b"QMP input member 'extra' is unexpected"
        );
        assert_eq!(
            QmpError::member_not_string("execute").desc.as_bytes(),
            b"QMP input member 'execute' must be a string"
        );
        assert_eq!(
            QmpError::missing("fdname").desc.as_bytes(),
            b"Parameter 'fdname' is missing"
        );
        assert_eq!(
            QmpError::unexpected("x").desc.as_bytes(),
            b"Parameter 'x' is unexpected"
        );
        assert_eq!(
            QmpError::wrong_type("fdname", "string").desc.as_bytes(),
            b"Invalid parameter type for 'fdname', expected: string"
        );
        assert_eq!(
            QmpError::bad_value("type", "nope").desc.as_bytes(),
            b"Parameter 'type' does not accept value 'nope'"
        );
        assert_eq!(
            QmpError::invalid_parameter("protocol").desc.as_bytes(),
            b"Invalid parameter 'protocol'"
        );
    }
}
