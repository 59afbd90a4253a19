//! QEMU's JSON parser (`qobject/json-parser.c`) over one message's tokens:
//! the same grammar extensions (single-quoted strings, modified UTF-8
//! `C0 80`), the same checks (duplicate keys, noncharacters, surrogates)
//! and the same first-error-wins messages.
#![forbid(unsafe_code)]

use serde_json::{Map, Number, Value};

use super::lexer::TokenKind;

/// A message that is not JSON QMP can read. `Display` gives QEMU's desc.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Bytes the lexer refused, quoted as QEMU does.
    #[error("JSON parse error, stray '{0}'")]
    Stray(String),
    /// A grammar error with QEMU's fixed text.
    #[error("JSON parse error, {0}")]
    Syntax(&'static str),
    #[error("JSON parse error, invalid keyword '{0}'")]
    InvalidKeyword(String),
    #[error("JSON parse error, {0} is not a valid Unicode character")]
    InvalidUnicode(String),
    /// A number whose value is not finite as a double (QEMU would pass
    /// on `inf`, which is not JSON).
    #[error("JSON parse error, number out of range")]
    NumberOutOfRange,
    #[error("JSON token size limit exceeded")]
    TokenSizeLimit,
    #[error("JSON token count limit exceeded")]
    TokenCountLimit,
    #[error("JSON nesting depth limit exceeded")]
    NestingLimit,
}

/// One token of a message: its kind and its byte range in the message text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

struct Parser<'a> {
    text: &'a [u8],
    tokens: &'a [Token],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Result<Token, JsonError> {
        self.tokens
            .get(self.pos)
            .copied()
            .ok_or(JsonError::Syntax("premature EOI"))
    }

    fn pop(&mut self) -> Result<Token, JsonError> {
        let t = self.peek()?;
        self.pos += 1;
        Ok(t)
    }

    fn bytes(&self, t: Token) -> &'a [u8] {
        &self.text[t.start..t.end]
    }

    fn value(&mut self) -> Result<Value, JsonError> {
        let t = self.peek()?;
        match t.kind {
            TokenKind::LCurly => self.object(),
            TokenKind::LSquare => self.array(),
            TokenKind::Integer | TokenKind::Float | TokenKind::String => {
                self.pos += 1;
                literal(t.kind, self.bytes(t))
            }
            TokenKind::Keyword => {
                self.pos += 1;
                match self.bytes(t) {
                    b"true" => Ok(Value::Bool(true)),
                    b"false" => Ok(Value::Bool(false)),
                    b"null" => Ok(Value::Null),
                    other => Err(JsonError::InvalidKeyword(
                        String::from_utf8_lossy(other).into_owned(),
                    )),
                }
            }
            _ => Err(JsonError::Syntax("expecting value")),
        }
    }

    fn object(&mut self) -> Result<Value, JsonError> {
        self.pop()?; // '{'
        let mut map = Map::new();
        if self.peek()?.kind == TokenKind::RCurly {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        self.pair(&mut map)?;
        loop {
            let t = self.pop()?;
            match t.kind {
                TokenKind::RCurly => return Ok(Value::Object(map)),
                TokenKind::Comma => self.pair(&mut map)?,
                _ => return Err(JsonError::Syntax("expected separator in dict")),
            }
        }
    }

    fn pair(&mut self, map: &mut Map<String, Value>) -> Result<(), JsonError> {
        self.peek()?;
        let Value::String(key) = self.value()? else {
            return Err(JsonError::Syntax("key is not a string in object"));
        };
        if self.pop()?.kind != TokenKind::Colon {
            return Err(JsonError::Syntax("missing : in object pair"));
        }
        let value = self.value()?;
        if map.contains_key(&key) {
            return Err(JsonError::Syntax("duplicate key"));
        }
        map.insert(key, value);
        Ok(())
    }

    fn array(&mut self) -> Result<Value, JsonError> {
        self.pop()?; // '['
        let mut list = Vec::new();
        if self.peek()?.kind == TokenKind::RSquare {
            self.pos += 1;
            return Ok(Value::Array(list));
        }
        list.push(self.value()?);
        loop {
            let t = self.pop()?;
            match t.kind {
                TokenKind::RSquare => return Ok(Value::Array(list)),
                TokenKind::Comma => list.push(self.value()?),
                _ => return Err(JsonError::Syntax("expected separator in list")),
            }
        }
    }
}

/// Parses one balanced message (or a lone scalar) to a value.
pub(crate) fn parse(text: &[u8], tokens: &[Token]) -> Result<Value, JsonError> {
    let mut p = Parser {
        text,
        tokens,
        pos: 0,
    };
    let v = p.value()?;
    // The splitter hands over exactly one balanced value, so nothing can
    // follow it; refuse rather than drop should that ever change.
    if p.pos != tokens.len() {
        return Err(JsonError::Syntax("expecting value"));
    }
    Ok(v)
}

fn literal(kind: TokenKind, text: &[u8]) -> Result<Value, JsonError> {
    if kind == TokenKind::String {
        return string(text).map(Value::String);
    }
    // Number tokens are ASCII by construction of the lexer.
    let s = std::str::from_utf8(text).map_err(|_| JsonError::Syntax("expecting value"))?;
    if kind == TokenKind::Integer {
        if let Ok(i) = s.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = s.parse::<u64>() {
            return Ok(Value::Number(u.into()));
        }
    }
    // Like QEMU, an integer out of 64-bit range becomes a double.
    s.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or(JsonError::NumberOutOfRange)
}

fn hex4(b: &[u8]) -> Option<u32> {
    let digits = b.get(..4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// QEMU's `is_valid_codepoint`: no surrogates, no noncharacters.
fn valid_codepoint(cp: u32) -> Option<char> {
    if (0xfdd0..=0xfdef).contains(&cp) || (cp & 0xfffe) == 0xfffe {
        return None;
    }
    char::from_u32(cp)
}

/// Decodes one modified-UTF-8 character at the start of `b`.
fn utf8_char(b: &[u8]) -> Option<(char, usize)> {
    if b.starts_with(&[0xc0, 0x80]) {
        return Some(('\0', 2));
    }
    let len = match b.first()? {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(b.get(..len)?).ok()?;
    let c = s.chars().next()?;
    valid_codepoint(u32::from(c)).map(|c| (c, len))
}

/// Decodes a string token, quotes included.
fn string(tok: &[u8]) -> Result<String, JsonError> {
    let quote = tok[0];
    let body = &tok[1..tok.len() - 1];
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b != b'\\' {
            let (c, n) = utf8_char(&body[i..])
                .ok_or(JsonError::Syntax("invalid UTF-8 sequence in string"))?;
            out.push(c);
            i += n;
            continue;
        }
        // `body` cannot end in a lone backslash: the lexer would have
        // taken the closing quote as escaped.
        let esc = body.get(i + 1).copied().unwrap_or(quote);
        i += 2;
        let c = match esc {
            b'"' => '"',
            b'\'' => '\'',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let escape_at = i - 2;
                let mut cp = hex4(&body[i..]);
                let mut used = 4;
                if let Some(lead @ 0xd800..=0xdbff) = cp {
                    cp = None;
                    if body[i + 4..].starts_with(b"\\u") {
                        if let Some(trail @ 0xdc00..=0xdfff) = hex4(&body[i + 6..]) {
                            cp = Some(0x10000 + ((lead & 0x3ff) << 10) + (trail & 0x3ff));
                            used = 10;
                        }
                    }
                }
                match cp.and_then(valid_codepoint) {
                    Some(c) => {
                        i += used;
                        c
                    }
                    None => {
                        // QEMU quotes the escape as the 6 bytes from the
                        // backslash, cut at the token's end.
                        let from = 1 + escape_at;
                        let to = (from + 6).min(tok.len());
                        return Err(JsonError::InvalidUnicode(
                            String::from_utf8_lossy(&tok[from..to]).into_owned(),
                        ));
                    }
                }
            }
            _ => return Err(JsonError::Syntax("invalid escape sequence in string")),
        };
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(string(b"\"a\\'b\\\"\"").unwrap(), "a'b\"");
        assert_eq!(string(b"'a\\'b\"'").unwrap(), "a'b\"");
        assert_eq!(
            string(b"\"\xc0\x80\x7f\xe2\x82\xac\xf0\x9f\x98\x80\\u0000/\\t\"").unwrap(),
            "\0\u{7f}\u{20ac}\u{1f600}\0/\t"
        );
        assert_eq!(string(b"\"\\ud800\\udc00\"").unwrap(), "\u{10000}");
        assert_eq!(
            string(b"\"\\u12\"").unwrap_err(),
            JsonError::InvalidUnicode("\\u12\"".into())
        );
        assert_eq!(
            string(b"\"\\ud800\"").unwrap_err(),
            JsonError::InvalidUnicode("\\ud800".into())
        );
        assert_eq!(
            string(b"\"\\ud800\\u0041\"").unwrap_err(),
            JsonError::InvalidUnicode("\\ud800".into())
        );
        assert_eq!(
            string(b"\"\\uFFFE\"").unwrap_err(),
            JsonError::InvalidUnicode("\\uFFFE".into())
        );
        assert_eq!(
            string(b"\"\\q\"").unwrap_err(),
            JsonError::Syntax("invalid escape sequence in string")
        );
        for bad in [
            &b"\"\xef\xbf\xbe\""[..],
            b"\"\xed\xa0\x80\"",
            b"\"\xc1\xbf\"",
            b"\"\x80\"",
        ] {
            assert_eq!(
                string(bad).unwrap_err(),
                JsonError::Syntax("invalid UTF-8 sequence in string"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn numbers() {
        use TokenKind::{Float, Integer};
        assert_eq!(literal(Integer, b"-5").unwrap(), serde_json::json!(-5));
        assert_eq!(
            literal(Integer, b"18446744073709551615").unwrap(),
            serde_json::json!(u64::MAX)
        );
        assert_eq!(
            literal(Integer, b"-9223372036854775809").unwrap(),
            serde_json::json!(-9.223372036854776e18)
        );
        assert_eq!(literal(Float, b"1.5e3").unwrap(), serde_json::json!(1500.0));
        assert_eq!(
            literal(Float, b"1e999").unwrap_err(),
            JsonError::NumberOutOfRange
        );
    }
}
