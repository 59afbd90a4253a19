//! The byte-level JSON lexer of QEMU's monitor (`qobject/json-lexer.c`),
//! rebuilt as a push state machine.
//!
//! It matters that this is QEMU's lexer and not a generic JSON tokenizer:
//! the error texts a client sees after malformed input, and where the
//! stream resynchronises, follow from its state table. In particular:
//! - a byte no state accepts is taken into the token, the token is
//!   reported as an error ("stray"), and the lexer enters *recovery*, which
//!   skips everything up to a structural character (`{ } [ ]`), an ASCII
//!   control character other than tab, or a `0xFE`/`0xFF` byte;
//! - numbers and keywords end only when a byte that cannot continue them
//!   arrives (so `null` alone stays pending until the next byte);
//! - strings may be double- or single-quoted; escapes and UTF-8 are checked
//!   later by the parser, raw bytes `0xFE`/`0xFF` and control characters
//!   inside a string are lexer errors.
#![forbid(unsafe_code)]

/// Kinds of complete tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    Integer,
    Float,
    Keyword,
    String,
}

/// What the lexer reports, with the token's bytes alongside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lexeme {
    Token(TokenKind),
    /// Bytes no state accepts (QEMU: `JSON_ERROR`).
    Error,
    /// One token grew past the size limit; its bytes were dropped.
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Recovery,
    DqString,
    DqEscape,
    SqString,
    SqEscape,
    Zero,
    NonzeroNumber,
    NegNonzeroNumber,
    Mantissa,
    MantissaDigits,
    ExpE,
    Sign,
    Digits,
    Keyword,
}

/// One step of the state table.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// Take the byte, stay inside a token in this state.
    Go(State),
    /// Take the byte; it completes a token.
    Emit(TokenKind),
    /// Do not take the byte; the token ended just before it.
    EmitBefore(TokenKind),
    /// Take the byte and discard the token text (whitespace).
    Skip,
    /// Take the byte; the token is an error.
    Error,
    /// Recovery: take the byte and drop it.
    StayRecovering,
    /// Recovery ends: go back to the start without taking the byte.
    Resync,
}

fn step(state: State, b: u8) -> Next {
    use Next::*;
    use State as S;
    match state {
        S::Start => match b {
            b'"' => Go(S::DqString),
            b'\'' => Go(S::SqString),
            b'0' => Go(S::Zero),
            b'1'..=b'9' => Go(S::NonzeroNumber),
            b'-' => Go(S::NegNonzeroNumber),
            b'{' => Emit(TokenKind::LCurly),
            b'}' => Emit(TokenKind::RCurly),
            b'[' => Emit(TokenKind::LSquare),
            b']' => Emit(TokenKind::RSquare),
            b',' => Emit(TokenKind::Comma),
            b':' => Emit(TokenKind::Colon),
            b'a'..=b'z' => Go(S::Keyword),
            b' ' | b'\t' | b'\r' | b'\n' => Skip,
            _ => Error,
        },
        S::Recovery => match b {
            b'\t' => StayRecovering,
            0..=0x1f | 0xfe | 0xff | b'[' | b']' | b'{' | b'}' => Resync,
            _ => StayRecovering,
        },
        S::DqString | S::SqString => {
            let quote = if state == S::DqString { b'"' } else { b'\'' };
            match b {
                b'\\' if state == S::DqString => Go(S::DqEscape),
                b'\\' => Go(S::SqEscape),
                _ if b == quote => Emit(TokenKind::String),
                0x20..=0xfd => Go(state),
                _ => Error,
            }
        }
        // Escapes are validated by the parser; the lexer only refuses
        // bytes that could never be part of a string.
        S::DqEscape => match b {
            0x20..=0xfd => Go(S::DqString),
            _ => Error,
        },
        S::SqEscape => match b {
            0x20..=0xfd => Go(S::SqString),
            _ => Error,
        },
        S::Zero => match b {
            b'0'..=b'9' => Error,
            b'.' => Go(S::Mantissa),
            b'e' | b'E' => Go(S::ExpE),
            _ => EmitBefore(TokenKind::Integer),
        },
        S::NonzeroNumber => match b {
            b'0'..=b'9' => Go(S::NonzeroNumber),
            b'.' => Go(S::Mantissa),
            b'e' | b'E' => Go(S::ExpE),
            _ => EmitBefore(TokenKind::Integer),
        },
        S::NegNonzeroNumber => match b {
            b'0' => Go(S::Zero),
            b'1'..=b'9' => Go(S::NonzeroNumber),
            _ => Error,
        },
        S::Mantissa => match b {
            b'0'..=b'9' => Go(S::MantissaDigits),
            _ => Error,
        },
        S::MantissaDigits => match b {
            b'0'..=b'9' => Go(S::MantissaDigits),
            b'e' | b'E' => Go(S::ExpE),
            _ => EmitBefore(TokenKind::Float),
        },
        S::ExpE => match b {
            b'-' | b'+' => Go(S::Sign),
            b'0'..=b'9' => Go(S::Digits),
            _ => Error,
        },
        S::Sign => match b {
            b'0'..=b'9' => Go(S::Digits),
            _ => Error,
        },
        S::Digits => match b {
            b'0'..=b'9' => Go(S::Digits),
            _ => EmitBefore(TokenKind::Float),
        },
        S::Keyword => match b {
            b'a'..=b'z' => Go(S::Keyword),
            _ => EmitBefore(TokenKind::Keyword),
        },
    }
}

/// QEMU's lexer state plus the text of the token being built.
#[derive(Debug)]
pub struct Lexer {
    state: State,
    token: Vec<u8>,
    max_token: usize,
}

impl Lexer {
    /// A lexer whose single tokens may not exceed `max_token` bytes.
    pub fn new(max_token: usize) -> Self {
        Lexer {
            state: State::Start,
            token: Vec::new(),
            max_token,
        }
    }

    /// Feeds one byte; `sink` gets every token or error it completes,
    /// with the token's bytes.
    pub fn feed(&mut self, b: u8, sink: &mut impl FnMut(Lexeme, &[u8])) {
        loop {
            let next = step(self.state, b);
            let consumed = !matches!(next, Next::EmitBefore(_) | Next::Resync);
            if consumed {
                self.token.push(b);
            }
            match next {
                Next::Go(s) => self.state = s,
                Next::Emit(kind) | Next::EmitBefore(kind) => {
                    sink(Lexeme::Token(kind), &self.token);
                    self.token.clear();
                    self.state = State::Start;
                }
                Next::Skip | Next::Resync => {
                    self.token.clear();
                    self.state = State::Start;
                }
                Next::Error => {
                    sink(Lexeme::Error, &self.token);
                    self.token.clear();
                    self.state = State::Recovery;
                }
                Next::StayRecovering => self.token.clear(),
            }
            if consumed {
                break;
            }
        }
        if self.token.len() > self.max_token {
            // QEMU hands the partial token on and restarts lexing in the
            // middle of it; skipping to the next structural character
            // instead keeps the rest of an oversized string from being
            // read as tokens.
            sink(Lexeme::TooLong, &[]);
            self.token = Vec::new();
            self.state = State::Recovery;
        }
    }

    /// Bytes held for the token in progress.
    pub fn pending(&self) -> usize {
        self.token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(input: &[u8]) -> Vec<(Lexeme, String)> {
        let mut lexer = Lexer::new(1 << 20);
        let mut out = Vec::new();
        for &b in input {
            lexer.feed(b, &mut |l, t| {
                out.push((l, String::from_utf8_lossy(t).into_owned()))
            });
        }
        out
    }

    fn tok(kind: TokenKind, text: &str) -> (Lexeme, String) {
        (Lexeme::Token(kind), text.to_string())
    }

    #[test]
    fn tokens_of_a_command() {
        use TokenKind::*;
        assert_eq!(
            lex(b"{\"execute\": 'x', \"id\": [-1.5e3, 0, true]}"),
            vec![
                tok(LCurly, "{"),
                tok(String, "\"execute\""),
                tok(Colon, ":"),
                tok(String, "'x'"),
                tok(Comma, ","),
                tok(String, "\"id\""),
                tok(Colon, ":"),
                tok(LSquare, "["),
                tok(Float, "-1.5e3"),
                tok(Comma, ","),
                tok(Integer, "0"),
                tok(Comma, ","),
                tok(Keyword, "true"),
                tok(RSquare, "]"),
                tok(RCurly, "}"),
            ]
        );
    }

    #[test]
    fn keyword_and_number_wait_for_the_next_byte() {
        assert_eq!(lex(b"null"), vec![]);
        assert_eq!(lex(b"12"), vec![]);
        assert_eq!(lex(b"null "), vec![tok(TokenKind::Keyword, "null")]);
        // Any byte ends a number, even one that is itself an error.
        assert_eq!(
            lex(b"1\xff"),
            vec![
                tok(TokenKind::Integer, "1"),
                (Lexeme::Error, "\u{fffd}".into())
            ]
        );
    }

    #[test]
    fn errors_take_the_offending_byte_and_recover_at_structure() {
        assert_eq!(
            lex(b"{\"foo\xffbar\"}"),
            vec![
                tok(TokenKind::LCurly, "{"),
                (Lexeme::Error, "\"foo\u{fffd}".into()),
                tok(TokenKind::RCurly, "}"),
            ]
        );
        assert_eq!(
            lex(b"\"a\nb\"]"),
            vec![
                (Lexeme::Error, "\"a\n".into()),
                tok(TokenKind::RSquare, "]"),
            ]
        );
        assert_eq!(lex(b"01"), vec![(Lexeme::Error, "01".into())]);
        assert_eq!(lex(b"-}"), vec![(Lexeme::Error, "-}".into())]);
        assert_eq!(lex(b"1.}"), vec![(Lexeme::Error, "1.}".into())]);
        // Tab does not end recovery, newline does.
        assert_eq!(
            lex(b"\x01abc\tdef\n1 "),
            vec![
                (Lexeme::Error, "\u{1}".into()),
                tok(TokenKind::Integer, "1")
            ]
        );
    }

    #[test]
    fn oversized_token_is_dropped() {
        let mut lexer = Lexer::new(8);
        let mut out = Vec::new();
        for &b in b"\"0123456789abcdef\" {" {
            lexer.feed(b, &mut |l, _| out.push(l));
        }
        assert_eq!(out, vec![Lexeme::TooLong, Lexeme::Token(TokenKind::LCurly)]);
        assert_eq!(lexer.pending(), 0);
    }
}
