//! Shared pieces of the fuzz targets (cf. vm-virtio's `fuzz/common/`):
//! the byte reader of the structured targets and the naive models the
//! targets compare the cores against.

pub mod policy_model;
pub mod reader;
