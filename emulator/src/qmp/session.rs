//! One QMP conversation, without I/O: bytes in, reply bytes and effects
//! out as data for `server` to perform. It owns the JSON splitter, validates each request's
//! shape, enforces capabilities negotiation, echoes `id`, and hands
//! well-formed commands of a negotiated session to a [`Handler`].
//!
//! Behaviour matches QEMU's monitor (docs/qmp.md): errors for malformed
//! input carry QEMU's texts and leave the connection usable; every
//! message ends with CRLF; events are suppressed until negotiation.
#![forbid(unsafe_code)]

use openhook_wire::qmp::message::{
    encode_line, ErrorResponse, Greeting, GreetingBody, ReturnResponse, VersionInfo, VersionTriple,
};
use openhook_wire::qmp::{Event, JsonStream, Limits};
use serde_json::{Map, Value};

use super::args::Args;
use super::error::{desc, QmpError};

/// The QEMU version we answer with: the release whose QMP behaviour we
/// reproduce (see docs/qmp.md).
pub const QEMU_VERSION: VersionTriple = VersionTriple {
    micro: 0,
    minor: crate::cli::options::QEMU_MINOR,
    major: crate::cli::options::QEMU_MAJOR,
};

/// The `package` of the version we answer with (greeting and
/// `query-version`): QEMU puts its distribution build there; ours names
/// the emulator, so a manager can tell which one it talks to.
pub const PACKAGE: &str = concat!("openhook-emulator ", env!("CARGO_PKG_VERSION"));

/// Work the shell does once the replies before it have been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `quit`: end the emulator after the reply reached the client.
    Quit,
}

/// What the shell does with the session's output, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Vec<u8>),
    Effect(Effect),
}

/// Runs the commands of a negotiated session.
pub trait Handler {
    /// Runs `command`; unknown commands answer
    /// [`QmpError::unknown_command`]. Effects to perform after the reply
    /// go into `effects`.
    fn execute(
        &mut self,
        command: &str,
        args: Args,
        effects: &mut Vec<Effect>,
    ) -> Result<Value, QmpError>;
}

/// A request whose shape is valid.
#[derive(Debug)]
struct Request {
    command: String,
    arguments: Map<String, Value>,
}

/// State of one monitor connection.
#[derive(Debug)]
pub struct Session {
    stream: JsonStream,
    negotiated: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self::new(Limits::SERVER)
    }
}

impl Session {
    pub fn new(limits: Limits) -> Self {
        Session {
            stream: JsonStream::new(limits),
            negotiated: false,
        }
    }

    /// The greeting line sent on connect.
    pub fn greeting() -> Vec<u8> {
        encode_line(&Greeting {
            qmp: GreetingBody {
                version: VersionInfo {
                    qemu: QEMU_VERSION,
                    package: PACKAGE.to_string(),
                },
                capabilities: Vec::new(),
            },
        })
    }

    pub fn negotiated(&self) -> bool {
        self.negotiated
    }

    /// Bytes held for an incomplete message.
    pub fn pending(&self) -> usize {
        self.stream.pending()
    }

    /// The line for an event, or `None` before negotiation.
    pub fn event(&self, e: &Event) -> Option<Vec<u8>> {
        self.negotiated.then(|| encode_line(e))
    }

    /// Feeds input; returns replies and effects in order.
    pub fn feed(&mut self, input: &[u8], handler: &mut dyn Handler) -> Vec<Output> {
        let mut out = Vec::new();
        for item in self.stream.push(input) {
            match item {
                Err(e) => out.push(Output::Send(error_line(&QmpError::from(e), None))),
                Ok(v) => self.request(v, handler, &mut out),
            }
        }
        out
    }

    fn request(&mut self, v: Value, handler: &mut dyn Handler, out: &mut Vec<Output>) {
        let Value::Object(mut obj) = v else {
            out.push(Output::Send(error_line(
                &QmpError::generic(desc::NOT_AN_OBJECT),
                None,
            )));
            return;
        };
        let id = obj.remove("id");
        let mut effects = Vec::new();
        let result = match check_shape(obj) {
            Err(e) => Err(e),
            Ok(req) => self.dispatch(req, handler, &mut effects),
        };
        let line = match &result {
            Ok(ret) => encode_line(&ReturnResponse {
                ret,
                id: id.as_ref(),
            }),
            Err(e) => error_line(e, id.as_ref()),
        };
        out.push(Output::Send(line));
        out.extend(effects.into_iter().map(Output::Effect));
    }

    fn dispatch(
        &mut self,
        req: Request,
        handler: &mut dyn Handler,
        effects: &mut Vec<Effect>,
    ) -> Result<Value, QmpError> {
        if req.command == "qmp_capabilities" {
            if self.negotiated {
                return Err(QmpError::command_not_found(desc::ALREADY_NEGOTIATED));
            }
            negotiate(Args::new(req.arguments))?;
            self.negotiated = true;
            return Ok(Value::Object(Map::new()));
        }
        if !self.negotiated {
            return Err(QmpError::command_not_found(desc::NEEDS_NEGOTIATION));
        }
        handler.execute(&req.command, Args::new(req.arguments), effects)
    }
}

fn error_line(e: &QmpError, id: Option<&Value>) -> Vec<u8> {
    encode_line(&ErrorResponse {
        error: &e.body(),
        id,
    })
}

/// QEMU's `qmp_dispatch_check_obj`: `execute` a string, `arguments` an
/// object, `id` anything, nothing else. (`exec-oob` is refused as an
/// unexpected member: we offer no out-of-band capability.)
fn check_shape(obj: Map<String, Value>) -> Result<Request, QmpError> {
    let mut command = None;
    let mut arguments = Map::new();
    for (key, value) in obj {
        match (key.as_str(), value) {
            ("execute", Value::String(s)) => command = Some(s),
            ("execute", _) => return Err(QmpError::member_not_string("execute")),
            ("arguments", Value::Object(m)) => arguments = m,
            ("arguments", _) => return Err(QmpError::generic(desc::ARGUMENTS_NOT_OBJECT)),
            (other, _) => return Err(QmpError::member_unexpected(other)),
        }
    }
    let command = command.ok_or_else(|| QmpError::generic(desc::LACKS_EXECUTE))?;
    Ok(Request { command, arguments })
}

/// `qmp_capabilities {"enable"?: [QMPCapability]}`; we offer none.
fn negotiate(mut args: Args) -> Result<(), QmpError> {
    let enable = args.opt_list("enable")?;
    args.finish()?;
    // No capability is offered, so the first element decides.
    if let Some(cap) = enable.unwrap_or_default().first() {
        return Err(match cap {
            Value::String(s) if s == "oob" => QmpError::generic("Capability 'oob' not available"),
            Value::String(s) => QmpError::bad_value("enable[0]", s),
            _ => QmpError::wrong_type("enable[0]", "string"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openhook_wire::qmp::Timestamp;
    use serde_json::json;

    /// A handler with two commands, enough to see dispatch and ids.
    struct Echo;

    impl Handler for Echo {
        fn execute(
            &mut self,
            command: &str,
            mut args: Args,
            effects: &mut Vec<Effect>,
        ) -> Result<Value, QmpError> {
            match command {
                "query-name" => {
                    args.finish()?;
                    Ok(json!({}))
                }
                "echo" => {
                    let s = args.str("text")?;
                    args.finish()?;
                    Ok(json!(s))
                }
                "quit" => {
                    effects.push(Effect::Quit);
                    Ok(json!({}))
                }
                other => Err(QmpError::unknown_command(other)),
            }
        }
    }

    fn lines(s: &mut Session, input: &[u8]) -> Vec<String> {
        s.feed(input, &mut Echo)
            .into_iter()
            .map(|o| match o {
                Output::Send(b) => {
                    assert!(b.ends_with(b"\r\n"));
                    String::from_utf8(b).unwrap().trim_end().to_string()
                }
                Output::Effect(e) => format!("effect {e:?}"),
            })
            .collect()
    }

    fn negotiated() -> Session {
        let mut s = Session::default();
        assert_eq!(
            lines(&mut s, b"{\"execute\": \"qmp_capabilities\"}"),
            vec![r#"{"return": {}}"#]
        );
        s
    }

    const GENERIC: &str = r#"{"error": {"class": "GenericError", "desc": "#;

    fn generic(d: &str) -> String {
        format!("{GENERIC}{}}}}}", serde_json::to_string(d).unwrap())
    }

    #[test]
    fn greeting_shape() {
        assert_eq!(
            String::from_utf8(Session::greeting()).unwrap(),
            format!(
                "{{\"QMP\": {{\"version\": {{\"qemu\": {{\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"package\": \"openhook-emulator {}\"}}, \"capabilities\": []}}}}\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn commands_before_negotiation() {
        let mut s = Session::default();
        let want = r#"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#;
        assert_eq!(lines(&mut s, br#"{"execute": "query-name"}"#), vec![want]);
        assert_eq!(lines(&mut s, br#"{"execute": "no-such"}"#), vec![want]);
        // Malformed input is answered as usual before negotiation.
        assert_eq!(
            lines(&mut s, b"{]"),
            vec![generic("JSON parse error, expecting value")]
        );
        // Argument errors of qmp_capabilities itself.
        assert_eq!(
            lines(
                &mut s,
                br#"{"execute": "qmp_capabilities", "arguments": {"x": 1}}"#
            ),
            vec![generic("Parameter 'x' is unexpected")]
        );
        assert_eq!(
            lines(
                &mut s,
                br#"{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}"#
            ),
            vec![generic("Capability 'oob' not available")]
        );
        assert_eq!(
            lines(
                &mut s,
                br#"{"execute": "qmp_capabilities", "arguments": {"enable": ["foo"]}}"#
            ),
            vec![generic("Parameter 'enable[0]' does not accept value 'foo'")]
        );
        assert!(!s.negotiated());
        assert_eq!(
            lines(
                &mut s,
                br#"{"execute": "qmp_capabilities", "arguments": {"enable": []}, "id": 1}"#
            ),
            vec![r#"{"return": {}, "id": 1}"#]
        );
        assert!(s.negotiated());
    }

    #[test]
    fn repeated_negotiation() {
        let mut s = negotiated();
        assert_eq!(
            lines(&mut s, br#"{"execute": "qmp_capabilities"}"#),
            vec![
                r#"{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}"#
            ]
        );
        assert_eq!(
            lines(&mut s, br#"{"execute": "query-name"}"#),
            vec![r#"{"return": {}}"#]
        );
    }

    #[test]
    fn id_echo_on_success_and_failure() {
        let mut s = negotiated();
        assert_eq!(
            lines(
                &mut s,
                br#"{"execute": "query-name", "id": [1, {"a": null}]}"#
            ),
            vec![r#"{"return": {}, "id": [1, {"a": null}]}"#]
        );
        assert_eq!(
            lines(&mut s, br#"{"execute": "nope", "id": "x"}"#),
            vec![
                r#"{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": "x"}"#
            ]
        );
        assert_eq!(
            lines(&mut s, br#"{"execute": true, "id": 5}"#),
            vec![
                r#"{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}, "id": 5}"#
            ]
        );
        assert_eq!(
            lines(
                &mut s,
                br#"{"execute": "echo", "arguments": {}, "id": {"k": 1.5}}"#
            ),
            vec![
                r#"{"error": {"class": "GenericError", "desc": "Parameter 'text' is missing"}, "id": {"k": 1.5}}"#
            ]
        );
    }

    /// qmp-test's malformed inputs, each followed by a good command that
    /// must still work. Expected texts are QEMU 7.2's.
    #[test]
    fn malformed_inputs_then_recovery() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"{]", &["JSON parse error, expecting value"]),
            (b"{\xff", &["JSON parse error, stray '\\uFFFD'"]),
            (b"{\x01", &["JSON parse error, stray '\\u0001'"]),
            (
                b"{\"execute\": \"foo\xffbar\"}",
                &[
                    "JSON parse error, stray '\\\"foo\\uFFFD'",
                    "JSON parse error, expecting value",
                ],
            ),
            (
                b"{\"execute\": \"a\nb\"}",
                &[
                    "JSON parse error, stray '\\\"a\\n'",
                    "JSON parse error, expecting value",
                ],
            ),
            (b"null ", &["QMP input must be a JSON object"]),
            (b"[1, 2]", &["QMP input must be a JSON object"]),
            (b"{}", &["QMP input lacks member 'execute'"]),
            (
                b"{\"execute\": true}",
                &["QMP input member 'execute' must be a string"],
            ),
            (
                b"{\"execute\": \"query-name\", \"arguments\": []}",
                &["QMP input member 'arguments' must be an object"],
            ),
            (
                b"{\"execute\": \"query-name\", \"extra\": 1}",
                &["QMP input member 'extra' is unexpected"],
            ),
            (
                b"{\"exec-oob\": \"query-name\"}",
                &["QMP input member 'exec-oob' is unexpected"],
            ),
        ];
        let mut s = negotiated();
        for (input, want) in cases {
            let got = lines(&mut s, input);
            let want: Vec<String> = want
                .iter()
                .map(|d| format!("{GENERIC}\"{d}\"}}}}"))
                .collect();
            assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(
                lines(&mut s, b"\n{\"execute\": \"query-name\"}"),
                vec![r#"{"return": {}}"#],
                "recovery after {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn several_commands_in_one_chunk_and_split_commands() {
        let mut s = negotiated();
        assert_eq!(
            lines(&mut s, b"{\"execute\": \"echo\", \"arguments\": {\"text\": \"a\"}}{\"execute\": \"echo\", \"arguments\": {\"text\": \"b\"}}"),
            vec![r#"{"return": "a"}"#, r#"{"return": "b"}"#]
        );
        assert!(lines(&mut s, b"{\"execute\": \"ec").is_empty());
        assert!(s.pending() > 0);
        assert_eq!(
            lines(&mut s, b"ho\", \"arguments\": {\"text\": \"c\"}}"),
            vec![r#"{"return": "c"}"#]
        );
    }

    #[test]
    fn effects_follow_their_reply() {
        let mut s = negotiated();
        let out = s.feed(br#"{"execute": "quit"}"#, &mut Echo);
        assert_eq!(
            out,
            vec![
                Output::Send(b"{\"return\": {}}\r\n".to_vec()),
                Output::Effect(Effect::Quit)
            ]
        );
    }

    #[test]
    fn events_only_after_negotiation() {
        let e = Event {
            timestamp: Timestamp {
                seconds: 1,
                microseconds: 5,
            },
            event: "STOP".into(),
            data: None,
        };
        let s = Session::default();
        assert_eq!(s.event(&e), None);
        let s = negotiated();
        assert_eq!(
            s.event(&e).unwrap(),
            b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 5}, \"event\": \"STOP\"}\r\n"
        );
    }

    #[test]
    fn oversized_input_is_answered_and_bounded() {
        let mut s = negotiated();
        let mut big = b"{\"execute\": \"echo\", \"arguments\": {\"text\": \"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 2 << 20));
        big.extend_from_slice(b"\"}}");
        let got = lines(&mut s, &big);
        assert_eq!(got[0], generic("JSON token size limit exceeded"));
        assert!(s.pending() <= Limits::SERVER.max_bytes);
        assert_eq!(
            lines(&mut s, b"\n{\"execute\": \"query-name\"}")
                .last()
                .unwrap(),
            r#"{"return": {}}"#
        );
    }
}
