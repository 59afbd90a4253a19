//! The JSON stream splitter of QEMU's monitor (`qobject/json-streamer.c`):
//! push bytes, get whole JSON values or parse errors, one per message.
//!
//! Tokens are collected while braces or brackets are open; a value is
//! parsed when they balance (or one count goes negative, which is reported
//! as an error). A lexer error, or a message over a limit, is reported and
//! the collection starts afresh, so a client can always resynchronise (for
//! instance by sending a newline, or `0xFF`). Memory is bounded by
//! [`Limits`].
#![forbid(unsafe_code)]

use serde_json::Value;

use super::lexer::{Lexeme, Lexer, TokenKind};
use super::parse::{parse, Token};

pub use super::parse::JsonError;

/// Bounds on one message. QEMU uses 64 MiB, 2 Mi tokens and depth 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of token text in one message (and in any single token).
    pub max_bytes: usize,
    /// Tokens in one message.
    pub max_tokens: usize,
    /// Open braces plus brackets.
    pub max_depth: usize,
}

impl Limits {
    /// What a monitor accepts from a client: a command is small, so a
    /// megabyte is generous and keeps a hostile client cheap.
    pub const SERVER: Limits = Limits {
        max_bytes: 1 << 20,
        max_tokens: 1 << 16,
        max_depth: 1024,
    };
    /// What the client library accepts from a server (QEMU's own limits).
    pub const CLIENT: Limits = Limits {
        max_bytes: 64 << 20,
        max_tokens: 2 << 20,
        max_depth: 1024,
    };
}

/// One item out of the stream.
pub type Item = Result<Value, JsonError>;

/// Splits a byte stream into JSON values.
#[derive(Debug)]
pub struct JsonStream {
    lexer: Lexer,
    limits: Limits,
    text: Vec<u8>,
    tokens: Vec<Token>,
    braces: i64,
    brackets: i64,
}

impl JsonStream {
    pub fn new(limits: Limits) -> Self {
        JsonStream {
            lexer: Lexer::new(limits.max_bytes),
            limits,
            text: Vec::new(),
            tokens: Vec::new(),
            braces: 0,
            brackets: 0,
        }
    }

    /// Feeds bytes; appends every completed message to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Item>) {
        let mut lexer = std::mem::replace(&mut self.lexer, Lexer::new(0));
        for &b in bytes {
            lexer.feed(b, &mut |lexeme, text| self.token(lexeme, text, out));
        }
        self.lexer = lexer;
    }

    /// Convenience: feed and collect.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Item> {
        let mut out = Vec::new();
        self.feed(bytes, &mut out);
        out
    }

    /// Bytes held for an incomplete message.
    pub fn pending(&self) -> usize {
        self.text.len() + self.lexer.pending()
    }

    fn reset(&mut self) {
        self.text = Vec::new();
        self.tokens = Vec::new();
        self.braces = 0;
        self.brackets = 0;
    }

    fn emit(&mut self, item: Item, out: &mut Vec<Item>) {
        self.reset();
        out.push(item);
    }

    fn token(&mut self, lexeme: Lexeme, text: &[u8], out: &mut Vec<Item>) {
        let kind = match lexeme {
            Lexeme::Token(kind) => kind,
            Lexeme::Error => {
                let stray = String::from_utf8_lossy(text).into_owned();
                return self.emit(Err(JsonError::Stray(stray)), out);
            }
            Lexeme::TooLong => return self.emit(Err(JsonError::TokenSizeLimit), out),
        };
        match kind {
            TokenKind::LCurly => self.braces += 1,
            TokenKind::RCurly => self.braces -= 1,
            TokenKind::LSquare => self.brackets += 1,
            TokenKind::RSquare => self.brackets -= 1,
            _ => {}
        }
        if self.text.len() + text.len() + 1 > self.limits.max_bytes {
            return self.emit(Err(JsonError::TokenSizeLimit), out);
        }
        if self.tokens.len() + 1 > self.limits.max_tokens {
            return self.emit(Err(JsonError::TokenCountLimit), out);
        }
        let depth = self.braces + self.brackets;
        if usize::try_from(depth).is_ok_and(|d| d > self.limits.max_depth) {
            return self.emit(Err(JsonError::NestingLimit), out);
        }
        let start = self.text.len();
        self.text.extend_from_slice(text);
        self.tokens.push(Token {
            kind,
            start,
            end: self.text.len(),
        });
        if (self.braces > 0 || self.brackets > 0) && self.braces >= 0 && self.brackets >= 0 {
            return;
        }
        let item = parse(&self.text, &self.tokens);
        self.emit(item, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn descs(input: &[u8]) -> Vec<Result<Value, String>> {
        JsonStream::new(Limits::SERVER)
            .push(input)
            .into_iter()
            .map(|i| i.map_err(|e| e.to_string()))
            .collect()
    }

    fn err(s: &str) -> Result<Value, String> {
        Err(s.to_string())
    }

    #[test]
    fn splits_values_across_and_within_chunks() {
        let mut s = JsonStream::new(Limits::SERVER);
        let mut out = Vec::new();
        for chunk in [&b"{\"a\": [1, {"[..], b"}]}{\"b\"", b":null}\r\n"] {
            s.feed(chunk, &mut out);
        }
        assert_eq!(out, vec![Ok(json!({"a": [1, {}]})), Ok(json!({"b": null}))]);
        assert_eq!(s.pending(), 0);
    }

    /// The qmp-test malformed inputs, with the texts QEMU 7.2 answers.
    #[test]
    fn qemu_malformed_inputs() {
        assert_eq!(descs(b"{]"), vec![err("JSON parse error, expecting value")]);
        assert_eq!(
            descs(b"{\xff"),
            vec![err("JSON parse error, stray '\u{fffd}'")]
        );
        assert_eq!(
            descs(b"{\x01"),
            vec![err("JSON parse error, stray '\u{1}'")]
        );
        assert_eq!(
            descs(b"{\"execute\":\"foo\xffbar\"}"),
            vec![
                err("JSON parse error, stray '\"foo\u{fffd}'"),
                err("JSON parse error, expecting value")
            ]
        );
        assert_eq!(
            descs(b"{\"execute\":\"a\nb\"}"),
            vec![
                err("JSON parse error, stray '\"a\n'"),
                err("JSON parse error, expecting value")
            ]
        );
        // `null` completes only when the next byte arrives.
        assert_eq!(descs(b"null"), vec![]);
        assert_eq!(descs(b"null{}"), vec![Ok(Value::Null), Ok(json!({}))]);
        assert_eq!(
            descs(b"{\"a\":1,\"a\":2}"),
            vec![err("JSON parse error, duplicate key")]
        );
        assert_eq!(
            descs(b"[1 2]"),
            vec![err("JSON parse error, expected separator in list")]
        );
        assert_eq!(
            descs(b"{\"a\" 1}"),
            vec![err("JSON parse error, missing : in object pair")]
        );
        assert_eq!(
            descs(b"{\"a\":1 \"b\":2}"),
            vec![err("JSON parse error, expected separator in dict")]
        );
        assert_eq!(
            descs(b"{1:1}"),
            vec![err("JSON parse error, key is not a string in object")]
        );
        assert_eq!(
            descs(b"[nul]"),
            vec![err("JSON parse error, invalid keyword 'nul'")]
        );
        assert_eq!(
            descs(b"{\"a\":1}}"),
            vec![
                Ok(json!({"a": 1})),
                err("JSON parse error, expecting value")
            ]
        );
        assert_eq!(
            descs(b"[1,]"),
            vec![err("JSON parse error, expecting value")]
        );
        assert_eq!(
            descs(b"\"\\u12\""),
            vec![err(
                "JSON parse error, \\u12\" is not a valid Unicode character"
            )]
        );
    }

    #[test]
    fn recovers_after_every_error() {
        let mut s = JsonStream::new(Limits::SERVER);
        for bad in [
            &b"{]"[..],
            b"{\xff",
            b"{\x01",
            b"{\"x\":\"a\xffb\"}",
            b"{\"x\":\"a\nb\"}",
            b"null ",
            b"01",
        ] {
            s.push(bad);
            let good = s.push(b"\n{\"execute\":\"x\"}");
            assert_eq!(good.last(), Some(&Ok(json!({"execute": "x"}))), "{bad:?}");
            assert_eq!(s.pending(), 0);
        }
    }

    #[test]
    fn limits_bound_memory() {
        let limits = Limits {
            max_bytes: 64,
            max_tokens: 8,
            max_depth: 4,
        };
        let mut s = JsonStream::new(limits);
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
        let out = s.push(long.as_bytes());
        assert_eq!(out[0], Err(JsonError::TokenSizeLimit));
        assert!(s.pending() <= 64);
        assert_eq!(s.push(b"\n{}").last(), Some(&Ok(json!({}))));

        let out = s.push(b"[1,2,3,4,5,6,7]");
        assert_eq!(out[0], Err(JsonError::TokenCountLimit));
        s.push(b"\n");

        let out = s.push(b"[[[[[");
        assert_eq!(out, vec![Err(JsonError::NestingLimit)]);
    }

    #[test]
    fn deep_nesting_is_answered_not_recursed() {
        let mut s = JsonStream::new(Limits::SERVER);
        let mut deep = vec![b'['; 10_000];
        deep.extend(vec![b']'; 10_000]);
        let out = s.push(&deep);
        // Every 1025th bracket trips the limit and restarts the count.
        let limited = out
            .iter()
            .filter(|i| **i == Err(JsonError::NestingLimit))
            .count();
        assert_eq!(limited, 9);
        assert_eq!(s.push(b"{}"), vec![Ok(json!({}))]);
    }
}
