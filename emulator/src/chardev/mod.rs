//! Character devices: the named backends (`-chardev`, `chardev-add`) and
//! the serial frontend that writes to one of them.
//!
//! - [`registry`]: the id table with QEMU's rules and texts (duplicate
//!   ids, `chardev-remove` of a busy chardev, `chardev-change`), and the
//!   [`SerialPort`] through which the UART's output reaches whatever
//!   chardev its id names *now*.
//! - [`output`]: what a chardev does with bytes: a file (a hook-opened
//!   path or a `/dev/fdset/N` dup), stdout, or a socket (a connected
//!   socket, or a listening one that serves one client at a time).
//!
//! How guest serial output reaches a chardev added at runtime (docs/qmp.md):
//! QEMU's `chardev-change` of the serial's chardev (`serial0` for
//! `-serial file:`/`stdio`, the id for `-serial chardev:ID`), and, as an
//! extension, `-serial chardev:ID` may name an id that no `-chardev`
//! defines: the UART's output is discarded until a `chardev-add` with that
//! id, which then becomes (and stays, it is busy) the serial's backend.

pub mod output;
pub mod registry;

pub use output::{ChardevOutput, SocketOutput};
pub use registry::{ChardevError, Chardevs, SerialPort, SerialWriter, SERIAL0};
