//! The guest test firmware images (see `README.md`), built from `guest/` by
//! `build.rs` into `OUT_DIR` and embedded here, so the emulator crate itself
//! builds with Rust alone and nothing is written outside `OUT_DIR`.
//!
//! Tests and benches take an image's path with [`path`]; scripts write one
//! out with the `openhook-fw-image NAME > FILE` binary.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The standard disk test.
pub const IMAGE: &str = "openhook-fw.bin";
/// The hostile-guest variant (`-DOPENHOOK_FW_HOSTILE`).
pub const HOSTILE_IMAGE: &str = "openhook-fw-hostile.bin";
/// The throughput variant (`-DOPENHOOK_FW_BENCH`).
pub const BENCH_IMAGE: &str = "openhook-fw-bench.bin";
/// The start-up variant (`-DOPENHOOK_FW_BOOT`).
pub const BOOT_IMAGE: &str = "openhook-fw-boot.bin";
/// The interrupt variant (`-DOPENHOOK_FW_IRQ`).
pub const IRQ_IMAGE: &str = "openhook-fw-irq.bin";

/// Every image, by name, with its bytes.
pub const IMAGES: &[(&str, &[u8])] = &[
    (
        IMAGE,
        include_bytes!(concat!(env!("OPENHOOK_FW_DIR"), "/openhook-fw.bin")),
    ),
    (
        HOSTILE_IMAGE,
        include_bytes!(concat!(env!("OPENHOOK_FW_DIR"), "/openhook-fw-hostile.bin")),
    ),
    (
        BENCH_IMAGE,
        include_bytes!(concat!(env!("OPENHOOK_FW_DIR"), "/openhook-fw-bench.bin")),
    ),
    (
        BOOT_IMAGE,
        include_bytes!(concat!(env!("OPENHOOK_FW_DIR"), "/openhook-fw-boot.bin")),
    ),
    (
        IRQ_IMAGE,
        include_bytes!(concat!(env!("OPENHOOK_FW_DIR"), "/openhook-fw-irq.bin")),
    ),
];

/// The bytes of the image called `name`, if there is one.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    IMAGES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Where the build left the image called `name` (inside this package's
/// `OUT_DIR`); it exists as long as the build directory does.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("OPENHOOK_FW_DIR")).join(name)
}
