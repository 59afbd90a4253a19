//! openhook-emulator: a sandboxed KVM micro-VM with a QEMU-compatible
//! command line. Every file it uses comes through the open hook, a
//! declared fd, or a manager over QMP; see `fds::open`.

pub mod boot_time;
pub mod chardev;
pub mod cli;
pub mod devices;
pub mod fds;
pub mod machine;
pub mod qmp;
pub mod run;
pub mod vm_config;
