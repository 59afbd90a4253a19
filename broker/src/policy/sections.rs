//! Splitting a large policy into batches of sections, so it can be parsed
//! without holding a tree of the whole document.
//!
//! `toml::from_str` first builds a tree of the whole document (about 2 KiB
//! per `[[allow]]` table), so a 10,000-rule policy used to peak at 23 MiB in
//! the broker. Here a lexer pass (toml_parser, streaming, no token vector)
//! finds where each top-level section starts; a policy made only of root
//! keys, at most one `[sandbox]` and the array tables `[[allow]]`,
//! `[[deny]]`, `[[listen]]`, `[[preopen]]` is then parsed batch by batch.
//! Each batch is the document with every byte outside its sections turned
//! into a space, so spans stay those of the whole file. For such a policy
//! batches concatenate to exactly what the whole-document parse yields
//! (array tables only append; nothing else crosses a section). Anything
//! else — another header, a dotted or quoted header, a root key naming one
//! of those tables, a second `[sandbox]`, a lexer error — returns `None`
//! and the caller parses the whole document, as do batch errors, so error
//! messages are always the whole-document parse's.

use std::ops::Range;

use toml_parser::lexer::{Token, TokenKind};
use toml_parser::Source;

/// Array tables a policy may repeat (the names of `RawPolicy`'s arrays).
const ARRAY_TABLES: [&str; 4] = ["allow", "deny", "listen", "preopen"];
/// The one standard table a policy may have.
const STD_TABLE: &str = "sandbox";

/// What a batch holds: byte ranges of the original text, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub ranges: Vec<Range<usize>>,
}

impl Batch {
    /// The document as this batch sees it: its ranges verbatim, every other
    /// byte a space (so offsets are unchanged and the text stays UTF-8:
    /// ranges start and end on ASCII `[` or at the ends of the text).
    pub fn text(&self, text: &str, buf: &mut Vec<u8>) {
        buf.clear();
        buf.resize(text.len(), b' ');
        for r in &self.ranges {
            buf[r.clone()].copy_from_slice(&text.as_bytes()[r.clone()]);
        }
    }
}

/// The batches of at most `per_batch` array-table sections, or `None` when
/// the document should be parsed whole (small, unusual, or not lexable).
/// The first batch also holds the root keys and the `[sandbox]` table.
pub fn batches(text: &str, per_batch: usize) -> Option<Vec<Batch>> {
    let per_batch = per_batch.max(1);
    let scan = scan(text)?;
    if scan.arrays.len() <= per_batch {
        return None;
    }
    let end_of = |start: usize| -> usize {
        // A section runs to the next section's start, or to the end.
        let next = scan.starts.partition_point(|&s| s <= start);
        scan.starts.get(next).copied().unwrap_or(text.len())
    };
    let mut out = Vec::new();
    for (i, chunk) in scan.arrays.chunks(per_batch).enumerate() {
        let mut ranges = Vec::with_capacity(chunk.len() + 2);
        if i == 0 {
            let root_end = scan.starts.first().copied().unwrap_or(text.len());
            ranges.push(0..root_end);
            if let Some(s) = scan.sandbox {
                ranges.push(s..end_of(s));
            }
        }
        // Consecutive sections of a chunk are contiguous unless the sandbox
        // section sits between them; store runs, not one range per section.
        let first = chunk[0];
        let last = chunk[chunk.len() - 1];
        let run_end = end_of(last);
        match scan.sandbox {
            Some(s) if s > first && s < run_end => {
                ranges.push(first..s);
                let after = end_of(s);
                if after < run_end {
                    ranges.push(after..run_end);
                }
            }
            _ => ranges.push(first..run_end),
        }
        ranges.sort_by_key(|r| r.start);
        ranges.retain(|r| !r.is_empty());
        out.push(Batch { ranges });
    }
    Some(out)
}

struct Scan {
    /// Start offset of every header, in order.
    starts: Vec<usize>,
    /// Start offsets of the array-table headers.
    arrays: Vec<usize>,
    /// Start offset of the `[sandbox]` header.
    sandbox: Option<usize>,
}

/// One pass over the tokens, line by line at nesting depth 0.
fn scan(text: &str) -> Option<Scan> {
    let source = Source::new(text);
    let mut tokens = source.lex().filter(|t| t.kind() != TokenKind::Eof);
    let mut scan = Scan {
        starts: Vec::new(),
        arrays: Vec::new(),
        sandbox: None,
    };
    let raw = |t: &Token| source.get(t.span()).map(|r| r.as_str());
    loop {
        // Line start: skip indentation.
        let mut tok = tokens.next();
        while matches!(tok, Some(t) if t.kind() == TokenKind::Whitespace) {
            tok = tokens.next();
        }
        let Some(first) = tok else {
            return Some(scan);
        };
        match first.kind() {
            TokenKind::Newline => continue,
            TokenKind::Comment => {
                expect_line_end(&mut tokens)?;
            }
            TokenKind::LeftSquareBracket => {
                let start = first.span().start();
                let (array, name) = header(&first, &mut tokens, raw)?;
                if array {
                    if !ARRAY_TABLES.contains(&name) {
                        return None;
                    }
                    scan.arrays.push(start);
                } else {
                    if name != STD_TABLE || scan.sandbox.is_some() {
                        return None;
                    }
                    scan.sandbox = Some(start);
                }
                scan.starts.push(start);
                expect_line_end(&mut tokens)?;
            }
            TokenKind::Atom | TokenKind::BasicString | TokenKind::LiteralString => {
                if scan.starts.is_empty() {
                    // A root key: must not name (or dot into) a table the
                    // batches assemble; quoted root keys are not decoded here.
                    if first.kind() != TokenKind::Atom {
                        return None;
                    }
                    let key = raw(&first)?;
                    let head = key.split('.').next().unwrap_or(key);
                    if head == STD_TABLE || ARRAY_TABLES.contains(&head) {
                        return None;
                    }
                }
                key_value_rest(&mut tokens)?;
            }
            _ => return None,
        }
    }
}

/// The rest of a table header after its first `[`: whether it is an
/// array-table header (`[[`, with no space between the brackets) and its
/// name (unquoted, undotted names only), or `None` for anything else.
fn header<'t>(
    first: &Token,
    tokens: &mut impl Iterator<Item = Token>,
    raw: impl Fn(&Token) -> Option<&'t str>,
) -> Option<(bool, &'t str)> {
    let mut next = tokens.next()?;
    let array = next.kind() == TokenKind::LeftSquareBracket;
    if array {
        if next.span().start() != first.span().end() {
            return None;
        }
        next = tokens.next()?;
    }
    if next.kind() == TokenKind::Whitespace {
        next = tokens.next()?;
    }
    if next.kind() != TokenKind::Atom {
        return None;
    }
    let name = raw(&next)?;
    let mut close = tokens.next()?;
    if close.kind() == TokenKind::Whitespace {
        close = tokens.next()?;
    }
    if close.kind() != TokenKind::RightSquareBracket {
        return None;
    }
    if array {
        let second = tokens.next()?;
        if second.kind() != TokenKind::RightSquareBracket
            || second.span().start() != close.span().end()
        {
            return None;
        }
    }
    Some((array, name))
}

/// Consumes the rest of a header or comment line: whitespace, at most one
/// comment, then a newline or the end.
fn expect_line_end(tokens: &mut impl Iterator<Item = Token>) -> Option<()> {
    for t in tokens.by_ref() {
        match t.kind() {
            TokenKind::Whitespace | TokenKind::Comment => {}
            TokenKind::Newline => return Some(()),
            _ => return None,
        }
    }
    Some(())
}

/// Consumes a key-value line after its first token, following brackets so
/// that arrays and inline tables spanning lines stay one line.
fn key_value_rest(tokens: &mut impl Iterator<Item = Token>) -> Option<()> {
    let mut depth = 0usize;
    for t in tokens.by_ref() {
        match t.kind() {
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
            TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                depth = depth.checked_sub(1)?;
            }
            TokenKind::Newline if depth == 0 => return Some(()),
            _ => {}
        }
    }
    (depth == 0).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(n: usize) -> String {
        let mut s = String::from("version = 1 # v\n\n");
        for i in 0..n {
            s.push_str(&format!("[[allow]]\npath = \"/srv/f{i}\"\n\n"));
        }
        s
    }

    #[test]
    fn small_policies_are_parsed_whole() {
        assert_eq!(batches(&policy(3), 3), None);
    }

    #[test]
    fn batches_cover_every_section_once_and_the_root_first() {
        let text = policy(5);
        let b = batches(&text, 2).expect("batches");
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].ranges[0].start, 0);
        let mut covered = vec![0u8; text.len()];
        for batch in &b {
            for r in &batch.ranges {
                for c in &mut covered[r.clone()] {
                    *c += 1;
                }
            }
        }
        assert!(covered.iter().all(|&c| c == 1));
    }

    #[test]
    fn the_sandbox_table_goes_with_the_first_batch() {
        let text = format!(
            "{}[sandbox]\nmode = \"off\"\n\n[[deny]]\npath = \"/srv/x\"\n",
            policy(3)
        );
        let b = batches(&text, 1).expect("batches");
        let s = text.find("[sandbox]").expect("sandbox");
        assert!(b[0].ranges.iter().any(|r| r.start == s));
        assert!(b[1..]
            .iter()
            .all(|x| x.ranges.iter().all(|r| !r.contains(&s))));
        let mut buf = Vec::new();
        b[2].text(&text, &mut buf);
        assert_eq!(buf.len(), text.len());
        let seen = String::from_utf8(buf).expect("utf8");
        assert!(!seen.contains("sandbox") && !seen.contains("version"));
    }

    #[test]
    fn unusual_documents_are_parsed_whole() {
        let base = policy(4);
        for extra in [
            "[[allow.sub]]\npath = \"/x\"\n",
            "[\"allow\"]\n",
            "[other]\n",
            "[sandbox]\n[sandbox]\n",
            "[[ allow ]\n",
            "[[sandbox]]\n",
        ] {
            assert_eq!(batches(&format!("{base}{extra}"), 1), None, "{extra}");
        }
        for root in ["allow = []\n", "sandbox.mode = \"off\"\n", "\"x\" = 1\n"] {
            assert_eq!(batches(&format!("{root}{base}"), 1), None, "{root}");
        }
    }

    #[test]
    fn headers_inside_strings_and_values_are_not_sections() {
        let text = format!(
            "{}[[allow]]\npath = \"\"\"\n[[allow]]\n\"\"\"\ntypes = [\n  \"file\",\n]\n",
            policy(2)
        );
        let b = batches(&text, 1).expect("batches");
        assert_eq!(b.len(), 3);
    }
}
