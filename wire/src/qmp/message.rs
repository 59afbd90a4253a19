//! QMP message shapes (greeting, return, error, event), the error classes,
//! and the writer that prints JSON the way QEMU does: `", "` and `": "`
//! separators, every non-ASCII or control character as an upper-case
//! `\uXXXX` escape, and CRLF after each message.
#![forbid(unsafe_code)]

use std::io;

use serde::{Deserialize, Serialize};
use serde_json::ser::{CharEscape, Formatter};
use serde_json::Value;

/// QMP error classes (QAPI `QapiErrorClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorClass {
    GenericError,
    CommandNotFound,
    DeviceNotActive,
    DeviceNotFound,
    KVMMissingCap,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
            ErrorClass::DeviceNotActive => "DeviceNotActive",
            ErrorClass::DeviceNotFound => "DeviceNotFound",
            ErrorClass::KVMMissingCap => "KVMMissingCap",
        }
    }
}

/// The body of an error response: `{"class": C, "desc": D}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub class: ErrorClass,
    pub desc: String,
}

/// `{"qemu": {"micro", "minor", "major"}, "package"}` (QAPI `VersionInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub qemu: VersionTriple,
    pub package: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionTriple {
    pub micro: u32,
    pub minor: u32,
    pub major: u32,
}

/// The greeting a server sends on connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    #[serde(rename = "QMP")]
    pub qmp: GreetingBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreetingBody {
    pub version: VersionInfo,
    pub capabilities: Vec<String>,
}

/// When an event happened, as seconds and microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub microseconds: i64,
}

/// An asynchronous event (key order as QEMU prints it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub timestamp: Timestamp,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A successful response.
#[derive(Debug, Serialize)]
pub struct ReturnResponse<'a> {
    #[serde(rename = "return")]
    pub ret: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a Value>,
}

/// A failed response.
#[derive(Debug, Serialize)]
pub struct ErrorResponse<'a> {
    pub error: &'a ErrorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a Value>,
}

/// A command as a client sends it.
#[derive(Debug, Serialize)]
pub struct Command<'a> {
    pub execute: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a Value>,
}

/// Anything a server may send, classified by its key member.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Greeting(Greeting),
    Return {
        ret: Value,
        id: Option<Value>,
    },
    Error {
        error: ErrorBody,
        id: Option<Value>,
    },
    Event(Event),
    /// An object with none of the known shapes (kept for display).
    Other(Value),
}

impl ServerMessage {
    /// Classifies one value read from a server.
    pub fn classify(v: Value) -> ServerMessage {
        let Value::Object(mut map) = v else {
            return ServerMessage::Other(v);
        };
        if map.contains_key("QMP") {
            let v = Value::Object(map);
            return match serde_json::from_value(v.clone()) {
                Ok(g) => ServerMessage::Greeting(g),
                Err(_) => ServerMessage::Other(v),
            };
        }
        if let Some(ret) = map.remove("return") {
            let id = map.remove("id");
            return ServerMessage::Return { ret, id };
        }
        if let Some(error) = map.get("error").cloned() {
            if let Ok(error) = serde_json::from_value::<ErrorBody>(error) {
                let id = map.remove("id");
                return ServerMessage::Error { error, id };
            }
        }
        let v = Value::Object(map);
        if v.get("event").is_some() {
            if let Ok(e) = serde_json::from_value(v.clone()) {
                return ServerMessage::Event(e);
            }
        }
        ServerMessage::Other(v)
    }
}

/// serde_json formatter producing QEMU's spelling of JSON.
#[derive(Debug, Default, Clone, Copy)]
pub struct QemuFormatter;

impl QemuFormatter {
    fn escape<W: ?Sized + io::Write>(w: &mut W, unit: u16) -> io::Result<()> {
        write!(w, "\\u{unit:04X}")
    }
}

impl Formatter for QemuFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                let mut buf = [0u8; 4];
                w.write_all(c.encode_utf8(&mut buf).as_bytes())?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    Self::escape(w, *unit)?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        e: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match e {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(b) => return Self::escape(w, u16::from(b)),
        };
        w.write_all(s)
    }
}

/// Serialises `msg` as QEMU would print it, without a line end.
pub fn to_qemu_json<T: Serialize + ?Sized>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, QemuFormatter);
    // Serialising our own message types (and `Value`) into a Vec cannot
    // fail: no maps with non-string keys, no I/O errors.
    if msg.serialize(&mut ser).is_err() {
        out.clear();
        out.extend_from_slice(b"null");
    }
    out
}

/// One message as sent on the wire: QEMU JSON followed by CRLF.
pub fn encode_line<T: Serialize + ?Sized>(msg: &T) -> Vec<u8> {
    let mut out = to_qemu_json(msg);
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_like_qemu() {
        let body = ErrorBody {
            class: ErrorClass::GenericError,
            desc: "JSON parse error, stray '\"foo\u{fffd}'".into(),
        };
        assert_eq!(
            encode_line(&ErrorResponse {
                error: &body,
                id: None
            }),
            b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\\"foo\\uFFFD'\"}}\r\n"
        );
        let id = json!("\u{0}\u{7f}\u{20ac}\u{1f600}\u{0}/\t\u{1}");
        assert_eq!(
            to_qemu_json(&ReturnResponse {
                ret: &json!({}),
                id: Some(&id)
            }),
            b"{\"return\": {}, \"id\": \"\\u0000\\u007F\\u20AC\\uD83D\\uDE00\\u0000/\\t\\u0001\"}"
        );
        assert_eq!(
            to_qemu_json(&json!([1, [], {"a": null}])),
            b"[1, [], {\"a\": null}]"
        );
    }

    #[test]
    fn greeting_shape() {
        let g = Greeting {
            qmp: GreetingBody {
                version: VersionInfo {
                    qemu: VersionTriple {
                        micro: 0,
                        minor: 2,
                        major: 7,
                    },
                    package: String::new(),
                },
                capabilities: vec![],
            },
        };
        assert_eq!(
            encode_line(&g),
            b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\r\n"
        );
    }

    #[test]
    fn classify_server_messages() {
        // Real QEMU 7.2 output lines.
        let g = json!({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian"}, "capabilities": ["oob"]}});
        assert!(matches!(
            ServerMessage::classify(g),
            ServerMessage::Greeting(_)
        ));
        let e = json!({"id": "x", "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}});
        assert_eq!(
            ServerMessage::classify(e),
            ServerMessage::Error {
                error: ErrorBody {
                    class: ErrorClass::CommandNotFound,
                    desc: "The command nope has not been found".into()
                },
                id: Some(json!("x"))
            }
        );
        let ev = json!({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"});
        assert_eq!(
            ServerMessage::classify(ev.clone()),
            ServerMessage::Event(Event {
                timestamp: Timestamp {
                    seconds: 1,
                    microseconds: 2
                },
                event: "STOP".into(),
                data: None
            })
        );
        assert_eq!(
            to_qemu_json(&serde_json::from_value::<Event>(ev).unwrap()),
            b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}"
        );
    }
}
