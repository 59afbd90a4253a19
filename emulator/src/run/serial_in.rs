//! Guest serial input from stdin: with the UART on stdio, a thread reads
//! what arrives on fd 0 and queues it in the UART's receive FIFO, as
//! QEMU's stdio chardev does. The FIFO holds 64 bytes; while it is full
//! the thread waits for the guest to read, so at most one 256-byte chunk
//! is held and nothing is dropped. The thread ends at end of input. The
//! terminal is not put into raw mode: on a terminal, input arrives a line
//! at a time and is echoed by the terminal.
#![forbid(unsafe_code)]

use std::io::{self, Read};
use std::time::Duration;

use crate::machine::SerialInput;

/// How long to wait before offering bytes again to a full FIFO: from the
/// first value, doubling up to the last while the guest reads nothing, so
/// a guest that never reads its serial port costs ~30 wake-ups a second,
/// not a thousand.
const FULL_FIFO_WAIT: Duration = Duration::from_millis(1);
const FULL_FIFO_WAIT_MAX: Duration = Duration::from_millis(32);

/// Feeds everything `input` yields into the UART, waiting while its FIFO
/// is full; returns at end of input or on a read error.
fn pump(mut input: impl Read, uart: &SerialInput) -> io::Result<()> {
    let mut buf = [0u8; 256];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut rest = &buf[..n];
        let mut wait = FULL_FIFO_WAIT;
        while !rest.is_empty() {
            let taken = uart.feed(rest);
            rest = &rest[taken..];
            if taken == 0 {
                std::thread::sleep(wait);
                wait = (wait * 2).min(FULL_FIFO_WAIT_MAX);
            } else {
                wait = FULL_FIFO_WAIT;
            }
        }
    }
}

/// Starts the stdin thread.
pub fn spawn(uart: SerialInput) -> io::Result<()> {
    std::thread::Builder::new()
        .name("serial-in".into())
        .spawn(move || {
            if let Err(e) = pump(io::stdin().lock(), &uart) {
                tracing::warn!("serial input: reading stdin: {e}");
            }
        })
        .map(|_| ())
}
