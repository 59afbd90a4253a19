//! The `-open-hook-fd` frame codec (`wire/src/hook/frame.rs`) on raw bytes.
//!
//! Oracles:
//! - the decoder never claims more than it was given, nor less than a
//!   header, and what it claims is exactly `message_size` bytes;
//! - it never reads past the frame: decoding only the claimed bytes, or the
//!   claimed bytes plus anything else, gives the same answer;
//! - re-encoding a decoded frame gives back the same bytes
//!   (`encode(decode(x)) == x`), and `decode(encode(x)) == x` for requests
//!   built from the input;
//! - a prefix of a complete frame is `Partial`, with a `needed` that never
//!   overshoots the frame; a prefix of a bad frame is `Partial` or the same
//!   error;
//! - framing errors agree with the header fields (docs/protocol.md limits);
//! - a stream of frames decodes frame by frame to the same bytes;
//! - replies: `decode_reply` accepts exactly size 12 with a result of 0 or
//!   `-1..=-4095`, and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openhook_wire::hook::frame::{
    check_path, decode_reply, decode_request, encode_frame, encode_open, encode_reply, Decoded,
    FrameError, PathError, Reply, Request, HEADER_LEN, MAX_FILENAME, MAX_MESSAGE, OPEN_FIXED_LEN,
    QEMU_OPEN, REPLY_LEN,
};
use openhook_wire::Errno;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What docs/protocol.md says about a buffer that holds at least a header.
fn expected_error(buf: &[u8]) -> Option<FrameError> {
    let size = u32_at(buf, 0);
    let command = u32_at(buf, 4);
    let len = size as usize;
    if len < HEADER_LEN {
        return Some(FrameError::TooSmall { size });
    }
    if len > MAX_MESSAGE {
        return Some(FrameError::TooLarge { size });
    }
    if command == QEMU_OPEN {
        if len < OPEN_FIXED_LEN {
            return Some(FrameError::OpenTooShort { size });
        }
        if buf.len() >= OPEN_FIXED_LEN {
            let filename_len = u16::from_ne_bytes([buf[16], buf[17]]);
            if len != OPEN_FIXED_LEN + usize::from(filename_len) {
                return Some(FrameError::OpenLengthMismatch { size, filename_len });
            }
        }
    }
    None
}

/// Re-encodes a decoded request with the public encoders.
fn reencode(req: &Request<'_>, frame: &[u8]) -> Vec<u8> {
    match req {
        Request::Open(o) => encode_open(o.flags, o.mode, o.path).expect("a decoded name fits"),
        Request::Unknown { command } => {
            encode_frame(*command, &frame[HEADER_LEN..]).expect("a decoded payload fits")
        }
    }
}

fn check_one(buf: &[u8]) {
    let got = decode_request(buf);
    match got {
        Ok(Decoded::Complete(req, used)) => {
            assert!(
                used >= HEADER_LEN && used <= buf.len(),
                "used {used} of {}",
                buf.len()
            );
            assert_eq!(used, u32_at(buf, 0) as usize, "used != message_size");
            assert_eq!(req.command(), u32_at(buf, 4));
            // Never reads past the frame.
            assert_eq!(
                decode_request(&buf[..used]),
                Ok(Decoded::Complete(req, used))
            );
            // encode(decode(x)) == x
            assert_eq!(reencode(&req, &buf[..used]), &buf[..used]);
            if let Request::Open(o) = req {
                assert_eq!(o.path.len(), used - OPEN_FIXED_LEN);
                // Protocol-level name checks agree with docs/protocol.md.
                let want = if o.path.is_empty() {
                    Err(PathError::Empty)
                } else if o.path.len() > MAX_FILENAME {
                    Err(PathError::TooLong { len: o.path.len() })
                } else if let Some(at) = o.path.iter().position(|&b| b == 0) {
                    Err(PathError::EmbeddedNul { at })
                } else {
                    Ok(())
                };
                assert_eq!(check_path(o.path), want);
                assert_eq!(o.check_path(), want);
            }
            // Every strict prefix is Partial, and `needed` never overshoots.
            for k in [
                0,
                1,
                HEADER_LEN - 1,
                HEADER_LEN,
                OPEN_FIXED_LEN - 1,
                OPEN_FIXED_LEN,
                used - 1,
            ] {
                if k >= used {
                    continue;
                }
                match decode_request(&buf[..k]) {
                    Ok(Decoded::Partial { needed }) => {
                        assert!(
                            needed > 0 && k + needed <= used,
                            "prefix {k}: needed {needed}, frame {used}"
                        )
                    }
                    other => panic!("prefix {k} of a good frame: {other:?}"),
                }
            }
        }
        Ok(Decoded::Partial { needed }) => {
            assert!(needed > 0);
            assert!(
                buf.len() + needed <= MAX_MESSAGE,
                "needed {needed} beyond the frame limit"
            );
            if buf.len() >= HEADER_LEN {
                assert_eq!(expected_error(buf), None);
                assert_eq!(buf.len() + needed, u32_at(buf, 0) as usize);
            } else {
                assert_eq!(needed, HEADER_LEN - buf.len());
            }
        }
        Err(e) => {
            assert!(buf.len() >= HEADER_LEN, "error {e:?} before a whole header");
            assert_eq!(expected_error(buf), Some(e));
            // Errors are sticky: a longer buffer cannot repair the frame.
            let mut longer = buf.to_vec();
            longer.extend_from_slice(&[0u8; 24]);
            assert_eq!(decode_request(&longer), Err(e));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_one(data);

    // The input as a stream: decode frame after frame; the consumed bytes
    // must re-encode to exactly themselves.
    let mut rest = data;
    let mut rebuilt = Vec::new();
    while let Ok(Decoded::Complete(req, used)) = decode_request(rest) {
        rebuilt.extend_from_slice(&reencode(&req, &rest[..used]));
        rest = &rest[used..];
        check_one(rest);
    }
    assert_eq!(rebuilt, &data[..data.len() - rest.len()]);

    // decode(encode(x)) == x for a request built from the input.
    if data.len() >= 8 {
        let flags = u32_at(data, 0);
        let mode = u32_at(data, 4);
        let path = &data[8..];
        let frame = encode_open(flags, mode, path).expect("fits: inputs are small");
        assert_eq!(frame.len(), OPEN_FIXED_LEN + path.len());
        match decode_request(&frame) {
            Ok(Decoded::Complete(Request::Open(o), used)) => {
                assert_eq!(
                    (o.flags, o.mode, o.path, used),
                    (flags, mode, path, frame.len())
                )
            }
            other => panic!("own frame: {other:?}"),
        }
        let frame = encode_frame(flags, path).expect("fits");
        if flags != QEMU_OPEN {
            assert_eq!(
                decode_request(&frame),
                Ok(Decoded::Complete(
                    Request::Unknown { command: flags },
                    frame.len()
                ))
            );
        }
    }

    // Replies.
    if data.len() >= REPLY_LEN {
        let bytes: [u8; REPLY_LEN] = data[..REPLY_LEN].try_into().expect("12 bytes");
        let size = u32_at(&bytes, 0);
        let command = u32_at(&bytes, 4);
        let result = u32_at(&bytes, 8) as i32;
        match decode_reply(&bytes) {
            Ok(r) => {
                assert_eq!(size, 12);
                assert!((-4095..=0).contains(&result));
                assert_eq!(r.command, command);
                assert_eq!(
                    r.result.map_err(|e| e.to_result()),
                    if result == 0 { Ok(()) } else { Err(result) }
                );
                assert_eq!(encode_reply(r.command, r.result), bytes);
            }
            Err(FrameError::ReplySize { size: s }) => assert!(s == size && size != 12),
            Err(FrameError::ReplyResult { result: r }) => {
                assert!(size == 12 && r == result && !(-4095..=0).contains(&result))
            }
            Err(e) => panic!("unexpected reply error {e:?}"),
        }
        // And the other direction.
        let errno = Errno::new((result.unsigned_abs() % 4095 + 1) as i32).expect("1..=4095");
        for res in [Ok(()), Err(errno)] {
            assert_eq!(
                decode_reply(&encode_reply(command, res)),
                Ok(Reply {
                    command,
                    result: res
                })
            );
        }
    }
});
