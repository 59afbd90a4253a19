//! Golden byte vectors for the `-open-hook-fd` frames, written out by hand
//! from the layout in docs/protocol.md (host byte order; these
//! are the little-endian spellings, so the file only runs on
//! little-endian hosts — every Linux target openhook builds for).
//!
//! Each decisions-table row of docs/protocol.md has a test here named
//! `row_*`.
#![cfg(target_endian = "little")]

use openhook_wire::hook::frame::{
    check_path, decode_reply, decode_request, encode_frame, encode_open, encode_reply, Decoded,
    FrameError, OpenRequest, PathError, Reply, Request, MAX_MESSAGE, QEMU_OPEN,
};
use openhook_wire::Errno;

/// Bytes from a string of hex pairs; whitespace is ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex string");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn reply12(s: &str) -> [u8; 12] {
    hex(s).try_into().unwrap()
}

// ---- requests, both directions ---------------------------------------

/// O_RDWR|O_CREAT (0x42), mode 0o640 (0x1a0), "/srv/vm1/disk.img" (17 bytes).
const OPEN_DISK: &str = "23000000 01000000 42000000 a0010000 1100
                         2f7372762f766d312f6469736b2e696d67";

#[test]
fn open_request_encodes_to_the_golden_bytes() {
    assert_eq!(
        encode_open(0x42, 0o640, b"/srv/vm1/disk.img").unwrap(),
        hex(OPEN_DISK)
    );
    // The smallest useful request: "/" with O_RDONLY, mode 0 (19 bytes).
    assert_eq!(
        encode_open(0, 0, b"/").unwrap(),
        hex("13000000 01000000 00000000 00000000 0100 2f")
    );
    // O_RDONLY|O_CLOEXEC|O_NONBLOCK = 0x80800, /dev/kvm.
    assert_eq!(
        encode_open(0x80800, 0, b"/dev/kvm").unwrap(),
        hex("1a000000 01000000 00080800 00000000 0800 2f6465762f6b766d")
    );
}

#[test]
fn open_request_decodes_from_the_golden_bytes() {
    let bytes = hex(OPEN_DISK);
    assert_eq!(
        decode_request(&bytes),
        Ok(Decoded::Complete(
            Request::Open(OpenRequest {
                flags: 0x42,
                mode: 0o640,
                path: b"/srv/vm1/disk.img",
            }),
            35
        ))
    );
}

#[test]
fn a_following_frame_is_never_read() {
    let mut bytes = hex(OPEN_DISK);
    bytes.extend(hex("13000000 01000000"));
    assert!(matches!(
        decode_request(&bytes),
        Ok(Decoded::Complete(_, 35))
    ));
}

#[test]
fn partial_frames_report_what_is_missing() {
    let bytes = hex(OPEN_DISK);
    assert_eq!(decode_request(&[]), Ok(Decoded::Partial { needed: 8 }));
    assert_eq!(
        decode_request(&bytes[..5]),
        Ok(Decoded::Partial { needed: 3 })
    );
    assert_eq!(
        decode_request(&bytes[..8]),
        Ok(Decoded::Partial { needed: 27 })
    );
    assert_eq!(
        decode_request(&bytes[..34]),
        Ok(Decoded::Partial { needed: 1 })
    );
}

// ---- replies, both directions ----------------------------------------

#[test]
fn replies_encode_and_decode() {
    let cases: [(&str, u32, Result<(), Errno>); 5] = [
        ("0c000000 01000000 00000000", QEMU_OPEN, Ok(())),
        ("0c000000 01000000 f3ffffff", QEMU_OPEN, Err(Errno::EACCES)), // -13
        ("0c000000 01000000 feffffff", QEMU_OPEN, Err(Errno::ENOENT)), // -2
        ("0c000000 01000000 eaffffff", QEMU_OPEN, Err(Errno::EINVAL)), // -22
        (
            "0c000000 01000000 dcffffff",
            QEMU_OPEN,
            Err(Errno::ENAMETOOLONG),
        ), // -36
    ];
    for (bytes, command, result) in cases {
        assert_eq!(encode_reply(command, result), reply12(bytes), "{bytes}");
        assert_eq!(
            decode_reply(&reply12(bytes)),
            Ok(Reply { command, result }),
            "{bytes}"
        );
    }
}

#[test]
fn reply_sizes_and_results_off_by_one() {
    assert_eq!(
        decode_reply(&reply12("0b000000 01000000 00000000")),
        Err(FrameError::ReplySize { size: 11 })
    );
    assert_eq!(
        decode_reply(&reply12("0d000000 01000000 00000000")),
        Err(FrameError::ReplySize { size: 13 })
    );
    // -4095 is the last errno; -4096 and +1 are not results.
    assert_eq!(
        decode_reply(&reply12("0c000000 01000000 01f0ffff")),
        Ok(Reply {
            command: 1,
            result: Err(Errno::new(4095).unwrap())
        })
    );
    assert_eq!(
        decode_reply(&reply12("0c000000 01000000 00f0ffff")),
        Err(FrameError::ReplyResult { result: -4096 })
    );
    assert_eq!(
        decode_reply(&reply12("0c000000 01000000 01000000")),
        Err(FrameError::ReplyResult { result: 1 })
    );
}

// ---- decisions table (docs/protocol.md) --------------------------------

#[test]
fn row_filename_has_no_terminating_nul() {
    // filename_len counts the bytes only: 3 bytes "/ab", no NUL after them.
    let bytes = hex("15000000 01000000 00000000 00000000 0300 2f6162");
    let Ok(Decoded::Complete(Request::Open(r), 21)) = decode_request(&bytes) else {
        panic!("not decoded");
    };
    assert_eq!(r.path, b"/ab");
    assert_eq!(r.check_path(), Ok(()));
}

#[test]
fn row_embedded_nul_and_empty_name_are_einval() {
    let nul = hex("15000000 01000000 00000000 00000000 0300 2f0062");
    let Ok(Decoded::Complete(Request::Open(r), _)) = decode_request(&nul) else {
        panic!("not decoded");
    };
    assert_eq!(r.check_path(), Err(PathError::EmbeddedNul { at: 1 }));
    assert_eq!(PathError::EmbeddedNul { at: 1 }.errno(), Errno::EINVAL);

    // message_size 18, filename_len 0: sound framing, empty name.
    let empty = hex("12000000 01000000 00000000 00000000 0000");
    let Ok(Decoded::Complete(Request::Open(r), 18)) = decode_request(&empty) else {
        panic!("not decoded");
    };
    assert_eq!(r.check_path(), Err(PathError::Empty));
    assert_eq!(PathError::Empty.errno(), Errno::EINVAL);
    assert_eq!(
        encode_reply(QEMU_OPEN, Err(PathError::Empty.errno())),
        reply12("0c000000 01000000 eaffffff")
    );
}

#[test]
fn row_name_longer_than_4095_is_enametoolong() {
    // 4095 bytes: message_size 4113 = 0x1011, filename_len 0x0fff.
    let mut ok = hex("11100000 01000000 00000000 00000000 ff0f");
    ok.extend(std::iter::repeat_n(b'a', 4095));
    let Ok(Decoded::Complete(Request::Open(r), 4113)) = decode_request(&ok) else {
        panic!("not decoded");
    };
    assert_eq!(r.check_path(), Ok(()));
    // 4096 bytes: message_size 4114 = 0x1012, filename_len 0x1000.
    let mut long = hex("12100000 01000000 00000000 00000000 0010");
    long.extend(std::iter::repeat_n(b'a', 4096));
    let Ok(Decoded::Complete(Request::Open(r), 4114)) = decode_request(&long) else {
        panic!("not decoded");
    };
    assert_eq!(r.check_path(), Err(PathError::TooLong { len: 4096 }));
    assert_eq!(
        encode_reply(QEMU_OPEN, Err(PathError::TooLong { len: 4096 }.errno())),
        reply12("0c000000 01000000 dcffffff")
    );
}

#[test]
fn row_relative_and_dot_dot_are_not_protocol_errors() {
    // Left to the policy (deny errno): the protocol layer passes them.
    for p in [&b"relative"[..], b"./x", b"/a/../b", b".", b".."] {
        assert_eq!(check_path(p), Ok(()), "{p:?}");
    }
}

#[test]
fn row_message_size_below_8_is_a_protocol_error() {
    assert_eq!(
        decode_request(&hex("07000000 02000000")),
        Err(FrameError::TooSmall { size: 7 })
    );
    assert_eq!(
        decode_request(&hex("00000000 01000000")),
        Err(FrameError::TooSmall { size: 0 })
    );
    // 8 is a whole frame with an empty payload.
    assert_eq!(
        decode_request(&hex("08000000 02000000")),
        Ok(Decoded::Complete(Request::Unknown { command: 2 }, 8))
    );
}

#[test]
fn row_message_size_above_8_plus_64k_is_a_protocol_error() {
    // 8 + 65536 = 65544 = 0x00010008: allowed (waits for the payload).
    assert_eq!(MAX_MESSAGE, 65544);
    assert_eq!(
        decode_request(&hex("08000100 02000000")),
        Ok(Decoded::Partial { needed: 65536 })
    );
    assert_eq!(
        decode_request(&hex("09000100 02000000")),
        Err(FrameError::TooLarge { size: 65545 })
    );
    assert_eq!(
        decode_request(&hex("ffffffff 01000000")),
        Err(FrameError::TooLarge { size: u32::MAX })
    );
}

#[test]
fn row_open_size_disagreeing_with_filename_len_is_a_protocol_error() {
    // "/ab" needs message_size 21 (0x15); 20 and 22 are refused as soon as
    // the fixed 18 bytes are in.
    assert_eq!(
        decode_request(&hex("14000000 01000000 00000000 00000000 0300")),
        Err(FrameError::OpenLengthMismatch {
            size: 20,
            filename_len: 3
        })
    );
    assert_eq!(
        decode_request(&hex("16000000 01000000 00000000 00000000 0300 2f6162")),
        Err(FrameError::OpenLengthMismatch {
            size: 22,
            filename_len: 3
        })
    );
    // Too short to hold the fixed fields: 17 and 8.
    assert_eq!(
        decode_request(&hex("11000000 01000000")),
        Err(FrameError::OpenTooShort { size: 17 })
    );
    assert_eq!(
        decode_request(&hex("08000000 01000000")),
        Err(FrameError::OpenTooShort { size: 8 })
    );
}

#[test]
fn row_unknown_command_is_skipped_and_answered_enosys() {
    // command 7 with a 4-byte payload; the next frame starts after it.
    let mut bytes = hex("0c000000 07000000 deadbeef");
    bytes.extend(hex("13000000 01000000"));
    assert_eq!(
        decode_request(&bytes),
        Ok(Decoded::Complete(Request::Unknown { command: 7 }, 12))
    );
    assert_eq!(
        encode_reply(7, Err(Errno::ENOSYS)),
        reply12("0c000000 07000000 daffffff") // -38, command echoed
    );
    assert_eq!(encode_frame(7, &hex("deadbeef")).unwrap(), &bytes[..12]);
    // command 0 is unknown too.
    assert_eq!(
        decode_request(&hex("08000000 00000000")),
        Ok(Decoded::Complete(Request::Unknown { command: 0 }, 8))
    );
}

#[test]
fn row_eof_mid_frame_is_only_a_partial_to_the_decoder() {
    // The decoder cannot see EOF; it reports Partial, and the server turns
    // Partial + EOF into closing the connection (tested in server.rs and
    // tests/tests/hostile.rs).
    let bytes = hex(OPEN_DISK);
    for cut in 1..bytes.len() {
        assert!(matches!(
            decode_request(&bytes[..cut]),
            Ok(Decoded::Partial { .. })
        ));
    }
}
