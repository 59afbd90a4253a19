//! openhook-sandbox: layered confinement (pre-exec hardening, capabilities,
//! Landlock, seccomp) in a fixed order, per design §6.
