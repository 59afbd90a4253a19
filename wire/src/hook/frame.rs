//! The `-open-hook-fd` frame layout (docs/protocol.md): pure encoders and a
//! push-style request decoder. No I/O, no allocation while decoding.
//!
//! Request: `u32 message_size` (whole frame), `u32 command`, payload.
//! QEMU_OPEN payload: `u32 flags`, `u32 mode`, `u16 filename_len`,
//! `u8 filename[filename_len]` (no terminating NUL), so
//! `message_size = 18 + filename_len`.
//! Reply: `u32 message_size = 12`, `u32 command` (echoed), `s32 result`.
//! All integers are in host byte order.
#![forbid(unsafe_code)]

use crate::errno::Errno;

/// Command number of QEMU_OPEN.
pub const QEMU_OPEN: u32 = 1;
/// Bytes of `message_size` + `command`.
pub const HEADER_LEN: usize = 8;
/// Fixed part of a QEMU_OPEN frame: header, flags, mode, filename_len.
pub const OPEN_FIXED_LEN: usize = 18;
/// A reply frame is always this long.
pub const REPLY_LEN: usize = 12;
/// Largest payload a peer may send (64 KiB).
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Largest `message_size` accepted: header + 64 KiB.
pub const MAX_MESSAGE: usize = HEADER_LEN + MAX_PAYLOAD;
/// Longest filename the server will try to open (PATH_MAX - 1).
pub const MAX_FILENAME: usize = 4095;

/// A framing violation. The connection cannot be resynchronised after
/// one of these: the server closes it (docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// `message_size < 8`.
    #[error("message_size {size} is smaller than the {HEADER_LEN}-byte header")]
    TooSmall {
        /// The `message_size` field.
        size: u32,
    },
    /// `message_size > 8 + 64 KiB`.
    #[error("message_size {size} exceeds the limit of {MAX_MESSAGE} bytes")]
    TooLarge {
        /// The `message_size` field.
        size: u32,
    },
    /// A QEMU_OPEN frame too short to hold its fixed fields.
    #[error("QEMU_OPEN message_size {size} is shorter than its {OPEN_FIXED_LEN} fixed bytes")]
    OpenTooShort {
        /// The `message_size` field.
        size: u32,
    },
    /// A QEMU_OPEN frame whose `message_size != 18 + filename_len`.
    #[error("QEMU_OPEN message_size {size} disagrees with filename_len {filename_len}")]
    OpenLengthMismatch {
        /// The `message_size` field.
        size: u32,
        /// The `filename_len` field.
        filename_len: u16,
    },
    /// Encoding: the filename does not fit in one frame.
    #[error("a filename of {len} bytes does not fit in one frame")]
    EncodeTooLong {
        /// The filename's length.
        len: usize,
    },
    /// A reply whose `message_size` is not 12.
    #[error("reply message_size {size}, expected {REPLY_LEN}")]
    ReplySize {
        /// The `message_size` field.
        size: u32,
    },
    /// A reply whose result is positive or below `-4095`.
    #[error("reply result {result} is neither 0 nor a negated errno")]
    ReplyResult {
        /// The `result` field.
        result: i32,
    },
}

/// A protocol-level problem with a filename whose framing is sound: the
/// server answers it with [`PathError::errno`] and the connection lives on.
/// (Relative paths and `.`/`..` are a policy matter, not checked here.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `filename_len == 0`.
    #[error("empty filename")]
    Empty,
    /// Longer than [`MAX_FILENAME`] bytes.
    #[error("filename of {len} bytes is longer than {MAX_FILENAME}")]
    TooLong {
        /// The filename's length.
        len: usize,
    },
    /// A NUL byte inside the name.
    #[error("filename has a NUL byte at offset {at}")]
    EmbeddedNul {
        /// Offset of the first NUL.
        at: usize,
    },
}

impl PathError {
    /// The errno the server replies: `EINVAL`, or `ENAMETOOLONG`.
    pub const fn errno(self) -> Errno {
        match self {
            PathError::Empty | PathError::EmbeddedNul { .. } => Errno::EINVAL,
            PathError::TooLong { .. } => Errno::ENAMETOOLONG,
        }
    }
}

/// Protocol-level filename checks, in this order: empty, too long,
/// embedded NUL.
pub fn check_path(path: &[u8]) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_FILENAME {
        return Err(PathError::TooLong { len: path.len() });
    }
    match path.iter().position(|&b| b == 0) {
        Some(at) => Err(PathError::EmbeddedNul { at }),
        None => Ok(()),
    }
}

/// A decoded QEMU_OPEN request; `path` borrows the input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRequest<'a> {
    /// Linux `O_*` flags, as sent.
    pub flags: u32,
    /// Creation mode, as sent.
    pub mode: u32,
    /// The filename bytes (not checked: see [`check_path`]).
    pub path: &'a [u8],
}

impl OpenRequest<'_> {
    /// Protocol-level checks of the filename (see [`check_path`]).
    pub fn check_path(&self) -> Result<(), PathError> {
        check_path(self.path)
    }
}

/// A request frame with sound framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// QEMU_OPEN.
    Open(OpenRequest<'a>),
    /// Any other command; its payload has been skipped. Reply `-ENOSYS`.
    Unknown {
        /// The command number.
        command: u32,
    },
}

impl Request<'_> {
    /// The command number, to echo in the reply.
    pub const fn command(&self) -> u32 {
        match self {
            Request::Open(_) => QEMU_OPEN,
            Request::Unknown { command } => *command,
        }
    }
}

/// What [`decode_request`] made of the bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// Not a whole frame yet: at least `needed` more bytes are required.
    Partial {
        /// Bytes still missing (a lower bound while the header is incomplete).
        needed: usize,
    },
    /// A whole frame: the request and the bytes it used from the input.
    Complete(Request<'a>, usize),
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_ne_bytes(b)
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&buf[at..at + 2]);
    u16::from_ne_bytes(b)
}

/// Decode the first request frame in `buf`. Never reads past that frame.
/// Framing errors are reported as soon as the bytes that show them are in
/// (the header for the size limits, the first 18 bytes for the QEMU_OPEN
/// length check), without waiting for the rest of the frame.
pub fn decode_request(buf: &[u8]) -> Result<Decoded<'_>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(Decoded::Partial {
            needed: HEADER_LEN - buf.len(),
        });
    }
    let size = u32_at(buf, 0);
    let command = u32_at(buf, 4);
    let frame_len = usize::try_from(size).map_err(|_| FrameError::TooLarge { size })?;
    if frame_len < HEADER_LEN {
        return Err(FrameError::TooSmall { size });
    }
    if frame_len > MAX_MESSAGE {
        return Err(FrameError::TooLarge { size });
    }
    if command == QEMU_OPEN {
        if frame_len < OPEN_FIXED_LEN {
            return Err(FrameError::OpenTooShort { size });
        }
        if buf.len() >= OPEN_FIXED_LEN {
            let filename_len = u16_at(buf, 16);
            if frame_len != OPEN_FIXED_LEN + usize::from(filename_len) {
                return Err(FrameError::OpenLengthMismatch { size, filename_len });
            }
        }
    }
    if buf.len() < frame_len {
        return Ok(Decoded::Partial {
            needed: frame_len - buf.len(),
        });
    }
    let request = if command == QEMU_OPEN {
        Request::Open(OpenRequest {
            flags: u32_at(buf, 8),
            mode: u32_at(buf, 12),
            path: &buf[OPEN_FIXED_LEN..frame_len],
        })
    } else {
        Request::Unknown { command }
    };
    Ok(Decoded::Complete(request, frame_len))
}

/// Append a QEMU_OPEN frame to `out`. Fails only when the filename cannot
/// be framed (longer than `MAX_MESSAGE - 18` bytes); the protocol-level
/// name checks are [`check_path`]'s business, so tests can send bad names.
pub fn encode_open_into(
    out: &mut Vec<u8>,
    flags: u32,
    mode: u32,
    path: &[u8],
) -> Result<(), FrameError> {
    let too_long = FrameError::EncodeTooLong { len: path.len() };
    if OPEN_FIXED_LEN + path.len() > MAX_MESSAGE {
        return Err(too_long);
    }
    let filename_len = u16::try_from(path.len()).map_err(|_| too_long)?;
    let size = u32::try_from(OPEN_FIXED_LEN + path.len()).map_err(|_| too_long)?;
    out.reserve(OPEN_FIXED_LEN + path.len());
    out.extend_from_slice(&size.to_ne_bytes());
    out.extend_from_slice(&QEMU_OPEN.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&mode.to_ne_bytes());
    out.extend_from_slice(&filename_len.to_ne_bytes());
    out.extend_from_slice(path);
    Ok(())
}

/// A QEMU_OPEN frame (see [`encode_open_into`]).
pub fn encode_open(flags: u32, mode: u32, path: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_open_into(&mut out, flags, mode, path)?;
    Ok(out)
}

/// A frame with any command and payload (for tests and future commands).
pub fn encode_frame(command: u32, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let too_long = FrameError::EncodeTooLong { len: payload.len() };
    if payload.len() > MAX_PAYLOAD {
        return Err(too_long);
    }
    let size = u32::try_from(HEADER_LEN + payload.len()).map_err(|_| too_long)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&size.to_ne_bytes());
    out.extend_from_slice(&command.to_ne_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// A decoded reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The echoed command.
    pub command: u32,
    /// `Ok(())`: an fd travels with the reply; `Err(errno)`: `result = -errno`.
    pub result: Result<(), Errno>,
}

/// The 12 reply bytes for `command` and `result`.
pub fn encode_reply(command: u32, result: Result<(), Errno>) -> [u8; REPLY_LEN] {
    let value = match result {
        Ok(()) => 0,
        Err(e) => e.to_result(),
    };
    let mut out = [0u8; REPLY_LEN];
    out[0..4].copy_from_slice(&12u32.to_ne_bytes());
    out[4..8].copy_from_slice(&command.to_ne_bytes());
    out[8..12].copy_from_slice(&value.to_ne_bytes());
    out
}

/// Decode a reply: `message_size` must be 12 and `result` must be 0 or a
/// negated errno in `-4095..=-1`.
pub fn decode_reply(bytes: &[u8; REPLY_LEN]) -> Result<Reply, FrameError> {
    let size = u32_at(bytes, 0);
    if size != 12 {
        return Err(FrameError::ReplySize { size });
    }
    let command = u32_at(bytes, 4);
    let result = i32::from_ne_bytes(u32_at(bytes, 8).to_ne_bytes());
    let result = match result {
        0 => Ok(()),
        r => Err(Errno::from_result(r).ok_or(FrameError::ReplyResult { result: r })?),
    };
    Ok(Reply { command, result })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_partial_counts_down() {
        let frame = encode_open(0, 0, b"/a").unwrap();
        for cut in 0..frame.len() {
            match decode_request(&frame[..cut]).unwrap() {
                Decoded::Partial { needed } if cut < HEADER_LEN => {
                    assert_eq!(needed, HEADER_LEN - cut)
                }
                Decoded::Partial { needed } => assert_eq!(needed, frame.len() - cut),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn framing_errors_are_reported_before_the_payload_arrives() {
        let mut hdr = Vec::new();
        hdr.extend_from_slice(&70_000u32.to_ne_bytes());
        hdr.extend_from_slice(&7u32.to_ne_bytes());
        assert_eq!(
            decode_request(&hdr),
            Err(FrameError::TooLarge { size: 70_000 })
        );
        let frame = encode_open(0, 0, b"/abc").unwrap();
        let mut bad = frame.clone();
        bad[16..18].copy_from_slice(&3u16.to_ne_bytes());
        assert_eq!(
            decode_request(&bad[..OPEN_FIXED_LEN]),
            Err(FrameError::OpenLengthMismatch {
                size: 22,
                filename_len: 3
            })
        );
    }

    #[test]
    fn path_checks_in_order() {
        assert_eq!(check_path(b""), Err(PathError::Empty));
        assert_eq!(check_path(b"/a\0b"), Err(PathError::EmbeddedNul { at: 2 }));
        assert_eq!(check_path(&[b'a'; 4095]), Ok(()));
        assert_eq!(
            check_path(&[0u8; 4096]),
            Err(PathError::TooLong { len: 4096 })
        );
        assert_eq!(PathError::Empty.errno(), Errno::EINVAL);
        assert_eq!(PathError::EmbeddedNul { at: 0 }.errno(), Errno::EINVAL);
        assert_eq!(PathError::TooLong { len: 0 }.errno(), Errno::ENAMETOOLONG);
    }

    #[test]
    fn encoder_limits() {
        let max = MAX_MESSAGE - OPEN_FIXED_LEN;
        assert!(encode_open(0, 0, &vec![b'a'; max]).is_ok());
        assert_eq!(
            encode_open(0, 0, &vec![b'a'; max + 1]),
            Err(FrameError::EncodeTooLong { len: max + 1 })
        );
        assert!(encode_frame(9, &vec![0; MAX_PAYLOAD]).is_ok());
        assert_eq!(
            encode_frame(9, &vec![0; MAX_PAYLOAD + 1]),
            Err(FrameError::EncodeTooLong {
                len: MAX_PAYLOAD + 1
            })
        );
    }

    proptest! {
        #[test]
        fn open_round_trips(flags: u32, mode: u32,
                            path in proptest::collection::vec(any::<u8>(), 0..5000),
                            tail in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = encode_open(flags, mode, &path).unwrap();
            let len = bytes.len();
            bytes.extend_from_slice(&tail);
            let got = decode_request(&bytes).unwrap();
            prop_assert_eq!(got, Decoded::Complete(
                Request::Open(OpenRequest { flags, mode, path: &path }), len));
        }

        #[test]
        fn unknown_round_trips(command in 2u32.., payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let bytes = encode_frame(command, &payload).unwrap();
            prop_assert_eq!(decode_request(&bytes).unwrap(),
                            Decoded::Complete(Request::Unknown { command }, bytes.len()));
        }

        #[test]
        fn reply_round_trips(command: u32, errno in proptest::option::of(1i32..=4095)) {
            let result = match errno { None => Ok(()), Some(n) => Err(Errno::new(n).unwrap()) };
            let bytes = encode_reply(command, result);
            prop_assert_eq!(decode_reply(&bytes), Ok(Reply { command, result }));
        }

        #[test]
        fn decoder_never_panics_and_never_over_reads(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            match decode_request(&bytes) {
                Ok(Decoded::Complete(_, used)) => prop_assert!(used >= HEADER_LEN && used <= bytes.len()),
                Ok(Decoded::Partial { needed }) => prop_assert!(needed > 0 && bytes.len() + needed <= MAX_MESSAGE),
                Err(_) => {}
            }
        }
    }
}
