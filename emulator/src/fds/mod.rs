//! File descriptors: where the emulator's inherited numbers are claimed
//! (`inherited`, through `openhook_wire::inherited`), socket activation
//! (`activation`, the parser shared with the broker), fd sets (`fdset`,
//! pure rules), the QMP `getfd` name table (`named`), and the one function
//! that opens files (`open`).

/// The `LISTEN_*` parser lives in `openhook-wire`, shared with the broker.
pub use openhook_wire::activation;
pub mod fdset;
pub mod inherited;
pub mod named;
pub mod open;
