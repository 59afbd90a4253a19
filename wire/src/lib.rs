//! openhook-wire: the `-open-hook-fd` protocol (codec, client, server loop),
//! SCM_RIGHTS helpers, and the QMP client side. No policy lives here.
#![forbid(unsafe_code)]

pub mod qmp;
