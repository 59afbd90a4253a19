//! QemuOpts: QEMU's `key=value,key=value` option syntax (pure core).
//!
//! Rules, as QEMU's `util/qemu-option.c` applies them:
//! - Parameters are separated by `,`; inside a value `,,` stands for one
//!   literal comma. Names end at the first `=` or `,` and are not escaped.
//! - The first parameter may omit its name when the option has an implied
//!   one (`-chardev socket,id=x` means `backend=socket`); its whole text up
//!   to the next single comma is the value (`,,` escapes apply).
//! - Any later parameter without `=` is a short-form boolean: `server` means
//!   `server=on`, `nowait` means `wait=off` (QEMU accepts and warns).
//! - When a name repeats, the last value counts.
//!
//! The lexer keeps every pair in order with its byte offset; [`OptsReader`]
//! then takes the keys an option knows and reports the first one left over,
//! so unknown parameters are errors (fail closed).
#![forbid(unsafe_code)]

use super::scalar;

/// One `name=value` pair as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptPair {
    pub name: String,
    pub value: String,
    /// Byte offset of the pair in the option text.
    pub offset: usize,
    /// Written as a bare `name` / `noname` (short-form boolean).
    pub short_form: bool,
    /// Taken from the implied first name.
    pub implied: bool,
}

/// Errors of the lexer and of typed lookups; `Display` is QEMU's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptsError {
    /// A parameter with an empty name (`,x=1` or `=1`).
    #[error("Invalid parameter '' at offset {offset}")]
    EmptyName { offset: usize },
    /// A name the option does not know.
    #[error("Invalid parameter '{name}'")]
    Unknown { name: String },
    /// A value of the wrong shape; `expects` completes "expects ...".
    #[error("Parameter '{name}' expects {expects}")]
    BadValue { name: String, expects: &'static str },
    /// A required parameter is missing.
    #[error("Parameter '{name}' is missing")]
    Missing { name: String },
}

/// The parsed pairs of one option argument, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QemuOpts {
    pub pairs: Vec<OptPair>,
}

/// Parses `text`; `implied` names a nameless first parameter.
pub fn parse(text: &str, implied: Option<&str>) -> Result<QemuOpts, OptsError> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut pos = 0;
    let mut first = true;
    while pos < bytes.len() {
        let start = pos;
        let rest = &text[pos..];
        let name_len = rest.find(['=', ',']).unwrap_or(rest.len());
        let has_eq = rest.as_bytes().get(name_len) == Some(&b'=');
        if !has_eq && first && implied.is_some() {
            let (value, used) = read_value(rest);
            pairs.push(OptPair {
                name: implied.unwrap_or_default().to_string(),
                value,
                offset: start,
                short_form: false,
                implied: true,
            });
            pos += used;
        } else if !has_eq {
            let raw = &rest[..name_len];
            if raw.is_empty() {
                return Err(OptsError::EmptyName { offset: start });
            }
            let (name, value) = match raw.strip_prefix("no") {
                Some(stripped) => (stripped, "off"),
                None => (raw, "on"),
            };
            if name.is_empty() {
                return Err(OptsError::EmptyName { offset: start });
            }
            pairs.push(OptPair {
                name: name.to_string(),
                value: value.to_string(),
                offset: start,
                short_form: true,
                implied: false,
            });
            pos += name_len;
        } else {
            let name = &rest[..name_len];
            if name.is_empty() {
                return Err(OptsError::EmptyName { offset: start });
            }
            let (value, used) = read_value(&rest[name_len + 1..]);
            pairs.push(OptPair {
                name: name.to_string(),
                value,
                offset: start,
                short_form: false,
                implied: false,
            });
            pos += name_len + 1 + used;
        }
        // Skip the separating comma (a trailing one ends the text).
        if bytes.get(pos) == Some(&b',') {
            pos += 1;
        }
        first = false;
    }
    Ok(QemuOpts { pairs })
}

/// Reads a value up to a single `,` (not consumed); `,,` is a comma.
/// Returns the value and the bytes used.
fn read_value(text: &str) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut run_start = 0;
    while i < bytes.len() {
        if bytes[i] == b',' {
            if bytes.get(i + 1) == Some(&b',') {
                out.push_str(&text[run_start..=i]);
                i += 2;
                run_start = i;
                continue;
            }
            break;
        }
        i += 1;
    }
    out.push_str(&text[run_start..i]);
    (out, i)
}

impl QemuOpts {
    /// A reader that tracks which names were consumed.
    pub fn reader(self) -> OptsReader {
        OptsReader { pairs: self.pairs }
    }

    /// The last value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }
}

/// Takes known parameters out of a [`QemuOpts`]; [`OptsReader::finish`]
/// rejects whatever is left.
#[derive(Debug)]
pub struct OptsReader {
    pairs: Vec<OptPair>,
}

impl OptsReader {
    /// Removes every occurrence of `name`, returning the last value.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let mut last = None;
        self.pairs.retain(|p| {
            if p.name == name {
                last = Some(p.value.clone());
                false
            } else {
                true
            }
        });
        last
    }

    /// Like [`take`](Self::take) but required.
    pub fn require(&mut self, name: &str) -> Result<String, OptsError> {
        self.take(name).ok_or_else(|| OptsError::Missing {
            name: name.to_string(),
        })
    }

    /// A boolean (`on|off|yes|no|true|false|y|n`).
    pub fn take_bool(&mut self, name: &str) -> Result<Option<bool>, OptsError> {
        self.take(name)
            .map(|v| {
                scalar::parse_bool(&v).ok_or_else(|| OptsError::BadValue {
                    name: name.to_string(),
                    expects: "'on' or 'off'",
                })
            })
            .transpose()
    }

    /// An unsigned number in QEMU's notation (decimal, `0x` hex, `0` octal).
    pub fn take_u64(&mut self, name: &str) -> Result<Option<u64>, OptsError> {
        self.take(name)
            .map(|v| {
                scalar::parse_u64(&v).ok_or_else(|| OptsError::BadValue {
                    name: name.to_string(),
                    expects: "a number",
                })
            })
            .transpose()
    }

    /// A signed number (QEMU's `QEMU_OPT_NUMBER` accepts a leading `-`).
    pub fn take_i64(&mut self, name: &str) -> Result<Option<i64>, OptsError> {
        self.take(name)
            .map(|v| {
                scalar::parse_i64(&v).ok_or_else(|| OptsError::BadValue {
                    name: name.to_string(),
                    expects: "a number",
                })
            })
            .transpose()
    }

    /// A size with optional suffix; `default_unit` applies to a bare number.
    pub fn take_size(&mut self, name: &str, default_unit: u64) -> Result<Option<u64>, OptsError> {
        self.take(name)
            .map(|v| {
                scalar::parse_size(&v, default_unit).ok_or_else(|| OptsError::BadValue {
                    name: name.to_string(),
                    expects: "a non-negative number below 2^64",
                })
            })
            .transpose()
    }

    /// Drops `name` whatever its value (an accepted, ignored parameter).
    pub fn ignore(&mut self, name: &str) {
        self.take(name);
    }

    /// Fails on the first parameter nobody took.
    pub fn finish(self) -> Result<(), OptsError> {
        match self.pairs.into_iter().next() {
            Some(p) => Err(OptsError::Unknown { name: p.name }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str, implied: Option<&str>) -> Vec<(String, String)> {
        parse(text, implied)
            .unwrap()
            .pairs
            .into_iter()
            .map(|p| (p.name, p.value))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn seed_000_socket_short_forms() {
        // Seed 000's Perl launcher, verbatim.
        assert_eq!(
            kv("socket,fd=3,server,nowait,id=mon", Some("backend")),
            pairs(&[
                ("backend", "socket"),
                ("fd", "3"),
                ("server", "on"),
                ("wait", "off"),
                ("id", "mon")
            ])
        );
    }

    #[test]
    fn qemu_test_qemu_opts_implied_and_flags() {
        // tests/unit/test-qemu-opts.c "Implied value": "an,noaus,noaus="
        assert_eq!(
            kv("an,noaus,noaus=", Some("implied")),
            pairs(&[("implied", "an"), ("aus", "off"), ("noaus", "")])
        );
        // Without an implied name a bare first word is a flag.
        assert_eq!(kv("an,noaus", None), pairs(&[("an", "on"), ("aus", "off")]));
    }

    #[test]
    fn comma_escapes() {
        assert_eq!(
            kv("file=a,,b.img,if=virtio", None),
            pairs(&[("file", "a,b.img"), ("if", "virtio")])
        );
        // Implied value with an escaped comma.
        assert_eq!(
            kv("a,,b,id=x", Some("backend")),
            pairs(&[("backend", "a,b"), ("id", "x")])
        );
        // Four commas: two literal commas.
        assert_eq!(kv("path=x,,,,y", None), pairs(&[("path", "x,,y")]));
        // Escaped comma at the end of the value.
        assert_eq!(kv("path=x,,", None), pairs(&[("path", "x,")]));
        // `=` inside a value is plain text.
        assert_eq!(kv("append=a=b c=d", None), pairs(&[("append", "a=b c=d")]));
    }

    #[test]
    fn qemu_spellings() {
        assert_eq!(
            kv(
                "file=/dev/fdset/1,format=raw,if=none,id=d0,readonly=on,cache=none",
                None
            ),
            pairs(&[
                ("file", "/dev/fdset/1"),
                ("format", "raw"),
                ("if", "none"),
                ("id", "d0"),
                ("readonly", "on"),
                ("cache", "none")
            ])
        );
        assert_eq!(
            kv("isa-debug-exit,iobase=0xf4,iosize=4", Some("driver")),
            pairs(&[
                ("driver", "isa-debug-exit"),
                ("iobase", "0xf4"),
                ("iosize", "4")
            ])
        );
        assert_eq!(
            kv(
                "microvm,x-option-roms=off,pit=off,pic=off,rtc=off",
                Some("type")
            ),
            pairs(&[
                ("type", "microvm"),
                ("x-option-roms", "off"),
                ("pit", "off"),
                ("pic", "off"),
                ("rtc", "off")
            ])
        );
        // The implied name only applies to the first parameter: "size=" form.
        assert_eq!(kv("size=1G", Some("size")), pairs(&[("size", "1G")]));
        assert_eq!(kv("1G", Some("size")), pairs(&[("size", "1G")]));
        // An implied first parameter may also be written with its name.
        assert_eq!(
            kv("id=x,backend=socket", Some("backend")),
            pairs(&[("id", "x"), ("backend", "socket")])
        );
    }

    #[test]
    fn empty_and_trailing() {
        assert!(parse("", Some("backend")).unwrap().pairs.is_empty());
        assert_eq!(kv("a=1,", None), pairs(&[("a", "1")]));
        assert_eq!(parse(",a=1", None), Err(OptsError::EmptyName { offset: 0 }));
        assert_eq!(
            parse("a=1,=2", None),
            Err(OptsError::EmptyName { offset: 4 })
        );
        assert_eq!(
            parse("a=1,no", None),
            Err(OptsError::EmptyName { offset: 4 })
        );
        // An implied first value may be empty.
        assert_eq!(
            kv(",id=x", Some("backend")),
            pairs(&[("backend", ""), ("id", "x")])
        );
    }

    #[test]
    fn offsets_point_at_the_pair() {
        let o = parse("socket,id=mon,server", Some("backend")).unwrap();
        let offs: Vec<usize> = o.pairs.iter().map(|p| p.offset).collect();
        assert_eq!(offs, vec![0, 7, 14]);
        assert!(o.pairs[2].short_form);
        assert!(o.pairs[0].implied);
    }

    #[test]
    fn reader_takes_last_and_rejects_leftovers() {
        let mut r = parse("a=1,b=2,a=3", None).unwrap().reader();
        assert_eq!(r.take("a").as_deref(), Some("3"));
        assert_eq!(
            r.finish(),
            Err(OptsError::Unknown {
                name: "b".to_string()
            })
        );
        let mut r = parse("server,nowait,x=on", None).unwrap().reader();
        assert_eq!(r.take_bool("server"), Ok(Some(true)));
        assert_eq!(r.take_bool("wait"), Ok(Some(false)));
        assert_eq!(r.take_bool("missing"), Ok(None));
        assert_eq!(r.take_bool("x"), Ok(Some(true)));
        assert_eq!(r.finish(), Ok(()));
        let mut r = parse("server=maybe", None).unwrap().reader();
        let err = r.take_bool("server").unwrap_err();
        assert_eq!(err.to_string(), "Parameter 'server' expects 'on' or 'off'");
        let mut r = parse("fd=x3", None).unwrap().reader();
        assert_eq!(
            r.take_i64("fd").unwrap_err().to_string(),
            "Parameter 'fd' expects a number"
        );
        let mut r = parse("fd=-1", None).unwrap().reader();
        assert_eq!(r.take_i64("fd"), Ok(Some(-1)));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            ",", ",,", ",,,", "=", "==", "a==b", "no", "no,", "a,,", "é=ü,ö", "a=,", "a=1,,,b",
            "\u{0}", "no=1",
        ] {
            let _ = parse(text, None);
            let _ = parse(text, Some("implied"));
        }
        assert_eq!(kv("a==b", None), pairs(&[("a", "=b")]));
        assert_eq!(kv("é=ü,ö", None), pairs(&[("é", "ü"), ("ö", "on")]));
    }

    proptest::proptest! {
        #[test]
        fn escaped_values_round_trip(values in proptest::collection::vec("[a-z0-9,=/. ]{0,12}", 1..5)) {
            let text: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("k{i}={}", v.replace(',', ",,")))
                .collect();
            let parsed = parse(&text.join(","), None).unwrap();
            let got: Vec<String> = parsed.pairs.into_iter().map(|p| p.value).collect();
            proptest::prop_assert_eq!(got, values);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = parse(&text, Some("implied"));
            let _ = parse(&text, None);
        }
    }
}
