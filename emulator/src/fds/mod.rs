//! File descriptors: where integers become fds (`inherited`), socket
//! activation (`activation`), fd sets (`fdset`, pure rules), the QMP
//! `getfd` name table (`named`), and the one function that opens files
//! (`open`).

pub mod activation;
pub mod fdset;
pub mod inherited;
pub mod named;
pub mod open;
