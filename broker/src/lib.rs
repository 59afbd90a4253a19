//! openhook-broker: checks QEMU_OPEN requests against a policy and answers
//! with an errno or the fd; launches and reaps the emulator.

pub mod activation;
pub mod ambient;
pub mod argfile;
pub mod audit;
pub mod cli;
pub mod explain;
pub mod inherited;
pub mod judge;
pub mod launch;
pub mod learn;
pub mod notify;
pub mod policy;
pub mod resolve;
pub mod serve;
#[cfg(feature = "test-skip-matcher")]
pub mod skip_matcher;
